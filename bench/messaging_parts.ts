/**
 * Where a message's time goes in the queue and the broadcast ring, in one
 * process (no scheduling): each part timed alone in a loop, median of
 * rounds. Not a `*_bench.ts` module: it has no goals.
 *
 * Usage: deno run -A bench/messaging_parts.ts | bun bench/messaging_parts.ts
 *
 * @module
 */
import { Broadcast, Queue } from "../messaging/mod.ts";
import { median } from "./harness.ts";

const N = 200_000;
const shape = { slots: 1024, maxMessage: 64 };

function time(name: string, fn: (n: number) => void): void {
  const samples: number[] = [];
  for (let r = 0; r < 7; r++) {
    const start = performance.now();
    fn(N);
    samples.push(((performance.now() - start) * 1e6) / N);
  }
  console.log(`${name}: ${median(samples).toFixed(1)} ns/msg`);
}

const message = new Uint8Array(64).fill(1);
const buffer = new Uint8Array(128);
const qbytes = new Uint8Array(new SharedArrayBuffer(Queue.byteLengthFor(shape)));
const queue = Queue.init(qbytes, shape);
time("queue trySend + tryReceive", (n) => {
  for (let i = 0; i < n; i++) {
    queue.trySend(message);
    queue.tryReceive();
  }
});
time("queue send + receiveInto", (n) => {
  for (let i = 0; i < n; i++) {
    queue.send(message);
    queue.receiveInto(buffer);
  }
});
time("queue 512 send, then 512 receiveInto", (n) => {
  for (let i = 0; i < n; i += 512) {
    for (let k = 0; k < 512; k++) queue.send(message);
    for (let k = 0; k < 512; k++) queue.receiveInto(buffer);
  }
});
const bbytes = new Uint8Array(new SharedArrayBuffer(Broadcast.byteLengthFor(shape)));
const pub = Broadcast.init(bbytes, shape);
const sub = Broadcast.from(bbytes).subscribe();
time("broadcast publish", (n) => {
  for (let i = 0; i < n; i++) pub.publish(message);
});
time("broadcast publish + receiveInto", (n) => {
  for (let i = 0; i < n; i++) {
    pub.publish(message);
    sub.receiveInto(buffer);
  }
});
time("bare: 64-byte set from subarray", (n) => {
  for (let i = 0; i < n; i++) buffer.set(qbytes.subarray(256, 320));
});
const words = new Int32Array(qbytes.buffer, 0, 64);
time("bare: 10 Atomics (load/store/cas)", (n) => {
  for (let i = 0; i < n; i++) {
    Atomics.load(words, 16);
    Atomics.load(words, 17);
    Atomics.compareExchange(words, 18, 0, 1);
    Atomics.compareExchange(words, 16, i, i + 1);
    Atomics.store(words, 19, 0);
    Atomics.store(words, 18, 0);
    Atomics.add(words, 20, 1);
    Atomics.load(words, 21);
    Atomics.load(words, 22);
    Atomics.store(words, 23, i);
  }
});
time("bare: performance.now()", (n) => {
  for (let i = 0; i < n; i++) performance.now();
});

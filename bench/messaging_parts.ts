/**
 * Where a message's time goes in the queue and the broadcast ring, in one
 * process (no scheduling, no waiting), next to the same protocols in C
 * (bench/c/messaging_parts.c), to the same protocols as bare JS without
 * checks (bench/messaging_floor.ts), and to bare runtime operations. Each figure
 * is the fastest of its rounds (CPU-bound loops: the least disturbed round
 * is the closest to their cost); the C program runs between the rounds.
 * Not a `*_bench.ts` module: it has no goals.
 *
 * Usage: deno run -A bench/messaging_parts.ts | bun bench/messaging_parts.ts
 *        | node bench/messaging_parts.ts
 *
 * @module
 */
import { Broadcast, Queue } from "../messaging/mod.ts";
import { compileC } from "./harness.ts";
import { BareQueue, BareRing } from "./messaging_floor.ts";
import { execFileSync } from "node:child_process";

const N = 100_000;
const ROUNDS = 9;
const shape = { slots: 1024, maxMessage: 64 };
const message = new Uint8Array(64).fill(1);
const buffer = new Uint8Array(128);

const queue = Queue.init(new Uint8Array(new SharedArrayBuffer(Queue.byteLengthFor(shape))), shape);
const ring = new Uint8Array(new SharedArrayBuffer(Broadcast.byteLengthFor(shape)));
const publisher = Broadcast.init(ring, shape);
const subscriber = Broadcast.from(ring).subscribe();
const bareQueueMemory = new Uint8Array(new SharedArrayBuffer(Queue.byteLengthFor(shape)));
Queue.init(bareQueueMemory, shape);
const bareQueue = new BareQueue(bareQueueMemory, 1);
bareQueue.use(message, buffer);
const bareMemory = new Uint8Array(new SharedArrayBuffer(Broadcast.byteLengthFor(shape)));
Broadcast.init(bareMemory, shape);
const barePublisher = new BareRing(bareMemory);
barePublisher.use(message);
const bareSubscriber = new BareRing(bareMemory);
bareSubscriber.use(buffer);
// Words of their own: the bare Atomics below must not move a ring's head.
const words = new Int32Array(new SharedArrayBuffer(256));
const bytes = new Uint8Array(ring.buffer);

const parts: Record<string, (n: number) => void> = {
  "queue send + receiveInto": (n) => {
    for (let i = 0; i < n; i++) {
      queue.send(message);
      queue.receiveInto(buffer);
    }
  },
  "queue trySend + tryReceive (a new Uint8Array)": (n) => {
    for (let i = 0; i < n; i++) {
      queue.trySend(message);
      queue.tryReceive();
    }
  },
  "floor: the queue's protocol as bare JS, trySend + tryReceive": (n) => {
    for (let i = 0; i < n; i++) {
      bareQueue.trySend();
      bareQueue.tryReceive();
    }
  },
  "broadcast publish + receiveInto": (n) => {
    for (let i = 0; i < n; i++) {
      publisher.publish(message);
      subscriber.receiveInto(buffer);
    }
  },
  "floor: the ring's protocol as bare JS, publish + receive": (n) => {
    for (let i = 0; i < n; i++) {
      barePublisher.publish();
      bareSubscriber.tryReceive();
    }
  },
  "broadcast publish (nobody reading)": (n) => {
    for (let i = 0; i < n; i++) publisher.publish(message);
  },
  "bare: 1 Atomics.load": (n) => {
    for (let i = 0; i < n; i++) Atomics.load(words, 16);
  },
  "bare: 1 Atomics.compareExchange": (n) => {
    for (let i = 0; i < n; i++) Atomics.compareExchange(words, 16, i, i + 1);
  },
  "bare: 1 Atomics.store": (n) => {
    for (let i = 0; i < n; i++) Atomics.store(words, 17, i);
  },
  "bare: 64-byte copy, set(subarray)": (n) => {
    for (let i = 0; i < n; i++) buffer.set(bytes.subarray(256, 320));
  },
  "bare: performance.now()": (n) => {
    for (let i = 0; i < n; i++) performance.now();
  },
};

const best: Record<string, number> = {};
const c: Record<string, number> = {};
const exe = compileC("messaging_parts");
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, fn] of Object.entries(parts)) {
    const start = performance.now();
    fn(N);
    const ns = ((performance.now() - start) * 1e6) / N;
    best[name] = Math.min(best[name] ?? Infinity, ns);
  }
  if (r % 3 === 0) {
    for (const line of execFileSync(exe, { encoding: "utf8" }).trim().split("\n")) {
      const [what, ns] = line.split(" ") as [string, string];
      c[what] = Math.min(c[what] ?? Infinity, Number(ns));
    }
  }
}
for (const [name, ns] of Object.entries(best)) console.log(`${name}: ${ns.toFixed(1)} ns`);
for (const [name, ns] of Object.entries(c)) {
  console.log(`C, same protocol, ${name}: ${ns.toFixed(1)} ns`);
}

/**
 * What both sides of bench/messaging_bench.ts share: the control words at
 * the start of the shared file, the queue's shape, the warm-up's counts and
 * helpers, the timed loops, and the loan round trip's pools and queues. The
 * benchmark's process (bench/messaging_bench.ts) and its peers
 * (bench/peers/messaging.ts) import them from here.
 *
 * @module
 */
import { type Mapping, notify } from "../mod.ts";
import { type Broadcast, Queue, Subscriber } from "../messaging/mod.ts";

// Control words at the start of the shared file; the object starts at CONTROL bytes.
export const CONTROL = 4096;
export const GO = 0;
export const PRODUCERS_DONE = 1;
export const CONSUMERS_DONE = 2;
export const RECEIVED = 3;
export const READY = 4;
/** Per subscriber k: messages received at RECEIVED_BY + k, lost at LOST_BY + k. */
export const RECEIVED_BY = 8;
export const LOST_BY = 16;
/** CPU microseconds each peer spent in its timed loop, summed. */
export const CPU_US = 24;
/** Stays 0: the warm-up sleeps on it. */
export const WARM_UP_SLEEP = 25;
/** Producers done with the warm-up queue; subscribers attached to the warm-up ring. */
export const WARM_DONE = 26;
export const QUEUE_SHAPE = { slots: 1024, maxMessage: 64 };

export function bump(control: Int32Array, index: number, by = 1): void {
  Atomics.add(control, index, by);
  notify(control, index);
}

/**
 * Messages per producer (per publisher) of the untimed warm-up round each
 * timed round starts with, through a second queue (ring) in the same file
 * and the same loops: the timed round then measures steady-state compiled
 * code, as the C program's (whose compile is not timed either). The timed
 * handles are made after the warm-up: V8 deprecates the maps of objects
 * made before it, and the first call on such an object deoptimized the
 * compiled loop (seen with --trace-deopt at the start of every timed loop,
 * then recompiles inside the timed region).
 */
export const WARM_UP = 1 << 18;
/** Messages per call of the warm-up: the timed call then enters compiled code at the top. */
export const WARM_BATCH = 64;

/**
 * The timed handles' first calls take paths (claiming the publisher's place,
 * a new view of the caller's buffer, a subscriber's first look at head) that
 * the warm-up took only on its first call, before V8 kept type feedback:
 * compiled code then deoptimized there at the start of the timed loop
 * (--trace-deopt). So the warm-up's first 8192 messages go through a fresh
 * handle every 1024 messages and alternate two buffers.
 */
export function fresh(i: number): boolean {
  return i > 0 && i < 8192 && i % 1024 === 0;
}

/** The warm-up's buffer for the batch at message i (see {@linkcode fresh}). */
export function twoOf(i: number, first: Uint8Array, second: Uint8Array): Uint8Array {
  return i < 8192 && (i / WARM_BATCH) % 2 === 1 ? second : first;
}

/** The timed loops (the warm-up runs these same functions). */
export function sendAll(queue: Queue, message: Uint8Array, n: number): void {
  for (let i = n; i > 0; i--) queue.send(message);
}

export function receiveAll(queue: Queue, buffer: Uint8Array, max: number): number {
  let n = 0;
  while (n < max && queue.receiveInto(buffer) !== Queue.DONE) n++;
  return n;
}

export function publishAll(publisher: Broadcast, message: Uint8Array, n: number): void {
  for (let i = n; i > 0; i--) publisher.publish(message);
}

export function subscribeAll(subscriber: Subscriber, buffer: Uint8Array, max: number): number {
  let n = 0;
  while (n < max && subscriber.receiveInto(buffer) !== Subscriber.DONE) n++;
  return n;
}

/** The two pools of the loan round trip: 64-byte and 1 MiB blocks. */
export const LOAN_SHAPES = [{ blocks: 2, blockBytes: 64 }, { blocks: 2, blockBytes: 1 << 20 }];

export const SMALL_QUEUE = { slots: 2, maxMessage: 16 };

export function queuesAfter(mapping: Mapping, poolBytes: number): [Uint8Array, Uint8Array] {
  const q = Queue.byteLengthFor(SMALL_QUEUE);
  return [
    mapping.view(Uint8Array, CONTROL + poolBytes, q),
    mapping.view(Uint8Array, CONTROL + poolBytes + q, q),
  ];
}

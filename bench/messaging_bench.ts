/**
 * The messaging benchmarks: the MPMC queue with 2 producer and 2 consumer
 * processes (64-byte messages) against a C program on the same layout and
 * protocol (bench/c/messaging_mpmc.c: the same waits, the same ready/go
 * start and stop) and against a pipe (C, one write and one read per
 * message); the broadcast ring to 4 subscriber processes against the same
 * C program; and the loan pool's round trip of a 1 MiB message against a
 * 64-byte one.
 *
 * Rounds of the runtime, of the floor (the same protocol as bare JS without
 * checks or recovery, bench/messaging_floor.ts, in the same runtime) and of
 * the C programs alternate, so load drift hits all; each figure is the
 * median of its rounds. The floor rows report the floor against C from the
 * rounds of the row above them. Every runtime process
 * first passes 2^18 messages through a warm-up queue or ring shared with
 * its round's peers, then 2^19 through one of its own (before the clock
 * starts), so rounds measure compiled code, as C's. The broadcast ring
 * has a slot for every message of a round, so nothing is overwritten: a
 * round fails unless every subscriber received every message.
 *
 * Run as a script, this file is the peer the benchmarks start.
 *
 * @module
 */
import process from "node:process";
import { execFileSync } from "node:child_process";
import { Mapping, notify, wait, waitAsync } from "../mod.ts";
import { Broadcast, LoanPool, Queue, Subscriber } from "../messaging/mod.ts";
import { type Benchmark, compileC, type Measured, runForNumber } from "./harness.ts";
import { exited, median, sharedFile, startPeer } from "./peers/support.ts";
import { endPeer } from "./peers/_end.ts";
import { BareQueue, BareRing } from "./messaging_floor.ts";

// Control words at the start of the shared file; the object starts at CONTROL bytes.
const CONTROL = 4096;
const GO = 0;
const PRODUCERS_DONE = 1;
const CONSUMERS_DONE = 2;
const RECEIVED = 3;
const READY = 4;
/** Per subscriber k: messages received at RECEIVED_BY + k, lost at LOST_BY + k. */
const RECEIVED_BY = 8;
const LOST_BY = 16;
/** CPU microseconds each peer spent in its timed loop, summed. */
const CPU_US = 24;
/** Stays 0: the warm-up sleeps on it. */
const WARM_UP_SLEEP = 25;
/** Producers done with the warm-up queue; subscribers attached to the warm-up ring. */
const WARM_DONE = 26;
const QUEUE_SHAPE = { slots: 1024, maxMessage: 64 };
const ROUNDS = 9;
/** Messages per producer in a queue round. */
const PER_PRODUCER = 200_000;
/** Messages per broadcast round: the ring has as many slots. */
const BROADCAST_COUNT = 1 << 18;
const SELF = "../messaging_bench.ts";

function bump(control: Int32Array, index: number, by = 1): void {
  Atomics.add(control, index, by);
  notify(control, index);
}

function waitFor(control: Int32Array, index: number, value: number): void {
  for (let v = Atomics.load(control, index); v < value; v = Atomics.load(control, index)) {
    wait(control, index, v, 1000);
  }
}

/** Waits (event loop free) until control[index] reaches `value`. */
async function reach(control: Int32Array, index: number, value: number): Promise<void> {
  const deadline = performance.now() + 120_000;
  for (let v = Atomics.load(control, index); v < value; v = Atomics.load(control, index)) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting for word ${index}`);
    await waitAsync(control, index, v, 1000);
  }
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
const WARM_UP = 1 << 18;
/**
 * The timed receive loops' bound: a Smi, as the warm-up's (Infinity would
 * deoptimize the loop the warm-up compiled).
 */
const ALL = 2 ** 30;
/** Messages per call of the warm-up: the timed call then enters compiled code at the top. */
const WARM_BATCH = 64;
/** Slots of the warm-up ring (the publisher sends WARM_UP messages through it; laps are fine). */
const WARM_RING = 1 << 16;

/**
 * The timed handles' first calls take paths (claiming the publisher's place,
 * a new view of the caller's buffer, a subscriber's first look at head) that
 * the warm-up took only on its first call, before V8 kept type feedback:
 * compiled code then deoptimized there at the start of the timed loop
 * (--trace-deopt). So the warm-up's first 8192 messages go through a fresh
 * handle every 1024 messages and alternate two buffers.
 */
function fresh(i: number): boolean {
  return i > 0 && i < 8192 && i % 1024 === 0;
}

/** The warm-up's buffer for the batch at message i (see {@linkcode fresh}). */
function twoOf(i: number, first: Uint8Array, second: Uint8Array): Uint8Array {
  return i < 8192 && (i / WARM_BATCH) % 2 === 1 ? second : first;
}

/** The timed loops (the warm-up runs these same functions). */
function sendAll(queue: Queue, message: Uint8Array, n: number): void {
  for (let i = n; i > 0; i--) queue.send(message);
}

function receiveAll(queue: Queue, buffer: Uint8Array, max: number): number {
  let n = 0;
  while (n < max && queue.receiveInto(buffer) !== Queue.DONE) n++;
  return n;
}

function publishAll(publisher: Broadcast, message: Uint8Array, n: number): void {
  for (let i = n; i > 0; i--) publisher.publish(message);
}

function subscribeAll(subscriber: Subscriber, buffer: Uint8Array, max: number): number {
  let n = 0;
  while (n < max && subscriber.receiveInto(buffer) !== Subscriber.DONE) n++;
  return n;
}

/**
 * After the warm-up round: gives the JIT's background compiles (of the
 * paths contention takes: full, empty, busy, sleep, wake) a moment to land.
 */
function settle(control: Int32Array): void {
  wait(control, WARM_UP_SLEEP, 0, 300);
}

/** Adds the CPU time since `start` to the CPU_US word. */
function addCpu(control: Int32Array, start: { user: number; system: number }): void {
  const { user, system } = process.cpuUsage(start);
  Atomics.add(control, CPU_US, Math.round(user + system));
}

/**
 * CPU time per message of the last round's peers, ns (the sum over the
 * processes, in their timed loops): what a round costs apart from waiting
 * for a core, so steadier than the rates on a loaded machine.
 */
export const lastCpu = { queue: NaN, broadcast: NaN };

/** The peer's side (this file run as a script). */
function peer(args: string[]): void {
  const [mode, path, ...rest] = args as [string, string, ...string[]];
  // Before the warm-up: a first call sets things up that deoptimize compiled code.
  addCpu(new Int32Array(CPU_US + 1), process.cpuUsage());
  using mapping = Mapping.file(path);
  const control = mapping.view(Int32Array, 0, CONTROL / 4);
  const view = mapping.view(Uint8Array, CONTROL);
  // "bare-*": the same protocol as bare JS (messaging_floor.ts), the floor.
  const bare = mode.startsWith("bare-");
  const role = bare ? mode.slice(5) : mode;
  if (role === "produce") {
    const at = mapping.view(Uint8Array, CONTROL + Queue.byteLengthFor(QUEUE_SHAPE));
    const message = new Uint8Array(64).fill(1);
    const other = message.slice();
    let warm = sendingTo(at, bare);
    for (let i = 0; i < WARM_UP; i += WARM_BATCH) {
      if (fresh(i)) warm = sendingTo(at, bare);
      warm(twoOf(i, message, other), WARM_BATCH);
    }
    bump(control, WARM_DONE);
    using _alone = warmQueueAlone(
      [message, other],
      [new Uint8Array(128), new Uint8Array(128)],
      bare,
    );
    settle(control);
    const queue = sendingTo(view, bare);
    bump(control, READY);
    waitFor(control, GO, 1);
    const cpu = process.cpuUsage();
    queue(message, Number(rest[0]));
    addCpu(control, cpu);
    bump(control, PRODUCERS_DONE);
  } else if (role === "consume") {
    const at = mapping.view(Uint8Array, CONTROL + Queue.byteLengthFor(QUEUE_SHAPE));
    const buffer = new Uint8Array(128); // maxMessageBytes (112) and more
    const other = buffer.slice();
    let warm = receivingFrom(at, bare);
    for (let i = 0;; i += WARM_BATCH) {
      if (fresh(i)) warm = receivingFrom(at, bare);
      if (warm(twoOf(i, buffer, other), WARM_BATCH) !== WARM_BATCH) break;
    }
    using _alone = warmQueueAlone([new Uint8Array(64), new Uint8Array(64)], [buffer, other], bare);
    settle(control);
    const queue = receivingFrom(view, bare);
    bump(control, READY);
    const cpu = process.cpuUsage();
    const n = queue(buffer, ALL);
    addCpu(control, cpu);
    bump(control, RECEIVED, n);
    bump(control, CONSUMERS_DONE);
  } else if (role === "subscribe") {
    const k = Number(rest[0]);
    const slots = Broadcast.from(view).slots;
    const at = CONTROL + Broadcast.byteLengthFor({ slots, maxMessage: 64 });
    let warm = subscribing(mapping.view(Uint8Array, at), bare);
    bump(control, WARM_DONE);
    const buffer = new Uint8Array(128); // maxMessageBytes (120) and more
    const other = buffer.slice();
    for (let i = 0;; i += WARM_BATCH) {
      if (fresh(i)) warm = subscribing(mapping.view(Uint8Array, at), bare);
      if (warm.receive(twoOf(i, buffer, other), WARM_BATCH) !== WARM_BATCH) break;
    }
    // Closed after the timed loop: detaching its views now would discard compiled code.
    using _alone = warmAlone(buffer, other, bare);
    settle(control);
    // Subscribed before READY: the publisher starts the timed messages after it.
    const subscriber = subscribing(view, bare);
    bump(control, READY);
    const cpu = process.cpuUsage();
    const n = subscriber.receive(buffer, ALL);
    addCpu(control, cpu);
    Atomics.store(control, RECEIVED_BY + k, n);
    Atomics.store(control, LOST_BY + k, subscriber.lost());
    bump(control, CONSUMERS_DONE);
  } else if (mode === "loan-echo") {
    const [poolBytes, count] = [Number(rest[0]), Number(rest[1])];
    const pools = LOAN_SHAPES.map((_, k) =>
      LoanPool.from(mapping.view(Uint8Array, CONTROL + k * poolBytes, poolBytes))
    );
    const queues = queuesAfter(mapping, 2 * poolBytes);
    const tokens = Queue.from(queues[0], { spinMs: 0 });
    const acks = Queue.from(queues[1], { spinMs: 0 });
    const ack = new Uint8Array(4);
    bump(control, READY);
    for (let i = 0; i < count; i++) {
      const message = tokens.receive() as Uint8Array;
      const words = new DataView(message.buffer);
      const loan = pools[words.getUint32(0, true)]!.accept(words.getUint32(4, true));
      const bytes = loan.bytes;
      ack[0] = bytes[0]! ^ bytes[bytes.length - 1]!;
      loan.release();
      acks.send(ack);
    }
  }
}

/**
 * A subscriber's warm-up in memory of its own, as well as the shared one: the
 * warm-up ring's publisher may lap a subscriber, which then made too few calls
 * of the timed loop for JSC to finish its top-tier compile before the clock
 * started (Bun, BUN_JSC_reportFTLCompileTimes: a 30-45 ms FTL compile of the
 * loop, then an OSR-entry compile, in the timed region of every subscriber).
 * Here it makes PRIVATE_WARM_UP / WARM_BATCH calls whatever the publisher's pace.
 */
function warmAlone(buffer: Uint8Array, other: Uint8Array, bare: boolean): Mapping {
  const shape = { slots: 1024, maxMessage: 64 };
  const mapping = Mapping.anonymous(Broadcast.byteLengthFor(shape), { shared: false });
  const view = mapping.view(Uint8Array);
  const publisher = Broadcast.init(view, shape);
  const message = new Uint8Array(64).fill(1);
  let warm = subscribing(view, bare);
  for (let i = 0; i < PRIVATE_WARM_UP; i += WARM_BATCH) {
    if (fresh(i)) warm = subscribing(view, bare);
    publishAll(publisher, message, WARM_BATCH);
    if (warm.receive(twoOf(i, buffer, other), WARM_BATCH) !== WARM_BATCH) {
      throw new Error("the private warm-up ring lost messages");
    }
  }
  return mapping;
}

/**
 * A queue peer's warm-up in memory of its own, after the shared one: the
 * shared warm-up ends with its queue's end, whose first sighting deoptimized
 * the receive path (V8: "insufficient type feedback" at the ended branch), so
 * the timed loop started in the interpreter and recompiled (25-75 ms of
 * TurboFan on a loaded core, --trace-opt) inside the timed region. Here the
 * send and receive loops run again, in one process, until they are compiled
 * with that feedback. Kept mapped until after the timed loop (see warmAlone).
 */
function warmQueueAlone(
  messages: [Uint8Array, Uint8Array],
  buffers: [Uint8Array, Uint8Array],
  bare: boolean,
): Mapping {
  const mapping = Mapping.anonymous(Queue.byteLengthFor(QUEUE_SHAPE), { shared: false });
  const view = mapping.view(Uint8Array);
  Queue.init(view, QUEUE_SHAPE);
  let send = sendingTo(view, bare);
  let receive = receivingFrom(view, bare);
  for (let i = 0; i < PRIVATE_WARM_UP; i += WARM_BATCH) {
    if (fresh(i)) [send, receive] = [sendingTo(view, bare), receivingFrom(view, bare)];
    send(twoOf(i, ...messages), WARM_BATCH);
    if (receive(twoOf(i, ...buffers), WARM_BATCH) !== WARM_BATCH) {
      throw new Error("the private warm-up queue lost messages");
    }
  }
  return mapping;
}

/** Messages of a peer's private warm-up. */
const PRIVATE_WARM_UP = 1 << 19;

/** The timed send loop of the library's queue, or of the bare floor's. */
function sendingTo(view: Uint8Array, bare: boolean): (message: Uint8Array, n: number) => void {
  if (bare) {
    const queue = new BareQueue(view, process.pid);
    return (message, n) => queue.sendAll(message, n);
  }
  const queue = Queue.from(view);
  return (message, n) => sendAll(queue, message, n);
}

/** The timed receive loop of the library's queue, or of the bare floor's. */
function receivingFrom(
  view: Uint8Array,
  bare: boolean,
): (buffer: Uint8Array, max: number) => number {
  if (bare) {
    const queue = new BareQueue(view, process.pid);
    return (buffer, max) => queue.receiveAll(buffer, max);
  }
  const queue = Queue.from(view);
  return (buffer, max) => receiveAll(queue, buffer, max);
}

/** A subscriber of the library, or of the bare floor. */
function subscribing(
  view: Uint8Array,
  bare: boolean,
): { receive(buffer: Uint8Array, max: number): number; lost(): number } {
  if (bare) {
    const ring = new BareRing(view);
    return { receive: (buffer, max) => ring.receiveAll(buffer, max), lost: () => ring.lost };
  }
  const subscriber = Broadcast.from(view).subscribe();
  return {
    receive: (buffer, max) => subscribeAll(subscriber, buffer, max),
    lost: () => subscriber.lost,
  };
}

/** The two pools of the loan round trip: 64-byte and 1 MiB blocks. */
const LOAN_SHAPES = [{ blocks: 2, blockBytes: 64 }, { blocks: 2, blockBytes: 1 << 20 }];

const SMALL_QUEUE = { slots: 2, maxMessage: 16 };

function queuesAfter(mapping: Mapping, poolBytes: number): [Uint8Array, Uint8Array] {
  const q = Queue.byteLengthFor(SMALL_QUEUE);
  return [
    mapping.view(Uint8Array, CONTROL + poolBytes, q),
    mapping.view(Uint8Array, CONTROL + poolBytes + q, q),
  ];
}

/** One round: messages per second through the queue, 2 producer and 2 consumer processes. */
export async function queueRound(perProducer: number, bare = false): Promise<number> {
  const bytes = Queue.byteLengthFor(QUEUE_SHAPE);
  const file = sharedFile(CONTROL + 2 * bytes);
  try {
    using mapping = Mapping.file(file.path);
    const control = mapping.view(Int32Array, 0, CONTROL / 4);
    const queue = Queue.init(mapping.view(Uint8Array, CONTROL, bytes), QUEUE_SHAPE);
    const warm = Queue.init(mapping.view(Uint8Array, CONTROL + bytes, bytes), QUEUE_SHAPE);
    const prefix = bare ? "bare-" : "";
    const peers = [
      startPeer(SELF, [`${prefix}consume`, file.path]),
      startPeer(SELF, [`${prefix}consume`, file.path]),
      startPeer(SELF, [`${prefix}produce`, file.path, perProducer]),
      startPeer(SELF, [`${prefix}produce`, file.path, perProducer]),
    ];
    const done = Promise.all(peers.map((p) => exited(p, "queue peer")));
    await reach(control, WARM_DONE, 2);
    warm.end();
    await reach(control, READY, 4);
    const start = performance.now();
    bump(control, GO);
    await reach(control, PRODUCERS_DONE, 2);
    queue.end();
    await reach(control, CONSUMERS_DONE, 2);
    const elapsed = performance.now() - start;
    await done;
    if (Atomics.load(control, RECEIVED) !== 2 * perProducer) {
      throw new Error(`received ${Atomics.load(control, RECEIVED)} of ${2 * perProducer}`);
    }
    lastCpu.queue = (control[CPU_US]! * 1000) / (2 * perProducer);
    return (2 * perProducer) / (elapsed / 1000);
  } finally {
    file.remove();
  }
}

/**
 * One round: messages received per second per subscriber, this process
 * publishing `count` messages to 4 subscriber processes through a ring of
 * `count` slots (none overwritten).
 */
export async function broadcastRound(count: number, bare = false): Promise<number> {
  const shape = { slots: count, maxMessage: 64 };
  const warmShape = { slots: WARM_RING, maxMessage: 64 };
  const bytes = Broadcast.byteLengthFor(shape);
  const file = sharedFile(CONTROL + bytes + Broadcast.byteLengthFor(warmShape));
  try {
    using mapping = Mapping.file(file.path);
    const control = mapping.view(Int32Array, 0, CONTROL / 4);
    const publisher = Broadcast.init(mapping.view(Uint8Array, CONTROL, bytes), shape);
    const warm = Broadcast.init(mapping.view(Uint8Array, CONTROL + bytes), warmShape);
    const mode = bare ? "bare-subscribe" : "subscribe";
    const peers = [0, 1, 2, 3].map((k) => startPeer(SELF, [mode, file.path, k]));
    const done = Promise.all(peers.map((p) => exited(p, "subscriber")));
    const message = new Uint8Array(64).fill(1);
    await reach(control, WARM_DONE, 4);
    const publishing = (view: Uint8Array): (n: number, m?: Uint8Array) => void => {
      if (bare) {
        const ring = new BareRing(view);
        return (n, m = message) => ring.publishAll(m, n);
      }
      const handle = Broadcast.from(view);
      return (n, m = message) => publishAll(handle, m, n);
    };
    const other = message.slice();
    let cold = publishing(mapping.view(Uint8Array, CONTROL + bytes));
    for (let i = 0; i < WARM_UP; i += WARM_BATCH) {
      if (fresh(i)) cold = publishing(mapping.view(Uint8Array, CONTROL + bytes));
      cold(WARM_BATCH, twoOf(i, message, other));
    }
    warm.end();
    // Made after the warm-up, as the peers' timed handles.
    const hot = publishing(mapping.view(Uint8Array, CONTROL, bytes));
    await reach(control, READY, 4);
    const start = performance.now();
    hot(count);
    publisher.end();
    await reach(control, CONSUMERS_DONE, 4);
    const elapsed = performance.now() - start;
    await done;
    for (let k = 0; k < 4; k++) {
      const [got, lost] = [control[RECEIVED_BY + k], control[LOST_BY + k]];
      if (got !== count || lost !== 0) {
        throw new Error(`subscriber ${k} received ${got} of ${count}, lost ${lost}`);
      }
    }
    lastCpu.broadcast = (control[CPU_US]! * 1000) / (4 * count);
    return count / (elapsed / 1000);
  } finally {
    file.remove();
  }
}

/** Medians of rounds of each run (ours, the floor, C...), alternating. */
async function alternate(runs: (() => number | Promise<number>)[]): Promise<number[]> {
  const samples: number[][] = runs.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [i, run] of runs.entries()) samples[i]!.push(await run());
  }
  return samples.map(median);
}

/**
 * The floors measured with the rows above them (same rounds), and their C
 * baselines, for the floor rows.
 */
const floors = { queue: [NaN, NaN], broadcast: [NaN, NaN] };

/**
 * Median ns per loan round trip through another process, for each pool
 * of LOAN_SHAPES, in alternating batches so that load drift hits both.
 */
async function loanRoundTrips(perBatch: number, batches: number): Promise<number[]> {
  // Both pools get the larger pool's room, so the peer can find them.
  const poolBytes = LoanPool.byteLengthFor(LOAN_SHAPES[1]!);
  const file = sharedFile(CONTROL + 2 * poolBytes + 2 * Queue.byteLengthFor(SMALL_QUEUE));
  try {
    using mapping = Mapping.file(file.path);
    const control = mapping.view(Int32Array, 0, CONTROL / 4);
    const pools = LOAN_SHAPES.map((shape, k) =>
      LoanPool.init(mapping.view(Uint8Array, CONTROL + k * poolBytes, poolBytes), shape)
    );
    const [a, b] = queuesAfter(mapping, 2 * poolBytes);
    const tokens = Queue.init(a, SMALL_QUEUE, { spinMs: 0 });
    const acks = Queue.init(b, SMALL_QUEUE, { spinMs: 0 });
    const total = 2 * perBatch * (batches + 1);
    const echo = startPeer(SELF, ["loan-echo", file.path, poolBytes, total]);
    const done = exited(echo, "loan echo");
    await reach(control, READY, 1);
    const message = new Uint32Array(2);
    const batch = (k: number): number => {
      const pool = pools[k]!;
      message[0] = k;
      const start = performance.now();
      for (let i = 0; i < perBatch; i++) {
        const loan = pool.loan()!;
        const bytes = loan.bytes;
        bytes[0] = i;
        bytes[bytes.length - 1] = i;
        message[1] = loan.handOff();
        tokens.send(message);
        acks.receive();
      }
      return ((performance.now() - start) * 1e6) / perBatch;
    };
    batch(0);
    batch(1);
    const samples: number[][] = [[], []];
    for (let r = 0; r < batches; r++) {
      samples[0]!.push(batch(0));
      samples[1]!.push(batch(1));
    }
    await done;
    return samples.map(median);
  } finally {
    file.remove();
  }
}

/** Rounds of the one-process floors (each C run reports the median of its own 7 loops). */
const ONE_PROCESS_ROUNDS = 7;
let oneProcess: { queue: [number, number]; broadcast: [number, number] } | undefined;

/**
 * One process, no waiting: ns per send + receive (queue) and publish +
 * receive (broadcast) of the bare-JS floors, and of the same protocols in
 * C (bench/c/messaging_parts.c); the fastest of alternating rounds. Without
 * scheduling or cache-line transfers, this is the steady bound on what the
 * runtime's atomics allow.
 */
function oneProcessFloors(): { queue: [number, number]; broadcast: [number, number] } {
  if (oneProcess !== undefined) return oneProcess;
  const exe = compileC("messaging_parts");
  const shape = { slots: 1024, maxMessage: 64 };
  const message = new Uint8Array(64).fill(1);
  const buffer = new Uint8Array(128);
  const q = new Uint8Array(new SharedArrayBuffer(Queue.byteLengthFor(shape)));
  Queue.init(q, shape);
  const queue = new BareQueue(q, 1);
  queue.use(message, buffer);
  const r = new Uint8Array(new SharedArrayBuffer(Broadcast.byteLengthFor(shape)));
  Broadcast.init(r, shape);
  const publisher = new BareRing(r);
  publisher.use(message);
  const subscriber = new BareRing(r);
  subscriber.use(buffer);
  const n = 100_000;
  const queueLoop = (): number => {
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      if (queue.trySend() !== 1 || queue.tryReceive() !== 1) throw new Error("floor queue failed");
    }
    return ((performance.now() - start) * 1e6) / n;
  };
  const ringLoop = (): number => {
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      publisher.publish();
      if (subscriber.tryReceive() !== 1) throw new Error("floor ring failed");
    }
    return ((performance.now() - start) * 1e6) / n;
  };
  // Node takes ~10 such loops to reach its top tier.
  for (let i = 0; i < 12; i++) queueLoop() + ringLoop();
  const samples: number[][] = [[], [], [], []];
  for (let round = 0; round < ONE_PROCESS_ROUNDS; round++) {
    samples[0]!.push(queueLoop());
    samples[1]!.push(ringLoop());
    const c = new Map(
      execFileSync(exe, { encoding: "utf8" }).trim().split("\n").map((line) => {
        const [what, ns] = line.split(" ") as [string, string];
        return [what, Number(ns)];
      }),
    );
    samples[2]!.push(c.get("queue")!);
    samples[3]!.push(c.get("broadcast")!);
  }
  // The fastest round of each, favouring JS: a floor must not be set too high.
  const [jsQueue, jsRing, cQueue, cRing] = samples.map((s) => Math.min(...s)) as [
    number,
    number,
    number,
    number,
  ];
  oneProcess = { queue: [jsQueue, cQueue], broadcast: [jsRing, cRing] };
  return oneProcess;
}

const ONE_PROCESS_C = "the same protocol in C, one process (bench/c/messaging_parts.c)";

/** The messaging benchmarks. */
export const benchmarks: Benchmark[] = [
  {
    name: "MPMC queue, 2 producer + 2 consumer processes, 64-byte messages",
    unit: "msgs/s",
    async run(): Promise<Measured> {
      const exe = compileC("messaging_mpmc");
      const n = String(PER_PRODUCER);
      const [value, floor, c, pipe] = await alternate([
        () => queueRound(PER_PRODUCER),
        () => queueRound(PER_PRODUCER, true),
        () => runForNumber(exe, ["queue", n]),
        () => runForNumber(exe, ["pipe", n]),
      ]) as [number, number, number, number];
      floors.queue = [floor, c];
      return {
        value,
        comparisons: [
          {
            baselineName: "C, same layout and waits, 2+2 processes",
            baseline: c!,
            goal: { min: 0.5 },
          },
          { baselineName: "pipe, 2 writers + 2 readers (C)", baseline: pipe!, goal: { min: 20 } },
        ],
      };
    },
  },
  {
    name: "broadcast ring to 4 subscriber processes, 64-byte messages, none lost, per subscriber",
    unit: "msgs/s",
    async run(): Promise<Measured> {
      const exe = compileC("messaging_mpmc");
      const [value, floor, c] = await alternate([
        () => broadcastRound(BROADCAST_COUNT),
        () => broadcastRound(BROADCAST_COUNT, true),
        () => runForNumber(exe, ["broadcast", String(BROADCAST_COUNT)]),
      ]) as [number, number, number];
      floors.broadcast = [floor, c];
      return {
        value,
        comparisons: [
          {
            baselineName: "C, same layout and waits, 4 subscriber processes",
            baseline: c!,
            goal: { min: 0.5 },
          },
        ],
      };
    },
  },
  {
    name: "floor of the MPMC row: its protocol as bare JS (no checks, no recovery), 2+2 processes",
    unit: "msgs/s",
    run(): Promise<Measured> {
      const [value, c] = floors.queue as [number, number];
      if (Number.isNaN(value)) {
        throw new Error("the MPMC row did not run: its rounds measure the floor");
      }
      return Promise.resolve({
        value,
        comparisons: [{
          baselineName: "C, same layout and waits, 2+2 processes, same rounds as the MPMC row",
          baseline: c,
          goal: { min: 0.5 },
        }],
      });
    },
  },
  {
    name:
      "floor of the broadcast row: its protocol as bare JS (no checks), 4 subscribers, per subscriber",
    unit: "msgs/s",
    run(): Promise<Measured> {
      const [value, c] = floors.broadcast as [number, number];
      if (Number.isNaN(value)) {
        throw new Error("the broadcast row did not run: its rounds measure the floor");
      }
      return Promise.resolve({
        value,
        comparisons: [{
          baselineName:
            "C, same layout and waits, 4 subscriber processes, same rounds as the broadcast row",
          baseline: c,
          goal: { min: 0.5 },
        }],
      });
    },
  },
  {
    name:
      "floor, one process: the MPMC queue's protocol as bare JS, send + receive of a 64-byte message",
    unit: "ns/op",
    run(): Promise<Measured> {
      const [value, c] = oneProcessFloors().queue;
      // At least half C's rate is at most twice its time.
      return Promise.resolve({
        value,
        comparisons: [{ baselineName: ONE_PROCESS_C, baseline: c, goal: { max: 2 } }],
      });
    },
  },
  {
    name:
      "floor, one process: the broadcast ring's protocol as bare JS, publish + receive of a 64-byte message",
    unit: "ns/op",
    run(): Promise<Measured> {
      const [value, c] = oneProcessFloors().broadcast;
      return Promise.resolve({
        value,
        comparisons: [{ baselineName: ONE_PROCESS_C, baseline: c, goal: { max: 2 } }],
      });
    },
  },
  {
    name: "loan round trip through another process, 1 MiB message",
    unit: "ns/op",
    async run(): Promise<Measured> {
      const [small, value] = await loanRoundTrips(500, 9) as [number, number];
      return {
        value,
        comparisons: [
          { baselineName: "the same with a 64-byte message", baseline: small, goal: { max: 1.5 } },
        ],
      };
    },
  },
];

if (import.meta.main) {
  peer(process.argv.slice(2));
  endPeer();
}

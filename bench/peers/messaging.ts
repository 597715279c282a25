/**
 * Benchmark peer of bench/messaging_bench.ts, on the file at <path>: a
 * producer or a consumer of its MPMC queue, a subscriber of its broadcast
 * ring (each also of the bare-JS floor's, mode prefixed "bare-"), or the
 * echo of its loan round trip. A queue or ring peer warms up (through the
 * round's shared warm-up queue or ring, then one of its own) before it
 * reports READY.
 *
 * Usage: messaging.ts produce|bare-produce <path> <count>
 *        messaging.ts consume|bare-consume <path>
 *        messaging.ts subscribe|bare-subscribe <path> <k>
 *        messaging.ts loan-echo <path> <poolBytes> <count>
 *
 * @module
 */
import process from "node:process";
import { Mapping, wait } from "../../mod.ts";
import { Broadcast, LoanPool, Queue } from "../../messaging/mod.ts";
import { BareQueue, BareRing } from "../messaging_floor.ts";
import {
  bump,
  CONSUMERS_DONE,
  CONTROL,
  CPU_US,
  fresh,
  GO,
  LOAN_SHAPES,
  LOST_BY,
  PRODUCERS_DONE,
  publishAll,
  QUEUE_SHAPE,
  queuesAfter,
  READY,
  receiveAll,
  RECEIVED,
  RECEIVED_BY,
  sendAll,
  subscribeAll,
  twoOf,
  WARM_BATCH,
  WARM_DONE,
  WARM_UP,
  WARM_UP_SLEEP,
} from "../_messaging_control.ts";
import { endPeer } from "./_end.ts";

function waitFor(control: Int32Array, index: number, value: number): void {
  for (let v = Atomics.load(control, index); v < value; v = Atomics.load(control, index)) {
    wait(control, index, v, 1000);
  }
}

/**
 * The timed receive loops' bound: a Smi, as the warm-up's (Infinity would
 * deoptimize the loop the warm-up compiled).
 */
const ALL = 2 ** 30;

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

/** The peer's side. */
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

peer(process.argv.slice(2));
endPeer();

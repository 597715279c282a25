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
 * The peer processes it starts are bench/peers/messaging.ts.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { Mapping, waitAsync } from "../mod.ts";
import { Broadcast, LoanPool, Queue } from "../messaging/mod.ts";
import { type Benchmark, compileC, type Measured, runForNumber } from "./harness.ts";
import { exited, median, sharedFile, startPeer } from "./peers/support.ts";
import { BareQueue, BareRing } from "./messaging_floor.ts";
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
  RECEIVED,
  RECEIVED_BY,
  SMALL_QUEUE,
  twoOf,
  WARM_BATCH,
  WARM_DONE,
  WARM_UP,
} from "./_messaging_control.ts";

const ROUNDS = 9;
/** Messages per producer in a queue round. */
const PER_PRODUCER = 200_000;
/** Messages per broadcast round: the ring has as many slots. */
const BROADCAST_COUNT = 1 << 18;
const PEER = "messaging.ts";

/** Waits (event loop free) until control[index] reaches `value`. */
async function reach(control: Int32Array, index: number, value: number): Promise<void> {
  const deadline = performance.now() + 120_000;
  for (let v = Atomics.load(control, index); v < value; v = Atomics.load(control, index)) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting for word ${index}`);
    await waitAsync(control, index, v, 1000);
  }
}

/** Slots of the warm-up ring (the publisher sends WARM_UP messages through it; laps are fine). */
const WARM_RING = 1 << 16;

/**
 * CPU time per message of the last round's peers, ns (the sum over the
 * processes, in their timed loops): what a round costs apart from waiting
 * for a core, so steadier than the rates on a loaded machine.
 */
export const lastCpu = { queue: NaN, broadcast: NaN };

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
      startPeer(PEER, [`${prefix}consume`, file.path]),
      startPeer(PEER, [`${prefix}consume`, file.path]),
      startPeer(PEER, [`${prefix}produce`, file.path, perProducer]),
      startPeer(PEER, [`${prefix}produce`, file.path, perProducer]),
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
    const peers = [0, 1, 2, 3].map((k) => startPeer(PEER, [mode, file.path, k]));
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
    const echo = startPeer(PEER, ["loan-echo", file.path, poolBytes, total]);
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

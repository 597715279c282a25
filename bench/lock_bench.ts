/**
 * Locks and wait/wake: an uncontended Mutex lock+unlock against C
 * pthread_mutex, and a wait/notify round trip between two processes
 * (synchronous, and with waitAsync) against C futex.
 *
 * @module
 */
import { Mapping, Mutex, notify, wait, waitAsync } from "../mod.ts";
import { type Benchmark, compileC, type Measured, runForNumber } from "./harness.ts";
import { exited, median, pipePingPong, sharedFile, startPeer } from "./peers/support.ts";

/**
 * Median ns per iteration of `loop(n)` over rounds of `n` iterations, after
 * a warm-up round: the loop is the caller's, so the figure holds no call
 * through a shared (megamorphic) call site per operation.
 */
function nsPerLoop(loop: (n: number) => void, n: number, rounds = 7): number {
  loop(n);
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = performance.now();
    loop(n);
    samples.push(((performance.now() - start) * 1e6) / n);
  }
  return median(samples);
}

const MUTEX_FLOOR =
  "a lock as bare JS atomics on the same kind of word, no checks: compareExchange 0 to 1 to " +
  "lock, exchange to 0 to unlock (an atomic read-modify-write each way, as a lock that can see " +
  "its waiters needs)";

let mutexFigures: { value: number; floor: number; plain: number; robust: number } | undefined;

/**
 * The Mutex, its floor (alternating rounds, same loop shape) and C's two
 * mutexes, measured once for both rows.
 */
function measureMutex(): { value: number; floor: number; plain: number; robust: number } {
  if (mutexFigures !== undefined) return mutexFigures;
  using mapping = Mapping.anonymous(4096);
  const mutex = Mutex.init(mapping.view());
  const counter = mapping.view(Int32Array, 64, 1);
  const word = mapping.view(Int32Array, 128, 1);
  // The loops as C's baseline has them: no call per pair but lock and unlock.
  const safe = (n: number): void => {
    for (let i = 0; i < n; i++) {
      mutex.lock();
      counter[0]!++;
      mutex.unlock();
    }
  };
  const bare = (n: number): void => {
    for (let i = 0; i < n; i++) {
      if (Atomics.compareExchange(word, 0, 0, 1) !== 0) throw new Error("floor lock taken");
      counter[0]!++;
      if (Atomics.exchange(word, 0, 0) !== 1) throw new Error("floor lock lost");
    }
  };
  const values: number[] = [];
  const floors: number[] = [];
  for (let r = 0; r < 5; r++) {
    values.push(nsPerLoop(safe, 1_000_000, 3));
    floors.push(nsPerLoop(bare, 1_000_000, 3));
  }
  const exe = compileC("mutex_uncontended", ["-lpthread"]);
  mutexFigures = {
    value: median(values),
    floor: median(floors),
    plain: runForNumber(exe, ["default"]),
    robust: runForNumber(exe, ["robust"]),
  };
  return mutexFigures;
}

/** ns per futex round trip with a peer of this runtime; `pollMs` undefined: synchronous waits. */
async function futexPingPong(perBatch: number, pollMs?: number): Promise<number> {
  const batches = 5;
  const warmUp = Math.max(200, perBatch >> 2);
  const file = sharedFile(4096);
  try {
    using mapping = Mapping.file(file.path);
    const words = mapping.view(Int32Array);
    const peer = startPeer("futex_echo.ts", [file.path, warmUp + batches * perBatch]);
    const done = exited(peer, "futex echo");
    let i = 0;
    const batch = async (n: number): Promise<number> => {
      const start = performance.now();
      for (let k = 0; k < n; k++) {
        i++;
        Atomics.store(words, 0, i);
        notify(words, 0, 1);
        for (let seen = Atomics.load(words, 32); seen !== i; seen = Atomics.load(words, 32)) {
          if (pollMs === undefined) wait(words, 32, seen, 60_000);
          else await waitAsync(words, 32, seen, 60_000, { pollMs });
        }
      }
      return ((performance.now() - start) * 1e6) / n;
    };
    await batch(warmUp);
    const samples: number[] = [];
    for (let b = 0; b < batches; b++) samples.push(await batch(perBatch));
    await done;
    return median(samples);
  } finally {
    file.remove();
  }
}

/** The lock benchmarks. */
export const benchmarks: Benchmark[] = [
  {
    name: "Mutex lock+unlock, uncontended",
    unit: "ns/op",
    run(): Promise<Measured> {
      const { value, plain, robust, floor } = measureMutex();
      return Promise.resolve({
        value,
        comparisons: [
          {
            baselineName: "C pthread_mutex, process-shared and robust",
            baseline: robust,
            goal: { max: 2 },
          },
          { baselineName: "C pthread_mutex, default", baseline: plain, goal: { max: 4 } },
          { baselineName: MUTEX_FLOOR, baseline: floor, goal: { max: 1.5 } },
        ],
      });
    },
  },
  {
    name: "Mutex floor: " + MUTEX_FLOOR + "; over 4x C, no JS lock meets the Mutex row's " +
      "goal against the default pthread mutex here",
    unit: "ns/op",
    run(): Promise<Measured> {
      const { plain, floor } = measureMutex();
      return Promise.resolve({
        value: floor,
        comparisons: [{
          baselineName: "C pthread_mutex, default",
          baseline: plain,
          goal: { max: 4 },
        }],
      });
    },
  },
  {
    name: "wait/notify round trip between two processes (synchronous futex waits)",
    unit: "ns/op",
    async run(): Promise<Measured> {
      const value = await futexPingPong(3000);
      const c = runForNumber(compileC("pingpong_futex"), ["20000"]);
      return {
        value,
        comparisons: [{ baselineName: "C futex ping-pong", baseline: c, goal: { max: 2 } }],
      };
    },
  },
  {
    name: "wait/notify round trip between two processes, waitAsync (default polling window)",
    unit: "ns/op",
    async run(): Promise<Measured> {
      const value = await futexPingPong(2000, 0.1);
      const c = runForNumber(compileC("pingpong_futex"), ["20000"]);
      const pipe = await pipePingPong(1000);
      return {
        value,
        comparisons: [
          { baselineName: "C futex ping-pong", baseline: c, goal: { max: 10 } },
          { baselineName: "pipe round trip (same runtime)", baseline: pipe, goal: { max: 1 } },
        ],
      };
    },
  },
  {
    name: "wait/notify round trip between two processes, waitAsync without polling (threads only)",
    unit: "ns/op",
    async run(): Promise<Measured> {
      const value = await futexPingPong(1000, 0);
      const pipe = await pipePingPong(1000);
      return {
        value,
        comparisons: [
          { baselineName: "pipe round trip (same runtime)", baseline: pipe, goal: { max: 1 } },
        ],
      };
    },
  },
];

/**
 * An uncontended System V semaphore lock + unlock (semop -1 then +1, both
 * with SEM_UNDO) through `SystemVSemaphoreSet.acquire`/`release`, against
 * the same two calls in C (bench/c/sysvsem_uncontended.c). Goal: at most
 * 2x C. Both sides are two system calls per pair, so C and shmkit rounds
 * alternate and the medians are compared. Also the wake-up round trip of
 * acquireAsync against a C waiter (bench/_ipc_wake.ts).
 *
 * @module
 */
import { SystemVSemaphoreSet } from "../ipc/mod.ts";
import { type Benchmark, compileC, type Measured, median, runForNumber } from "./harness.ts";
import { systemVSemaphoreWake } from "./_ipc_wake.ts";

const ITERATIONS = 100_000;
const ROUNDS = 9;

function alternate(pair: () => void): { c: number; value: number } {
  const program = compileC("sysvsem_uncontended");
  const cRounds: number[] = [];
  const jsRounds: number[] = [];
  for (let i = 0; i < ITERATIONS; i++) pair();
  for (let r = 0; r < ROUNDS; r++) {
    cRounds.push(runForNumber(program, [String(ITERATIONS), "1"]));
    const start = performance.now();
    for (let i = 0; i < ITERATIONS; i++) pair();
    jsRounds.push(((performance.now() - start) * 1e6) / ITERATIONS);
  }
  return { c: median(cRounds), value: median(jsRounds) };
}

const BASELINE = "C semop(-1, SEM_UNDO) + semop(+1, SEM_UNDO)";

/** The System V semaphore benchmarks. */
export const benchmarks: Benchmark[] = [
  {
    name: "System V semaphore: acquire() + release(), uncontended, SEM_UNDO",
    unit: "ns/op",
    run(): Promise<Measured> {
      const set = SystemVSemaphoreSet.create(1, { initial: 1 });
      try {
        const { c, value } = alternate(() => {
          set.acquire();
          set.release();
        });
        return Promise.resolve({
          value,
          comparisons: [{ baselineName: BASELINE, baseline: c, goal: { max: 2.0 } }],
        });
      } finally {
        set.remove();
      }
    },
  },
  {
    name: "System V semaphore: operate([-1]) + operate([+1]), uncontended, SEM_UNDO",
    unit: "ns/op",
    run(): Promise<Measured> {
      const set = SystemVSemaphoreSet.create(1, { initial: 1 });
      const down = [{ index: 0, delta: -1, undo: true }];
      const up = [{ index: 0, delta: 1, undo: true }];
      try {
        const { c, value } = alternate(() => {
          set.operate(down);
          set.operate(up);
        });
        return Promise.resolve({
          value,
          comparisons: [{ baselineName: BASELINE, baseline: c, goal: { max: 2.0 } }],
        });
      } finally {
        set.remove();
      }
    },
  },
  {
    name: "System V semaphore: acquireAsync() woken by semop from a C process, round trip",
    unit: "ns/op",
    async run(): Promise<Measured> {
      const { value, c } = await systemVSemaphoreWake(300);
      return {
        value,
        comparisons: [{
          baselineName: "C waiter blocked in semop, same peer (loose goal, recorded)",
          baseline: c,
          goal: { max: 10 },
        }],
      };
    },
  },
];

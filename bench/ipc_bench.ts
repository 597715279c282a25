/**
 * The ipc/ primitives, uncontended: NamedSemaphore wait+post and
 * PthreadMutex lock+unlock against the same pair of calls in C, compiled on
 * the spot and run in the same run.
 *
 * @module
 */
import { Mapping } from "../mod.ts";
import { NamedSemaphore, PthreadMutex } from "../ipc/mod.ts";
import { type Benchmark, compileC, type Measured, nsPerOp, runForNumber } from "./harness.ts";

/** The ipc benchmarks. */
export const benchmarks: Benchmark[] = [
  {
    name: "NamedSemaphore wait+post, uncontended",
    unit: "ns/op",
    run(): Promise<Measured> {
      using sem = NamedSemaphore.create({ value: 1 });
      let counter = 0;
      const value = nsPerOp(() => {
        sem.wait();
        counter++;
        sem.post();
      }, 1_000_000);
      if (counter === 0) throw new Error("Cannot bench: nothing ran");
      const c = runForNumber(compileC("ipc_uncontended"), ["sem"]);
      return Promise.resolve({
        value,
        comparisons: [{ baselineName: "C sem_wait+sem_post", baseline: c, goal: { max: 2 } }],
      });
    },
  },
  {
    name: "PthreadMutex lock+unlock, uncontended",
    unit: "ns/op",
    run(): Promise<Measured> {
      using mapping = Mapping.anonymous(4096);
      const mutex = PthreadMutex.init(mapping.view(Uint8Array, 0, PthreadMutex.size));
      const counter = mapping.view(Int32Array, 64, 1);
      const value = nsPerOp(() => {
        mutex.lock();
        counter[0]!++;
        mutex.unlock();
      }, 1_000_000);
      const c = runForNumber(compileC("ipc_uncontended"), ["pthread"]);
      return Promise.resolve({
        value,
        comparisons: [{
          baselineName: "C pthread_mutex_lock+unlock, process-shared, robust, errorcheck",
          baseline: c,
          goal: { max: 2 },
        }],
      });
    },
  },
];

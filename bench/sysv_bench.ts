/**
 * A System V segment's whole life per iteration (shmget + shmat + write +
 * shmdt + IPC_RMID), through shmkit's safe API and through its thin
 * wrappers, against the same calls in C (bench/c/sysv_cycle.c).
 *
 * The cycle is mostly kernel work (a shmem file made, mapped, faulted,
 * unmapped, destroyed), so machine load moves both sides a lot: C and
 * shmkit rounds alternate, and the medians are compared.
 *
 * @module
 */
import { SystemVSegment } from "../mod.ts";
import { platform, shmctlRemove, shmget, unsafeShmat, unsafeShmdt, unsafeView } from "../raw.ts";
import { type Benchmark, compileC, type Measured, median, runForNumber } from "./harness.ts";

const C = platform.constants;
const SIZE = 4096;
const ITERATIONS = 5_000;
const ROUNDS = 9;

/** Alternates rounds of the C program and of `cycle`; median ns/op of each. */
function alternate(cycle: () => void): { c: number; value: number } {
  const program = compileC("sysv_cycle");
  const cRounds: number[] = [];
  const jsRounds: number[] = [];
  for (let i = 0; i < ITERATIONS; i++) cycle();
  for (let r = 0; r < ROUNDS; r++) {
    cRounds.push(runForNumber(program, [String(SIZE), String(ITERATIONS), "1"]));
    const start = performance.now();
    for (let i = 0; i < ITERATIONS; i++) cycle();
    jsRounds.push(((performance.now() - start) * 1e6) / ITERATIONS);
  }
  return { c: median(cRounds), value: median(jsRounds) };
}

const BASELINE = "C shmget+shmat+write+shmdt+IPC_RMID";

/** The System V benchmarks. */
export const benchmarks: Benchmark[] = [
  {
    name: "System V cycle: SystemVSegment.create + attach + write + detach + remove (4 KiB)",
    unit: "ns/op",
    run(): Promise<Measured> {
      let n = 0;
      const { c, value } = alternate(() => {
        const segment = SystemVSegment.create(SIZE);
        const attachment = segment.attach();
        attachment.view(Uint32Array)[0] = n++;
        attachment.detach();
        segment.remove();
      });
      return Promise.resolve({
        value,
        comparisons: [{ baselineName: BASELINE, baseline: c, goal: { max: 1.5 } }],
      });
    },
  },
  {
    name:
      "System V cycle through the thin wrappers: shmget + unsafeShmat + write + unsafeShmdt + shmctlRemove (4 KiB)",
    unit: "ns/op",
    run(): Promise<Measured> {
      const flags = C.IPC_CREAT | C.IPC_EXCL | 0o600;
      let n = 0;
      const { c, value } = alternate(() => {
        const id = shmget(C.IPC_PRIVATE, SIZE, flags);
        const address = unsafeShmat(id, 0, 0);
        new Uint32Array(unsafeView(address, SIZE).buffer)[0] = n++;
        unsafeShmdt(address);
        shmctlRemove(id);
      });
      return Promise.resolve({
        value,
        comparisons: [{ baselineName: BASELINE, baseline: c, goal: { max: 2.0 } }],
      });
    },
  },
];

/**
 * A POSIX shared memory object's whole life per iteration: create (shm_open
 * + posix_fallocate, which sizes it too) + map + write one page + unmap + close +
 * unlink, through shmkit's SharedMemory and through its thin wrappers,
 * against the same calls in C (bench/c/shm_cycle.c) and Python's
 * multiprocessing.shared_memory (bench/py/shm_cycle.py), all measured in the
 * same run.
 *
 * @module
 */
import { SharedMemory } from "../mod.ts";
import { closeFd, platform, posixFallocate, shmOpen, shmUnlink } from "../raw.ts";
import { unsafeLibc } from "../ffi/libc.ts";
import { unsafeView } from "../ffi/pointer.ts";
import {
  type Benchmark,
  compileC,
  type Measured,
  median,
  nsPerOp,
  runForNumber,
  runPython,
} from "./harness.ts";

const C = platform.constants;
const SIZE = 4096;
const ITERATIONS = 2_000;
const SLICES = 5;
const PYTHON_ITERATIONS = 1_000;

/**
 * Measures `cycle` and the C baseline in alternating slices and returns the
 * median of each, so that load from other processes on the machine falls on
 * both sides alike; Python once (it is far off either way).
 */
function measure(cycle: () => void): { value: number; c: number; python: number } {
  const exe = compileC("shm_cycle");
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let slice = 0; slice < SLICES; slice++) {
    theirs.push(runForNumber(exe, [String(SIZE), String(ITERATIONS), "3"]));
    ours.push(nsPerOp(cycle, ITERATIONS, 3));
  }
  const python = runPython("shm_cycle", [String(SIZE), String(PYTHON_ITERATIONS), "5"]);
  return { value: median(ours), c: median(theirs), python };
}

function benchName(): string {
  return `/shmkit-bench-${
    "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node"
  }-${unsafeLibc.getpid()}`;
}

const C_BASELINE = "C shm_open/posix_fallocate/mmap/munmap/shm_unlink";
const PYTHON_BASELINE = "Python multiprocessing.shared_memory";

/** The POSIX shared memory benchmarks. */
export const benchmarks: Benchmark[] = [
  {
    name: "POSIX shm cycle: SharedMemory.create + write a page + dispose (close + unlink), 4 KiB",
    unit: "ns/op",
    run(): Promise<Measured> {
      const name = benchName();
      let i = 0;
      const { value, c, python } = measure(() => {
        using shm = SharedMemory.create({ name, size: SIZE });
        shm.view().fill(i++ & 255);
      });
      return Promise.resolve({
        value,
        comparisons: [
          { baselineName: C_BASELINE, baseline: c, goal: { max: 1.5 } },
          { baselineName: PYTHON_BASELINE, baseline: python, goal: { max: 1 } },
        ],
      });
    },
  },
  {
    name: "POSIX shm cycle through the thin wrappers (shmOpen, posixFallocate, mmap, shmUnlink)",
    unit: "ns/op",
    run(): Promise<Measured> {
      const name = benchName();
      const flags = C.O_CREAT | C.O_EXCL | C.O_RDWR | C.O_CLOEXEC;
      let i = 0;
      const { value, c, python } = measure(() => {
        const fd = shmOpen(name, flags, 0o600);
        posixFallocate(fd, 0, SIZE);
        const address = unsafeLibc.mmap(0, SIZE, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd, 0);
        if (address === -1) throw new Error("mmap failed");
        unsafeView(address, SIZE).fill(i++ & 255);
        unsafeLibc.munmap(address, SIZE);
        closeFd(fd);
        shmUnlink(name);
      });
      return Promise.resolve({
        value,
        comparisons: [
          { baselineName: C_BASELINE, baseline: c, goal: { max: 2.0 } },
          { baselineName: PYTHON_BASELINE, baseline: python, goal: { max: 1 } },
        ],
      });
    },
  },
];

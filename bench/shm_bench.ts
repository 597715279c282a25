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
import { backend } from "../ffi/libc.ts";
import { guardRange } from "../core/_sigbus_guard.ts";
import { quarantine } from "../core/_quarantine.ts";
import { statFd, statPath } from "../core/_io.ts";
import { fileSizeLimit } from "../shm/_backing.ts";
import { registerRemoval, unregisterCleanup } from "../shm/cleanup.ts";
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
const WARM_UP = 24_000;
const SLICES = 6; // one per step, so each row runs once in each place
const PYTHON_ITERATIONS = 1_000;

function benchName(): string {
  return `/shmkit-bench-${
    "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node"
  }-${unsafeLibc.getpid()}`;
}

const encoder = new TextEncoder();
const STAT = platform.structs.stat;
const statBuffer = new Uint8Array(STAT.size);
const rlimit = new Uint8Array(platform.structs.rlimit.size);
const held: number[] = [];

/** Unmaps the held zero pages, touching ones in one call (as core/_quarantine.ts does). */
function unmapHeld(): void {
  held.sort((a, b) => a - b);
  let start = held[0]!;
  let end = start + SIZE;
  for (let k = 1; k < held.length; k++) {
    const address = held[k]!;
    if (address === end) {
      end += SIZE;
      continue;
    }
    unsafeLibc.munmap(start, end - start);
    start = address;
    end = address + SIZE;
  }
  unsafeLibc.munmap(start, end - start);
  held.length = 0;
}

/**
 * The floor of any safe cycle: the system calls SharedMemory.create +
 * dispose makes, straight through the runtime's FFI with preallocated
 * buffers, each result checked, and nothing else (no views tracked, no
 * finalizers, no cleaner ledger, no SIGBUS guard). Each call is there for a
 * guarantee (see bench/c/cycle_floor.c): getrlimit (no SIGXFSZ death),
 * fstat (identity for the cleaner and unlink), MAP_FIXED zero pages instead
 * of munmap (the close quarantine; unmapped 64 at a time, touching ones at
 * once), stat of /dev/shm/NAME (never unlink another object under the name).
 * The creator record (fsetxattr) of an object disposed in the job that
 * created it is never written, so it is not here.
 */
export function floorCycle(name: Uint8Array, path: Uint8Array, value: number): void {
  const libc = unsafeLibc;
  if (libc.getrlimit(C.RLIMIT_FSIZE, rlimit) === -1) throw new Error("getrlimit failed");
  const fd = libc.shm_open(name, C.O_CREAT | C.O_EXCL | C.O_RDWR | C.O_CLOEXEC, 0o600);
  if (fd === -1) throw new Error("shm_open failed");
  if (libc.posix_fallocate(fd, 0, SIZE) !== 0) throw new Error("posix_fallocate failed");
  if (libc.fstat(fd, statBuffer) === -1) throw new Error("fstat failed");
  const address = libc.mmap(0, SIZE, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd, 0);
  if (address === -1) throw new Error("mmap failed");
  unsafeView(address, SIZE).fill(value);
  const zero = libc.mmap(
    address,
    SIZE,
    C.PROT_READ | C.PROT_WRITE,
    C.MAP_PRIVATE | C.MAP_ANONYMOUS | C.MAP_FIXED | C.MAP_NORESERVE,
    -1,
    0,
  );
  if (zero === -1) throw new Error("mmap MAP_FIXED failed");
  if (held.push(address) === 64) unmapHeld();
  if (libc.close(fd) === -1) throw new Error("close failed");
  if (libc.stat(path, statBuffer) === -1) throw new Error("stat failed");
  if (libc.shm_unlink(name) === -1) throw new Error("shm_unlink failed");
}

const finalizers = new FinalizationRegistry<number>((fd) => unsafeLibc.close(fd));
const tags = new WeakMap<ArrayBuffer, object>();

/**
 * The floor's system calls plus the least bookkeeping the safe cycle's
 * guarantees need, each done once with shmkit's own primitives and nothing
 * around them (no classes, option checks, name checks or encoding):
 * the RLIMIT_FSIZE comparison, the identity read from fstat, one SIGBUS guard
 * slot, one finalizer registration (the fd, if the object is dropped), the
 * exit task plus the cleaner's ledger line (registerRemoval), one tracked
 * buffer (a tag, detached with transfer(0) at close), the close quarantine
 * entry, and the identity check before unlink.
 */
export function leastCycle(name: Uint8Array, path: Uint8Array, text: string, value: number): void {
  const libc = unsafeLibc;
  if (fileSizeLimit() < SIZE) throw new Error("RLIMIT_FSIZE too low");
  const fd = libc.shm_open(name, C.O_CREAT | C.O_EXCL | C.O_RDWR | C.O_CLOEXEC, 0o600);
  if (fd === -1) throw new Error("shm_open failed");
  if (libc.posix_fallocate(fd, 0, SIZE) !== 0) throw new Error("posix_fallocate failed");
  const { dev, ino } = statFd(fd);
  const address = libc.mmap(0, SIZE, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd, 0);
  if (address === -1) throw new Error("mmap failed");
  const guard = guardRange(address, SIZE, C.PROT_READ | C.PROT_WRITE);
  const owner = {};
  finalizers.register(owner, fd, owner);
  registerRemoval(text, () => {
    const now = statPath(path);
    if (now !== undefined && now.dev === dev && now.ino === ino) libc.shm_unlink(name);
  }, { kind: "shm", name: text, dev, ino });
  const buffer = backend.arrayBuffer(address, SIZE);
  tags.set(buffer, owner);
  new Uint8Array(buffer).fill(value);
  // dispose: detach, unguard, quarantine, close, unlink if still ours
  buffer.transfer(0);
  finalizers.unregister(owner);
  guard?.release();
  quarantine(address, SIZE);
  if (libc.close(fd) === -1) throw new Error("close failed");
  unregisterCleanup(text);
  const now = statPath(path);
  if (now === undefined || now.dev !== dev || now.ino !== ino) throw new Error("not ours");
  if (libc.shm_unlink(name) === -1) throw new Error("shm_unlink failed");
}

interface Figures {
  /** The bare C cycle (bench/c/shm_cycle.c). */
  readonly c: number;
  /** The C cycle with the safe cycle's system calls (bench/c/cycle_floor.c "safe"). */
  readonly cFloor: number;
  readonly safe: number;
  readonly thin: number;
  readonly floor: number;
  /** The floor plus the least bookkeeping the guarantees need. */
  readonly least: number;
  readonly python: number;
}

let figures: Figures | undefined;

/**
 * Measures every cycle in alternating slices (C, C with the safe cycle's
 * calls, the safe cycle, the thin one, the floor, the least bookkeeping),
 * each slice in a rotated order, and keeps the medians, so that load from
 * other processes and the order fall on all alike and every row compares
 * figures of the same rounds; Python once (it is far off either way).
 */
function measure(): Figures {
  if (figures !== undefined) return figures;
  const exe = compileC("shm_cycle");
  const floorExe = compileC("cycle_floor");
  const name = benchName();
  const encodedName = encoder.encode(name + "\0");
  const path = encoder.encode(`/dev/shm${name}\0`);
  const flags = C.O_CREAT | C.O_EXCL | C.O_RDWR | C.O_CLOEXEC;
  let i = 0;
  const cycles = {
    safe: () => {
      using shm = SharedMemory.create({ name, size: SIZE });
      shm.view().fill(i++ & 255);
    },
    thin: () => {
      const fd = shmOpen(name, flags, 0o600);
      posixFallocate(fd, 0, SIZE);
      const address = unsafeLibc.mmap(0, SIZE, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd, 0);
      if (address === -1) throw new Error("mmap failed");
      unsafeView(address, SIZE).fill(i++ & 255);
      unsafeLibc.munmap(address, SIZE);
      closeFd(fd);
      shmUnlink(name);
    },
    floor: () => floorCycle(encodedName, path, i++ & 255),
    least: () => leastCycle(encodedName, path, name, i++ & 255),
  };
  const samples: Record<"c" | "cFloor" | "safe" | "thin" | "floor" | "least", number[]> = {
    c: [],
    cFloor: [],
    safe: [],
    thin: [],
    floor: [],
    least: [],
  };
  const steps: [keyof typeof samples, () => number][] = [
    ["c", () => runForNumber(exe, [String(SIZE), String(ITERATIONS), "3"])],
    ["cFloor", () => runForNumber(floorExe, ["3", String(ITERATIONS), "safe"])],
    ...Object.entries(cycles).map(([key, cycle]): [keyof typeof samples, () => number] => [
      key as keyof typeof cycles,
      () => nsPerOp(cycle, ITERATIONS, 3),
    ]),
  ];
  // Steady state first: V8 finishes optimizing the safe cycle's functions
  // (TurboFan) only after ~16 000 cycles, and JSC's JIT thread works on it
  // for ~25 000; a slice is 8 000 cycles, so without this the first slices
  // measured the safe row (the most JS) in lower tiers than the rest.
  for (const cycle of Object.values(cycles)) {
    for (let k = 0; k < WARM_UP; k++) cycle();
  }
  // Each slice starts one step later, so that no row always runs in the same
  // place (e.g. right after the C processes, or after the most garbage).
  for (let slice = 0; slice < SLICES; slice++) {
    for (let k = 0; k < steps.length; k++) {
      const [key, step] = steps[(slice + k) % steps.length]!;
      samples[key].push(step());
    }
  }
  const python = runPython("shm_cycle", [String(SIZE), String(PYTHON_ITERATIONS), "5"]);
  figures = {
    c: median(samples.c),
    cFloor: median(samples.cFloor),
    safe: median(samples.safe),
    thin: median(samples.thin),
    floor: median(samples.floor),
    least: median(samples.least),
    python,
  };
  return figures;
}

const C_BASELINE = "C shm_open/posix_fallocate/mmap/munmap/shm_unlink";
const PYTHON_BASELINE = "Python multiprocessing.shared_memory";
const FLOOR_BASELINE =
  "the safe cycle's system calls through this runtime's raw FFI, no bookkeeping (the floor)";
const LEAST_BASELINE =
  "the floor plus the least bookkeeping our guarantees need (bench/shm_bench.ts leastCycle)";
const C_FLOOR_BASELINE = "C with the safe cycle's system calls (bench/c/cycle_floor.c)";

/** The POSIX shared memory benchmarks. */
export const benchmarks: Benchmark[] = [
  {
    name: "POSIX shm cycle: SharedMemory.create + write a page + dispose (close + unlink), 4 KiB",
    unit: "ns/op",
    run(): Promise<Measured> {
      const { safe, c, floor, least, python } = measure();
      return Promise.resolve({
        value: safe,
        comparisons: [
          { baselineName: C_BASELINE, baseline: c, goal: { max: 1.5 } },
          { baselineName: FLOOR_BASELINE, baseline: floor, goal: { max: 1.5 } },
          { baselineName: LEAST_BASELINE, baseline: least, goal: { max: 1.5 } },
          { baselineName: PYTHON_BASELINE, baseline: python, goal: { max: 1 } },
        ],
      });
    },
  },
  {
    name: "POSIX shm cycle through the thin wrappers (shmOpen, posixFallocate, mmap, shmUnlink)",
    unit: "ns/op",
    run(): Promise<Measured> {
      const { thin, c, python } = measure();
      return Promise.resolve({
        value: thin,
        comparisons: [
          { baselineName: C_BASELINE, baseline: c, goal: { max: 2.0 } },
          { baselineName: PYTHON_BASELINE, baseline: python, goal: { max: 1 } },
        ],
      });
    },
  },
  {
    name:
      "POSIX shm cycle floor: the safe cycle's 9 system calls (getrlimit, shm_open, posix_fallocate, fstat, mmap, MAP_FIXED quarantine, close, stat, shm_unlink) through the raw FFI, no bookkeeping; over 1.5x C, no safe implementation meets the safe row's goal here",
    unit: "ns/op",
    run(): Promise<Measured> {
      const { floor, c, cFloor } = measure();
      return Promise.resolve({
        value: floor,
        comparisons: [
          { baselineName: C_BASELINE, baseline: c, goal: { max: 1.5 } },
          { baselineName: C_FLOOR_BASELINE, baseline: cFloor, goal: { max: 1.5 } },
        ],
      });
    },
  },
  {
    name:
      "POSIX shm cycle in C with the safe cycle's system calls (bench/c/cycle_floor.c): the floor without any FFI",
    unit: "ns/op",
    run(): Promise<Measured> {
      const { cFloor, c } = measure();
      return Promise.resolve({
        value: cFloor,
        comparisons: [{ baselineName: C_BASELINE, baseline: c, goal: { max: 1.5 } }],
      });
    },
  },
  {
    name:
      "POSIX shm cycle, least bookkeeping: the floor's 9 system calls plus the least bookkeeping our guarantees need (RLIMIT_FSIZE comparison, identity read, one SIGBUS guard slot, one finalizer, exit task + cleaner ledger line, one tagged buffer detached at close, quarantine entry, identity check before unlink), no classes or option checks; over 1.5x C, no safe implementation meets the safe row's goal here",
    unit: "ns/op",
    run(): Promise<Measured> {
      const { least, c, floor } = measure();
      return Promise.resolve({
        value: least,
        comparisons: [
          { baselineName: C_BASELINE, baseline: c, goal: { max: 1.5 } },
          { baselineName: FLOOR_BASELINE, baseline: floor, goal: { max: 1.5 } },
        ],
      });
    },
  },
];

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
import { backend, unsafeLibc } from "../ffi/libc.ts";
import { quarantine } from "../core/_quarantine.ts";
import { type Benchmark, compileC, type Measured, median, runForNumber } from "./harness.ts";

const C = platform.constants;
const SIZE = 4096;
const ITERATIONS = 5_000;
const ROUNDS = 9;
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
 * The floor of any safe cycle: the system calls SystemVSegment.create +
 * attach + detach + remove make, straight through the runtime's FFI, each
 * result checked, nothing else (no views tracked, no finalizers, no live
 * set). shmdt is replaced by anonymous MAP_FIXED zero pages over the range
 * (the close quarantine: I/O still in flight on a view lands in zeros, not
 * in whatever is mapped there next), unmapped 64 at a time.
 */
function floorCycle(value: number): void {
  const libc = unsafeLibc;
  const id = libc.shmget(C.IPC_PRIVATE, SIZE, C.IPC_CREAT | C.IPC_EXCL | 0o600);
  if (id === -1) throw new Error("shmget failed");
  const address = libc.shmat(id, 0, 0);
  if (address === -1) throw new Error("shmat failed");
  new Uint32Array(unsafeView(address, SIZE).buffer)[0] = value;
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
  if (libc.shmctl(id, C.IPC_RMID, null) === -1) throw new Error("shmctl failed");
}

const finalizers = new FinalizationRegistry<number>(() => {});
const live = new Set<WeakRef<object>>();
const tags = new WeakMap<ArrayBuffer, object>();

/**
 * The floor's system calls plus the least bookkeeping the safe cycle's
 * guarantees need, each once, with nothing around them: one WeakRef in a
 * live set and one finalizer (a dropped attachment is detached, and live ones
 * are counted against kernel.shmmni), one tagged buffer detached with
 * transfer(0), and the close quarantine entry. No SIGBUS guard: a segment
 * can't shrink.
 */
export function leastCycle(value: number): void {
  const libc = unsafeLibc;
  const id = libc.shmget(C.IPC_PRIVATE, SIZE, C.IPC_CREAT | C.IPC_EXCL | 0o600);
  if (id === -1) throw new Error("shmget failed");
  const address = libc.shmat(id, 0, 0);
  if (address === -1) throw new Error("shmat failed");
  const owner = {};
  const ref = new WeakRef(owner);
  live.add(ref);
  finalizers.register(owner, address, owner);
  const buffer = backend.arrayBuffer(address, SIZE);
  tags.set(buffer, owner);
  new Uint32Array(buffer)[0] = value;
  // detach, then remove
  buffer.transfer(0);
  finalizers.unregister(owner);
  live.delete(ref);
  quarantine(address, SIZE);
  if (libc.shmctl(id, C.IPC_RMID, null) === -1) throw new Error("shmctl failed");
}

interface Figures {
  readonly least: number;
  readonly c: number;
  readonly cFloor: number;
  readonly safe: number;
  readonly thin: number;
  readonly floor: number;
}

let figures: Figures | undefined;

/**
 * Alternates rounds of the C programs and of each cycle, and keeps the
 * medians, so every row compares figures of the same rounds.
 */
function measure(): Figures {
  if (figures !== undefined) return figures;
  const program = compileC("sysv_cycle");
  const floorProgram = compileC("cycle_floor");
  let n = 0;
  const cycles = {
    safe: () => {
      const segment = SystemVSegment.create(SIZE);
      const attachment = segment.attach();
      attachment.view(Uint32Array)[0] = n++;
      attachment.detach();
      segment.remove();
    },
    thin: () => {
      const id = shmget(C.IPC_PRIVATE, SIZE, C.IPC_CREAT | C.IPC_EXCL | 0o600);
      const address = unsafeShmat(id, 0, 0);
      new Uint32Array(unsafeView(address, SIZE).buffer)[0] = n++;
      unsafeShmdt(address);
      shmctlRemove(id);
    },
    floor: () => floorCycle(n++),
    least: () => leastCycle(n++),
  };
  const samples: Record<keyof Figures, number[]> = {
    c: [],
    cFloor: [],
    safe: [],
    thin: [],
    floor: [],
    least: [],
  };
  for (const cycle of Object.values(cycles)) {
    for (let i = 0; i < ITERATIONS; i++) cycle();
  }
  for (let r = 0; r < ROUNDS; r++) {
    samples.c.push(runForNumber(program, [String(SIZE), String(ITERATIONS), "1"]));
    samples.cFloor.push(runForNumber(floorProgram, ["1", String(ITERATIONS), "sysv-quarantine"]));
    for (const [key, cycle] of Object.entries(cycles)) {
      const start = performance.now();
      for (let i = 0; i < ITERATIONS; i++) cycle();
      samples[key as keyof typeof cycles].push(
        ((performance.now() - start) * 1e6) / ITERATIONS,
      );
    }
  }
  figures = {
    c: median(samples.c),
    cFloor: median(samples.cFloor),
    safe: median(samples.safe),
    thin: median(samples.thin),
    floor: median(samples.floor),
    least: median(samples.least),
  };
  return figures;
}

const BASELINE = "C shmget+shmat+write+shmdt+IPC_RMID";
const FLOOR_BASELINE =
  "the safe cycle's system calls through this runtime's raw FFI, no bookkeeping (the floor)";

const LEAST_BASELINE =
  "the floor plus the least bookkeeping our guarantees need (bench/sysv_bench.ts leastCycle)";

/** The System V benchmarks. */
export const benchmarks: Benchmark[] = [
  {
    name: "System V cycle: SystemVSegment.create + attach + write + detach + remove (4 KiB)",
    unit: "ns/op",
    run(): Promise<Measured> {
      const { c, floor, least, safe } = measure();
      return Promise.resolve({
        value: safe,
        comparisons: [
          { baselineName: BASELINE, baseline: c, goal: { max: 1.5 } },
          { baselineName: FLOOR_BASELINE, baseline: floor, goal: { max: 1.5 } },
          { baselineName: LEAST_BASELINE, baseline: least, goal: { max: 1.5 } },
        ],
      });
    },
  },
  {
    name:
      "System V cycle through the thin wrappers: shmget + unsafeShmat + write + unsafeShmdt + shmctlRemove (4 KiB)",
    unit: "ns/op",
    run(): Promise<Measured> {
      const { c, thin } = measure();
      return Promise.resolve({
        value: thin,
        comparisons: [{ baselineName: BASELINE, baseline: c, goal: { max: 2.0 } }],
      });
    },
  },
  {
    name:
      "System V cycle floor: the safe cycle's system calls (shmget, shmat, MAP_FIXED quarantine instead of shmdt, IPC_RMID) through the raw FFI, no bookkeeping; over 1.5x C, no safe implementation meets the safe row's goal here",
    unit: "ns/op",
    run(): Promise<Measured> {
      const { c, cFloor, floor } = measure();
      return Promise.resolve({
        value: floor,
        comparisons: [
          { baselineName: BASELINE, baseline: c, goal: { max: 1.5 } },
          {
            baselineName: "C with the safe cycle's system calls (bench/c/cycle_floor.c)",
            baseline: cFloor,
            goal: { max: 1.5 },
          },
        ],
      });
    },
  },
  {
    name:
      "System V cycle, least bookkeeping: the floor's system calls plus the least bookkeeping our guarantees need (one WeakRef in the live set, one finalizer, one tagged buffer detached at detach, quarantine entry), no classes or option checks; over 1.5x C, no safe implementation meets the safe row's goal here",
    unit: "ns/op",
    run(): Promise<Measured> {
      const { c, floor, least } = measure();
      return Promise.resolve({
        value: least,
        comparisons: [
          { baselineName: BASELINE, baseline: c, goal: { max: 1.5 } },
          { baselineName: FLOOR_BASELINE, baseline: floor, goal: { max: 1.5 } },
        ],
      });
    },
  },
];

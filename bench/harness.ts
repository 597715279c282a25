/**
 * The benchmark harness: timing loops, C baselines compiled on the spot, and
 * Python baselines, so every ratio compares figures from the same run.
 *
 * A benchmark module (`bench/*_bench.ts`) exports `benchmarks: Benchmark[]`.
 * `scripts/bench.ts` runs every module under Deno, Bun and Node and writes
 * `bench-results.json`.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";

/** One measured figure, as written to bench-results.json. */
export interface BenchResult {
  /** What was measured. */
  readonly name: string;
  /** "deno", "bun", "node", or the baseline's own runtime ("c", "python"). */
  readonly runtime: string;
  /** The figure. */
  readonly value: number;
  /** Its unit, e.g. "ns/op", "us/op", "GB/s". */
  readonly unit: string;
  /** What the figure is compared with. */
  readonly baselineName: string;
  /** The baseline's figure, measured in the same run. */
  readonly baseline: number;
  /** value / baseline. */
  readonly ratio: number;
  /** The goal, e.g. "ratio <= 1.10". */
  readonly goal: string;
  /** Whether the goal was met in this run. */
  readonly met: boolean;
}

/** A figure and how to judge it against a baseline. */
export interface Comparison {
  /** Name of the baseline ("C memcpy", "raw FFI symbol"). */
  readonly baselineName: string;
  /** The baseline's figure, same unit. */
  readonly baseline: number;
  /** The goal on value/baseline: at most (`max`) or at least (`min`). */
  readonly goal: { readonly max: number } | { readonly min: number };
}

/** What a benchmark's run() returns: shmkit's figure and its comparisons. */
export interface Measured {
  /** shmkit's figure. */
  readonly value: number;
  /** The baselines it is judged against. */
  readonly comparisons: Comparison[];
}

/** A benchmark: measures shmkit's figure and its baselines in one go. */
export interface Benchmark {
  /** What is measured. */
  readonly name: string;
  /** Unit of the figures. */
  readonly unit: string;
  /** Measures; returns shmkit's figure and the comparisons. */
  run(): Promise<Measured>;
}

/**
 * Times `fn` and returns the median nanoseconds per call over `rounds`
 * rounds of `iterations` calls, after a warm-up round.
 */
export function nsPerOp(fn: () => unknown, iterations: number, rounds = 7): number {
  for (let i = 0; i < iterations; i++) fn();
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = performance.now();
    for (let i = 0; i < iterations; i++) fn();
    samples.push(((performance.now() - start) * 1e6) / iterations);
  }
  return median(samples);
}

/**
 * Times a baseline and a candidate in alternating rounds, so that drift in
 * machine load hits both alike. Returns median ns/op of each, by the wall
 * clock or in this process's CPU time (user + system: at a few hundred ns a
 * call, waiting for a core on a loaded machine swung single wall-clock
 * rounds 0.4-2.2x, CPU-time rounds 0.9-1.2x).
 */
export function nsPerOpPair(
  baseline: () => unknown,
  candidate: () => unknown,
  iterations: number,
  rounds = 9,
  clock: "wall" | "cpu" = "wall",
): { baseline: number; value: number } {
  const time = clock === "wall"
    ? (fn: () => unknown): number => {
      const start = performance.now();
      for (let i = 0; i < iterations; i++) fn();
      return ((performance.now() - start) * 1e6) / iterations;
    }
    : (fn: () => unknown): number => {
      const start = process.cpuUsage();
      for (let i = 0; i < iterations; i++) fn();
      const used = process.cpuUsage(start);
      return ((used.user + used.system) * 1000) / iterations;
    };
  time(baseline);
  time(candidate);
  const a: number[] = [];
  const b: number[] = [];
  for (let r = 0; r < rounds; r++) {
    a.push(time(baseline));
    b.push(time(candidate));
  }
  return { baseline: median(a), value: median(b) };
}

/** The async twin of {@linkcode nsPerOp}. */
export async function nsPerOpAsync(
  fn: () => Promise<unknown>,
  iterations: number,
  rounds = 7,
): Promise<number> {
  for (let i = 0; i < iterations; i++) await fn();
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = performance.now();
    for (let i = 0; i < iterations; i++) await fn();
    samples.push(((performance.now() - start) * 1e6) / iterations);
  }
  return median(samples);
}

/** The median of some numbers. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const CACHE = join(import.meta.dirname ?? ".", "..", ".cache", "bench");

/**
 * Compiles a C baseline (`bench/c/<name>.c`) with the machine's cc at -O2,
 * once per run, and returns the executable's path.
 */
export function compileC(name: string, extraFlags: string[] = []): string {
  mkdirSync(CACHE, { recursive: true });
  const source = join(import.meta.dirname ?? ".", "c", `${name}.c`);
  const exe = join(CACHE, name);
  execFileSync("cc", ["-O2", "-o", exe, source, ...extraFlags], { stdio: "inherit" });
  return exe;
}

/** Runs a program and parses the number it prints last. */
export function runForNumber(program: string, args: string[] = []): number {
  const out = execFileSync(program, args, { encoding: "utf8" }).trim().split(/\s+/);
  const value = Number(out[out.length - 1]);
  if (!Number.isFinite(value)) throw new Error(`Cannot read a figure from ${program}: ${out}`);
  return value;
}

/** Runs a Python baseline script (`bench/py/<name>.py`) and parses its figure. */
export function runPython(name: string, args: string[] = []): number {
  return runForNumber("python3", [join(import.meta.dirname ?? ".", "py", `${name}.py`), ...args]);
}

/** Whether a goal holds for a ratio. */
export function meets(ratio: number, goal: Comparison["goal"]): boolean {
  return "max" in goal ? ratio <= goal.max : ratio >= goal.min;
}

/** Describes a goal: "ratio <= 1.10". */
export function describeGoal(goal: Comparison["goal"]): string {
  return "max" in goal ? `ratio <= ${goal.max}` : `ratio >= ${goal.min}`;
}

/** Writes a scratch file under .cache/bench and returns its path. */
export function scratchFile(name: string, contents: string | Uint8Array): string {
  mkdirSync(CACHE, { recursive: true });
  const path = join(CACHE, name);
  writeFileSync(path, contents);
  return path;
}

/** Whether a program exists at a path. */
export function exists(path: string): boolean {
  return existsSync(path);
}

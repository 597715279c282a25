/**
 * Combines several runs of the benchmarks into one row per figure: the run
 * whose ratio is the median of that figure's runs. On a small VM a ratio
 * within a few percent of its goal lands on either side from run to run;
 * the median run is the figure a goal is judged on (`npm run bench --
 * --runs=3`).
 *
 * @module
 */
import type { BenchResult } from "../bench/harness.ts";

/** A figure's median run, with every run's ratio beside it. */
export interface MedianResult extends BenchResult {
  /** How many runs measured the figure. */
  readonly runs: number;
  /** Each run's ratio, in run order; null for a run where the figure failed. */
  readonly ratios: readonly (number | null)[];
}

/**
 * The identity of a figure across runs: its benchmark, runtime and the
 * position of its comparison. Not the baseline's name, which may carry a
 * measured detail (the thread count of a spawn baseline).
 */
function keysOf(run: readonly BenchResult[]): string[] {
  const seen = new Map<string, number>();
  return run.map((r) => {
    const base = `${r.runtime}\u0000${r.name}`;
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    return `${base}\u0000${n}`;
  });
}

/**
 * One row per figure, in the order the figures first appear: the row of
 * the run with the median ratio (the lower middle of an even count), so its
 * value, baseline, ratio and `met` come from one run. A figure that failed
 * in some runs is judged on the runs where it was measured; one that
 * failed in every run keeps its first failure.
 *
 * @throws {RangeError} When `runs` is empty.
 */
export function medianRuns(runs: readonly (readonly BenchResult[])[]): MedianResult[] {
  if (runs.length === 0) throw new RangeError("Cannot combine benchmark runs: there are none");
  const byKey = new Map<string, (BenchResult | undefined)[]>();
  runs.forEach((run, index) => {
    const keys = keysOf(run);
    run.forEach((result, i) => {
      let rows = byKey.get(keys[i]!);
      if (rows === undefined) byKey.set(keys[i]!, rows = new Array(runs.length).fill(undefined));
      rows[index] = result;
    });
  });
  return [...byKey.values()].map((rows) => {
    const present = rows.filter((r): r is BenchResult => r !== undefined);
    const measured = present.filter((r) => Number.isFinite(r.ratio)).sort((a, b) =>
      a.ratio - b.ratio
    );
    const chosen = measured.length > 0 ? measured[(measured.length - 1) >> 1]! : present[0]!;
    return {
      ...chosen,
      runs: present.length,
      ratios: rows.map((r) => r !== undefined && Number.isFinite(r.ratio) ? r.ratio : null),
    };
  });
}

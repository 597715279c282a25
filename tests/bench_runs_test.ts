/**
 * scripts/_bench_runs.ts: several benchmark runs become one row per figure,
 * the run with the median ratio.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { BenchResult } from "../bench/harness.ts";
import { medianRuns } from "../scripts/_bench_runs.ts";

function row(name: string, baselineName: string, value: number, baseline: number): BenchResult {
  const ratio = value / baseline;
  return {
    name,
    runtime: "deno",
    value,
    unit: "ns/op",
    baselineName,
    baseline,
    ratio,
    goal: "ratio <= 1.5",
    met: ratio <= 1.5,
  };
}

test("each figure is the run with its median ratio, whole: value, baseline and met from that run", () => {
  const runs = [
    [row("cycle", "C", 160, 100), row("cycle", "least row", 150, 140)],
    [row("cycle", "C", 140, 100), row("cycle", "least row", 150, 100)],
    [row("cycle", "C", 150, 100), row("cycle", "least row", 150, 120)],
  ];
  const [c, least] = medianRuns(runs);
  assert.deepEqual([c!.value, c!.baseline, c!.ratio, c!.met], [150, 100, 1.5, true]);
  assert.deepEqual(c!.ratios, [1.6, 1.4, 1.5]);
  assert.equal(c!.runs, 3);
  // The second comparison has its own median run (run 3), not run 3 because the first one had it.
  assert.deepEqual([least!.baseline, least!.ratio], [120, 1.25]);
});

test("figures match by benchmark, runtime and position, though a baseline's name changes between runs", () => {
  const runs = [
    [row("spawn", "C, 4 idle threads", 130, 100)],
    [row("spawn", "C, 3 idle threads", 110, 100)],
    [row("spawn", "C, 4 idle threads", 120, 100)],
  ];
  const out = medianRuns(runs);
  assert.equal(out.length, 1);
  assert.equal(out[0]!.baselineName, "C, 4 idle threads");
  assert.equal(out[0]!.ratio, 1.2);
});

test("an even count takes the lower middle", () => {
  const out = medianRuns([170, 120, 160, 130].map((v) => [row("cycle", "C", v, 100)]));
  assert.equal(out[0]!.ratio, 1.3);
});

test("a failed run is left out and shown as null; a figure failed in every run stays failed", () => {
  const failed: BenchResult = { ...row("cycle", "error", NaN, NaN), met: false };
  const out = medianRuns([
    [row("cycle", "C", 170, 100)],
    [failed],
    [row("cycle", "C", 120, 100)],
    [row("cycle", "C", 160, 100)],
  ]);
  assert.equal(out[0]!.ratio, 1.6);
  assert.equal(out[0]!.met, false);
  assert.deepEqual(out[0]!.ratios, [1.7, null, 1.2, 1.6]);
  const allFailed = medianRuns([[failed], [failed]]);
  assert.equal(allFailed[0]!.met, false);
  assert.ok(Number.isNaN(allFailed[0]!.ratio));
});

test("a figure missing from some runs keeps its order and counts only the runs that have it", () => {
  const out = medianRuns([
    [row("a", "C", 100, 100), row("b", "C", 100, 100)],
    [row("b", "C", 200, 100)],
  ]);
  assert.deepEqual(out.map((r) => r.name), ["a", "b"]);
  assert.deepEqual([out[0]!.runs, out[1]!.runs], [1, 2]);
  assert.deepEqual(out[0]!.ratios, [1, null]);
  assert.throws(() => medianRuns([]), RangeError);
});

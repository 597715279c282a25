/**
 * Runs every benchmark under Deno, Bun and Node, writes bench-results.json
 * and the table in BENCHMARKS.md (between its markers).
 *
 * Usage: deno run -A scripts/bench.ts [--only=deno|bun|node] [--runs=N] [bench files...]
 *
 * `--only` measures one runtime and keeps the other runtimes' rows from
 * bench-results.json. `--runs=N` (1 to 9, default 1) measures every runtime
 * N times, the runtimes taking turns, and keeps each figure's median run
 * with all N ratios beside it (scripts/_bench_runs.ts).
 *
 * @module
 */
import type { BenchResult } from "../bench/harness.ts";
import { type MedianResult, medianRuns } from "./_bench_runs.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const BIN = `${ROOT}/node_modules/.bin`;
const files = Deno.args.filter((a) => !a.startsWith("--"));
const only = Deno.args.find((a) => a.startsWith("--only="))?.slice(7);
const RUNTIMES = ["deno", "bun", "node"] as const;
if (only !== undefined && !(RUNTIMES as readonly string[]).includes(only)) {
  throw new RangeError(`Cannot bench: --only takes deno, bun or node, not ${only}`);
}
const runsArgument = Deno.args.find((a) => a.startsWith("--runs="))?.slice(7) ?? "1";
const RUNS = Number(runsArgument);
if (!/^[1-9]$/.test(runsArgument)) {
  throw new RangeError(
    `Cannot bench: --runs takes a whole number from 1 to 9, not ${runsArgument}`,
  );
}

async function runIn(runtime: "deno" | "bun" | "node"): Promise<BenchResult[]> {
  const args = runtime === "deno"
    ? ["run", "-A", "--v8-flags=--expose-gc", "bench/run.ts", ...files]
    : runtime === "node"
    ? ["--disable-warning=ExperimentalWarning", "--expose-gc", "bench/run.ts", ...files]
    : ["bench/run.ts", ...files];
  const output = await new Deno.Command(`${BIN}/${runtime}`, {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const line = new TextDecoder().decode(output.stdout).split("\n").find((l) =>
    l.startsWith("RESULTS ")
  );
  if (line === undefined) {
    console.error(`bench: ${runtime} printed no results (exit ${output.code})`);
    return [];
  }
  return JSON.parse(line.slice(8)) as BenchResult[];
}

const kept: BenchResult[] = only === undefined ? [] : (JSON.parse(
  Deno.readTextFileSync(`${ROOT}/bench-results.json`),
) as BenchResult[]).filter((r) => r.runtime !== only);
const measured = RUNTIMES.filter((r) => only === undefined || only === r);
const runs: BenchResult[][] = [];
for (let run = 1; run <= RUNS; run++) {
  if (RUNS > 1) console.error(`bench: run ${run} of ${RUNS}`);
  const results: BenchResult[] = [];
  for (const runtime of measured) results.push(...await runIn(runtime));
  runs.push(results);
}
const medians = medianRuns(runs);
const results: (BenchResult | MedianResult)[] = [];
for (const runtime of RUNTIMES) {
  const rows = measured.includes(runtime) ? medians : kept;
  results.push(...rows.filter((r) => r.runtime === runtime));
}
Deno.writeTextFileSync(`${ROOT}/bench-results.json`, JSON.stringify(results, null, 2) + "\n");

const fmt = (n: number): string =>
  !Number.isFinite(n) ? "n/a" : n >= 100 ? n.toFixed(0) : n >= 1 ? n.toFixed(2) : n.toFixed(3);
// With several runs, the ratio column gives the median run's ratio and the range of all runs.
const spread = (r: BenchResult | MedianResult): string => {
  if (!("ratios" in r) || r.ratios.length < 2) return "";
  const finite = r.ratios.filter((x): x is number => x !== null);
  const failed = r.ratios.length - finite.length;
  const range = finite.length > 0 ? `${fmt(Math.min(...finite))}-${fmt(Math.max(...finite))}` : "";
  return ` (${range}${failed > 0 ? `${range ? ", " : ""}${failed} failed` : ""})`;
};
const rows = results.map((r) =>
  `| ${r.name} | ${r.runtime} | ${fmt(r.value)} ${r.unit} | ${r.baselineName}: ${
    fmt(r.baseline)
  } | ${fmt(r.ratio)}${spread(r)} | ${r.goal} | ${r.met ? "yes" : "**no**"} |`
);
const cpu = Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*:\s*(.*)/)?.[1] ?? "?";
const table = [
  `Measured ${
    new Date().toISOString().slice(0, 10)
  } on ${cpu}, ${navigator.hardwareConcurrency} cores${
    RUNS > 1
      ? `; ${RUNS} runs, each row from the run with its median ratio (the range of the ${RUNS} ratios in brackets)`
      : ""
  }.`,
  "",
  "| benchmark | runtime | shmkit | baseline | ratio | goal | met |",
  "| --- | --- | --- | --- | --- | --- | --- |",
  ...rows,
].join("\n");
const path = `${ROOT}/BENCHMARKS.md`;
let doc = Deno.readTextFileSync(path);
doc = doc.replace(
  /<!-- results:start -->[\s\S]*<!-- results:end -->/,
  `<!-- results:start -->\n${table}\n<!-- results:end -->`,
);
Deno.writeTextFileSync(path, doc);
// Keep the written files as deno fmt wants them (fmt --check is part of npm test).
await new Deno.Command(`${BIN}/deno`, {
  args: ["fmt", "BENCHMARKS.md", "bench-results.json"],
  cwd: ROOT,
  stdout: "null",
  stderr: "null",
}).output();
console.log(table);
const missed = results.filter((r) => !r.met).length;
console.log(`\n${results.length} figures, ${missed} goals not met; see bench-results.json`);

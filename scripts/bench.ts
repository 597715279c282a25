/**
 * Runs every benchmark under Deno, Bun and Node, writes bench-results.json
 * and the table in BENCHMARKS.md (between its markers).
 *
 * Usage: deno run -A scripts/bench.ts [--only=deno|bun|node] [bench files...]
 *
 * `--only` measures one runtime and keeps the other runtimes' rows from
 * bench-results.json.
 *
 * @module
 */
import type { BenchResult } from "../bench/harness.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const BIN = `${ROOT}/node_modules/.bin`;
const files = Deno.args.filter((a) => !a.startsWith("--"));
const only = Deno.args.find((a) => a.startsWith("--only="))?.slice(7);
const RUNTIMES = ["deno", "bun", "node"] as const;
if (only !== undefined && !(RUNTIMES as readonly string[]).includes(only)) {
  throw new RangeError(`Cannot bench: --only takes deno, bun or node, not ${only}`);
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
const results: BenchResult[] = [];
for (const runtime of RUNTIMES) {
  if (only === undefined || only === runtime) results.push(...await runIn(runtime));
  else results.push(...kept.filter((r) => r.runtime === runtime));
}
Deno.writeTextFileSync(`${ROOT}/bench-results.json`, JSON.stringify(results, null, 2) + "\n");

const fmt = (n: number): string =>
  !Number.isFinite(n) ? "n/a" : n >= 100 ? n.toFixed(0) : n >= 1 ? n.toFixed(2) : n.toFixed(3);
const rows = results.map((r) =>
  `| ${r.name} | ${r.runtime} | ${fmt(r.value)} ${r.unit} | ${r.baselineName}: ${
    fmt(r.baseline)
  } | ${fmt(r.ratio)} | ${r.goal} | ${r.met ? "yes" : "**no**"} |`
);
const cpu = Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*:\s*(.*)/)?.[1] ?? "?";
const table = [
  `Measured ${
    new Date().toISOString().slice(0, 10)
  } on ${cpu}, ${navigator.hardwareConcurrency} cores.`,
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

/**
 * Runs every benchmark under Deno and under Bun, writes bench-results.json
 * and the table in BENCHMARKS.md (between its markers).
 *
 * Usage: deno run -A scripts/bench.ts [bench files...]
 *
 * @module
 */
import type { BenchResult } from "../bench/harness.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const BIN = `${ROOT}/node_modules/.bin`;
const files = Deno.args;

async function runIn(runtime: "deno" | "bun"): Promise<BenchResult[]> {
  const args = runtime === "deno"
    ? ["run", "-A", "--v8-flags=--expose-gc", "bench/run.ts", ...files]
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

const results = [...await runIn("deno"), ...await runIn("bun")];
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

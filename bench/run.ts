/**
 * Runs the benchmark modules named on the command line (or all of
 * bench/*_bench.ts) in the current runtime and prints the results as one
 * JSON line prefixed by "RESULTS ".
 *
 * @module
 */
import { readdirSync } from "node:fs";
import { type BenchResult, describeGoal, meets } from "./harness.ts";
import type { Benchmark } from "./harness.ts";

const runtime = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";
const dir = import.meta.dirname!;
const argv: string[] = "Deno" in globalThis ? Deno.args : (globalThis as unknown as {
  process: { argv: string[] };
}).process.argv.slice(2);
const modules = argv.length > 0
  ? argv
  : readdirSync(dir).filter((f) => f.endsWith("_bench.ts")).sort();

const results: BenchResult[] = [];
for (const file of modules) {
  const { benchmarks } = (await import(`./${file}`)) as { benchmarks: Benchmark[] };
  for (const bench of benchmarks) {
    try {
      const { value, comparisons } = await bench.run();
      for (const c of comparisons) {
        const ratio = value / c.baseline;
        const result: BenchResult = {
          name: bench.name,
          runtime,
          value,
          unit: bench.unit,
          baselineName: c.baselineName,
          baseline: c.baseline,
          ratio,
          goal: describeGoal(c.goal),
          met: meets(ratio, c.goal),
        };
        results.push(result);
        console.error(
          `${runtime} | ${bench.name} | ${value.toFixed(3)} ${bench.unit} | ${c.baselineName} ${
            c.baseline.toFixed(3)
          } | ratio ${ratio.toFixed(3)} (${result.goal}${result.met ? "" : ", NOT MET"})`,
        );
      }
    } catch (error) {
      console.error(`${runtime} | ${bench.name} | FAILED: ${error}`);
      results.push({
        name: bench.name,
        runtime,
        value: NaN,
        unit: bench.unit,
        baselineName: "error",
        baseline: NaN,
        ratio: NaN,
        goal: String(error),
        met: false,
      });
    }
  }
}
console.log(`RESULTS ${JSON.stringify(results)}`);

/**
 * Bulk copy into a mapping's view against C memcpy of the same size.
 *
 * @module
 */
import { Mapping } from "../mod.ts";
import { type Benchmark, compileC, type Measured, median, runForNumber } from "./harness.ts";

const SIZE = 256 << 20;

/** The copy benchmarks. */
export const benchmarks: Benchmark[] = [{
  name: "copy 256 MiB into a mapping view (TypedArray.set)",
  unit: "GB/s",
  run(): Promise<Measured> {
    const c = runForNumber(compileC("memcpy"), [String(SIZE)]);
    using mapping = Mapping.anonymous(SIZE, { shared: true });
    const destination = mapping.view();
    const source = new Uint8Array(SIZE).fill(1);
    destination.fill(0); // fault the pages in, as C's memset does
    const rates: number[] = [];
    for (let round = 0; round < 7; round++) {
      const start = performance.now();
      destination.set(source);
      rates.push(SIZE / ((performance.now() - start) / 1000) / 1e9);
    }
    if (destination[SIZE >> 1] !== 1) throw new Error("copy did not happen");
    return Promise.resolve({
      value: median(rates),
      comparisons: [{ baselineName: "C memcpy", baseline: c, goal: { min: 0.8 } }],
    });
  },
}];

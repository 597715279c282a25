/**
 * The checks that JSDoc examples rewritten by scripts/_doc_transform.ts call:
 * {@linkcode __docExpect} compares the values a line prints (or evaluates to)
 * with the literals its comment shows, {@linkcode __docExpectAll} checks at
 * the end of a block that every asserting line ran.
 *
 * @module
 */
import { inspect } from "node:util";

/** The key a `...` in an object literal becomes: "and other keys". */
const MORE_KEY = "__docMore";

const ran = new Set<string>();

/** Whether `actual` is what the literal `expected` shows (deep, strict). */
export function matches(actual: unknown, expected: unknown): boolean {
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && actual.length === expected.length &&
      expected.every((e, i) => matches(actual[i], e));
  }
  if (typeof expected === "object" && expected !== null) {
    if (typeof actual !== "object" || actual === null || Array.isArray(actual)) return false;
    const want = expected as Record<string, unknown>;
    const have = actual as Record<string, unknown>;
    const keys = Object.keys(want).filter((k) => k !== MORE_KEY);
    if (!(MORE_KEY in want)) {
      const own = Object.keys(have);
      if (own.length !== keys.length) return false;
    }
    return keys.every((k) => k in have && matches(have[k], want[k]));
  }
  return Object.is(actual, expected);
}

/**
 * Throws unless `actual` (one value per console.log argument) matches
 * `expected` (one literal each), naming the example's line.
 */
export function __docExpect(
  location: string,
  comment: string,
  expected: readonly unknown[],
  ...actual: unknown[]
): unknown {
  ran.add(location);
  if (actual.length !== expected.length || !actual.every((a, i) => matches(a, expected[i]))) {
    const shown = actual.map((a) => inspect(a, { depth: 4 })).join(" ");
    throw new Error(
      `${location}: the example's comment says \`// ${comment}\`, but the value is ${shown}`,
    );
  }
  return actual[0];
}

/** Throws unless every line in `locations` asserted at least once. */
export function __docExpectAll(locations: readonly string[]): void {
  const missed = locations.filter((l) => !ran.has(l));
  if (missed.length > 0) {
    throw new Error(`${missed.join(", ")}: the example never reached this value comment`);
  }
}

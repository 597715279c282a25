/**
 * Argument and result conversion shared by the Deno and Node backends: both
 * take 64-bit integers and pointers as BigInt and hand them back as BigInt,
 * and both refuse -0 for narrow integers; the safe layer passes numbers.
 *
 * @module
 */
import type { NativeType } from "./types.ts";

/** 64-bit integer and pointer types: BigInt on the wire. */
export const WIDE: ReadonlySet<NativeType> = new Set<NativeType>([
  "i64",
  "u64",
  "isize",
  "usize",
  "pointer",
]);
/** 8- to 32-bit integer types. */
export const NARROW: ReadonlySet<NativeType> = new Set<NativeType>([
  "i8",
  "u8",
  "i16",
  "u16",
  "i32",
  "u32",
]);

/** A bound native function. */
export type Fn = (...a: unknown[]) => unknown;
/** One value's conversion on its way in or out. */
export type Convert = (value: unknown) => unknown;

/** Passes a value through. */
export const same: Convert = (value: unknown): unknown => value;
/** A number for a 64-bit parameter becomes a BigInt. */
export const big: Convert = (value: unknown): unknown =>
  typeof value === "number" ? BigInt(value) : value;

/** How a backend converts each kind of parameter. */
export interface Converters {
  readonly wide: Convert;
  readonly narrow: Convert;
}

/** Whether any parameter of `args` needs a conversion. */
export function convertsArguments(args: readonly NativeType[]): boolean {
  return args.some((a) => WIDE.has(a) || NARROW.has(a));
}

/**
 * Wraps `fn` so that each argument goes through its kind's converter and the
 * result through `out`. One closure per arity: a rest-parameter wrapper costs
 * more than the call.
 */
export function adapt(
  fn: Fn,
  args: readonly NativeType[],
  out: Convert,
  converters: Converters,
): Fn {
  const [c0 = same, c1 = same, c2 = same, c3 = same, c4 = same, c5 = same, c6 = same] = args.map((
    a,
  ) => WIDE.has(a) ? converters.wide : NARROW.has(a) ? converters.narrow : same);
  switch (args.length) {
    case 0:
      return () => out(fn());
    case 1:
      return (a) => out(fn(c0(a)));
    case 2:
      return (a, b) => out(fn(c0(a), c1(b)));
    case 3:
      return (a, b, c) => out(fn(c0(a), c1(b), c2(c)));
    case 4:
      return (a, b, c, d) => out(fn(c0(a), c1(b), c2(c), c3(d)));
    case 5:
      return (a, b, c, d, e) => out(fn(c0(a), c1(b), c2(c), c3(d), c4(e)));
    case 6:
      return (a, b, c, d, e, f) => out(fn(c0(a), c1(b), c2(c), c3(d), c4(e), c5(f)));
    case 7:
      return (a, b, c, d, e, f, g) => out(fn(c0(a), c1(b), c2(c), c3(d), c4(e), c5(f), c6(g)));
    default:
      throw new Error(`Cannot bind a function of ${args.length} parameters`);
  }
}

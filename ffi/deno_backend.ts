/**
 * The Deno backend: `Deno.dlopen`, `Deno.UnsafePointer`,
 * `Deno.UnsafePointerView`.
 *
 * 64-bit and pointer results come back from Deno as bigint; they are turned
 * into numbers here so that both runtimes return the same JS types. The Deno
 * API is typed locally (below) so that this file also compiles where Deno's
 * types are absent (the npm build).
 *
 * @module
 */
import type { Backend, NativeType, SymbolTable } from "./types.ts";

/** A Deno pointer object; opaque. */
type DenoPointer = object;

/** The part of the `Deno` namespace this backend uses. */
interface DenoFfi {
  dlopen(
    path: string,
    symbols: Record<
      string,
      { name: string; parameters: string[]; result: string; nonblocking: boolean }
    >,
  ): { symbols: Record<string, (...args: unknown[]) => unknown> };
  UnsafePointer: {
    create(value: bigint): DenoPointer | null;
    of(view: ArrayBufferView): DenoPointer | null;
    value(pointer: DenoPointer | null): number | bigint;
  };
  UnsafePointerView: {
    getArrayBuffer(pointer: DenoPointer, length: number): ArrayBuffer;
  };
}

const DENO_TYPE: Readonly<Record<NativeType, string>> = {
  void: "void",
  i8: "i8",
  u8: "u8",
  i16: "i16",
  u16: "u16",
  i32: "i32",
  u32: "u32",
  i64: "i64",
  u64: "u64",
  isize: "isize",
  usize: "usize",
  f64: "f64",
  // Addresses travel as numbers, so pointers are usize on the wire.
  pointer: "usize",
  buffer: "buffer",
};

const WIDE = new Set<NativeType>(["i64", "u64", "isize", "usize", "pointer"]);
const NARROW = new Set<NativeType>(["i8", "u8", "i16", "u16", "i32", "u32"]);

function toNumber(value: number | bigint): number {
  return typeof value === "bigint" ? Number(value) : value;
}

type Fn = (...a: unknown[]) => unknown;
type Convert = (value: unknown) => unknown;

const same: Convert = (value) => value;
// Deno takes a slow path (~125 ns against ~11 ns, measured) when a 64-bit
// parameter gets a Number; BigInt() costs less than that.
const big: Convert = (value) => typeof value === "number" ? BigInt(value) : value;
const num: Convert = (value) => typeof value === "bigint" ? Number(value) : value;
// Deno refuses -0 for 8- to 32-bit parameters ("Invalid FFI i32 type"), though it is 0.
const int: Convert = (value) => value === 0 ? 0 : value;

// One closure per arity: a rest-parameter wrapper costs more than the call.
function adapt(fn: Fn, args: readonly NativeType[], out: Convert): Fn {
  const [c0 = same, c1 = same, c2 = same, c3 = same, c4 = same, c5 = same, c6 = same] = args.map((
    a,
  ) => WIDE.has(a) ? big : NARROW.has(a) ? int : same);
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

/** Creates the Deno backend. */
export function createDenoBackend(): Backend {
  const deno = (globalThis as unknown as { Deno: DenoFfi }).Deno;
  return {
    runtime: "deno",
    nonblocking: true,
    open(path, table: SymbolTable): Record<string, (...args: never[]) => unknown> {
      const defs: Parameters<DenoFfi["dlopen"]>[1] = {};
      for (const [key, def] of Object.entries(table)) {
        defs[key] = {
          name: def.name ?? key,
          parameters: def.args.map((a) => DENO_TYPE[a]),
          result: DENO_TYPE[def.result],
          nonblocking: def.nonblocking ?? false,
        };
      }
      const lib = deno.dlopen(path, defs);
      const out: Record<string, (...args: never[]) => unknown> = {};
      for (const [key, def] of Object.entries(table)) {
        const fn = lib.symbols[key]!;
        const convertArgs = def.args.some((a) => WIDE.has(a) || NARROW.has(a));
        const wideResult = WIDE.has(def.result);
        if (def.nonblocking) {
          const call = convertArgs ? adapt(fn, def.args, same) : fn;
          out[key] = wideResult
            ? (...a: unknown[]) => (call(...a) as Promise<number | bigint>).then(toNumber)
            : call;
        } else if (convertArgs || wideResult) {
          out[key] = adapt(fn, def.args, wideResult ? num : same);
        } else {
          out[key] = fn;
        }
      }
      return out;
    },
    arrayBuffer(address, length): ArrayBuffer {
      const pointer = deno.UnsafePointer.create(BigInt(address));
      if (pointer === null) throw new TypeError("Cannot view memory: NULL address");
      return deno.UnsafePointerView.getArrayBuffer(pointer, length);
    },
    addressOf(view): number {
      return toNumber(deno.UnsafePointer.value(deno.UnsafePointer.of(view)));
    },
  };
}

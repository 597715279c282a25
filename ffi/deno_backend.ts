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
import {
  adapt,
  big,
  type Convert,
  type Converters,
  convertsArguments,
  same,
  WIDE,
} from "./_adapt.ts";

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

function toNumber(value: number | bigint): number {
  return typeof value === "bigint" ? Number(value) : value;
}

// Deno takes a slow path (~125 ns against ~11 ns, measured) when a 64-bit
// parameter gets a Number; BigInt() costs less than that. It refuses -0 for
// 8- to 32-bit parameters ("Invalid FFI i32 type"), though it is 0.
const CONVERTERS: Converters = { wide: big, narrow: (value) => value === 0 ? 0 : value };
const num: Convert = (value) => typeof value === "bigint" ? Number(value) : value;

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
        const convertArgs = convertsArguments(def.args);
        const wideResult = WIDE.has(def.result);
        if (def.nonblocking) {
          const call = convertArgs ? adapt(fn, def.args, same, CONVERTERS) : fn;
          out[key] = wideResult
            ? (...a: unknown[]) => (call(...a) as Promise<number | bigint>).then(toNumber)
            : call;
        } else if (convertArgs || wideResult) {
          out[key] = adapt(fn, def.args, wideResult ? num : same, CONVERTERS);
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

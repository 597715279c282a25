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

function toNumber(value: number | bigint): number {
  return typeof value === "bigint" ? Number(value) : value;
}

type Fn = (...a: unknown[]) => unknown;

// One closure per arity: a rest-parameter wrapper costs more than the call.
function widen(fn: Fn, arity: number): (...a: never[]) => number {
  const n = fn as (...a: unknown[]) => number | bigint;
  switch (arity) {
    case 0:
      return () => toNumber(n());
    case 1:
      return (a: unknown) => toNumber(n(a));
    case 2:
      return (a: unknown, b: unknown) => toNumber(n(a, b));
    case 3:
      return (a: unknown, b: unknown, c: unknown) => toNumber(n(a, b, c));
    case 4:
      return (a: unknown, b: unknown, c: unknown, d: unknown) => toNumber(n(a, b, c, d));
    default:
      return (...a: unknown[]) => toNumber(n(...a));
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
        if (!WIDE.has(def.result)) {
          out[key] = fn;
        } else if (def.nonblocking) {
          out[key] = (...a: unknown[]) => (fn(...a) as Promise<number | bigint>).then(toNumber);
        } else {
          out[key] = widen(fn, def.args.length);
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

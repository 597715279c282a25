/**
 * The Deno backend: `Deno.dlopen`, `Deno.UnsafePointerView`.
 *
 * 64-bit and pointer results come back from Deno as bigint; they are turned
 * into numbers here so that both runtimes return the same JS types.
 *
 * @module
 */
import type { Backend, NativeType, SymbolTable } from "./types.ts";

type DenoNative = Deno.NativeType | "void";

const DENO_ARG: Readonly<Record<NativeType, DenoNative>> = {
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

type Fn = (...a: unknown[]) => number | bigint;

// One closure per arity: a rest-parameter wrapper costs more than the call.
function widen(fn: Fn, arity: number): (...a: never[]) => number {
  switch (arity) {
    case 0:
      return () => toNumber(fn());
    case 1:
      return (a: unknown) => toNumber(fn(a));
    case 2:
      return (a: unknown, b: unknown) => toNumber(fn(a, b));
    case 3:
      return (a: unknown, b: unknown, c: unknown) => toNumber(fn(a, b, c));
    case 4:
      return (a: unknown, b: unknown, c: unknown, d: unknown) => toNumber(fn(a, b, c, d));
    default:
      return (...a: unknown[]) => toNumber(fn(...a));
  }
}

/** Creates the Deno backend. */
export function createDenoBackend(): Backend {
  return {
    runtime: "deno",
    nonblocking: true,
    open(path, table: SymbolTable): Record<string, (...args: never[]) => unknown> {
      const defs: Record<string, Deno.ForeignFunction> = {};
      for (const [key, def] of Object.entries(table)) {
        defs[key] = {
          name: def.name ?? key,
          parameters: def.args.map((a) => DENO_ARG[a]) as Deno.NativeType[],
          result: DENO_ARG[def.result] as Deno.NativeResultType,
          nonblocking: def.nonblocking ?? false,
        };
      }
      const lib = Deno.dlopen(path, defs);
      const out: Record<string, (...args: never[]) => unknown> = {};
      for (const [key, def] of Object.entries(table)) {
        // deno-lint-ignore no-explicit-any
        const fn = (lib.symbols as any)[key] as (...a: unknown[]) => any;
        if (!WIDE.has(def.result)) {
          out[key] = fn;
        } else if (def.nonblocking) {
          out[key] = (...a: unknown[]) => fn(...a).then(toNumber);
        } else {
          out[key] = widen(fn, def.args.length);
        }
      }
      return out;
    },
    arrayBuffer(address, length): ArrayBuffer {
      const pointer = Deno.UnsafePointer.create(BigInt(address));
      if (pointer === null) throw new TypeError("Cannot view memory: NULL address");
      return Deno.UnsafePointerView.getArrayBuffer(pointer, length);
    },
    addressOf(view): number {
      const pointer = Deno.UnsafePointer.of(view as Uint8Array<ArrayBuffer>);
      return toNumber(Deno.UnsafePointer.value(pointer));
    },
  };
}

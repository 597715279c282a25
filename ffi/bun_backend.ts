/**
 * The Bun backend: `bun:ffi`'s `dlopen`, `toArrayBuffer` and `ptr`.
 *
 * `bun:ffi` is imported dynamically from a variable specifier, because Deno
 * refuses a module that imports it statically.
 *
 * @module
 */
import type { Backend, NativeType, SymbolDefinition, SymbolTable } from "./types.ts";

/** The part of `bun:ffi` this backend uses. */
interface BunFfi {
  dlopen(
    path: string,
    defs: Record<string, BunSignature>,
  ): { symbols: Record<string, (...args: never[]) => unknown> };
  toArrayBuffer(address: number, offset: number, length: number): ArrayBuffer;
  ptr(view: ArrayBufferView): number;
}

const BUN_TYPE: Readonly<Record<NativeType, string>> = {
  void: "void",
  i8: "i8",
  u8: "u8",
  i16: "i16",
  u16: "u16",
  i32: "i32",
  u32: "u32",
  // The _fast variants return numbers when the value is a safe integer.
  i64: "i64_fast",
  u64: "u64_fast",
  isize: "i64_fast",
  usize: "u64_fast",
  f64: "f64",
  pointer: "ptr",
  buffer: "ptr",
};

/** A symbol's definition as `bun:ffi`'s `dlopen` takes it. */
export interface BunSignature {
  readonly args: string[];
  readonly returns: string;
}

/** Translates one symbol definition to `bun:ffi`'s names (also for Workers that bind their own). */
export function bunSignature(def: SymbolDefinition): BunSignature {
  // A pointer result as u64_fast gives 0 for NULL, as Deno does.
  const returns = def.result === "pointer" ? "u64_fast" : BUN_TYPE[def.result];
  return { args: def.args.map((a) => BUN_TYPE[a]), returns };
}

/** Creates the Bun backend; loads `bun:ffi`. */
export async function createBunBackend(): Promise<Backend> {
  const specifier = "bun:ffi";
  const ffi = (await import(specifier)) as BunFfi;
  return {
    runtime: "bun",
    nonblocking: false,
    open(path, table: SymbolTable): Record<string, (...args: never[]) => unknown> {
      // Bun keys definitions by C name, so an alias (a second signature for
      // the same C function) gets a dlopen of its own.
      const direct: Record<string, BunSignature> = {};
      const aliases: [string, string, BunSignature][] = [];
      for (const [key, def] of Object.entries(table)) {
        if (def.nonblocking) continue;
        const name = def.name ?? key;
        const bunDef = bunSignature(def);
        if (name === key) direct[name] = bunDef;
        else aliases.push([key, name, bunDef]);
      }
      const out: Record<string, (...args: never[]) => unknown> = {};
      if (Object.keys(direct).length > 0) Object.assign(out, ffi.dlopen(path, direct).symbols);
      for (const [key, name, bunDef] of aliases) {
        out[key] = ffi.dlopen(path, { [name]: bunDef }).symbols[name]!;
      }
      return out;
    },
    arrayBuffer(address, length): ArrayBuffer {
      return ffi.toArrayBuffer(address, 0, length);
    },
    addressOf(view): number {
      return ffi.ptr(view);
    },
  };
}

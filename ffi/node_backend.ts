/**
 * The Node.js backend: `node:ffi`'s `dlopen`, `toArrayBuffer` and
 * `getRawPointer` (Node 26.1+, experimental).
 *
 * `node:ffi` takes every 64-bit integer and pointer argument as a BigInt (a
 * Number throws) and returns them as BigInt; this backend converts both ways
 * so the safe layer sees numbers, as on Deno and Bun. Calls are synchronous
 * only: blocking waits run on worker_threads (sync/_futex_worker.ts).
 *
 * @module
 */
import type { Backend, NativeType, SymbolDefinition, SymbolTable } from "./types.ts";
import {
  adapt,
  big,
  type Convert,
  type Converters,
  convertsArguments,
  type Fn,
  NARROW,
  same,
  WIDE,
} from "./_adapt.ts";

/** A symbol's definition as `node:ffi`'s `dlopen` takes it. */
export interface NodeSignature {
  readonly return: string;
  readonly arguments: string[];
}

/** The part of `node:ffi` this backend uses. */
interface NodeFfi {
  dlopen(
    path: string,
    defs: Record<string, NodeSignature>,
  ): { functions: Record<string, (...args: unknown[]) => unknown> };
  toArrayBuffer(address: bigint, length: number, copy: boolean): ArrayBuffer;
  getRawPointer(view: ArrayBufferView): bigint;
}

const NODE_TYPE: Readonly<Record<NativeType, string>> = {
  void: "void",
  i8: "i8",
  u8: "u8",
  i16: "i16",
  u16: "u16",
  i32: "i32",
  u32: "u32",
  i64: "i64",
  u64: "u64",
  // node:ffi has no isize/usize; Linux and macOS are LP64.
  isize: "i64",
  usize: "u64",
  f64: "f64",
  pointer: "pointer",
  // A pointer argument takes typed arrays (byte offset respected) and null.
  buffer: "pointer",
};

/** Translates one symbol definition to `node:ffi`'s shape (also for workers that bind their own). */
export function nodeSignature(def: SymbolDefinition): NodeSignature {
  return { return: NODE_TYPE[def.result], arguments: def.args.map((a) => NODE_TYPE[a]) };
}

// node:ffi returns every 64-bit and pointer result as a BigInt.
const num: Convert = (value) => Number(value);
// node:ffi refuses -0 for 8- to 32-bit parameters, though it is 0; -0 + 0 is
// +0, and anything else node:ffi refuses stays refused.
const CONVERTERS: Converters = { wide: big, narrow: (value) => (value as number) + 0 };

/**
 * The same conversions written out per signature. Measured on sysconf (one
 * i32 in, an i64 out) in a hot loop: ~24 ns, as the raw symbol, against
 * ~46-95 ns through the small converter functions of {@linkcode adapt}.
 * No conditional on a narrow argument or on the result: with `a === 0 ? 0 :
 * a` or `typeof r === "bigint" ? Number(r) : r`, a caller that V8 compiles
 * on its own (not inlined into a loop) took ~100 ns against the raw
 * symbol's ~25 ns; `a + 0` and `Number(r)` keep it at ~24 ns (node 26.10,
 * measured in CPU time). The source is built from the NativeType names
 * alone. Undefined where code generation is refused
 * (--disallow-code-generation-from-strings).
 */
const compiled = new Map<string, ((fn: Fn) => Fn) | undefined>();
function compile(args: readonly NativeType[], result: NativeType): ((fn: Fn) => Fn) | undefined {
  const key = `${args.join(",")}>${result}`;
  if (compiled.has(key)) return compiled.get(key);
  const names = args.map((_, i) => `a${i}`);
  const passed = args.map((type, i) =>
    WIDE.has(type)
      ? `(typeof a${i} === "number" ? BigInt(a${i}) : a${i})`
      : NARROW.has(type)
      ? `a${i} + 0`
      : `a${i}`
  );
  const call = `fn(${passed.join(", ")})`;
  const body = WIDE.has(result) ? `Number(${call})` : call;
  let factory: ((fn: Fn) => Fn) | undefined;
  try {
    factory = new Function("fn", `"use strict"; return (${names.join(", ")}) => ${body};`) as (
      fn: Fn,
    ) => Fn;
  } catch {
    factory = undefined;
  }
  compiled.set(key, factory);
  return factory;
}

interface NodeProcess {
  readonly execArgv: string[];
  getBuiltinModule(id: "node:v8"): { setFlagsFromString(flags: string): void };
}

/**
 * Turns off V8's concurrent on-stack replacement, unless the process was
 * started with a setting of its own. Node 26.10's TurboFan, compiling a hot
 * loop that calls node:ffi functions on its OSR thread, crashed 4% of the
 * processes of a semaphore ping-pong (16 of 400: "Check failed:
 * FastApiCallNode::ArityForArgc", "unreachable code", SIGSEGV), and none of
 * 400 with OSR on the main thread (docs/platform-facts.md, Node). Functions
 * still compile concurrently; only a loop's one-time switch to optimized
 * code runs on the main thread.
 */
function keepOsrOnMainThread(): void {
  const process = (globalThis as unknown as { process: NodeProcess }).process;
  if (process.execArgv.some((arg) => /concurrent[-_]osr/.test(arg))) return;
  process.getBuiltinModule("node:v8").setFlagsFromString("--no-concurrent-osr");
}

/** Creates the Node backend; loads `node:ffi`. */
export async function createNodeBackend(): Promise<Backend> {
  const specifier = "node:ffi";
  let ffi: NodeFfi;
  try {
    ffi = (await import(specifier)) as NodeFfi;
  } catch (error) {
    throw new Error(
      "Cannot load shmkit: node:ffi is missing: it needs Node 26.1 or later, started with --experimental-ffi before 26.9 (and without --no-experimental-ffi)",
      { cause: error },
    );
  }
  keepOsrOnMainThread();
  return {
    runtime: "node",
    nonblocking: false,
    open(path, table: SymbolTable): Record<string, (...args: never[]) => unknown> {
      // One DynamicLibrary can't bind a C name twice: an alias gets a dlopen of its own.
      const direct: Record<string, NodeSignature> = {};
      const aliases: [string, string, NodeSignature][] = [];
      for (const [key, def] of Object.entries(table)) {
        if (def.nonblocking) continue;
        const name = def.name ?? key;
        if (name === key) direct[name] = nodeSignature(def);
        else aliases.push([key, name, nodeSignature(def)]);
      }
      const raw: Record<string, Fn> = {};
      if (Object.keys(direct).length > 0) Object.assign(raw, ffi.dlopen(path, direct).functions);
      for (const [key, name, signature] of aliases) {
        raw[key] = ffi.dlopen(path, { [name]: signature }).functions[name]!;
      }
      const out: Record<string, (...args: never[]) => unknown> = {};
      for (const [key, fn] of Object.entries(raw)) {
        const def = table[key]!;
        const convertArgs = convertsArguments(def.args);
        const wideResult = WIDE.has(def.result);
        if (!convertArgs && !wideResult) out[key] = fn;
        else {out[key] = compile(def.args, def.result)?.(fn) ??
            adapt(fn, def.args, wideResult ? num : same, CONVERTERS);}
      }
      return out;
    },
    arrayBuffer(address, length): ArrayBuffer {
      if (address === 0) throw new TypeError("Cannot view memory: NULL address");
      return ffi.toArrayBuffer(BigInt(address), length, false);
    },
    addressOf(view): number {
      return Number(ffi.getRawPointer(view));
    },
  };
}

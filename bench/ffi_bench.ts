/**
 * FFI overhead: shmkit's bound symbols and a safe call against the raw
 * runtime symbol, in the same runtime.
 *
 * @module
 */
import { Mapping, pageSize } from "../mod.ts";
import { unsafeLibc } from "../raw.ts";
import { type Benchmark, type Measured, nsPerOpPair } from "./harness.ts";

const ITERATIONS = 1_000_000;

interface RawSymbols {
  getpid(): number;
  sysconf(name: number): number | bigint;
  madvise(address: number | bigint, length: number | bigint, advice: number): number;
}

async function rawSymbols(): Promise<RawSymbols> {
  if ("Deno" in globalThis) {
    const lib = Deno.dlopen("libc.so.6", {
      getpid: { parameters: [], result: "i32" },
      sysconf: { parameters: ["i32"], result: "i64" },
      madvise: { parameters: ["usize", "usize", "i32"], result: "i32" },
    });
    return lib.symbols as unknown as RawSymbols;
  }
  if (!("Bun" in globalThis)) {
    // node:ffi: pointers and 64-bit values as BigInt.
    const specifier = "node:ffi";
    const ffi = await import(specifier);
    return ffi.dlopen("libc.so.6", {
      getpid: { arguments: [], return: "i32" },
      sysconf: { arguments: ["i32"], return: "i64" },
      madvise: { arguments: ["pointer", "u64", "i32"], return: "i32" },
    }).functions as RawSymbols;
  }
  const specifier = "bun:ffi";
  const ffi = await import(specifier);
  return ffi.dlopen("libc.so.6", {
    getpid: { args: [], returns: "i32" },
    sysconf: { args: ["i32"], returns: "i64" },
    madvise: { args: ["ptr", "usize", "i32"], returns: "i32" },
  }).symbols as RawSymbols;
}

const SC_PAGESIZE = 30;
const MADV_NORMAL = 0;

/** The FFI overhead benchmarks. */
export const benchmarks: Benchmark[] = [
  {
    name: "getpid() through unsafeLibc vs the runtime's raw symbol",
    unit: "ns/op",
    async run(): Promise<Measured> {
      const raw = await rawSymbols();
      const { baseline: base, value } = nsPerOpPair(
        () => raw.getpid(),
        () => unsafeLibc.getpid(),
        ITERATIONS,
      );
      return {
        value,
        comparisons: [{ baselineName: "raw FFI symbol", baseline: base, goal: { max: 1.1 } }],
      };
    },
  },
  {
    name: "sysconf() (64-bit result as a number) vs the raw symbol",
    unit: "ns/op",
    async run(): Promise<Measured> {
      const raw = await rawSymbols();
      const { baseline: base, value } = nsPerOpPair(
        () => Number(raw.sysconf(SC_PAGESIZE)),
        () => unsafeLibc.sysconf(SC_PAGESIZE),
        ITERATIONS,
      );
      return {
        value,
        comparisons: [{ baselineName: "raw FFI symbol", baseline: base, goal: { max: 1.1 } }],
      };
    },
  },
  {
    name: "Mapping.advise() (checked safe call) vs raw madvise",
    unit: "ns/op",
    async run(): Promise<Measured> {
      const raw = await rawSymbols();
      using mapping = Mapping.anonymous(pageSize());
      // Each runtime's fastest raw form: Deno takes 64-bit parameters fastest as BigInt,
      // node:ffi takes nothing else.
      const wide = "Bun" in globalThis ? Number : BigInt;
      const address = wide(mapping.unsafeAddress);
      const length = wide(pageSize());
      const { baseline: base, value } = nsPerOpPair(
        () => raw.madvise(address, length, MADV_NORMAL),
        () => mapping.advise("normal"),
        ITERATIONS / 8,
        15,
        "cpu",
      );
      return {
        value,
        comparisons: [{ baselineName: "raw FFI symbol", baseline: base, goal: { max: 1.1 } }],
      };
    },
  },
];

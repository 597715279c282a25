/**
 * Runtime-neutral FFI types. The symbol table in `symbols.ts` is written in
 * these; the Deno, Bun and Node backends translate them to their runtime's names.
 *
 * @module
 */

/**
 * A C type as the symbol table spells it.
 *
 * - 8-, 16- and 32-bit integers travel as numbers.
 * - 64-bit integers, `isize`, `usize` and `pointer` results also travel as
 *   numbers: user-space addresses and every size we pass fit in 2^53.
 * - `pointer` is an address held in a number (0 is NULL).
 * - `buffer` is a TypedArray (or null) whose memory C reads or writes for
 *   the duration of the call.
 */
export type NativeType =
  | "void"
  | "i8"
  | "u8"
  | "i16"
  | "u16"
  | "i32"
  | "u32"
  | "i64"
  | "u64"
  | "isize"
  | "usize"
  | "f64"
  | "pointer"
  | "buffer";

/** One C function in the symbol table. */
export interface SymbolDefinition {
  /** Parameter types, in order. */
  readonly args: readonly NativeType[];
  /** Return type. */
  readonly result: NativeType;
  /** The C symbol, when the table's key is an alias (e.g. a nonblocking twin). */
  readonly name?: string;
  /** The symbol may be absent from this libc; absence is a capability, not an error. */
  readonly optional?: boolean;
  /** Deno only: run the call on a worker thread and return a Promise. Absent on Bun. */
  readonly nonblocking?: boolean;
}

/** A table of C functions by key. */
export type SymbolTable = Readonly<Record<string, SymbolDefinition>>;

/** The argument a JS caller passes for a native type. */
export type JsArg<T extends NativeType> = T extends "buffer" ? ArrayBufferView | null
  : number;

/** The value a call returns for a native type. */
export type JsResult<T extends NativeType> = T extends "void" ? void : number;

/** The JS arguments for a list of native parameter types. */
export type JsArgs<A extends readonly NativeType[]> = {
  -readonly [K in keyof A]: A[K] extends NativeType ? JsArg<A[K]> : never;
};

/** The JS function for one symbol definition. */
export type JsFunction<D extends SymbolDefinition> = D["nonblocking"] extends true
  ? (...args: JsArgs<D["args"]>) => Promise<JsResult<D["result"]>>
  : (...args: JsArgs<D["args"]>) => JsResult<D["result"]>;

/**
 * The functions of a table: required symbols always; maybe (check for
 * undefined before calling) `optional` ones, which a libc may lack, and
 * `nonblocking` ones, which runtimes without worker-thread calls (Bun) leave
 * out.
 */
export type JsFunctions<T extends SymbolTable> =
  & {
    readonly [
      K in keyof T as T[K]["optional"] extends true ? never
        : T[K]["nonblocking"] extends true ? never
        : K
    ]: JsFunction<T[K]>;
  }
  & {
    readonly [
      K in keyof T as T[K]["optional"] extends true ? K
        : T[K]["nonblocking"] extends true ? K
        : never
    ]?: JsFunction<T[K]>;
  };

/** What a runtime backend provides: binding symbols and raw memory access. */
export interface Backend {
  /** The runtime's name. */
  readonly runtime: "deno" | "bun" | "node";
  /** Whether symbols marked `nonblocking` can be bound (Deno's worker-thread calls). */
  readonly nonblocking: boolean;
  /**
   * Opens a library and binds the given symbols, all known to exist in it.
   * Throws when the library can't be opened.
   */
  open(
    path: string,
    table: SymbolTable,
  ): Record<string, (...args: never[]) => unknown>;
  /** An ArrayBuffer over `length` bytes at `address`; the caller owns its lifetime. */
  arrayBuffer(address: number, length: number): ArrayBuffer;
  /** The address of a view's first byte. */
  addressOf(view: ArrayBufferView): number;
}

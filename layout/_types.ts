/**
 * Internal: the field kinds a struct definition is written in, and the
 * TypeScript types inferred from a definition (values, inputs, live views).
 *
 * @module
 */
import type { Channel } from "../sync/channel.ts";
import type { Mutex } from "../sync/mutex.ts";
import type { Struct } from "./struct.ts";

/** Integer kinds read as `number`: unsigned `u*` and signed `i*`, 8 to 32 bits. */
export type IntegerKind = "u8" | "i8" | "u16" | "i16" | "u32" | "i32";
/** 64-bit integer kinds, read as `bigint`. */
export type BigIntKind = "u64" | "i64";
/** IEEE 754 binary32 and binary64. */
export type FloatKind = "f32" | "f64";
/** Every scalar kind; `bool` is one byte (C `bool`), read as true for any non-zero byte. */
export type ScalarKind = IntegerKind | BigIntKind | FloatKind | "bool";
/** A fixed-size, NUL-padded UTF-8 string of N bytes (C `char name[N]`). */
export type CharKind = `char[${number}]`;
/** N bytes of explicit padding (C `uint8_t name[N]`); not read or written. */
export type PaddingKind = `pad[${number}]`;
/** What a fixed array may hold: scalars, strings or structs. */
export type ElementKind = ScalarKind | CharKind | AnyStruct;
/** A fixed array: `[element, count]`. */
export type ArrayKind = readonly [ElementKind, number];
/** A {@linkcode Channel} of the given size in bytes (see `Channel.byteLengthFor`). */
export type ChannelKind = readonly ["channel", number];
/** Everything a field can be. */
export type FieldKind = ElementKind | ArrayKind | PaddingKind | "mutex" | ChannelKind;
/** A struct definition: field names (C and Python identifiers) to kinds, in memory order. */
export type StructDefinition = { readonly [name: string]: FieldKind };
/** A struct of any definition. */
// deno-lint-ignore no-explicit-any
export type AnyStruct = Struct<any>;

/** The TypedArray a scalar array field is seen through. */
export type TypedArrayOf<K> = K extends "u8" | "bool" ? Uint8Array
  : K extends "i8" ? Int8Array
  : K extends "u16" ? Uint16Array
  : K extends "i16" ? Int16Array
  : K extends "u32" ? Uint32Array
  : K extends "i32" ? Int32Array
  : K extends "u64" ? BigUint64Array
  : K extends "i64" ? BigInt64Array
  : K extends "f32" ? Float32Array
  : K extends "f64" ? Float64Array
  : never;

/** The value of one scalar. */
export type ScalarValue<K> = K extends BigIntKind ? bigint : K extends "bool" ? boolean : number;

/** The value of one array element or non-array field. */
export type ElementValue<E> = E extends ScalarKind ? ScalarValue<E>
  : E extends CharKind ? string
  : E extends Struct<infer D> ? StructValue<D>
  : never;

/** What `get()` returns for a field: arrays of numbers are TypedArray copies. */
export type FieldValue<K> = K extends ChannelKind ? never
  : K extends readonly [infer E, number]
    ? E extends "bool" ? boolean[] : E extends ScalarKind ? TypedArrayOf<E> : ElementValue<E>[]
  : K extends ElementKind ? ElementValue<K>
  : never;

/** Names of the fields that carry a value (not padding, mutexes or channels). */
export type ValueKeys<D> = {
  [N in keyof D]: [FieldValue<D[N]>] extends [never] ? never : N;
}[keyof D];

/** A struct read into a plain object by `get()`. */
export type StructValue<D> = { [N in ValueKeys<D>]: FieldValue<D[N]> };

/** What `set()` takes for an element. */
export type ElementInput<E> = E extends Struct<infer D> ? StructInput<D> : ElementValue<E>;

/** What `set()` takes for a field: arrays as any array-like of the exact length. */
export type FieldInput<K> = K extends ChannelKind ? never
  : K extends readonly [infer E, number] ? ArrayLike<ElementInput<E>>
  : K extends ElementKind ? ElementInput<K>
  : never;

/** The fields `set()` writes; fields left out keep their bytes. */
export type StructInput<D> = { readonly [N in ValueKeys<D>]?: FieldInput<D[N]> };

/** A live, zero-copy array of fixed-size strings. */
export interface StringArray extends Iterable<string> {
  /** Number of strings. */
  readonly length: number;
  /** Reads string `index`. @throws {RangeError} When `index` is out of range. */
  get(index: number): string;
  /** Writes string `index`. @throws {RangeError} When out of range or too long. */
  set(index: number, value: string): void;
}

/** A live, zero-copy array of structs laid out one after another. */
export interface StructArray<D> extends Iterable<StructView<D>> {
  /** Number of structs. */
  readonly length: number;
  /** The live view of struct `index` (the same object on every call). */
  at(index: number): StructView<D>;
  /** Reads struct `index` into a plain object. */
  get(index: number): StructValue<D>;
  /** Writes the fields given of struct `index`. */
  set(index: number, value: StructInput<D>): void;
}

/** What a live view's property gives for an array field. */
export type ArrayView<E> = E extends ScalarKind ? TypedArrayOf<E>
  : E extends CharKind ? StringArray
  : E extends Struct<infer D> ? StructArray<D>
  : never;

/** What a live view's property gives for a field that is not a plain value. */
export type FieldView<K> = K extends ChannelKind ? Channel
  : K extends "mutex" ? Mutex
  : K extends readonly [infer E, number] ? ArrayView<E>
  : K extends Struct<infer D> ? StructView<D>
  : never;

/** Names of the scalar and string fields: writable properties of a live view. */
export type PlainKeys<D> = {
  [N in keyof D]: D[N] extends ScalarKind | CharKind ? N : never;
}[keyof D];
/** Names of the fields a live view gives a handle for (arrays, structs, mutexes, channels). */
export type HandleKeys<D> = {
  [N in keyof D]: D[N] extends ScalarKind | CharKind | PaddingKind ? never : N;
}[keyof D];

/**
 * A live view of one struct in memory: scalar and string fields are
 * properties that read and write the memory on every access; arrays, nested
 * structs, mutexes and channels are read-only properties giving zero-copy
 * handles (made on first access, then the same object).
 */
export type StructView<D> =
  & { -readonly [N in PlainKeys<D>]: ElementValue<D[N]> }
  & { readonly [N in HandleKeys<D>]: FieldView<D[N]> };

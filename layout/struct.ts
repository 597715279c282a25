/**
 * `defineStruct`: a C struct layout described once in TypeScript, read and
 * written in place over shared memory, and emitted as a C header and a
 * Python ctypes module that lay it out the same way.
 *
 * @module
 */
import { checkOptions } from "../core/_validate.ts";
import { typeName } from "../ffi/pointer.ts";
import {
  checkStruct,
  compile,
  type Compiled,
  initStruct,
  readStruct,
  register,
  writeStruct,
} from "./_compile.ts";
import { cHeader, pythonCtypes } from "./_emit.ts";
import { checkIdentifier } from "./_names.ts";
import type {
  FieldKind,
  StructArray,
  StructDefinition,
  StructInput,
  StructValue,
  StructView,
} from "./_types.ts";
import { ArrayOfStructs, resolve, type Target, viewClass } from "./_view.ts";

export type { Target as StructTarget } from "./_view.ts";

/** Options of {@linkcode defineStruct}. */
export interface StructOptions {
  /**
   * Lay fields out at alignment 1, with no padding (GCC's
   * `__attribute__((packed))`, ctypes `_pack_ = 1`). A packed struct can't
   * hold a mutex or channel. Default false: C's natural alignment.
   */
  readonly packed?: boolean;
  /** The struct's name in emitted C and Python (a C and Python identifier). */
  readonly name?: string;
}

/** Where one field lies in a struct. */
export interface FieldLayout {
  /** The field's name. */
  readonly name: string;
  /** Its kind, as defined. */
  readonly kind: FieldKind;
  /** Bytes from the start of the struct. */
  readonly offset: number;
  /** Bytes it takes (all elements of an array). */
  readonly size: number;
  /** Its alignment in this struct (1 throughout a packed struct). */
  readonly align: number;
}

/**
 * A struct layout: field offsets by C's rules, typed reads and writes over
 * memory, live views, and C and Python emitters. Made by
 * {@linkcode defineStruct}.
 *
 * Byte order is native, which is little-endian on every platform shmkit
 * supports (x86_64 and aarch64 Linux): the same bytes C and Python see.
 */
export class Struct<const D extends StructDefinition> {
  readonly #c: Compiled;
  /** The definition, as given. */
  readonly definition: D;
  /** `sizeof`: bytes, trailing padding included. */
  readonly size: number;
  /** `_Alignof`: the strictest field alignment (1 when packed). */
  readonly align: number;
  /** Whether the struct is packed. */
  readonly packed: boolean;
  /** The name given in the options, if any. */
  readonly name: string | undefined;
  /** Every field in memory order, padding included. */
  readonly fields: readonly FieldLayout[];

  /**
   * Lays a definition out; {@linkcode defineStruct} is the same call.
   *
   * @throws {TypeError} For an unknown kind or a definition that is not an object.
   * @throws {RangeError} For a bad count or size, an invalid or reserved name, no fields, a struct over 2^31 - 1 bytes, or a mutex or channel in a packed struct.
   */
  constructor(definition: D, options?: StructOptions) {
    const o = checkOptions(options, "options");
    const prefix = "Cannot define struct";
    if (o.packed !== undefined && typeof o.packed !== "boolean") {
      throw new TypeError(`${prefix}: options.packed is ${typeName(o.packed)}, not a boolean`);
    }
    const name = o.name === undefined ? undefined : checkIdentifier(o.name, "struct name", prefix);
    this.#c = compile(definition, o.packed ?? false, name);
    register(this, this.#c);
    this.definition = definition;
    this.size = this.#c.size;
    this.align = this.#c.align;
    this.packed = this.#c.packed;
    this.name = name;
    this.fields = Object.freeze(this.#c.fields.map((f) =>
      Object.freeze({
        name: f.name,
        kind: f.kind as FieldKind,
        offset: f.offset,
        size: f.size,
        align: f.align,
      })
    ));
  }

  /**
   * `offsetof(struct, name)`.
   *
   * @throws {RangeError} When the struct has no such field.
   */
  offsetOf(name: keyof D & string): number {
    const f = this.#c.byName.get(name);
    if (f === undefined) {
      throw new RangeError(
        `Cannot find field ${JSON.stringify(name)}: the struct has no such field`,
      );
    }
    return f.offset;
  }

  /**
   * Reads the struct at `byteOffset` into a plain object: numbers, bigints
   * (64-bit fields), booleans, strings, TypedArray copies of scalar arrays
   * (`boolean[]` for bool arrays), arrays of strings and objects for structs.
   * Padding, mutexes and channels are left out.
   *
   * @example
   * ```ts
   * import { defineStruct } from "@shmkit/shmkit/layout";
   * const Point = defineStruct({ x: "i32", y: "i32" });
   * const bytes = new Uint8Array(Point.size);
   * Point.set(bytes, { x: 1, y: -2 });
   * console.log(Point.get(bytes)); // { x: 1, y: -2 }
   * ```
   *
   * @param target Mapped memory (a Mapping, SharedMemory, ...), an ArrayBuffer, or a view of one.
   * @throws {TypeError} When `target` is none of those.
   * @throws {RangeError} When the struct doesn't fit at `byteOffset`.
   * @throws {ClosedError} When the memory is closed.
   */
  get(target: Target, byteOffset = 0): StructValue<D> {
    const dv = resolve(target, byteOffset, this.size, 1, "read a struct");
    return readStruct(this.#c, dv, byteOffset) as StructValue<D>;
  }

  /**
   * Writes the fields `value` has (others keep their bytes). Every value is
   * checked before any byte is written.
   *
   * @throws {TypeError} For a field the struct lacks, or a value of the wrong type (a number for a u64 field, ...).
   * @throws {RangeError} For an integer out of its kind's range, a string too long for its field, an array of the wrong length, or a struct that doesn't fit at `byteOffset`.
   * @throws {ClosedError} When the memory is closed.
   */
  set(target: Target, value: StructInput<D>, byteOffset = 0): void {
    const dv = resolve(target, byteOffset, this.size, 1, "write a struct");
    checkStruct(this.#c, value, this.name ?? "struct");
    writeStruct(this.#c, dv, byteOffset, value);
  }

  /**
   * A live view of the struct at `byteOffset`: each scalar or string field
   * is a property reading and writing the memory itself (no copy, and no
   * allocation for numbers). Arrays are zero-copy TypedArrays (Uint8Array
   * for bool), string arrays and struct arrays; nested structs are views;
   * a mutex field is `Mutex.from` of its bytes, a channel field
   * `Channel.from` (both made on first access, so {@linkcode Struct.init}
   * must have run). When the memory is closed, reads and writes throw
   * TypeError and array views have length 0.
   *
   * @example
   * ```ts
   * import { Mapping } from "@shmkit/shmkit";
   * import { defineStruct } from "@shmkit/shmkit/layout";
   * const Sensor = defineStruct({ id: "u32", temperature: "f64", samples: ["i16", 4] });
   * using mapping = Mapping.anonymous(4096);
   * const sensor = Sensor.view(mapping);
   * sensor.temperature = 21.5;
   * sensor.samples[0] = -3;
   * console.log(mapping.view(Float64Array)[1]); // 21.5
   * ```
   *
   * @throws {TypeError} When `target` is not memory.
   * @throws {RangeError} When the struct doesn't fit, or its start is not a multiple of `align`.
   * @throws {ClosedError} When the memory is closed.
   */
  view(target: Target, byteOffset = 0): StructView<D> {
    const dv = resolve(target, byteOffset, this.size, this.align, "view a struct");
    return new (viewClass(this.#c))(dv, byteOffset) as StructView<D>;
  }

  /**
   * Zeroes the struct at `byteOffset`, lays out each mutex and channel in
   * it (`Mutex.init`, `Channel.init`, nested structs included), and returns
   * its live view. Call it once, before other processes use the memory.
   *
   * @throws {TypeError} When `target` is not memory.
   * @throws {RangeError} When the struct doesn't fit, or its start is not a multiple of `align`.
   * @throws {ClosedError} When the memory is closed.
   */
  init(target: Target, byteOffset = 0): StructView<D> {
    const dv = resolve(target, byteOffset, this.size, this.align, "initialise a struct");
    initStruct(this.#c, dv, byteOffset);
    return new (viewClass(this.#c))(dv, byteOffset) as StructView<D>;
  }

  /**
   * A live array of `count` structs, one every `size` bytes from
   * `byteOffset` (C's `T name[count]`).
   *
   * @example
   * ```ts
   * import { defineStruct } from "@shmkit/shmkit/layout";
   * const Point = defineStruct({ x: "f64", y: "f64" });
   * const points = Point.array(new ArrayBuffer(Point.size * 3), 3);
   * points.at(2).x = 1.5;
   * console.log(points.get(2)); // { x: 1.5, y: 0 }
   * ```
   *
   * @throws {TypeError} When `target` is not memory.
   * @throws {RangeError} When `count` is not a positive integer, the array doesn't fit, or its start is misaligned.
   * @throws {ClosedError} When the memory is closed.
   */
  array(target: Target, count: number, byteOffset = 0): StructArray<D> {
    if (typeof count !== "number") {
      throw new TypeError(`Cannot view a struct array: count is ${typeName(count)}, not a number`);
    }
    if (!Number.isInteger(count) || count < 1) {
      throw new RangeError(`Cannot view a struct array of ${count}: expected at least 1`);
    }
    const dv = resolve(target, byteOffset, this.size * count, this.align, "view a struct array");
    return new ArrayOfStructs(this.#c, dv, byteOffset, count) as unknown as StructArray<D>;
  }

  /**
   * The struct as a C header: one `typedef struct { ... } name;` per
   * struct type (nested ones first, named by their own `name` option or
   * `outer_field`), each followed by `_Static_assert`s of `sizeof`,
   * `_Alignof` and every `offsetof`, so a compiler that lays it out
   * differently refuses it. Needs C11; packed structs use GCC/Clang's
   * `__attribute__((packed))`. A mutex is `uint32_t name[4]`, a channel
   * `uint64_t name[bytes / 8]`.
   *
   * @example
   * ```ts
   * import { defineStruct } from "@shmkit/shmkit/layout";
   * const Sensor = defineStruct({ id: "u32", temperature: "f64" });
   * console.log(Sensor.toCHeader("sensor"));
   * // typedef struct {
   * //   uint32_t id;
   * //   double temperature;
   * // } sensor;
   * // _Static_assert(sizeof(sensor) == 16, "sensor: size"); ...
   * ```
   *
   * @param name The C type name; default: the struct's `name` option.
   * @throws {TypeError} When there is no name.
   * @throws {RangeError} When a name is not a C identifier, or two nested structs would share one.
   */
  toCHeader(name?: string): string {
    return cHeader(this.#c, noName(name ?? this.name, "Cannot emit a C header"));
  }

  /**
   * The struct as a Python module of `ctypes.Structure` classes (nested
   * ones first), ending in a check that raises ImportError if ctypes lays
   * any of them out differently. Use it with `from_buffer` over an mmap or
   * `multiprocessing.shared_memory` buffer.
   *
   * @example
   * ```ts
   * import { defineStruct } from "@shmkit/shmkit/layout";
   * const Sensor = defineStruct({ id: "u32", name: "char[16]" });
   * console.log(Sensor.toPythonCtypes("Sensor"));
   * // class Sensor(ctypes.Structure):
   * //     _fields_ = [
   * //         ("id", ctypes.c_uint32),
   * //         ("name", ctypes.c_char * 16),
   * //     ] ...
   * ```
   *
   * @param name The class name; default: the struct's `name` option.
   * @throws {TypeError} When there is no name.
   * @throws {RangeError} When a name is not a Python identifier, or two nested structs would share one.
   */
  toPythonCtypes(name?: string): string {
    return pythonCtypes(this.#c, noName(name ?? this.name, "Cannot emit Python ctypes"));
  }
}

function noName(name: unknown, prefix: string): unknown {
  if (name === undefined) {
    throw new TypeError(`${prefix}: the struct has no name; pass one`);
  }
  return name;
}

/**
 * Describes a C struct: fields in memory order, each a kind:
 *
 * - `"u8"`, `"i8"`, `"u16"`, `"i16"`, `"u32"`, `"i32"` (numbers), `"u64"`,
 *   `"i64"` (bigints), `"f32"`, `"f64"`, `"bool"` (one byte);
 * - `"char[N]"`: a NUL-padded UTF-8 string of at most N - 1 bytes;
 * - another struct (nested by value);
 * - `[kind, count]`: a fixed array of scalars, strings or structs;
 * - `"pad[N]"`: N bytes of explicit padding;
 * - `"mutex"`: a {@linkcode Mutex} (16 bytes, 4-aligned), `["channel", bytes]`: a {@linkcode Channel}.
 *
 * Offsets follow C: natural alignment (64-bit kinds at 8, as on x86_64 and
 * aarch64 Linux), the struct aligned to its strictest field, trailing
 * padding to a multiple of that; `{ packed: true }` removes all padding.
 * The types of `get()`, `set()` and `view()` are inferred from the
 * definition.
 *
 * @example A record with a lock, shared by processes
 * ```ts
 * import { Mapping } from "@shmkit/shmkit";
 * import { defineStruct } from "@shmkit/shmkit/layout";
 * const Sensor = defineStruct({
 *   lock: "mutex",
 *   magic: "u32",
 *   temperature: "f64",
 *   name: "char[32]",
 *   samples: ["i16", 64],
 * }, { name: "sensor" });
 * using mapping = Mapping.anonymous(4096);
 * const sensor = Sensor.init(mapping);
 * sensor.lock.lock();
 * try {
 *   sensor.name = "boiler";
 *   sensor.temperature = 71.25;
 * } finally {
 *   sensor.lock.unlock();
 * }
 * console.log(Sensor.size, Sensor.offsetOf("temperature")); // 192 24
 * ```
 *
 * @throws {TypeError} For an unknown kind or a definition that is not an object.
 * @throws {RangeError} For a bad count or size, an invalid or reserved name, no fields, a struct over 2^31 - 1 bytes, or a mutex or channel in a packed struct.
 */
export function defineStruct<const D extends StructDefinition>(
  definition: D,
  options?: StructOptions,
): Struct<D> {
  return new Struct(definition, options);
}

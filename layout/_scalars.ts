/**
 * Internal: one codec per element kind (scalars, strings, structs): size,
 * alignment, the C and ctypes spelling, and read/check/write over a
 * DataView. Byte order is native, little-endian on every supported target.
 *
 * @module
 */
import { typeName } from "../ffi/pointer.ts";

type TypedArrayCtor =
  | Uint8ArrayConstructor
  | Int8ArrayConstructor
  | Uint16ArrayConstructor
  | Int16ArrayConstructor
  | Uint32ArrayConstructor
  | Int32ArrayConstructor
  | BigUint64ArrayConstructor
  | BigInt64ArrayConstructor
  | Float32ArrayConstructor
  | Float64ArrayConstructor;

/** How one element (a scalar, a string or a struct) is stored. */
export interface Element {
  /** "u8" ... "bool", "char" or "struct". */
  readonly kind: string;
  readonly size: number;
  readonly align: number;
  /** The C type (for "char", the element type of the array). */
  readonly c: string;
  /** The ctypes type expression. */
  readonly py: string;
  /** Scalars: the TypedArray an array of them is seen through. */
  readonly typed?: TypedArrayCtor;
  read(dv: DataView, offset: number): unknown;
  /** Throws TypeError/RangeError naming `path` when `value` can't be stored. */
  check(value: unknown, path: string): void;
  /** Stores a value that passed `check`. */
  write(dv: DataView, offset: number, value: unknown): void;
}

function checkNumber(value: unknown, path: string): number {
  if (typeof value !== "number") {
    throw new TypeError(`Cannot set ${path}: expected a number, got ${typeName(value)}`);
  }
  return value;
}

function integer(
  kind: string,
  size: number,
  c: string,
  typed: TypedArrayCtor,
  read: (dv: DataView, offset: number) => number,
  write: (dv: DataView, offset: number, value: number) => void,
): Element {
  const signed = kind.startsWith("i");
  const bits = size * 8;
  const min = signed ? -(2 ** (bits - 1)) : 0;
  const max = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
  return {
    kind,
    size,
    align: size,
    c,
    py: `ctypes.c_${c.replace("_t", "")}`,
    typed,
    read,
    check(value, path): void {
      const n = checkNumber(value, path);
      if (!Number.isInteger(n) || n < min || n > max) {
        throw new RangeError(
          `Cannot set ${path} to ${n}: a ${kind} is an integer from ${min} to ${max}`,
        );
      }
    },
    write: write as Element["write"],
  };
}

function bigInteger(
  kind: string,
  c: string,
  typed: TypedArrayCtor,
  read: (dv: DataView, offset: number) => bigint,
  write: (dv: DataView, offset: number, value: bigint) => void,
): Element {
  const signed = kind === "i64";
  const min = signed ? -(1n << 63n) : 0n;
  const max = signed ? (1n << 63n) - 1n : (1n << 64n) - 1n;
  return {
    kind,
    size: 8,
    align: 8,
    c,
    py: `ctypes.c_${c.replace("_t", "")}`,
    typed,
    read,
    check(value, path): void {
      if (typeof value !== "bigint") {
        throw new TypeError(`Cannot set ${path}: expected a bigint, got ${typeName(value)}`);
      }
      if (value < min || value > max) {
        throw new RangeError(
          `Cannot set ${path} to ${value}: a ${kind} is an integer from ${min} to ${max}`,
        );
      }
    },
    write: write as Element["write"],
  };
}

function float(
  kind: string,
  size: number,
  c: string,
  typed: TypedArrayCtor,
  read: (dv: DataView, offset: number) => number,
  write: (dv: DataView, offset: number, value: number) => void,
): Element {
  return {
    kind,
    size,
    align: size,
    c,
    py: `ctypes.c_${c}`,
    typed,
    read,
    check: checkNumber,
    write: write as Element["write"],
  };
}

/** The scalar kinds. */
export const SCALARS: Readonly<Record<string, Element>> = {
  u8: integer(
    "u8",
    1,
    "uint8_t",
    Uint8Array,
    (d, o) => d.getUint8(o),
    (d, o, v) => d.setUint8(o, v),
  ),
  i8: integer("i8", 1, "int8_t", Int8Array, (d, o) => d.getInt8(o), (d, o, v) => d.setInt8(o, v)),
  u16: integer(
    "u16",
    2,
    "uint16_t",
    Uint16Array,
    (d, o) => d.getUint16(o, true),
    (d, o, v) => d.setUint16(o, v, true),
  ),
  i16: integer(
    "i16",
    2,
    "int16_t",
    Int16Array,
    (d, o) => d.getInt16(o, true),
    (d, o, v) => d.setInt16(o, v, true),
  ),
  u32: integer(
    "u32",
    4,
    "uint32_t",
    Uint32Array,
    (d, o) => d.getUint32(o, true),
    (d, o, v) => d.setUint32(o, v, true),
  ),
  i32: integer(
    "i32",
    4,
    "int32_t",
    Int32Array,
    (d, o) => d.getInt32(o, true),
    (d, o, v) => d.setInt32(o, v, true),
  ),
  u64: bigInteger(
    "u64",
    "uint64_t",
    BigUint64Array,
    (d, o) => d.getBigUint64(o, true),
    (d, o, v) => d.setBigUint64(o, v, true),
  ),
  i64: bigInteger(
    "i64",
    "int64_t",
    BigInt64Array,
    (d, o) => d.getBigInt64(o, true),
    (d, o, v) => d.setBigInt64(o, v, true),
  ),
  f32: float(
    "f32",
    4,
    "float",
    Float32Array,
    (d, o) => d.getFloat32(o, true),
    (d, o, v) => d.setFloat32(o, v, true),
  ),
  f64: float(
    "f64",
    8,
    "double",
    Float64Array,
    (d, o) => d.getFloat64(o, true),
    (d, o, v) => d.setFloat64(o, v, true),
  ),
  bool: {
    kind: "bool",
    size: 1,
    align: 1,
    c: "bool",
    py: "ctypes.c_bool",
    typed: Uint8Array,
    read: (d, o) => d.getUint8(o) !== 0,
    check(value, path): void {
      if (typeof value !== "boolean") {
        throw new TypeError(`Cannot set ${path}: expected a boolean, got ${typeName(value)}`);
      }
    },
    write: (d, o, v) => d.setUint8(o, v ? 1 : 0),
  },
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Bytes `text` takes in UTF-8 (a lone surrogate becomes U+FFFD, 3 bytes), without encoding it. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit < 0xdc00 && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next < 0xe000) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * A `char[length]` string: UTF-8, at most length - 1 bytes so that a C
 * reader always finds a NUL; the rest is zeroed. Reading stops at the first
 * NUL or the end of the field (a peer may fill all of it).
 */
export function charElement(length: number): Element {
  return {
    kind: "char",
    size: length,
    align: 1,
    c: "char",
    py: `ctypes.c_char * ${length}`,
    read(dv, offset): string {
      const bytes = new Uint8Array(dv.buffer, dv.byteOffset + offset, length);
      const end = bytes.indexOf(0);
      return decoder.decode(end < 0 ? bytes : bytes.subarray(0, end));
    },
    check(value, path): void {
      if (typeof value !== "string") {
        throw new TypeError(`Cannot set ${path}: expected a string, got ${typeName(value)}`);
      }
      if (value.includes("\0")) {
        throw new TypeError(`Cannot set ${path}: the string contains a NUL character`);
      }
      const bytes = utf8Length(value);
      if (bytes > length - 1) {
        throw new RangeError(
          `Cannot set ${path}: the string is ${bytes} bytes in UTF-8; a char[${length}] holds at most ${
            length - 1
          } and a NUL`,
        );
      }
    },
    write(dv, offset, value): void {
      const bytes = new Uint8Array(dv.buffer, dv.byteOffset + offset, length);
      const { written } = encoder.encodeInto(value as string, bytes);
      bytes.fill(0, written);
    },
  };
}

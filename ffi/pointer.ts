/**
 * Pointers, C strings and structs. Addresses are numbers; structs are read
 * and written through DataViews with the platform's layouts.
 *
 * @module
 */
import type { FieldLayout, StructLayout } from "../platform/types.ts";
import { backend } from "./libc.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Encodes a string as a NUL-terminated UTF-8 C string.
 *
 * @param value The string.
 * @param what What the string is, for the error message ("shm name").
 * @throws {TypeError} When `value` is not a string or contains a NUL.
 */
export function cString(value: unknown, what: string): Uint8Array<ArrayBuffer> {
  if (typeof value !== "string") {
    throw new TypeError(`Cannot use ${what}: expected a string, got ${typeName(value)}`);
  }
  if (value.includes("\0")) {
    throw new TypeError(`Cannot use ${what} ${JSON.stringify(value)}: it contains a NUL character`);
  }
  return encoder.encode(value + "\0");
}

/** A short name for a value's type, for error messages. */
export function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return value.constructor?.name ?? "an object";
  return typeof value;
}

/**
 * UNSAFE: a Uint8Array over `length` bytes at `address`. Nothing tracks its
 * lifetime; touching it after the memory is gone crashes the process.
 */
export function unsafeView(address: number, length: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(backend.arrayBuffer(address, length));
}

/** UNSAFE: the address of a view's first byte. */
export function unsafeAddressOf(view: ArrayBufferView): number {
  return backend.addressOf(view);
}

/**
 * UNSAFE: reads a NUL-terminated UTF-8 string at `address`, at most
 * `maxLength` bytes.
 */
export function unsafeReadCString(address: number, maxLength = 4096): string {
  // Read a byte at a time: a larger view could run past the string's page.
  let length = 0;
  while (length < maxLength && unsafeView(address + length, 1)[0] !== 0) length++;
  return decoder.decode(unsafeView(address, length));
}

/** A zeroed buffer of a struct's size, aligned for any of its fields. */
export function allocStruct(layout: StructLayout): Uint8Array<ArrayBuffer> {
  // ArrayBuffers are 8-byte (or more) aligned in both runtimes.
  return new Uint8Array(Math.max(layout.size, 1));
}

function field(layout: StructLayout, name: string): FieldLayout {
  const found = layout.fields[name];
  if (found === undefined) throw new Error(`Cannot find struct field ${name}`);
  return found;
}

/** Reads an integer field of a struct (little-endian, as both targets are). */
export function readField(bytes: Uint8Array, layout: StructLayout, name: string): number {
  const f = field(layout, name);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const signed = f.kind === "int";
  switch (f.size) {
    case 1:
      return signed ? view.getInt8(f.offset) : view.getUint8(f.offset);
    case 2:
      return signed ? view.getInt16(f.offset, true) : view.getUint16(f.offset, true);
    case 4:
      return signed ? view.getInt32(f.offset, true) : view.getUint32(f.offset, true);
    case 8:
      return Number(
        signed ? view.getBigInt64(f.offset, true) : view.getBigUint64(f.offset, true),
      );
    default:
      throw new Error(`Cannot read struct field ${name}: size ${f.size}`);
  }
}

/** Writes an integer field of a struct. */
export function writeField(
  bytes: Uint8Array,
  layout: StructLayout,
  name: string,
  value: number,
): void {
  const f = field(layout, name);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (f.size) {
    case 1:
      view.setUint8(f.offset, value & 0xff);
      return;
    case 2:
      view.setUint16(f.offset, value & 0xffff, true);
      return;
    case 4:
      view.setUint32(f.offset, value >>> 0, true);
      return;
    case 8:
      view.setBigInt64(f.offset, BigInt(value), true);
      return;
    default:
      throw new Error(`Cannot write struct field ${name}: size ${f.size}`);
  }
}

/** A scalar type that {@linkcode unsafeRead} and {@linkcode unsafeWrite} handle. */
export type ScalarType =
  | "i8"
  | "u8"
  | "i16"
  | "u16"
  | "i32"
  | "u32"
  | "i64"
  | "u64"
  | "f32"
  | "f64";

const SCALAR_SIZE: Readonly<Record<ScalarType, number>> = {
  i8: 1,
  u8: 1,
  i16: 2,
  u16: 2,
  i32: 4,
  u32: 4,
  i64: 8,
  u64: 8,
  f32: 4,
  f64: 8,
};

function scalarView(address: number, type: ScalarType): DataView {
  const size = SCALAR_SIZE[type];
  if (size === undefined) throw new TypeError(`Cannot access a scalar of type ${String(type)}`);
  return new DataView(backend.arrayBuffer(address, size));
}

/**
 * UNSAFE: reads one scalar at `address` (native little-endian). 64-bit
 * integers come back as bigint. An invalid address crashes the process.
 */
export function unsafeRead(address: number, type: ScalarType): number | bigint {
  const view = scalarView(address, type);
  switch (type) {
    case "i8":
      return view.getInt8(0);
    case "u8":
      return view.getUint8(0);
    case "i16":
      return view.getInt16(0, true);
    case "u16":
      return view.getUint16(0, true);
    case "i32":
      return view.getInt32(0, true);
    case "u32":
      return view.getUint32(0, true);
    case "i64":
      return view.getBigInt64(0, true);
    case "u64":
      return view.getBigUint64(0, true);
    case "f32":
      return view.getFloat32(0, true);
    case "f64":
      return view.getFloat64(0, true);
  }
}

/** UNSAFE: writes one scalar at `address`. An invalid address crashes the process. */
export function unsafeWrite(address: number, type: ScalarType, value: number | bigint): void {
  const view = scalarView(address, type);
  switch (type) {
    case "i8":
      return view.setInt8(0, Number(value));
    case "u8":
      return view.setUint8(0, Number(value));
    case "i16":
      return view.setInt16(0, Number(value), true);
    case "u16":
      return view.setUint16(0, Number(value), true);
    case "i32":
      return view.setInt32(0, Number(value), true);
    case "u32":
      return view.setUint32(0, Number(value), true);
    case "i64":
      return view.setBigInt64(0, BigInt(value), true);
    case "u64":
      return view.setBigUint64(0, BigInt(value), true);
    case "f32":
      return view.setFloat32(0, Number(value), true);
    case "f64":
      return view.setFloat64(0, Number(value), true);
  }
}

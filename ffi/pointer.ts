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

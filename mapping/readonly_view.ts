/**
 * {@linkcode ReadOnlyView}: reading memory that must not be written.
 *
 * Memory mapped with PROT_READ only (a System V segment attached with
 * SHM_RDONLY, a read-only mapping) cannot be handed out as a `Uint8Array` or
 * `DataView`: the first write through one is a SIGSEGV, and a JavaScript
 * runtime cannot survive that. A `ReadOnlyView` offers the reading half of
 * `DataView` and `Uint8Array` (`getUint32`, `at`, `slice`, `copyTo`,
 * iteration, text decoding) and nothing that writes: its view of the memory
 * is private, the object is frozen, and copies (`slice`) are ordinary
 * writable arrays.
 *
 * @example Reading a read-only System V attachment
 * ```ts
 * import { SystemVSegment } from "@shmkit/shmkit";
 * const segment = SystemVSegment.create(4096);
 * try {
 *   using attachment = segment.attach({ readOnly: true });
 *   const memory = attachment.readOnlyView();
 *   console.log(memory.getUint32(0, true), memory.slice(0, 16));
 * } finally {
 *   segment.remove();
 * }
 * ```
 *
 * @module
 */
import { ClosedError } from "../core/errors.ts";
import { typeName } from "../ffi/pointer.ts";
import { checkInteger } from "../core/_validate.ts";

// Everything a ReadOnlyView calls is captured here, at module load: a method
// looked up at call time (Uint8Array.prototype.at, the buffer getter,
// TextDecoder.prototype.decode...) could have been replaced by then with one
// that writes through the view, and on PROT_READ memory that is a SIGSEGV.
const { apply, getOwnPropertyDescriptor, getPrototypeOf } = Reflect;
const freeze = Object.freeze;
const isView = ArrayBuffer.isView;
const U8 = Uint8Array;
const DV = DataView;
const TypedArrayPrototype = getPrototypeOf(U8.prototype) as object;

type Method = (...args: never[]) => unknown;

function method(prototype: object, name: PropertyKey): Method {
  const fn = getOwnPropertyDescriptor(prototype, name)?.value;
  if (typeof fn !== "function") throw new TypeError(`Cannot capture ${String(name)}`);
  return fn as Method;
}

function getter(prototype: object, name: PropertyKey): Method {
  const fn = getOwnPropertyDescriptor(prototype, name)?.get;
  if (typeof fn !== "function") throw new TypeError(`Cannot capture the ${String(name)} getter`);
  return fn as Method;
}

/** Calls a captured intrinsic on `self`; never looks anything up on the way. */
function call<T>(fn: Method, self: unknown, ...args: unknown[]): T {
  return apply(fn, self, args) as T;
}

const TA = {
  at: method(TypedArrayPrototype, "at"),
  indexOf: method(TypedArrayPrototype, "indexOf"),
  slice: method(TypedArrayPrototype, "slice"),
  set: method(TypedArrayPrototype, "set"),
  buffer: getter(TypedArrayPrototype, "buffer"),
  byteOffset: getter(TypedArrayPrototype, "byteOffset"),
  byteLength: getter(TypedArrayPrototype, "byteLength"),
};
const AB = {
  byteLength: getter(ArrayBuffer.prototype, "byteLength"),
  detached: getter(ArrayBuffer.prototype, "detached"),
};
const DVP = DataView.prototype;
const DVG = {
  buffer: getter(DVP, "buffer"),
  byteOffset: getter(DVP, "byteOffset"),
  byteLength: getter(DVP, "byteLength"),
};
const GET = {
  getInt8: method(DVP, "getInt8"),
  getUint8: method(DVP, "getUint8"),
  getInt16: method(DVP, "getInt16"),
  getUint16: method(DVP, "getUint16"),
  getInt32: method(DVP, "getInt32"),
  getUint32: method(DVP, "getUint32"),
  getBigInt64: method(DVP, "getBigInt64"),
  getBigUint64: method(DVP, "getBigUint64"),
  getFloat32: method(DVP, "getFloat32"),
  getFloat64: method(DVP, "getFloat64"),
};
const decoder = new TextDecoder();
const decode = method(TextDecoder.prototype, "decode");

function decodeBytes(bytes: Uint8Array): string {
  // A copy: decode() reading the live memory is fine, but a replaced
  // subarray or a decoder hook must not get the mapped view itself.
  return call<string>(decode, decoder, call<Uint8Array>(TA.slice, bytes));
}

function isArrayBuffer(value: unknown): value is ArrayBuffer {
  try {
    call(AB.byteLength, value); // throws for anything but an ArrayBuffer
    return true;
  } catch {
    return false;
  }
}

/** Resolves a relative index the way `Uint8Array.prototype.slice` does. */
function relative(value: unknown, length: number, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  const n = checkInteger(value, what, -Number.MAX_SAFE_INTEGER);
  return n < 0 ? (length + n > 0 ? length + n : 0) : (n < length ? n : length);
}

/**
 * A read-only accessor over memory: the reading methods of `DataView` and
 * `Uint8Array`, and no way to write. Use it for memory mapped PROT_READ,
 * where a writable TypedArray would crash the process on its first write.
 *
 * Reads after the memory is released (the attachment detached) throw
 * {@linkcode ClosedError}; they never touch unmapped memory.
 *
 * The multi-byte getters follow `DataView`: big-endian unless
 * `littleEndian` is true. C structs on x86_64 and aarch64 are little-endian,
 * so pass `true` when reading what a C program wrote.
 *
 * @example
 * ```ts
 * import { ReadOnlyView } from "@shmkit/shmkit";
 * const memory = new ReadOnlyView(new TextEncoder().encode("hello").buffer);
 * console.log(memory.toString(), memory.at(-1), memory.slice(1, 3));
 * ```
 */
export class ReadOnlyView implements Iterable<number> {
  readonly #bytes: Uint8Array<ArrayBuffer>;
  readonly #data: DataView<ArrayBuffer>;
  readonly #length: number;
  readonly #what: string;

  /**
   * Wraps `byteLength` bytes of `buffer` from `byteOffset`. The buffer is
   * not copied: the view shows later changes made by others.
   *
   * @param buffer The memory to read.
   * @param byteOffset Where the view starts (default 0).
   * @param byteLength How many bytes (default: to the end of the buffer).
   * @param what What the memory is, for error messages (default "memory").
   * @throws {TypeError} When `buffer` is not an ArrayBuffer.
   * @throws {RangeError} When the range runs past the end of the buffer.
   */
  constructor(buffer: ArrayBuffer, byteOffset = 0, byteLength?: number, what = "memory") {
    if (!isArrayBuffer(buffer)) {
      throw new TypeError(
        `Cannot create a ReadOnlyView: expected an ArrayBuffer, got ${typeName(buffer)}`,
      );
    }
    const total = call<number>(AB.byteLength, buffer);
    const offset = checkInteger(byteOffset, "byteOffset", 0, total);
    const length = byteLength === undefined
      ? total - offset
      : checkInteger(byteLength, "byteLength", 0, total - offset);
    this.#bytes = new U8(buffer, offset, length);
    this.#data = new DV(buffer, offset, length);
    this.#length = length;
    this.#what = what;
    // A write like `view[0] = 1` then throws TypeError instead of quietly
    // adding a property that looks like it worked.
    freeze(this);
  }

  /** Throws once the underlying buffer was detached (memory released). */
  #live(action: string): Uint8Array<ArrayBuffer> {
    if (this.closed) throw new ClosedError(action, this.#what);
    return this.#bytes;
  }

  #dataView(action: string): DataView<ArrayBuffer> {
    this.#live(action);
    return this.#data;
  }

  /** The length in bytes; 0 once the memory is released. */
  get byteLength(): number {
    return this.closed ? 0 : this.#length;
  }

  /** Whether the memory was released (the attachment detached or the mapping closed). */
  get closed(): boolean {
    return call<boolean>(AB.detached, call(TA.buffer, this.#bytes));
  }

  /** `"ReadOnlyView"`, for `Object.prototype.toString`. */
  get [Symbol.toStringTag](): string {
    return "ReadOnlyView";
  }

  /**
   * The byte at `index`; negative indexes count from the end, as in
   * `Array.prototype.at`.
   *
   * @returns The byte, or undefined when `index` is out of range.
   * @throws {ClosedError} When the memory was released.
   */
  at(index: number): number | undefined {
    return call<number | undefined>(TA.at, this.#live("read"), index);
  }

  /**
   * The index of the first byte equal to `value` at or after `fromIndex`,
   * or -1 (e.g. to find the NUL ending a C string).
   *
   * @throws {ClosedError} When the memory was released.
   */
  indexOf(value: number, fromIndex = 0): number {
    return call<number>(TA.indexOf, this.#live("read"), value, fromIndex);
  }

  /**
   * Reads a signed byte, as `DataView.prototype.getInt8`.
   *
   * @throws {RangeError} When `byteOffset` is out of range.
   * @throws {ClosedError} When the memory was released.
   */
  getInt8(byteOffset: number): number {
    return call<number>(GET.getInt8, this.#dataView("read"), byteOffset);
  }

  /** Reads an unsigned byte, as `DataView.prototype.getUint8`. */
  getUint8(byteOffset: number): number {
    return call<number>(GET.getUint8, this.#dataView("read"), byteOffset);
  }

  /** Reads an int16, as `DataView.prototype.getInt16` (big-endian unless `littleEndian`). */
  getInt16(byteOffset: number, littleEndian?: boolean): number {
    return call<number>(GET.getInt16, this.#dataView("read"), byteOffset, littleEndian);
  }

  /** Reads a uint16, as `DataView.prototype.getUint16` (big-endian unless `littleEndian`). */
  getUint16(byteOffset: number, littleEndian?: boolean): number {
    return call<number>(GET.getUint16, this.#dataView("read"), byteOffset, littleEndian);
  }

  /** Reads an int32, as `DataView.prototype.getInt32` (big-endian unless `littleEndian`). */
  getInt32(byteOffset: number, littleEndian?: boolean): number {
    return call<number>(GET.getInt32, this.#dataView("read"), byteOffset, littleEndian);
  }

  /** Reads a uint32, as `DataView.prototype.getUint32` (big-endian unless `littleEndian`). */
  getUint32(byteOffset: number, littleEndian?: boolean): number {
    return call<number>(GET.getUint32, this.#dataView("read"), byteOffset, littleEndian);
  }

  /** Reads an int64, as `DataView.prototype.getBigInt64` (big-endian unless `littleEndian`). */
  getBigInt64(byteOffset: number, littleEndian?: boolean): bigint {
    return call<bigint>(GET.getBigInt64, this.#dataView("read"), byteOffset, littleEndian);
  }

  /** Reads a uint64, as `DataView.prototype.getBigUint64` (big-endian unless `littleEndian`). */
  getBigUint64(byteOffset: number, littleEndian?: boolean): bigint {
    return call<bigint>(GET.getBigUint64, this.#dataView("read"), byteOffset, littleEndian);
  }

  /** Reads a float32, as `DataView.prototype.getFloat32` (big-endian unless `littleEndian`). */
  getFloat32(byteOffset: number, littleEndian?: boolean): number {
    return call<number>(GET.getFloat32, this.#dataView("read"), byteOffset, littleEndian);
  }

  /** Reads a float64, as `DataView.prototype.getFloat64` (big-endian unless `littleEndian`). */
  getFloat64(byteOffset: number, littleEndian?: boolean): number {
    return call<number>(GET.getFloat64, this.#dataView("read"), byteOffset, littleEndian);
  }

  /**
   * A COPY of bytes `start` to `end` (as `Uint8Array.prototype.slice`): an
   * ordinary array you may write to; writing it changes nothing shared.
   *
   * @throws {ClosedError} When the memory was released.
   */
  slice(start?: number, end?: number): Uint8Array<ArrayBuffer> {
    const bytes = this.#live("read");
    const from = relative(start, this.#length, 0, "start");
    const to = relative(end, this.#length, this.#length, "end");
    return call<Uint8Array<ArrayBuffer>>(TA.slice, bytes, from, from > to ? from : to);
  }

  /**
   * A read-only view of bytes `start` to `end`, sharing this memory (no copy).
   *
   * @throws {ClosedError} When the memory was released.
   */
  subarray(start?: number, end?: number): ReadOnlyView {
    const bytes = this.#live("read");
    const from = relative(start, this.#length, 0, "start");
    const to = relative(end, this.#length, this.#length, "end");
    return new ReadOnlyView(
      call<ArrayBuffer>(TA.buffer, bytes),
      call<number>(TA.byteOffset, bytes) + from,
      to > from ? to - from : 0,
      this.#what,
    );
  }

  /**
   * Copies every byte of this view into `target` from `targetOffset`.
   * Copy part of it with `subarray(start, end).copyTo(target)`.
   *
   * @param target Where the bytes go (a writable TypedArray or DataView of yours).
   * @param targetOffset Byte offset in `target` (default 0).
   * @returns The number of bytes copied.
   * @throws {TypeError} When `target` is not an ArrayBufferView.
   * @throws {RangeError} When the bytes don't fit in `target` from `targetOffset`.
   * @throws {ClosedError} When the memory was released.
   */
  copyTo(target: ArrayBufferView, targetOffset = 0): number {
    if (!isView(target)) {
      throw new TypeError(
        `Cannot copy a ReadOnlyView: expected a TypedArray or DataView target, got ${
          typeName(target)
        }`,
      );
    }
    const bytes = this.#live("read");
    const length = this.#length;
    // The target is the caller's; read its extent with captured getters all the same.
    const of = target instanceof DV ? DVG : TA;
    const targetBytes = new U8(
      call<ArrayBuffer>(of.buffer, target),
      call<number>(of.byteOffset, target),
      call<number>(of.byteLength, target),
    );
    const room = call<number>(TA.byteLength, targetBytes);
    const offset = checkInteger(targetOffset, "targetOffset", 0, room);
    if (room - offset < length) {
      throw new RangeError(
        `Cannot copy ${length} bytes to targetOffset ${offset}: the target has ${room} bytes`,
      );
    }
    call(TA.set, targetBytes, bytes, offset);
    return length;
  }

  /**
   * Decodes the bytes as UTF-8 (invalid sequences become U+FFFD).
   *
   * @throws {ClosedError} When the memory was released.
   */
  toString(): string {
    return decodeBytes(this.#live("read"));
  }

  /**
   * Decodes the NUL-terminated UTF-8 string starting at `byteOffset` (to
   * the end of the view when there is no NUL), as C programs store text.
   *
   * @throws {RangeError} When `byteOffset` is out of range.
   * @throws {ClosedError} When the memory was released.
   */
  cString(byteOffset = 0): string {
    const bytes = this.#live("read");
    const from = checkInteger(byteOffset, "byteOffset", 0, this.#length);
    const nul = call<number>(TA.indexOf, bytes, 0, from);
    return call<string>(
      decode,
      decoder,
      call<Uint8Array>(TA.slice, bytes, from, nul === -1 ? this.#length : nul),
    );
  }

  /** The bytes one by one, e.g. for `[...view]`. */
  *[Symbol.iterator](): Iterator<number> {
    const bytes = this.#live("read");
    for (let i = 0; i < this.#length; i++) {
      // Re-check each step: the memory may be released while iterating.
      if (this.closed) throw new ClosedError("read", this.#what);
      yield bytes[i]!;
    }
  }

  /**
   * UNSAFE: a writable `Uint8Array` over the same memory. When the memory is
   * mapped read-only (PROT_READ, e.g. `attach({ readOnly: true })`) the
   * first write through it kills the whole process with SIGSEGV; nothing
   * can catch that. Reading through it is safe until the memory is released,
   * after which it has length 0.
   */
  unsafeUint8Array(): Uint8Array<ArrayBuffer> {
    const bytes = this.#live("create a view");
    return new U8(
      call<ArrayBuffer>(TA.buffer, bytes),
      call<number>(TA.byteOffset, bytes),
      this.#length,
    );
  }
}

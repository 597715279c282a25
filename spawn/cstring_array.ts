/**
 * {@linkcode CStringArray}: argv and envp as C wants them, a
 * NULL-terminated `char *[]`.
 *
 * @module
 */
import { cString, typeName, unsafeAddressOf } from "../ffi/pointer.ts";

const encoder = new TextEncoder();

/**
 * A NULL-terminated `char *[]` (argv, envp): every string in one buffer,
 * and an array of their addresses. Keep it referenced until the call that
 * reads it returns.
 */
export class CStringArray {
  /** The `char *[]`, NULL-terminated: pass it where C wants `char *const argv[]`. */
  readonly pointers: BigUint64Array<ArrayBuffer>;
  /** The strings' bytes, which `pointers` point into. */
  readonly strings: Uint8Array<ArrayBuffer>;
  /** How many strings (without the NULL). */
  readonly length: number;

  /**
   * Encodes strings as NUL-terminated UTF-8.
   *
   * @param values The strings.
   * @param what What they are, for errors ("argv").
   * @throws {TypeError} When `values` is not an array, or an entry is not a string or has a NUL.
   */
  constructor(values: readonly string[], what: string) {
    if (!Array.isArray(values)) {
      throw new TypeError(
        `Cannot use ${what}: expected an array of strings, got ${typeName(values)}`,
      );
    }
    let bound = 1;
    for (let i = 0; i < values.length; i++) {
      const value = values[i];
      // cString throws the right TypeError; the common case skips its encoding.
      if (typeof value !== "string" || value.includes("\0")) cString(value, `${what}[${i}]`);
      bound += (value as string).length * 3 + 1;
    }
    // One encoding of every string, NULs between: a UTF-16 unit is at most 3 UTF-8 bytes.
    // A buffer made from an ArrayBuffer is never stored inside the JS heap, so it can't move.
    const strings = new Uint8Array(new ArrayBuffer(bound));
    const { written } = encoder.encodeInto(values.join("\0") + "\0", strings);
    this.strings = strings.subarray(0, Math.max(written, 1));
    this.pointers = new BigUint64Array(new ArrayBuffer((values.length + 1) * 8));
    // Addresses are below 2^53: write them as two little-endian 32-bit halves, no BigInt.
    const halves = new Uint32Array(this.pointers.buffer);
    const base = unsafeAddressOf(strings);
    let start = 0;
    for (let i = 0; i < values.length; i++) {
      const address = base + start;
      halves[2 * i] = address % 0x1_0000_0000;
      halves[2 * i + 1] = Math.floor(address / 0x1_0000_0000);
      start = strings.indexOf(0, start) + 1;
    }
    this.length = values.length;
  }
}

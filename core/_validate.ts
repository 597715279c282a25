/**
 * Argument checks, run before any C call: TypeError for a wrong type,
 * RangeError for a value out of range.
 *
 * @module
 */
import { typeName } from "../ffi/pointer.ts";

/**
 * Checks that `value` is an integer in `[min, max]`.
 *
 * @throws {TypeError} When it is not a number.
 * @throws {RangeError} When it is NaN, fractional or out of range.
 */
export function checkInteger(
  value: unknown,
  what: string,
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
): number {
  if (typeof value !== "number") {
    throw new TypeError(`Cannot use ${what}: expected a number, got ${typeName(value)}`);
  }
  if (!Number.isInteger(value)) {
    throw new RangeError(`Cannot use ${what} ${value}: expected an integer`);
  }
  if (value < min || value > max) {
    throw new RangeError(`Cannot use ${what} ${value}: expected ${min} to ${max}`);
  }
  return value;
}

/** Checks a byte size: an integer from 1 (or `min`) to 2^53 - 1 (or `max`). */
export function checkSize(value: unknown, what: string, min = 1, max?: number): number {
  return checkInteger(value, what, min, max);
}

/** Checks a file descriptor number: an integer from 0 to 2^31 - 1. */
export function checkFd(value: unknown, what = "fd"): number {
  return checkInteger(value, what, 0, 0x7fffffff);
}

/** Checks a permission mode: an integer from 0 to 0o7777. */
export function checkMode(value: unknown, what = "mode"): number {
  if (typeof value === "number" && Number.isInteger(value) && (value < 0 || value > 0o7777)) {
    throw new RangeError(
      `Cannot use ${what} 0o${value.toString(8)}: expected 0o0 to 0o7777`,
    );
  }
  return checkInteger(value, what, 0, 0o7777);
}

/** Checks that `value` is a boolean, or undefined (then `fallback`). */
export function checkBoolean(value: unknown, what: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") {
    throw new TypeError(`Cannot use ${what}: expected a boolean, got ${typeName(value)}`);
  }
  return value;
}

/** Checks that options are an object, or undefined. */
export function checkOptions<T extends object>(value: T | undefined, what: string): Partial<T> {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`Cannot use ${what}: expected an options object, got ${typeName(value)}`);
  }
  return value;
}

/** Checks that `value` is one of `choices`. */
export function checkChoice<T extends string>(
  value: unknown,
  what: string,
  choices: readonly T[],
): T {
  if (typeof value !== "string") {
    throw new TypeError(`Cannot use ${what}: expected a string, got ${typeName(value)}`);
  }
  if (!(choices as readonly string[]).includes(value)) {
    throw new RangeError(
      `Cannot use ${what} ${JSON.stringify(value)}: expected one of ${choices.join(", ")}`,
    );
  }
  return value as T;
}

/**
 * The error shmkit throws when a C call fails: {@linkcode ErrnoError}, with
 * the call, the errno code and number, and the object involved.
 *
 * Bad arguments never reach C: they throw `TypeError` (wrong type) or
 * `RangeError` (out of range) first.
 *
 * @module
 */
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { unsafeReadCString } from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";

/** What a failed call was acting on, and what the user can do about it. */
export interface ErrnoErrorOptions {
  /** A file path or a shared memory object's name. */
  readonly path?: string;
  /** A System V IPC key. */
  readonly key?: number;
  /** A System V IPC id. */
  readonly id?: number;
  /** A file descriptor. */
  readonly fd?: number;
  /** A sentence telling the user what to do; appended to the message. */
  readonly hint?: string;
}

// Several names share a number on Linux (EWOULDBLOCK = EAGAIN, EDEADLOCK =
// EDEADLK, ENOTSUP = EOPNOTSUPP); the first name here wins.
const PREFERRED = ["EAGAIN", "EDEADLK", "EOPNOTSUPP"];
const names = new Map<number, string>();
for (const name of PREFERRED) {
  const value = platform.errno[name];
  if (value !== undefined) names.set(value, name);
}
for (const [name, value] of Object.entries(platform.errno)) {
  if (!names.has(value)) names.set(value, name);
}

/** The symbolic name of an errno number ("EEXIST"), or "E<number>" if unknown. */
export function errnoName(value: number): string {
  return names.get(value) ?? `E${value}`;
}

/** The C library's description of an errno number ("File exists"). */
export function errnoDescription(value: number): string {
  const address = unsafeLibc.strerror(value);
  return address === 0 ? `errno ${value}` : unsafeReadCString(address);
}

function describeSubject(options: ErrnoErrorOptions): string {
  const parts: string[] = [];
  if (options.path !== undefined) parts.push(JSON.stringify(options.path));
  if (options.key !== undefined) {
    parts.push(`key 0x${(options.key >>> 0).toString(16).padStart(8, "0")}`);
  }
  if (options.id !== undefined) parts.push(`id ${options.id}`);
  if (options.fd !== undefined) parts.push(`fd ${options.fd}`);
  return parts.length > 0 ? ` ${parts.join(" ")}` : "";
}

/**
 * A C call failed. Carries the call (`syscall`), the errno name (`code`) and
 * number (`errno`), and the path, key, id or fd involved.
 *
 * @example Telling "already exists" from other failures
 * ```ts
 * import { ErrnoError, SharedMemory } from "@shmkit/shmkit";
 * try {
 *   SharedMemory.open("/no-such-object");
 * } catch (error) {
 *   if (!(error instanceof ErrnoError) || error.code !== "ENOENT") throw error;
 * }
 * ```
 */
export class ErrnoError extends Error {
  /** The errno name, such as `"EEXIST"`. */
  readonly code: string;
  /** The errno number, such as 17. */
  readonly errno: number;
  /** The C call that failed, such as `"shm_open"`. */
  readonly syscall: string;
  /** The file path or shared memory name involved, if any. */
  declare readonly path?: string;
  /** The System V key involved, if any. */
  declare readonly key?: number;
  /** The System V id involved, if any. */
  declare readonly id?: number;
  /** The file descriptor involved, if any. */
  declare readonly fd?: number;

  /**
   * Builds the error for `syscall` failing with `errnoValue`.
   *
   * @param syscall The C call, e.g. "shm_open".
   * @param errnoValue The errno number.
   * @param options The object involved and a hint for the user.
   */
  constructor(syscall: string, errnoValue: number, options: ErrnoErrorOptions = {}) {
    const code = errnoName(errnoValue);
    const hint = options.hint === undefined ? "" : `: ${options.hint}`;
    super(
      `Cannot ${syscall}${describeSubject(options)}: ${code} (${
        errnoDescription(errnoValue)
      })${hint}`,
    );
    this.name = "ErrnoError";
    this.code = code;
    this.errno = errnoValue;
    this.syscall = syscall;
    if (options.path !== undefined) this.path = options.path;
    if (options.key !== undefined) this.key = options.key;
    if (options.id !== undefined) this.id = options.id;
    if (options.fd !== undefined) this.fd = options.fd;
  }
}

/** A hint chosen by errno code. */
export type Hints = Readonly<Record<string, string>>;

function withHint(
  options: ErrnoErrorOptions,
  hints: Hints | undefined,
  value: number,
): ErrnoErrorOptions {
  const hint = hints?.[errnoName(value)];
  return hint === undefined ? options : { ...options, hint };
}

/**
 * Throws the errno error when a call that reports failure as -1 (and sets
 * errno) returned -1; returns the result otherwise.
 */
export function check(
  result: number,
  syscall: string,
  options: ErrnoErrorOptions = {},
  hints?: Hints,
): number {
  if (result !== -1) return result;
  const value = errno();
  throw new ErrnoError(syscall, value, withHint(options, hints, value));
}

/**
 * Throws when a call that returns its error number (posix_spawn,
 * posix_fallocate, pthread_*) returned non-zero.
 */
export function checkReturned(
  result: number,
  syscall: string,
  options: ErrnoErrorOptions = {},
  hints?: Hints,
): void {
  if (result === 0) return;
  throw new ErrnoError(syscall, result, withHint(options, hints, result));
}

/** An object was used after `close()`. */
export class ClosedError extends Error {
  /**
   * Builds the error for `action` on a closed `what`.
   *
   * @param action What was attempted ("create a view").
   * @param what The object ("mapping").
   */
  constructor(action: string, what: string) {
    super(`Cannot ${action}: the ${what} is closed`);
    this.name = "ClosedError";
  }
}

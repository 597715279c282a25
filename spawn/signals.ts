/**
 * Signals by name: `"SIGTERM"` to its number on this platform and back,
 * and `sigset_t` as {@linkcode SignalSet}.
 *
 * @module
 */
import { check } from "../core/errors.ts";
import { unsafeLibc } from "../ffi/libc.ts";
import { allocStruct, typeName } from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";
import { checkInteger } from "../core/_validate.ts";
import type { SignalName } from "../platform/signal_names.ts";

export type { SignalName } from "../platform/signal_names.ts";

const C = platform.constants;

/**
 * Resolves a signal given by name (`"SIGTERM"`) or number to its number on
 * this platform. A name from another platform's table (`"SIGINFO"` on
 * Linux) is a RangeError.
 *
 * @throws {TypeError} When `signal` is neither a string nor a number.
 * @throws {RangeError} For an unknown name or a number out of range.
 */
export function signalNumber(signal: SignalName | number): number {
  if (typeof signal === "number") return checkInteger(signal, "signal", 0, C._NSIG - 1);
  if (typeof signal !== "string") {
    throw new TypeError(`Cannot use signal: expected a name or number, got ${typeName(signal)}`);
  }
  const value = platform.signals[signal];
  if (value === undefined) {
    throw new RangeError(
      `Cannot use signal ${JSON.stringify(signal)}: unknown here; expected one of ${
        Object.keys(platform.signals).join(", ")
      }`,
    );
  }
  return value;
}

const signalNames = new Map<number, SignalName>();
// Aliases (SIGIOT, SIGCLD, SIGPOLL) share numbers; prefer the common name.
for (const name of ["SIGABRT", "SIGCHLD", "SIGIO"] as const) {
  const value = platform.signals[name];
  if (value !== undefined) signalNames.set(value, name);
}
for (const [name, value] of Object.entries(platform.signals)) {
  if (!signalNames.has(value)) signalNames.set(value, name as SignalName);
}

/** The name of a signal number (`15` → `"SIGTERM"`), or `"SIG<number>"` if unnamed (real-time). */
export function signalName(value: number): SignalName | `SIG${number}` {
  return signalNames.get(value) ?? `SIG${value}`;
}

/**
 * A `sigset_t`, built with `sigemptyset(3)`, `sigfillset(3)` and
 * `sigaddset(3)`.
 *
 * @example Every signal but SIGKILL and SIGSTOP
 * ```ts
 * import { SignalSet } from "@shmkit/shmkit/raw";
 * const all = SignalSet.full();
 * const none = SignalSet.empty().add("SIGTERM");
 * ```
 */
export class SignalSet {
  /** The C `sigset_t` bytes. */
  readonly bytes: Uint8Array<ArrayBuffer>;

  private constructor() {
    this.bytes = allocStruct(platform.structs.sigset_t);
  }

  /** An empty set: `sigemptyset(&set)`. */
  static empty(): SignalSet {
    const set = new SignalSet();
    check(unsafeLibc.sigemptyset(set.bytes), "sigemptyset");
    return set;
  }

  /** Every signal: `sigfillset(&set)` (glibc leaves out the two it uses internally). */
  static full(): SignalSet {
    const set = new SignalSet();
    check(unsafeLibc.sigfillset(set.bytes), "sigfillset");
    return set;
  }

  /**
   * Every signal number from 1 to `_NSIG - 1`, the C library's reserved ones
   * included: `sigfillset(&set)`, then the bits `sigfillset` and `sigaddset`
   * leave out. glibc reserves signals 32 and 33 for its threads and sets
   * them to SIG_IGN in every posix_spawn child unless they are in the
   * SETSIGDEF set; a program started by `fork` and `exec` would have them at
   * SIG_DFL. Bits are set as Linux and Darwin lay out `sigset_t` on these
   * little-endian targets: signal n is bit n - 1.
   */
  static every(): SignalSet {
    const set = SignalSet.full();
    for (let signal = 1; signal < C._NSIG; signal++) {
      set.bytes[(signal - 1) >> 3]! |= 1 << ((signal - 1) & 7);
    }
    return set;
  }

  /**
   * Adds a signal: `sigaddset(&set, signum)`.
   *
   * @throws {RangeError} For an unknown signal.
   * @throws {ErrnoError} `sigaddset` with EINVAL for a number the C library refuses.
   */
  add(signal: SignalName | number): this {
    const value = signalNumber(signal);
    check(unsafeLibc.sigaddset(this.bytes, value), "sigaddset");
    return this;
  }
}

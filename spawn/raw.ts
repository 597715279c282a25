/**
 * Thin wrappers over `posix_spawn(3)` and friends: the owned C structs
 * (`posix_spawn_file_actions_t`, `posix_spawnattr_t`, `sigset_t`), the spawn
 * calls themselves, `waitpid(2)` and `kill(2)`, and wait-status decoding.
 *
 * These mirror the C API one call to one call; they check their arguments
 * and turn error numbers into {@linkcode ErrnoError}, but choose nothing for
 * you (no signal reset, no fd hygiene). {@linkcode spawn} in `spawn/spawn.ts`
 * builds a safe child process on top of them.
 *
 * posix_spawn returns its error number instead of setting errno, and glibc
 * reports a failed exec (a missing program, a non-executable file) that way
 * too: the failed child never becomes visible, and glibc reaps it.
 *
 * @example Run /bin/true with the raw calls
 * ```ts
 * import { PosixSpawnAttributes, PosixSpawnFileActions, posixSpawn, waitpid } from "@shmkit/shmkit/raw";
 * using actions = new PosixSpawnFileActions();
 * using attributes = new PosixSpawnAttributes();
 * const pid = posixSpawn("/bin/true", actions, attributes, ["true"], []);
 * const { status } = waitpid(pid);
 * console.log(status); // 0
 * ```
 *
 * @module
 */
import { check, checkReturned, ErrnoError } from "../core/errors.ts";
import { availableSymbols, errno, unsafeLibc } from "../ffi/libc.ts";
import { allocStruct, cString, typeName } from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";
import { checkFd, checkInteger, checkMode } from "../core/_validate.ts";
import { type SignalName, signalName, signalNumber, SignalSet } from "./signals.ts";

import { CStringArray } from "./cstring_array.ts";

export { type SignalName, signalName, signalNumber, SignalSet } from "./signals.ts";
export { CStringArray } from "./cstring_array.ts";

const C = platform.constants;

/** A constant the platform tables mark as missing (-1), as undefined. */
function present(value: number): number | undefined {
  return value === -1 ? undefined : value;
}

/**
 * The `POSIX_SPAWN_*` flags of {@linkcode PosixSpawnAttributes.setFlags},
 * with this platform's values. A flag the platform lacks is undefined
 * (`SETSID` before glibc 2.26, `USEVFORK` outside glibc): check before use.
 *
 * @example A new session, where the C library has it
 * ```ts
 * import { PosixSpawnAttributes, SpawnFlags } from "@shmkit/shmkit/raw";
 * using attributes = new PosixSpawnAttributes();
 * if (SpawnFlags.SETSID !== undefined) attributes.setFlags(SpawnFlags.SETSID);
 * ```
 */
export const SpawnFlags: {
  /** Reset the effective uid/gid to the real ones. */
  readonly RESETIDS: number;
  /** Put the child in the process group set by `setPgroup` (0: a new group). */
  readonly SETPGROUP: number;
  /** Reset the signals in the `setSigDefault` set to SIG_DFL. */
  readonly SETSIGDEF: number;
  /** Give the child the signal mask set by `setSigMask`. */
  readonly SETSIGMASK: number;
  /** Start a new session (`setsid`) in the child; undefined where the C library lacks it. */
  readonly SETSID: number | undefined;
  /** Obsolete in glibc (it always uses a vfork-like clone); undefined outside glibc. */
  readonly USEVFORK: number | undefined;
} = {
  RESETIDS: C.POSIX_SPAWN_RESETIDS,
  SETPGROUP: C.POSIX_SPAWN_SETPGROUP,
  SETSIGDEF: C.POSIX_SPAWN_SETSIGDEF,
  SETSIGMASK: C.POSIX_SPAWN_SETSIGMASK,
  SETSID: present(C.POSIX_SPAWN_SETSID),
  USEVFORK: present(C.POSIX_SPAWN_USEVFORK),
};

/** The name of a `POSIX_SPAWN_*` flag, without the prefix. */
export type SpawnFlag = keyof typeof SpawnFlags;

interface OwnedStruct {
  readonly bytes: Uint8Array<ArrayBuffer>;
  destroyed: boolean;
}

// A struct forgotten without destroy() still frees what glibc malloc'ed for it.
const actionsRegistry = new FinalizationRegistry<OwnedStruct>((held) => {
  if (!held.destroyed) unsafeLibc.posix_spawn_file_actions_destroy(held.bytes);
});
const attributesRegistry = new FinalizationRegistry<OwnedStruct>((held) => {
  if (!held.destroyed) unsafeLibc.posix_spawnattr_destroy(held.bytes);
});

function destroyedError(what: string): Error {
  return new Error(`Cannot use the ${what}: it was destroyed`);
}

/**
 * An owned `posix_spawn_file_actions_t`: the fd operations (dup2, close,
 * open, chdir) the child performs, in order, between the spawn and the exec.
 * `posix_spawn_file_actions_init` on construction,
 * `posix_spawn_file_actions_destroy` on {@linkcode destroy} (or `using`, or
 * garbage collection as a last resort).
 *
 * @example Give the child fd 7 as its fd 3
 * ```ts
 * import { PosixSpawnFileActions } from "@shmkit/shmkit/raw";
 * using actions = new PosixSpawnFileActions();
 * actions.addDup2(7, 3).addOpen(0, "/dev/null", 0, 0);
 * ```
 */
export class PosixSpawnFileActions implements Disposable {
  readonly #state: OwnedStruct;
  // Paths handed to C stay referenced until destroy (glibc copies them, others may not).
  #strings: Uint8Array[] = [];

  /**
   * `posix_spawn_file_actions_init(&actions)`.
   *
   * @throws {ErrnoError} `posix_spawn_file_actions_init` with ENOMEM.
   */
  constructor() {
    const bytes = allocStruct(platform.structs.posix_spawn_file_actions_t);
    checkReturned(unsafeLibc.posix_spawn_file_actions_init(bytes), "posix_spawn_file_actions_init");
    this.#state = { bytes, destroyed: false };
    actionsRegistry.register(this, this.#state, this);
  }

  /** Whether `posix_spawn_file_actions_addchdir_np` exists here (glibc 2.29+). */
  static get canChdir(): boolean {
    return availableSymbols.has("posix_spawn_file_actions_addchdir_np");
  }

  /** Whether `posix_spawn_file_actions_addclosefrom_np` exists here (glibc 2.34+). */
  static get canCloseFrom(): boolean {
    return availableSymbols.has("posix_spawn_file_actions_addclosefrom_np");
  }

  /** Whether {@linkcode destroy} was called. */
  get destroyed(): boolean {
    return this.#state.destroyed;
  }

  /** UNSAFE: the C struct's bytes, for a raw call. Valid until destroy. */
  get unsafeBytes(): Uint8Array<ArrayBuffer> {
    return this.#live();
  }

  #live(): Uint8Array<ArrayBuffer> {
    if (this.#state.destroyed) throw destroyedError("file actions");
    return this.#state.bytes;
  }

  /**
   * The child duplicates `fd` onto `newFd`:
   * `posix_spawn_file_actions_adddup2(&actions, fd, newfd)`. When both are
   * equal, glibc clears FD_CLOEXEC instead.
   *
   * @throws {RangeError} For a negative fd.
   * @throws {ErrnoError} EBADF for an fd above the process's limit; ENOMEM.
   */
  addDup2(fd: number, newFd: number): this {
    checkFd(fd);
    checkFd(newFd, "newFd");
    checkReturned(
      unsafeLibc.posix_spawn_file_actions_adddup2(this.#live(), fd, newFd),
      "posix_spawn_file_actions_adddup2",
      { fd: newFd },
    );
    return this;
  }

  /**
   * The child closes `fd`: `posix_spawn_file_actions_addclose(&actions, fd)`.
   * glibc does not fail the spawn when `fd` is not open.
   *
   * @throws {ErrnoError} EBADF for an fd above the process's limit.
   */
  addClose(fd: number): this {
    checkFd(fd);
    checkReturned(
      unsafeLibc.posix_spawn_file_actions_addclose(this.#live(), fd),
      "posix_spawn_file_actions_addclose",
      { fd },
    );
    return this;
  }

  /**
   * The child opens `path` as `fd`:
   * `posix_spawn_file_actions_addopen(&actions, fd, path, flags, mode)`.
   *
   * @param flags `O_*` flags from `platform.constants`.
   * @param mode Permissions when `O_CREAT` creates the file (default 0o600).
   * @throws {TypeError} When `path` is not a string or contains a NUL.
   * @throws {ErrnoError} EBADF for an fd above the limit; ENOMEM.
   */
  addOpen(fd: number, path: string, flags: number, mode = 0o600): this {
    checkFd(fd);
    const bytes = cString(path, "path");
    checkInteger(flags, "flags", -0x80000000, 0x7fffffff);
    checkMode(mode);
    checkReturned(
      unsafeLibc.posix_spawn_file_actions_addopen(this.#live(), fd, bytes, flags, mode),
      "posix_spawn_file_actions_addopen",
      { fd, path },
    );
    this.#strings.push(bytes);
    return this;
  }

  /**
   * The child changes directory:
   * `posix_spawn_file_actions_addchdir_np(&actions, path)` (glibc 2.29+).
   * A missing directory makes the spawn itself fail with ENOENT.
   *
   * @throws {TypeError} When `path` is not a string or contains a NUL.
   * @throws {Error} When this C library lacks the call ({@linkcode canChdir}).
   */
  addChdir(path: string): this {
    const bytes = cString(path, "path");
    const fn = unsafeLibc.posix_spawn_file_actions_addchdir_np;
    if (fn === undefined) {
      throw new Error(
        "Cannot add a chdir action: this C library lacks posix_spawn_file_actions_addchdir_np (glibc 2.29+)",
      );
    }
    checkReturned(fn(this.#live(), bytes), "posix_spawn_file_actions_addchdir_np", { path });
    this.#strings.push(bytes);
    return this;
  }

  /**
   * The child closes every fd from `fd` up:
   * `posix_spawn_file_actions_addclosefrom_np(&actions, fd)` (glibc 2.34+).
   *
   * @throws {Error} When this C library lacks the call ({@linkcode canCloseFrom}).
   */
  addCloseFrom(fd: number): this {
    checkFd(fd);
    const fn = unsafeLibc.posix_spawn_file_actions_addclosefrom_np;
    if (fn === undefined) {
      throw new Error(
        "Cannot add a closefrom action: this C library lacks posix_spawn_file_actions_addclosefrom_np (glibc 2.34+)",
      );
    }
    checkReturned(fn(this.#live(), fd), "posix_spawn_file_actions_addclosefrom_np", { fd });
    return this;
  }

  /** `posix_spawn_file_actions_destroy(&actions)`; idempotent. */
  destroy(): void {
    if (this.#state.destroyed) return;
    this.#state.destroyed = true;
    actionsRegistry.unregister(this);
    unsafeLibc.posix_spawn_file_actions_destroy(this.#state.bytes);
    this.#strings = [];
  }

  /** Calls {@linkcode destroy}, for `using`. */
  [Symbol.dispose](): void {
    this.destroy();
  }
}

/**
 * An owned `posix_spawnattr_t`: flags, signal mask, signals reset to their
 * default, and process group. `posix_spawnattr_init` on construction,
 * `posix_spawnattr_destroy` on {@linkcode destroy}.
 *
 * @example Default signal dispositions and an empty mask in the child
 * ```ts
 * import { PosixSpawnAttributes, SignalSet, SpawnFlags } from "@shmkit/shmkit/raw";
 * using attributes = new PosixSpawnAttributes();
 * attributes.setSigDefault(SignalSet.full()).setSigMask(SignalSet.empty());
 * attributes.setFlags(SpawnFlags.SETSIGDEF | SpawnFlags.SETSIGMASK);
 * ```
 */
export class PosixSpawnAttributes implements Disposable {
  readonly #state: OwnedStruct;

  /**
   * `posix_spawnattr_init(&attr)`.
   *
   * @throws {ErrnoError} `posix_spawnattr_init` with ENOMEM.
   */
  constructor() {
    const bytes = allocStruct(platform.structs.posix_spawnattr_t);
    checkReturned(unsafeLibc.posix_spawnattr_init(bytes), "posix_spawnattr_init");
    this.#state = { bytes, destroyed: false };
    attributesRegistry.register(this, this.#state, this);
  }

  /** Whether {@linkcode destroy} was called. */
  get destroyed(): boolean {
    return this.#state.destroyed;
  }

  /** UNSAFE: the C struct's bytes, for a raw call. Valid until destroy. */
  get unsafeBytes(): Uint8Array<ArrayBuffer> {
    return this.#live();
  }

  #live(): Uint8Array<ArrayBuffer> {
    if (this.#state.destroyed) throw destroyedError("spawn attributes");
    return this.#state.bytes;
  }

  /**
   * `posix_spawnattr_setflags(&attr, flags)`: an OR of {@linkcode SpawnFlags}.
   *
   * @throws {RangeError} For a negative number or bits outside a short.
   * @throws {ErrnoError} `posix_spawnattr_setflags` with EINVAL for bits the C library refuses.
   */
  setFlags(flags: number): this {
    checkInteger(flags, "flags", 0, 0x7fff);
    checkReturned(
      unsafeLibc.posix_spawnattr_setflags(this.#live(), flags),
      "posix_spawnattr_setflags",
    );
    return this;
  }

  /** `posix_spawnattr_setsigmask(&attr, &set)`: the child's mask (needs SETSIGMASK). */
  setSigMask(set: SignalSet): this {
    checkSignalSet(set);
    checkReturned(
      unsafeLibc.posix_spawnattr_setsigmask(this.#live(), set.bytes),
      "posix_spawnattr_setsigmask",
    );
    return this;
  }

  /** `posix_spawnattr_setsigdefault(&attr, &set)`: signals reset to SIG_DFL (needs SETSIGDEF). */
  setSigDefault(set: SignalSet): this {
    checkSignalSet(set);
    checkReturned(
      unsafeLibc.posix_spawnattr_setsigdefault(this.#live(), set.bytes),
      "posix_spawnattr_setsigdefault",
    );
    return this;
  }

  /** `posix_spawnattr_setpgroup(&attr, pgroup)`: 0 makes a new group led by the child (needs SETPGROUP). */
  setPgroup(pgroup: number): this {
    checkInteger(pgroup, "pgroup", 0, 0x7fffffff);
    checkReturned(
      unsafeLibc.posix_spawnattr_setpgroup(this.#live(), pgroup),
      "posix_spawnattr_setpgroup",
    );
    return this;
  }

  /** `posix_spawnattr_destroy(&attr)`; idempotent. */
  destroy(): void {
    if (this.#state.destroyed) return;
    this.#state.destroyed = true;
    attributesRegistry.unregister(this);
    unsafeLibc.posix_spawnattr_destroy(this.#state.bytes);
  }

  /** Calls {@linkcode destroy}, for `using`. */
  [Symbol.dispose](): void {
    this.destroy();
  }
}

function checkSignalSet(set: unknown): void {
  if (!(set instanceof SignalSet)) {
    throw new TypeError(`Cannot use signal set: expected a SignalSet, got ${typeName(set)}`);
  }
}

// The last program path encoded (only read by C, so it can be passed again).
let lastPath: { path: string; bytes: Uint8Array<ArrayBuffer> } | undefined;

function encodePath(path: string, what: string): Uint8Array<ArrayBuffer> {
  if (lastPath !== undefined && lastPath.path === path) return lastPath.bytes;
  const bytes = cString(path, what);
  lastPath = { path, bytes };
  return bytes;
}

// posix_spawn's pid out-parameter, read right after each call.
const pidCell = new Int32Array(1);

function spawnCall(
  syscall: "posix_spawn" | "posix_spawnp",
  path: string,
  fileActions: PosixSpawnFileActions | null,
  attributes: PosixSpawnAttributes | null,
  argv: readonly string[] | CStringArray,
  envp: readonly string[] | CStringArray | number,
): number {
  const file = encodePath(path, syscall === "posix_spawn" ? "path" : "file");
  if (fileActions !== null && !(fileActions instanceof PosixSpawnFileActions)) {
    throw new TypeError(
      `Cannot use file actions: expected PosixSpawnFileActions or null, got ${
        typeName(fileActions)
      }`,
    );
  }
  if (attributes !== null && !(attributes instanceof PosixSpawnAttributes)) {
    throw new TypeError(
      `Cannot use attributes: expected PosixSpawnAttributes or null, got ${typeName(attributes)}`,
    );
  }
  const args = argv instanceof CStringArray ? argv : new CStringArray(argv, "argv");
  const fa = fileActions === null ? null : fileActions.unsafeBytes;
  const attr = attributes === null ? null : attributes.unsafeBytes;
  let result: number;
  if (typeof envp === "number") {
    checkInteger(envp, "envp address", 1);
    result = syscall === "posix_spawn"
      ? unsafeLibc.posix_spawn_environ(pidCell, file, fa, attr, args.pointers, envp)
      : unsafeLibc.posix_spawnp_environ(pidCell, file, fa, attr, args.pointers, envp);
  } else {
    const env = envp instanceof CStringArray ? envp : new CStringArray(envp, "envp");
    result = syscall === "posix_spawn"
      ? unsafeLibc.posix_spawn(pidCell, file, fa, attr, args.pointers, env.pointers)
      : unsafeLibc.posix_spawnp(pidCell, file, fa, attr, args.pointers, env.pointers);
  }
  if (result !== 0) checkReturned(result, syscall, { path }, SPAWN_HINTS);
  return pidCell[0]!;
}

const SPAWN_HINTS = {
  ENOENT: "no such program (or, with a chdir action, no such working directory)",
  EACCES: "the file is not executable, or a directory on its path is not searchable",
  ENOEXEC: "the file is not in a format this system can run (a script needs a #! line)",
  E2BIG: "argv and the environment are too long together",
  ENOTDIR: "a component of the path is not a directory",
};

/**
 * Starts a program: `posix_spawn(&pid, path, actions, attr, argv, envp)`.
 * `path` is used as given (no PATH search).
 *
 * @param path The executable.
 * @param fileActions Fd operations for the child, or null.
 * @param attributes Spawn attributes, or null.
 * @param argv The arguments, `argv[0]` first.
 * @param envp The environment as `NAME=value` strings, or (UNSAFE) the
 *   address of a NULL-terminated `char *[]` such as the C `environ`.
 * @returns The child's pid.
 * @throws {TypeError} For a non-string or NUL-containing argument.
 * @throws {ErrnoError} `posix_spawn` failing, with the path: ENOENT for a
 *   missing program, EACCES for a non-executable one (glibc reports the exec
 *   failure as the return value; no child is left behind).
 */
export function posixSpawn(
  path: string,
  fileActions: PosixSpawnFileActions | null,
  attributes: PosixSpawnAttributes | null,
  argv: readonly string[] | CStringArray,
  envp: readonly string[] | CStringArray | number,
): number {
  return spawnCall("posix_spawn", path, fileActions, attributes, argv, envp);
}

/**
 * Starts a program found on PATH: `posix_spawnp(&pid, file, actions, attr,
 * argv, envp)`. A `file` with a slash is used as a path. glibc searches the
 * PATH of this process's C environment, not `envp`'s.
 *
 * @returns The child's pid.
 * @throws {ErrnoError} `posix_spawnp` with ENOENT when no PATH entry has `file`.
 */
export function posixSpawnp(
  file: string,
  fileActions: PosixSpawnFileActions | null,
  attributes: PosixSpawnAttributes | null,
  argv: readonly string[] | CStringArray,
  envp: readonly string[] | CStringArray | number,
): number {
  return spawnCall("posix_spawnp", file, fileActions, attributes, argv, envp);
}

/** What {@linkcode waitpid} returns. */
export interface WaitpidResult {
  /** The pid reaped, or 0 when WNOHANG found it still running. */
  readonly pid: number;
  /** The raw wait status; decode it with {@linkcode decodeWaitStatus}. */
  readonly status: number;
}

/**
 * Waits for a child: `waitpid(pid, &status, options)`. Retries on EINTR.
 * Without WNOHANG this blocks the calling thread (and so the event loop).
 *
 * @param options An OR of `WNOHANG`, `WUNTRACED`, `WCONTINUED` (default 0).
 * @throws {ErrnoError} `waitpid` with ECHILD when `pid` is not an unreaped child.
 */
export function waitpid(pid: number, options = 0): WaitpidResult {
  checkInteger(pid, "pid", -0x80000000, 0x7fffffff);
  checkInteger(options, "options", 0, 0x7fffffff);
  const cell = new Int32Array(1);
  for (;;) {
    const result = unsafeLibc.waitpid(pid, cell, options);
    if (result !== -1) return { pid: result, status: cell[0]! };
    const code = errno();
    if (code !== platform.errno.EINTR) throw new ErrnoError("waitpid", code, { id: pid });
  }
}

/**
 * Sends a signal: `kill(pid, sig)`.
 *
 * @param signal A name from `platform.signals` or a number (0 checks existence).
 * @throws {RangeError} For an unknown signal.
 * @throws {ErrnoError} `kill` with ESRCH (no such process) or EPERM.
 */
export function kill(pid: number, signal: SignalName | number = "SIGTERM"): void {
  checkInteger(pid, "pid", -0x80000000, 0x7fffffff);
  const value = signalNumber(signal);
  check(unsafeLibc.kill(pid, value), "kill", { id: pid });
}

/** A wait status, decoded. */
export interface DecodedWaitStatus {
  /** The exit code when the child exited, else null. */
  readonly code: number | null;
  /** The signal's name when a signal killed (or stopped) the child (`"SIG34"` if unnamed), else null. */
  readonly signal: SignalName | `SIG${number}` | null;
  /** Whether the child is stopped (WUNTRACED) rather than gone. */
  readonly stopped: boolean;
  /** Whether the child exited with code 0. */
  readonly success: boolean;
  /** Whether a core was dumped (WCOREDUMP). */
  readonly coreDumped: boolean;
}

/**
 * Decodes a raw wait status as `WIFEXITED`, `WEXITSTATUS`, `WIFSIGNALED`,
 * `WTERMSIG`, `WIFSTOPPED`, `WSTOPSIG` and `WCOREDUMP` do (the encoding
 * Linux and the BSDs share).
 *
 * @example
 * ```ts
 * import { decodeWaitStatus } from "@shmkit/shmkit/raw";
 * console.log(decodeWaitStatus(3 << 8)); // { code: 3, signal: null, ... }
 * console.log(decodeWaitStatus(9).signal); // "SIGKILL"
 * ```
 */
export function decodeWaitStatus(status: number): DecodedWaitStatus {
  checkInteger(status, "status", -0x80000000, 0xffffffff);
  const low = status & 0x7f;
  if (low === 0) {
    const code = (status >> 8) & 0xff;
    return { code, signal: null, stopped: false, success: code === 0, coreDumped: false };
  }
  if ((status & 0xff) === 0x7f) {
    // WIFSTOPPED (0xffff is WIFCONTINUED, reported as stopped=false below)
    if (status === 0xffff) {
      return { code: null, signal: "SIGCONT", stopped: false, success: false, coreDumped: false };
    }
    return {
      code: null,
      signal: signalName((status >> 8) & 0xff),
      stopped: true,
      success: false,
      coreDumped: false,
    };
  }
  return {
    code: null,
    signal: signalName(low),
    stopped: false,
    success: false,
    coreDumped: (status & 0x80) !== 0,
  };
}

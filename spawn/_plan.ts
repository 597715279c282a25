/**
 * The options of {@linkcode spawn}, checked, and turned into a launch plan:
 * what every fd of the child is, its environment, flags and group. Every
 * check that can fail runs here, before anything is created.
 *
 * @module
 */
import { ErrnoError } from "../core/errors.ts";
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { allocStruct, cString, readField, typeName, unsafeReadCString } from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";
import {
  checkBoolean,
  checkChoice,
  checkFd,
  checkInteger,
  checkOptions,
} from "../core/_validate.ts";
import {
  CStringArray,
  posixSpawn,
  PosixSpawnFileActions,
  type SignalName,
  signalNumber,
  SpawnFlags,
} from "./raw.ts";
import type { Supervision } from "./_supervise.ts";
import { buildEnvironment } from "./_environ.ts";
import { BASE_FLAGS } from "./_attributes.ts";

const C = platform.constants;
const E = platform.errno;

/** Anything that carries a file descriptor: a {@linkcode Memfd}, a {@linkcode SharedMemory}. */
export interface FdSource {
  /** The file descriptor. */
  readonly fd: number;
}

/**
 * What one of the child's fds 0 to 2 is:
 * - `"inherit"`: this process's same fd (the default);
 * - `"null"`: `/dev/null`;
 * - `"pipe"`: a new pipe, whose other end is the child's `stdin`, `stdout` or `stderr`;
 * - an fd number or an object with an `fd`: that fd of this process.
 */
export type Stdio = "inherit" | "null" | "pipe" | number | FdSource;

/** Options of {@linkcode spawn}. */
export interface SpawnOptions {
  /**
   * The program to run (default `argv[0]`). Without a "/" it is looked up
   * in PATH (`posix_spawnp`, with this process's C environment's PATH).
   */
  readonly path?: string;
  /** Variables to set in the child, on top of this process's environment. */
  readonly env?: Readonly<Record<string, string>>;
  /** Start from an empty environment instead of this process's (default false). */
  readonly clearEnv?: boolean;
  /** The child's working directory (default: this process's). */
  readonly cwd?: string;
  /** The child's fd 0 (default "inherit"). */
  readonly stdin?: Stdio;
  /** The child's fd 1 (default "inherit"). */
  readonly stdout?: Stdio;
  /** The child's fd 2 (default "inherit"). */
  readonly stderr?: Stdio;
  /**
   * More fds for the child, by the number it sees: `{ 3: memory, 4: fd }`.
   * Each value is an fd number or an object with an `fd` property. Nothing
   * else above 2 reaches the child.
   */
  readonly fds?: Readonly<Record<number, number | FdSource>>;
  /** Start the child in a new session (`setsid`), away from this terminal (default false). */
  readonly newSession?: boolean;
  /**
   * Put the child in a process group: `true` for a new group it leads, or
   * the id of an existing group (default: this process's group).
   */
  readonly processGroup?: boolean | number;
  /**
   * End the child if it still runs after this many milliseconds: send
   * `killSignal`, then SIGKILL after `graceMs`. `status` then resolves with
   * the signal that ended it.
   */
  readonly timeoutMs?: number;
  /** An AbortSignal that ends the child as `timeoutMs` does; already aborted, spawn throws its reason. */
  readonly signal?: AbortSignal;
  /**
   * Send `killSignal` to the child when this process ends, however it ends,
   * SIGKILL included (through a guardian process, see docs/spawn.md);
   * default false.
   */
  readonly killOnExit?: boolean;
  /** The signal for `timeoutMs`, `signal` and `killOnExit` (default "SIGTERM"). */
  readonly killSignal?: SignalName | number;
  /** How long a child has after `killSignal` before SIGKILL, for `timeoutMs` and `signal` (default 5000). */
  readonly graceMs?: number;
}

export type StdioPlan =
  | { readonly kind: "inherit" }
  | { readonly kind: "null" }
  | { readonly kind: "pipe" }
  | { readonly kind: "fd"; readonly fd: number };

export const STDIO_NAMES = ["stdin", "stdout", "stderr"] as const;

function sourceFd(value: unknown, what: string): number {
  if (typeof value === "number") return checkFd(value, what);
  if (typeof value === "object" && value !== null && "fd" in value) {
    return checkFd((value as FdSource).fd, `${what}.fd`);
  }
  throw new TypeError(
    `Cannot use ${what}: expected an fd number or an object with an fd, got ${typeName(value)}`,
  );
}

function stdioPlan(value: unknown, what: string): StdioPlan {
  if (value === undefined) return { kind: "inherit" };
  if (typeof value === "string") {
    return { kind: checkChoice(value, what, ["inherit", "null", "pipe"] as const) };
  }
  return { kind: "fd", fd: sourceFd(value, what) };
}

function checkOpen(fd: number, what: string): void {
  if (unsafeLibc.fcntl(fd, C.F_GETFD, 0) === -1) {
    throw new ErrnoError("fcntl", errno(), {
      fd,
      hint: `${what} must be an open file descriptor of this process`,
    });
  }
}

/** `stat(path)`'s st_mode, or the errno number negated. */
export function statMode(path: string): number {
  const layout = platform.structs.stat;
  const buffer = allocStruct(layout);
  if (unsafeLibc.stat(cString(path, "path"), buffer) === -1) return -errno();
  return readField(buffer, layout, "st_mode");
}

function checkDirectory(cwd: string): void {
  const mode = statMode(cwd);
  if (mode < 0) {
    const hint = mode === -E.ENOENT! ? "the working directory does not exist" : "";
    throw new ErrnoError("chdir", -mode, hint === "" ? { path: cwd } : { path: cwd, hint });
  }
  if ((mode & C.S_IFMT) !== C.S_IFDIR) {
    throw new ErrnoError("chdir", E.ENOTDIR!, { path: cwd, hint: "cwd is not a directory" });
  }
}

let execFailureReported: boolean | undefined;

/**
 * Whether posix_spawn reports a failed exec as its return value here. glibc
 * does (its child shares memory with the caller until the exec), but under
 * an emulator that runs vfork as fork (qemu-user) the failure only shows as
 * a child exiting with 127. Probed once, with a path that can't exist.
 */
function spawnReportsExecFailure(): boolean {
  if (execFailureReported !== undefined) return execFailureReported;
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  const probe = `/nonexistent-shmkit-probe/${Array.from(bytes, (b) => b.toString(16)).join("")}`;
  try {
    const pid = posixSpawn(probe, null, null, ["probe"], []);
    unsafeLibc.waitpid(pid, new Int32Array(1), 0); // it exits at once, with 127
    execFailureReported = false;
  } catch {
    execFailureReported = true;
  }
  return execFailureReported;
}

/**
 * For tests: behave as under qemu-user, checking programs before spawning,
 * until the returned function is called.
 */
export function checkProgramsFirstForTesting(): () => void {
  const before = spawnReportsExecFailure();
  execFailureReported = false;
  return () => {
    execFailureReported = before;
  };
}

/**
 * Where posix_spawn can't report a failed exec: checks the program the way
 * exec would (a PATH search for a bare name), so a missing program is still
 * an error here and not a child exiting with 127.
 */
function checkExecutable(file: string, search: boolean): void {
  const syscall = search ? "posix_spawnp" : "posix_spawn";
  const executable = (mode: number): boolean =>
    mode >= 0 && (mode & C.S_IFMT) === C.S_IFREG && (mode & 0o111) !== 0;
  if (!search) {
    const mode = statMode(file);
    if (mode < 0) throw new ErrnoError(syscall, -mode, { path: file });
    if (!executable(mode)) throw new ErrnoError(syscall, E.EACCES!, { path: file });
    return;
  }
  const address = unsafeLibc.getenv(cString("PATH", "name"));
  const path = address === 0
    ? "/bin:/usr/bin"
    : unsafeReadCString(address, unsafeLibc.strlen(address) + 1);
  let found = -E.ENOENT!;
  for (const dir of path.split(":")) {
    const mode = statMode(`${dir === "" ? "." : dir}/${file}`);
    if (executable(mode)) return;
    if (mode >= 0) found = -E.EACCES!;
  }
  throw new ErrnoError(syscall, -found, { path: file });
}

export interface Plan {
  readonly file: string;
  readonly search: boolean;
  readonly argv: CStringArray;
  readonly envp: CStringArray | number | readonly string[];
  readonly cwd: string | undefined;
  readonly stdio: readonly StdioPlan[];
  /** target fd → source fd, for fds above 2 and stdio given as fds. */
  readonly dups: ReadonlyMap<number, number>;
  readonly flags: number;
  readonly pgroup: number;
  readonly supervision: Supervision;
}

const MAX_DELAY = 0x7fffffff; // what setTimeout takes

function checkDelay(value: unknown, what: string, min: number): number {
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot use ${what}: expected a number of milliseconds, got ${typeName(value)}`,
    );
  }
  if (!(value >= min && value <= MAX_DELAY)) {
    throw new RangeError(`Cannot use ${what} ${value}: expected ${min} to ${MAX_DELAY} ms`);
  }
  return value;
}

function supervision(o: SpawnOptions): Supervision {
  const signal = o.signal;
  if (signal !== undefined) {
    const like = signal as { aborted?: unknown; addEventListener?: unknown } | null;
    if (
      typeof like !== "object" || like === null || typeof like.aborted !== "boolean" ||
      typeof like.addEventListener !== "function"
    ) {
      throw new TypeError(`Cannot use signal: expected an AbortSignal, got ${typeName(signal)}`);
    }
  }
  return {
    timeoutMs: o.timeoutMs === undefined ? undefined : checkDelay(o.timeoutMs, "timeoutMs", 1),
    graceMs: o.graceMs === undefined ? 5000 : checkDelay(o.graceMs, "graceMs", 0),
    killSignal: signalNumber(o.killSignal ?? "SIGTERM"),
    killOnExit: checkBoolean(o.killOnExit, "killOnExit", false),
    signal,
  };
}

// The last argvs encoded: a C array costs two ArrayBuffers (~5-10 us in a
// spawn loop), and programs often start the same command again. Read-only
// once made, so one can serve any number of spawns.
const argvCache = new Map<string, CStringArray>();
const ARGV_CACHE_SIZE = 32;

/** An argv's strings, checked (strings without NUL), and their C array. */
interface EncodedArgv {
  readonly strings: readonly string[];
  readonly encoded: CStringArray;
}

// The last argv encoded: a loop spawning one command skips the join below.
let lastArgv: EncodedArgv | undefined;

/** argv checked and as a C array, reused while the same strings come again. */
function encodeArgv(argv: readonly string[]): EncodedArgv {
  const last = lastArgv;
  if (last !== undefined && last.strings.length === argv.length) {
    const strings = last.strings;
    let i = 0;
    while (i < argv.length && argv[i] === strings[i]) i++;
    if (i === argv.length) return last;
  }
  // Each element read once: what is checked is what gets encoded.
  const strings: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const value: unknown = argv[i];
    // cString throws the TypeError for a non-string or a NUL.
    if (typeof value !== "string" || value.includes("\0")) cString(value, `argv[${i}]`);
    strings.push(value as string);
  }
  // Without NULs inside, the joined key gives back exactly these strings.
  const key = strings.join("\0");
  let encoded = argvCache.get(key);
  if (encoded === undefined) {
    encoded = new CStringArray(strings, "argv");
    if (argvCache.size >= ARGV_CACHE_SIZE) argvCache.delete(argvCache.keys().next().value!);
    argvCache.set(key, encoded);
  }
  lastArgv = { strings, encoded };
  return lastArgv;
}

const INHERIT: StdioPlan = Object.freeze({ kind: "inherit" });
const INHERIT_ALL: readonly StdioPlan[] = Object.freeze([INHERIT, INHERIT, INHERIT]);
const NO_DUPS: ReadonlyMap<number, number> = new Map();
// supervision()'s defaults, made once.
const UNSUPERVISED: Supervision = Object.freeze(supervision({}));

/**
 * The plan for no options at all (the common case): the checks and
 * defaults below, made once, so a spawn loop runs only what depends on this
 * call (argv, the current environment, the program's existence).
 */
function plainPlan(checked: EncodedArgv): Plan {
  const file = checked.strings[0]!;
  if (file === "") throw new RangeError("Cannot spawn: the program path is empty");
  const envp = buildEnvironment(undefined, false);
  const search = !file.includes("/");
  if (!spawnReportsExecFailure()) checkExecutable(file, search);
  return {
    file,
    search,
    argv: checked.encoded,
    envp,
    cwd: undefined,
    stdio: INHERIT_ALL,
    dups: NO_DUPS,
    flags: BASE_FLAGS,
    pgroup: 0,
    supervision: UNSUPERVISED,
  };
}

export function plan(argv: readonly string[], options: SpawnOptions | undefined): Plan {
  if (!Array.isArray(argv)) {
    throw new TypeError(
      `Cannot spawn: expected argv as an array of strings, got ${typeName(argv)}`,
    );
  }
  if (argv.length === 0) {
    throw new RangeError("Cannot spawn: argv is empty; argv[0] names the program");
  }
  const checked = encodeArgv(argv);
  if (options === undefined) return plainPlan(checked);
  const args = checked.encoded;
  const o = checkOptions(options, "options");
  const file = o.path ?? checked.strings[0]!;
  if (o.path !== undefined) cString(file, "path");
  if (file === "") throw new RangeError("Cannot spawn: the program path is empty");

  const clearEnv = checkBoolean(o.clearEnv, "clearEnv", false);
  let cwd: string | undefined;
  if (o.cwd !== undefined) {
    cString(o.cwd, "cwd");
    cwd = o.cwd;
    if (!PosixSpawnFileActions.canChdir) {
      throw new Error(
        "Cannot spawn with cwd: this C library lacks posix_spawn_file_actions_addchdir_np (glibc 2.29+)",
      );
    }
  }

  const stdio = STDIO_NAMES.map((name) => stdioPlan(o[name], name));
  const dups = new Map<number, number>();
  const owners = new Map<number, string>();
  stdio.forEach((s, target) => {
    if (o[STDIO_NAMES[target]!] !== undefined) owners.set(target, STDIO_NAMES[target]!);
    if (s.kind === "fd") dups.set(target, s.fd);
  });
  if (o.fds !== undefined) {
    if (typeof o.fds !== "object" || o.fds === null || Array.isArray(o.fds)) {
      throw new TypeError(
        `Cannot use fds: expected an object keyed by fd number, got ${typeName(o.fds)}`,
      );
    }
    for (const [key, value] of Object.entries(o.fds)) {
      const target = Number(key);
      if (!/^(0|[1-9][0-9]*)$/.test(key) || target > 0x7fffffff) {
        throw new RangeError(
          `Cannot use fds[${JSON.stringify(key)}]: the key must be an fd number`,
        );
      }
      const owner = owners.get(target);
      if (owner !== undefined) {
        throw new RangeError(
          `Cannot give the child fd ${target} twice: by ${owner} and by fds[${target}]`,
        );
      }
      owners.set(target, `fds[${target}]`);
      dups.set(target, sourceFd(value, `fds[${target}]`));
      if (target <= 2) stdio[target] = { kind: "fd", fd: dups.get(target)! };
    }
  }

  const newSession = checkBoolean(o.newSession, "newSession", false);
  let flags = BASE_FLAGS;
  let pgroup = 0;
  if (newSession) {
    const setsid = SpawnFlags.SETSID;
    if (setsid === undefined) {
      throw new Error("Cannot spawn in a new session: this C library lacks POSIX_SPAWN_SETSID");
    }
    flags |= setsid;
  }
  if (o.processGroup !== undefined && o.processGroup !== false) {
    if (newSession) {
      throw new RangeError(
        "Cannot use newSession with processGroup: a new session already makes the child lead a new group",
      );
    }
    flags |= SpawnFlags.SETPGROUP;
    pgroup = o.processGroup === true
      ? 0
      : checkInteger(o.processGroup, "processGroup", 1, 0x7fffffff);
  }

  const supervised = supervision(o);
  const envp = buildEnvironment(o.env, clearEnv);

  // Everything is well-formed; now the checks that ask the kernel.
  for (const [target, fd] of dups) checkOpen(fd, owners.get(target)!);
  if (cwd !== undefined) checkDirectory(cwd);
  const search = !file.includes("/");
  if (!spawnReportsExecFailure()) {
    // exec resolves a relative path in the child, after the chdir.
    const relative = !search && cwd !== undefined && !file.startsWith("/");
    checkExecutable(relative ? `${cwd}/${file}` : file, search);
  }
  // Already aborted: nothing starts (as fetch does).
  if (supervised.signal?.aborted) throw supervised.signal.reason;
  return {
    file,
    search,
    argv: args,
    envp,
    cwd,
    stdio,
    dups,
    flags,
    pgroup,
    supervision: supervised,
  };
}

/**
 * Child processes started with `posix_spawn(3)`, safe for a multithreaded
 * runtime, that can inherit shared memory: {@linkcode spawn} and
 * {@linkcode spawnScript}.
 *
 * Deno and Bun run several threads, so `fork()` would copy only the calling
 * thread and leave the others' locks and the JS heap in an undefined state;
 * posix_spawn starts the program directly instead. What the child gets is
 * decided here, not inherited by accident:
 *
 * - every catchable signal is reset to its default and the signal mask is
 *   empty (the runtimes ignore SIGPIPE, and a child would inherit that);
 * - only fds 0 to 2 and the fds named in `fds` reach it, even fds this
 *   process inherited or opened without O_CLOEXEC;
 * - a missing program is an {@linkcode ErrnoError} (ENOENT) from `spawn`,
 *   not a child that exits with 127;
 * - the child is always reaped, awaited or not, on the JS thread, and waiting
 *   never blocks the event loop (a SIGCHLD listener under Deno, a pidfd
 *   polled by a Worker under Bun: see {@linkcode ExitStrategy}).
 *
 * Permissions: Deno needs `--allow-ffi` only. The default environment is
 * read from the C `environ` (no `--allow-env`); under Bun it is
 * `process.env`.
 *
 * @example Hand shared memory to a child and read what it wrote
 * ```ts
 * import { Memfd, spawn } from "@shmkit/shmkit";
 * using memory = Memfd.create({ size: 4096 });
 * const child = spawn(["sh", "-c", "printf hi >&3"], { fds: { 3: memory } });
 * await child.status;
 * console.log(new TextDecoder().decode(memory.view().subarray(0, 2))); // "hi"
 * ```
 *
 * @module
 */
import { check, ErrnoError } from "../core/errors.ts";
import { backend, errno, unsafeLibc } from "../ffi/libc.ts";
import {
  allocStruct,
  cString,
  readField,
  typeName,
  unsafeReadCString,
  unsafeView,
} from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";
import { waitReady } from "./_poll_reactor.ts";
import { deno, execPath as runtimeExecPath, nodeProcess, setTimerRef } from "../core/_runtime.ts";
import {
  CStringArray,
  decodeWaitStatus,
  posixSpawn,
  PosixSpawnAttributes,
  PosixSpawnFileActions,
  posixSpawnp,
  type SignalName,
  signalNumber,
  SignalSet,
  SpawnFlags,
} from "./raw.ts";
import {
  checkBoolean,
  checkChoice,
  checkFd,
  checkInteger,
  checkOptions,
} from "../core/_validate.ts";

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
}

/** How a child ended. */
export interface ChildStatus {
  /** The exit code, or null when a signal ended the child. */
  readonly code: number | null;
  /** The signal that ended the child (`"SIGKILL"`), or null when it exited. */
  readonly signal: string | null;
  /** Whether the child exited with code 0. */
  readonly success: boolean;
}

/** What {@linkcode Child.output} collects. */
export interface ChildOutput extends ChildStatus {
  /** Everything the child wrote to a piped stdout (empty if not piped). */
  readonly stdout: Uint8Array;
  /** Everything the child wrote to a piped stderr (empty if not piped). */
  readonly stderr: Uint8Array;
}

interface PipeEnds {
  stdin?: number;
  stdout?: number;
  stderr?: number;
}

// ---------------------------------------------------------------------------
// The environment

let environCell: BigUint64Array | null | undefined;

/** The address of the C `environ` variable, as a view of its 8 bytes; null if not found. */
function environVariable(): BigUint64Array | null {
  if (environCell !== undefined) return environCell;
  environCell = null;
  const { dlopen, dlsym } = unsafeLibc;
  if (dlopen === undefined || dlsym === undefined) return null;
  // The program's global scope: with a copy relocation (Bun), the live
  // `environ` is the executable's copy, not libc's.
  const handle = dlopen(null, C.RTLD_LAZY);
  if (handle === 0) return null;
  const address = dlsym(handle, cString("environ", "symbol"));
  if (address === 0) return null;
  environCell = new BigUint64Array(unsafeView(address, 8).buffer);
  return environCell;
}

/** The current value of C `environ` (a `char **`), or 0 when unknown. */
function environAddress(): number {
  const cell = environVariable();
  return cell === null ? 0 : Number(cell[0]!);
}

/** The C environment's `NAME=value` strings. */
function readEnviron(address: number): string[] {
  const entries: string[] = [];
  for (let at = address;; at += 8) {
    const pointer = Number(new BigUint64Array(unsafeView(at, 8).buffer)[0]!);
    if (pointer === 0) return entries;
    entries.push(unsafeReadCString(pointer, unsafeLibc.strlen(pointer) + 1));
  }
}

/**
 * This process's environment as `NAME=value` strings, or (Deno) the
 * address of the C `environ` when `copy` is false.
 */
function currentEnvironment(copy: boolean): string[] | number {
  if (backend.runtime === "bun") {
    // Bun keeps process.env in JS; assignments never reach the C environ.
    const env = nodeProcess?.env ?? {};
    const entries: string[] = [];
    for (const [name, value] of Object.entries(env)) {
      if (value !== undefined) entries.push(`${name}=${value}`);
    }
    return entries;
  }
  // Deno.env.set writes the C environment (setenv), so environ is current.
  const address = environAddress();
  if (address !== 0) return copy ? readEnviron(address) : address;
  try {
    return Object.entries(deno!.env.toObject()).map(([k, v]) => `${k}=${v}`);
  } catch (error) {
    throw new Error(
      `Cannot read the environment for the child: this C library does not expose environ to dlsym, and ${error}; pass env with clearEnv: true, or grant --allow-env`,
    );
  }
}

let lastEnvironment: { key: string; array: CStringArray } | undefined;

function buildEnvironment(
  env: unknown,
  clearEnv: boolean,
): CStringArray | number | readonly string[] {
  if (env === undefined && !clearEnv) {
    const current = currentEnvironment(false);
    if (typeof current === "number") return current;
    // Bun: the environment rarely changes between spawns; reuse its encoding while it doesn't.
    const key = current.join("\0");
    if (lastEnvironment?.key !== key) {
      lastEnvironment = { key, array: new CStringArray(current, "env") };
    }
    return lastEnvironment.array;
  }
  const merged = new Map<string, string>();
  if (!clearEnv) {
    for (const entry of currentEnvironment(true) as string[]) {
      const eq = entry.indexOf("=");
      if (eq > 0) merged.set(entry.slice(0, eq), entry.slice(eq + 1));
    }
  }
  if (env !== undefined) {
    if (typeof env !== "object" || env === null || Array.isArray(env)) {
      throw new TypeError(`Cannot use env: expected an object of strings, got ${typeName(env)}`);
    }
    for (const [name, value] of Object.entries(env)) {
      if (name === "" || name.includes("=") || name.includes("\0")) {
        throw new RangeError(
          `Cannot use env name ${JSON.stringify(name)}: it must be non-empty, without "=" or NUL`,
        );
      }
      if (typeof value !== "string") {
        throw new TypeError(`Cannot use env.${name}: expected a string, got ${typeName(value)}`);
      }
      merged.set(name, value);
    }
  }
  return new CStringArray([...merged].map(([k, v]) => `${k}=${v}`), "env");
}

// ---------------------------------------------------------------------------
// Validation

type StdioPlan =
  | { readonly kind: "inherit" }
  | { readonly kind: "null" }
  | { readonly kind: "pipe" }
  | { readonly kind: "fd"; readonly fd: number };

const STDIO_NAMES = ["stdin", "stdout", "stderr"] as const;

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
function statMode(path: string): number {
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

interface Plan {
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
}

function plan(argv: readonly string[], options: SpawnOptions | undefined): Plan {
  if (!Array.isArray(argv)) {
    throw new TypeError(
      `Cannot spawn: expected argv as an array of strings, got ${typeName(argv)}`,
    );
  }
  if (argv.length === 0) {
    throw new RangeError("Cannot spawn: argv is empty; argv[0] names the program");
  }
  const args = new CStringArray(argv, "argv");
  const o = checkOptions(options, "options");
  const file = o.path ?? argv[0]!;
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
  let flags = SpawnFlags.SETSIGDEF | SpawnFlags.SETSIGMASK;
  let pgroup = 0;
  if (newSession) {
    if (SpawnFlags.SETSID === -1) {
      throw new Error("Cannot spawn in a new session: this C library lacks POSIX_SPAWN_SETSID");
    }
    flags |= SpawnFlags.SETSID;
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
  return { file, search, argv: args, envp, cwd, stdio, dups, flags, pgroup };
}

// ---------------------------------------------------------------------------
// Spawning

// Attributes depend only on flags and group; kept for the life of the process.
const attributeCache = new Map<string, PosixSpawnAttributes>();

function attributesFor(flags: number, pgroup: number): PosixSpawnAttributes {
  const key = `${flags}/${pgroup}`;
  let attributes = attributeCache.get(key);
  if (attributes === undefined) {
    attributes = new PosixSpawnAttributes()
      .setSigDefault(SignalSet.every())
      .setSigMask(SignalSet.empty())
      .setFlags(flags);
    if ((flags & SpawnFlags.SETPGROUP) !== 0) attributes.setPgroup(pgroup);
    if (attributeCache.size < 16) attributeCache.set(key, attributes);
  }
  return attributes;
}

/** Every fd this process has open, from /proc/self/fd (when closefrom is missing). */
function openFds(): number[] {
  const dir = unsafeLibc.opendir(cString("/proc/self/fd", "path"));
  if (dir === 0) throw new ErrnoError("opendir", errno(), { path: "/proc/self/fd" });
  const nameAt = platform.structs.dirent.fields.d_name!.offset;
  const fds: number[] = [];
  try {
    for (;;) {
      const entry = unsafeLibc.readdir(dir);
      if (entry === 0) return fds;
      const name = unsafeReadCString(entry + nameAt, 16);
      if (/^[0-9]+$/.test(name)) fds.push(Number(name));
    }
  } finally {
    unsafeLibc.closedir(dir);
  }
}

// The file actions of a child that keeps fds 0 to 2 and gets nothing else, made once.
let shared: PosixSpawnFileActions | undefined;

function defaultActions(): PosixSpawnFileActions | undefined {
  if (!PosixSpawnFileActions.canCloseFrom) return undefined;
  return shared ??= new PosixSpawnFileActions().addCloseFrom(3);
}

function makePipe(): [number, number] {
  const cell = new Int32Array(2);
  check(unsafeLibc.pipe2(cell, C.O_CLOEXEC), "pipe2", {}, {
    EMFILE: "this process has too many open files",
  });
  return [cell[0]!, cell[1]!];
}

function setNonblocking(fd: number): void {
  const flags = check(unsafeLibc.fcntl(fd, C.F_GETFL, 0), "fcntl", { fd });
  check(unsafeLibc.fcntl(fd, C.F_SETFL, flags | C.O_NONBLOCK), "fcntl", { fd });
}

function launch(p: Plan): Child {
  const toClose: number[] = []; // this process's copies of what only the child keeps
  const parentEnds: PipeEnds = {};
  const dups = new Map(p.dups);
  let actions: PosixSpawnFileActions | undefined;
  let pid: number;
  try {
    p.stdio.forEach((s, target) => {
      if (s.kind !== "pipe") return;
      const [read, write] = makePipe();
      const [mine, theirs] = target === 0 ? [write, read] : [read, write];
      toClose.push(theirs);
      parentEnds[STDIO_NAMES[target]!] = mine;
      setNonblocking(mine);
      dups.set(target, theirs);
    });

    // A source numbered like a target could be overwritten by an earlier
    // dup2: move such sources above every target first. (A source already at
    // its target moves too: dup2(fd, fd) clears FD_CLOEXEC only in newer libcs.)
    const highest = Math.max(2, ...dups.keys());
    for (const [target, source] of dups) {
      if (source <= highest) {
        const moved = check(unsafeLibc.fcntl(source, C.F_DUPFD_CLOEXEC, highest + 1), "fcntl", {
          fd: source,
        });
        toClose.push(moved);
        dups.set(target, moved);
      }
    }

    if (dups.size === 0 && p.cwd === undefined && p.stdio.every((s) => s.kind === "inherit")) {
      actions = defaultActions();
    }
    actions ??= new PosixSpawnFileActions();
    for (const [target, source] of dups) actions.addDup2(source, target);
    p.stdio.forEach((s, target) => {
      if (s.kind === "null") {
        actions!.addOpen(target, "/dev/null", target === 0 ? C.O_RDONLY : C.O_WRONLY, 0);
      }
    });
    if (p.cwd !== undefined) actions.addChdir(p.cwd);
    if (actions !== shared) {
      for (let fd = 3; fd <= highest; fd++) if (!dups.has(fd)) actions.addClose(fd);
      if (PosixSpawnFileActions.canCloseFrom) {
        actions.addCloseFrom(highest + 1);
      } else {
        for (const fd of openFds()) if (fd > highest) actions.addClose(fd);
      }
    }

    const attributes = attributesFor(p.flags, p.pgroup);
    const call = p.search ? posixSpawnp : posixSpawn;
    pid = call(p.file, actions, attributes, p.argv, p.envp as CStringArray | number);
  } catch (error) {
    for (const fd of Object.values(parentEnds)) unsafeLibc.close(fd);
    throw error;
  } finally {
    for (const fd of toClose) unsafeLibc.close(fd);
    if (actions !== shared) actions?.destroy();
  }
  return new Child(pid, parentEnds);
}

/**
 * Starts a program as a child process with `posix_spawn`: default signal
 * dispositions and an empty mask, only fds 0 to 2 and those in `fds`, and a
 * status that resolves when it ends (it is reaped whether or not you await
 * it).
 *
 * @example Capture output
 * ```ts
 * import { spawn } from "@shmkit/shmkit";
 * const child = spawn(["echo", "hello"], { stdout: "pipe" });
 * const { code, stdout } = await child.output();
 * console.log(code, new TextDecoder().decode(stdout)); // 0 "hello\n"
 * ```
 *
 * @example Give the child a shared region as its fd 3
 * ```ts
 * import { Memfd, spawn } from "@shmkit/shmkit";
 * using memory = Memfd.create({ size: 8 });
 * const child = spawn(["/bin/sh", "-c", "test -e /proc/self/fd/3"], { fds: { 3: memory } });
 * console.log((await child.status).success); // true
 * ```
 *
 * @param argv The program and its arguments; `argv[0]` is the program unless `path` is given.
 * @throws {TypeError} For a non-array argv, a non-string or NUL-containing
 *   argument, env entry or cwd, or options of the wrong type.
 * @throws {RangeError} For an empty argv, an fd given twice, a bad fd key or stdio choice.
 * @throws {ErrnoError} `posix_spawn`/`posix_spawnp` with ENOENT (no such program) or
 *   EACCES; `chdir` with ENOENT when `cwd` does not exist; `fcntl` with EBADF when an fd
 *   to hand over is not open; `pipe2` with EMFILE. No child is started then.
 */
export function spawn(argv: readonly string[], options?: SpawnOptions): Child {
  return launch(plan(argv, options));
}

// ---------------------------------------------------------------------------
// The child

/** The raw status of a reaped child, or undefined while it runs. */
function reap(pid: number): number | undefined {
  const cell = new Int32Array(1);
  for (;;) {
    const result = unsafeLibc.waitpid(pid, cell, C.WNOHANG);
    if (result === pid) return cell[0]!;
    if (result === 0) return undefined;
    const code = errno();
    if (code !== E.EINTR) {
      const hint =
        "something else in this process reaped the child (waitpid(-1), or SIGCHLD ignored)";
      throw new ErrnoError("waitpid", code, code === E.ECHILD ? { id: pid, hint } : { id: pid });
    }
  }
}

/**
 * How a child's end is noticed; the reaping itself always happens on the JS
 * thread, so kill() never hits a pid the kernel has given to someone else.
 *
 * - "signal" (Deno): a SIGCHLD listener reaps with `waitpid(WNOHANG)`. Deno
 *   delivers the signal to the JS thread directly, one thread hop fewer than
 *   a poll on another thread (measured ~30-150 us less per spawn + wait).
 *   Signal listeners don't keep Deno alive, so a timer does while a ref'd
 *   child runs (and reaps once a second, in case a signal was missed).
 * - "pidfd" (Bun, and Deno when it can't listen): a pidfd, readable once the
 *   child has ended, waited for by `_poll_reactor.ts`. Bun's own SIGCHLD
 *   listener was measured ~2 ms slower per child, with ~1 ms of CPU.
 * - "timer" (no pidfd: Linux before 5.3, sandboxes): `waitpid(WNOHANG)` on a
 *   timer backing off from 1 ms to 50 ms.
 */
export type ExitStrategy = "signal" | "pidfd" | "timer";

let strategy: ExitStrategy | undefined;
let listening = false;
const signalWatches = new Set<ExitWatch>();
let keepAlive: ReturnType<typeof setInterval> | undefined;

function onChildSignal(): void {
  for (const watch of [...signalWatches]) watch.poll();
  updateKeepAlive();
}

function updateKeepAlive(): void {
  let anyRef = false;
  for (const watch of signalWatches) anyRef ||= watch.referenced;
  if (anyRef && keepAlive === undefined) {
    keepAlive = setInterval(onChildSignal, 1000);
  } else if (!anyRef && keepAlive !== undefined) {
    clearInterval(keepAlive);
    keepAlive = undefined;
  }
}

/** Starts listening for SIGCHLD (Deno); false where that is not possible. */
function listenForChildren(): boolean {
  if (listening || backend.runtime !== "deno" || deno === undefined) return listening;
  try {
    deno.addSignalListener("SIGCHLD", onChildSignal);
    listening = true;
  } catch {
    // No signal listeners here (a sandboxed embedder): pidfds it is.
  }
  return listening;
}

function exitStrategy(): ExitStrategy {
  return strategy ??= listenForChildren() ? "signal" : "pidfd";
}

/**
 * For tests: notice children's ends with `which` from now on ("signal"
 * only where it works, i.e. Deno); returns the strategy in use before.
 */
export function useExitStrategyForTesting(which: ExitStrategy): ExitStrategy {
  const before = exitStrategy();
  if (which === "signal" && !listenForChildren()) {
    throw new RangeError("Cannot use the signal strategy: it needs Deno's signal listeners");
  }
  strategy = which;
  return before;
}

/** Watches one child until it ends, and reaps it. */
class ExitWatch {
  readonly promise: Promise<number>;
  exited = false;
  referenced = true;
  #resolve!: (status: number) => void;
  #reject!: (error: unknown) => void;
  #onRef: (ref: boolean) => void = () => {};

  constructor(readonly pid: number) {
    this.promise = new Promise<number>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    let how = exitStrategy();
    const pidfd = how === "pidfd" ? unsafeLibc.syscall(C.SYS_pidfd_open, pid, 0, 0, 0, 0, 0) : -1;
    if (how === "pidfd" && pidfd < 0) how = "timer";
    if (how === "signal") {
      // The child can't have been reaped yet: the listener runs on this thread, later.
      signalWatches.add(this);
      this.#onRef = updateKeepAlive;
      updateKeepAlive();
    } else if (how === "pidfd") {
      this.#watchPidfd(pidfd).catch(() => this.#watchTimer(1));
    } else {
      this.#watchTimer(1);
    }
  }

  set ref(value: boolean) {
    this.referenced = value;
    this.#onRef(value);
  }

  /** Reaps the child if it has ended; true once settled. */
  poll(): boolean {
    let status: number | undefined;
    try {
      status = reap(this.pid);
    } catch (error) {
      // ECHILD: someone else reaped it, so its pid is no longer ours to signal.
      this.exited = true;
      signalWatches.delete(this);
      this.#reject(error);
      return true;
    }
    if (status === undefined) return false;
    this.exited = true;
    signalWatches.delete(this);
    this.#resolve(status);
    return true;
  }

  async #watchPidfd(pidfd: number): Promise<void> {
    try {
      // A pidfd is readable once the child has ended; a wake-up without an end just waits again.
      do {
        const wait = waitReady(pidfd, C.POLLIN, this.referenced);
        this.#onRef = (ref) => (wait.ref = ref);
        await wait.promise;
      } while (!this.poll());
    } finally {
      unsafeLibc.close(pidfd);
    }
  }

  #watchTimer(delay: number): void {
    if (this.poll()) return;
    const timer = setTimeout(() => this.#watchTimer(Math.min(delay * 2, 50)), delay);
    this.#onRef = (ref) => setTimerRef(timer, ref);
    if (!this.referenced) setTimerRef(timer, false);
  }
}

const pipeRegistry = new FinalizationRegistry<{ fd: number; closed: boolean }>((state) => {
  if (!state.closed) {
    state.closed = true;
    unsafeLibc.close(state.fd);
  }
});

function readablePipe(fd: number): ReadableStream<Uint8Array> {
  const state = { fd, closed: false };
  let cancelWait: (() => void) | undefined;
  const close = (): void => {
    if (state.closed) return;
    state.closed = true;
    cancelWait?.();
    unsafeLibc.close(fd);
  };
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller): Promise<void> {
      for (;;) {
        if (state.closed) return;
        const buffer = new Uint8Array(65536);
        const n = unsafeLibc.read(fd, buffer, buffer.length);
        if (n > 0) {
          controller.enqueue(n < 16384 ? buffer.slice(0, n) : buffer.subarray(0, n));
          return;
        }
        if (n === 0) {
          close();
          controller.close();
          return;
        }
        const code = errno();
        if (code === E.EINTR) continue;
        if (code !== E.EAGAIN) {
          close();
          controller.error(new ErrnoError("read", code, { fd }));
          return;
        }
        const wait = waitReady(fd, C.POLLIN);
        cancelWait = wait.cancel;
        await wait.promise;
        cancelWait = undefined;
      }
    },
    cancel(): void {
      close();
    },
  });
  pipeRegistry.register(stream, state);
  return stream;
}

function writablePipe(fd: number): WritableStream<Uint8Array> {
  const state = { fd, closed: false };
  let cancelWait: (() => void) | undefined;
  const close = (): void => {
    if (state.closed) return;
    state.closed = true;
    cancelWait?.();
    unsafeLibc.close(fd);
  };
  const stream = new WritableStream<Uint8Array>({
    async write(chunk): Promise<void> {
      if (!(chunk instanceof Uint8Array)) {
        throw new TypeError(
          `Cannot write to the child's stdin: expected a Uint8Array, got ${typeName(chunk)}`,
        );
      }
      let offset = 0;
      while (offset < chunk.length) {
        if (state.closed) throw new Error("Cannot write to the child's stdin: it is closed");
        const n = unsafeLibc.write(fd, chunk.subarray(offset), chunk.length - offset);
        if (n >= 0) {
          offset += n;
          continue;
        }
        const code = errno();
        if (code === E.EINTR) continue;
        if (code !== E.EAGAIN) {
          close();
          throw new ErrnoError(
            "write",
            code,
            code === E.EPIPE ? { fd, hint: "the child closed its stdin (or exited)" } : { fd },
          );
        }
        const wait = waitReady(fd, C.POLLOUT);
        cancelWait = wait.cancel;
        await wait.promise;
        cancelWait = undefined;
      }
    },
    close,
    abort: close,
  });
  pipeRegistry.register(stream, state);
  return stream;
}

async function collect(stream: ReadableStream<Uint8Array> | null): Promise<Uint8Array> {
  if (stream === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
    chunks.push(chunk);
    total += chunk.length;
  }
  const all = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
}

function toStatus(raw: number): ChildStatus {
  const { code, signal, success } = decodeWaitStatus(raw);
  return { code, signal, success };
}

/**
 * A running (or finished) child process, from {@linkcode spawn}. It is
 * reaped as soon as it ends, whether or not `status` is awaited; until then
 * it keeps this process alive, unless {@linkcode unref} is called.
 */
export class Child implements AsyncDisposable {
  /** The child's process id. */
  readonly pid: number;
  /** Resolves when the child has ended and been reaped. */
  readonly status: Promise<ChildStatus>;
  /** The write end of the child's stdin, when `stdin: "pipe"`. */
  readonly stdin: WritableStream<Uint8Array> | null;
  /** The read end of the child's stdout, when `stdout: "pipe"`. */
  readonly stdout: ReadableStream<Uint8Array> | null;
  /** The read end of the child's stderr, when `stderr: "pipe"`. */
  readonly stderr: ReadableStream<Uint8Array> | null;
  readonly #watch: ExitWatch;

  /** @internal Use {@linkcode spawn}. */
  constructor(pid: number, pipes: PipeEnds) {
    this.pid = pid;
    this.#watch = new ExitWatch(pid);
    this.status = this.#watch.promise.then(toStatus);
    // Marks the promise handled: a never-awaited child must not crash the process.
    this.status.catch(() => {});
    this.stdin = pipes.stdin === undefined ? null : writablePipe(pipes.stdin);
    this.stdout = pipes.stdout === undefined ? null : readablePipe(pipes.stdout);
    this.stderr = pipes.stderr === undefined ? null : readablePipe(pipes.stderr);
  }

  /** Whether the child has been reaped (its pid may since belong to another process); kill() then sends nothing. */
  get exited(): boolean {
    return this.#watch.exited;
  }

  /**
   * Sends a signal: `kill(pid, sig)`. Once the child has been reaped, does
   * nothing and returns false, so a reused pid is never signalled.
   *
   * @param signal A name from `platform.signals` (default "SIGTERM") or a number.
   * @returns Whether the signal was sent.
   * @throws {RangeError} For an unknown signal.
   * @throws {ErrnoError} `kill` with EPERM.
   */
  kill(signal: SignalName | number = "SIGTERM"): boolean {
    const value = signalNumber(signal);
    if (this.#watch.exited) return false;
    if (unsafeLibc.kill(this.pid, value) === -1) {
      const code = errno();
      if (code === E.ESRCH) return false;
      throw new ErrnoError("kill", code, { id: this.pid });
    }
    return true;
  }

  /** Lets this process exit while the child still runs (its status still arrives if it lives on). */
  unref(): void {
    this.#watch.ref = false;
  }

  /** Undoes {@linkcode unref}: the running child keeps this process alive again. */
  ref(): void {
    this.#watch.ref = true;
  }

  /**
   * Waits for the child and collects its piped stdout and stderr. A piped
   * stdin that nobody writes to is closed first, so the child sees EOF.
   *
   * @throws {TypeError} When `stdout` or `stderr` is already being read.
   */
  async output(): Promise<ChildOutput> {
    if (this.stdin !== null && !this.stdin.locked) await this.stdin.close();
    const [stdout, stderr, status] = await Promise.all([
      collect(this.stdout),
      collect(this.stderr),
      this.status,
    ]);
    return { ...status, stdout, stderr };
  }

  /** Sends SIGTERM if the child still runs, closes the pipes and waits for it. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.kill("SIGTERM");
    for (const stream of [this.stdout, this.stderr]) {
      if (stream !== null && !stream.locked) await stream.cancel();
    }
    if (this.stdin !== null && !this.stdin.locked) await this.stdin.abort();
    await this.status.catch(() => {});
  }
}

// ---------------------------------------------------------------------------
// Scripts on a JS runtime

/** The environment variable that tells a child which fd carries which region. */
export const INHERITED_FDS_VARIABLE = "SHMKIT_FDS";

/** Options of {@linkcode spawnScript}: those of {@linkcode spawn} but `path`, plus these. */
export interface SpawnScriptOptions extends Omit<SpawnOptions, "path"> {
  /**
   * Shared regions to hand over, by name: anything with an `fd` (a
   * {@linkcode Memfd}, a {@linkcode SharedMemory}) or an fd number. The child
   * gets them back with `inheritedRegion(name)`.
   */
  readonly regions?: Readonly<Record<string, number | FdSource>>;
  /** The runtime to run the script on (default: this one). */
  readonly runtime?: "deno" | "bun";
  /**
   * The runtime's executable. Default: this process's own when `runtime` is
   * this one, else `deno` or `bun` found in PATH.
   */
  readonly execPath?: string;
  /** Arguments for the script. */
  readonly args?: readonly string[];
  /**
   * Arguments for the runtime, before the script: e.g. Deno permissions
   * (`["--allow-read"]`; `--allow-ffi` is always given) or Bun flags.
   */
  readonly runtimeArgs?: readonly string[];
}

const REGION_NAME = /^[A-Za-z0-9_.-]+$/;

function modulePath(module: unknown): string {
  if (module instanceof URL) module = module.href;
  if (typeof module !== "string") {
    throw new TypeError(`Cannot spawn a script: expected a path or URL, got ${typeName(module)}`);
  }
  cString(module, "module");
  if (module === "") throw new RangeError("Cannot spawn a script: the module path is empty");
  return module.startsWith("file:") ? decodeURIComponent(new URL(module).pathname) : module;
}

function stringList(value: unknown, what: string): readonly string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    throw new TypeError(`Cannot use ${what}: expected an array of strings, got ${typeName(value)}`);
  }
  value.forEach((item, i) => cString(item, `${what}[${i}]`));
  return value;
}

/**
 * Runs a script on Deno or Bun as a child process, handing it shared
 * regions by name: each region's fd is given to the child (3, 4, ...) and
 * listed in `SHMKIT_FDS`; the script gets them back with
 * `inheritedRegion(name)`. The script may run on the other runtime.
 *
 * Deno children run as `deno run --allow-ffi [runtimeArgs] module [args]`,
 * Bun children as `bun [runtimeArgs] module [args]`.
 *
 * @example The classic fork program, without fork
 * ```ts
 * import { Memfd, spawnScript } from "@shmkit/shmkit";
 * using counter = Memfd.create({ size: 8 });
 * counter.view(BigUint64Array)[0] = 1000n;
 * const child = spawnScript(new URL("./double.ts", import.meta.url), { regions: { counter } });
 * await child.status;
 * console.log(counter.view(BigUint64Array)[0]); // 2000n
 * ```
 *
 * @param module The script: a path, or a `file:` URL.
 * @throws {TypeError} For options of the wrong type.
 * @throws {RangeError} For a bad region name, a runtime other than "deno" or "bun", or an fd given twice.
 * @throws {ErrnoError} As {@linkcode spawn} does: ENOENT when the runtime's executable is missing.
 */
export function spawnScript(module: string | URL, options?: SpawnScriptOptions): Child {
  const path = modulePath(module);
  const o = checkOptions(options, "options");
  if ("path" in o) throw new TypeError("Cannot use path with spawnScript: use execPath");
  const runtime = o.runtime === undefined
    ? backend.runtime
    : checkChoice(o.runtime, "runtime", ["deno", "bun"] as const);
  const execPath = o.execPath ??
    (runtime === backend.runtime ? runtimeExecPath() : runtime);
  cString(execPath, "execPath");
  const args = stringList(o.args, "args");
  const runtimeArgs = stringList(o.runtimeArgs, "runtimeArgs");

  const fds: Record<number, number | FdSource> = { ...o.fds };
  const listed: string[] = [];
  if (o.regions !== undefined) {
    if (typeof o.regions !== "object" || o.regions === null || Array.isArray(o.regions)) {
      throw new TypeError(
        `Cannot use regions: expected an object by name, got ${typeName(o.regions)}`,
      );
    }
    let next = 3;
    for (const [name, region] of Object.entries(o.regions)) {
      if (!REGION_NAME.test(name)) {
        throw new RangeError(
          `Cannot use region name ${JSON.stringify(name)}: use letters, digits, "_", "." and "-"`,
        );
      }
      while (Object.hasOwn(fds, next)) next++;
      fds[next] = region;
      listed.push(`${name}=${next}`);
      next++;
    }
  }
  const env: Record<string, string> = { ...o.env, [INHERITED_FDS_VARIABLE]: listed.join(",") };
  if (runtime === "deno") env.DENO_NO_UPDATE_CHECK ??= "1";

  const argv = runtime === "deno"
    ? [execPath, "run", "--allow-ffi", ...runtimeArgs, path, ...args]
    : [execPath, ...runtimeArgs, path, ...args];
  const { regions: _r, runtime: _rt, execPath: _e, args: _a, runtimeArgs: _ra, ...rest } = o;
  return spawn(argv, { ...rest, env, fds });
}

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
 *   polled by a native thread (or a Worker) under Bun: see {@linkcode ExitStrategy}).
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
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { cString, unsafeReadCString } from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";
import { type CStringArray, posixSpawn, PosixSpawnFileActions, posixSpawnp } from "./raw.ts";
import { attributesFor } from "./_attributes.ts";
import { Child, type PipeEnds } from "./child.ts";
import { type Plan, plan, type SpawnOptions, STDIO_NAMES } from "./_plan.ts";
import { supervise } from "./_supervise.ts";
import { prepareExitWatch } from "./_exit_watch.ts";

export { Child, type ChildOutput, type ChildStatus } from "./child.ts";
export type { FdSource, SpawnOptions, Stdio } from "./_plan.ts";
export type { ExitStrategy } from "./_exit_watch.ts";

const C = platform.constants;

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

let closeFromMissing = false;

function canCloseFrom(): boolean {
  return !closeFromMissing && PosixSpawnFileActions.canCloseFrom;
}

/**
 * For tests: close fds one by one from the /proc/self/fd listing, as on a
 * C library without closefrom, until the returned function is called.
 */
export function withoutCloseFromForTesting(): () => void {
  closeFromMissing = true;
  return () => {
    closeFromMissing = false;
  };
}

// The file actions of a child that keeps fds 0 to 2 and gets nothing else,
// made once for each set of them to re-open over themselves (see launch).
const sharedActions = new Map<number, PosixSpawnFileActions>();

function defaultActions(selfDups: number): PosixSpawnFileActions | undefined {
  if (!canCloseFrom()) return undefined;
  let actions = sharedActions.get(selfDups);
  if (actions === undefined) {
    // closefrom(3) first or last is the same: the dup2s stay below 3.
    actions = new PosixSpawnFileActions().addCloseFrom(3);
    for (let fd = 0; fd <= 2; fd++) if ((selfDups & (1 << fd)) !== 0) actions.addDup2(fd, fd);
    sharedActions.set(selfDups, actions);
  }
  return actions;
}

function isShared(actions: PosixSpawnFileActions): boolean {
  for (const shared of sharedActions.values()) if (shared === actions) return true;
  return false;
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

// Set once a plain launch found a stdio fd closed: check each fd from then on.
let stdioMayBeClosed = false;

/**
 * The common case (stdio inherited, no fds, no cwd) with no call before the
 * spawn: each of fds 0 to 2 re-opened over itself, which clears a
 * close-on-exec flag (Node sets it) in the child (glibc 2.29+, so wherever
 * closefrom, 2.34+, exists). A closed one fails the spawn with EBADF and no
 * child (glibc reaps its own): undefined then, and the caller checks each fd.
 */
function launchPlain(p: Plan): number | undefined {
  if (stdioMayBeClosed) return undefined;
  const actions = defaultActions(0b111);
  if (actions === undefined) return undefined;
  const call = p.search ? posixSpawnp : posixSpawn;
  prepareExitWatch();
  try {
    return call(
      p.file,
      actions,
      attributesFor(p.flags, p.pgroup),
      p.argv,
      p.envp as CStringArray | number,
    );
  } catch (error) {
    if (!(error instanceof ErrnoError) || error.code !== "EBADF") throw error;
    stdioMayBeClosed = true;
    return undefined;
  }
}

function launch(p: Plan): Child {
  if (
    p.dups.size === 0 && p.cwd === undefined && p.stdio[0]!.kind === "inherit" &&
    p.stdio[1]!.kind === "inherit" && p.stdio[2]!.kind === "inherit"
  ) {
    const pid = launchPlain(p);
    if (pid !== undefined) return new Child(pid, {});
  }
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
    // An inherited stdio fd marked close-on-exec (Node marks 0-2 so) would
    // not reach the child: hand it over like any other fd.
    let selfDups = 0;
    p.stdio.forEach((s, target) => {
      if (s.kind !== "inherit") return;
      const flags = unsafeLibc.fcntl(target, C.F_GETFD, 0);
      if (flags !== -1 && (flags & C.FD_CLOEXEC) !== 0) {
        dups.set(target, target);
        selfDups |= 1 << target;
      }
    });

    // A source numbered like a target could be overwritten by an earlier
    // dup2: move such sources above every target first. A source already at
    // its target stays where glibc's dup2(fd, fd) action clears FD_CLOEXEC
    // (2.29+, so wherever closefrom, 2.34+, exists); elsewhere it moves too.
    const inPlace = canCloseFrom();
    const highest = Math.max(2, ...dups.keys());
    for (const [target, source] of dups) {
      if (source <= highest && !(inPlace && source === target)) {
        const moved = check(unsafeLibc.fcntl(source, C.F_DUPFD_CLOEXEC, highest + 1), "fcntl", {
          fd: source,
        });
        toClose.push(moved);
        dups.set(target, moved);
      }
    }

    const plain = p.dups.size === 0 && p.cwd === undefined &&
      p.stdio.every((s) => s.kind === "inherit");
    if (plain) actions = defaultActions(selfDups);
    const shared = actions !== undefined;
    actions ??= new PosixSpawnFileActions();
    if (!shared) {
      for (const [target, source] of dups) actions.addDup2(source, target);
      p.stdio.forEach((s, target) => {
        if (s.kind === "null") {
          actions!.addOpen(target, "/dev/null", target === 0 ? C.O_RDONLY : C.O_WRONLY, 0);
        }
      });
      if (p.cwd !== undefined) actions.addChdir(p.cwd);
      for (let fd = 3; fd <= highest; fd++) if (!dups.has(fd)) actions.addClose(fd);
      if (canCloseFrom()) {
        actions.addCloseFrom(highest + 1);
      } else {
        for (const fd of openFds()) if (fd > highest) actions.addClose(fd);
      }
    }

    const attributes = attributesFor(p.flags, p.pgroup);
    const call = p.search ? posixSpawnp : posixSpawn;
    prepareExitWatch();
    pid = call(p.file, actions, attributes, p.argv, p.envp as CStringArray | number);
  } catch (error) {
    for (const fd of Object.values(parentEnds)) unsafeLibc.close(fd);
    throw error;
  } finally {
    for (const fd of toClose) unsafeLibc.close(fd);
    if (actions !== undefined && !isShared(actions)) actions.destroy();
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
 * @throws {unknown} `signal.reason` when `signal` is already aborted (nothing starts).
 */
export function spawn(argv: readonly string[], options?: SpawnOptions): Child {
  const p = plan(argv, options);
  const child = launch(p);
  try {
    supervise(child, p.supervision, spawn);
  } catch (error) {
    // Its supervision could not be arranged: it must not run unsupervised.
    child.kill("SIGKILL");
    throw error;
  }
  return child;
}

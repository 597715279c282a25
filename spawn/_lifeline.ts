/**
 * A spawnScript child ends when its parent does, however the parent ends
 * (SIGKILL included): the parent holds the write end of a pipe it never
 * writes to, close-on-exec, so no other process gets it; each supervised
 * child gets the read end (named in `SHMKIT_LIFELINE`) and watches it. When
 * the parent is gone the kernel closes the write end, the read end reports
 * EOF, and the child exits with code 129 (128 + SIGHUP, as after a hangup),
 * running its exit handlers.
 *
 * The child's side runs when this module loads: spawnScript preloads it
 * (`--preload`) so it works whether or not the script imports shmkit. The
 * watch is unref'd: it never keeps the child alive.
 *
 * @module
 */
import { check } from "../core/errors.ts";
import { unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { deno, nodeProcess } from "../core/_runtime.ts";
import { LIFELINE_VARIABLE, takeVariable } from "./_environ.ts";
import { waitReady } from "./_poll_reactor.ts";

const C = platform.constants;

/** The exit code of a child whose parent has gone. */
export const ORPHAN_EXIT_CODE = 129;

let readEnd: number | undefined;

/**
 * The read end of this process's lifeline, created on first use and kept
 * for the life of the process (both ends close-on-exec here).
 */
export function lifelineReadEnd(): number {
  if (readEnd === undefined) {
    const fds = new Int32Array(2);
    check(unsafeLibc.pipe2(fds, C.O_CLOEXEC), "pipe2", {}, {
      EMFILE: "this process has too many open files",
    });
    readEnd = fds[0]!;
  }
  return readEnd;
}

/** The child's side: exit once the fd named in SHMKIT_LIFELINE reports EOF. */
function watchParent(): void {
  const text = takeVariable(LIFELINE_VARIABLE);
  if (!/^(0|[1-9][0-9]{0,9})$/.test(text)) return;
  const key = Symbol.for("shmkit.lifelineWatched");
  const scope = globalThis as { [key]?: boolean };
  if (scope[key]) return; // another copy of shmkit watches it
  scope[key] = true;
  const fd = Number(text);
  const flags = unsafeLibc.fcntl(fd, C.F_GETFD, 0);
  if (flags === -1) return;
  // This process's own children must not hold it (nor need it).
  unsafeLibc.fcntl(fd, C.F_SETFD, flags | C.FD_CLOEXEC);
  waitReady(fd, C.POLLIN, false).promise.then(() => {
    (deno ?? nodeProcess)?.exit(ORPHAN_EXIT_CODE);
  });
}

watchParent();

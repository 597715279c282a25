/**
 * Ending children that should not outlive a reason: `timeoutMs`, `signal`
 * (an AbortSignal) and `killOnExit`.
 *
 * A timeout or an abort sends `killSignal` (SIGTERM by default), then
 * SIGKILL after `graceMs` if the child is still there. `killOnExit` hands
 * the child's pid to a guardian: one small `/bin/sh` per process, in a
 * process group of its own, reading `+ pid signal` and `- pid` lines from a
 * pipe whose write end only this process holds (close-on-exec). However
 * this process ends (a normal exit, an uncaught error, SIGINT, SIGTERM,
 * even SIGKILL) the kernel closes that end; the guardian reads EOF and
 * signals every pid still listed. No signal listener is installed here, so
 * Ctrl-C and SIGTERM behave as if shmkit weren't loaded.
 *
 * A pid is listed from the spawn until the reap; a pid could be reused only
 * in the instant between the reap and the `- pid` line that follows it on
 * the same turn of the event loop, if this process is killed right then.
 *
 * @module
 */
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { setTimerRef } from "../core/_runtime.ts";
import type { Child } from "./child.ts";
import type { SpawnOptions } from "./_plan.ts";

const C = platform.constants;
const E = platform.errno;

/** What a child is supervised for, checked (see `_plan.ts`). */
export interface Supervision {
  readonly timeoutMs: number | undefined;
  readonly graceMs: number;
  readonly killSignal: number;
  readonly killOnExit: boolean;
  readonly signal: AbortSignal | undefined;
}

/** Starts a process as `spawn` does (passed in, so this module needs no import of spawn.ts). */
export type Launcher = (argv: readonly string[], options: SpawnOptions) => Child;

/**
 * Applies `s` to a child just started: timers and the abort listener, and
 * the guardian's list, all undone when the child has been reaped.
 */
export function supervise(child: Child, s: Supervision, launch: Launcher): void {
  if (s.timeoutMs === undefined && s.signal === undefined && !s.killOnExit) return;
  const timers: ReturnType<typeof setTimeout>[] = [];
  // Timers never keep this process alive: a ref'd child does that already.
  const later = (ms: number, fn: () => void): void => {
    const timer = setTimeout(fn, ms);
    setTimerRef(timer, false);
    timers.push(timer);
  };
  const stop = (): void => {
    if (!child.kill(s.killSignal)) return;
    later(s.graceMs, () => child.kill("SIGKILL"));
  };
  if (s.timeoutMs !== undefined) later(s.timeoutMs, stop);
  s.signal?.addEventListener("abort", stop, { once: true });
  if (s.killOnExit) guard(child.pid, s.killSignal, launch);
  const end = (): void => {
    for (const timer of timers) clearTimeout(timer);
    s.signal?.removeEventListener("abort", stop);
    if (s.killOnExit) unguard(child.pid, launch);
  };
  child.status.then(end, end);
}

/** The guardian: `sh` keeps "pid:signal" words in $pids until EOF, then signals them. */
export const GUARDIAN_SCRIPT = [
  "trap '' INT HUP QUIT TSTP TTIN TTOU",
  "pids=' '",
  "while read -r op pid sig; do",
  "  case $op in",
  '    +) pids="$pids$pid:$sig " ;;',
  '    -) case $pids in *" $pid:"*) rest=${pids#* $pid:}; pids="${pids%% $pid:*} ${rest#* }" ;; esac ;;',
  "  esac",
  "done",
  'for entry in $pids; do kill -"${entry#*:}" "${entry%%:*}" 2>/dev/null; done',
].join("\n");

const guarded = new Map<number, number>(); // pid → signal
let guardian: { readonly fd: number; readonly child: Child } | undefined;
const encoder = new TextEncoder();

/** Starts a guardian that knows every guarded pid. */
function startGuardian(launch: Launcher): { readonly fd: number; readonly child: Child } {
  const fds = new Int32Array(2);
  if (unsafeLibc.pipe2(fds, C.O_CLOEXEC | C.O_NONBLOCK) === -1) {
    throw new Error(`Cannot start the killOnExit guardian: pipe2 failed (errno ${errno()})`);
  }
  const [read, write] = [fds[0]!, fds[1]!];
  let child: Child;
  try {
    // The read end must block: sh's `read` does not retry EAGAIN.
    unsafeLibc.fcntl(read, C.F_SETFL, unsafeLibc.fcntl(read, C.F_GETFL, 0) & ~C.O_NONBLOCK);
    child = launch(["/bin/sh", "-c", GUARDIAN_SCRIPT], {
      stdin: read,
      stdout: "null",
      stderr: "null",
      processGroup: true,
    });
  } catch (error) {
    unsafeLibc.close(write);
    throw error;
  } finally {
    unsafeLibc.close(read);
  }
  child.unref();
  const started = { fd: write, child };
  // Killed meanwhile: a new one takes over the list at once.
  const ended = (): void => {
    if (guardian !== started) return;
    unsafeLibc.close(started.fd);
    guardian = undefined;
    try {
      if (guarded.size > 0) guardian = startGuardian(launch);
    } catch {
      // The next spawn or reap tries again.
    }
  };
  child.status.then(ended, ended);
  const lines = [...guarded].map(([pid, signal]) => `+ ${pid} ${signal}\n`).join("");
  if (lines !== "" && !writeAll(write, lines)) {
    unsafeLibc.close(write);
    throw new Error("Cannot start the killOnExit guardian: it did not take the list of pids");
  }
  return started;
}

/** Writes all of `text` at once; false if the guardian can't take it (gone, or stuck). */
function writeAll(fd: number, text: string): boolean {
  const bytes = encoder.encode(text);
  for (let at = 0; at < bytes.length;) {
    const n = unsafeLibc.write(fd, bytes.subarray(at), bytes.length - at);
    if (n > 0) at += n;
    else if (n === -1 && errno() === E.EINTR) continue;
    else return false;
  }
  return true;
}

/** Tells the guardian a line, starting a new one (with the whole list) if it is gone. */
function tell(line: string, launch: Launcher): void {
  if (guardian !== undefined && writeAll(guardian.fd, line)) return;
  const old = guardian;
  guardian = undefined;
  if (old !== undefined) {
    unsafeLibc.close(old.fd);
    old.child.kill("SIGKILL");
  }
  if (guarded.size > 0) guardian = startGuardian(launch);
}

function guard(pid: number, signal: number, launch: Launcher): void {
  guarded.set(pid, signal);
  try {
    tell(`+ ${pid} ${signal}\n`, launch);
  } catch (error) {
    guarded.delete(pid);
    throw error;
  }
}

function unguard(pid: number, launch: Launcher): void {
  if (!guarded.delete(pid)) return;
  tell(`- ${pid}\n`, launch);
}

/** For tests: the guardian's pid, or undefined when none runs. */
export function guardianPidForTesting(): number | undefined {
  return guardian?.child.pid;
}

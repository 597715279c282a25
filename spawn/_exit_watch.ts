/**
 * Noticing that a child has ended, and reaping it, without blocking the
 * event loop: a SIGCHLD listener (Deno, Node), a pidfd (Bun), or a timer.
 *
 * @module
 */
import { ErrnoError } from "../core/errors.ts";
import { backend, errno, unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { deno, nodeProcess, setTimerRef } from "../core/_runtime.ts";
import { closingFd, onceReady, type OnceWait, type ReadyWait, waitReady } from "./_poll_reactor.ts";

const C = platform.constants;
const E = platform.errno;

const cell = new Int32Array(1); // waitpid's status, read at once

/** The raw status of a reaped child, or undefined while it runs. */
function reap(pid: number): number | undefined {
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
 * - "signal" (Deno, Node): a SIGCHLD listener reaps with `waitpid(WNOHANG)`.
 *   Deno delivers the signal to the JS thread directly, one thread hop fewer
 *   than a poll on another thread (measured ~30-150 us less per spawn + wait);
 *   Node's `process.on("SIGCHLD")` sees posix_spawn children too (libuv
 *   reaps only its own). Signal listeners keep neither alive, so a timer
 *   does while a ref'd child runs (and reaps once a second, in case a signal
 *   was missed).
 * - "pidfd" (Bun, and Deno when it can't listen): a pidfd, readable once the
 *   child has ended, waited for by `_poll_reactor.ts` (on Bun's main thread,
 *   by a native thread that calls back into JS). Bun's own SIGCHLD
 *   listener was measured ~2 ms slower per child, with ~1 ms of CPU.
 * - "timer" (no pidfd: Linux before 5.3, sandboxes): `waitpid(WNOHANG)` on a
 *   timer backing off from 1 ms to 50 ms.
 */
export type ExitStrategy = "signal" | "pidfd" | "timer";

let strategy: ExitStrategy | undefined;
let listening = false;
const signalWatches = new Set<{ readonly referenced: boolean; poll(): boolean }>();
let keepAlive: ReturnType<typeof setInterval> | undefined;
let keepAliveRef = false;

// How many children each path reaped (for tests: a SIGCHLD lost shows as a reap by the tick).
const reapedBy = { signal: 0, tick: 0 };

/** For tests: how many children the SIGCHLD listener and the keep-alive tick have reaped. */
export function reapCountsForTesting(): { signal: number; tick: number } {
  return { ...reapedBy };
}

function onChildSignal(by: "signal" | "tick" = "signal"): void {
  // A settled watch deletes itself from the set; a Set's iteration allows that.
  for (const watch of signalWatches) if (watch.poll()) reapedBy[by]++;
  updateKeepAlive();
}

// Node passes the signal's name and number: not a reap path.
const onSigchld = (): void => onChildSignal("signal");

function onKeepAlive(): void {
  onChildSignal("tick");
  // Idle for a whole period: stop (kept until then, a timer per child costs Deno an op pair).
  if (signalWatches.size === 0 && keepAlive !== undefined) {
    clearInterval(keepAlive);
    keepAlive = undefined;
    keepAliveRef = false;
  }
}

/** A ref'd child keeps the process alive through the interval (which also reaps once a second). */
function updateKeepAlive(): void {
  let anyRef = false;
  for (const watch of signalWatches) {
    if (watch.referenced) {
      anyRef = true;
      break;
    }
  }
  if (anyRef === keepAliveRef) return;
  keepAliveRef = anyRef;
  if (keepAlive === undefined) {
    keepAlive = setInterval(onKeepAlive, 1000);
    if (!anyRef) setTimerRef(keepAlive, false);
  } else {
    setTimerRef(keepAlive, anyRef);
  }
}

/** Starts listening for SIGCHLD (Deno, Node); false where that is not possible. */
function listenForChildren(): boolean {
  if (listening) return true;
  try {
    if (backend.runtime === "deno" && deno !== undefined) {
      deno.addSignalListener("SIGCHLD", onSigchld);
      listening = true;
    } else if (backend.runtime === "node" && nodeProcess !== undefined) {
      nodeProcess.on("SIGCHLD", onSigchld);
      listening = true;
    }
  } catch {
    // No signal listeners here (a sandboxed embedder): pidfds it is.
  }
  return listening;
}

function exitStrategy(): ExitStrategy {
  return strategy ??= listenForChildren() ? "signal" : "pidfd";
}

/**
 * Call before starting a child: a SIGCHLD that comes before the listener
 * exists is lost (its default is to be ignored), and the end of a child as
 * quick as /bin/true was then noticed only by the once-a-second reap.
 */
export function prepareExitWatch(): void {
  exitStrategy();
}

/**
 * For tests: notice children's ends with `which` from now on ("signal"
 * only where it works, i.e. Deno and Node); returns the strategy in use before.
 */
export function useExitStrategyForTesting(which: ExitStrategy): ExitStrategy {
  const before = exitStrategy();
  if (which === "signal" && !listenForChildren()) {
    throw new RangeError(
      "Cannot use the signal strategy: it needs Deno's or Node's signal listeners",
    );
  }
  strategy = which;
  return before;
}

/** What a watch does once its child is reaped: `settle` first, then its promise gets `convert(status)`. */
export interface ExitHooks<T> {
  /** Turns the raw wait status into the promise's value. */
  convert(status: number): T;
  /** Runs before the promise settles, either way (pipes give back their fds). */
  settle?(): void;
}

const RAW: ExitHooks<number> = { convert: (status) => status };

/**
 * Watches one child until it ends, and reaps it. Its promise resolves with
 * `hooks.convert(status)` directly: one promise per child, not a chain.
 */
export class ExitWatch<T = number> {
  readonly promise: Promise<T>;
  readonly pid: number;
  exited = false;
  referenced = true;
  #resolve!: (value: T) => void;
  #reject!: (error: unknown) => void;
  #hooks: ExitHooks<T>;
  // What keeps this child's wait alive: the keep-alive interval ("signal"), a pidfd wait, a timer.
  #how: ExitStrategy;
  #wait: ReadyWait | OnceWait | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #pidfd = -1;
  #onReady: (() => void) | undefined; // made on the pidfd path only

  constructor(pid: number, hooks: ExitHooks<T> = RAW as unknown as ExitHooks<T>) {
    this.pid = pid;
    this.#hooks = hooks;
    this.promise = new Promise<T>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    let how = exitStrategy();
    // No pidfd_open here (Darwin's table marks it -1): the timer it is.
    const pidfd = how === "pidfd" && C.SYS_pidfd_open !== -1
      ? unsafeLibc.syscall(C.SYS_pidfd_open, pid, 0, 0, 0, 0, 0)
      : -1;
    if (how === "pidfd" && pidfd < 0) how = "timer";
    this.#how = how;
    if (how === "signal") {
      // The child can't have been reaped yet: the listener runs on this thread, later.
      signalWatches.add(this);
      updateKeepAlive();
    } else if (how === "pidfd") {
      this.#pidfd = pidfd;
      try {
        this.#waitPidfd();
      } catch {
        this.#closePidfd();
        this.#how = "timer";
        this.#watchTimer(1);
      }
    } else {
      this.#watchTimer(1);
    }
  }

  set ref(value: boolean) {
    this.referenced = value;
    if (this.#how === "signal") updateKeepAlive();
    else if (this.#how === "pidfd") {
      if (this.#wait !== undefined) this.#wait.ref = value;
    } else if (this.#timer !== undefined) setTimerRef(this.#timer, value);
  }

  /** Reaps the child if it has ended; true once settled. */
  poll(): boolean {
    let status: number | undefined;
    try {
      status = reap(this.pid);
    } catch (error) {
      // ECHILD: someone else reaped it, so its pid is no longer ours to signal.
      this.#settled();
      this.#fail(error);
      return true;
    }
    if (status === undefined) return false;
    this.#settled();
    let value: T;
    try {
      value = this.#hooks.convert(status);
    } catch (error) {
      this.#fail(error);
      return true;
    }
    this.#resolve(value);
    return true;
  }

  /** Rejects, marked handled: a never-awaited child must not crash the process (no handler per child until then). */
  #fail(error: unknown): void {
    this.promise.catch(() => {});
    this.#reject(error);
  }

  #settled(): void {
    this.exited = true;
    signalWatches.delete(this);
    try {
      this.#hooks.settle?.();
    } catch {
      // A pipe that fails to give back its fd must not keep the status from arriving.
    }
  }

  /**
   * Waits for the pidfd to be readable (once the child has ended): a
   * callback from the reactor where it offers one (epoll), else a promise.
   * A wake-up without an end waits again.
   */
  #waitPidfd(): void {
    const onReady = this.#onReady ??= () => this.#pidfdReady();
    const once = onceReady(this.#pidfd, C.POLLIN, this.referenced, onReady);
    if (once !== undefined) {
      this.#wait = once;
      return;
    }
    const wait = waitReady(this.#pidfd, C.POLLIN, this.referenced);
    this.#wait = wait;
    wait.promise.then(onReady);
  }

  #pidfdReady(): void {
    let done = true;
    try {
      done = this.poll();
      if (!done) this.#waitPidfd();
    } catch {
      // The reactor failed to take the wait again: a timer finishes the job.
      done = true;
      this.#how = "timer";
      this.#watchTimer(1);
    } finally {
      if (done) this.#closePidfd();
    }
  }

  #closePidfd(): void {
    this.#wait = undefined;
    closingFd(this.#pidfd);
    unsafeLibc.close(this.#pidfd);
    this.#pidfd = -1;
  }

  #watchTimer(delay: number): void {
    if (this.poll()) return;
    const timer = setTimeout(() => this.#watchTimer(Math.min(delay * 2, 50)), delay);
    this.#timer = timer;
    if (!this.referenced) setTimerRef(timer, false);
  }
}

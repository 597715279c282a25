/**
 * POSIX named semaphores (`sem_open`): a counter in a small object glibc
 * keeps in /dev/shm as `sem.NAME`, shared with any process that opens the
 * name — C programs, Python through ctypes, other shmkit processes.
 *
 * @example Guard a section across processes
 * ```ts
 * import { NamedSemaphore } from "@shmkit/shmkit/ipc";
 * using sem = NamedSemaphore.create({ value: 1 });
 * sem.wait();
 * try {
 *   // ... the section; other processes open sem.name ...
 * } finally {
 *   sem.post();
 * }
 * ```
 *
 * @module
 */
import { ClosedError, ErrnoError } from "../core/errors.ts";
import { nextMacrotask } from "../core/_runtime.ts";
import { checkInteger, checkMode, checkOptions } from "../core/_validate.ts";
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { randomName } from "../shm/_names.ts";
import { encodeShmName } from "../shm/raw.ts";
import { checkSignal, checkTimeout, DEFAULT_POLL_MS, type Timespec } from "../sync/_futex.ts";
import { identityOf, keepName, openError, removeOnExit, unlinkIfSame } from "./_sem_names.ts";
import { addressArgument } from "../ffi/_arguments.ts";
import { deadlineCell, writeDeadline } from "./_deadline.ts";
import { blockOnce } from "./_sem_worker.ts";

const C = platform.constants;
const E = platform.errno;
// Bound once: unsafeLibc is a dictionary-mode object, whose property loads V8
// does not fold into the hot calls (~1.5 ns per wait+post on Deno, measured).
const semWait = unsafeLibc.sem_wait;
const semPost = unsafeLibc.sem_post;
const semTrywait = unsafeLibc.sem_trywait;

/**
 * The longest blocking call of an async wait on a worker thread (Deno), in
 * ms: an aborted or closed wait frees its thread within this.
 */
export const SEMAPHORE_SLICE_MS = 50;
/** The longest pause between two tries of an async wait that polls (no thread to block on), in ms. */
export const SEMAPHORE_POLL_MAX_MS = 8;

/** Options of {@linkcode NamedSemaphore.create}. */
export interface NamedSemaphoreCreateOptions {
  /** The name, checked like a shared memory name ("/x"). Default: "/shmkit-" and 16 random hex digits. */
  readonly name?: string;
  /** Permission bits (default 0o600; the umask may narrow them). */
  readonly mode?: number;
  /** The initial count, 0 to SEM_VALUE_MAX (default 0). */
  readonly value?: number;
  /**
   * Keep the name after `close()` and after this process ends (default
   * false: a created semaphore is unlinked on close, on exit, and by the
   * out-of-process cleaner if this process is killed).
   */
  readonly persist?: boolean;
}

/** Options of {@linkcode NamedSemaphore.waitAsync}. */
export interface NamedSemaphoreWaitOptions {
  /** Ends the wait when aborted: the promise rejects with the signal's `reason`. */
  readonly signal?: AbortSignal;
  /** Give up after this many ms (default Infinity): the promise resolves false. */
  readonly timeoutMs?: number;
  /** How long to poll with `sem_trywait` before blocking (default DEFAULT_POLL_MS). */
  readonly pollMs?: number;
}

interface State {
  /** The sem_t* from sem_open; 0 once closed. */
  pointer: number;
  /** Async calls running on another thread with the pointer (Deno). */
  inflight: number;
  /** close() was called while calls were in flight: sem_close when the last returns. */
  closing: boolean;
}

const finalizer = new FinalizationRegistry<State>((state) => {
  if (state.pointer !== 0 && state.inflight === 0) unsafeLibc.sem_close(state.pointer);
});

/** Throws the ClosedError of a closed semaphore; out of line for the hot calls (see wait()). */
function closed(action: string): never {
  throw new ClosedError(action, "semaphore");
}

/** SEM_FAILED: NULL on glibc, (sem_t *)-1 on Darwin (as a 64-bit value past 2^53). */
function failed(pointer: number): boolean {
  return pointer === 0 || pointer >= 2 ** 53;
}

/**
 * An open POSIX named semaphore: the `sem_t *` `sem_open` returned, closed
 * exactly once (`close()`, `using`, or a finalizer as a safety net).
 *
 * `wait()` blocks the thread (and so the event loop) in `sem_wait`;
 * `waitAsync()` doesn't. Each open handle counts for one `sem_open`: glibc
 * shares one mapping between all the handles of a process that name the same
 * semaphore, and unmaps it at the last `sem_close`.
 */
export class NamedSemaphore implements Disposable {
  readonly #name: string;
  readonly #state: State;
  /** The sem_t* as calls take it fastest (see ffi/_arguments.ts). */
  readonly #argument: number;
  /** False from `close()` on: the one flag the hot calls read. */
  #open = true;
  readonly #created: boolean;
  readonly #identity: { dev: number; ino: number } | undefined;
  readonly #cell = new Int32Array(1);
  #timespec: Timespec | undefined;

  private constructor(
    name: string,
    pointer: number,
    created: boolean,
    identity: { dev: number; ino: number } | undefined,
  ) {
    this.#name = name;
    this.#state = { pointer, inflight: 0, closing: false };
    this.#argument = addressArgument(pointer);
    this.#created = created;
    this.#identity = identity;
    finalizer.register(this, this.#state, this);
  }

  /**
   * Creates a new semaphore: `sem_open(name, O_CREAT | O_EXCL, mode, value)`.
   * Unless `persist`, the name is removed on `close()`, at exit, or by the
   * out-of-process cleaner if this process is killed.
   *
   * @example
   * ```ts
   * import { NamedSemaphore } from "@shmkit/shmkit/ipc";
   * using sem = NamedSemaphore.create({ value: 2 });
   * console.log(sem.value); // 2
   * console.log(sem.name); // e.g. "/shmkit-2d8b1c317f8253cc"
   * ```
   *
   * @param options Name, mode, initial value, persist.
   * @returns The open semaphore.
   * @throws {TypeError} When an option has the wrong type.
   * @throws {RangeError} When the name is malformed or the value out of range.
   * @throws {ErrnoError} When sem_open fails (EEXIST: the name is taken).
   */
  static create(options?: NamedSemaphoreCreateOptions): NamedSemaphore {
    const opts = checkOptions(options, "semaphore options");
    const mode = opts.mode === undefined ? 0o600 : checkMode(opts.mode);
    const value = opts.value === undefined
      ? 0
      : checkInteger(opts.value, "value", 0, C.SEM_VALUE_MAX);
    const persist = opts.persist === true;
    const given = opts.name;
    let name = given ?? randomName();
    let c = encodeShmName(name, "semaphore name");
    let pointer = unsafeLibc.sem_open(c, C.O_CREAT | C.O_EXCL, mode, value);
    for (let tries = 0; failed(pointer) && given === undefined && tries < 8; tries++) {
      if (errno() !== E.EEXIST) break;
      name = randomName();
      c = encodeShmName(name, "semaphore name");
      pointer = unsafeLibc.sem_open(c, C.O_CREAT | C.O_EXCL, mode, value);
    }
    if (failed(pointer)) throw openError(name, errno());
    const identity = identityOf(name);
    const sem = new NamedSemaphore(name, pointer, !persist, identity);
    if (!persist) removeOnExit(name, identity);
    return sem;
  }

  /**
   * Opens an existing semaphore: `sem_open(name, 0)`. This process never
   * unlinks it on its own.
   *
   * @example
   * ```ts
   * import { NamedSemaphore } from "@shmkit/shmkit/ipc";
   * using made = NamedSemaphore.create({ value: 1 });
   * using opened = NamedSemaphore.open(made.name);
   * opened.post();
   * console.log(made.value); // 2
   * ```
   *
   * @param name The name ("/x").
   * @returns The open semaphore.
   * @throws {TypeError} When the name is not a string or holds a NUL.
   * @throws {RangeError} When the name is malformed.
   * @throws {ErrnoError} When sem_open fails (ENOENT: no such semaphore).
   */
  static open(name: string): NamedSemaphore {
    const c = encodeShmName(name, "semaphore name");
    const pointer = unsafeLibc.sem_open(c, 0, 0, 0);
    if (failed(pointer)) throw openError(name, errno());
    return new NamedSemaphore(name, pointer, false, undefined);
  }

  /**
   * Removes a name: `sem_unlink(name)`. Open handles keep working; a later
   * `open` of the name fails.
   *
   * @example
   * ```ts
   * import { NamedSemaphore } from "@shmkit/shmkit/ipc";
   * const sem = NamedSemaphore.create({ persist: true });
   * sem.close();
   * NamedSemaphore.unlink(sem.name); // true
   * ```
   *
   * @param name The name ("/x").
   * @returns true when removed, false when no semaphore had the name.
   * @throws {ErrnoError} When sem_unlink fails otherwise (EACCES).
   */
  static unlink(name: string): boolean {
    const c = encodeShmName(name, "semaphore name");
    if (unsafeLibc.sem_unlink(c) === 0) return true;
    const code = errno();
    if (code === E.ENOENT) return false;
    throw new ErrnoError("sem_unlink", code, { path: name });
  }

  /** The name ("/x"). */
  get name(): string {
    return this.#name;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return !this.#open;
  }

  /**
   * The pointer argument of every call, after the one closed check. No throw
   * in this body: on Node an inline throw before the FFI call kept node:ffi's
   * fast call from being used (~80 ns more per wait+post).
   */
  #handle(action: string): number {
    if (!this.#open) closed(action);
    return this.#argument;
  }

  /**
   * The current count: `sem_getvalue`. Only a snapshot: other processes may
   * change it at once.
   *
   * @throws {ClosedError} After `close()`.
   */
  get value(): number {
    if (unsafeLibc.sem_getvalue(this.#handle("read the semaphore"), this.#cell) === -1) {
      throw new ErrnoError("sem_getvalue", errno(), { path: this.#name });
    }
    return this.#cell[0]!;
  }

  /**
   * Takes one unit, blocking the thread until there is one: `sem_wait`
   * (retried on EINTR). The event loop stops meanwhile: prefer
   * {@linkcode NamedSemaphore.waitAsync} where anything else must run.
   *
   * @example
   * ```ts
   * import { NamedSemaphore } from "@shmkit/shmkit/ipc";
   * using sem = NamedSemaphore.create({ value: 1 });
   * sem.wait();
   * sem.post();
   * ```
   *
   * @throws {ClosedError} After `close()`.
   * @throws {ErrnoError} When sem_wait fails other than EINTR.
   */
  wait(): void {
    if (semWait(this.#handle("wait")) !== 0) this.#waitFailed();
  }

  #waitFailed(): void {
    for (;;) {
      const code = errno();
      if (code !== E.EINTR) throw new ErrnoError("sem_wait", code, { path: this.#name });
      if (semWait(this.#argument) === 0) return;
    }
  }

  /**
   * Takes one unit if there is one: `sem_trywait`.
   *
   * @example
   * ```ts
   * import { NamedSemaphore } from "@shmkit/shmkit/ipc";
   * using sem = NamedSemaphore.create({ value: 0 });
   * console.log(sem.tryWait()); // false
   * ```
   *
   * @returns true when a unit was taken, false when the count was 0.
   * @throws {ClosedError} After `close()`.
   * @throws {ErrnoError} When sem_trywait fails other than EAGAIN.
   */
  tryWait(): boolean {
    return this.#try(this.#handle("wait"));
  }

  #try(pointer: number): boolean {
    for (;;) {
      if (semTrywait(pointer) === 0) return true;
      const code = errno();
      if (code === E.EAGAIN) return false;
      if (code !== E.EINTR) throw new ErrnoError("sem_trywait", code, { path: this.#name });
    }
  }

  /**
   * Takes one unit, blocking the thread at most `timeoutMs`:
   * `sem_clockwait(CLOCK_MONOTONIC)` (glibc 2.30+), else `sem_timedwait`
   * (CLOCK_REALTIME).
   *
   * @example
   * ```ts
   * import { NamedSemaphore } from "@shmkit/shmkit/ipc";
   * using sem = NamedSemaphore.create({ value: 0 });
   * console.log(sem.timedWait(10)); // false
   * ```
   *
   * @param timeoutMs Milliseconds, 0 or more, or Infinity.
   * @returns true when a unit was taken, false on timeout.
   * @throws {RangeError} When the timeout is negative or NaN.
   * @throws {ClosedError} After `close()`.
   * @throws {ErrnoError} When the wait fails other than ETIMEDOUT or EINTR.
   */
  timedWait(timeoutMs: number): boolean {
    const timeout = checkTimeout(timeoutMs);
    const pointer = this.#handle("wait");
    if (timeout === Infinity) {
      this.wait();
      return true;
    }
    const cell = this.#timespec ??= deadlineCell();
    const clockwait = unsafeLibc.sem_clockwait;
    const timedwait = unsafeLibc.sem_timedwait;
    if (clockwait === undefined && timedwait === undefined) {
      throw new ErrnoError("sem_timedwait", E.ENOSYS ?? 38, {
        hint: "this libc has no timed wait",
      });
    }
    const clock = clockwait === undefined ? C.CLOCK_REALTIME : C.CLOCK_MONOTONIC;
    writeDeadline(cell, clock, timeout);
    for (;;) {
      const result = clockwait === undefined
        ? timedwait!(pointer, cell.bytes)
        : clockwait(pointer, clock, cell.bytes);
      if (result === 0) return true;
      const code = errno();
      if (code === E.ETIMEDOUT) return false;
      if (code !== E.EINTR) {
        throw new ErrnoError(clockwait === undefined ? "sem_timedwait" : "sem_clockwait", code, {
          path: this.#name,
        });
      }
    }
  }

  /**
   * Takes one unit without blocking the event loop. It polls `sem_trywait`
   * for `pollMs`, then blocks in `sem_clockwait` on another thread (Deno: a
   * nonblocking FFI call; Bun: a pooled Worker) in slices of
   * {@linkcode SEMAPHORE_SLICE_MS}. Where no thread is available (no
   * sem_clockwait, or 16 Bun Workers busy) it polls with pauses growing to
   * {@linkcode SEMAPHORE_POLL_MAX_MS}.
   * An abort settles the promise at once; a unit taken by a slice that ends
   * after the abort is posted back, so none is lost.
   *
   * @example
   * ```ts
   * import { NamedSemaphore } from "@shmkit/shmkit/ipc";
   * using sem = NamedSemaphore.create({ value: 0 });
   * setTimeout(() => sem.post(), 5);
   * console.log(await sem.waitAsync({ timeoutMs: 5000 })); // true
   * ```
   *
   * @param options timeoutMs, signal, pollMs.
   * @returns true when a unit was taken, false on timeout.
   * @throws {TypeError} When an option has the wrong type.
   * @throws {ClosedError} After `close()` (also when closed during the wait).
   */
  waitAsync(options?: NamedSemaphoreWaitOptions): Promise<boolean> {
    const opts = checkOptions(options, "wait options");
    const timeout = checkTimeout(opts.timeoutMs);
    const pollMs = opts.pollMs === undefined
      ? DEFAULT_POLL_MS
      : checkTimeout(opts.pollMs, "pollMs");
    const signal = checkSignal(opts.signal);
    this.#handle("wait");
    const cancel = { cancelled: false };
    const waiting = this.#waitAsync(timeout, pollMs, signal, cancel);
    if (signal === undefined) return waiting;
    return new Promise<boolean>((resolve, reject) => {
      const onAbort = (): void => {
        cancel.cancelled = true;
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      waiting.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
    });
  }

  async #waitAsync(
    timeout: number,
    pollMs: number,
    signal: AbortSignal | undefined,
    cancel: { cancelled: boolean },
  ): Promise<boolean> {
    signal?.throwIfAborted();
    const live = (): number => {
      if (cancel.cancelled) throw signal?.reason;
      return this.#handle("wait");
    };
    if (this.#try(live())) return true;
    if (timeout === 0) return false;
    const start = performance.now();
    const deadline = start + timeout;
    const pollEnd = Math.min(deadline, start + pollMs);
    while (performance.now() < pollEnd) {
      await nextMacrotask();
      if (this.#try(live())) return true;
    }
    const cell = deadlineCell(); // its own: other waits run meanwhile
    const state = this.#state;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      const pointer = live();
      const slice = Math.min(left, SEMAPHORE_SLICE_MS);
      state.inflight++;
      let result: number | undefined;
      try {
        result = await blockOnce(state.pointer, pointer, cell, slice);
        // Taken after the caller gave up: give it back while the pointer is still ours.
        if (result === 0 && (cancel.cancelled || state.closing)) unsafeLibc.sem_post(pointer);
      } finally {
        state.inflight--;
        if (state.inflight === 0 && state.closing) this.#release();
      }
      if (result === 0) {
        live();
        return true;
      }
      if (result === undefined) break; // no thread to block on: poll
      // errno belongs to another thread: a synchronous try tells a lasting error apart.
      if (this.#try(live())) return true;
    }
    let delay = 0.5;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await new Promise((resolve) => setTimeout(resolve, Math.min(delay, left)));
      if (this.#try(live())) return true;
      delay = Math.min(delay * 2, SEMAPHORE_POLL_MAX_MS);
    }
  }

  /**
   * Gives one unit back: `sem_post`, waking one waiter.
   *
   * @example
   * ```ts
   * import { NamedSemaphore } from "@shmkit/shmkit/ipc";
   * using sem = NamedSemaphore.create();
   * sem.post();
   * console.log(sem.value); // 1
   * ```
   *
   * @throws {ClosedError} After `close()`.
   * @throws {ErrnoError} When sem_post fails (EOVERFLOW: the count is at SEM_VALUE_MAX).
   */
  post(): void {
    if (semPost(this.#handle("post")) !== 0) this.#postFailed(errno());
  }

  #postFailed(code: number): never {
    throw new ErrnoError("sem_post", code, {
      path: this.#name,
      ...(code === E.EOVERFLOW
        ? { hint: `the count is at SEM_VALUE_MAX (${C.SEM_VALUE_MAX})` }
        : {}),
    });
  }

  /**
   * Removes the name if it still names the semaphore this process created
   * (or, for an opened one, whatever it names now): `sem_unlink`. The
   * handle keeps working.
   *
   * @example
   * ```ts
   * import { NamedSemaphore } from "@shmkit/shmkit/ipc";
   * using sem = NamedSemaphore.create();
   * sem.unlink(); // true
   * sem.post(); // still works
   * ```
   *
   * @returns Whether a name was removed.
   * @throws {ErrnoError} When sem_unlink fails other than ENOENT.
   */
  unlink(): boolean {
    keepName(this.#name);
    if (this.#identity !== undefined) {
      return unlinkIfSame(this.#name, this.#identity.dev, this.#identity.ino);
    }
    return NamedSemaphore.unlink(this.#name);
  }

  /**
   * Closes the handle (`sem_close`, once; later calls do nothing), and
   * unlinks the name if this process created it without `persist`. An
   * async wait still running rejects with ClosedError; `sem_close` then
   * waits for its thread to return (at most one slice).
   *
   * @example
   * ```ts
   * import { NamedSemaphore } from "@shmkit/shmkit/ipc";
   * const sem = NamedSemaphore.create();
   * sem.close();
   * console.log(sem.closed); // true
   * ```
   */
  close(): void {
    if (!this.#open) return;
    if (this.#created) this.unlink();
    finalizer.unregister(this);
    this.#open = false;
    this.#state.closing = true;
    if (this.#state.inflight === 0) this.#release();
  }

  #release(): void {
    const pointer = this.#state.pointer;
    this.#state.pointer = 0;
    this.#state.closing = false;
    if (pointer !== 0) unsafeLibc.sem_close(pointer);
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

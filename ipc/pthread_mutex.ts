/**
 * Process-shared robust pthread mutexes: a `pthread_mutex_t` that lives in
 * shared memory, locked by shmkit and by C (or any libc) peers alike.
 *
 * A pthread mutex is owned by a THREAD. Lock and unlock it on the thread
 * that runs your JS (all methods here do); never hand the lock to another
 * Worker. `lockAsync` takes the lock on this thread too: it tries, and
 * between tries sleeps (on another thread) on glibc's lock word, never
 * holding the lock anywhere else.
 *
 * @example A counter under a mutex shared with a C program
 * ```ts
 * import { Mapping } from "@shmkit/shmkit";
 * import { PthreadMutex } from "@shmkit/shmkit/ipc";
 * using mapping = Mapping.anonymous(4096);
 * const mutex = PthreadMutex.init(mapping.view(Uint8Array, 0, PthreadMutex.size));
 * const counter = mapping.view(Int32Array, 64, 1);
 * const { ownerDied } = mutex.lock();
 * if (ownerDied) mutex.consistent(); // after repairing what the dead owner left
 * try {
 *   counter[0]!++;
 * } finally {
 *   mutex.unlock();
 * }
 * ```
 *
 * @module
 */
import { ClosedError, ErrnoError } from "../core/errors.ts";
import { beforeRelease, isRegionBuffer } from "../core/_region.ts";
import { checkOptions } from "../core/_validate.ts";
import { unsafeLibc } from "../ffi/libc.ts";
import { typeName, unsafeAddressOf } from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";
import {
  checkSignal,
  checkTimeout,
  DEFAULT_POLL_MS,
  futexWaitAsync,
  type Timespec,
} from "../sync/_futex.ts";
import { LockError } from "../sync/_lock_error.ts";
import { addressArgument } from "../ffi/_arguments.ts";
import { deadlineCell, writeDeadline } from "./_deadline.ts";

const C = platform.constants;
const E = platform.errno;
// Bound once: unsafeLibc is a dictionary-mode object, whose property loads V8
// does not fold into the hot calls (see ipc/named_semaphore.ts).
const mutexLock = unsafeLibc.pthread_mutex_lock;
const mutexUnlock = unsafeLibc.pthread_mutex_unlock;
const mutexTrylock = unsafeLibc.pthread_mutex_trylock;
const MUTEX = platform.structs.pthread_mutex_t;
const LOCK_FIELD = platform.structs.pthread_mutex_internals.fields["__data.__lock"];
/** Where futex waits on glibc's lock word work: Linux, with the probed offset. */
const FUTEX_WORD = C.SYS_futex !== -1 && C.FUTEX_WAITERS !== -1 && LOCK_FIELD?.size === 4;
/** How long one futex sleep of `lockAsync` lasts at most before it tries again, in ms. */
const SLICE_MS = 100;

/** How a pthread mutex was locked. */
export interface PthreadLockResult {
  /**
   * The previous owner died holding it (EOWNERDEAD). Repair the data, call
   * `consistent()`, then `unlock()`; unlocking without `consistent()` makes
   * the mutex unrecoverable (ENOTRECOVERABLE) for everyone.
   */
  readonly ownerDied: boolean;
}

/** Options of {@linkcode PthreadMutex.lockAsync}. */
export interface PthreadMutexLockOptions {
  /** Ends the wait when aborted: the promise rejects with the signal's `reason`. */
  readonly signal?: AbortSignal;
  /** How long to poll with trylock before sleeping on the lock word (default DEFAULT_POLL_MS). */
  readonly pollMs?: number;
}

/** What a mutex object shares with its release listener and the held set. */
interface HeldState {
  held: boolean;
  watched: boolean;
  buffer: ArrayBufferLike | undefined;
}

/**
 * Mutexes this thread holds. Their buffers keep the memory (and its owner)
 * from being collected: glibc's robust list points into it until unlock, and
 * a list into unmapped memory both crashes the next robust unlock and keeps
 * the kernel from marking the mutex owner-died if this process dies (seen:
 * a Bun holder that dropped its objects was killed, and the lock stayed
 * held by a dead thread).
 */
const held: HeldState[] = [];

/** Forgets a held mutex; usually the last one locked (a stack is cheaper than a Set here). */
function release(state: HeldState): void {
  const last = held.length - 1;
  if (held[last] === state) held.pop();
  else {
    const at = held.lastIndexOf(state);
    if (at >= 0) held.splice(at, 1);
  }
}

const LOCKED: PthreadLockResult = Object.freeze({ ownerDied: false });
const RECOVERED: PthreadLockResult = Object.freeze({ ownerDied: true });

function checkView(view: unknown, action: string): { view: Uint8Array; address: number } {
  if (!(view instanceof Uint8Array)) {
    throw new TypeError(`Cannot ${action}: expected a Uint8Array, got ${typeName(view)}`);
  }
  if (view.buffer.byteLength === 0) throw new ClosedError(action, "view's memory");
  if (!isRegionBuffer(view.buffer)) {
    // glibc keeps pointers to held robust mutexes: heap memory may move or be freed under them.
    throw new TypeError(
      `Cannot ${action}: the view must be over memory shmkit mapped (Mapping, SharedMemory, Memfd, SystemVSegment), not a JS heap buffer`,
    );
  }
  if (view.byteLength < MUTEX.size) {
    throw new RangeError(
      `Cannot ${action}: the view has ${view.byteLength} bytes, a pthread_mutex_t needs ${MUTEX.size}`,
    );
  }
  const address = unsafeAddressOf(view);
  if (address % MUTEX.align !== 0) {
    throw new RangeError(
      `Cannot ${action}: the view starts at an address not aligned to ${MUTEX.align} bytes (pthread_mutex_t's alignment)`,
    );
  }
  return { view, address };
}

function closedMemory(action: string): never {
  throw new ClosedError(action, "mutex's memory");
}

function failed(code: number, call: string): never {
  throw lockError(code, call);
}

function lockError(code: number, call: string): Error {
  const action = call === "pthread_mutex_unlock" ? "unlock the mutex" : "lock the mutex";
  if (code === E.ENOTRECOVERABLE) {
    return new LockError(
      "ENOTRECOVERABLE",
      `Cannot ${action}: the mutex is unrecoverable (an owner died and the next one unlocked without consistent()); init it again once nothing uses it`,
    );
  }
  if (code === E.EDEADLK) {
    return new LockError("EDEADLK", `Cannot ${action}: this thread already holds the mutex`);
  }
  if (code === E.EPERM) {
    return new LockError("EPERM", `Cannot ${action}: this thread does not hold the mutex`);
  }
  return new ErrnoError(call, code);
}

/**
 * A robust, process-shared, error-checking `pthread_mutex_t` in shared
 * memory ({@linkcode PthreadMutex.size} bytes, aligned to
 * {@linkcode PthreadMutex.align}). The object only points at the memory:
 * it owns nothing to close. If the memory is released while this thread
 * holds the mutex, it is unlocked first (glibc links held robust mutexes
 * into a per-thread list that must never point at unmapped memory).
 *
 * Peers are trusted: glibc follows and writes the list pointers stored in
 * the mutex, so a peer that scribbles over it can corrupt this process.
 */
export class PthreadMutex {
  /** `sizeof(pthread_mutex_t)` on this platform. */
  static readonly size: number = MUTEX.size;
  /** `_Alignof(pthread_mutex_t)` on this platform. */
  static readonly align: number = MUTEX.align;

  readonly #address: number;
  readonly #word: Int32Array | undefined;
  readonly #buffer: ArrayBufferLike;
  /** The mutex's bytes: length 0 once its memory is released (cheaper to read than the buffer's). */
  readonly #bytes: Uint8Array;
  /** Shared with the release listener, which must not keep this object alive. */
  readonly #state: HeldState = { held: false, watched: false, buffer: undefined };
  #timespec: Timespec | undefined;

  private constructor(view: Uint8Array, address: number) {
    this.#buffer = view.buffer;
    this.#bytes = new Uint8Array(view.buffer, view.byteOffset, MUTEX.size);
    this.#state.buffer = view.buffer;
    this.#address = addressArgument(address);
    this.#word = FUTEX_WORD
      ? new Int32Array(view.buffer, view.byteOffset + LOCK_FIELD!.offset, 1)
      : undefined;
  }

  /**
   * Initialises a mutex in `view`: `pthread_mutexattr_setpshared(
   * PTHREAD_PROCESS_SHARED)`, `setrobust(PTHREAD_MUTEX_ROBUST)`,
   * `settype(PTHREAD_MUTEX_ERRORCHECK)` (a second lock by the holder is
   * EDEADLK, not a hang), then `pthread_mutex_init`. Do it once, before any
   * peer uses the memory.
   *
   * @example
   * ```ts
   * import { Mapping } from "@shmkit/shmkit";
   * import { PthreadMutex } from "@shmkit/shmkit/ipc";
   * using mapping = Mapping.anonymous(4096);
   * const mutex = PthreadMutex.init(mapping.view(Uint8Array, 0, PthreadMutex.size));
   * console.log(mutex.tryLock()); // { ownerDied: false }
   * mutex.unlock();
   * ```
   *
   * @param view At least `PthreadMutex.size` bytes of shared memory, aligned.
   * @returns The mutex.
   * @throws {TypeError} When `view` is not a Uint8Array.
   * @throws {RangeError} When it is too small or misaligned.
   * @throws {ClosedError} When its memory is closed.
   * @throws {ErrnoError} When a pthread call fails, or robust mutexes are unsupported (ENOTSUP).
   */
  static init(view: Uint8Array): PthreadMutex {
    const checked = checkView(view, "init a pthread mutex");
    const setrobust = unsafeLibc.pthread_mutexattr_setrobust;
    if (setrobust === undefined || C.PTHREAD_MUTEX_ROBUST === -1) {
      throw new ErrnoError("pthread_mutexattr_setrobust", E.ENOTSUP ?? 95, {
        hint: `${platform.os} has no robust pthread mutexes`,
      });
    }
    const attr = new Uint8Array(platform.structs.pthread_mutexattr_t.size);
    check(unsafeLibc.pthread_mutexattr_init(attr), "pthread_mutexattr_init");
    try {
      check(
        unsafeLibc.pthread_mutexattr_setpshared(attr, C.PTHREAD_PROCESS_SHARED),
        "pthread_mutexattr_setpshared",
      );
      check(setrobust(attr, C.PTHREAD_MUTEX_ROBUST), "pthread_mutexattr_setrobust");
      check(
        unsafeLibc.pthread_mutexattr_settype(attr, C.PTHREAD_MUTEX_ERRORCHECK),
        "pthread_mutexattr_settype",
      );
      check(unsafeLibc.pthread_mutex_init(checked.address, attr), "pthread_mutex_init");
    } finally {
      unsafeLibc.pthread_mutexattr_destroy(attr);
    }
    return new PthreadMutex(checked.view, checked.address);
  }

  /**
   * Uses a mutex a peer initialised in `view` (PTHREAD_PROCESS_SHARED; robust
   * for `ownerDied` to work). Nothing is written.
   *
   * @example
   * ```ts
   * import { Mapping } from "@shmkit/shmkit";
   * import { PthreadMutex } from "@shmkit/shmkit/ipc";
   * using mapping = Mapping.anonymous(4096);
   * PthreadMutex.init(mapping.view(Uint8Array, 0, PthreadMutex.size));
   * const again = PthreadMutex.from(mapping.view(Uint8Array, 0, PthreadMutex.size));
   * again.lock();
   * again.unlock();
   * ```
   *
   * @param view The mutex's bytes.
   * @returns The mutex.
   * @throws {TypeError} When `view` is not a Uint8Array.
   * @throws {RangeError} When it is too small or misaligned.
   * @throws {ClosedError} When its memory is closed.
   */
  static from(view: Uint8Array): PthreadMutex {
    const checked = checkView(view, "use a pthread mutex");
    return new PthreadMutex(checked.view, checked.address);
  }

  /** Whether this object locked the mutex and has not unlocked it. */
  get held(): boolean {
    return this.#state.held;
  }

  #live(action: string): number {
    // Thrown out of line: an inline throw before the call kept node:ffi's fast call unused.
    if (this.#bytes.length === 0) closedMemory(action);
    return this.#address;
  }

  #taken(code: number, action: string): PthreadLockResult | null {
    if (code === 0 || code === E.EOWNERDEAD) {
      const state = this.#state;
      state.held = true;
      held.push(state);
      if (!state.watched) this.#watch(state);
      return code === 0 ? LOCKED : RECOVERED;
    }
    if (code === E.EBUSY || code === E.ETIMEDOUT) return null;
    return failed(code, action);
  }

  /** Once per object (a listener per lock would cost more than the lock); kept out of the hot path. */
  #watch(state: HeldState): void {
    state.watched = true;
    const address = this.#address;
    const buffer = this.#buffer;
    beforeRelease(buffer, () => {
      if (state.held && buffer.byteLength !== 0) unsafeLibc.pthread_mutex_unlock(address);
      state.held = false;
      release(state);
    });
  }

  /**
   * Locks, blocking the thread (and the event loop): `pthread_mutex_lock`;
   * with `timeoutMs`, `pthread_mutex_timedlock` (an absolute CLOCK_REALTIME
   * deadline) and null when the time runs out.
   *
   * @example
   * ```ts
   * import { Mapping } from "@shmkit/shmkit";
   * import { PthreadMutex } from "@shmkit/shmkit/ipc";
   * using mapping = Mapping.anonymous(4096);
   * const mutex = PthreadMutex.init(mapping.view(Uint8Array, 0, PthreadMutex.size));
   * mutex.lock();
   * mutex.unlock();
   * ```
   *
   * @returns `{ ownerDied }`.
   * @throws {LockError} EDEADLK (this thread holds it), ENOTRECOVERABLE.
   * @throws {ClosedError} When the memory is closed.
   */
  lock(): PthreadLockResult;
  /**
   * Locks, giving up after `timeoutMs` (see the overload above).
   *
   * @param timeoutMs Milliseconds to wait at most; undefined or Infinity: no limit.
   * @returns `{ ownerDied }`, or null on timeout.
   * @throws {RangeError} When the timeout is negative or NaN.
   * @throws {LockError} EDEADLK (this thread holds it), ENOTRECOVERABLE.
   * @throws {ClosedError} When the memory is closed.
   */
  lock(timeoutMs: number | undefined): PthreadLockResult | null;
  lock(timeoutMs?: number): PthreadLockResult | null {
    if (timeoutMs === undefined) {
      // The common call, kept free of checkTimeout's throws (see #live).
      return this.#taken(mutexLock(this.#live("lock")), "pthread_mutex_lock");
    }
    const timeout = checkTimeout(timeoutMs);
    const address = this.#live("lock");
    if (timeout === Infinity) {
      return this.#taken(mutexLock(address), "pthread_mutex_lock");
    }
    const timedlock = unsafeLibc.pthread_mutex_timedlock;
    if (timedlock === undefined) {
      throw new ErrnoError("pthread_mutex_timedlock", E.ENOSYS ?? 38, {
        hint: "this libc lacks it; use lockAsync with a timeout",
      });
    }
    const cell = this.#timespec ??= deadlineCell();
    writeDeadline(cell, C.CLOCK_REALTIME, timeout);
    return this.#taken(timedlock(address, cell.bytes), "pthread_mutex_timedlock");
  }

  /**
   * Locks if free: `pthread_mutex_trylock`.
   *
   * @example
   * ```ts
   * import { Mapping } from "@shmkit/shmkit";
   * import { PthreadMutex } from "@shmkit/shmkit/ipc";
   * using mapping = Mapping.anonymous(4096);
   * const mutex = PthreadMutex.init(mapping.view(Uint8Array, 0, PthreadMutex.size));
   * if (mutex.tryLock() !== null) mutex.unlock();
   * ```
   *
   * @returns `{ ownerDied }`, or null when another thread holds it.
   * @throws {LockError} EDEADLK (this thread holds it), ENOTRECOVERABLE.
   * @throws {ClosedError} When the memory is closed.
   */
  tryLock(): PthreadLockResult | null {
    const result = mutexTrylock(this.#live("lock"));
    return this.#taken(result, "pthread_mutex_trylock");
  }

  /**
   * Locks on this thread without blocking the event loop: `trylock`, and
   * between tries a futex sleep (on another thread) on glibc's lock word
   * (`__data.__lock`, offset probed from the headers), after setting its
   * FUTEX_WAITERS bit so the holder's unlock wakes it, as glibc's own
   * waiters do. Where there is no futex, it polls.
   *
   * @example
   * ```ts
   * import { Mapping } from "@shmkit/shmkit";
   * import { PthreadMutex } from "@shmkit/shmkit/ipc";
   * using mapping = Mapping.anonymous(4096);
   * const mutex = PthreadMutex.init(mapping.view(Uint8Array, 0, PthreadMutex.size));
   * await mutex.lockAsync(1000, { signal: AbortSignal.timeout(5000) });
   * mutex.unlock();
   * ```
   *
   * @param timeoutMs Milliseconds to wait at most; undefined or Infinity: no limit.
   * @param options signal (rejects with its reason), pollMs.
   * @returns `{ ownerDied }`, or null on timeout.
   * @throws {LockError} EDEADLK (this thread holds it), ENOTRECOVERABLE.
   * @throws {ClosedError} When the memory is closed.
   */
  lockAsync(
    timeoutMs?: number,
    options?: PthreadMutexLockOptions,
  ): Promise<PthreadLockResult | null> {
    const timeout = checkTimeout(timeoutMs);
    const opts = checkOptions(options, "lock options");
    const signal = checkSignal(opts.signal);
    const pollMs = opts.pollMs === undefined
      ? DEFAULT_POLL_MS
      : checkTimeout(opts.pollMs, "pollMs");
    this.#live("lock");
    return this.#lockAsync(performance.now() + timeout, pollMs, signal);
  }

  async #lockAsync(
    deadline: number,
    pollMs: number,
    signal: AbortSignal | undefined,
  ): Promise<PthreadLockResult | null> {
    let delay = 0.5;
    for (;;) {
      signal?.throwIfAborted();
      const got = this.tryLock();
      if (got !== null) return got;
      const left = deadline - performance.now();
      if (left <= 0) return null;
      const word = this.#word;
      if (word === undefined) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(delay, left)));
        delay = Math.min(delay * 2, 8);
        continue;
      }
      let seen = Atomics.load(word, 0);
      if (seen === 0) continue;
      const withWaiters = seen | C.FUTEX_WAITERS;
      if (seen !== withWaiters) {
        if (Atomics.compareExchange(word, 0, seen, withWaiters) !== seen) continue;
        seen = withWaiters;
      }
      await futexWaitAsync(word, seen, Math.min(left, SLICE_MS), pollMs, signal);
    }
  }

  /**
   * Unlocks: `pthread_mutex_unlock`.
   *
   * @example
   * ```ts
   * import { Mapping } from "@shmkit/shmkit";
   * import { PthreadMutex } from "@shmkit/shmkit/ipc";
   * using mapping = Mapping.anonymous(4096);
   * const mutex = PthreadMutex.init(mapping.view(Uint8Array, 0, PthreadMutex.size));
   * mutex.lock();
   * mutex.unlock();
   * ```
   *
   * @throws {LockError} EPERM when this thread does not hold it.
   * @throws {ClosedError} When the memory is closed.
   */
  unlock(): void {
    const result = mutexUnlock(this.#live("unlock"));
    if (result !== 0) failed(result, "pthread_mutex_unlock");
    this.#state.held = false;
    release(this.#state);
  }

  /**
   * Marks the state protected by a mutex whose owner died as repaired:
   * `pthread_mutex_consistent`. Call it after a lock reported `ownerDied`,
   * before `unlock()`.
   *
   * @example
   * ```ts
   * import { Mapping } from "@shmkit/shmkit";
   * import { PthreadMutex } from "@shmkit/shmkit/ipc";
   * using mapping = Mapping.anonymous(4096);
   * const mutex = PthreadMutex.init(mapping.view(Uint8Array, 0, PthreadMutex.size));
   * if (mutex.lock().ownerDied) mutex.consistent();
   * mutex.unlock();
   * ```
   *
   * @throws {ErrnoError} EINVAL when the mutex is not robust or not in the owner-died state.
   * @throws {ClosedError} When the memory is closed.
   */
  consistent(): void {
    const consistent = unsafeLibc.pthread_mutex_consistent;
    if (consistent === undefined) {
      throw new ErrnoError("pthread_mutex_consistent", E.ENOSYS ?? 38);
    }
    const result = consistent(this.#live("mark a mutex consistent"));
    if (result !== 0) {
      throw new ErrnoError("pthread_mutex_consistent", result, {
        hint: "the mutex must be robust, held by this thread, and its owner must have died",
      });
    }
  }
}

function check(result: number, call: string): void {
  if (result !== 0) throw new ErrnoError(call, result);
}

/**
 * A process-shared mutex in 16 bytes of shared memory that survives a dead
 * owner: the next locker takes it over and is told, as a POSIX robust mutex
 * reports EOWNERDEAD.
 *
 * A pthread mutex is owned by a thread, which does not fit async JS (an
 * `await` may resume on the same thread, but Deno's nonblocking calls run on
 * others), so this mutex is owned by a process. Its layout and algorithm are
 * documented (docs/locks.md) so that C or Python peers can take part:
 *
 * | offset | word       | meaning                                                          |
 * | ------ | ---------- | ---------------------------------------------------------------- |
 * | 0      | lock       | 0 free; else the owner id (bits 0-29), bit 30 {@linkcode MUTEX_OWNER_DIED}, bit 31 {@linkcode MUTEX_WAITERS}; bit 30 alone: unrecoverable |
 * | 4      | magic      | {@linkcode MUTEX_MAGIC} once initialised                          |
 * | 8      | reserved   | 0                                                                |
 * | 12     | recoveries | how many times a dead owner's lock was taken over                 |
 *
 * The owner id is the owner's pid (bits 0-21; Linux pids are below 2^22)
 * with a start-time tag in bits 22-29 that tells a reused pid from the
 * process that died. Owner and lock are one word, taken with one
 * compare-and-swap, so there is no moment when the lock is held by nobody
 * known.
 *
 * @example Count under a lock shared by processes
 * ```ts
 * import { Mapping, Mutex } from "@shmkit/shmkit";
 * using mapping = Mapping.anonymous(4096);
 * const mutex = Mutex.init(mapping.view(Int32Array, 0, 4));
 * const counter = mapping.view(Int32Array, 16, 1);
 * const { ownerDied } = mutex.lock();
 * if (ownerDied) {
 *   // repair what the dead owner may have left half-done, then:
 *   mutex.markConsistent();
 * }
 * try {
 *   counter[0]!++;
 * } finally {
 *   mutex.unlock();
 * }
 * ```
 *
 * @module
 */
import {
  type AbortOptions,
  checkSignal,
  checkTimeout,
  DEFAULT_POLL_MS,
  futexWait,
  futexWaitAsync,
  futexWake,
  rememberFutexWord,
} from "./_futex.ts";
import { checkMagic, layoutWords } from "./_lock_word.ts";
import { ClosedError } from "../core/errors.ts";
import { checkOptions } from "../core/_validate.ts";
import { corruptWord, LockError } from "./_lock_error.ts";
import { Guard, type LockGuard } from "./_lock_guard.ts";
import { ID_MASK, isOwnerGone, isPlausiblePid, ownerId, PID_MASK, TAG_SHIFT } from "./_owner.ts";

export { LockError, type LockErrorCode } from "./_lock_error.ts";
export type { LockGuard } from "./_lock_guard.ts";

/** Bit 31 of the lock word: a waiter may be asleep in futex; unlock must wake one. */
export const MUTEX_WAITERS = 0x80000000 | 0;
/**
 * Bit 30 of the lock word while held: the previous owner died and the data
 * has not been marked consistent yet (as the kernel's FUTEX_OWNER_DIED).
 */
export const MUTEX_OWNER_DIED = 0x40000000;
/** The whole lock word of a mutex made unrecoverable: bit 30 alone, no owner. */
export const MUTEX_NOT_RECOVERABLE = 0x40000000;
/** Bits 0-21 of an owner id: the pid. */
export const MUTEX_PID_MASK: number = PID_MASK;
/** Bits 22-29 of an owner id: the start-time tag (0 = none, skip the pid-reuse check). */
export const MUTEX_TAG_SHIFT: number = TAG_SHIFT;
/** The magic word (offset 4) of an initialised mutex, layout version 1 ("MTX1"). */
export const MUTEX_MAGIC = 0x4d545831;

const LOCK = 0;
const MAGIC = 1;
const RESERVED = 2;
const RECOVERIES = 3;

/** How a lock was acquired. */
export interface LockResult {
  /**
   * The previous owner died holding the lock (or a recoverer died before
   * repairing): the protected data may be half-updated. Repair it, then
   * call `markConsistent()` before `unlock()`, or the mutex becomes
   * unrecoverable (as POSIX robust mutexes do).
   */
  readonly ownerDied: boolean;
}

const LOCKED: LockResult = Object.freeze({ ownerDied: false });
const RECOVERED: LockResult = Object.freeze({ ownerDied: true });

/** Options of {@linkcode Mutex.from} and {@linkcode Mutex.init}. */
export interface MutexOptions {
  /**
   * How often a waiter checks whether the owner still lives, in
   * milliseconds (default 50). A SIGKILLed owner wakes nobody: this bounds
   * how long waiters sleep before they notice.
   */
  readonly checkIntervalMs?: number;
  /** Polling window of `lockAsync`, as in `waitAsync` (default DEFAULT_POLL_MS). */
  readonly pollMs?: number;
}

// --- the mutex

interface WaitRequest {
  readonly expected: number;
  readonly timeoutMs: number;
}

interface Attempt {
  readonly deadline: number;
  readonly sync: boolean;
  /** Passes since the last wait: lost races are retried at once, but not past the deadline. */
  passes: number;
  spins: number;
  waiters: number;
  thorough: boolean;
}

const SPINS = 100;
// "Look again at once": a compare-and-swap lost a race, or still spinning.
const RETRY: WaitRequest = Object.freeze({ expected: 0, timeoutMs: 0 });

/**
 * A process-shared mutex that survives a dead owner, in 16 bytes of shared
 * memory (see the module doc for the layout).
 *
 * One process calls {@linkcode Mutex.init} on the memory, the others
 * {@linkcode Mutex.from}. The lock is owned by a process: any code in that
 * process (another task after an `await`, a Worker) may unlock it. It is
 * not recursive: a synchronous `lock()` by the object holding it throws
 * EDEADLK instead of hanging.
 *
 * When the holder dies, a waiter notices within `checkIntervalMs` (its
 * pid is gone, a zombie, or reused by another process), takes the lock and
 * gets `{ ownerDied: true }`.
 */
export class Mutex {
  readonly #words: Int32Array;
  readonly #word: Int32Array;
  readonly #id: number;
  readonly #checkIntervalMs: number;
  readonly #pollMs: number;
  #held = false;
  #lastThorough = -Infinity;

  private constructor(words: Int32Array, options: MutexOptions | undefined) {
    const o = checkOptions(options, "options");
    this.#checkIntervalMs = checkTimeout(o.checkIntervalMs ?? 50, "checkIntervalMs");
    this.#pollMs = checkTimeout(o.pollMs ?? DEFAULT_POLL_MS, "pollMs");
    this.#words = words;
    this.#word = words.subarray(LOCK, LOCK + 1);
    rememberFutexWord(this.#word); // its address, cached once (Node)
    this.#id = ownerId();
  }

  /** Bytes the layout needs: 16. */
  static readonly byteLength = 16;

  /**
   * Lays a new, unlocked mutex out in `view`'s first 16 bytes and attaches
   * to it. Call it once, before other processes attach with
   * {@linkcode Mutex.from}; calling it on a mutex in use resets it (which
   * is also how an unrecoverable mutex is made usable again).
   *
   * @example
   * ```ts
   * import { Mapping, Mutex } from "@shmkit/shmkit";
   * using mapping = Mapping.anonymous(4096);
   * const mutex = Mutex.init(mapping.view(Uint8Array, 64, Mutex.byteLength));
   * ```
   *
   * @param view Any TypedArray or DataView over shared memory, 4-byte aligned, 16 bytes or more.
   * @throws {TypeError} When `view` is not a TypedArray or DataView.
   * @throws {RangeError} When it is misaligned or shorter than 16 bytes.
   */
  static init(view: ArrayBufferView, options?: MutexOptions): Mutex {
    const words = layoutWords(view, 4, "mutex");
    Atomics.store(words, RESERVED, 0);
    Atomics.store(words, RECOVERIES, 0);
    Atomics.store(words, LOCK, 0);
    Atomics.store(words, MAGIC, MUTEX_MAGIC);
    return new Mutex(words, options);
  }

  /**
   * Attaches to a mutex another process laid out with {@linkcode Mutex.init}.
   *
   * @param view A view of the same 16 bytes.
   * @throws {TypeError} When `view` is not a TypedArray or DataView.
   * @throws {RangeError} When it is misaligned or shorter than 16 bytes.
   * @throws {Error} When the memory holds no initialised mutex (wrong magic word).
   */
  static from(view: ArrayBufferView, options?: MutexOptions): Mutex {
    const words = layoutWords(view, 4, "mutex");
    checkMagic(words, MAGIC, MUTEX_MAGIC, "a mutex", "Mutex.init");
    return new Mutex(words, options);
  }

  #live(action: string): Int32Array {
    const words = this.#words;
    if (words.length === 0) throw new ClosedError(action, "mutex's memory");
    return words;
  }

  /** The pid holding the lock now, or 0 when it is free. */
  get ownerPid(): number {
    return Atomics.load(this.#live("read the owner"), LOCK) & MUTEX_PID_MASK;
  }

  /** How many times a dead owner's lock was taken over since `init`. */
  get recoveries(): number {
    return Atomics.load(this.#live("read the recoveries"), RECOVERIES) >>> 0;
  }

  /** Whether the mutex can still be locked (see `markConsistent`). */
  get recoverable(): boolean {
    return Atomics.load(this.#live("read the state"), LOCK) !== MUTEX_NOT_RECOVERABLE;
  }

  /**
   * Takes the lock, blocking the thread while another process holds it.
   * With a timeout, gives up after `timeoutMs` and returns null.
   *
   * @example
   * ```ts
   * import { Mapping, Mutex } from "@shmkit/shmkit";
   * using mapping = Mapping.anonymous(4096);
   * const mutex = Mutex.init(mapping.view());
   * if (mutex.lock(100) !== null) mutex.unlock();
   * ```
   *
   * @returns `{ ownerDied }`.
   * @throws {LockError} EDEADLK when this object already holds the lock; ENOTRECOVERABLE; ECORRUPT.
   */
  lock(): LockResult;
  /**
   * Takes the lock, giving up after `timeoutMs` (see the overload above).
   *
   * @param timeoutMs Milliseconds to wait at most.
   * @returns `{ ownerDied }`, or null when the time ran out.
   * @throws {LockError} EDEADLK when this object already holds the lock; ENOTRECOVERABLE; ECORRUPT.
   * @throws {RangeError} For a negative or NaN timeout.
   */
  lock(timeoutMs: number | undefined): LockResult | null;
  lock(timeoutMs?: number): LockResult | null {
    const words = this.#live("lock the mutex");
    const timeout = timeoutMs === undefined ? Infinity : checkTimeout(timeoutMs);
    if (Atomics.compareExchange(words, LOCK, 0, this.#id) === 0) {
      this.#held = true;
      return LOCKED;
    }
    const attempt: Attempt = {
      deadline: performance.now() + timeout,
      sync: true,
      passes: 0,
      spins: SPINS,
      waiters: 0,
      thorough: false,
    };
    for (;;) {
      const step = this.#step(attempt);
      if (!isWait(step)) return step;
      if (step === RETRY) continue;
      const result = futexWait(this.#word, step.expected, step.timeoutMs);
      // The owner held on through a whole interval: look closer at it.
      attempt.thorough = result === "timed-out";
    }
  }

  /**
   * Takes the lock if it is free (or its owner is dead), without waiting.
   *
   * @returns `{ ownerDied }`, or null when another process holds it.
   * @throws {LockError} ENOTRECOVERABLE; ECORRUPT.
   */
  tryLock(): LockResult | null {
    const words = this.#live("lock the mutex");
    if (Atomics.compareExchange(words, LOCK, 0, this.#id) === 0) {
      this.#held = true;
      return LOCKED;
    }
    const now = performance.now();
    // A thorough check reads /proc (~10 us): at most once per interval.
    const thorough = now - this.#lastThorough >= this.#checkIntervalMs;
    if (thorough) this.#lastThorough = now;
    const attempt: Attempt = {
      deadline: now,
      sync: true,
      passes: 0,
      spins: 0,
      waiters: 0,
      thorough,
    };
    for (;;) {
      const step = this.#step(attempt);
      if (!isWait(step)) return step;
    }
  }

  /**
   * Takes the lock without blocking the event loop: waits with
   * `waitAsync`. Another task of this process may hold the lock meanwhile
   * and release it.
   *
   * @example
   * ```ts
   * import { Mapping, Mutex } from "@shmkit/shmkit";
   * using mapping = Mapping.anonymous(4096);
   * const mutex = Mutex.init(mapping.view());
   * await mutex.lockAsync(undefined, { signal: AbortSignal.timeout(1000) });
   * mutex.unlock();
   * ```
   *
   * @param timeoutMs undefined: no timeout.
   * @param options `signal`: an AbortSignal that ends the wait.
   * @returns `{ ownerDied }`.
   * @throws {LockError} (as a rejection) ENOTRECOVERABLE; ECORRUPT.
   * @throws {ClosedError} (as a rejection) When the memory is closed, before or during the wait.
   * @throws {unknown} (as a rejection) The signal's reason when it aborts.
   */
  lockAsync(timeoutMs?: undefined, options?: AbortOptions): Promise<LockResult>;
  /**
   * Takes the lock without blocking the event loop, giving up after
   * `timeoutMs` (see the overload above).
   *
   * @param timeoutMs Milliseconds to wait at most.
   * @param options `signal`: an AbortSignal that ends the wait.
   * @returns `{ ownerDied }`, or null when the time ran out.
   * @throws {LockError} (as a rejection) ENOTRECOVERABLE; ECORRUPT.
   * @throws {ClosedError} (as a rejection) When the memory is closed, before or during the wait.
   * @throws {RangeError} (synchronously) For a negative or NaN timeout.
   * @throws {TypeError} (synchronously) When `options.signal` is not an AbortSignal.
   */
  lockAsync(timeoutMs: number | undefined, options?: AbortOptions): Promise<LockResult | null>;
  lockAsync(timeoutMs?: number, options?: AbortOptions): Promise<LockResult | null> {
    const timeout = checkTimeout(timeoutMs);
    const signal = checkSignal(checkOptions(options, "options").signal);
    return this.#lockAsync(timeout, signal);
  }

  async #lockAsync(timeout: number, signal: AbortSignal | undefined): Promise<LockResult | null> {
    signal?.throwIfAborted();
    const words = this.#live("lock the mutex");
    if (Atomics.compareExchange(words, LOCK, 0, this.#id) === 0) {
      this.#held = true;
      return LOCKED;
    }
    const attempt: Attempt = {
      deadline: performance.now() + timeout,
      sync: false,
      passes: 0,
      spins: SPINS,
      waiters: 0,
      thorough: false,
    };
    for (;;) {
      const step = this.#step(attempt);
      if (!isWait(step)) return step;
      if (step === RETRY) continue;
      const result = await futexWaitAsync(
        this.#word,
        step.expected,
        step.timeoutMs,
        this.#pollMs,
        signal,
      );
      attempt.thorough = result === "timed-out";
    }
  }

  /**
   * Takes the lock like {@linkcode Mutex.lock} and returns a guard that
   * unlocks it when disposed: `using guard = mutex.acquire();`.
   *
   * @example
   * ```ts
   * import { Mapping, Mutex } from "@shmkit/shmkit";
   * using mapping = Mapping.anonymous(4096);
   * const mutex = Mutex.init(mapping.view());
   * {
   *   using guard = mutex.acquire();
   *   if (guard.ownerDied) guard.markConsistent(); // after repairing the data
   *   // ... the protected data ...
   * } // unlocked here
   * ```
   *
   * @returns The guard.
   * @throws {LockError} EDEADLK when this object already holds the lock; ENOTRECOVERABLE; ECORRUPT.
   */
  acquire(): LockGuard;
  /**
   * Takes the lock, giving up after `timeoutMs` (see the overload above).
   *
   * @param timeoutMs Milliseconds to wait at most.
   * @returns The guard, or null when the time ran out.
   * @throws {LockError} EDEADLK; ENOTRECOVERABLE; ECORRUPT.
   * @throws {RangeError} For a negative or NaN timeout.
   */
  acquire(timeoutMs: number | undefined): LockGuard | null;
  acquire(timeoutMs?: number): LockGuard | null {
    const result = timeoutMs === undefined ? this.lock() : this.lock(timeoutMs);
    return result === null ? null : new Guard(this, result.ownerDied);
  }

  /**
   * Takes the lock like {@linkcode Mutex.lockAsync} and returns a guard:
   * `await using guard = await mutex.acquireAsync({ signal })`. For a
   * timeout, pass `AbortSignal.timeout(ms)`: the promise then rejects with
   * its "TimeoutError".
   *
   * @example
   * ```ts
   * import { Mapping, Mutex } from "@shmkit/shmkit";
   * using mapping = Mapping.anonymous(4096);
   * const mutex = Mutex.init(mapping.view());
   * {
   *   await using guard = await mutex.acquireAsync({ signal: AbortSignal.timeout(1000) });
   *   console.log(guard.ownerDied); // false
   * }
   * ```
   *
   * @param options `signal`: an AbortSignal that ends the wait.
   * @returns The guard.
   * @throws {LockError} (as a rejection) ENOTRECOVERABLE; ECORRUPT.
   * @throws {ClosedError} (as a rejection) When the memory is closed, before or during the wait.
   * @throws {unknown} (as a rejection) The signal's reason when it aborts.
   */
  async acquireAsync(options?: AbortOptions): Promise<LockGuard> {
    const result = await this.lockAsync(undefined, options);
    return new Guard(this, result.ownerDied);
  }

  /**
   * One pass of the locking loop: the lock, null (timed out), or what to
   * wait for.
   */
  #step(attempt: Attempt): LockResult | null | WaitRequest {
    const words = this.#live("lock the mutex");
    const c = this.#load(words, "lock the mutex");
    // A word changing under every compare-and-swap: contention, or a peer gone wrong.
    if (++attempt.passes % 1024 === 0 && performance.now() >= attempt.deadline) return null;
    if (c === 0) {
      // Having slept, assume others sleep too: keep the waiters bit.
      if (Atomics.compareExchange(words, LOCK, 0, this.#id | attempt.waiters) === 0) {
        this.#held = true;
        return LOCKED;
      }
      return RETRY;
    }
    if (c === MUTEX_NOT_RECOVERABLE) throw notRecoverable();
    const owner = c & ID_MASK;
    if (attempt.sync && this.#held && owner === this.#id) {
      throw new LockError(
        "EDEADLK",
        "Cannot lock the mutex: this object already holds it, and a synchronous lock would wait forever (unlock first, or use lockAsync from another task)",
      );
    }
    if (attempt.spins > 0) {
      attempt.spins--;
      return RETRY;
    }
    if (isOwnerGone(owner, attempt.thorough)) {
      // Take it over from exactly the dead owner: only one recoverer wins.
      const next = this.#id | MUTEX_OWNER_DIED | (c & MUTEX_WAITERS);
      if (Atomics.compareExchange(words, LOCK, c, next) !== c) return RETRY;
      Atomics.add(words, RECOVERIES, 1);
      this.#held = true;
      return RECOVERED;
    }
    attempt.thorough = false;
    const left = attempt.deadline - performance.now();
    if (left <= 0) return null;
    let expected = c;
    if ((c & MUTEX_WAITERS) === 0) {
      expected = c | MUTEX_WAITERS;
      if (Atomics.compareExchange(words, LOCK, c, expected) !== c) return RETRY;
    }
    attempt.waiters = MUTEX_WAITERS;
    attempt.passes = 0;
    return { expected, timeoutMs: Math.min(left, this.#checkIntervalMs) };
  }

  /**
   * Reads the lock word and checks it and the magic word against the
   * layout: free, unrecoverable, or a plausible owner pid.
   *
   * @throws {LockError} ECORRUPT naming the word.
   */
  #load(words: Int32Array, action: string): number {
    // Written once, at init: a plain read.
    const magic = words[MAGIC]!;
    if (magic !== MUTEX_MAGIC) {
      throw corruptWord(action, "mutex", "magic", magic, "an initialised mutex has 0x4d545831");
    }
    const c = Atomics.load(words, LOCK);
    if (c === 0 || c === MUTEX_NOT_RECOVERABLE || isPlausiblePid(c & PID_MASK)) return c;
    throw corruptWord(
      action,
      "mutex",
      "lock",
      c,
      `a held lock has its owner's pid in bits 0-21, and ${c & PID_MASK} is no pid here`,
    );
  }

  /**
   * Marks the data consistent again after `{ ownerDied: true }`, as
   * `pthread_mutex_consistent` does: clears bit 30 of the lock word. Call it
   * while holding the lock, once the data is repaired; does nothing when
   * nothing died.
   *
   * @throws {LockError} EPERM when this process does not hold the lock; ECORRUPT.
   */
  markConsistent(): void {
    const words = this.#live("mark the mutex consistent");
    for (;;) {
      const c = this.#load(words, "mark the mutex consistent");
      this.#checkOwner(c, "mark the mutex consistent");
      if ((c & MUTEX_OWNER_DIED) === 0) return;
      if (Atomics.compareExchange(words, LOCK, c, c & ~MUTEX_OWNER_DIED) === c) return;
    }
  }

  #checkOwner(c: number, action: string): void {
    if ((c & ID_MASK) === this.#id) return;
    const pid = c & MUTEX_PID_MASK;
    const self = this.#id & MUTEX_PID_MASK;
    throw new LockError(
      "EPERM",
      c === 0 || c === MUTEX_NOT_RECOVERABLE
        ? `Cannot ${action}: it is not locked`
        : `Cannot ${action}: it is held by pid ${pid}${
          pid === self ? " (this pid, another start-time tag)" : ""
        }, not by this process (pid ${self})`,
    );
  }

  /**
   * Releases the lock and wakes one waiter if any may sleep. Unlocking
   * after `{ ownerDied: true }` without `markConsistent()` makes the mutex
   * unrecoverable: every later lock throws ENOTRECOVERABLE.
   *
   * @throws {LockError} EPERM when this process does not hold the lock; ECORRUPT.
   */
  unlock(): void {
    const words = this.#live("unlock the mutex");
    // Held, consistent, nobody waiting: one compare-and-swap.
    if (Atomics.compareExchange(words, LOCK, this.#id, 0) === this.#id) {
      this.#held = false;
      return;
    }
    const c = this.#load(words, "unlock the mutex");
    this.#checkOwner(c, "unlock the mutex");
    this.#held = false;
    if ((c & MUTEX_OWNER_DIED) !== 0) {
      Atomics.exchange(words, LOCK, MUTEX_NOT_RECOVERABLE);
      futexWake(this.#word);
      return;
    }
    const old = Atomics.exchange(words, LOCK, 0);
    if ((old & MUTEX_WAITERS) !== 0) futexWake(this.#word, 1);
  }
}

function notRecoverable(): LockError {
  return new LockError(
    "ENOTRECOVERABLE",
    "Cannot lock the mutex: a previous owner died holding it and the next holder unlocked it without markConsistent(), so it is unrecoverable; Mutex.init it again once the data is repaired",
  );
}

function isWait(step: LockResult | null | WaitRequest): step is WaitRequest {
  return step !== null && "expected" in step;
}

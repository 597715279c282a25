/**
 * A counting semaphore in 16 bytes of shared memory, shared by processes,
 * on futex wait/wake.
 *
 * | offset | word    | meaning                                               |
 * | ------ | ------- | ----------------------------------------------------- |
 * | 0      | count   | permits available, 0 to maximum (the futex word)       |
 * | 4      | magic   | {@linkcode SEMAPHORE_MAGIC} once initialised          |
 * | 8      | waiters | processes that may sleep on count (release wakes them) |
 * | 12     | maximum | the most permits count may reach                       |
 *
 * A semaphore has no owner, so unlike {@linkcode Mutex} nothing can tell
 * that a process died holding a permit: that permit is lost.
 *
 * @example At most two processes in a section
 * ```ts
 * import { Mapping, Semaphore } from "@shmkit/shmkit";
 * using mapping = Mapping.anonymous(4096);
 * const permits = Semaphore.init(mapping.view(), { initial: 2 });
 * if (permits.acquire(1000)) {
 *   try {
 *     // ...
 *   } finally {
 *     permits.release();
 *   }
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
  futexWake,
} from "./_futex.ts";
import { checkMagic, layoutWords, waitUntil, waitUntilAsync } from "./_lock_word.ts";
import { ClosedError } from "../core/errors.ts";
import { corruptWord } from "./_lock_error.ts";
import { checkInteger, checkOptions } from "../core/_validate.ts";

/** The magic word (offset 4) of an initialised semaphore, layout version 1 ("SEM1"). */
export const SEMAPHORE_MAGIC = 0x53454d31;

const COUNT = 0;
const MAGIC = 1;
const WAITERS = 2;
const MAXIMUM = 3;
const INT_MAX = 0x7fffffff;

/** Options of {@linkcode Semaphore.init}. */
export interface SemaphoreInitOptions {
  /** Permits available at first (default 0). */
  readonly initial?: number;
  /** The most permits there may be (default 2^31 - 1). */
  readonly maximum?: number;
  /** Polling window of `acquireAsync`, as in `waitAsync` (default DEFAULT_POLL_MS). */
  readonly pollMs?: number;
}

/** Options of {@linkcode Semaphore.from}. */
export interface SemaphoreOptions {
  /** Polling window of `acquireAsync`, as in `waitAsync` (default DEFAULT_POLL_MS). */
  readonly pollMs?: number;
}

/**
 * A process-shared counting semaphore (see the module doc for the layout).
 * One process calls {@linkcode Semaphore.init}, the others
 * {@linkcode Semaphore.from}.
 */
export class Semaphore {
  readonly #words: Int32Array;
  readonly #word: Int32Array;
  readonly #pollMs: number;

  private constructor(words: Int32Array, pollMs: unknown) {
    this.#words = words;
    this.#word = words.subarray(COUNT, COUNT + 1);
    this.#pollMs = checkTimeout(pollMs ?? DEFAULT_POLL_MS, "pollMs");
  }

  /** Bytes the layout needs: 16. */
  static readonly byteLength = 16;

  /**
   * Lays a new semaphore out in `view`'s first 16 bytes and attaches to it.
   *
   * @param view A TypedArray or DataView over shared memory, 4-byte aligned, 16 bytes or more.
   * @throws {TypeError} When `view` is not a TypedArray or DataView.
   * @throws {RangeError} When it is misaligned or too short, or `initial` exceeds `maximum`.
   */
  static init(view: ArrayBufferView, options?: SemaphoreInitOptions): Semaphore {
    const o = checkOptions(options, "options");
    const maximum = checkInteger(o.maximum ?? INT_MAX, "maximum", 1, INT_MAX);
    const initial = checkInteger(o.initial ?? 0, "initial", 0, maximum);
    const words = layoutWords(view, 4, "semaphore");
    Atomics.store(words, COUNT, initial);
    Atomics.store(words, WAITERS, 0);
    Atomics.store(words, MAXIMUM, maximum);
    Atomics.store(words, MAGIC, SEMAPHORE_MAGIC);
    return new Semaphore(words, o.pollMs);
  }

  /**
   * Attaches to a semaphore laid out with {@linkcode Semaphore.init}.
   *
   * @throws {TypeError} When `view` is not a TypedArray or DataView.
   * @throws {RangeError} When it is misaligned or too short.
   * @throws {Error} When the memory holds no initialised semaphore.
   */
  static from(view: ArrayBufferView, options?: SemaphoreOptions): Semaphore {
    const o = checkOptions(options, "options");
    const words = layoutWords(view, 4, "semaphore");
    checkMagic(words, MAGIC, SEMAPHORE_MAGIC, "a semaphore", "Semaphore.init");
    return new Semaphore(words, o.pollMs);
  }

  #live(action: string): Int32Array {
    if (this.#words.length === 0) throw new ClosedError(action, "semaphore's memory");
    return this.#words;
  }

  /**
   * Reads the count, checking every word of the layout first: the magic
   * word, a maximum of 1 or more, a count from 0 to the maximum, a
   * waiters count of 0 or more.
   *
   * @throws {LockError} ECORRUPT naming the word that breaks the rules.
   */
  #count(words: Int32Array, action: string): number {
    const magic = Atomics.load(words, MAGIC);
    if (magic !== SEMAPHORE_MAGIC) {
      throw corruptWord(action, "semaphore", "magic", magic, "an initialised one has 0x53454d31");
    }
    const maximum = Atomics.load(words, MAXIMUM);
    if (maximum < 1) {
      throw corruptWord(action, "semaphore", "maximum", maximum, "it is 1 to 2^31 - 1");
    }
    const waiters = Atomics.load(words, WAITERS);
    if (waiters < 0) {
      throw corruptWord(action, "semaphore", "waiters", waiters, "it counts sleepers, 0 or more");
    }
    const count = Atomics.load(words, COUNT);
    if (count < 0 || count > maximum) {
      throw corruptWord(action, "semaphore", "count", count, `it is 0 to the maximum, ${maximum}`);
    }
    return count;
  }

  /**
   * Permits available now.
   *
   * @throws {LockError} ECORRUPT when a word of the layout breaks its rules.
   */
  get value(): number {
    return this.#count(this.#live("read the semaphore"), "read the semaphore");
  }

  /** The most permits there may be. */
  get maximum(): number {
    const words = this.#live("read the semaphore");
    this.#count(words, "read the semaphore");
    return Atomics.load(words, MAXIMUM);
  }

  /**
   * Takes a permit if one is available, without waiting.
   *
   * @returns Whether a permit was taken.
   * @throws {LockError} ECORRUPT when a word of the layout breaks its rules.
   */
  tryAcquire(): boolean {
    const words = this.#live("acquire a permit");
    for (;;) {
      const c = this.#count(words, "acquire a permit");
      if (c === 0) return false;
      if (Atomics.compareExchange(words, COUNT, c, c - 1) === c) return true;
    }
  }

  /**
   * Takes a permit, blocking the thread until one is released or the time
   * runs out.
   *
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @returns Whether a permit was taken (false: timed out).
   * @throws {RangeError} For a negative or NaN timeout.
   */
  acquire(timeoutMs?: number): boolean {
    const deadline = performance.now() + checkTimeout(timeoutMs);
    return waitUntil(() => this.tryAcquire(), this.#words, WAITERS, this.#word, deadline);
  }

  /**
   * Takes a permit without blocking the event loop.
   *
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @returns Whether a permit was taken (false: timed out).
   * @param options `signal`: an AbortSignal that ends the wait.
   * @throws {RangeError} (synchronously) For a negative or NaN timeout.
   * @throws {TypeError} (synchronously) When `options.signal` is not an AbortSignal.
   * @throws {LockError} (as a rejection) ECORRUPT when a word of the layout breaks its rules.
   * @throws {ClosedError} (as a rejection) When the memory is closed, before or during the wait.
   * @throws {unknown} (as a rejection) The signal's reason when it aborts.
   */
  acquireAsync(timeoutMs?: number, options?: AbortOptions): Promise<boolean> {
    const deadline = performance.now() + checkTimeout(timeoutMs);
    const signal = checkSignal(checkOptions(options, "options").signal);
    return waitUntilAsync(
      () => this.tryAcquire(),
      this.#words,
      WAITERS,
      this.#word,
      deadline,
      this.#pollMs,
      signal,
    );
  }

  /**
   * Returns `count` permits and wakes as many waiters.
   *
   * @param count Permits to return, 1 or more (default 1).
   * @throws {RangeError} When the count would exceed the maximum (nothing is released then).
   */
  release(count = 1): void {
    const words = this.#live("release a permit");
    const n = checkInteger(count, "count", 1, INT_MAX);
    for (;;) {
      const c = this.#count(words, "release a permit");
      const maximum = Atomics.load(words, MAXIMUM);
      if (c + n > maximum) {
        throw new RangeError(
          `Cannot release ${n} permit(s): the semaphore holds ${c} of at most ${maximum}`,
        );
      }
      if (Atomics.compareExchange(words, COUNT, c, c + n) === c) break;
    }
    if (Atomics.load(words, WAITERS) > 0) futexWake(this.#word, n);
  }
}

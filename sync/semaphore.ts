/**
 * A counting semaphore in 256 bytes of shared memory, shared by processes,
 * on futex wait/wake, that gives back the permits of a process that died
 * holding them (as `SEM_UNDO` does for System V semaphores).
 *
 * | offset     | word      | meaning                                                 |
 * | ---------- | --------- | ------------------------------------------------------- |
 * | 0          | count     | permits available, 0 to maximum (the futex word)        |
 * | 4          | magic     | {@linkcode SEMAPHORE_MAGIC} once initialised            |
 * | 8          | waiters   | processes that may sleep on count (release wakes them)  |
 * | 12         | maximum   | the most permits count may reach                        |
 * | 16         | recovered | permits given back from dead holders since init          |
 * | 20         | reserved  | 0                                                       |
 * | 24 + 8 i   | holder id | slot i (0-28): a holder's owner id (as the Mutex's), 0 free |
 * | 28 + 8 i   | units     | permits that holder took and has not released           |
 *
 * A process records what it holds in a slot of its own; a waiter that
 * finds no permit looks at the holders at most every `checkIntervalMs`,
 * and gives back the units of those that are gone (docs/locks.md). There
 * are 29 slots: a 30th process holding permits at once is not recorded,
 * and its permits are lost if it dies.
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
  rememberFutexWord,
} from "./_futex.ts";
import { checkMagic, layoutWords, waitUntil, waitUntilAsync } from "./_lock_word.ts";
import { ClosedError } from "../core/errors.ts";
import { corruptWord } from "./_lock_error.ts";
import { ID_MASK, isOwnerGone, isPlausiblePid, ownerId, PID_MASK } from "./_owner.ts";
import { checkInteger, checkOptions } from "../core/_validate.ts";

/** The magic word (offset 4) of an initialised semaphore, layout version 2 ("SEM2"). */
export const SEMAPHORE_MAGIC = 0x53454d32;
/** How many holders a semaphore records (slots at offset 24, 8 bytes each). */
export const SEMAPHORE_HOLDER_SLOTS = 29;

const COUNT = 0;
const MAGIC = 1;
const WAITERS = 2;
const MAXIMUM = 3;
const RECOVERED = 4;
const HOLDERS = 6;
const WORDS = HOLDERS + 2 * SEMAPHORE_HOLDER_SLOTS;
const INT_MAX = 0x7fffffff;
/** Bit 30 of a holder id: the slot is being given back by the process the id names. */
const RECLAIMING = 0x40000000;

/** Options of {@linkcode Semaphore.init}. */
export interface SemaphoreInitOptions {
  /** Permits available at first (default 0). */
  readonly initial?: number;
  /** The most permits there may be (default 2^31 - 1). */
  readonly maximum?: number;
  /** Polling window of `acquireAsync`, as in `waitAsync` (default DEFAULT_POLL_MS). */
  readonly pollMs?: number;
  /** How often a waiter looks for holders that died (default 50 ms). */
  readonly checkIntervalMs?: number;
}

/** Options of {@linkcode Semaphore.from}. */
export interface SemaphoreOptions {
  /** Polling window of `acquireAsync`, as in `waitAsync` (default DEFAULT_POLL_MS). */
  readonly pollMs?: number;
  /**
   * How often a waiter looks for holders that died, in milliseconds
   * (default 50): a SIGKILLed holder wakes nobody.
   */
  readonly checkIntervalMs?: number;
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
  readonly #checkIntervalMs: number;
  readonly #id: number;
  #slot = -1;
  #lastCheck = -Infinity;

  private constructor(words: Int32Array, options: SemaphoreOptions) {
    this.#words = words;
    this.#word = words.subarray(COUNT, COUNT + 1);
    rememberFutexWord(this.#word); // its address, cached once (Node)
    this.#pollMs = checkTimeout(options.pollMs ?? DEFAULT_POLL_MS, "pollMs");
    this.#checkIntervalMs = checkTimeout(options.checkIntervalMs ?? 50, "checkIntervalMs");
    this.#id = ownerId();
  }

  /** Bytes the layout needs: 256. */
  static readonly byteLength: number = WORDS * 4;

  /**
   * Lays a new semaphore out in `view`'s first 256 bytes and attaches to it.
   *
   * @param view A TypedArray or DataView over shared memory, 4-byte aligned, 256 bytes or more.
   * @throws {TypeError} When `view` is not a TypedArray or DataView.
   * @throws {RangeError} When it is misaligned or too short, or `initial` exceeds `maximum`.
   */
  static init(view: ArrayBufferView, options?: SemaphoreInitOptions): Semaphore {
    const o = checkOptions(options, "options");
    const maximum = checkInteger(o.maximum ?? INT_MAX, "maximum", 1, INT_MAX);
    const initial = checkInteger(o.initial ?? 0, "initial", 0, maximum);
    const words = layoutWords(view, WORDS, "semaphore");
    for (let i = 0; i < WORDS; i++) Atomics.store(words, i, 0);
    Atomics.store(words, COUNT, initial);
    Atomics.store(words, MAXIMUM, maximum);
    Atomics.store(words, MAGIC, SEMAPHORE_MAGIC);
    return new Semaphore(words, o);
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
    const words = layoutWords(view, WORDS, "semaphore");
    checkMagic(words, MAGIC, SEMAPHORE_MAGIC, "a semaphore", "Semaphore.init");
    return new Semaphore(words, o);
  }

  #live(action: string): Int32Array {
    if (this.#words.length === 0) throw new ClosedError(action, "semaphore's memory");
    return this.#words;
  }

  /**
   * Reads the count, checking the words it depends on first: the magic
   * word, a maximum of 1 or more, a count from 0 to the maximum. (Magic and
   * maximum are written once, at init: plain reads, ~1 ns against ~10-15 ns
   * for an Atomics.load on these buffers.)
   *
   * @throws {LockError} ECORRUPT naming the word that breaks the rules.
   */
  #count(words: Int32Array, action: string): number {
    const magic = words[MAGIC]!;
    if (magic !== SEMAPHORE_MAGIC) {
      throw corruptWord(action, "semaphore", "magic", magic, "an initialised one has 0x53454d32");
    }
    const maximum = words[MAXIMUM]!;
    if (maximum < 1) {
      throw corruptWord(action, "semaphore", "maximum", maximum, "it is 1 to 2^31 - 1");
    }
    const count = Atomics.load(words, COUNT);
    if (count < 0 || count > maximum) {
      throw corruptWord(action, "semaphore", "count", count, `it is 0 to the maximum, ${maximum}`);
    }
    return count;
  }

  /** Reads and checks the count of sleepers: 0 or more. */
  #waiters(words: Int32Array, action: string): number {
    const waiters = Atomics.load(words, WAITERS);
    if (waiters < 0) {
      throw corruptWord(action, "semaphore", "waiters", waiters, "it counts sleepers, 0 or more");
    }
    return waiters;
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
    return words[MAXIMUM]!;
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
      let c = this.#count(words, "acquire a permit");
      if (c === 0) {
        // Reading /proc for every holder: at most once per interval.
        const now = performance.now();
        if (now - this.#lastCheck < this.#checkIntervalMs) return false;
        this.#lastCheck = now;
        if (this.#giveBackDead(words, "acquire a permit", false) === 0) return false;
        c = this.#count(words, "acquire a permit");
        if (c === 0) return false;
      }
      // The slot first: a failure there must not leave a permit taken.
      const slot = this.#ownSlot(words, "acquire a permit", true);
      if (Atomics.compareExchange(words, COUNT, c, c - 1) === c) {
        // A death right here loses this permit, as before holders were recorded.
        if (slot >= 0) Atomics.add(words, HOLDERS + 2 * slot + 1, 1);
        return true;
      }
    }
  }

  /**
   * Reads and checks holder slot `i`: its id (0, or a plausible pid with
   * the tag and the RECLAIMING bit) and its units (0 to the maximum).
   */
  #holder(words: Int32Array, i: number, action: string): { id: number; units: number } {
    const id = Atomics.load(words, HOLDERS + 2 * i);
    if (id !== 0 && (id < 0 || !isPlausiblePid(id & PID_MASK))) {
      throw corruptWord(
        action,
        "semaphore",
        `holder ${i} id`,
        id,
        "it is 0 or a holder's pid and tag",
      );
    }
    const units = Atomics.load(words, HOLDERS + 2 * i + 1);
    const maximum = words[MAXIMUM]!;
    if (units < 0 || units > maximum) {
      throw corruptWord(
        action,
        "semaphore",
        `holder ${i} units`,
        units,
        `it is 0 to the maximum, ${maximum}`,
      );
    }
    return { id, units };
  }

  /**
   * This process's slot, or -1. With `claim`, takes a free slot (or one a
   * dead holder left) when it has none; -1 then means the table is full.
   */
  #ownSlot(words: Int32Array, action: string, claim: boolean): number {
    const cached = this.#slot;
    if (cached >= 0 && Atomics.load(words, HOLDERS + 2 * cached) === this.#id) return cached;
    for (let i = 0; i < SEMAPHORE_HOLDER_SLOTS; i++) {
      if (this.#holder(words, i, action).id === this.#id) return (this.#slot = i);
    }
    if (!claim) return -1;
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < SEMAPHORE_HOLDER_SLOTS; i++) {
        if (Atomics.compareExchange(words, HOLDERS + 2 * i, 0, this.#id) === 0) {
          return (this.#slot = i);
        }
      }
      // Full: free the slots of holders that are gone, then look again.
      this.#giveBackDead(words, action, true);
    }
    return -1;
  }

  /**
   * Gives back the units of every holder that is gone (and with `all`,
   * frees the slots of gone holders holding none). Returns the permits
   * given back.
   */
  #giveBackDead(words: Int32Array, action: string, all: boolean): number {
    let given = 0;
    for (let i = 0; i < SEMAPHORE_HOLDER_SLOTS; i++) {
      const { id, units } = this.#holder(words, i, action);
      if (id === 0 || id === this.#id) continue;
      const reclaiming = (id & RECLAIMING) !== 0;
      if (units === 0 && !reclaiming && !all) continue;
      if (!isOwnerGone(id & ID_MASK, true)) continue;
      // Exactly one process takes the slot over; should it die too, the next one goes on.
      const at = HOLDERS + 2 * i;
      if (Atomics.compareExchange(words, at, id, this.#id | RECLAIMING) !== id) continue;
      const taken = Atomics.exchange(words, at + 1, 0);
      given += this.#put(words, taken);
      Atomics.store(words, at, 0);
    }
    if (given > 0) {
      Atomics.add(words, RECOVERED, given);
      if (this.#waiters(words, action) > 0) futexWake(this.#word, given);
    }
    return given;
  }

  /** Adds up to `n` permits, stopping at the maximum; returns how many were added. */
  #put(words: Int32Array, n: number): number {
    if (n === 0) return 0;
    const maximum = words[MAXIMUM]!;
    for (;;) {
      const c = Atomics.load(words, COUNT);
      const next = Math.min(maximum, c + n);
      if (next <= c) return 0;
      if (Atomics.compareExchange(words, COUNT, c, next) === c) return next - c;
    }
  }

  /** Permits given back from holders that died, since `init` (wraps at 2^32). */
  get recovered(): number {
    return Atomics.load(this.#live("read the semaphore"), RECOVERED) >>> 0;
  }

  /**
   * Takes a permit, blocking the thread until one is released or the time
   * runs out.
   *
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @returns Whether a permit was taken (false: timed out).
   * @throws {RangeError} For a negative or NaN timeout.
   * @throws {LockError} ECORRUPT when a word of the layout breaks its rules.
   */
  acquire(timeoutMs?: number): boolean {
    const deadline = performance.now() + checkTimeout(timeoutMs);
    return waitUntil(
      () => this.tryAcquire(),
      this.#words,
      WAITERS,
      this.#word,
      deadline,
      this.#checkIntervalMs,
    );
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
      this.#checkIntervalMs,
    );
  }

  /**
   * Returns `count` permits and wakes as many waiters.
   *
   * @param count Permits to return, 1 or more (default 1).
   * @throws {RangeError} When the count would exceed the maximum (nothing is released then).
   * @throws {LockError} ECORRUPT when a word of the layout breaks its rules.
   */
  release(count = 1): void {
    const words = this.#live("release a permit");
    const n = checkInteger(count, "count", 1, INT_MAX);
    this.#count(words, "release a permit");
    // Off this process's holdings first: a death in between loses permits, never adds any.
    const slot = this.#ownSlot(words, "release a permit", false);
    const units = HOLDERS + 2 * slot + 1;
    let dropped = 0;
    while (slot >= 0) {
      const held = Atomics.load(words, units);
      dropped = Math.min(held, n);
      if (Atomics.compareExchange(words, units, held, held - dropped) === held) break;
    }
    for (;;) {
      const c = this.#count(words, "release a permit");
      const maximum = words[MAXIMUM]!;
      if (c + n > maximum) {
        if (dropped > 0) Atomics.add(words, units, dropped);
        throw new RangeError(
          `Cannot release ${n} permit(s): the semaphore holds ${c} of at most ${maximum}`,
        );
      }
      if (Atomics.compareExchange(words, COUNT, c, c + n) === c) break;
    }
    if (this.#waiters(words, "release a permit") > 0) futexWake(this.#word, n);
  }
}

/**
 * An event (a flag processes can wait for) in 16 bytes of shared memory,
 * manual-reset or auto-reset, on futex wait/wake.
 *
 * | offset | word    | meaning                                                |
 * | ------ | ------- | ------------------------------------------------------ |
 * | 0      | state   | 0 reset, 1 set (the futex word)                        |
 * | 4      | magic   | {@linkcode EVENT_MAGIC} once initialised               |
 * | 8      | waiters | processes that may sleep on state (set wakes them)     |
 * | 12     | mode    | 0 manual reset, 1 auto reset                           |
 *
 * A manual-reset event stays set, releasing every waiter, until `reset()`.
 * An auto-reset event releases one waiter per `set()` and resets itself as
 * that waiter passes.
 *
 * @example Tell other processes that data is ready
 * ```ts
 * import { Mapping, SharedEvent } from "@shmkit/shmkit";
 * using mapping = Mapping.anonymous(4096);
 * const ready = SharedEvent.init(mapping.view(), { mode: "manual" });
 * // Another process: SharedEvent.from(view).wait();
 * ready.set();
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
import { checkChoice, checkOptions } from "../core/_validate.ts";

/** The magic word (offset 4) of an initialised event, layout version 1 ("EVT1"). */
export const EVENT_MAGIC = 0x45565431;

const STATE = 0;
const MAGIC = 1;
const WAITERS = 2;
const MODE = 3;
/** How an event resets: "manual" stays set until `reset()`, "auto" lets one waiter through per `set()`. */
export type EventMode = "manual" | "auto";

const MODES: readonly EventMode[] = ["manual", "auto"];

/** Options of {@linkcode SharedEvent.init}. */
export interface EventInitOptions {
  /** "manual" (default) or "auto". */
  readonly mode?: EventMode;
  /** Whether the event starts set (default false). */
  readonly set?: boolean;
  /** Polling window of `waitAsync`, as in the `waitAsync` function (default DEFAULT_POLL_MS). */
  readonly pollMs?: number;
}

/** Options of {@linkcode SharedEvent.from}. */
export interface EventOptions {
  /** Polling window of `waitAsync` (default DEFAULT_POLL_MS). */
  readonly pollMs?: number;
}

/**
 * A process-shared event (see the module doc for the layout). One process
 * calls {@linkcode SharedEvent.init}, the others {@linkcode SharedEvent.from}.
 * Named SharedEvent so as not to shadow the DOM `Event`.
 */
export class SharedEvent {
  readonly #words: Int32Array;
  readonly #word: Int32Array;
  readonly #auto: boolean;
  readonly #pollMs: number;

  private constructor(words: Int32Array, pollMs: unknown) {
    this.#words = words;
    this.#word = words.subarray(STATE, STATE + 1);
    rememberFutexWord(this.#word); // its address, cached once (Node)
    this.#auto = Atomics.load(words, MODE) === 1;
    this.#pollMs = checkTimeout(pollMs ?? DEFAULT_POLL_MS, "pollMs");
  }

  /** Bytes the layout needs: 16. */
  static readonly byteLength = 16;

  /**
   * Lays a new event out in `view`'s first 16 bytes and attaches to it.
   *
   * @param view A TypedArray or DataView over shared memory, 4-byte aligned, 16 bytes or more.
   * @throws {TypeError} When `view` is not a TypedArray or DataView.
   * @throws {RangeError} When it is misaligned or too short, or the mode is unknown.
   */
  static init(view: ArrayBufferView, options?: EventInitOptions): SharedEvent {
    const o = checkOptions(options, "options");
    const mode = checkChoice(o.mode ?? "manual", "mode", MODES);
    const words = layoutWords(view, 4, "event");
    Atomics.store(words, STATE, o.set === true ? 1 : 0);
    Atomics.store(words, WAITERS, 0);
    Atomics.store(words, MODE, mode === "auto" ? 1 : 0);
    Atomics.store(words, MAGIC, EVENT_MAGIC);
    return new SharedEvent(words, o.pollMs);
  }

  /**
   * Attaches to an event laid out with {@linkcode SharedEvent.init}.
   *
   * @throws {TypeError} When `view` is not a TypedArray or DataView.
   * @throws {RangeError} When it is misaligned or too short.
   * @throws {Error} When the memory holds no initialised event.
   */
  static from(view: ArrayBufferView, options?: EventOptions): SharedEvent {
    const o = checkOptions(options, "options");
    const words = layoutWords(view, 4, "event");
    checkMagic(words, MAGIC, EVENT_MAGIC, "an event", "SharedEvent.init");
    const mode = Atomics.load(words, MODE);
    if (mode !== 0 && mode !== 1) {
      throw corruptWord("attach to the event", "event", "mode", mode, "it is 0 or 1");
    }
    return new SharedEvent(words, o.pollMs);
  }

  #live(action: string): Int32Array {
    if (this.#words.length === 0) throw new ClosedError(action, "event's memory");
    return this.#words;
  }

  /**
   * Reads the state, checking the words it depends on first: the magic
   * word, the mode it was attached with, a state of 0 or 1. (Magic and mode
   * are written once, at init: plain reads.)
   *
   * @throws {LockError} ECORRUPT naming the word that breaks the rules.
   */
  #state(words: Int32Array, action: string): number {
    const magic = words[MAGIC]!;
    if (magic !== EVENT_MAGIC) {
      throw corruptWord(action, "event", "magic", magic, "an initialised one has 0x45565431");
    }
    const mode = words[MODE]!;
    if (mode !== (this.#auto ? 1 : 0)) {
      throw corruptWord(action, "event", "mode", mode, `it was ${this.#auto ? 1 : 0} at attach`);
    }
    const state = Atomics.load(words, STATE);
    if (state !== 0 && state !== 1) {
      throw corruptWord(action, "event", "state", state, "it is 0 (reset) or 1 (set)");
    }
    return state;
  }

  /** "manual" or "auto". */
  get mode(): EventMode {
    return this.#auto ? "auto" : "manual";
  }

  /** Whether the event is set now. */
  get isSet(): boolean {
    return this.#state(this.#live("read the event"), "read the event") !== 0;
  }

  /**
   * Sets the event: wakes every waiter (manual) or one (auto).
   *
   * @throws {LockError} ECORRUPT when a word of the layout breaks its rules.
   */
  set(): void {
    const words = this.#live("set the event");
    this.#state(words, "set the event");
    // Already set: whoever sleeps now went to sleep on 0 and was woken then.
    if (Atomics.exchange(words, STATE, 1) !== 0) return;
    const waiters = Atomics.load(words, WAITERS);
    if (waiters < 0) {
      throw corruptWord(
        "set the event",
        "event",
        "waiters",
        waiters,
        "it counts sleepers, 0 or more",
      );
    }
    if (waiters > 0) futexWake(this.#word, this.#auto ? 1 : undefined);
  }

  /**
   * Resets the event.
   *
   * @throws {LockError} ECORRUPT when a word of the layout breaks its rules.
   */
  reset(): void {
    const words = this.#live("reset the event");
    this.#state(words, "reset the event");
    Atomics.store(words, STATE, 0);
  }

  /**
   * Passes if set (resetting an auto-reset event), without waiting.
   *
   * @throws {LockError} ECORRUPT when a word of the layout breaks its rules.
   */
  tryWait(): boolean {
    const words = this.#live("wait for the event");
    const state = this.#state(words, "wait for the event");
    if (this.#auto) return state === 1 && Atomics.compareExchange(words, STATE, 1, 0) === 1;
    return state !== 0;
  }

  /**
   * Waits until the event is set, blocking the thread.
   *
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @returns Whether the event was set (false: timed out).
   * @throws {RangeError} For a negative or NaN timeout.
   * @throws {LockError} ECORRUPT when a word of the layout breaks its rules.
   */
  wait(timeoutMs?: number): boolean {
    const deadline = performance.now() + checkTimeout(timeoutMs);
    return waitUntil(() => this.tryWait(), this.#words, WAITERS, this.#word, deadline);
  }

  /**
   * Waits until the event is set without blocking the event loop.
   *
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @returns Whether the event was set (false: timed out).
   * @param options `signal`: an AbortSignal that ends the wait.
   * @throws {RangeError} (synchronously) For a negative or NaN timeout.
   * @throws {TypeError} (synchronously) When `options.signal` is not an AbortSignal.
   * @throws {LockError} (as a rejection) ECORRUPT when a word of the layout breaks its rules.
   * @throws {ClosedError} (as a rejection) When the memory is closed, before or during the wait.
   * @throws {unknown} (as a rejection) The signal's reason when it aborts.
   */
  waitAsync(timeoutMs?: number, options?: AbortOptions): Promise<boolean> {
    const deadline = performance.now() + checkTimeout(timeoutMs);
    const signal = checkSignal(checkOptions(options, "options").signal);
    return waitUntilAsync(
      () => this.tryWait(),
      this.#words,
      WAITERS,
      this.#word,
      deadline,
      this.#pollMs,
      signal,
    );
  }
}

/**
 * Wait and wake across processes on a 32-bit word in shared memory, with
 * `futex(2)` (Linux), in the shape of `Atomics.wait` / `Atomics.notify`.
 *
 * Word-level atomics need nothing from shmkit: `Atomics.load`, `store`,
 * `add`, `sub`, `and`, `or`, `xor`, `exchange` and `compareExchange` work on
 * an `Int32Array` over a mapping in Deno and Bun alike, and compile to real
 * atomic instructions, so they are atomic against other processes mapping
 * the same memory. What the runtimes refuse is `Atomics.wait` and
 * `Atomics.notify` on memory that is not a `SharedArrayBuffer`, and even on
 * one, their wait lists are per process. {@linkcode wait},
 * {@linkcode notify} and {@linkcode waitAsync} fill that gap:
 *
 * - `wait(view, index, expected, timeoutMs?)`: `futex(addr, FUTEX_WAIT,
 *   expected, &relative_timeout)`; blocks the thread.
 * - `notify(view, index, count?)`: `futex(addr, FUTEX_WAKE, count)`; wakes
 *   waiters in every process that maps the word.
 * - `waitAsync(view, index, expected, timeoutMs?)`: the same wait without
 *   blocking the event loop. Deno runs the futex call on a worker thread
 *   (a `nonblocking` FFI symbol); Bun's and Node's FFI have no such thing,
 *   so a small pool of Workers (Node: worker_threads) blocks in futex and
 *   posts the outcome back. All first poll the word for up to 0.5 ms from the event loop, since a
 *   thread's wake-up costs ~100-300 us here (see docs/locks.md).
 *
 * The futex calls go without `FUTEX_PRIVATE_FLAG`, so they meet across
 * processes. For that, the memory must be mapped shared (`MAP_SHARED`: a
 * shared anonymous mapping inherited by a child, a file, a POSIX shm object
 * or memfd); on private memory they only meet within one process.
 *
 * As with every futex, a wait can return "ok" without a matching notify
 * (spuriously, or when the word changed while waiting): re-check the
 * condition in a loop, comparing and waiting on the same read:
 * `for (let v = Atomics.load(w, i); v !== want; v = Atomics.load(w, i)) wait(w, i, v);`
 *
 * @example Wake a waiter in another process
 * ```ts
 * import { Mapping, notify, wait } from "@shmkit/shmkit";
 * using mapping = Mapping.anonymous(4096); // shared with children
 * const words = mapping.view(Int32Array);
 * // Waiter:   for (let v = Atomics.load(words, 0); v === 0; v = Atomics.load(words, 0)) {
 * //             wait(words, 0, v, 1000);
 * //           }
 * // Notifier:
 * Atomics.store(words, 0, 1);
 * notify(words, 0, 1);
 * ```
 *
 * @module
 */
import { ClosedError } from "../core/errors.ts";
import { checkInteger, checkOptions } from "../core/_validate.ts";
import {
  type AbortOptions,
  checkSignal,
  checkTimeout,
  checkWord,
  DEFAULT_POLL_MS,
  futexWait,
  futexWaitAsync,
  futexWake,
  type WaitResult,
  WAKE_ALL,
  wordOf,
} from "./_futex.ts";

export { type AbortOptions, DEFAULT_POLL_MS, type WaitResult } from "./_futex.ts";
// Internals sync/channel.ts imports from here.
export {
  addressOfWord,
  checkSignal,
  checkTimeout,
  checkWord,
  futexWait,
  futexWaitAsync,
  futexWake,
  wordOf,
} from "./_futex.ts";
export { futexWorkerCounts } from "./_futex_worker.ts";
export { checkMagic, layoutWords, waitUntil, waitUntilAsync } from "./_lock_word.ts";

/** Options of {@linkcode waitAsync}. */
export interface WaitAsyncOptions extends AbortOptions {
  /**
   * How long to poll the word from the event loop (with `setImmediate`,
   * a few microseconds apart) before handing the wait to a blocking
   * thread, in milliseconds. Polling costs CPU but sees a change within
   * microseconds; a blocked thread costs nothing but takes ~100-300 us to
   * wake and report back. Default {@linkcode DEFAULT_POLL_MS}; 0 blocks at
   * once.
   */
  readonly pollMs?: number;
}

/**
 * Waits until `view[index]` is woken by {@linkcode notify} from any
 * process, the time runs out, or at once if `view[index] !== expected`:
 * `futex(&view[index], FUTEX_WAIT, expected, &timeout)` (timeout relative,
 * on CLOCK_MONOTONIC). Blocks the thread, like `Atomics.wait`; in an event
 * loop, prefer {@linkcode waitAsync}.
 *
 * Unlike `Atomics.wait`, a negative or NaN timeout is an error, not 0 or
 * forever.
 *
 * @example Wait up to 10 ms for a flag
 * ```ts
 * import { Mapping, wait } from "@shmkit/shmkit";
 * using mapping = Mapping.anonymous(4096);
 * const words = mapping.view(Int32Array);
 * console.log(wait(words, 0, 0, 10)); // "timed-out": nobody notified
 * console.log(wait(words, 0, 1, 10)); // "not-equal": the word is 0, not 1
 * ```
 *
 * @param view An Int32Array over shared memory.
 * @param index The word's index in `view`.
 * @param expected The value the word must hold for the wait to start (an int32 or uint32).
 * @param timeoutMs Milliseconds (fractions allowed), or undefined / Infinity for none.
 * @returns "ok", "not-equal" or "timed-out".
 * @throws {TypeError} When `view` is not an Int32Array or an argument is not a number.
 * @throws {RangeError} For an index out of range, a non-int32 `expected`, or a negative or NaN timeout.
 * @throws {ClosedError} When the view's memory was closed.
 * @throws {ErrnoError} `futex` failing (EFAULT, EINVAL).
 */
export function wait(
  view: Int32Array,
  index: number,
  expected: number,
  timeoutMs?: number,
): WaitResult {
  const word = wordOf(view, index, "wait");
  const value = checkWord(expected, "expected");
  return futexWait(word, value, checkTimeout(timeoutMs));
}

/**
 * Wakes up to `count` waiters on `view[index]`, in every process:
 * `futex(&view[index], FUTEX_WAKE, count)`. Change the word before
 * notifying, or the woken waiters go back to sleep.
 *
 * Waiters still in {@linkcode waitAsync}'s polling window are not counted:
 * they see the changed word by themselves.
 *
 * @example
 * ```ts
 * import { Mapping, notify } from "@shmkit/shmkit";
 * using mapping = Mapping.anonymous(4096);
 * const words = mapping.view(Int32Array);
 * Atomics.store(words, 0, 1);
 * console.log(notify(words, 0)); // 0: nobody was waiting
 * ```
 *
 * @param view An Int32Array over shared memory.
 * @param index The word's index in `view`.
 * @param count How many to wake, 0 or more (default Infinity: all).
 * @returns How many waiters were woken.
 * @throws {TypeError} When `view` is not an Int32Array.
 * @throws {RangeError} For an index out of range or a negative count.
 * @throws {ClosedError} When the view's memory was closed.
 */
export function notify(view: Int32Array, index: number, count: number = Infinity): number {
  const word = wordOf(view, index, "notify");
  const n = count === Infinity ? WAKE_ALL : checkInteger(count, "count", 0, WAKE_ALL);
  return futexWake(word, n);
}

/**
 * Waits like {@linkcode wait} without blocking the event loop; timers, I/O
 * and other promises go on meanwhile.
 *
 * First polls the word for `pollMs` (default {@linkcode DEFAULT_POLL_MS});
 * then Deno runs `futex(FUTEX_WAIT)` on one of its FFI worker threads, and
 * Bun and Node hand it to one of a pool of Workers that block in futex
 * (idle Workers don't keep the process alive). A pending wait keeps the process
 * alive, as any pending operation does: give a timeout if nobody may ever
 * notify.
 *
 * On Deno, errno of a worker-thread call can't be read from JS, so the
 * outcome is decided from the word and the clock afterwards.
 *
 * @example Wait for a flag while a timer keeps running
 * ```ts
 * import { Mapping, notify, waitAsync } from "@shmkit/shmkit";
 * using mapping = Mapping.anonymous(4096);
 * const words = mapping.view(Int32Array);
 * setTimeout(() => {
 *   Atomics.store(words, 0, 1);
 *   notify(words, 0);
 * }, 5);
 * console.log(await waitAsync(words, 0, 0, 1000)); // "ok"
 * ```
 *
 * @param view An Int32Array over shared memory.
 * @param index The word's index in `view`.
 * @param expected The value the word must hold for the wait to start.
 * @param timeoutMs Milliseconds, or undefined / Infinity for none.
 * @returns "ok", "not-equal" or "timed-out".
 * @throws {TypeError} (synchronously) When `view` is not an Int32Array or an argument is not a number.
 * @throws {RangeError} (synchronously) For an index out of range or a negative or NaN timeout.
 * @throws {ClosedError} (as a rejection) When the view's memory is closed, before or during the
 * wait; a wait without a timeout ends then too.
 * @throws {unknown} (as a rejection) `options.signal`'s reason when it aborts.
 */
export function waitAsync(
  view: Int32Array,
  index: number,
  expected: number,
  timeoutMs?: number,
  options?: WaitAsyncOptions,
): Promise<WaitResult> {
  if (view instanceof Int32Array && view.buffer.byteLength === 0) {
    return Promise.reject(new ClosedError("wait", "view's memory"));
  }
  const word = wordOf(view, index, "wait");
  const value = checkWord(expected, "expected");
  const timeout = checkTimeout(timeoutMs);
  const o = checkOptions(options, "options");
  const pollMs = checkTimeout(o.pollMs ?? DEFAULT_POLL_MS, "pollMs");
  const signal = checkSignal(o.signal);
  return futexWaitAsync(word, value, timeout, pollMs, signal);
}

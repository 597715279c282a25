/**
 * Internal: what the lock layouts (mutex, semaphore, event, channel) share:
 * placing a layout in a view, checking its magic word, and the wait loop
 * around a word that counts its sleepers.
 *
 * @module
 */
import { ClosedError } from "../core/errors.ts";
import { typeName } from "../ffi/pointer.ts";
import { futexWait, futexWaitAsync } from "./_futex.ts";

/**
 * The `count` 32-bit words at the start of a view, as an Int32Array over
 * the same memory, for a layout that needs `count` words.
 *
 * @throws {TypeError} When `view` is not an ArrayBufferView.
 * @throws {RangeError} When it is misaligned (byteOffset not a multiple of 4) or too short.
 * @throws {ClosedError} When its memory was closed.
 */
export function layoutWords(view: unknown, count: number, what: string): Int32Array {
  if (!ArrayBuffer.isView(view)) {
    throw new TypeError(
      `Cannot place a ${what}: expected a TypedArray or DataView over shared memory, got ${
        typeName(view)
      }`,
    );
  }
  if (view.buffer.byteLength === 0) throw new ClosedError(`place a ${what}`, "view's memory");
  if (view.byteOffset % 4 !== 0) {
    throw new RangeError(
      `Cannot place a ${what} at byteOffset ${view.byteOffset}: it must be a multiple of 4 (futex words are 4-byte aligned)`,
    );
  }
  if (view.byteLength < count * 4) {
    throw new RangeError(
      `Cannot place a ${what} in ${view.byteLength} bytes: its layout needs ${count * 4}`,
    );
  }
  return new Int32Array(view.buffer, view.byteOffset, count);
}

/**
 * Checks that `words[index]` holds the `magic` word an initialised layout
 * starts with, so attaching to memory nobody initialised fails clearly
 * instead of misreading it.
 *
 * @param what The layout, with its article ("a mutex").
 * @param init The call that initialises it ("Mutex.init").
 */
export function checkMagic(
  words: Int32Array,
  index: number,
  magic: number,
  what: string,
  init: string,
): void {
  const found = Atomics.load(words, index);
  if (found !== magic) {
    throw new Error(
      `Cannot attach to ${what}: the memory holds 0x${
        (found >>> 0).toString(16)
      } where an initialised ${what.replace(/^an? /, "")} has 0x${
        magic.toString(16)
      }; call ${init} first`,
    );
  }
}

/**
 * Blocks until `attempt()` succeeds or `deadline` (a `performance.now()`
 * time) passes, sleeping on `word` while it holds 0 and counting this
 * sleeper in `words[waiters]` so that wakers know to call futex. Sleeps at
 * most `sliceMs` at a time, so that `attempt()` can look for dead holders
 * nobody will hear from. Returns whether `attempt()` succeeded.
 */
export function waitUntil(
  attempt: () => boolean,
  words: Int32Array,
  waiters: number,
  word: Int32Array,
  deadline: number,
  sliceMs: number = Infinity,
): boolean {
  for (;;) {
    if (attempt()) return true;
    const left = deadline - performance.now();
    if (left <= 0) return false;
    Atomics.add(words, waiters, 1);
    try {
      futexWait(word, 0, Math.min(left, sliceMs));
    } finally {
      Atomics.sub(words, waiters, 1);
    }
  }
}

/** The asynchronous twin of {@linkcode waitUntil}. */
export async function waitUntilAsync(
  attempt: () => boolean,
  words: Int32Array,
  waiters: number,
  word: Int32Array,
  deadline: number,
  pollMs: number,
  signal?: AbortSignal,
  sliceMs: number = Infinity,
): Promise<boolean> {
  signal?.throwIfAborted();
  for (;;) {
    if (attempt()) return true;
    const left = deadline - performance.now();
    if (left <= 0) return false;
    Atomics.add(words, waiters, 1);
    try {
      await futexWaitAsync(word, 0, Math.min(left, sliceMs), pollMs, signal);
    } finally {
      // The memory may have been closed during the wait (words detached).
      if (words.length !== 0) Atomics.sub(words, waiters, 1);
    }
  }
}

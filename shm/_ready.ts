/**
 * The ready word of {@linkcode SharedMemory.openOrCreate}: one int32 in a
 * page after the caller's bytes (so the caller's view is untouched), saying
 * who is initializing the object and whether it is done:
 *
 * - 0: just created and sized; the creator has not claimed it yet.
 * - a pid > 0: that process is running `init`.
 * - READY (-1): `init` finished; the object is usable.
 * - FAILED (-2): `init` threw; the creator unlinks the object.
 *
 * Waiters sleep on the word with futex (waitAsync) in slices, checking in
 * between whether the initializer is still alive (`kill(pid, 0)`; for word 0,
 * the creator recorded in the object's xattr), the deadline and the
 * AbortSignal, so no wait outlives a dead peer.
 *
 * @module
 */
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { waitAsync } from "../sync/wait.ts";

/** `init` finished. */
export const READY = -1;
/** `init` threw; the object is being removed. */
export const FAILED = -2;

/** How long one futex wait lasts before liveness, deadline and signal are checked again. */
const SLICE_MS = 50;

/** Whether `pid` names no process (`kill(pid, 0)` is ESRCH). */
export function processGone(pid: number): boolean {
  return unsafeLibc.kill(pid, 0) === -1 && errno() === platform.errno.ESRCH;
}

/** Why a wait for the ready word ended without READY. */
export type NotReady =
  | { readonly kind: "failed" }
  | { readonly kind: "dead"; readonly pid: number; readonly claimed: boolean }
  | { readonly kind: "timed-out"; readonly state: number }
  | { readonly kind: "aborted"; readonly reason: unknown };

/**
 * Waits until `word[0]` is READY; returns undefined then, or why not.
 *
 * @param deadline A `performance.now()` time, or Infinity.
 */
export async function awaitReady(
  word: Int32Array,
  deadline: number,
  signal: AbortSignal | undefined,
  unclaimedGone?: () => number | undefined,
): Promise<NotReady | undefined> {
  for (;;) {
    const state = Atomics.load(word, 0);
    if (state === READY) return undefined;
    if (state === FAILED) return { kind: "failed" };
    const gone = state > 0
      ? (processGone(state) ? state : undefined)
      : state === 0
      ? unclaimedGone?.()
      : undefined;
    if (gone !== undefined) {
      // Re-read: it may have finished (or claimed the word) just before it exited.
      const last = Atomics.load(word, 0);
      if (last === READY) return undefined;
      if (last === FAILED) return { kind: "failed" };
      if (last === state) return { kind: "dead", pid: gone, claimed: state > 0 };
      continue;
    }
    if (signal?.aborted) return { kind: "aborted", reason: signal.reason };
    const left = deadline - performance.now();
    if (left <= 0) return { kind: "timed-out", state };
    await waitAsync(word, 0, state, Math.min(left, SLICE_MS));
  }
}

/** Sleeps `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

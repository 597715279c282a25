/**
 * Internal: a `semop` that waits without blocking the event loop. It tries
 * first with IPC_NOWAIT; then `semtimedop` runs in slices on another thread
 * (Deno: a `nonblocking` FFI call; Bun: a pooled Worker), with a deadline
 * and an AbortSignal.
 *
 * A blocked `semtimedop` can't be woken from outside, so an abort or a
 * timeout settles the promise at once and the thread returns by the end of
 * its slice. If the operations succeed on that thread after the wait was
 * given up, they are reverted (the negated deltas, IPC_NOWAIT, with the
 * same SEM_UNDO flags), so an abandoned acquire never leaves a semaphore
 * taken.
 *
 * @module
 */
import type { ErrnoError } from "../core/errors.ts";
import { unsafeLibc } from "../ffi/libc.ts";
import { unsafeAddressOf } from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";
import { allocTimespec, writeTimespec } from "../sync/_futex.ts";
import {
  inverseOperations,
  operationCount,
  semError,
  semGone,
  semopTimed,
} from "./_sysv_sem_raw.ts";
import { semtimedopInWorker } from "./_sysv_sem_worker.ts";

const C = platform.constants;
const E = platform.errno;
const SEMBUF = platform.structs.sembuf;
const FLAGS = SEMBUF.fields["sem_flg"]!;

/**
 * The longest single blocking call: how long a thread stays blocked after
 * its wait was aborted, and how often a wait checks that its set exists.
 */
export const SLICE_MS = 200;

/** The same operations with IPC_NOWAIT added to each. */
function withNoWait(bytes: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const out = bytes.slice();
  const view = new DataView(out.buffer);
  for (let at = FLAGS.offset; at < out.length; at += SEMBUF.size) {
    view.setInt16(at, view.getInt16(at, true) | C.IPC_NOWAIT, true);
  }
  return out;
}

function revert(id: number, bytes: Uint8Array): void {
  const inverse = inverseOperations(bytes);
  if (inverse === undefined) return;
  try {
    semopTimed(id, inverse, Infinity);
  } catch {
    // The set is gone: nothing left to give back.
  }
}

function removed(id: number, count: number): ErrnoError {
  return semError("semop", E.EIDRM!, id, count);
}

/** One slice on another thread: 0, an errno, or "busy" (Bun: every Worker taken). */
async function slice(
  id: number,
  bytes: Uint8Array<ArrayBuffer>,
  ms: number,
): Promise<number | "busy"> {
  const nonblocking = unsafeLibc.semtimedop_nonblocking;
  if (nonblocking !== undefined) {
    // Deno: errno belongs to the worker thread; the caller tells outcomes apart itself.
    const timespec = allocTimespec();
    writeTimespec(timespec.view, ms);
    const result = await nonblocking(
      id,
      unsafeAddressOf(bytes),
      operationCount(bytes),
      timespec.address,
    );
    // Keep both buffers reachable until the call returned.
    void bytes.length;
    void timespec.bytes.length;
    return result === 0 ? 0 : -1;
  }
  return await semtimedopInWorker(id, bytes, ms);
}

/**
 * Waits for `bytes` (encoded operations, without IPC_NOWAIT) to succeed on
 * set `id`, or the timeout, or an abort.
 *
 * @returns true when done, false when the time ran out.
 */
export function semopAsync(
  id: number,
  bytes: Uint8Array<ArrayBuffer>,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  signal?.throwIfAborted();
  const count = operationCount(bytes);
  if (semopTimed(id, withNoWait(bytes), Infinity)) return Promise.resolve(true);
  if (timeoutMs === 0) return Promise.resolve(false);
  const deadline = performance.now() + timeoutMs;
  const state = { givenUp: false };
  return new Promise<boolean>((resolve, reject) => {
    const onAbort = (): void => {
      state.givenUp = true;
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    const done = (): void => signal?.removeEventListener("abort", onAbort);
    (async (): Promise<boolean> => {
      let backoff = 1;
      for (;;) {
        const left = deadline - performance.now();
        if (left <= 0) return false;
        const outcome = await slice(id, bytes, Math.min(left, SLICE_MS));
        if (outcome === 0) {
          if (state.givenUp) revert(id, bytes);
          return true;
        }
        if (state.givenUp) return false;
        if (outcome === "busy") {
          // Every Worker is taken: poll with IPC_NOWAIT, 1 ms growing to 16 ms.
          if (semopTimed(id, withNoWait(bytes), Infinity)) return true;
          await new Promise((r) => setTimeout(r, Math.min(backoff, Math.max(0, left))));
          backoff = Math.min(backoff * 2, 16);
          continue;
        }
        if (outcome === E.EIDRM) throw removed(id, count);
        if (outcome === -1) {
          // Deno: the worker thread's errno is out of reach; find the cause here.
          if (semGone(id)) throw removed(id, count);
          // A lasting error (EFBIG, E2BIG, EACCES...) shows in a try without waiting.
          if (semopTimed(id, withNoWait(bytes), Infinity)) {
            if (state.givenUp) revert(id, bytes);
            return true;
          }
          continue;
        }
        if (outcome !== E.EAGAIN && outcome !== E.EINTR) {
          if (outcome === E.EINVAL && semGone(id)) throw removed(id, count);
          throw semError("semtimedop", outcome, id, count);
        }
      }
    })().then(
      (result) => {
        done();
        if (!state.givenUp) resolve(result);
      },
      (error: unknown) => {
        done();
        if (!state.givenUp) reject(error);
      },
    );
  });
}

/**
 * Internal: futex(2) wait and wake on one 32-bit word, synchronous and
 * asynchronous (Deno: a `nonblocking` call on a worker thread; Bun and Node:
 * a pooled Worker, see `_futex_worker.ts`). The public shapes are in `wait.ts`.
 *
 * @module
 */
import { ClosedError, ErrnoError } from "../core/errors.ts";
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { typeName, unsafeAddressOf } from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";
import { checkInteger } from "../core/_validate.ts";
import { scheduleMacrotask } from "../core/_runtime.ts";
import { beforeRelease } from "../core/_region.ts";
import { blockInWorker } from "./_futex_worker.ts";
import { bufferArgument, viewArgument } from "../ffi/_arguments.ts";

const C = platform.constants;
const E = platform.errno;
const TIMESPEC = platform.structs.timespec;
const SEC = TIMESPEC.fields["tv_sec"]!;
const NSEC = TIMESPEC.fields["tv_nsec"]!;
/** FUTEX_WAKE's count is an int; INT_MAX wakes everyone. */
export const WAKE_ALL = 0x7fffffff;

/**
 * How a wait ended, as `Atomics.wait` reports it: "ok" when woken (or,
 * for `waitAsync`, when the word changed after the wait began),
 * "not-equal" when the word did not hold the expected value when the call
 * was made, "timed-out" when the time ran out.
 */
export type WaitResult = "ok" | "not-equal" | "timed-out";

/**
 * The default polling window of `waitAsync`, 0.5 ms: a little more than a
 * blocked thread's wake-up costs on the machines measured (~100-300 us), so
 * a wait costs at most about twice the better of the two strategies, and
 * two async peers answering each other stay in the fast polling phase (with
 * 0.1 ms, an async channel ping-pong took ~10x longer).
 */
export const DEFAULT_POLL_MS = 0.5;

/** Throws on a platform without futex. */
export function futexAvailable(action: string): void {
  if (C.SYS_futex === -1) {
    throw new Error(
      `Cannot ${action}: futex is Linux-only, and ${platform.os} has no futex; shmkit's locks need it`,
    );
  }
}

/**
 * Checks a timeout in milliseconds: undefined or Infinity mean none.
 *
 * @throws {TypeError} When it is not a number.
 * @throws {RangeError} When it is negative or NaN.
 */
export function checkTimeout(value: unknown, what = "timeoutMs"): number {
  if (value === undefined) return Infinity;
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot use ${what}: expected a number of milliseconds, got ${typeName(value)}`,
    );
  }
  if (Number.isNaN(value)) {
    throw new RangeError(`Cannot use ${what} NaN: expected 0 or more milliseconds, or Infinity`);
  }
  if (value < 0) {
    throw new RangeError(
      `Cannot use ${what} ${value}: expected 0 or more milliseconds, or Infinity`,
    );
  }
  return value;
}

/** Checks a 32-bit word value: any integer from -2^31 to 2^32 - 1, as an int32. */
export function checkWord(value: unknown, what: string): number {
  return checkInteger(value, what, -0x80000000, 0xffffffff) | 0;
}

/** A struct timespec in an ArrayBuffer (never moved by the GC), its DataView and address. */
export interface Timespec {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly address: number;
}

/** Writes a relative timeout into a struct timespec. */
export function writeTimespec(cell: DataView, ms: number): void {
  const clamped = Math.max(0, ms);
  const sec = Math.floor(clamped / 1000);
  const nsec = Math.min(999_999_999, Math.floor((clamped - sec * 1000) * 1e6));
  if (SEC.size === 8) cell.setBigInt64(SEC.offset, BigInt(sec), true);
  else cell.setInt32(SEC.offset, Math.min(sec, 0x7fffffff), true);
  if (NSEC.size === 8) cell.setBigInt64(NSEC.offset, BigInt(nsec), true);
  else cell.setInt32(NSEC.offset, nsec, true);
}

/** A fresh struct timespec. */
export function allocTimespec(): Timespec {
  const bytes = new Uint8Array(new ArrayBuffer(TIMESPEC.size));
  return { bytes, view: new DataView(bytes.buffer), address: unsafeAddressOf(bytes) };
}

let syncTimespec: Timespec | undefined;

// ArrayBuffer -> address of its first byte. Looking an address up costs
// ~0.8 us in Deno, so it is done once per buffer.
const baseAddresses = new WeakMap<ArrayBufferLike, number>();

/** The address of a view's first element (for calls that run on other threads). */
export function addressOfWord(word: Int32Array): number {
  let base = baseAddresses.get(word.buffer);
  if (base === undefined) {
    base = unsafeAddressOf(word) - word.byteOffset;
    baseAddresses.set(word.buffer, base);
  }
  return base + word.byteOffset;
}

/** Checks a view and an index and returns the one-word view of `view[index]`. */
export function wordOf(view: unknown, index: unknown, action: string): Int32Array {
  if (!(view instanceof Int32Array)) {
    throw new TypeError(`Cannot ${action}: expected an Int32Array, got ${typeName(view)}`);
  }
  if (view.buffer.byteLength === 0) throw new ClosedError(action, "view's memory");
  const i = checkInteger(index, "index", 0, view.length - 1);
  return view.subarray(i, i + 1);
}

/**
 * Registers a long-lived one-word view whose address futexWait/futexWake
 * reuse (Node; a no-op elsewhere): ffi/_arguments.ts's `bufferArgument`,
 * under the name messaging/ imports.
 */
export function rememberFutexWord(word: Int32Array): void {
  bufferArgument(word);
}

/**
 * `futex(&word[0], FUTEX_WAIT, expected, timeout)`, blocking the thread;
 * retries on EINTR with the time left.
 *
 * @param word A view whose first element is the futex word (4-byte aligned, mapped).
 * @param expected The value (as int32) the word must hold for the wait to start.
 * @param timeoutMs Milliseconds, or Infinity.
 * @throws {ErrnoError} `futex` failing other than EAGAIN, ETIMEDOUT, EINTR.
 */
export function futexWait(word: Int32Array, expected: number, timeoutMs: number): WaitResult {
  futexAvailable("wait");
  const deadline = timeoutMs === Infinity ? Infinity : performance.now() + timeoutMs;
  for (;;) {
    let timeout: Uint8Array | null = null;
    if (deadline !== Infinity) {
      syncTimespec ??= allocTimespec();
      writeTimespec(syncTimespec.view, deadline - performance.now());
      timeout = syncTimespec.bytes;
    }
    const result = unsafeLibc.syscall_futex(
      C.SYS_futex,
      viewArgument(word),
      C.FUTEX_WAIT,
      expected,
      timeout,
      null,
      0,
    );
    if (result === 0) return "ok";
    const code = errno();
    if (code === E.EAGAIN) return "not-equal";
    if (code === E.ETIMEDOUT) return "timed-out";
    if (code !== E.EINTR) throw new ErrnoError("futex", code, { hint: "FUTEX_WAIT failed" });
  }
}

/**
 * `futex(&word[0], FUTEX_WAKE, count)`.
 *
 * @returns How many waiters were woken (in every process).
 * @throws {ErrnoError} `futex` failing (EFAULT for an unmapped address).
 */
export function futexWake(word: Int32Array, count: number = WAKE_ALL): number {
  futexAvailable("notify");
  const result = unsafeLibc.syscall_futex(
    C.SYS_futex,
    viewArgument(word),
    C.FUTEX_WAKE,
    count,
    null,
    null,
    0,
  );
  if (result === -1) throw new ErrnoError("futex", errno(), { hint: "FUTEX_WAKE failed" });
  return result;
}

function closed(): ClosedError {
  return new ClosedError("wait", "view's memory");
}

/** An option every asynchronous wait takes. */
export interface AbortOptions {
  /**
   * Ends the wait when aborted: the promise rejects with the signal's
   * `reason`, and the thread or Worker blocked for it is woken and freed.
   */
  readonly signal?: AbortSignal;
}

/**
 * Checks an optional AbortSignal.
 *
 * @throws {TypeError} When it is not an AbortSignal.
 */
export function checkSignal(value: unknown, what = "signal"): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (typeof AbortSignal === "undefined" || !(value instanceof AbortSignal)) {
    throw new TypeError(`Cannot use ${what}: expected an AbortSignal, got ${typeName(value)}`);
  }
  return value;
}

/**
 * The longest single blocking call: a wait without a deadline is re-armed
 * this often, so that a thread whose wake was lost (the memory closed
 * before it entered the kernel) is freed even then.
 */
const SLICE_MS = 1000;
/** How often an aborted wait wakes its blocked thread again until the thread returns. */
const REWAKE_MS = 5;

/**
 * The core of `waitAsync` on a one-word view (checked by the caller): polls
 * for `pollMs`, then blocks on another thread. Rejects with ClosedError when
 * the memory is closed during the wait, and with the signal's reason when
 * `signal` aborts (within one event-loop turn while polling, at once while
 * blocked); either way the blocked thread is woken and freed.
 */
export function futexWaitAsync(
  word: Int32Array,
  expected: number,
  timeoutMs: number,
  pollMs: number = DEFAULT_POLL_MS,
  signal?: AbortSignal,
): Promise<WaitResult> {
  // No abort listener while polling (two EventTarget calls cost ~300-500 ns a
  // wait): each look checks the signal, so an abort settles within one
  // event-loop turn; the blocking phase listens, to wake its thread at once.
  return pollThenBlock(word, expected, timeoutMs, pollMs, signal);
}

function pollThenBlock(
  word: Int32Array,
  expected: number,
  timeoutMs: number,
  pollMs: number,
  signal: AbortSignal | undefined,
): Promise<WaitResult> {
  try {
    futexAvailable("wait");
    signal?.throwIfAborted();
    const read = (): number | undefined => (word.length === 0 ? undefined : Atomics.load(word, 0));
    const first = read();
    if (first === undefined) throw closed();
    if (first !== expected) return Promise.resolve("not-equal");
    if (timeoutMs === 0) return Promise.resolve("timed-out");
    const start = performance.now();
    const deadline = start + timeoutMs;
    if (pollMs <= 0) return blockCancellable(word, expected, deadline, read, signal);
    return poll(
      word,
      expected,
      Math.min(deadline, start + pollMs),
      signal,
      () =>
        performance.now() >= deadline
          ? "timed-out"
          : blockCancellable(word, expected, deadline, read, signal),
    );
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * Looks at the word once per macrotask until it leaves `expected` ("ok")
 * or `pollEnd` passes (then `after()`). One callback chain, not an awaited
 * promise per look: a look costs ~25% less, so a change is seen sooner.
 */
function poll(
  word: Int32Array,
  expected: number,
  pollEnd: number,
  signal: AbortSignal | undefined,
  after: () => WaitResult | Promise<WaitResult>,
): Promise<WaitResult> {
  return new Promise((resolve, reject) => {
    const look = (): void => {
      if (signal?.aborted === true) return reject(signal.reason);
      if (word.length === 0) return reject(closed());
      if (Atomics.load(word, 0) !== expected) return resolve("ok");
      if (performance.now() < pollEnd) return void scheduleMacrotask(look);
      try {
        resolve(after());
      } catch (error) {
        reject(error);
      }
    };
    scheduleMacrotask(look);
  });
}

/** Whether a blocking wait was given up (aborted or closed): its loop must not re-arm. */
interface Cancel {
  cancelled: boolean;
}

/**
 * Blocks on another thread until woken, the deadline, an abort or a close.
 * An abort or close settles the promise at once and wakes the thread
 * (every sleeper on the word wakes; futex waiters re-check anyway).
 */
function blockCancellable(
  word: Int32Array,
  expected: number,
  deadline: number,
  read: () => number | undefined,
  signal: AbortSignal | undefined,
): Promise<WaitResult> {
  return new Promise<WaitResult>((resolve, reject) => {
    const cancel: Cancel = { cancelled: false };
    let returned = false;
    const wake = (): void => {
      if (returned || word.length === 0) return;
      try {
        futexWake(word);
      } catch {
        // EFAULT: nothing mapped there any more; the slice ends the call.
      }
    };
    // Wakes again until the thread returns: a wake can come before it sleeps.
    const wakeUntilReturned = (): void => {
      wake();
      if (!returned && word.length !== 0) setTimeout(wakeUntilReturned, REWAKE_MS);
    };
    const giveUp = (error: unknown): void => {
      if (cancel.cancelled) return;
      cancel.cancelled = true;
      cleanup();
      reject(error);
    };
    const onAbort = (): void => {
      giveUp(signal!.reason);
      wakeUntilReturned();
    };
    // Runs while the memory is still mapped: the one moment a wake can reach the thread.
    const onClose = (): void => {
      giveUp(closed());
      wake();
    };
    const removeCloseListener = beforeRelease(word.buffer, onClose);
    const cleanup = (): void => {
      signal?.removeEventListener("abort", onAbort);
      removeCloseListener();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    block(word, expected, deadline, read, cancel).then(
      (result) => {
        returned = true;
        if (cancel.cancelled) return;
        cancel.cancelled = true;
        cleanup();
        resolve(result);
      },
      (error: unknown) => {
        returned = true;
        giveUp(error);
      },
    );
  });
}

/** The blocking phase in this runtime. */
async function block(
  word: Int32Array,
  expected: number,
  deadline: number,
  read: () => number | undefined,
  cancel: Cancel,
): Promise<WaitResult> {
  const address = addressOfWord(word);
  const syscall = unsafeLibc.syscall_nonblocking;
  if (syscall !== undefined) {
    return await blockOnWorkerThread(syscall, word, address, expected, deadline, read, cancel);
  }
  for (;;) {
    const sliceEnd = Math.min(deadline, performance.now() + SLICE_MS);
    const outcome = await blockInWorker(address, expected, sliceEnd);
    if (cancel.cancelled) return "timed-out";
    const now = read();
    if (now === undefined) throw closed();
    if (outcome === "busy") return await pollWithBackoff(expected, deadline, read, cancel);
    if (typeof outcome === "number") {
      throw new ErrnoError("futex", outcome, { hint: "FUTEX_WAIT failed" });
    }
    if (outcome !== "timed-out") return outcome;
    if (performance.now() >= deadline) return "timed-out";
    // The slice ended: wait again for the rest.
    if (now !== expected) return "ok";
  }
}

/** Throws the error of a futex wait that failed for a lasting reason (EFAULT, EINVAL). */
function probe(word: Int32Array, expected: number): void {
  syncTimespec ??= allocTimespec();
  writeTimespec(syncTimespec.view, 0);
  const result = unsafeLibc.syscall_futex(
    C.SYS_futex,
    word,
    C.FUTEX_WAIT,
    expected,
    syncTimespec.bytes,
    null,
    0,
  );
  if (result === 0) return;
  const code = errno();
  if (code !== E.EAGAIN && code !== E.ETIMEDOUT && code !== E.EINTR) {
    throw new ErrnoError("futex", code, { hint: "FUTEX_WAIT failed" });
  }
}

type NonblockingSyscall = NonNullable<typeof unsafeLibc.syscall_nonblocking>;

/** Deno: futex on a worker thread; the outcome from the word and the clock. */
async function blockOnWorkerThread(
  syscall: NonblockingSyscall,
  word: Int32Array,
  address: number,
  expected: number,
  deadline: number,
  read: () => number | undefined,
  cancel: Cancel,
): Promise<WaitResult> {
  // Its own timespec: the call runs while other waits start.
  const timespec = allocTimespec();
  for (;;) {
    writeTimespec(timespec.view, Math.min(deadline - performance.now(), SLICE_MS));
    const result = await syscall(
      C.SYS_futex,
      address,
      C.FUTEX_WAIT,
      expected,
      timespec.address,
      0,
      0,
    );
    if (cancel.cancelled) return "timed-out";
    const now = read();
    if (now === undefined) throw closed();
    if (result === 0) return "ok";
    if (performance.now() >= deadline) return "timed-out";
    // EAGAIN: the word changed after the wait began (it was checked equal), as a wake does.
    if (now !== expected) return "ok";
    // EINTR, the end of a slice, or a lasting error: a synchronous probe tells them apart.
    probe(word, expected);
  }
}

/** When every Worker is busy: poll with delays growing from 1 ms to 16 ms. */
async function pollWithBackoff(
  expected: number,
  deadline: number,
  read: () => number | undefined,
  cancel: Cancel,
): Promise<WaitResult> {
  let delay = 1;
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0) return "timed-out";
    await new Promise((resolve) => setTimeout(resolve, Math.min(delay, left)));
    if (cancel.cancelled) return "timed-out";
    const now = read();
    if (now === undefined) throw closed();
    if (now !== expected) return "ok";
    delay = Math.min(delay * 2, 16);
  }
}

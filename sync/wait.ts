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
 *   (a `nonblocking` FFI symbol); Bun's FFI has no such thing, so a small
 *   pool of Bun Workers blocks in futex and posts the outcome back. Both
 *   first poll the word for up to 0.5 ms from the event loop, since a
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
import { ErrnoError } from "../core/errors.ts";
import { backend, errno, unsafeLibc } from "../ffi/libc.ts";
import { typeName, unsafeAddressOf } from "../ffi/pointer.ts";
import { ClosedError } from "../core/errors.ts";
import { platform } from "../platform/mod.ts";
import { checkInteger } from "../core/_validate.ts";
import { nextMacrotask } from "../core/_runtime.ts";

const C = platform.constants;
const E = platform.errno;
const TIMESPEC = platform.structs.timespec;
const SEC = TIMESPEC.fields["tv_sec"]!;
const NSEC = TIMESPEC.fields["tv_nsec"]!;
// FUTEX_WAKE's count is an int; INT_MAX wakes everyone.
const WAKE_ALL = 0x7fffffff;

/**
 * How a wait ended, as `Atomics.wait` reports it: "ok" when woken (or,
 * for `waitAsync`, when the word changed after the wait began),
 * "not-equal" when the word did not hold the expected value when the call
 * was made, "timed-out" when the time ran out.
 */
export type WaitResult = "ok" | "not-equal" | "timed-out";

/** Options of {@linkcode waitAsync}. */
export interface WaitAsyncOptions {
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
 * The default polling window of {@linkcode waitAsync}, 0.5 ms: a little
 * more than a blocked thread's wake-up costs on the machines measured
 * (~100-300 us), so a wait costs at most about twice the better of the two
 * strategies, and two async peers answering each other stay in the fast
 * polling phase (with 0.1 ms, an async channel ping-pong took ~10x longer).
 */
export const DEFAULT_POLL_MS = 0.5;

function futexAvailable(action: string): void {
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

/** Writes a relative timeout into a struct timespec. */
function writeTimespec(cell: DataView, ms: number): void {
  const clamped = Math.max(0, ms);
  const sec = Math.floor(clamped / 1000);
  const nsec = Math.min(999_999_999, Math.floor((clamped - sec * 1000) * 1e6));
  if (SEC.size === 8) cell.setBigInt64(SEC.offset, BigInt(sec), true);
  else cell.setInt32(SEC.offset, Math.min(sec, 0x7fffffff), true);
  if (NSEC.size === 8) cell.setBigInt64(NSEC.offset, BigInt(nsec), true);
  else cell.setInt32(NSEC.offset, nsec, true);
}

/** A struct timespec in an ArrayBuffer (never moved by the GC), its DataView and address. */
function allocTimespec(): { bytes: Uint8Array; view: DataView; address: number } {
  const bytes = new Uint8Array(new ArrayBuffer(TIMESPEC.size));
  return { bytes, view: new DataView(bytes.buffer), address: unsafeAddressOf(bytes) };
}

let syncTimespec: { bytes: Uint8Array; view: DataView; address: number } | undefined;

// ArrayBuffer -> address of its first byte. Looking an address up costs
// ~0.8 us in Deno, so it is done once per buffer.
const baseAddresses = new WeakMap<ArrayBufferLike, number>();

/**
 * Internal: the address of a view's first element (for the calls that run
 * on other threads and take raw addresses).
 */
export function addressOfWord(word: Int32Array): number {
  let base = baseAddresses.get(word.buffer);
  if (base === undefined) {
    base = unsafeAddressOf(word) - word.byteOffset;
    baseAddresses.set(word.buffer, base);
  }
  return base + word.byteOffset;
}

/**
 * Internal: checks a view and an index and returns the one-word view of
 * `view[index]`.
 */
export function wordOf(view: unknown, index: unknown, action: string): Int32Array {
  if (!(view instanceof Int32Array)) {
    throw new TypeError(`Cannot ${action}: expected an Int32Array, got ${typeName(view)}`);
  }
  if (view.buffer.byteLength === 0) throw new ClosedError(action, "view's memory");
  const i = checkInteger(index, "index", 0, view.length - 1);
  return view.subarray(i, i + 1);
}

/**
 * Internal: `futex(&word[0], FUTEX_WAIT, expected, timeout)`, blocking the
 * thread; retries on EINTR with the time left.
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
      word,
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
 * Internal: `futex(&word[0], FUTEX_WAKE, count)`.
 *
 * @returns How many waiters were woken (in every process).
 * @throws {ErrnoError} `futex` failing (EFAULT for an unmapped address).
 */
export function futexWake(word: Int32Array, count: number = WAKE_ALL): number {
  futexAvailable("notify");
  const result = unsafeLibc.syscall_futex(C.SYS_futex, word, C.FUTEX_WAKE, count, null, null, 0);
  if (result === -1) throw new ErrnoError("futex", errno(), { hint: "FUTEX_WAKE failed" });
  return result;
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
 * Bun hands it to one of a pool of Workers that block in futex (idle
 * Workers don't keep the process alive). A pending wait keeps the process
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
 * @throws {ClosedError} When the view's memory is closed, before or during the wait.
 */
export function waitAsync(
  view: Int32Array,
  index: number,
  expected: number,
  timeoutMs?: number,
  options?: WaitAsyncOptions,
): Promise<WaitResult> {
  const word = wordOf(view, index, "wait");
  const value = checkWord(expected, "expected");
  const timeout = checkTimeout(timeoutMs);
  const pollMs = checkTimeout(options?.pollMs ?? DEFAULT_POLL_MS, "pollMs");
  return futexWaitAsync(word, value, timeout, pollMs);
}

const immediate = nextMacrotask;

function closed(): ClosedError {
  return new ClosedError("wait", "view's memory");
}

/**
 * Internal: the core of {@linkcode waitAsync} on a one-word view (checked
 * by the caller).
 */
export async function futexWaitAsync(
  word: Int32Array,
  expected: number,
  timeoutMs: number,
  pollMs: number = DEFAULT_POLL_MS,
): Promise<WaitResult> {
  futexAvailable("wait");
  const read = (): number | undefined => (word.length === 0 ? undefined : Atomics.load(word, 0));
  const start = performance.now();
  const deadline = start + timeoutMs;
  const first = read();
  if (first === undefined) throw closed();
  if (first !== expected) return "not-equal";
  if (timeoutMs === 0) return "timed-out";
  if (pollMs > 0) {
    const pollEnd = Math.min(deadline, start + pollMs);
    while (performance.now() < pollEnd) {
      await immediate();
      const now = read();
      if (now === undefined) throw closed();
      if (now !== expected) return "ok";
    }
    if (performance.now() >= deadline) return "timed-out";
  }
  const address = addressOfWord(word);
  return backend.nonblocking
    ? await blockOnWorkerThread(word, address, expected, deadline, read)
    : await blockInWorker(address, expected, deadline, read);
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

type NonblockingSyscall = (...args: number[]) => Promise<number>;

/** Deno: futex on a worker thread; the outcome from the word and the clock. */
async function blockOnWorkerThread(
  word: Int32Array,
  address: number,
  expected: number,
  deadline: number,
  read: () => number | undefined,
): Promise<WaitResult> {
  const syscall = (unsafeLibc as unknown as { syscall_nonblocking: NonblockingSyscall })
    .syscall_nonblocking;
  // Its own timespec: the call runs while other waits start.
  const timespec = deadline === Infinity ? undefined : allocTimespec();
  for (;;) {
    if (timespec !== undefined) writeTimespec(timespec.view, deadline - performance.now());
    const result = await syscall(
      C.SYS_futex,
      address,
      C.FUTEX_WAIT,
      expected,
      timespec?.address ?? 0,
      0,
      0,
    );
    const now = read();
    if (now === undefined) throw closed();
    if (result === 0) return "ok";
    if (performance.now() >= deadline) return "timed-out";
    // EAGAIN: the word changed after the wait began (it was checked equal), as a wake does.
    if (now !== expected) return "ok";
    // EINTR or a lasting error: a synchronous probe tells them apart.
    probe(word, expected);
  }
}

// --- Bun: a pool of Workers blocking in futex

/** The Worker interface as Bun has it (ref/unref are Bun's). */
interface BunWorker {
  postMessage(message: unknown): void;
  terminate(): void;
  onmessage: ((event: MessageEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
  ref?(): void;
  unref?(): void;
}

interface Parked {
  readonly worker: BunWorker;
  settle: ((message: readonly [number, number]) => void) | null;
  fail: ((error: Error) => void) | null;
}

/** Most Workers blocked at once; further waits poll with backoff instead. */
const MAX_WORKERS = 32;
const idleWorkers: Parked[] = [];
let liveWorkers = 0;
let workerUrl: string | undefined;

// The Worker's source: plain JS, bound to libc by itself, reading its own
// errno (it is the thread that made the call).
function workerSource(): string {
  const config = {
    library: platform.libraries[0],
    errnoLocation: platform.errnoLocation,
    SYS_futex: C.SYS_futex,
    FUTEX_WAIT: C.FUTEX_WAIT,
    EAGAIN: E.EAGAIN,
    ETIMEDOUT: E.ETIMEDOUT,
    EINTR: E.EINTR,
    size: TIMESPEC.size,
    sec: SEC,
    nsec: NSEC,
  };
  return `
const ffi = require("bun:ffi");
const K = ${JSON.stringify(config)};
const lib = ffi.dlopen(K.library, {
  syscall: { args: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"], returns: "i64_fast" },
  [K.errnoLocation]: { args: [], returns: "u64_fast" },
});
const syscall = lib.symbols.syscall;
const errnoCell = new Int32Array(ffi.toArrayBuffer(lib.symbols[K.errnoLocation](), 0, 4));
const ts = new Uint8Array(new ArrayBuffer(K.size));
const tsView = new DataView(ts.buffer);
const tsAddress = ffi.ptr(ts);
function put(field, value) {
  if (field.size === 8) tsView.setBigInt64(field.offset, BigInt(value), true);
  else tsView.setInt32(field.offset, value, true);
}
self.onmessage = (event) => {
  const [address, expected, timeoutMs] = event.data;
  const deadline = timeoutMs < 0 ? Infinity : performance.now() + timeoutMs;
  for (;;) {
    let timeout = 0;
    if (deadline !== Infinity) {
      const ms = Math.max(0, deadline - performance.now());
      const sec = Math.floor(ms / 1000);
      put(K.sec, sec);
      put(K.nsec, Math.min(999999999, Math.floor((ms - sec * 1000) * 1e6)));
      timeout = tsAddress;
    }
    const r = syscall(K.SYS_futex, address, K.FUTEX_WAIT, expected, timeout, 0, 0);
    if (r === 0) return postMessage([0, 0]);
    const code = errnoCell[0];
    if (code === K.EAGAIN) return postMessage([1, 0]);
    if (code === K.ETIMEDOUT) return postMessage([2, 0]);
    if (code !== K.EINTR) return postMessage([3, code]);
  }
};
`;
}

function spawnWorker(): Parked | undefined {
  const WorkerClass = (globalThis as { Worker?: new (url: string) => BunWorker }).Worker;
  if (WorkerClass === undefined) return undefined;
  workerUrl ??= URL.createObjectURL(
    new Blob([workerSource()], { type: "application/javascript" }),
  );
  const parked: Parked = { worker: new WorkerClass(workerUrl), settle: null, fail: null };
  parked.worker.onmessage = (event: MessageEvent) => {
    const settle = parked.settle;
    parked.settle = null;
    parked.fail = null;
    settle?.(event.data as [number, number]);
  };
  parked.worker.onerror = (event: Event) => {
    const fail = parked.fail;
    parked.settle = null;
    parked.fail = null;
    retire(parked);
    fail?.(
      new Error(`Cannot wait: the futex Worker failed: ${String((event as ErrorEvent).message)}`),
    );
  };
  liveWorkers++;
  return parked;
}

function retire(parked: Parked): void {
  const at = idleWorkers.indexOf(parked);
  if (at >= 0) idleWorkers.splice(at, 1);
  liveWorkers--;
  parked.worker.terminate();
}

function takeWorker(): Parked | undefined {
  const parked = idleWorkers.pop() ?? (liveWorkers < MAX_WORKERS ? spawnWorker() : undefined);
  parked?.worker.ref?.();
  return parked;
}

function parkWorker(parked: Parked): void {
  // An idle Worker must not keep the process alive.
  parked.worker.unref?.();
  idleWorkers.push(parked);
}

/** Bun: one futex wait in a pooled Worker. */
async function blockInWorker(
  address: number,
  expected: number,
  deadline: number,
  read: () => number | undefined,
): Promise<WaitResult> {
  const parked = takeWorker();
  if (parked === undefined) return await pollWithBackoff(expected, deadline, read);
  const timeout = deadline === Infinity ? -1 : Math.max(0, deadline - performance.now());
  const [outcome, code] = await new Promise<readonly [number, number]>((resolve, reject) => {
    parked.settle = resolve;
    parked.fail = reject;
    parked.worker.postMessage([address, expected, timeout]);
  });
  parkWorker(parked);
  if (read() === undefined) throw closed();
  switch (outcome) {
    case 0:
      return "ok";
    case 1:
      // EAGAIN: the word changed after the wait began (it was checked equal).
      return "ok";
    case 2:
      return "timed-out";
    default:
      throw new ErrnoError("futex", code, { hint: "FUTEX_WAIT failed" });
  }
}

/** When every Worker is busy: poll with delays growing from 1 ms to 16 ms. */
async function pollWithBackoff(
  expected: number,
  deadline: number,
  read: () => number | undefined,
): Promise<WaitResult> {
  let delay = 1;
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0) return "timed-out";
    await new Promise((resolve) => setTimeout(resolve, Math.min(delay, left)));
    const now = read();
    if (now === undefined) throw closed();
    if (now !== expected) return "ok";
    delay = Math.min(delay * 2, 16);
  }
}

/**
 * Internal: the `count` 32-bit words at the start of a view, as an
 * Int32Array over the same memory, for a layout that needs `count` words.
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
 * Internal: checks that `words[index]` holds the `magic` word an initialised
 * layout starts with, so attaching to memory nobody initialised fails
 * clearly instead of misreading it.
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

/** Internal: how many futex Workers exist and how many are idle (Bun; for tests). */
export function futexWorkerCounts(): { live: number; idle: number } {
  return { live: liveWorkers, idle: idleWorkers.length };
}

/**
 * Internal: blocks until `attempt()` succeeds or `deadline` (a
 * `performance.now()` time) passes, sleeping on `word` while it holds 0 and
 * counting this sleeper in `words[waiters]` so that wakers know to call
 * futex. Returns whether `attempt()` succeeded.
 */
export function waitUntil(
  attempt: () => boolean,
  words: Int32Array,
  waiters: number,
  word: Int32Array,
  deadline: number,
): boolean {
  for (;;) {
    if (attempt()) return true;
    const left = deadline - performance.now();
    if (left <= 0) return false;
    Atomics.add(words, waiters, 1);
    try {
      futexWait(word, 0, left);
    } finally {
      Atomics.sub(words, waiters, 1);
    }
  }
}

/** Internal: the asynchronous twin of {@linkcode waitUntil}. */
export async function waitUntilAsync(
  attempt: () => boolean,
  words: Int32Array,
  waiters: number,
  word: Int32Array,
  deadline: number,
  pollMs: number,
): Promise<boolean> {
  for (;;) {
    if (attempt()) return true;
    const left = deadline - performance.now();
    if (left <= 0) return false;
    Atomics.add(words, waiters, 1);
    try {
      await futexWaitAsync(word, 0, left, pollMs);
    } finally {
      // The memory may have been closed during the wait (words detached).
      if (words.length !== 0) Atomics.sub(words, waiters, 1);
    }
  }
}

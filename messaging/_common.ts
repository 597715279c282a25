/**
 * Internal: what the queue, the broadcast ring and the loan pool share:
 * the error class, view and option checks, the liveness check of the
 * process an owner id names, and the blocking loops (spin, then futex).
 *
 * @module
 */
import { ClosedError } from "../core/errors.ts";
import { checkInteger, checkOptions } from "../core/_validate.ts";
import { typeName } from "../ffi/pointer.ts";
import {
  checkSignal,
  checkTimeout,
  DEFAULT_POLL_MS,
  futexWait,
  futexWaitAsync,
  futexWake,
} from "../sync/wait.ts";
import { rememberFutexWord } from "../sync/_futex.ts";
import { ID_MASK, isOwnerGone, isPlausiblePid, ownerId, PID_MASK } from "../sync/_owner.ts";

/** Why a {@linkcode MessagingError} was thrown. */
export type MessagingErrorCode = "CORRUPTED" | "CLOSED" | "ROLE_TAKEN" | "NOT_HANDED_OFF";

/**
 * A queue, broadcast ring or loan pool can't be used: a word in its shared
 * memory breaks the layout's rules (CORRUPTED, naming the word and the
 * value; the object then refuses further use), it was ended (CLOSED),
 * another live process is its publisher (ROLE_TAKEN), or a loan token names
 * a block nobody handed off (NOT_HANDED_OFF).
 */
export class MessagingError extends Error {
  /** The reason. */
  readonly code: MessagingErrorCode;
  /** For CORRUPTED: the word that broke the rules ("tail", "seq of slot 3"). */
  readonly word: string | undefined;
  /** For CORRUPTED: the value it held. */
  readonly value: number | undefined;

  /**
   * Builds the error.
   *
   * @param code The reason.
   * @param message What happened, starting "Cannot ...".
   * @param word For CORRUPTED: the word's name.
   * @param value For CORRUPTED: its value.
   */
  constructor(code: MessagingErrorCode, message: string, word?: string, value?: number) {
    super(message);
    this.name = "MessagingError";
    this.code = code;
    this.word = word;
    this.value = value;
  }
}

/** The error for a word that breaks the layout's rules. */
export function corrupted(
  what: string,
  action: string,
  word: string,
  value: number,
  rule: string,
): MessagingError {
  return new MessagingError(
    "CORRUPTED",
    `Cannot ${action}: the ${what} is corrupted: ${word} is ${value}, but ${rule}; it refuses further use`,
    word,
    value,
  );
}

/** Checks a view a layout goes in (8-byte aligned, at least `min` bytes); returns its bytes. */
export function checkView(view: unknown, action: string, min: number): Uint8Array {
  if (!ArrayBuffer.isView(view)) {
    throw new TypeError(
      `Cannot ${action}: expected a TypedArray or DataView over shared memory, got ${
        typeName(view)
      }`,
    );
  }
  if (view.buffer.byteLength === 0) throw new ClosedError(action, "view's memory");
  if (view.byteOffset % 8 !== 0) {
    throw new RangeError(
      `Cannot ${action} at byteOffset ${view.byteOffset}: it must be a multiple of 8`,
    );
  }
  if (view.byteLength < min) {
    throw new RangeError(`Cannot ${action} in ${view.byteLength} bytes: it needs ${min}`);
  }
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** Checks a message to send; returns its bytes. */
export function messageBytes(message: unknown, max: number, action: string): Uint8Array {
  if (!ArrayBuffer.isView(message)) {
    throw new TypeError(
      `Cannot ${action}: expected a TypedArray or DataView, got ${typeName(message)}`,
    );
  }
  if (message.byteLength > max) {
    throw new RangeError(
      `Cannot ${action} a message of ${message.byteLength} bytes: a slot carries at most ${max}`,
    );
  }
  // A detached view reads as empty: refuse it rather than send nothing.
  if (message.byteLength === 0 && (message.buffer as { detached?: boolean }).detached === true) {
    throw new TypeError(`Cannot ${action}: the message's ArrayBuffer is detached`);
  }
  return message instanceof Uint8Array
    ? message
    : new Uint8Array(message.buffer, message.byteOffset, message.byteLength);
}

/** Messages up to this many bytes are copied word by word (no allocation, no builtin call). */
const WORD_COPY_MAX = 256;

/**
 * Copies messages between a ring's words and callers' buffers. Small ones
 * go word by word through an Int32Array view of the caller's buffer, kept
 * for the next call with the same buffer (a hot loop reuses one): a
 * `subarray` per message costs more than the copy itself. The views are
 * fields of the copier itself: behind a helper object's method call, V8
 * took a third longer over a 64-byte copy from memory another core wrote.
 */
export class Copier {
  readonly #words: Int32Array;
  readonly #bytes: Uint8Array;
  #from: Uint8Array | undefined;
  #fromWords: Int32Array = new Int32Array(0);
  #to: Uint8Array | undefined;
  #toWords: Int32Array = new Int32Array(0);

  constructor(words: Int32Array, bytes: Uint8Array) {
    this.#words = words;
    this.#bytes = bytes;
  }

  /** Copies `message` to byte `at` (4-aligned) of the ring. */
  in(message: Uint8Array, at: number): void {
    const length = message.length;
    const from = this.#fromWords;
    const n = length >> 2;
    // Small enough for V8 to inline into a caller's receive or publish path.
    if (this.#from !== message || (length & 3) !== 0 || length > WORD_COPY_MAX || from.length < n) {
      this.#inOther(message, at);
      return;
    }
    const words = this.#words;
    const w = at >> 2;
    for (let k = 0; k < n; k++) words[w + k] = from[k]!;
  }

  /** `in` for a new buffer, a length not a multiple of 4, or a long message. */
  #inOther(message: Uint8Array, at: number): void {
    const length = message.length;
    const n = length >> 2;
    if (this.#from !== message) this.#fromWords = wordsOf(this.#from = message);
    const from = this.#fromWords;
    // Detached or shrunk since (or not 4-aligned): set() copies what is there, or throws.
    if (length > WORD_COPY_MAX || from.length < n) {
      this.#bytes.set(message, at);
      return;
    }
    const words = this.#words;
    const w = at >> 2;
    for (let k = 0; k < n; k++) words[w + k] = from[k]!;
    for (let k = n << 2; k < length; k++) this.#bytes[at + k] = message[k]!;
  }

  /** Copies `length` bytes from byte `at` (4-aligned) of the ring to the start of `into`. */
  out(into: Uint8Array, at: number, length: number): void {
    const to = this.#toWords;
    const n = length >> 2;
    if (this.#to !== into || (length & 3) !== 0 || length > WORD_COPY_MAX || to.length < n) {
      this.#outOther(into, at, length);
      return;
    }
    const words = this.#words;
    const w = at >> 2;
    for (let k = 0; k < n; k++) to[k] = words[w + k]!;
  }

  /** `out` for a new buffer, a length not a multiple of 4, or a long message. */
  #outOther(into: Uint8Array, at: number, length: number): void {
    const n = length >> 2;
    if (this.#to !== into) this.#toWords = wordsOf(this.#to = into);
    const to = this.#toWords;
    if (length > WORD_COPY_MAX || to.length < n) {
      into.set(this.#bytes.subarray(at, at + length));
      return;
    }
    const words = this.#words;
    const w = at >> 2;
    for (let k = 0; k < n; k++) to[k] = words[w + k]!;
    for (let k = n << 2; k < length; k++) into[k] = this.#bytes[at + k]!;
  }
}

/** `buffer` as whole words; none when it is not 4-aligned. */
function wordsOf(buffer: Uint8Array): Int32Array {
  if ((buffer.byteOffset & 3) !== 0) return new Int32Array(0);
  return new Int32Array(buffer.buffer, buffer.byteOffset, buffer.length >> 2);
}

/** The shape given to `init`: how many slots and the largest message. */
export interface SlotShape {
  /** Number of slots: a power of two from 2 to 2^20. */
  readonly slots: number;
  /** Largest message in bytes, 0 to 2^24. */
  readonly maxMessage: number;
}

/** Checks a slot shape; returns slots, and slot bytes (header + max rounded up to 64). */
export function checkShape(
  shape: unknown,
  slotHeader: number,
): { slots: number; slotBytes: number } {
  if (typeof shape !== "object" || shape === null) {
    throw new TypeError(`Cannot use shape: expected { slots, maxMessage }, got ${typeName(shape)}`);
  }
  const { slots, maxMessage } = shape as SlotShape;
  checkInteger(slots, "slots", 2, 1 << 20);
  if ((slots & (slots - 1)) !== 0) {
    throw new RangeError(`Cannot use slots ${slots}: expected a power of two`);
  }
  const max = checkInteger(maxMessage, "maxMessage", 0, 1 << 24);
  return { slots, slotBytes: Math.ceil((slotHeader + max) / 64) * 64 };
}

/** Options shared by the queue, the broadcast ring and the loan pool. */
export interface WaitSettings {
  /** How long a blocking call polls before sleeping in futex, ms (default 0.05). */
  readonly spinMs?: number;
  /** Polling window of the async calls, as in `waitAsync` (default DEFAULT_POLL_MS). */
  readonly pollMs?: number;
  /**
   * How often a waiter looks whether a process holding what it waits for
   * is gone, ms, more than 0 (default 50).
   */
  readonly checkIntervalMs?: number;
}

/** Checked wait settings. */
export interface Settings {
  readonly spinMs: number;
  readonly pollMs: number;
  readonly checkIntervalMs: number;
}

/** Checks the wait settings before anything is written. */
export function checkSettings(options: WaitSettings | undefined): Settings {
  const o = checkOptions(options, "options");
  const checkIntervalMs = checkTimeout(o.checkIntervalMs ?? 50, "checkIntervalMs");
  if (checkIntervalMs === 0 || checkIntervalMs === Infinity) {
    throw new RangeError("Cannot use checkIntervalMs: expected more than 0, finite");
  }
  return {
    spinMs: checkTimeout(o.spinMs ?? 0.05, "spinMs"),
    pollMs: checkTimeout(o.pollMs ?? DEFAULT_POLL_MS, "pollMs"),
    checkIntervalMs,
  };
}

/** The options of the asynchronous calls. */
export interface SignalOptions {
  /** Ends the wait: the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** Checks `{ signal }`. */
export function signalOf(options: SignalOptions | undefined): AbortSignal | undefined {
  return checkSignal(checkOptions(options, "options").signal, "options.signal");
}

/** This process's owner id (pid | start-time tag << 22), as the locks'. */
export function selfId(): number {
  return ownerId();
}

/** Whether an owner id word is well-formed: bits 30-31 clear, a plausible pid. */
export function isValidId(id: number): boolean {
  return (id & ~ID_MASK) === 0 && isPlausiblePid(id & PID_MASK);
}

/**
 * Liveness of the processes behind owner ids, looked up at most once per
 * interval per id: `kill(pid, 0)`, then /proc (zombie, reused pid).
 */
export class Liveness {
  readonly #intervalMs: number;
  readonly #seen = new Map<number, { at: number; gone: boolean }>();

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  /** Whether the process `id` names is gone. */
  gone(id: number): boolean {
    // Date.now: half of performance.now's cost on Deno (~50 vs ~100 ns), and an
    // empty receive asks on every call. A clock set back looks again at once.
    const now = Date.now();
    const known = this.#seen.get(id);
    if (known !== undefined && now >= known.at && now - known.at < this.#intervalMs) {
      return known.gone;
    }
    const gone = id !== selfId() && isOwnerGone(id, true);
    if (this.#seen.size > 64) this.#seen.clear();
    this.#seen.set(id, { at: now, gone });
    return gone;
  }
}

/** "Not now, but look again soon": a slot is held by another process mid-operation. */
export const BUSY: unique symbol = Symbol("busy");
export type Busy = typeof BUSY;

/** A futex word others bump on progress, and the flag index telling them someone sleeps. */
export interface WaitTarget {
  /** The header, as Int32Array. */
  readonly header: Int32Array;
  /** One-word view of the futex word. */
  readonly word: Int32Array;
  /** Index (in header) of the sleepers' flag. */
  readonly flag: number;
}

/** A one-word view of `bytes` at word `index`, the futex word of a wait target. */
export function futexWordAt(bytes: Uint8Array, index: number): Int32Array {
  const word = new Int32Array(bytes.buffer, bytes.byteOffset + index * 4, 1);
  rememberFutexWord(word);
  return word;
}

/** After bumping a target's word: wakes its sleepers if any announced themselves. */
export function wakeTarget(header: Int32Array, word: Int32Array, flag: number): void {
  if (header[flag] !== 0 && Atomics.exchange(header, flag, 0) !== 0) futexWake(word);
}

/**
 * Runs `op` until it gives a result (not null or BUSY) or the time runs
 * out (null): polls for `spinMs`, then announces itself on the target's
 * flag and sleeps in futex until the word moves. Sleeps last at most
 * `sliceMs` (1 ms after BUSY), so `op` can look at dead holders.
 */
export function runSync<T>(
  target: () => WaitTarget,
  op: () => T | null | Busy,
  timeoutMs: number,
  spinMs: number,
  sliceMs: number,
): T | null {
  const start = performance.now();
  const deadline = start + timeoutMs;
  for (;;) {
    const t = target();
    // Unmapped memory: op() throws ClosedError before anything touches it.
    const seen = t.word.length === 0 ? 0 : Atomics.load(t.word, 0);
    const result = op();
    if (result !== null && result !== BUSY) return result;
    const now = performance.now();
    if (now >= deadline) return null;
    if (now - start < spinMs) continue;
    Atomics.store(t.header, t.flag, 1);
    if (Atomics.load(t.word, 0) !== seen) continue;
    futexWait(t.word, seen, Math.min(deadline - now, result === BUSY ? 1 : sliceMs));
  }
}

/** The asynchronous twin of {@linkcode runSync}; an abort rejects with the signal's reason. */
export async function runAsync<T>(
  target: () => WaitTarget,
  op: () => T | null | Busy,
  timeoutMs: number,
  pollMs: number,
  sliceMs: number,
  signal: AbortSignal | undefined,
): Promise<T | null> {
  signal?.throwIfAborted();
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const t = target();
    // Unmapped memory: op() throws ClosedError before anything touches it.
    const seen = t.word.length === 0 ? 0 : Atomics.load(t.word, 0);
    const result = op();
    if (result !== null && result !== BUSY) return result;
    const now = performance.now();
    if (now >= deadline) return null;
    Atomics.store(t.header, t.flag, 1);
    if (Atomics.load(t.word, 0) !== seen) continue;
    const slice = Math.min(deadline - now, result === BUSY ? 1 : sliceMs);
    await futexWaitAsync(t.word, seen, slice, pollMs, signal);
    signal?.throwIfAborted();
  }
}

/**
 * An iterable whose `for await` receives with `receive(options)` until the
 * end; `options.signal` (checked now) ends it: the pending step rejects
 * with the signal's reason.
 */
export function iterable(
  options: SignalOptions | undefined,
  receive: (options: SignalOptions | undefined) => Promise<Uint8Array | null | symbol>,
): AsyncIterable<Uint8Array, undefined> {
  signalOf(options);
  return { [Symbol.asyncIterator]: () => iterate(() => receive(options)) };
}

/** Lays out the `[Symbol.asyncIterator]` of a receiver. */
export function iterate<T>(
  next: () => Promise<T | null | symbol>,
): AsyncIterator<T, undefined> {
  const finished: IteratorReturnResult<undefined> = { done: true, value: undefined };
  // One `then` per message, made once: no async frame and no second await.
  const settle = (
    value: T | null | symbol,
  ): IteratorResult<T, undefined> | Promise<IteratorResult<T, undefined>> =>
    value === null
      ? next().then(settle)
      : typeof value === "symbol"
      ? finished
      : { done: false, value };
  return {
    next: (): Promise<IteratorResult<T, undefined>> => {
      try {
        return next().then(settle);
      } catch (error) {
        return Promise.reject(error);
      }
    },
    return: (): Promise<IteratorResult<T, undefined>> => Promise.resolve(finished),
  };
}

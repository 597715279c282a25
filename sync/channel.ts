/**
 * A single-producer single-consumer channel of variable-length messages in
 * a ring buffer in shared memory: one process sends, another receives,
 * with no copy on the receiving side and futex waits when there is nothing
 * to do.
 *
 * Messages are always contiguous: a message that does not fit before the
 * end of the ring is preceded by a padding marker and written at its start.
 * So `receive()` can hand out a view of the message in place, valid until
 * the next `receive()` or `release()`.
 *
 * Layout (offsets from the start of the view, which must be 8-byte aligned;
 * all words little-endian u32, positions in bytes from the data start):
 *
 * | offset | word              | written by | meaning                                      |
 * | ------ | ----------------- | ---------- | -------------------------------------------- |
 * | 0      | magic             | init       | {@linkcode CHANNEL_MAGIC} ("CHN1": version 1) |
 * | 4      | capacity          | init       | data bytes, a multiple of 8                  |
 * | 8      | dataOffset        | init       | 384: where the data starts                   |
 * | 12     | maxMessage        | init       | largest payload: capacity/2 rounded down to 8, minus 8 |
 * | 128    | tail              | producer   | write position (futex word of the consumer)  |
 * | 132    | consumerSleeping  | consumer   | 1 while the consumer may sleep on tail       |
 * | 136    | sent              | producer   | messages sent (wraps at 2^32)                |
 * | 256    | head              | consumer   | read position (futex word of the producer)   |
 * | 260    | producerSleeping  | producer   | 1 while the producer may sleep on head       |
 * | 264    | received          | consumer   | messages received (wraps at 2^32)            |
 * | 384    | data              |            | records                                      |
 *
 * Tail and head are 128 bytes apart (two cache lines, so that the adjacent
 * line prefetcher does not pair them). A record is a u32 payload length,
 * 4 reserved bytes, then the payload, padded to a multiple of 8; a length of
 * 0xffffffff is the padding marker: the next record is at position 0. The
 * ring is empty when head == tail, and a writer never makes tail equal head.
 *
 * @example A producer and a consumer (here in one process)
 * ```ts
 * import { Channel, Mapping } from "@shmkit/shmkit";
 * using mapping = Mapping.anonymous(64 * 1024);
 * const producer = Channel.init(mapping.view());
 * const consumer = Channel.from(mapping.view());
 * producer.send(new TextEncoder().encode("hello"));
 * const message = consumer.receive(1000); // a view into the ring
 * console.log(new TextDecoder().decode(message!)); // "hello"
 * consumer.release();
 * ```
 *
 * @module
 */
import { checkMagic, checkTimeout, DEFAULT_POLL_MS, futexWait, futexWaitAsync } from "./wait.ts";
import { ClosedError } from "../core/errors.ts";
import { checkInteger, checkOptions } from "../core/_validate.ts";
import {
  CAPACITY,
  CHANNEL_HEADER_BYTES,
  CHANNEL_MAGIC,
  checkView,
  CONSUMER_SLEEPING,
  DATA_OFFSET,
  HEAD,
  MAGIC,
  MAX_CAPACITY,
  MAX_MESSAGE,
  maxMessageFor,
  messageBytes,
  MIN_CAPACITY,
  PRODUCER_SLEEPING,
  RECEIVED,
  SENT,
  TAIL,
} from "./_channel_layout.ts";
import { Ring } from "./_channel_ring.ts";
import { spinWhile } from "./_channel_wait.ts";

export { CHANNEL_HEADER_BYTES, CHANNEL_MAGIC } from "./_channel_layout.ts";

/** Options of {@linkcode Channel.init} and {@linkcode Channel.from}. */
export interface ChannelOptions {
  /**
   * How long a blocking `send`/`receive` polls before sleeping in futex, in
   * milliseconds (default 0.02). Polling sees a change within
   * nanoseconds; sleeping costs a wake-up (tens of microseconds) but no
   * CPU. Infinity polls for as long as the wait lasts.
   */
  readonly spinMs?: number;
  /** Polling window of the async calls, as in `waitAsync` (default DEFAULT_POLL_MS). */
  readonly pollMs?: number;
}

/** What a wait loop does next: wait for the word to leave `expected`, spinning or asleep. */
class Wait {
  constructor(
    readonly expected: number,
    readonly timeoutMs: number,
    readonly sleep: boolean,
  ) {}
}

// "Look again at once": the word moved while announcing the sleep.
const RETRY = new Wait(0, 0, false);

/** One blocking call in progress. */
interface Attempt {
  readonly deadline: number;
  /** How long to wait without sleeping first (spinMs, or pollMs when async). */
  readonly spinMs: number;
  spun: boolean;
  /** This end's sleeping flag is set and must be cleared. */
  sleeping: boolean;
}

/**
 * One end (or both) of a single-producer single-consumer channel in shared
 * memory (see the module doc for the layout). One process calls
 * {@linkcode Channel.init}, the other {@linkcode Channel.from}; then one of
 * them only sends and the other only receives. Nothing enforces that: two
 * senders (or two receivers) corrupt the ring.
 */
export class Channel {
  readonly #ring: Ring;
  readonly #spinMs: number;
  readonly #pollMs: number;

  private constructor(bytes: Uint8Array, options: ChannelOptions | undefined) {
    const o = checkOptions(options, "options");
    this.#spinMs = checkTimeout(o.spinMs ?? 0.02, "spinMs");
    this.#pollMs = checkTimeout(o.pollMs ?? DEFAULT_POLL_MS, "pollMs");
    this.#ring = new Ring(bytes);
  }

  /**
   * Bytes a channel needs for a ring of `capacity` data bytes: the header
   * plus the capacity rounded up to 8.
   *
   * @example
   * ```ts
   * import { Channel } from "@shmkit/shmkit";
   * console.log(Channel.byteLengthFor(1 << 20)); // 1048960
   * ```
   */
  static byteLengthFor(capacity: number): number {
    const c = checkInteger(capacity, "capacity", MIN_CAPACITY, MAX_CAPACITY);
    return CHANNEL_HEADER_BYTES + ((c + 7) & ~7);
  }

  /**
   * Lays a new, empty channel out in `view` (the header, then a ring of
   * every whole 8 bytes left, at most 1 GiB) and attaches to it.
   *
   * @param view A TypedArray or DataView over shared memory, 8-byte aligned, 448 bytes or more.
   * @throws {TypeError} When `view` is not a TypedArray or DataView.
   * @throws {RangeError} When it is misaligned or too short.
   */
  static init(view: ArrayBufferView, options?: ChannelOptions): Channel {
    const bytes = checkView(view, "place a channel");
    const capacity = Math.min(
      MAX_CAPACITY,
      Math.floor((bytes.byteLength - CHANNEL_HEADER_BYTES) / 8) * 8,
    );
    const header = new Int32Array(bytes.buffer, bytes.byteOffset, CHANNEL_HEADER_BYTES / 4);
    Atomics.store(header, MAGIC, 0);
    header.fill(0);
    Atomics.store(header, CAPACITY, capacity);
    Atomics.store(header, DATA_OFFSET, CHANNEL_HEADER_BYTES);
    Atomics.store(header, MAX_MESSAGE, maxMessageFor(capacity));
    Atomics.store(header, MAGIC, CHANNEL_MAGIC);
    return new Channel(bytes, options);
  }

  /**
   * Attaches to a channel laid out with {@linkcode Channel.init}.
   *
   * @throws {TypeError} When `view` is not a TypedArray or DataView.
   * @throws {RangeError} When it is misaligned, or shorter than the channel's header says.
   * @throws {Error} When the memory holds no initialised channel.
   */
  static from(view: ArrayBufferView, options?: ChannelOptions): Channel {
    const bytes = checkView(view, "attach to a channel");
    const header = new Int32Array(bytes.buffer, bytes.byteOffset, CHANNEL_HEADER_BYTES / 4);
    checkMagic(header, MAGIC, CHANNEL_MAGIC, "a channel", "Channel.init");
    const capacity = Atomics.load(header, CAPACITY);
    const offset = Atomics.load(header, DATA_OFFSET);
    if (
      offset !== CHANNEL_HEADER_BYTES || capacity < MIN_CAPACITY || capacity % 8 !== 0 ||
      capacity > MAX_CAPACITY || Atomics.load(header, MAX_MESSAGE) !== maxMessageFor(capacity)
    ) {
      throw new Error(
        `Cannot attach to a channel: its header is corrupt (capacity ${capacity}, data offset ${offset})`,
      );
    }
    if (bytes.byteLength < CHANNEL_HEADER_BYTES + capacity) {
      throw new RangeError(
        `Cannot attach to a channel in ${bytes.byteLength} bytes: its ring needs ${
          CHANNEL_HEADER_BYTES + capacity
        }`,
      );
    }
    return new Channel(bytes, options);
  }

  /** Data bytes in the ring. */
  get capacity(): number {
    return this.#ring.capacity;
  }

  /** The largest message, in bytes: about half the capacity. */
  get maxMessageBytes(): number {
    return this.#ring.maxMessage;
  }

  /**
   * Messages sent and not yet released by the consumer, as far as the
   * consumer has published its releases (see `release()`).
   */
  get pending(): number {
    const header = this.#live("read the channel");
    return (Atomics.load(header, SENT) - Atomics.load(header, RECEIVED)) >>> 0;
  }

  #live(action: string): Int32Array {
    const header = this.#ring.header;
    if (header.length === 0) throw new ClosedError(action, "channel's memory");
    return header;
  }

  // --- the wait loops: one step function, four thin loops

  /**
   * One pass of a blocking call: `op`'s result, null (timed out), or what
   * to wait for. `producer` tells which end waits: the producer for head to
   * move (room), the consumer for tail (a message).
   */
  #step<T>(attempt: Attempt, producer: boolean, op: () => T | null): T | null | Wait {
    const header = this.#live(producer ? "send" : "receive");
    const ring = this.#ring;
    const flag = producer ? PRODUCER_SLEEPING : CONSUMER_SLEEPING;
    if (attempt.sleeping) {
      attempt.sleeping = false;
      Atomics.store(header, flag, 0);
    }
    const result = op();
    if (result !== null) return result;
    const left = attempt.deadline - performance.now();
    if (left <= 0) return null;
    const expected = producer ? ring.seenHead : ring.head;
    if (!attempt.spun) {
      attempt.spun = true;
      if (attempt.spinMs > 0) return new Wait(expected, Math.min(left, attempt.spinMs), false);
    }
    // Announce the sleep, then look again: the other end either sees the
    // flag or its move is seen here (both sides order store-then-load).
    Atomics.exchange(header, flag, 1);
    if (Atomics.load(header, producer ? HEAD : TAIL) !== expected) {
      Atomics.store(header, flag, 0);
      return RETRY;
    }
    attempt.sleeping = true;
    return new Wait(expected, left, true);
  }

  /** The synchronous loop around `#step`: spins, then sleeps in futex. */
  #run<T>(producer: boolean, op: () => T | null, timeout: number): T | null {
    const ring = this.#ring;
    const attempt: Attempt = {
      deadline: performance.now() + timeout,
      spinMs: this.#spinMs,
      spun: false,
      sleeping: false,
    };
    try {
      for (;;) {
        const step = this.#step(attempt, producer, op);
        if (!(step instanceof Wait)) return step;
        if (step === RETRY) continue;
        if (step.sleep) {
          futexWait(producer ? ring.headWord : ring.tailWord, step.expected, step.timeoutMs);
        } else spinWhile(ring.header, producer ? HEAD : TAIL, step.expected, step.timeoutMs);
      }
    } finally {
      this.#wake(attempt, producer);
    }
  }

  /** The asynchronous loop around `#step`: polls from the event loop, then blocks on another thread. */
  async #runAsync<T>(producer: boolean, op: () => T | null, timeout: number): Promise<T | null> {
    const ring = this.#ring;
    const attempt: Attempt = {
      deadline: performance.now() + timeout,
      spinMs: this.#pollMs,
      spun: false,
      sleeping: false,
    };
    const word = producer ? ring.headWord : ring.tailWord;
    try {
      for (;;) {
        const step = this.#step(attempt, producer, op);
        if (!(step instanceof Wait)) return step;
        if (step === RETRY) continue;
        await futexWaitAsync(word, step.expected, step.timeoutMs, step.sleep ? 0 : this.#pollMs);
      }
    } finally {
      this.#wake(attempt, producer);
    }
  }

  /** Clears this end's sleeping flag if a wait ended by an exception left it set. */
  #wake(attempt: Attempt, producer: boolean): void {
    const header = this.#ring.header;
    if (!attempt.sleeping || header.length === 0) return;
    Atomics.store(header, producer ? PRODUCER_SLEEPING : CONSUMER_SLEEPING, 0);
  }

  // --- producer

  /**
   * Reserves room for a message of `length` bytes and returns a view to
   * write it in place; `commit()` sends it. Returns null when the ring is
   * full.
   *
   * @example Write a message in place
   * ```ts
   * import { Channel, Mapping } from "@shmkit/shmkit";
   * using mapping = Mapping.anonymous(4096);
   * const channel = Channel.init(mapping.view());
   * const room = channel.tryReserve(8);
   * if (room !== null) {
   *   new DataView(room.buffer, room.byteOffset).setFloat64(0, Math.PI, true);
   *   channel.commit();
   * }
   * ```
   *
   * @param length The message's length, 0 to `maxMessageBytes`.
   * @throws {RangeError} When `length` exceeds `maxMessageBytes`.
   * @throws {Error} When a reservation is already open.
   */
  tryReserve(length: number): Uint8Array | null {
    this.#live("send");
    checkInteger(length, "length", 0, this.#ring.maxMessage);
    return this.#ring.tryReserve(length);
  }

  /**
   * Sends the message reserved with `tryReserve`, optionally shortened to
   * `length` bytes.
   *
   * @throws {Error} When nothing is reserved.
   * @throws {RangeError} When `length` exceeds the reserved length.
   */
  commit(length?: number): void {
    this.#live("send");
    const ring = this.#ring;
    const reserved = ring.reserved;
    if (reserved === -1) {
      throw new Error("Cannot commit: nothing is reserved; call tryReserve() first");
    }
    const n = length === undefined ? reserved : checkInteger(length, "length", 0, reserved);
    ring.reserved = -1;
    ring.publish(ring.reservedAt, n);
  }

  /**
   * Sends a copy of `message` if there is room, without waiting.
   *
   * @param message The bytes (any TypedArray or DataView), at most `maxMessageBytes`.
   * @returns Whether it was sent (false: the ring is full).
   * @throws {TypeError} When `message` is not a TypedArray or DataView.
   * @throws {RangeError} When it is longer than `maxMessageBytes`.
   */
  trySend(message: ArrayBufferView): boolean {
    const bytes = messageBytes(message, this.#ring.maxMessage);
    this.#live("send");
    return this.#ring.trySend(bytes);
  }

  /** `trySend` as a step operation: true, or null when full. */
  #sendOp(bytes: Uint8Array): () => true | null {
    return () => (this.#ring.trySend(bytes) ? true : null);
  }

  /**
   * Sends a copy of `message`, blocking the thread while the ring is full:
   * polls for `spinMs`, then sleeps in futex on head.
   *
   * @param message The bytes, at most `maxMessageBytes`.
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @returns Whether it was sent (false: timed out).
   * @throws {TypeError} When `message` is not a TypedArray or DataView.
   * @throws {RangeError} When it is too long, or the timeout is negative or NaN.
   */
  send(message: ArrayBufferView, timeoutMs?: number): boolean {
    const bytes = messageBytes(message, this.#ring.maxMessage);
    const timeout = checkTimeout(timeoutMs);
    this.#live("send");
    if (this.#ring.trySend(bytes)) return true;
    return this.#run(true, this.#sendOp(bytes), timeout) ?? false;
  }

  /**
   * Sends a copy of `message`, waiting without blocking the event loop
   * while the ring is full.
   *
   * @param message The bytes, at most `maxMessageBytes`.
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @returns Whether it was sent (false: timed out).
   * @throws {TypeError} (synchronously) When `message` is not a TypedArray or DataView.
   * @throws {RangeError} (synchronously) When it is too long, or the timeout is negative or NaN.
   */
  sendAsync(message: ArrayBufferView, timeoutMs?: number): Promise<boolean> {
    const bytes = messageBytes(message, this.#ring.maxMessage);
    const timeout = checkTimeout(timeoutMs);
    return this.#runAsync(true, this.#sendOp(bytes), timeout).then((sent) => sent ?? false);
  }

  // --- consumer

  /**
   * Releases the message `receive()` handed out, making its room free for
   * the producer at once. Its view must not be used afterwards: the
   * producer may overwrite it. Receiving the next message releases the
   * previous one too, but tells the producer in batches (every eighth of the
   * ring, when the ring runs empty, or when the producer waits for room),
   * which saves a cache-line transfer per message.
   */
  release(): void {
    this.#live("release a message");
    const ring = this.#ring;
    ring.releaseLocally();
    if (ring.unpublished !== 0) ring.publishHead();
  }

  /**
   * The next message, in place, if there is one, without waiting; the
   * previous one is released first. The view is valid until the next
   * receive or `release()`.
   *
   * @returns The message, or null when the ring is empty.
   */
  tryReceive(): Uint8Array | null {
    this.#live("receive");
    return this.#ring.tryReceive();
  }

  readonly #receiveOp = (): Uint8Array | null => this.#ring.tryReceive();

  /**
   * The next message, in place, blocking the thread while the ring is
   * empty: polls for `spinMs`, then sleeps in futex on tail. The previous
   * message is released first.
   *
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @returns The message (valid until the next receive or `release()`), or null when the time ran out.
   * @throws {RangeError} For a negative or NaN timeout.
   */
  receive(timeoutMs?: number): Uint8Array | null {
    const timeout = checkTimeout(timeoutMs);
    return this.tryReceive() ?? this.#run(false, this.#receiveOp, timeout);
  }

  /**
   * A copy of the next message, blocking like `receive()`; the message is
   * released at once.
   *
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @returns A new Uint8Array, or null when the time ran out.
   */
  receiveCopy(timeoutMs?: number): Uint8Array | null {
    const message = this.receive(timeoutMs);
    if (message === null) return null;
    const copy = message.slice();
    this.release();
    return copy;
  }

  /**
   * The next message, in place, waiting without blocking the event loop
   * while the ring is empty. Copy it with `.slice()` to keep it past the
   * next receive.
   *
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @returns The message, or null when the time ran out.
   * @throws {RangeError} (synchronously) For a negative or NaN timeout.
   */
  receiveAsync(timeoutMs?: number): Promise<Uint8Array | null> {
    const timeout = checkTimeout(timeoutMs);
    return this.#runAsync(false, this.#receiveOp, timeout);
  }
}

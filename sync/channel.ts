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
 * | 0      | magic             | init       | {@linkcode CHANNEL_MAGIC} ("CHN2": version 2) |
 * | 4      | capacity          | init       | data bytes, a multiple of 8                  |
 * | 8      | dataOffset        | init       | 384: where the data starts                   |
 * | 12     | maxMessage        | init       | largest payload: capacity/2 rounded down to 8, minus 8 |
 * | 16     | producer          | producer   | its owner id (pid, start-time tag), 0 before its first send |
 * | 20     | consumer          | consumer   | its owner id, 0 before its first receive     |
 * | 24     | closed            | both       | bit 0: the producer closed; bit 1: the consumer closed |
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
 * Every word read from the other end is checked before use; one that
 * breaks the layout's rules throws {@linkcode ChannelError} CORRUPTED.
 *
 * @example A producer and a consumer (here in one process)
 * ```ts
 * import { Channel, Mapping } from "@shmkit/shmkit";
 * using mapping = Mapping.anonymous(64 * 1024);
 * const producer = Channel.init(mapping.view());
 * const consumer = Channel.from(mapping.view());
 * producer.send(new TextEncoder().encode("hello"));
 * producer.close();
 * for await (const message of consumer) {
 *   console.log(new TextDecoder().decode(message)); // "hello"
 * }
 * ```
 *
 * @module
 */
import { checkTimeout } from "./wait.ts";
import { checkInteger } from "../core/_validate.ts";
import {
  CAPACITY,
  capacityForMessage,
  CHANNEL_HEADER_BYTES,
  CHANNEL_MAGIC,
  checkHeader,
  checkView,
  DATA_OFFSET,
  MAGIC,
  MAX_CAPACITY,
  MAX_MESSAGE,
  maxMessageFor,
  messageBytes,
  MIN_CAPACITY,
} from "./_channel_layout.ts";
import { Ring } from "./_channel_ring.ts";
import { PollWindow, run, runAsync, runAsyncAfterMiss } from "./_channel_wait.ts";
import { checkSettings, checkSignal, type Settings, spinPolls } from "./_channel_settings.ts";

export { CHANNEL_HEADER_BYTES, CHANNEL_MAGIC } from "./_channel_layout.ts";
export { ChannelError, type ChannelErrorCode } from "./_channel_layout.ts";

/** Options of {@linkcode Channel.init} and {@linkcode Channel.from}. */
export interface ChannelOptions {
  /**
   * How long a blocking `send`/`receive` polls before sleeping in futex, in
   * milliseconds (default 0.02). Polling sees a change within
   * nanoseconds; sleeping costs a wake-up (tens of microseconds) but no
   * CPU. Infinity polls for as long as the wait lasts (still looking at the
   * other end's process every `checkIntervalMs`). A `for await` step on an
   * empty ring polls too, up to ~1 µs within this, before it yields to the
   * event loop.
   */
  readonly spinMs?: number;
  /**
   * Polling window of the async calls, as in `waitAsync` (default
   * DEFAULT_POLL_MS). An end whose answers keep coming soon after it stops
   * polling stretches its window, up to 4x this (and at most
   * checkIntervalMs), and shrinks it back as answers come while polling.
   */
  readonly pollMs?: number;
  /**
   * How often a waiting end checks that the other end's process lives, in
   * milliseconds, more than 0 (default 50): a SIGKILLed peer wakes nobody.
   */
  readonly checkIntervalMs?: number;
  /**
   * Takes this end's place at once, rather than at the first send or
   * receive, so that `close()` and a death are seen by the other end even
   * before that.
   */
  readonly role?: "producer" | "consumer";
}

/** Options of the asynchronous calls. */
export interface ChannelWaitOptions {
  /** Ends the wait: the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/**
 * One end (or both) of a single-producer single-consumer channel in shared
 * memory (see the module doc for the layout). One process calls
 * {@linkcode Channel.init}, the other {@linkcode Channel.from}; then one of
 * them only sends and the other only receives. The first send makes this
 * process the producer, the first receive the consumer: another process
 * trying to take a taken place gets `ChannelError` ROLE_TAKEN.
 *
 * Either end may `close()`. The consumer receives what was sent, then
 * {@linkcode Channel.DONE} once the producer closed or its process died;
 * the producer gets `ChannelError` once the consumer closed, or died while
 * the ring is full.
 */
export class Channel {
  /**
   * What `receive` and `tryReceive` return once the producer closed (or
   * died) and every message it sent was received.
   */
  static readonly DONE: unique symbol = Symbol("Channel.DONE");

  readonly #ring: Ring;
  readonly #spinMs: number;
  /** Polls of a blocking call before its wait loop (which reads the clock): part of spinMs. */
  readonly #spinPolls: number;
  /** The polling windows of this end's async waits: for room, for a message. */
  readonly #sendWindow: PollWindow;
  readonly #receiveWindow: PollWindow;

  private constructor(bytes: Uint8Array, capacity: number, settings: Settings) {
    this.#spinMs = settings.spinMs;
    this.#spinPolls = spinPolls(settings.spinMs);
    this.#sendWindow = new PollWindow(settings.pollMs, settings.checkIntervalMs);
    this.#receiveWindow = new PollWindow(settings.pollMs, settings.checkIntervalMs);
    this.#ring = new Ring(bytes, capacity, settings.checkIntervalMs);
    if (settings.role !== 0) this.#ring.claim(settings.role, "attach to a channel");
  }

  /**
   * Bytes a channel needs: for a ring of `capacity` data bytes, the header
   * plus the capacity rounded up to 8; for `{ maxMessage }`, the least that
   * carries messages of that many bytes (a ring of
   * `16 * ceil((maxMessage + 8) / 8)` bytes, at least 64).
   *
   * @example
   * ```ts
   * import { Channel } from "@shmkit/shmkit";
   * console.log(Channel.byteLengthFor(1 << 20)); // 1048960
   * console.log(Channel.byteLengthFor({ maxMessage: 1000 })); // 2400
   * ```
   *
   * @throws {RangeError} For a capacity below 64 or above 1 GiB, or a larger maxMessage than that carries.
   */
  static byteLengthFor(capacity: number | { readonly maxMessage: number }): number {
    if (typeof capacity === "object" && capacity !== null) {
      const max = checkInteger(
        capacity.maxMessage,
        "maxMessage",
        0,
        maxMessageFor(MAX_CAPACITY),
      );
      return CHANNEL_HEADER_BYTES + capacityForMessage(max);
    }
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
    const settings = checkSettings(options);
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
    return new Channel(bytes, capacity, settings);
  }

  /**
   * Attaches to a channel laid out with {@linkcode Channel.init}.
   *
   * @throws {TypeError} When `view` is not a TypedArray or DataView.
   * @throws {RangeError} When it is misaligned, or shorter than the channel's header says.
   * @throws {ChannelError} CORRUPTED when the memory holds no initialised channel, or its header breaks the layout's rules.
   */
  static from(view: ArrayBufferView, options?: ChannelOptions): Channel {
    const bytes = checkView(view, "attach to a channel");
    const settings = checkSettings(options);
    const header = new Int32Array(bytes.buffer, bytes.byteOffset, CHANNEL_HEADER_BYTES / 4);
    return new Channel(bytes, checkHeader(header, bytes.byteLength), settings);
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
   *
   * @throws {ChannelError} CORRUPTED when the counters say more than the ring can hold.
   */
  get pending(): number {
    this.#ring.live("read the channel");
    return this.#ring.pending();
  }

  /**
   * Ends this object's part: a producer's consumer receives what was sent,
   * then {@linkcode Channel.DONE}; a consumer's producer gets
   * `ChannelError` CONSUMER_CLOSED from then on. Any later call on this
   * object throws `ClosedError`. Idempotent; does not unmap the memory.
   */
  close(): void {
    this.#ring.close();
  }

  /** `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
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
   * @throws {ChannelError} When the consumer closed, or died with the ring full; CORRUPTED.
   */
  tryReserve(length: number): Uint8Array | null {
    this.#ring.live("send");
    checkInteger(length, "length", 0, this.#ring.maxMessage);
    return this.#ring.tryReserve(length);
  }

  /**
   * Reserves room like `tryReserve`, waiting without blocking the event
   * loop while the ring is full.
   *
   * @param length The message's length, 0 to `maxMessageBytes`.
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @param options `signal` to abort the wait.
   * @returns The view to write the message in, or null when the time ran out.
   * @throws {RangeError} (synchronously) When `length` or the timeout is out of range.
   * @throws {ChannelError} When the consumer closed, or died with the ring full; CORRUPTED.
   */
  reserveAsync(
    length: number,
    timeoutMs?: number,
    options?: ChannelWaitOptions,
  ): Promise<Uint8Array | null> {
    checkInteger(length, "length", 0, this.#ring.maxMessage);
    const timeout = checkTimeout(timeoutMs);
    const signal = checkSignal(options);
    const ring = this.#ring;
    return runAsync(ring, true, () => ring.tryReserve(length), timeout, this.#sendWindow, signal);
  }

  /**
   * Sends the message reserved with `tryReserve`, optionally shortened to
   * `length` bytes.
   *
   * @throws {Error} When nothing is reserved.
   * @throws {RangeError} When `length` exceeds the reserved length.
   */
  commit(length?: number): void {
    const ring = this.#ring;
    ring.live("send");
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
   * @throws {ChannelError} When the consumer closed, or died with the ring full; CORRUPTED.
   */
  trySend(message: ArrayBufferView): boolean {
    const bytes = messageBytes(message, this.#ring.maxMessage);
    this.#ring.live("send");
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
   * @throws {ChannelError} When the consumer closed, or died while the ring was full; CORRUPTED.
   */
  send(message: ArrayBufferView, timeoutMs?: number): boolean {
    const bytes = messageBytes(message, this.#ring.maxMessage);
    const timeout = checkTimeout(timeoutMs);
    this.#ring.live("send");
    if (this.#ring.trySend(bytes)) return true;
    return run(this.#ring, true, this.#sendOp(bytes), timeout, this.#spinMs) ?? false;
  }

  /**
   * Sends a copy of `message`, waiting without blocking the event loop
   * while the ring is full.
   *
   * @param message The bytes, at most `maxMessageBytes`.
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @param options `signal` to abort the wait.
   * @returns Whether it was sent (false: timed out).
   * @throws {TypeError} (synchronously) When `message` is not a TypedArray or DataView.
   * @throws {RangeError} (synchronously) When it is too long, or the timeout is negative or NaN.
   * @throws {ChannelError} When the consumer closed, or died while the ring was full; CORRUPTED.
   */
  sendAsync(
    message: ArrayBufferView,
    timeoutMs?: number,
    options?: ChannelWaitOptions,
  ): Promise<boolean> {
    const bytes = messageBytes(message, this.#ring.maxMessage);
    const timeout = checkTimeout(timeoutMs);
    const signal = checkSignal(options);
    const ring = this.#ring;
    if (signal?.aborted === true) return Promise.reject(signal.reason);
    try {
      // Room at hand costs no wait loop (runAsync's own try would add a then).
      ring.live("send");
      if (ring.trySend(bytes)) return Promise.resolve(true);
    } catch (error) {
      return Promise.reject(error);
    }
    return runAsyncAfterMiss(ring, true, this.#sendOp(bytes), timeout, this.#sendWindow, signal)
      .then((sent) => sent ?? false);
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
    const ring = this.#ring;
    ring.live("release a message");
    ring.releaseLocally();
    if (ring.unpublished !== 0) ring.publishHead();
  }

  /**
   * The next message, in place, if there is one, without waiting; the
   * previous one is released first. The view is valid until the next
   * receive or `release()`.
   *
   * @returns The message; null when the ring is empty; {@linkcode Channel.DONE} when it is empty for good.
   * @throws {ChannelError} CORRUPTED when a word breaks the layout's rules.
   */
  tryReceive(): Uint8Array | null | typeof Channel.DONE {
    this.#ring.live("receive");
    return this.#receiveOp();
  }

  readonly #receiveOp = (): Uint8Array | typeof Channel.DONE | null => {
    const message = this.#ring.tryReceive();
    return message === undefined ? Channel.DONE : message;
  };

  /**
   * The next message, in place, blocking the thread while the ring is
   * empty: polls for `spinMs`, then sleeps in futex on tail. The previous
   * message is released first.
   *
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @returns The message (valid until the next receive or `release()`); null when the time ran out; {@linkcode Channel.DONE} once the producer closed or died and everything it sent was received.
   * @throws {RangeError} For a negative or NaN timeout.
   * @throws {ChannelError} CORRUPTED when a word breaks the layout's rules.
   */
  receive(timeoutMs?: number): Uint8Array | null | typeof Channel.DONE {
    const timeout = checkTimeout(timeoutMs);
    const ring = this.#ring;
    ring.live("receive");
    // A message at hand, or within a few polls: no wait loop, no clock.
    return ring.receiveReady(timeout > 0 ? this.#spinPolls : 0) ??
      run(ring, false, this.#receiveOp, timeout, this.#spinMs);
  }

  /**
   * A copy of the next message, blocking like `receive()`; the message is
   * released at once.
   *
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @returns A new Uint8Array; null when the time ran out; {@linkcode Channel.DONE} at the end.
   * @throws {ChannelError} CORRUPTED when a word breaks the layout's rules.
   */
  receiveCopy(timeoutMs?: number): Uint8Array | null | typeof Channel.DONE {
    const message = this.receive(timeoutMs);
    if (!(message instanceof Uint8Array)) return message;
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
   * @param options `signal` to abort the wait.
   * @returns The message; null when the time ran out; {@linkcode Channel.DONE} at the end.
   * @throws {RangeError} (synchronously) For a negative or NaN timeout.
   * @throws {ChannelError} CORRUPTED when a word breaks the layout's rules.
   */
  receiveAsync(
    timeoutMs?: number,
    options?: ChannelWaitOptions,
  ): Promise<Uint8Array | null | typeof Channel.DONE> {
    const timeout = checkTimeout(timeoutMs);
    const signal = checkSignal(options);
    return runAsync(this.#ring, false, this.#receiveOp, timeout, this.#receiveWindow, signal);
  }

  /**
   * The messages, each in place until the next one is asked for, until
   * the producer closes or dies: `for await (const message of channel)`.
   * Leaving the loop early releases the last message; the channel stays
   * open.
   *
   * @throws {ChannelError} CORRUPTED when a word breaks the layout's rules.
   */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array, undefined> {
    return this.#iterate(undefined);
  }

  /**
   * The messages as {@linkcode Channel}'s `for await` gives them, with a
   * signal that ends the loop: the pending step rejects with its reason.
   *
   * @example
   * ```ts
   * import { Channel, Mapping } from "@shmkit/shmkit";
   * using mapping = Mapping.anonymous(64 * 1024);
   * const channel = Channel.init(mapping.view());
   * channel.send(new Uint8Array(3));
   * const stop = new AbortController();
   * try {
   *   for await (const message of channel.messages({ signal: stop.signal })) {
   *     console.log(message.length); // 3
   *     stop.abort(new Error("enough")); // the next step rejects, nothing waits on
   *   }
   * } catch (error) {
   *   console.log((error as Error).message); // "enough"
   * }
   * ```
   *
   * @throws {TypeError} (synchronously) When `signal` is not an AbortSignal.
   * @throws {ChannelError} CORRUPTED when a word breaks the layout's rules.
   */
  messages(options?: ChannelWaitOptions): AsyncIterable<Uint8Array, undefined> {
    const signal = checkSignal(options);
    return { [Symbol.asyncIterator]: () => this.#iterate(signal) };
  }

  #iterate(signal: AbortSignal | undefined): AsyncIterator<Uint8Array, undefined> {
    const ring = this.#ring;
    const polls = this.#spinPolls;
    const finished: IteratorReturnResult<undefined> = { done: true, value: undefined };
    const result = (
      message: Uint8Array | null | undefined | typeof Channel.DONE,
    ): IteratorResult<Uint8Array, undefined> =>
      message instanceof Uint8Array ? { done: false, value: message } : finished;
    return {
      next: (): Promise<IteratorResult<Uint8Array, undefined>> => {
        try {
          signal?.throwIfAborted();
          // A message at hand, or within receive()'s few polls (less than
          // one event-loop turn), costs no wait loop.
          ring.live("receive");
          const message = ring.receiveReady(polls) ?? ring.tryReceive();
          // A fresh result on its own return: V8 builds it cheaper than a choice of two.
          if (message !== null) {
            if (message !== undefined) return Promise.resolve({ done: false, value: message });
            return Promise.resolve(finished);
          }
        } catch (error) {
          return Promise.reject(error);
        }
        return runAsyncAfterMiss(
          ring,
          false,
          this.#receiveOp,
          Infinity,
          this.#receiveWindow,
          signal,
        )
          .then(result);
      },
      return: (): Promise<IteratorResult<Uint8Array, undefined>> => {
        if (!ring.closed && ring.header.length !== 0 && ring.broken === undefined) this.release();
        return Promise.resolve(finished);
      },
    };
  }
}

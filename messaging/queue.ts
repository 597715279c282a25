/**
 * A multi-producer multi-consumer queue of messages in shared memory: any
 * number of processes send, any number receive, and each message is
 * delivered to exactly one receiver.
 *
 * A bounded ring of fixed-size slots with a sequence word per slot
 * (Vyukov's design), where each claim of a slot also takes the slot's
 * owner word, so that a slot claimed by a process that died is found and
 * passed over rather than blocking the queue for good:
 *
 * - a producer SIGKILLed after claiming a slot and before publishing it:
 *   its message is dropped (counted in `dropped.unpublished`) and the
 *   queue moves on;
 * - a consumer SIGKILLed after taking a message and before freeing its
 *   slot: the message is lost with it (counted in `dropped.taken`) and the
 *   slot is freed;
 * - a process SIGKILLed while merely trying to claim: nothing is lost.
 *
 * Layout (docs/messaging.md has the full protocol; all words little-endian
 * i32, positions wrap at 2^32):
 *
 * | offset | word              | meaning                                              |
 * | ------ | ----------------- | ---------------------------------------------------- |
 * | 0      | magic             | {@linkcode QUEUE_MAGIC} ("MPQ1")                      |
 * | 4      | slots             | a power of two, 2 to 2^20                            |
 * | 8      | slotBytes         | a multiple of 64                                     |
 * | 12     | maxMessage        | slotBytes - 16                                       |
 * | 16     | closed            | bit 0: ended                                         |
 * | 20     | droppedUnpublished| messages of producers that died mid-send             |
 * | 24     | droppedTaken      | messages taken by consumers that died                |
 * | 64     | tail              | next position to claim for sending                   |
 * | 68     | published         | bumped after each send (consumers' futex word)       |
 * | 72     | consumersSleeping | 1 while a consumer may sleep                         |
 * | 128    | head              | next position to claim for receiving                 |
 * | 132    | freed             | bumped after each slot is freed (producers' futex word) |
 * | 136    | producersSleeping | 1 while a producer may sleep                         |
 * | 256    | slots             | each: seq, owner, length, 0, then the payload        |
 *
 * @example Two ends in one process (each end is usually its own process)
 * ```ts
 * import { Mapping } from "@shmkit/shmkit";
 * import { Queue } from "@shmkit/shmkit/messaging";
 * const shape = { slots: 16, maxMessage: 64 };
 * using mapping = Mapping.anonymous(Queue.byteLengthFor(shape));
 * const producer = Queue.init(mapping.view(), shape);
 * const consumer = Queue.from(mapping.view());
 * producer.send(new TextEncoder().encode("job 1"));
 * producer.end();
 * for await (const message of consumer) console.log(new TextDecoder().decode(message));
 * ```
 *
 * @module
 */
import { checkTimeout } from "../sync/wait.ts";
import {
  BUSY,
  type Busy,
  checkSettings,
  checkShape,
  checkView,
  corrupted,
  iterable,
  iterate,
  messageBytes,
  runAsync,
  runSync,
  type Settings,
  signalOf,
  type SignalOptions,
  type SlotShape,
  type WaitSettings,
  type WaitTarget,
} from "./_common.ts";
import {
  CONSUMERS_SLEEPING,
  DROPPED_TAKEN,
  DROPPED_UNPUBLISHED,
  HEAD,
  MAGIC,
  MAX_MESSAGE,
  PRODUCERS_SLEEPING,
  QUEUE_HEADER_BYTES,
  QUEUE_MAGIC,
  QUEUE_SLOT_HEADER,
  QueueRing,
  SLOT_BYTES,
  SLOTS,
  TAIL,
} from "./_queue_ring.ts";

export { QUEUE_HEADER_BYTES, QUEUE_MAGIC, QUEUE_SLOT_HEADER } from "./_queue_ring.ts";

/** Options of {@linkcode Queue.init} and {@linkcode Queue.from}. */
export type QueueOptions = WaitSettings;

/** Messages the queue lost to processes that died mid-operation. */
export interface QueueDropped {
  /** Claimed by a producer that died before publishing. */
  readonly unpublished: number;
  /** Taken by a consumer that died before freeing the slot. */
  readonly taken: number;
}

/**
 * A handle on a multi-producer multi-consumer queue in shared memory (see
 * the module doc). Each process makes its own with {@linkcode Queue.init}
 * (once) or {@linkcode Queue.from}; any handle may send and receive.
 */
export class Queue {
  /** What receivers get once the queue was ended and is empty. */
  static readonly DONE: unique symbol = Symbol("Queue.DONE");

  readonly #ring: QueueRing;
  readonly #settings: Settings;
  readonly #consumers: WaitTarget;
  readonly #producers: WaitTarget;

  private constructor(bytes: Uint8Array, slots: number, slotBytes: number, settings: Settings) {
    this.#settings = settings;
    const ring = new QueueRing(bytes, slots, slotBytes, settings.checkIntervalMs);
    this.#ring = ring;
    this.#consumers = { header: ring.header, word: ring.publishedWord, flag: CONSUMERS_SLEEPING };
    this.#producers = { header: ring.header, word: ring.freedWord, flag: PRODUCERS_SLEEPING };
  }

  /**
   * Bytes a queue of this shape needs: 256 + slots * slotBytes, where
   * slotBytes is 16 + maxMessage rounded up to 64.
   *
   * @example
   * ```ts
   * import { Queue } from "@shmkit/shmkit/messaging";
   * console.log(Queue.byteLengthFor({ slots: 1024, maxMessage: 64 })); // 131328
   * ```
   *
   * @throws {RangeError} For slots not a power of two from 2 to 2^20, or maxMessage above 2^24.
   */
  static byteLengthFor(shape: SlotShape): number {
    const { slots, slotBytes } = checkShape(shape, QUEUE_SLOT_HEADER);
    return QUEUE_HEADER_BYTES + slots * slotBytes;
  }

  /**
   * Lays out a new, empty queue in `view` and attaches to it.
   *
   * @param view 8-byte aligned, at least `Queue.byteLengthFor(shape)` bytes of shared memory.
   * @param shape How many slots, and the largest message.
   * @throws {TypeError} When `view` is not a TypedArray or DataView.
   * @throws {RangeError} When it is misaligned or too short, or the shape is out of range.
   */
  static init(view: ArrayBufferView, shape: SlotShape, options?: QueueOptions): Queue {
    const { slots, slotBytes } = checkShape(shape, QUEUE_SLOT_HEADER);
    const bytes = checkView(view, "place a queue", QUEUE_HEADER_BYTES + slots * slotBytes);
    const settings = checkSettings(options);
    const words = new Int32Array(bytes.buffer, bytes.byteOffset, QUEUE_HEADER_BYTES / 4);
    Atomics.store(words, MAGIC, 0);
    words.fill(0);
    const all = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2);
    // Slot i starts free for lap i.
    for (let i = 0; i < slots; i++) {
      const s = (QUEUE_HEADER_BYTES + i * slotBytes) >> 2;
      all.fill(0, s, s + 4);
      all[s] = i;
    }
    words[SLOTS] = slots;
    words[SLOT_BYTES] = slotBytes;
    words[MAX_MESSAGE] = slotBytes - QUEUE_SLOT_HEADER;
    Atomics.store(words, MAGIC, QUEUE_MAGIC);
    return new Queue(bytes, slots, slotBytes, settings);
  }

  /**
   * Attaches to a queue laid out with {@linkcode Queue.init}.
   *
   * @throws {TypeError} When `view` is not a TypedArray or DataView.
   * @throws {RangeError} When it is misaligned, or shorter than the header says.
   * @throws {MessagingError} CORRUPTED when the memory holds no queue, or its header breaks the rules.
   */
  static from(view: ArrayBufferView, options?: QueueOptions): Queue {
    const action = "attach to a queue";
    const bytes = checkView(view, action, QUEUE_HEADER_BYTES);
    const settings = checkSettings(options);
    const h = new Int32Array(bytes.buffer, bytes.byteOffset, QUEUE_HEADER_BYTES / 4);
    const bad = (word: string, value: number, rule: string): never => {
      throw corrupted("queue", action, word, value, rule);
    };
    const magic = Atomics.load(h, MAGIC);
    if (magic !== QUEUE_MAGIC) bad("magic", magic, `an initialised queue has ${QUEUE_MAGIC}`);
    const slots = h[SLOTS]!;
    if (slots < 2 || slots > 1 << 20 || (slots & (slots - 1)) !== 0) {
      bad("slots", slots, "it must be a power of two from 2 to 2^20");
    }
    const slotBytes = h[SLOT_BYTES]!;
    if (slotBytes < 64 || slotBytes % 64 !== 0 || slotBytes > (1 << 24) + 64) {
      bad("slotBytes", slotBytes, "it must be a multiple of 64 from 64 to 2^24 + 64");
    }
    if (h[MAX_MESSAGE] !== slotBytes - QUEUE_SLOT_HEADER) {
      bad("maxMessage", h[MAX_MESSAGE]!, `it must be slotBytes - ${QUEUE_SLOT_HEADER}`);
    }
    if (bytes.byteLength < QUEUE_HEADER_BYTES + slots * slotBytes) {
      throw new RangeError(
        `Cannot ${action} in ${bytes.byteLength} bytes: its slots need ${
          QUEUE_HEADER_BYTES + slots * slotBytes
        }`,
      );
    }
    const queue = new Queue(bytes, slots, slotBytes, settings);
    queue.#ring.ended(action);
    return queue;
  }

  /** Number of slots. */
  get slots(): number {
    return this.#ring.slots;
  }

  /** The largest message, in bytes. */
  get maxMessageBytes(): number {
    return this.#ring.maxMessage;
  }

  /**
   * Messages sent and not yet received (those being written included).
   *
   * @throws {MessagingError} CORRUPTED when head and tail are further apart than the slots.
   */
  get length(): number {
    return this.#ring.length();
  }

  /** Messages lost to processes that died mid-operation, as the queue's counters say. */
  get dropped(): QueueDropped {
    const h = this.#ring.live("read the queue");
    return {
      unpublished: Atomics.load(h, DROPPED_UNPUBLISHED) >>> 0,
      taken: Atomics.load(h, DROPPED_TAKEN) >>> 0,
    };
  }

  /** The raw positions, for tests and monitoring: `{ head, tail }` (u32). */
  get positions(): { readonly head: number; readonly tail: number } {
    const h = this.#ring.live("read the queue");
    return { head: Atomics.load(h, HEAD) >>> 0, tail: Atomics.load(h, TAIL) >>> 0 };
  }

  /** Whether the queue was ended (by any process). */
  get ended(): boolean {
    this.#ring.live("read the queue");
    return this.#ring.ended("read the queue");
  }

  /**
   * Ends the queue for every process: sends throw `MessagingError` CLOSED
   * from then on; receivers get what was sent, then {@linkcode Queue.DONE}.
   * A message sent at the same moment as `end()` may not be received.
   */
  end(): void {
    this.#ring.live("end the queue");
    this.#ring.end();
  }

  /** Ends this handle (not the queue): later calls throw ClosedError. Idempotent. */
  close(): void {
    this.#ring.closed = true;
  }

  /** `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #sendOp(bytes: Uint8Array): () => true | null | Busy {
    const ring = this.#ring;
    return () => {
      ring.live("send");
      const sent = ring.trySend(bytes);
      return sent === BUSY ? BUSY : sent ? true : null;
    };
  }

  /**
   * Sends a copy of `message` if a slot is free, without waiting.
   *
   * @returns Whether it was sent (false: full, or a slot is held mid-operation).
   * @throws {TypeError} When `message` is not a TypedArray or DataView.
   * @throws {RangeError} When it is longer than `maxMessageBytes`.
   * @throws {MessagingError} CLOSED when the queue was ended; CORRUPTED.
   */
  trySend(message: ArrayBufferView): boolean {
    const bytes = messageBytes(message, this.#ring.maxMessage, "send");
    return this.#sendOp(bytes)() === true;
  }

  /**
   * Sends a copy of `message`, blocking the thread while the queue is full:
   * polls for `spinMs`, then sleeps in futex.
   *
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @returns Whether it was sent (false: timed out).
   * @throws {TypeError} When `message` is not a TypedArray or DataView.
   * @throws {RangeError} When it is too long, or the timeout is negative or NaN.
   * @throws {MessagingError} CLOSED when the queue was ended; CORRUPTED.
   */
  send(message: ArrayBufferView, timeoutMs?: number): boolean {
    const bytes = messageBytes(message, this.#ring.maxMessage, "send");
    const timeout = checkTimeout(timeoutMs);
    this.#ring.live("send");
    // A free slot at hand costs no wait loop.
    const sent = this.#ring.trySend(bytes);
    if (sent === true || timeout === 0) return sent === true;
    const s = this.#settings;
    const target = this.#producers;
    return runSync(() => target, this.#sendOp(bytes), timeout, s.spinMs, s.checkIntervalMs) ??
      false;
  }

  /**
   * Sends a copy of `message`, waiting without blocking the event loop
   * while the queue is full.
   *
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @param options `signal` to abort the wait.
   * @returns Whether it was sent (false: timed out).
   * @throws {MessagingError} CLOSED when the queue was ended; CORRUPTED.
   */
  sendAsync(
    message: ArrayBufferView,
    timeoutMs?: number,
    options?: SignalOptions,
  ): Promise<boolean> {
    const bytes = messageBytes(message, this.#ring.maxMessage, "send");
    const timeout = checkTimeout(timeoutMs);
    const signal = signalOf(options);
    const s = this.#settings;
    const target = this.#producers;
    return runAsync(() => target, this.#sendOp(bytes), timeout, s.pollMs, s.checkIntervalMs, signal)
      .then((sent) => sent ?? false);
  }

  readonly #receiveOp = (): Uint8Array | typeof Queue.DONE | null | Busy => {
    this.#ring.live("receive");
    const message = this.#ring.tryReceive();
    return message === undefined ? Queue.DONE : (message as Uint8Array | null | Busy);
  };

  #receiveIntoOp(into: Uint8Array): () => number | typeof Queue.DONE | null | Busy {
    const ring = this.#ring;
    return () => {
      ring.live("receive");
      const length = ring.tryReceive(into);
      return length === undefined ? Queue.DONE : (length as number | null | Busy);
    };
  }

  /**
   * Receives the next message into `target`, blocking like `receive()`,
   * without allocating: the way to receive in a hot loop.
   *
   * @example
   * ```ts
   * import { Mapping } from "@shmkit/shmkit";
   * import { Queue } from "@shmkit/shmkit/messaging";
   * const shape = { slots: 4, maxMessage: 48 };
   * using mapping = Mapping.anonymous(Queue.byteLengthFor(shape));
   * const queue = Queue.init(mapping.view(), shape);
   * queue.send(new Uint8Array([1, 2]));
   * const buffer = new Uint8Array(queue.maxMessageBytes);
   * const length = queue.receiveInto(buffer, 0); // 2: buffer.subarray(0, 2) is the message
   * ```
   *
   * @param target Where the message is copied: at least `maxMessageBytes` long.
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @returns The message's length; null when the time ran out; {@linkcode Queue.DONE} once ended and empty.
   * @throws {TypeError} When `target` is not a Uint8Array.
   * @throws {RangeError} When it is shorter than `maxMessageBytes`, or the timeout is out of range.
   * @throws {MessagingError} CORRUPTED when a word breaks the layout's rules.
   */
  receiveInto(target: Uint8Array, timeoutMs?: number): number | null | typeof Queue.DONE {
    if (!(target instanceof Uint8Array)) {
      throw new TypeError("Cannot receive: expected a Uint8Array to copy the message into");
    }
    if (target.length < this.#ring.maxMessage) {
      throw new RangeError(
        `Cannot receive into ${target.length} bytes: a message may have ${this.#ring.maxMessage}`,
      );
    }
    const timeout = checkTimeout(timeoutMs);
    this.#ring.live("receive");
    const first = this.#ring.tryReceive(target);
    if (typeof first === "number") return first;
    const s = this.#settings;
    const target_ = this.#consumers;
    return runSync(
      () => target_,
      this.#receiveIntoOp(target),
      timeout,
      s.spinMs,
      s.checkIntervalMs,
    );
  }

  /**
   * A copy of the next message, if there is one, without waiting.
   *
   * @returns The message; null when empty (or a slot is held mid-operation); {@linkcode Queue.DONE} when ended and empty.
   * @throws {MessagingError} CORRUPTED when a word breaks the layout's rules.
   */
  tryReceive(): Uint8Array | null | typeof Queue.DONE {
    const message = this.#receiveOp();
    return message === BUSY ? null : message;
  }

  /**
   * A copy of the next message, blocking the thread while the queue is
   * empty: polls for `spinMs`, then sleeps in futex.
   *
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @returns The message; null when the time ran out; {@linkcode Queue.DONE} once ended and empty.
   * @throws {RangeError} For a negative or NaN timeout.
   * @throws {MessagingError} CORRUPTED when a word breaks the layout's rules.
   */
  receive(timeoutMs?: number): Uint8Array | null | typeof Queue.DONE {
    const timeout = checkTimeout(timeoutMs);
    const first = this.#receiveOp();
    if (first !== null && first !== BUSY) return first;
    if (timeout === 0) return null;
    const s = this.#settings;
    const target = this.#consumers;
    return runSync(() => target, this.#receiveOp, timeout, s.spinMs, s.checkIntervalMs);
  }

  /**
   * A copy of the next message, waiting without blocking the event loop.
   *
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @param options `signal` to abort the wait.
   * @returns The message; null when the time ran out; {@linkcode Queue.DONE} once ended and empty.
   * @throws {MessagingError} CORRUPTED when a word breaks the layout's rules.
   */
  receiveAsync(
    timeoutMs?: number,
    options?: SignalOptions,
  ): Promise<Uint8Array | null | typeof Queue.DONE> {
    const timeout = checkTimeout(timeoutMs);
    const signal = signalOf(options);
    const s = this.#settings;
    const target = this.#consumers;
    return runAsync(() => target, this.#receiveOp, timeout, s.pollMs, s.checkIntervalMs, signal);
  }

  /**
   * The messages until the queue is ended and empty:
   * `for await (const message of queue)`.
   *
   * @throws {MessagingError} CORRUPTED when a word breaks the layout's rules.
   */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array, undefined> {
    return iterate<Uint8Array>(() => this.receiveAsync());
  }

  /** As `for await` over this {@linkcode Queue}, ended by `options.signal` (the pending step rejects). */
  messages(options?: SignalOptions): AsyncIterable<Uint8Array, undefined> {
    return iterable(options, (o) => this.receiveAsync(undefined, o));
  }
}

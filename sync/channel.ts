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
import {
  checkMagic,
  checkTimeout,
  DEFAULT_POLL_MS,
  futexWait,
  futexWaitAsync,
  futexWake,
} from "./wait.ts";
import { typeName } from "../ffi/pointer.ts";
import { ClosedError } from "../core/errors.ts";
import { checkInteger, checkOptions } from "../core/_validate.ts";

/** The magic word (offset 0) of an initialised channel, layout version 1 ("CHN1"). */
export const CHANNEL_MAGIC = 0x43484e31;
/** Bytes of the header before the data. */
export const CHANNEL_HEADER_BYTES = 384;

// Word indices into the header.
const MAGIC = 0;
const CAPACITY = 1;
const DATA_OFFSET = 2;
const MAX_MESSAGE = 3;
const TAIL = 32;
const CONSUMER_SLEEPING = 33;
const SENT = 34;
const HEAD = 64;
const PRODUCER_SLEEPING = 65;
const RECEIVED = 66;

const RECORD_HEADER = 8;
const PADDING = -1;
const MIN_CAPACITY = 64;
const MAX_CAPACITY = 1 << 30;

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

/** The record size of a payload: header plus payload, rounded up to 8. */
function recordBytes(length: number): number {
  return RECORD_HEADER + ((length + 7) & ~7);
}

/** The largest payload a ring of `capacity` bytes carries. */
function maxMessageFor(capacity: number): number {
  // Half the ring, so that a record fits before or after any position.
  return Math.floor(capacity / 16) * 8 - RECORD_HEADER;
}

function checkView(view: unknown, action: string): Uint8Array {
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
  if (view.byteLength < CHANNEL_HEADER_BYTES + MIN_CAPACITY) {
    throw new RangeError(
      `Cannot ${action} in ${view.byteLength} bytes: a channel needs at least ${
        CHANNEL_HEADER_BYTES + MIN_CAPACITY
      } (a ${CHANNEL_HEADER_BYTES}-byte header and ${MIN_CAPACITY} bytes of data)`,
    );
  }
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/**
 * One end (or both) of a single-producer single-consumer channel in shared
 * memory (see the module doc for the layout). One process calls
 * {@linkcode Channel.init}, the other {@linkcode Channel.from}; then one of
 * them only sends and the other only receives. Nothing enforces that: two
 * senders (or two receivers) corrupt the ring.
 */
export class Channel {
  readonly #header: Int32Array;
  readonly #data: Uint8Array;
  readonly #lengths: Int32Array;
  readonly #capacity: number;
  readonly #maxMessage: number;
  readonly #tailWord: Int32Array;
  readonly #headWord: Int32Array;
  readonly #spinMs: number;
  readonly #pollMs: number;
  // Producer state: its own tail, the last head it saw, messages sent.
  #tail: number;
  #seenHead: number;
  #sent: number;
  #reserved = -1;
  #reservedAt = 0;
  // Consumer state: its own head, bytes released but not yet published,
  // the last tail it saw, the position after the message handed out (-1:
  // none) and its record's bytes, and messages released.
  #head: number;
  #unpublished = 0;
  #seenTail: number;
  #next = -1;
  #nextBytes = 0;
  #received: number;

  private constructor(bytes: Uint8Array, options: ChannelOptions | undefined) {
    const o = checkOptions(options, "options");
    this.#spinMs = checkTimeout(o.spinMs ?? 0.02, "spinMs");
    this.#pollMs = checkTimeout(o.pollMs ?? DEFAULT_POLL_MS, "pollMs");
    const header = new Int32Array(bytes.buffer, bytes.byteOffset, CHANNEL_HEADER_BYTES / 4);
    this.#header = header;
    const capacity = Atomics.load(header, CAPACITY);
    this.#capacity = capacity;
    this.#maxMessage = Atomics.load(header, MAX_MESSAGE);
    const start = bytes.byteOffset + CHANNEL_HEADER_BYTES;
    this.#data = new Uint8Array(bytes.buffer, start, capacity);
    this.#lengths = new Int32Array(bytes.buffer, start, capacity / 4);
    this.#tailWord = header.subarray(TAIL, TAIL + 1);
    this.#headWord = header.subarray(HEAD, HEAD + 1);
    this.#tail = Atomics.load(header, TAIL);
    this.#seenHead = Atomics.load(header, HEAD);
    this.#head = this.#seenHead;
    this.#seenTail = this.#tail;
    this.#sent = Atomics.load(header, SENT);
    this.#received = Atomics.load(header, RECEIVED);
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
    return this.#capacity;
  }

  /** The largest message, in bytes: about half the capacity. */
  get maxMessageBytes(): number {
    return this.#maxMessage;
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
    if (this.#header.length === 0) throw new ClosedError(action, "channel's memory");
    return this.#header;
  }

  // --- producer

  /** Where a record of `size` bytes goes with head at `head`: its position, or -1 if full. */
  #placeFor(size: number, head: number): number {
    const tail = this.#tail;
    if (tail >= head) {
      const end = this.#capacity - tail;
      // Ending exactly at the end wraps tail to 0, which must not equal head.
      if (size < end || (size === end && head !== 0)) return tail;
      return size < head ? 0 : -1;
    }
    return tail + size < head ? tail : -1;
  }

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
    const header = this.#live("send");
    checkInteger(length, "length", 0, this.#maxMessage);
    if (this.#reserved !== -1) {
      throw new Error("Cannot reserve: a reservation is open; commit() it first");
    }
    const at = this.#place(header, recordBytes(length));
    if (at < 0) return null;
    this.#reserved = length;
    this.#reservedAt = at;
    const start = at + RECORD_HEADER;
    return this.#data.subarray(start, start + length);
  }

  /**
   * Sends the message reserved with `tryReserve`, optionally shortened to
   * `length` bytes.
   *
   * @throws {Error} When nothing is reserved.
   * @throws {RangeError} When `length` exceeds the reserved length.
   */
  commit(length?: number): void {
    const header = this.#live("send");
    const reserved = this.#reserved;
    if (reserved === -1) {
      throw new Error("Cannot commit: nothing is reserved; call tryReserve() first");
    }
    const n = length === undefined ? reserved : checkInteger(length, "length", 0, reserved);
    this.#reserved = -1;
    this.#publishRecord(header, this.#reservedAt, n);
  }

  /** Where a record of `size` bytes goes now: its position, or -1 when the ring is full. */
  #place(header: Int32Array, size: number): number {
    const at = this.#placeFor(size, this.#seenHead);
    if (at >= 0) return at;
    // Look at the consumer's line only when the ring looks full.
    this.#seenHead = Atomics.load(header, HEAD);
    return this.#placeFor(size, this.#seenHead);
  }

  /** Writes a record's header (and the padding marker), publishes tail, wakes a sleeping consumer. */
  #publishRecord(header: Int32Array, at: number, length: number): void {
    const lengths = this.#lengths;
    if (at !== this.#tail) lengths[this.#tail >> 2] = PADDING;
    lengths[at >> 2] = length;
    lengths[(at >> 2) + 1] = 0;
    let tail = at + recordBytes(length);
    if (tail === this.#capacity) tail = 0;
    this.#tail = tail;
    this.#sent = (this.#sent + 1) | 0;
    // A plain store: publishing tail below orders it.
    header[SENT] = this.#sent;
    // Publish, then look whether the consumer sleeps. The exchange is a full
    // barrier, so the consumer either sees the new tail or is seen asleep.
    Atomics.exchange(header, TAIL, tail);
    if (Atomics.load(header, CONSUMER_SLEEPING) !== 0) futexWake(this.#tailWord, 1);
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
    return this.#trySend(messageBytes(message, this.#maxMessage));
  }

  #trySend(bytes: Uint8Array): boolean {
    const header = this.#live("send");
    if (this.#reserved !== -1) {
      throw new Error("Cannot send: a reservation is open; commit() it first");
    }
    const length = bytes.byteLength;
    const at = this.#place(header, recordBytes(length));
    if (at < 0) return false;
    this.#data.set(bytes, at + RECORD_HEADER);
    this.#publishRecord(header, at, length);
    return true;
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
    const bytes = messageBytes(message, this.#maxMessage);
    const timeout = timeoutMs === undefined ? Infinity : checkTimeout(timeoutMs);
    if (this.#trySend(bytes)) return true;
    if (timeout === 0) return false;
    const header = this.#header;
    let start = 0;
    if (this.#spinMs > 0) {
      // Poll head; read the clock only every 64 polls, as it costs more than a poll.
      let end = Infinity;
      for (let i = 1;; i++) {
        if (Atomics.load(header, HEAD) !== this.#seenHead && this.#trySend(bytes)) return true;
        if ((i & 63) !== 0) continue;
        const now = performance.now();
        if (start === 0) {
          start = now;
          end = now + Math.min(timeout, this.#spinMs);
        } else if (now >= end) break;
      }
    }
    if (start === 0) start = performance.now();
    const deadline = start + timeout;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      const head = this.#sleepOnHead(header);
      if (head !== undefined) {
        futexWait(this.#headWord, head, left);
        Atomics.store(header, PRODUCER_SLEEPING, 0);
      }
      if (this.#trySend(bytes)) return true;
    }
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
    const bytes = messageBytes(message, this.#maxMessage);
    const timeout = checkTimeout(timeoutMs);
    return this.#sendAsync(bytes, timeout);
  }

  async #sendAsync(bytes: Uint8Array, timeout: number): Promise<boolean> {
    if (this.#trySend(bytes)) return true;
    const deadline = performance.now() + timeout;
    const header = this.#header;
    for (;;) {
      let left = deadline - performance.now();
      if (left <= 0) return false;
      // Poll from the event loop first, without asking for a wake-up.
      await futexWaitAsync(
        this.#headWord,
        this.#seenHead,
        Math.min(this.#pollMs, left),
        this.#pollMs,
      );
      if (this.#trySend(bytes)) return true;
      left = deadline - performance.now();
      if (left <= 0) return false;
      const head = this.#sleepOnHead(header);
      if (head !== undefined) {
        try {
          await futexWaitAsync(this.#headWord, head, left, 0);
        } finally {
          if (header.length !== 0) Atomics.store(header, PRODUCER_SLEEPING, 0);
        }
      }
      if (this.#trySend(bytes)) return true;
    }
  }

  /** Announces the producer's sleep; returns the head to sleep on, or undefined if it moved. */
  #sleepOnHead(header: Int32Array): number | undefined {
    Atomics.exchange(header, PRODUCER_SLEEPING, 1);
    const head = Atomics.load(header, HEAD);
    if (head !== this.#seenHead) {
      Atomics.store(header, PRODUCER_SLEEPING, 0);
      return undefined;
    }
    return head;
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
    const header = this.#live("release a message");
    this.#releaseLocally(header);
    if (this.#unpublished !== 0) this.#publishHead(header);
  }

  /** Frees the handed-out message in this process; publishes when it is time to. */
  #releaseLocally(header: Int32Array): void {
    if (this.#next === -1) return;
    this.#head = this.#next;
    this.#next = -1;
    this.#received = (this.#received + 1) | 0;
    this.#unpublished += this.#nextBytes;
    if (
      this.#unpublished >= this.#capacity >> 3 ||
      Atomics.load(header, PRODUCER_SLEEPING) !== 0
    ) {
      this.#publishHead(header);
    }
  }

  /** Publishes head (and the received count), then wakes a sleeping producer. */
  #publishHead(header: Int32Array): void {
    this.#unpublished = 0;
    header[RECEIVED] = this.#received;
    Atomics.exchange(header, HEAD, this.#head);
    if (Atomics.load(header, PRODUCER_SLEEPING) !== 0) futexWake(this.#headWord, 1);
  }

  /**
   * The next message, in place, if there is one, without waiting; the
   * previous one is released first. The view is valid until the next
   * receive or `release()`.
   *
   * @returns The message, or null when the ring is empty.
   */
  tryReceive(): Uint8Array | null {
    const header = this.#live("receive");
    this.#releaseLocally(header);
    let head = this.#head;
    if (head === this.#seenTail) {
      this.#seenTail = Atomics.load(header, TAIL);
      if (head === this.#seenTail) {
        // Running empty: let the producer see all the room there is.
        if (this.#unpublished !== 0) this.#publishHead(header);
        return null;
      }
    }
    const lengths = this.#lengths;
    const capacity = this.#capacity;
    let length = lengths[head >> 2]!;
    if (length === PADDING) {
      head = 0;
      length = lengths[0]!;
    }
    let next = head + recordBytes(length);
    if (next === capacity) next = 0;
    this.#next = next;
    this.#nextBytes = next > this.#head ? next - this.#head : next - this.#head + capacity;
    const start = head + RECORD_HEADER;
    return this.#data.subarray(start, start + length);
  }

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
    const timeout = timeoutMs === undefined ? Infinity : checkTimeout(timeoutMs);
    const first = this.tryReceive();
    if (first !== null || timeout === 0) return first;
    const header = this.#header;
    let start = 0;
    if (this.#spinMs > 0) {
      // Poll tail; read the clock only every 64 polls, as it costs more than a poll.
      const head = this.#head;
      let end = Infinity;
      let tail = head;
      for (let i = 1; (tail = Atomics.load(header, TAIL)) === head; i++) {
        if ((i & 63) !== 0) continue;
        const now = performance.now();
        if (start === 0) {
          start = now;
          end = now + Math.min(timeout, this.#spinMs);
        } else if (now >= end) break;
      }
      // The tail just seen spares tryReceive another look at it.
      this.#seenTail = tail;
      const message = this.tryReceive();
      if (message !== null) return message;
    }
    if (start === 0) start = performance.now();
    const deadline = start + timeout;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) return null;
      const tail = this.#sleepOnTail(header);
      if (tail !== undefined) {
        futexWait(this.#tailWord, tail, left);
        Atomics.store(header, CONSUMER_SLEEPING, 0);
      }
      const message = this.tryReceive();
      if (message !== null) return message;
    }
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
    return this.#receiveAsync(timeout);
  }

  async #receiveAsync(timeout: number): Promise<Uint8Array | null> {
    const first = this.tryReceive();
    if (first !== null) return first;
    const deadline = performance.now() + timeout;
    const header = this.#header;
    for (;;) {
      let left = deadline - performance.now();
      if (left <= 0) return null;
      await futexWaitAsync(this.#tailWord, this.#head, Math.min(this.#pollMs, left), this.#pollMs);
      let message = this.tryReceive();
      if (message !== null) return message;
      left = deadline - performance.now();
      if (left <= 0) return null;
      const tail = this.#sleepOnTail(header);
      if (tail !== undefined) {
        try {
          await futexWaitAsync(this.#tailWord, tail, left, 0);
        } finally {
          if (header.length !== 0) Atomics.store(header, CONSUMER_SLEEPING, 0);
        }
      }
      message = this.tryReceive();
      if (message !== null) return message;
    }
  }

  /** Announces the consumer's sleep; returns the tail to sleep on, or undefined if it moved. */
  #sleepOnTail(header: Int32Array): number | undefined {
    Atomics.exchange(header, CONSUMER_SLEEPING, 1);
    const tail = Atomics.load(header, TAIL);
    if (tail !== this.#head) {
      Atomics.store(header, CONSUMER_SLEEPING, 0);
      return undefined;
    }
    return tail;
  }
}

function messageBytes(message: unknown, max: number): Uint8Array {
  if (!ArrayBuffer.isView(message)) {
    throw new TypeError(
      `Cannot send: expected a TypedArray or DataView, got ${typeName(message)}`,
    );
  }
  if (message.byteLength > max) {
    throw new RangeError(
      `Cannot send a message of ${message.byteLength} bytes: the channel carries at most ${max} (half its capacity)`,
    );
  }
  return message instanceof Uint8Array
    ? message
    : new Uint8Array(message.buffer, message.byteOffset, message.byteLength);
}

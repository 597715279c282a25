/**
 * A one-to-many broadcast ring in shared memory: one publisher, any number
 * of subscribers, and every subscriber sees every message, in order, as
 * long as it keeps up.
 *
 * The publisher never waits: it overwrites the oldest slot. A subscriber
 * that falls a whole ring behind learns it: it skips to the oldest message
 * still there and adds what it missed to its `lost` count. Each slot carries
 * a seqlock stamp (odd while the publisher writes it), read before and
 * after copying the message out, so a copy torn by an overwrite is
 * detected and counted as lost, never returned.
 *
 * Subscribers join and leave at any time; a new one starts at the current
 * head (it sees messages published after it joined). Their cursors are
 * their own (process memory): the publisher knows nothing of them.
 *
 * Layout (all words little-endian i32; docs/messaging.md has the protocol):
 *
 * | offset | word               | meaning                                                |
 * | ------ | ------------------ | ------------------------------------------------------ |
 * | 0      | magic              | {@linkcode BROADCAST_MAGIC} ("BCS1")                    |
 * | 4      | slots              | a power of two, 2 to 2^20                              |
 * | 8      | slotBytes          | a multiple of 64                                       |
 * | 12     | maxMessage         | slotBytes - 8                                          |
 * | 16     | publisher          | its owner id (pid, start-time tag), 0 before the first publish |
 * | 20     | closed             | bit 0: the publisher ended the stream                  |
 * | 64     | head               | messages published (wraps at 2^32; subscribers' futex word) |
 * | 68     | sleeping           | 1 while a subscriber may sleep                         |
 * | 128    | slots              | each: stamp, length, payload                           |
 *
 * Message m goes in slot m % slots with stamp 2m + 2 (2m + 1 while being
 * written; stamps wrap at 2^32).
 *
 * @example
 * ```ts
 * import { Mapping } from "@shmkit/shmkit";
 * import { Broadcast } from "@shmkit/shmkit/messaging";
 * const shape = { slots: 64, maxMessage: 56 };
 * using mapping = Mapping.anonymous(Broadcast.byteLengthFor(shape));
 * const publisher = Broadcast.init(mapping.view(), shape);
 * const subscriber = Broadcast.from(mapping.view()).subscribe();
 * publisher.publish(new TextEncoder().encode("tick"));
 * publisher.end();
 * for await (const message of subscriber) console.log(new TextDecoder().decode(message));
 * ```
 *
 * @module
 */
import { checkTimeout } from "../sync/wait.ts";
import {
  checkSettings,
  checkShape,
  checkView,
  Copier,
  corrupted,
  isValidId,
  iterable,
  iterate,
  messageBytes,
  MessagingError,
  runAsync,
  runSync,
  selfId,
  type Settings,
  signalOf,
  type SignalOptions,
  type SlotShape,
  type WaitSettings,
  wakeTarget,
} from "./_common.ts";
import {
  BROADCAST_HEADER_BYTES,
  BROADCAST_MAGIC,
  BROADCAST_SLOT_HEADER,
  CLOSED,
  HEAD,
  MAGIC,
  MAX_MESSAGE,
  PUBLISHER,
  Ring,
  SLEEPING,
  SLOT_BYTES,
  SLOTS,
  stamp,
  WHAT,
} from "./_broadcast_ring.ts";

export {
  BROADCAST_HEADER_BYTES,
  BROADCAST_MAGIC,
  BROADCAST_SLOT_HEADER,
} from "./_broadcast_ring.ts";

/** Options of {@linkcode Broadcast.init} and {@linkcode Broadcast.from}. */
export type BroadcastOptions = WaitSettings;
/**
 * A handle on a broadcast ring (see the module doc): the publisher's (the
 * first to `publish`, or to `init` it) and a factory of subscribers.
 */
export class Broadcast {
  readonly #ring: Ring;
  readonly #settings: Settings;
  #closed = false;
  #publishing = false;

  private constructor(ring: Ring, settings: Settings) {
    this.#ring = ring;
    this.#settings = settings;
  }

  /**
   * Bytes a ring of this shape needs: 128 + slots * slotBytes, slotBytes
   * being 8 + maxMessage rounded up to 64.
   *
   * @throws {RangeError} For slots not a power of two from 2 to 2^20, or maxMessage above 2^24.
   */
  static byteLengthFor(shape: SlotShape): number {
    const { slots, slotBytes } = checkShape(shape, BROADCAST_SLOT_HEADER);
    return BROADCAST_HEADER_BYTES + slots * slotBytes;
  }

  /**
   * Lays out a new, empty ring in `view` and attaches to it.
   *
   * @throws {TypeError} When `view` is not a TypedArray or DataView.
   * @throws {RangeError} When it is misaligned or too short, or the shape is out of range.
   */
  static init(view: ArrayBufferView, shape: SlotShape, options?: BroadcastOptions): Broadcast {
    const { slots, slotBytes } = checkShape(shape, BROADCAST_SLOT_HEADER);
    const bytes = checkView(
      view,
      "place a broadcast ring",
      BROADCAST_HEADER_BYTES + slots * slotBytes,
    );
    const settings = checkSettings(options);
    const all = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2);
    Atomics.store(all, MAGIC, 0);
    all.fill(0, 0, BROADCAST_HEADER_BYTES >> 2);
    for (let i = 0; i < slots; i++) {
      const s = (BROADCAST_HEADER_BYTES + i * slotBytes) >> 2;
      all[s] = 0;
      all[s + 1] = 0;
    }
    all[SLOTS] = slots;
    all[SLOT_BYTES] = slotBytes;
    all[MAX_MESSAGE] = slotBytes - BROADCAST_SLOT_HEADER;
    Atomics.store(all, MAGIC, BROADCAST_MAGIC);
    return new Broadcast(new Ring(bytes, slots, slotBytes, settings), settings);
  }

  /**
   * Attaches to a ring laid out with {@linkcode Broadcast.init}.
   *
   * @throws {TypeError} When `view` is not a TypedArray or DataView.
   * @throws {RangeError} When it is misaligned, or shorter than the header says.
   * @throws {MessagingError} CORRUPTED when the memory holds no ring, or its header breaks the rules.
   */
  static from(view: ArrayBufferView, options?: BroadcastOptions): Broadcast {
    const action = "attach to a broadcast ring";
    const bytes = checkView(view, action, BROADCAST_HEADER_BYTES);
    const settings = checkSettings(options);
    const h = new Int32Array(bytes.buffer, bytes.byteOffset, BROADCAST_HEADER_BYTES / 4);
    const bad = (word: string, value: number, rule: string): never => {
      throw corrupted(WHAT, action, word, value, rule);
    };
    const magic = Atomics.load(h, MAGIC);
    if (magic !== BROADCAST_MAGIC) {
      bad("magic", magic, `an initialised ring has ${BROADCAST_MAGIC}`);
    }
    const slots = h[SLOTS]!;
    if (slots < 2 || slots > 1 << 20 || (slots & (slots - 1)) !== 0) {
      bad("slots", slots, "it must be a power of two from 2 to 2^20");
    }
    const slotBytes = h[SLOT_BYTES]!;
    if (slotBytes < 64 || slotBytes % 64 !== 0 || slotBytes > (1 << 24) + 64) {
      bad("slotBytes", slotBytes, "it must be a multiple of 64 from 64 to 2^24 + 64");
    }
    if (h[MAX_MESSAGE] !== slotBytes - BROADCAST_SLOT_HEADER) {
      bad("maxMessage", h[MAX_MESSAGE]!, `it must be slotBytes - ${BROADCAST_SLOT_HEADER}`);
    }
    if (bytes.byteLength < BROADCAST_HEADER_BYTES + slots * slotBytes) {
      throw new RangeError(
        `Cannot ${action} in ${bytes.byteLength} bytes: its slots need ${
          BROADCAST_HEADER_BYTES + slots * slotBytes
        }`,
      );
    }
    const ring = new Ring(bytes, slots, slotBytes, settings);
    ring.ended(action);
    return new Broadcast(ring, settings);
  }

  /** Number of slots: how far a subscriber may fall behind without losing messages. */
  get slots(): number {
    return this.#ring.slots;
  }

  /** The largest message, in bytes. */
  get maxMessageBytes(): number {
    return this.#ring.maxMessage;
  }

  /** Messages published so far (u32, wraps). */
  get published(): number {
    return Atomics.load(this.#ring.live("read the ring", this.#closed), HEAD) >>> 0;
  }

  /** Takes the publisher's place, unless a live process holds it. */
  #claim(action: string): void {
    const h = this.#ring.header;
    const me = selfId();
    for (;;) {
      const id = Atomics.load(h, PUBLISHER);
      if (id === me) break;
      if (id !== 0) {
        if (!isValidId(id)) this.#ring.fail(action, "publisher", id, "it must be 0 or an owner id");
        if (!this.#ring.liveness.gone(id)) {
          throw new MessagingError(
            "ROLE_TAKEN",
            `Cannot ${action}: process ${id & 0x3fffff} is the ring's publisher`,
          );
        }
      }
      if (Atomics.compareExchange(h, PUBLISHER, id, me) === id) break;
    }
    this.#publishing = true;
  }

  /**
   * Publishes a copy of `message` to every subscriber, never waiting: the
   * oldest message is overwritten. The first call makes this process the
   * publisher (a dead publisher's place is taken over).
   *
   * @throws {TypeError} When `message` is not a TypedArray or DataView.
   * @throws {RangeError} When it is longer than `maxMessageBytes`.
   * @throws {MessagingError} ROLE_TAKEN when another live process publishes; CLOSED once ended; CORRUPTED.
   */
  publish(message: ArrayBufferView): void {
    const ring = this.#ring;
    const bytes = messageBytes(message, ring.maxMessage, "publish");
    const h = ring.live("publish", this.#closed);
    if (!this.#publishing) this.#claim("publish");
    if (h[CLOSED] !== 0 && ring.ended("publish")) {
      throw new MessagingError("CLOSED", "Cannot publish: the stream was ended");
    }
    // A plain read: only the publisher writes head, and #claim's CAS ordered
    // a dead predecessor's last store before it.
    const m = h[HEAD]!;
    const s = ring.slot(m);
    Atomics.store(h, s, (stamp(m) - 1) | 0);
    h[s + 1] = bytes.length;
    ring.copier.in(bytes, (s << 2) + BROADCAST_SLOT_HEADER);
    Atomics.store(h, s, stamp(m));
    Atomics.store(h, HEAD, (m + 1) | 0);
    wakeTarget(h, ring.target.word, SLEEPING);
  }

  /** Ends the stream: subscribers receive what is left, then {@linkcode Subscriber.DONE}. */
  end(): void {
    const h = this.#ring.live("end the stream", this.#closed);
    Atomics.or(h, CLOSED, 1);
    Atomics.add(h, HEAD, 0);
    // Wake every sleeper: they wait on head, which did not move.
    Atomics.store(h, SLEEPING, 1);
    wakeTarget(h, this.#ring.target.word, SLEEPING);
  }

  /**
   * A new subscriber, starting at the current head: it receives the
   * messages published from now on.
   */
  subscribe(): Subscriber {
    this.#ring.live("subscribe", this.#closed);
    return new Subscriber([this.#ring, this.#settings]);
  }

  /** Ends this handle (its subscribers stay usable). Idempotent. */
  close(): void {
    this.#closed = true;
  }

  /** `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** One subscriber's cursor over a broadcast ring. */
export class Subscriber {
  /** What receivers get once the stream ended (or its publisher died) and was read to the end. */
  static readonly DONE: unique symbol = Symbol("Subscriber.DONE");

  readonly #ring: Ring;
  readonly #settings: Settings;
  readonly #copier: Copier;
  #cursor: number;
  /** The head last read: messages before it are published. */
  #head: number;
  #lost = 0;
  #closed = false;
  /** The last `receiveInto` target that passed the checks. */
  #target: Uint8Array | undefined;

  /**
   * Made by {@linkcode Broadcast.subscribe}, which passes its internals.
   *
   * @param internals Not for callers.
   */
  constructor(internals: object) {
    const [ring, settings] = internals as [Ring, Settings];
    if (!(ring instanceof Ring)) throw new TypeError("Cannot subscribe: use Broadcast.subscribe()");
    this.#ring = ring;
    this.#settings = settings;
    this.#cursor = this.#head = Atomics.load(ring.header, HEAD);
    this.#copier = new Copier(ring.header, ring.bytes);
  }

  /** Messages this subscriber missed because it fell a whole ring behind (or a copy was torn). */
  get lost(): number {
    return this.#lost;
  }

  /** Messages published and not yet received by this subscriber, at most `slots`. */
  get behind(): number {
    const h = this.#ring.live("read the ring", this.#closed);
    return Math.min(this.#ring.slots, (Atomics.load(h, HEAD) - this.#cursor) >>> 0);
  }

  /** Leaves: later calls throw ClosedError. Idempotent. */
  close(): void {
    this.#closed = true;
  }

  /** `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  readonly #op = (): Uint8Array | null | typeof Subscriber.DONE =>
    this.#read(undefined) as Uint8Array | null | typeof Subscriber.DONE;

  /** The next message: a copy, or its length once copied into `into`. */
  #read(into: Uint8Array | undefined): Uint8Array | number | null | typeof Subscriber.DONE {
    const action = "receive";
    const ring = this.#ring;
    const h = ring.live(action, this.#closed);
    const n = ring.slots;
    for (let tries = 0; tries < 64; tries++) {
      const c = this.#cursor;
      // Messages up to the head last read are published: head (the publisher's
      // busiest line) is read again only once they are received, or overwritten.
      let head = this.#head;
      if (head === c) this.#head = head = Atomics.load(h, HEAD);
      const ahead = (head - c) | 0;
      if (ahead === 0) {
        if (!ring.finished(action)) return null;
        // Head again: read before the end, it may have missed the last messages.
        this.#head = Atomics.load(h, HEAD);
        if (this.#head === c) return Subscriber.DONE;
        continue;
      }
      if (ahead < 0) {
        ring.fail(action, "head", head, `it went back from ${c >>> 0}`);
      }
      if (ahead > n) {
        this.#lost += ahead - n;
        this.#cursor = (head - n) | 0;
        continue;
      }
      const s = ring.slot(c);
      // A plain read: the atomic read of head that showed message c published
      // ordered its stamp and payload before this. A surprise is read again atomically.
      let first = h[s]!;
      if (first !== stamp(c)) first = Atomics.load(h, s);
      if (first !== stamp(c)) {
        const d = (first - stamp(c)) | 0;
        // Overwritten (or being overwritten) by a later lap: skip ahead.
        if (d > 0 && (d % (2 * n) === 0 || (d + 1) % (2 * n) === 0)) {
          this.#lost++;
          this.#cursor = (c + 1) | 0;
          this.#head = Atomics.load(h, HEAD);
          continue;
        }
        ring.fail(
          action,
          `stamp of slot ${c & (n - 1)}`,
          first,
          `message ${c >>> 0} has ${stamp(c)}`,
        );
      }
      const length = h[s + 1]!;
      const start = (s << 2) + BROADCAST_SLOT_HEADER;
      let copy: Uint8Array | number | undefined;
      if (length >= 0 && length <= ring.maxMessage) {
        if (into === undefined) copy = ring.bytes.slice(start, start + length);
        else {
          this.#copier.out(into, start, length);
          copy = length;
        }
      }
      if (Atomics.load(h, s) !== first) {
        this.#lost++;
        this.#cursor = (c + 1) | 0;
        this.#head = Atomics.load(h, HEAD);
        continue;
      }
      if (copy === undefined) {
        return ring.fail(
          action,
          `length of slot ${c & (n - 1)}`,
          length,
          `it must be 0 to ${ring.maxMessage}`,
        );
      }
      this.#cursor = (c + 1) | 0;
      return copy;
    }
    return null;
  }

  /**
   * The common case of `#read(into)`, small enough to be inlined: the next
   * message is before the head last read, and its stamp says it is intact
   * before and after the copy. Its length; -1 for anything else (`#read`
   * then looks again, and decides).
   */
  #quick(into: Uint8Array): number {
    const c = this.#cursor;
    const ring = this.#ring;
    const h = ring.header;
    if (this.#closed || ring.broken !== undefined || h.length === 0) return -1;
    if (this.#head === c) {
      // Caught up: one atomic read of head, as `#read` would make first.
      const head = Atomics.load(h, HEAD);
      const ahead = (head - c) | 0;
      if (ahead <= 0 || ahead > ring.slots) return -1;
      this.#head = head;
    }
    const s = ring.slot(c);
    // Plain: the atomic read of head that showed message c published ordered it.
    const first = h[s]!;
    const length = h[s + 1]!;
    if (first !== stamp(c) || length < 0 || length > ring.maxMessage) return -1;
    this.#copier.out(into, (s << 2) + BROADCAST_SLOT_HEADER, length);
    if (Atomics.load(h, s) !== first) return -1;
    this.#cursor = (c + 1) | 0;
    return length;
  }

  /**
   * A copy of the next message, if there is one, without waiting.
   *
   * @returns The message; null when none is there; {@linkcode Subscriber.DONE} at the end.
   * @throws {MessagingError} CORRUPTED when a word breaks the layout's rules.
   */
  tryReceive(): Uint8Array | null | typeof Subscriber.DONE {
    return this.#op();
  }

  /**
   * Receives the next message into `target`, blocking like `receive()`,
   * without allocating.
   *
   * @param target Where the message is copied: at least `maxMessageBytes` long.
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @returns The message's length; null when the time ran out; {@linkcode Subscriber.DONE} at the end.
   * @throws {TypeError} When `target` is not a Uint8Array.
   * @throws {RangeError} When it is shorter than `maxMessageBytes`.
   * @throws {MessagingError} CORRUPTED when a word breaks the layout's rules.
   */
  receiveInto(target: Uint8Array, timeoutMs?: number): number | null | typeof Subscriber.DONE {
    // The checks run once per target (a receive loop passes the same one), and
    // again once it is detached.
    if (target !== this.#target || target.length === 0) this.#checkTarget(target);
    const timeout = checkTimeout(timeoutMs);
    const quick = this.#quick(target);
    if (quick >= 0) return quick;
    // A message at hand costs no wait loop (nor its closures and clock reads).
    const first = this.#read(target) as number | null | typeof Subscriber.DONE;
    if (first !== null || timeout === 0) return first;
    const s = this.#settings;
    const op = (): number | null | typeof Subscriber.DONE =>
      this.#read(target) as number | null | typeof Subscriber.DONE;
    return runSync(() => this.#ring.target, op, timeout, s.spinMs, s.checkIntervalMs);
  }

  /** Checks a `receiveInto` target, and remembers it as checked. */
  #checkTarget(target: Uint8Array): void {
    if (!(target instanceof Uint8Array)) {
      throw new TypeError("Cannot receive: expected a Uint8Array to copy the message into");
    }
    if (target.length < this.#ring.maxMessage) {
      throw new RangeError(
        `Cannot receive into ${target.length} bytes: a message may have ${this.#ring.maxMessage}`,
      );
    }
    // Shrunk later (a resizable buffer), it fails in the copy (the message stays unread).
    this.#target = target;
  }

  /** The largest message, in bytes. */
  get maxMessageBytes(): number {
    return this.#ring.maxMessage;
  }

  /**
   * A copy of the next message, blocking the thread until one is published.
   *
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @returns The message; null when the time ran out; {@linkcode Subscriber.DONE} once the stream ended or its publisher died.
   * @throws {MessagingError} CORRUPTED when a word breaks the layout's rules.
   */
  receive(timeoutMs?: number): Uint8Array | null | typeof Subscriber.DONE {
    const timeout = checkTimeout(timeoutMs);
    const first = this.#op();
    // A message at hand, or no time to wait: no wait loop (nor its closures and clock reads).
    if (first !== null || timeout === 0) return first;
    const s = this.#settings;
    return runSync(() => this.#ring.target, this.#op, timeout, s.spinMs, s.checkIntervalMs);
  }

  /**
   * A copy of the next message, waiting without blocking the event loop.
   *
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @param options `signal` to abort the wait.
   * @returns The message; null when the time ran out; {@linkcode Subscriber.DONE} at the end.
   * @throws {MessagingError} CORRUPTED when a word breaks the layout's rules.
   */
  receiveAsync(
    timeoutMs?: number,
    options?: SignalOptions,
  ): Promise<Uint8Array | null | typeof Subscriber.DONE> {
    const timeout = checkTimeout(timeoutMs);
    const signal = signalOf(options);
    const s = this.#settings;
    const target = () => this.#ring.target;
    return runAsync(target, this.#op, timeout, s.pollMs, s.checkIntervalMs, signal);
  }

  /** The messages until the stream ends: `for await (const message of subscriber)`. */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array, undefined> {
    return iterate<Uint8Array>(() => this.receiveAsync());
  }

  /** As `for await` over this {@linkcode Subscriber}, ended by `options.signal` (the pending step rejects). */
  messages(options?: SignalOptions): AsyncIterable<Uint8Array, undefined> {
    return iterable(options, (o) => this.receiveAsync(undefined, o));
  }
}

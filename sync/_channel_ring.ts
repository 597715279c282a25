/**
 * Internal: the ring of a channel, both ends' positions and the records,
 * without waiting (the waits are in _channel_wait.ts). Every word read from
 * shared memory is checked against the layout's rules before use: a peer
 * may be buggy or hostile, and a wrong position or length must not hand
 * out bytes the producer did not write, or loop forever.
 *
 * @module
 */
import { futexWake } from "./wait.ts";
import { rememberFutexWord } from "./_futex.ts";
import { ClosedError } from "../core/errors.ts";
import { PeerWatch, selfId } from "./_channel_peer.ts";
import {
  CHANNEL_HEADER_BYTES,
  ChannelError,
  checkId,
  CLOSED,
  CONSUMER,
  CONSUMER_CLOSED,
  CONSUMER_SLEEPING,
  corrupted,
  HEAD,
  MAX_MESSAGE,
  PADDING,
  PRODUCER,
  PRODUCER_CLOSED,
  PRODUCER_SLEEPING,
  RECEIVED,
  RECORD_HEADER,
  recordBytes,
  SENT,
  TAIL,
} from "./_channel_layout.ts";

/** Messages up to this many bytes are copied in by a loop rather than set(). */
const SHORT = 16;

/** The ring's memory and both ends' private state. */
export class Ring {
  readonly header: Int32Array;
  readonly data: Uint8Array;
  /** The data's buffer and where the data starts in it: views are made from these. */
  readonly buffer: ArrayBufferLike;
  readonly dataStart: number;
  readonly lengths: Int32Array;
  readonly capacity: number;
  readonly maxMessage: number;
  readonly tailWord: Int32Array;
  readonly headWord: Int32Array;
  readonly checkIntervalMs: number;
  /** Set once a word broke the rules: every later call throws it. */
  broken: ChannelError | undefined;
  /** This object's roles (PRODUCER_CLOSED / CONSUMER_CLOSED bits), and whether it closed. */
  roles = 0;
  closed = false;
  readonly #producerWatch: PeerWatch;
  readonly #consumerWatch: PeerWatch;
  // Producer state: its own tail, the last head it saw, messages sent.
  tail: number;
  seenHead: number;
  sent: number;
  reserved = -1;
  reservedAt = 0;
  // Consumer state: its own head, bytes released but not yet published,
  // the last tail it saw, the position after the message handed out (-1:
  // none) and its record's bytes, and messages released.
  head: number;
  unpublished = 0;
  seenTail: number;
  next = -1;
  nextBytes = 0;
  received: number;
  /** A word the consumer's polls read to fetch a record early; nothing uses it. */
  peek = 0;
  /** Messages `sent` vouches for beyond those received: a record needs one. */
  budget: number;

  /** Over a header `checkHeader` accepted, with the capacity it returned. */
  constructor(bytes: Uint8Array, capacity: number, checkIntervalMs: number) {
    const header = new Int32Array(bytes.buffer, bytes.byteOffset, CHANNEL_HEADER_BYTES / 4);
    this.header = header;
    this.capacity = capacity;
    this.maxMessage = Atomics.load(header, MAX_MESSAGE);
    this.checkIntervalMs = checkIntervalMs;
    this.#producerWatch = new PeerWatch(checkIntervalMs);
    this.#consumerWatch = new PeerWatch(checkIntervalMs);
    const start = bytes.byteOffset + CHANNEL_HEADER_BYTES;
    this.data = new Uint8Array(bytes.buffer, start, capacity);
    this.buffer = bytes.buffer;
    this.dataStart = start;
    this.lengths = new Int32Array(bytes.buffer, start, capacity / 4);
    this.tailWord = header.subarray(TAIL, TAIL + 1);
    this.headWord = header.subarray(HEAD, HEAD + 1);
    rememberFutexWord(this.tailWord); // their addresses, cached once (Node)
    rememberFutexWord(this.headWord);
    this.tail = Atomics.load(header, TAIL);
    this.seenHead = Atomics.load(header, HEAD);
    this.head = this.seenHead;
    this.seenTail = this.tail;
    this.sent = Atomics.load(header, SENT);
    this.received = Atomics.load(header, RECEIVED);
    this.budget = 0;
    this.budget = this.#budget("attach to a channel");
  }

  /** The header, once this object may still be used for `action`. */
  live(action: string): Int32Array {
    if (this.broken !== undefined) throw this.broken;
    const header = this.header;
    if (header.length === 0) throw new ClosedError(action, "channel's memory");
    if (this.closed) throw new ClosedError(action, "channel");
    return header;
  }

  /** Records the error of a broken rule, so that every later call throws it too. */
  fail(error: ChannelError): never {
    this.broken = error;
    throw error;
  }

  /** Takes the producer's or the consumer's place, as this process. */
  claim(role: number, action: string): void {
    if ((this.roles & role) !== 0) return;
    const index = role === PRODUCER_CLOSED ? PRODUCER : CONSUMER;
    const name = role === PRODUCER_CLOSED ? "producer" : "consumer";
    const id = selfId();
    const found = Atomics.compareExchange(this.header, index, 0, id);
    if (found !== 0 && found !== id) {
      this.#id(index, action);
      throw new ChannelError(
        "ROLE_TAKEN",
        `Cannot ${action}: pid ${
          found & 0x3fffff
        } is this channel's ${name}, and a channel has one`,
      );
    }
    this.roles |= role;
  }

  /** An owner id word, checked (0: nobody yet). */
  #id(index: number, action: string): number {
    const id = Atomics.load(this.header, index);
    try {
      return checkId(id, index === PRODUCER ? "producer" : "consumer", action);
    } catch (error) {
      return this.fail(error as ChannelError);
    }
  }

  /** The closed word, checked. */
  #closedWord(action: string): number {
    const closed = Atomics.load(this.header, CLOSED);
    if ((closed & ~(PRODUCER_CLOSED | CONSUMER_CLOSED)) !== 0) {
      this.fail(corrupted(action, "closed", closed, "only bits 0 and 1 may be set"));
    }
    return closed;
  }

  /** Whether the other end's process is gone; looks at most once per check interval. */
  #otherGone(index: number, action: string): boolean {
    const id = this.#id(index, action);
    return (index === PRODUCER ? this.#producerWatch : this.#consumerWatch).gone(id);
  }

  /** A sleeping flag the other end writes, checked (0 or 1). */
  #flag(index: number, action: string): number {
    return this.#checkFlag(Atomics.load(this.header, index), index, action);
  }

  /** A sleeping flag's value, checked (0 or 1). */
  #checkFlag(value: number, index: number, action: string): number {
    if (value !== 0 && value !== 1) {
      const word = index === CONSUMER_SLEEPING ? "consumerSleeping" : "producerSleeping";
      this.fail(corrupted(action, word, value, "a sleeping flag is 0 or 1"));
    }
    return value;
  }

  /** A position word, checked: a multiple of 8 below the capacity. */
  #position(value: number, word: string, action: string): number {
    if (value < 0 || value >= this.capacity || (value & 7) !== 0) {
      this.fail(
        corrupted(action, word, value, `it must be a multiple of 8 below ${this.capacity}`),
      );
    }
    return value;
  }

  /** Bytes from `from` forward to `to` around the ring. */
  #distance(from: number, to: number): number {
    const d = to - from;
    return d < 0 ? d + this.capacity : d;
  }

  // --- producer

  /** Reads head: it only moves forward from the last one seen, and never past tail. */
  #loadHead(): number {
    const head = Atomics.load(this.header, HEAD);
    if (head === this.seenHead) return head;
    this.#position(head, "head", "send");
    const room = this.#distance(this.seenHead, this.tail);
    if (this.#distance(this.seenHead, head) > room) {
      this.fail(
        corrupted(
          "send",
          "head",
          head,
          `it may only move forward from ${this.seenHead} up to tail ${this.tail}`,
        ),
      );
    }
    return head;
  }

  /** Where a record of `size` bytes goes with head at `head`: its position, or -1 if full. */
  #placeFor(size: number, head: number): number {
    const tail = this.tail;
    if (tail >= head) {
      const end = this.capacity - tail;
      // Ending exactly at the end wraps tail to 0, which must not equal head.
      if (size < end || (size === end && head !== 0)) return tail;
      return size < head ? 0 : -1;
    }
    return tail + size < head ? tail : -1;
  }

  /** Throws for a closed channel, or a garbled closed word. */
  #closedOnSend(): void {
    const closed = this.#closedWord("send");
    if ((closed & CONSUMER_CLOSED) !== 0) {
      throw new ChannelError("CONSUMER_CLOSED", "Cannot send: the consumer closed the channel");
    }
    if ((closed & PRODUCER_CLOSED) !== 0) throw new ClosedError("send", "channel");
  }

  /**
   * Where a record of `size` bytes goes now: its position, or -1 when the
   * ring is full.
   *
   * @throws {ChannelError} CONSUMER_CLOSED or CONSUMER_DIED while full.
   */
  place(size: number): number {
    // A plain read on every send: a close seen one send late is still seen.
    const closed = this.header[CLOSED]!;
    if (closed !== 0) this.#closedOnSend();
    const at = this.#placeFor(size, this.seenHead);
    if (at >= 0) return at;
    // Look at the consumer's line only when the ring looks full.
    this.seenHead = this.#loadHead();
    const again = this.#placeFor(size, this.seenHead);
    if (again < 0 && this.#otherGone(CONSUMER, "send")) {
      throw new ChannelError(
        "CONSUMER_DIED",
        "Cannot send: the channel is full and its consumer's process is gone",
      );
    }
    return again;
  }

  /** Writes a record's header (and the padding marker), publishes tail, wakes a sleeping consumer. */
  publish(at: number, length: number): void {
    const header = this.header;
    const lengths = this.lengths;
    if (at !== this.tail) lengths[this.tail >> 2] = PADDING;
    lengths[at >> 2] = length;
    lengths[(at >> 2) + 1] = 0;
    let tail = at + recordBytes(length);
    if (tail === this.capacity) tail = 0;
    this.tail = tail;
    this.sent = (this.sent + 1) | 0;
    // A plain store: publishing tail below orders it.
    header[SENT] = this.sent;
    // Publish, then look whether the consumer sleeps. The exchange is a full
    // barrier, so the consumer either sees the new tail or is seen asleep.
    Atomics.exchange(header, TAIL, tail);
    if (this.#flag(CONSUMER_SLEEPING, "send") !== 0) futexWake(this.tailWord, 1);
  }

  /** Copies `bytes` into a record if there is room; whether it did. */
  trySend(bytes: Uint8Array): boolean {
    if (this.reserved !== -1) {
      throw new Error("Cannot send: a reservation is open; commit() it first");
    }
    if ((this.roles & PRODUCER_CLOSED) === 0) this.claim(PRODUCER_CLOSED, "send");
    const length = bytes.byteLength;
    const at = this.place(recordBytes(length));
    if (at < 0) return false;
    const data = this.data;
    const start = at + RECORD_HEADER;
    if (length <= SHORT) {
      // A short copy by hand: set() is a builtin call (~15 ns in V8).
      for (let i = 0; i < length; i++) data[start + i] = bytes[i]!;
    } else {
      data.set(bytes, start);
    }
    this.publish(at, length);
    return true;
  }

  /** Reserves a record for `length` bytes; its payload view, or null when full. */
  tryReserve(length: number): Uint8Array | null {
    if (this.reserved !== -1) {
      throw new Error("Cannot reserve: a reservation is open; commit() it first");
    }
    this.claim(PRODUCER_CLOSED, "send");
    const at = this.place(recordBytes(length));
    if (at < 0) return null;
    this.reserved = length;
    this.reservedAt = at;
    const start = at + RECORD_HEADER;
    return this.data.subarray(start, start + length);
  }

  // --- consumer

  /** Frees the handed-out message in this process; publishes when it is time to. */
  releaseLocally(): void {
    if (this.next === -1) return;
    this.head = this.next;
    this.next = -1;
    this.received = (this.received + 1) | 0;
    this.unpublished += this.nextBytes;
    // A plain read: only a hint to publish early (publishHead looks again, ordered).
    if (
      this.unpublished >= this.capacity >> 3 ||
      this.#checkFlag(this.header[PRODUCER_SLEEPING]!, PRODUCER_SLEEPING, "receive") !== 0
    ) {
      this.publishHead();
    }
  }

  /** Publishes head (and the received count), then wakes a sleeping producer. */
  publishHead(): void {
    const header = this.header;
    this.unpublished = 0;
    header[RECEIVED] = this.received;
    Atomics.exchange(header, HEAD, this.head);
    if (this.#flag(PRODUCER_SLEEPING, "receive") !== 0) futexWake(this.headWord, 1);
  }

  /** Reads tail: it only moves forward from the last one seen, and never laps head. */
  #loadTail(): number {
    return this.#acceptTail(Atomics.load(this.header, TAIL));
  }

  /** A tail just read, checked as `#loadTail` does; the budget it brings. */
  #acceptTail(tail: number): number {
    if (tail === this.seenTail) return tail;
    this.#position(tail, "tail", "receive");
    if (this.#distance(this.head, tail) < this.#distance(this.head, this.seenTail)) {
      this.fail(
        corrupted(
          "receive",
          "tail",
          tail,
          `it may only move forward from ${this.seenTail}, without passing head ${this.head}`,
        ),
      );
    }
    // Read after tail: it counts at least the records before tail.
    this.budget = this.#budget("receive");
    return tail;
  }

  /**
   * How many messages `sent` says are there to receive: the producer counts
   * a message before it publishes tail, so a record past that count was
   * never sent.
   */
  #budget(action: string): number {
    // A plain read: the atomic load of tail before it orders it.
    const sent = this.header[SENT]!;
    const budget = (sent - this.received) >>> 0;
    if (budget > this.capacity / RECORD_HEADER) {
      this.fail(
        corrupted(
          action,
          "sent",
          sent,
          `with ${this.received} received, more messages would be pending than the ring holds`,
        ),
      );
    }
    return budget;
  }

  /** Whether the producer closed or its process is gone. */
  #producerEnded(): boolean {
    if ((this.#closedWord("receive") & PRODUCER_CLOSED) !== 0) return true;
    return this.#otherGone(PRODUCER, "receive");
  }

  /**
   * Releases the previous message, then hands out the next in place; null
   * when empty, undefined when empty for good (the producer closed or died).
   */
  tryReceive(): Uint8Array | null | undefined {
    if ((this.roles & CONSUMER_CLOSED) === 0) this.claim(CONSUMER_CLOSED, "receive");
    this.releaseLocally();
    const head = this.head;
    if (head === this.seenTail) {
      this.seenTail = this.#loadTail();
      if (head === this.seenTail) {
        // Ended, then still empty: nothing more can come (tail is published first).
        const ended = this.#producerEnded();
        if (ended) this.seenTail = this.#loadTail();
        if (head === this.seenTail) {
          // Running empty: let the producer see all the room there is.
          if (this.unpublished !== 0) this.publishHead();
          return ended ? undefined : null;
        }
      }
    }
    return this.#record(head, this.#distance(head, this.seenTail));
  }

  /**
   * The next message if one is there, like `tryReceive` but without
   * looking whether the producer ended (no clock, no /proc): while the ring
   * is empty it polls tail up to `polls` times, then gives up with null and
   * leaves the ends to the caller's wait loop. For a peer that answers
   * within those polls, a blocking receive costs no clock read at all.
   */
  receiveReady(polls: number): Uint8Array | null {
    if ((this.roles & CONSUMER_CLOSED) === 0) this.claim(CONSUMER_CLOSED, "receive");
    this.releaseLocally();
    const head = this.head;
    if (head === this.seenTail) {
      this.seenTail = this.#loadTail();
      if (head === this.seenTail) {
        // Running empty: let the producer see all the room there is.
        if (this.unpublished !== 0) this.publishHead();
        const header = this.header;
        const lengths = this.lengths;
        const slot = head >> 2;
        let tail = head;
        let peek = 0;
        for (let left = polls; left > 0 && tail === head; left--) {
          tail = Atomics.load(header, TAIL);
          // Unused: fetches the record's line alongside tail, not after it.
          peek ^= lengths[slot]!;
        }
        this.peek = peek;
        if (tail === head) return null;
        this.seenTail = this.#acceptTail(tail);
      }
    }
    return this.#record(head, this.#distance(head, this.seenTail));
  }

  /** The record at `head`, with `used` bytes published from there; checks its words. */
  #record(head: number, used: number): Uint8Array {
    const lengths = this.lengths;
    const capacity = this.capacity;
    let at = head;
    let length = lengths[at >> 2]!;
    let available = used;
    if (length === PADDING) {
      // The record did not fit before the end: it is at 0, and tail past it.
      const skipped = capacity - head;
      if (head === 0 || used <= skipped) {
        this.fail(
          corrupted(
            "receive",
            `record length at ${head}`,
            length,
            `a padding marker needs data wrapped to the start (tail ${this.seenTail})`,
          ),
        );
      }
      at = 0;
      available = used - skipped;
      length = lengths[0]!;
    }
    if (length < 0 || length > this.maxMessage) {
      this.fail(
        corrupted(
          "receive",
          `record length at ${at}`,
          length,
          `messages are 0 to ${this.maxMessage} bytes`,
        ),
      );
    }
    const size = recordBytes(length);
    if (size > available || at + size > capacity) {
      this.fail(
        corrupted(
          "receive",
          `record length at ${at}`,
          length,
          `its record would end past tail ${this.seenTail}`,
        ),
      );
    }
    if (this.budget === 0) {
      this.fail(
        corrupted(
          "receive",
          "tail",
          this.seenTail,
          `sent (${Atomics.load(this.header, SENT)}) counts no message at ${at}`,
        ),
      );
    }
    this.budget--;
    const reserved = lengths[(at >> 2) + 1]!;
    if (reserved !== 0) {
      this.fail(corrupted("receive", `reserved word at ${at + 4}`, reserved, "it must be 0"));
    }
    let next = at + size;
    if (next === capacity) next = 0;
    this.next = next;
    this.nextBytes = this.#distance(head, next);
    // Cheaper than subarray() in V8 (no species lookup); the same view.
    return new Uint8Array(this.buffer, this.dataStart + at + RECORD_HEADER, length);
  }

  /** Messages sent and not released as published; no more than the ring can hold. */
  pending(): number {
    const sent = Atomics.load(this.header, SENT);
    const received = Atomics.load(this.header, RECEIVED);
    const pending = (sent - received) >>> 0;
    if (pending > this.capacity / RECORD_HEADER) {
      this.fail(
        corrupted(
          "read the channel",
          "sent",
          sent,
          `with received ${received}, more messages would be pending than the ring holds`,
        ),
      );
    }
    return pending;
  }

  /** Marks this object's ends closed in the header and wakes the other end. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reserved = -1;
    if (this.header.length === 0 || this.roles === 0) return;
    if ((this.roles & CONSUMER_CLOSED) !== 0 && this.unpublished !== 0) this.publishHead();
    Atomics.or(this.header, CLOSED, this.roles);
    // The other end may sleep: the producer on head, the consumer on tail.
    if ((this.roles & PRODUCER_CLOSED) !== 0) futexWake(this.tailWord);
    if ((this.roles & CONSUMER_CLOSED) !== 0) futexWake(this.headWord);
  }
}

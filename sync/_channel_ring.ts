/**
 * Internal: the ring of a channel, both ends' positions and the records,
 * without waiting (the waits are in channel.ts).
 *
 * @module
 */
import { futexWake } from "./wait.ts";
import {
  CAPACITY,
  CHANNEL_HEADER_BYTES,
  CONSUMER_SLEEPING,
  HEAD,
  MAX_MESSAGE,
  PADDING,
  PRODUCER_SLEEPING,
  RECEIVED,
  RECORD_HEADER,
  recordBytes,
  SENT,
  TAIL,
} from "./_channel_layout.ts";

/** The ring's memory and both ends' private state. */
export class Ring {
  readonly header: Int32Array;
  readonly data: Uint8Array;
  readonly lengths: Int32Array;
  readonly capacity: number;
  readonly maxMessage: number;
  readonly tailWord: Int32Array;
  readonly headWord: Int32Array;
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

  constructor(bytes: Uint8Array) {
    const header = new Int32Array(bytes.buffer, bytes.byteOffset, CHANNEL_HEADER_BYTES / 4);
    this.header = header;
    const capacity = Atomics.load(header, CAPACITY);
    this.capacity = capacity;
    this.maxMessage = Atomics.load(header, MAX_MESSAGE);
    const start = bytes.byteOffset + CHANNEL_HEADER_BYTES;
    this.data = new Uint8Array(bytes.buffer, start, capacity);
    this.lengths = new Int32Array(bytes.buffer, start, capacity / 4);
    this.tailWord = header.subarray(TAIL, TAIL + 1);
    this.headWord = header.subarray(HEAD, HEAD + 1);
    this.tail = Atomics.load(header, TAIL);
    this.seenHead = Atomics.load(header, HEAD);
    this.head = this.seenHead;
    this.seenTail = this.tail;
    this.sent = Atomics.load(header, SENT);
    this.received = Atomics.load(header, RECEIVED);
  }

  // --- producer

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

  /** Where a record of `size` bytes goes now: its position, or -1 when the ring is full. */
  place(size: number): number {
    const at = this.#placeFor(size, this.seenHead);
    if (at >= 0) return at;
    // Look at the consumer's line only when the ring looks full.
    this.seenHead = Atomics.load(this.header, HEAD);
    return this.#placeFor(size, this.seenHead);
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
    if (Atomics.load(header, CONSUMER_SLEEPING) !== 0) futexWake(this.tailWord, 1);
  }

  /** Copies `bytes` into a record if there is room; whether it did. */
  trySend(bytes: Uint8Array): boolean {
    if (this.reserved !== -1) {
      throw new Error("Cannot send: a reservation is open; commit() it first");
    }
    const length = bytes.byteLength;
    const at = this.place(recordBytes(length));
    if (at < 0) return false;
    this.data.set(bytes, at + RECORD_HEADER);
    this.publish(at, length);
    return true;
  }

  /** Reserves a record for `length` bytes; its payload view, or null when full. */
  tryReserve(length: number): Uint8Array | null {
    if (this.reserved !== -1) {
      throw new Error("Cannot reserve: a reservation is open; commit() it first");
    }
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
    if (
      this.unpublished >= this.capacity >> 3 ||
      Atomics.load(this.header, PRODUCER_SLEEPING) !== 0
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
    if (Atomics.load(header, PRODUCER_SLEEPING) !== 0) futexWake(this.headWord, 1);
  }

  /** Releases the previous message, then hands out the next in place, or null when empty. */
  tryReceive(): Uint8Array | null {
    this.releaseLocally();
    let head = this.head;
    if (head === this.seenTail) {
      this.seenTail = Atomics.load(this.header, TAIL);
      if (head === this.seenTail) {
        // Running empty: let the producer see all the room there is.
        if (this.unpublished !== 0) this.publishHead();
        return null;
      }
    }
    const lengths = this.lengths;
    const capacity = this.capacity;
    let length = lengths[head >> 2]!;
    if (length === PADDING) {
      head = 0;
      length = lengths[0]!;
    }
    let next = head + recordBytes(length);
    if (next === capacity) next = 0;
    this.next = next;
    this.nextBytes = next > this.head ? next - this.head : next - this.head + capacity;
    const start = head + RECORD_HEADER;
    return this.data.subarray(start, start + length);
  }
}

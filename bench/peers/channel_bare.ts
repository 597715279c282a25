/**
 * The floor of the spinning channel ping-pong: the channel's protocol as
 * bare JavaScript, with no checks. The same layout and words as
 * sync/channel.ts (tail, sent and the sleeping flag on one line, head
 * published every eighth of the ring, records of a length word, a reserved
 * word and the payload), the same copies (an 8-byte copy in, a view out
 * per message, each made as the channel makes them), the same polls (tail, with the record's line fetched
 * alongside) — but no check of any word the other end wrote, no liveness
 * or closed words, no options, no errors, no futex: what the protocol
 * itself costs in this runtime. Not a safe channel: for the benchmark only.
 *
 * @module
 */
import {
  CHANNEL_HEADER_BYTES,
  CONSUMER_SLEEPING,
  HEAD,
  PADDING,
  PRODUCER_SLEEPING,
  RECEIVED,
  RECORD_HEADER,
  SENT,
  TAIL,
} from "../../sync/_channel_layout.ts";

/** One end of a channel laid out by `Channel.init`, driven without checks. */
export class BareChannel {
  readonly header: Int32Array;
  readonly data: Uint8Array;
  readonly lengths: Int32Array;
  readonly capacity: number;
  tail: number;
  seenHead: number;
  sent = 0;
  head: number;
  seenTail: number;
  next = -1;
  nextBytes = 0;
  unpublished = 0;
  received = 0;
  peek = 0;

  /** Over the bytes of a channel `Channel.init` laid out (capacity `capacity`). */
  constructor(bytes: Uint8Array, capacity: number) {
    this.header = new Int32Array(bytes.buffer, bytes.byteOffset, CHANNEL_HEADER_BYTES / 4);
    const start = bytes.byteOffset + CHANNEL_HEADER_BYTES;
    this.data = new Uint8Array(bytes.buffer, start, capacity);
    this.lengths = new Int32Array(bytes.buffer, start, capacity / 4);
    this.capacity = capacity;
    this.tail = Atomics.load(this.header, TAIL);
    this.seenHead = Atomics.load(this.header, HEAD);
    this.head = this.seenHead;
    this.seenTail = this.tail;
  }

  /** Copies `bytes` into the next record, spinning while the ring is full. */
  send(bytes: Uint8Array): void {
    const length = bytes.length;
    const size = RECORD_HEADER + ((length + 7) & ~7);
    let at = this.#place(size);
    while (at < 0) {
      this.seenHead = Atomics.load(this.header, HEAD);
      at = this.#place(size);
    }
    const data = this.data;
    const start = at + RECORD_HEADER;
    // Copied as the channel copies: by hand up to 16 bytes, else set().
    if (length <= 16) {
      for (let i = 0; i < length; i++) data[start + i] = bytes[i]!;
    } else {
      data.set(bytes, start);
    }
    const lengths = this.lengths;
    if (at !== this.tail) lengths[this.tail >> 2] = PADDING;
    lengths[at >> 2] = length;
    lengths[(at >> 2) + 1] = 0;
    let tail = at + size;
    if (tail === this.capacity) tail = 0;
    this.tail = tail;
    this.sent = (this.sent + 1) | 0;
    this.header[SENT] = this.sent;
    Atomics.exchange(this.header, TAIL, tail);
    // The sleeping flag is read as the channel does; nobody sleeps here.
    if (Atomics.load(this.header, CONSUMER_SLEEPING) !== 0) throw new Error("unexpected");
  }

  #place(size: number): number {
    const tail = this.tail;
    const head = this.seenHead;
    if (tail >= head) {
      const end = this.capacity - tail;
      if (size < end || (size === end && head !== 0)) return tail;
      return size < head ? 0 : -1;
    }
    return tail + size < head ? tail : -1;
  }

  /** Releases the previous message, then spins for the next; its view. */
  receive(): Uint8Array {
    const header = this.header;
    if (this.next !== -1) {
      this.head = this.next;
      this.next = -1;
      this.received = (this.received + 1) | 0;
      this.unpublished += this.nextBytes;
      if (this.unpublished >= this.capacity >> 3 || header[PRODUCER_SLEEPING] !== 0) {
        this.unpublished = 0;
        header[RECEIVED] = this.received;
        Atomics.exchange(header, HEAD, this.head);
      }
    }
    const head = this.head;
    const lengths = this.lengths;
    let tail = this.seenTail;
    if (tail === head) {
      let peek = 0;
      do {
        tail = Atomics.load(header, TAIL);
        peek ^= lengths[head >> 2]!;
      } while (tail === head);
      this.peek = peek;
      this.seenTail = tail;
    }
    let at = head;
    let length = lengths[at >> 2]!;
    if (length === PADDING) {
      at = 0;
      length = lengths[0]!;
    }
    const size = RECORD_HEADER + ((length + 7) & ~7);
    let next = at + size;
    if (next === this.capacity) next = 0;
    this.next = next;
    const d = next - head;
    this.nextBytes = d < 0 ? d + this.capacity : d;
    return new Uint8Array(this.data.buffer, this.data.byteOffset + at + RECORD_HEADER, length);
  }
}

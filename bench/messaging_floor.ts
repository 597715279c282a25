/**
 * The floor under the messaging rows: the queue's and the broadcast ring's
 * protocols (docs/messaging.md) written as bare JS, with the same atomic
 * operations in the same order and the same waits (poll 50 us, then flag +
 * futex), but without anything the library adds around them: no checks of
 * the words read (corruption), no recovery of dead holders, no liveness, no
 * argument checks, no closed/detached checks, fixed 64-byte messages copied
 * word by word. No implementation of these protocols in this runtime can be
 * faster by more than what it leaves out; bench/messaging_bench.ts runs it
 * in the same rounds as the library and C.
 *
 * Not a `*_bench.ts` module: messaging_bench.ts uses it.
 *
 * @module
 */
import { futexWait, futexWake } from "../sync/_futex.ts";

// Queue header words and slot layout (docs/messaging.md).
const CLOSED = 4;
const TAIL = 16;
const PUBLISHED = 17;
const CONSUMERS_SLEEPING = 18;
const HEAD = 32;
const FREED = 33;
const PRODUCERS_SLEEPING = 34;
const Q_HEADER_WORDS = 64;
// Broadcast header words.
const B_CLOSED = 5;
const B_HEAD = 16;
const B_SLEEPING = 17;
const B_HEADER_WORDS = 32;
const SPIN_MS = 0.05;
const SLICE_MS = 50;
const WORDS = 16; // 64-byte messages

/** The runtimes' wait: poll for SPIN_MS, then flag + futex. Returns op's first non-zero result. */
function runSync(
  h: Int32Array,
  word: Int32Array,
  at: number,
  flag: number,
  op: () => number,
): number {
  const start = performance.now();
  for (;;) {
    const seen = Atomics.load(h, at);
    const result = op();
    if (result !== 0) return result;
    if (performance.now() - start < SPIN_MS) continue;
    Atomics.store(h, flag, 1);
    if (Atomics.load(h, at) !== seen) continue;
    futexWait(word, seen, SLICE_MS);
  }
}

function wake(h: Int32Array, word: Int32Array, flag: number): void {
  if (h[flag] !== 0 && Atomics.exchange(h, flag, 0) !== 0) futexWake(word);
}

/** A bare handle on a queue laid out by Queue.init (1024 slots of 128 bytes). */
export class BareQueue {
  readonly #h: Int32Array;
  readonly #published: Int32Array;
  readonly #freed: Int32Array;
  readonly #mask: number;
  readonly #slotWords: number;
  readonly #n: number;
  readonly #me: number;
  #message: Int32Array = new Int32Array(WORDS);
  #into: Int32Array = new Int32Array(WORDS);
  readonly #send = (): number => this.trySend();
  readonly #receive = (): number => this.tryReceive();

  constructor(view: Uint8Array, me: number) {
    const h = new Int32Array(view.buffer, view.byteOffset, view.byteLength >> 2);
    this.#h = h;
    this.#n = h[1]!;
    this.#mask = this.#n - 1;
    this.#slotWords = h[2]! >> 2;
    this.#published = h.subarray(PUBLISHED, PUBLISHED + 1);
    this.#freed = h.subarray(FREED, FREED + 1);
    this.#me = me;
  }

  /** 1 sent, 0 full or held. */
  trySend(): number {
    const h = this.#h;
    for (;;) {
      const pos = h[TAIL]!;
      const s = Q_HEADER_WORDS + (pos & this.#mask) * this.#slotWords;
      const seq = Atomics.load(h, s);
      if (seq !== pos) {
        if (Atomics.load(h, TAIL) !== pos) continue;
        return 0;
      }
      if (h[s + 1] !== 0 || Atomics.compareExchange(h, s + 1, 0, this.#me) !== 0) {
        if (Atomics.load(h, TAIL) !== pos) continue;
        return 0;
      }
      if (Atomics.compareExchange(h, TAIL, pos, (pos + 1) | 0) !== pos) {
        Atomics.store(h, s + 1, 0);
        continue;
      }
      h[s + 2] = WORDS * 4;
      const m = this.#message;
      for (let k = 0; k < WORDS; k++) h[s + 4 + k] = m[k]!;
      Atomics.store(h, s, (pos + 1) | 0);
      Atomics.store(h, s + 1, 0);
      Atomics.add(h, PUBLISHED, 1);
      wake(h, this.#published, CONSUMERS_SLEEPING);
      return 1;
    }
  }

  /** 1 received, 0 empty or held, -1 ended and empty. */
  tryReceive(): number {
    const h = this.#h;
    for (;;) {
      const pos = h[HEAD]!;
      const s = Q_HEADER_WORDS + (pos & this.#mask) * this.#slotWords;
      const seq = Atomics.load(h, s);
      if (seq === ((pos + 1) | 0)) {
        if (h[s + 1] !== 0 || Atomics.compareExchange(h, s + 1, 0, this.#me) !== 0) {
          if (Atomics.load(h, HEAD) !== pos) continue;
          return 0;
        }
        if (Atomics.compareExchange(h, HEAD, pos, (pos + 1) | 0) !== pos) {
          Atomics.store(h, s + 1, 0);
          continue;
        }
        const into = this.#into;
        for (let k = 0; k < WORDS; k++) into[k] = h[s + 4 + k]!;
        Atomics.store(h, s, (pos + this.#n) | 0);
        Atomics.store(h, s + 1, 0);
        Atomics.add(h, FREED, 1);
        wake(h, this.#freed, PRODUCERS_SLEEPING);
        return 1;
      }
      if (Atomics.load(h, HEAD) !== pos) continue;
      if (seq === pos && Atomics.load(h, TAIL) === pos) {
        if (Atomics.load(h, CLOSED) === 0) return 0;
        if (Atomics.load(h, TAIL) === pos) return -1;
        continue;
      }
      return 0;
    }
  }

  /** The message trySend sends and the buffer tryReceive fills (64 bytes each, 4-aligned). */
  use(message: Uint8Array, into: Uint8Array): void {
    this.#message = new Int32Array(message.buffer, message.byteOffset, WORDS);
    this.#into = new Int32Array(into.buffer, into.byteOffset, WORDS);
  }

  /** Sends `count` messages, waiting while full. */
  sendAll(message: Uint8Array, count: number): void {
    this.#message = new Int32Array(message.buffer, message.byteOffset, WORDS);
    for (let i = count; i > 0; i--) {
      if (this.trySend() === 0) {
        runSync(this.#h, this.#freed, FREED, PRODUCERS_SLEEPING, this.#send);
      }
    }
  }

  /** Receives until the end or `max` messages; how many. */
  receiveAll(buffer: Uint8Array, max: number): number {
    this.#into = new Int32Array(buffer.buffer, buffer.byteOffset, WORDS);
    let n = 0;
    while (n < max) {
      let got = this.tryReceive();
      if (got === 0) {
        got = runSync(this.#h, this.#published, PUBLISHED, CONSUMERS_SLEEPING, this.#receive);
      }
      if (got < 0) break;
      n++;
    }
    return n;
  }
}

/** A bare publisher or subscriber on a ring laid out by Broadcast.init. */
export class BareRing {
  readonly #h: Int32Array;
  readonly #head: Int32Array;
  readonly #mask: number;
  readonly #slotWords: number;
  #cursor: number;
  #seen: number;
  #into: Int32Array = new Int32Array(WORDS);
  /** Messages a subscriber found overwritten or torn. */
  lost = 0;
  readonly #receive = (): number => this.tryReceive();

  constructor(view: Uint8Array) {
    const h = new Int32Array(view.buffer, view.byteOffset, view.byteLength >> 2);
    this.#h = h;
    this.#mask = h[1]! - 1;
    this.#slotWords = h[2]! >> 2;
    this.#head = h.subarray(B_HEAD, B_HEAD + 1);
    this.#cursor = this.#seen = Atomics.load(h, B_HEAD);
  }

  /** The message publish sends, or the buffer tryReceive fills (64 bytes, 4-aligned). */
  use(buffer: Uint8Array): void {
    this.#into = new Int32Array(buffer.buffer, buffer.byteOffset, WORDS);
  }

  /** Publishes `count` copies of `message`. */
  publishAll(message: Uint8Array, count: number): void {
    this.use(message);
    for (let i = count; i > 0; i--) this.publish();
  }

  /** Publishes the message given to `use`. */
  publish(): void {
    const h = this.#h;
    const words = this.#into;
    const m = h[B_HEAD]!;
    const s = B_HEADER_WORDS + (m & this.#mask) * this.#slotWords;
    Atomics.store(h, s, (m * 2 + 1) | 0);
    h[s + 1] = WORDS * 4;
    for (let k = 0; k < WORDS; k++) h[s + 2 + k] = words[k]!;
    Atomics.store(h, s, (m * 2 + 2) | 0);
    Atomics.store(h, B_HEAD, (m + 1) | 0);
    wake(h, this.#head, B_SLEEPING);
  }

  /** 1 received, 0 nothing new, -1 ended. */
  tryReceive(): number {
    const h = this.#h;
    for (;;) {
      const c = this.#cursor;
      if (this.#seen === c) this.#seen = Atomics.load(h, B_HEAD);
      if (this.#seen === c) {
        if (Atomics.load(h, B_CLOSED) === 0) return 0;
        this.#seen = Atomics.load(h, B_HEAD);
        if (this.#seen === c) return -1;
        continue;
      }
      const s = B_HEADER_WORDS + (c & this.#mask) * this.#slotWords;
      const first = h[s]!;
      const into = this.#into;
      for (let k = 0; k < WORDS; k++) into[k] = h[s + 2 + k]!;
      this.#cursor = (c + 1) | 0;
      if (first !== ((c * 2 + 2) | 0) || Atomics.load(h, s) !== first) {
        this.lost++;
        continue;
      }
      return 1;
    }
  }

  /** Receives until the end or `max` messages; how many. */
  receiveAll(buffer: Uint8Array, max: number): number {
    this.#into = new Int32Array(buffer.buffer, buffer.byteOffset, WORDS);
    let n = 0;
    while (n < max) {
      let got = this.tryReceive();
      if (got === 0) got = runSync(this.#h, this.#head, B_HEAD, B_SLEEPING, this.#receive);
      if (got < 0) break;
      n++;
    }
    return n;
  }
}

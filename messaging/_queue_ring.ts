/**
 * Internal: the MPMC queue's slots and positions, without waiting (the
 * layout is in docs/messaging.md). A Vyukov ring (a sequence word per slot)
 * where each claim also takes the slot's owner word by CAS, so that a slot
 * held by a process that died is found and passed over.
 *
 * Every word read from shared memory is checked: a sequence word that no
 * lap of the protocol can produce, a length above the slot's, or an owner
 * id no process can have throws CORRUPTED, and the queue refuses further
 * use. Retry loops are bounded: a peer that keeps moving a word makes a
 * call report BUSY (wait, look again), never loop forever.
 *
 * @module
 */
import { ClosedError } from "../core/errors.ts";
import {
  BUSY,
  type Busy,
  Copier,
  corrupted,
  futexWordAt,
  isValidId,
  Liveness,
  MessagingError,
  selfId,
  wakeTarget,
} from "./_common.ts";

/** "MPQ1": an initialised queue, layout version 1. */
export const QUEUE_MAGIC = 0x4d505131;
/** Bytes before the first slot. */
export const QUEUE_HEADER_BYTES = 256;
/** Bytes of a slot's header (seq, owner, length, reserved) before the payload. */
export const QUEUE_SLOT_HEADER = 16;

// Word indices into the header.
export const MAGIC = 0;
export const SLOTS = 1;
export const SLOT_BYTES = 2;
export const MAX_MESSAGE = 3;
export const CLOSED = 4;
export const DROPPED_UNPUBLISHED = 5;
export const DROPPED_TAKEN = 6;
export const TAIL = 16;
export const PUBLISHED = 17;
export const CONSUMERS_SLEEPING = 18;
export const HEAD = 32;
export const FREED = 33;
export const PRODUCERS_SLEEPING = 34;

// Word offsets inside a slot.
const SEQ = 0;
const OWNER = 1;
const LENGTH = 2;

const TRIES = 64;
/** How long a slot must stay held by one id before its process is looked at. */
const GRACE_MS = 2;

const WHAT = "queue";

/** What a successful claim leaves behind to finish. */
export class QueueRing {
  readonly header: Int32Array;
  readonly bytes: Uint8Array;
  readonly slots: number;
  readonly mask: number;
  readonly slotBytes: number;
  readonly slotWords: number;
  readonly maxMessage: number;
  readonly publishedWord: Int32Array;
  readonly freedWord: Int32Array;
  readonly liveness: Liveness;
  readonly copier: Copier;
  readonly #me = selfId();
  broken: MessagingError | undefined;
  closed = false;
  #suspectSlot = -1;
  #suspectOwner = 0;
  #suspectSince = 0;
  /** The positions last seen full (send) and claimed but unpublished (receive): see trySend. */
  #fullAt = NaN;
  #claimedAt = NaN;

  constructor(bytes: Uint8Array, slots: number, slotBytes: number, checkIntervalMs: number) {
    const words = (QUEUE_HEADER_BYTES + slots * slotBytes) / 4;
    this.header = new Int32Array(bytes.buffer, bytes.byteOffset, words);
    this.bytes = bytes;
    this.slots = slots;
    this.mask = slots - 1;
    this.slotBytes = slotBytes;
    this.slotWords = slotBytes / 4;
    this.maxMessage = slotBytes - QUEUE_SLOT_HEADER;
    this.publishedWord = futexWordAt(bytes, PUBLISHED);
    this.freedWord = futexWordAt(bytes, FREED);
    this.liveness = new Liveness(checkIntervalMs);
    this.copier = new Copier(this.header, bytes);
  }

  /** The header, after checking this object and its memory are usable. */
  live(action: string): Int32Array {
    if (this.broken !== undefined) throw this.broken;
    if (this.closed || this.header.length === 0) throw new ClosedError(action, WHAT);
    return this.header;
  }

  /** Records a broken rule, so that every later call throws it too. */
  fail(action: string, word: string, value: number, rule: string): never {
    this.broken = corrupted(WHAT, action, word, value, rule);
    throw this.broken;
  }

  /** Word index of slot `pos`'s first word. */
  #slot(pos: number): number {
    return (QUEUE_HEADER_BYTES >> 2) + (pos & this.mask) * this.slotWords;
  }

  /** The owner word at `s`, checked. */
  #owner(s: number, action: string): number {
    const owner = Atomics.load(this.header, s + OWNER);
    if (owner !== 0) this.#checkOwner(s, owner, action);
    return owner;
  }

  /** Checks an owner id read from slot `s`. */
  #checkOwner(s: number, owner: number, action: string): void {
    if (!isValidId(owner)) {
      this.fail(action, `owner of slot ${this.#index(s)}`, owner, "it must be 0 or an owner id");
    }
  }

  #index(s: number): number {
    return (s - (QUEUE_HEADER_BYTES >> 2)) / this.slotWords;
  }

  /**
   * Whether `owner`, holding slot `s`, is a dead process: only once the
   * same id has held it for GRACE_MS, as live holders let go in nanoseconds.
   */
  #holderGone(s: number, owner: number): boolean {
    const now = performance.now();
    if (this.#suspectSlot !== s || this.#suspectOwner !== owner) {
      this.#suspectSlot = s;
      this.#suspectOwner = owner;
      this.#suspectSince = now;
      return false;
    }
    return now - this.#suspectSince >= GRACE_MS && this.liveness.gone(owner);
  }

  /**
   * Lets go of a dead holder's hold on slot `s`. Reads seq atomically first:
   * the next claimer reads seq plainly and is ordered by the 0 stored here.
   */
  #release(s: number, owner: number): void {
    Atomics.load(this.header, s + SEQ);
    Atomics.compareExchange(this.header, s + OWNER, owner, 0);
  }

  /** Takes slot `s`'s owner word from `from` (0 or a dead id); whether it worked. */
  #take(s: number, from: number): boolean {
    return Atomics.compareExchange(this.header, s + OWNER, from, this.#me) === from;
  }

  /** Whether the queue was ended, checking the word. */
  ended(action: string): boolean {
    const closed = Atomics.load(this.header, CLOSED);
    if ((closed & ~1) !== 0) this.fail(action, "closed", closed, "only bit 0 may be set");
    return closed !== 0;
  }

  /**
   * Slot `s` (lap `lap`, published) was taken by a consumer that died
   * before freeing it: frees it for the next lap, counting the message as
   * dropped. Whether it did.
   */
  #reclaimTaken(s: number, lap: number, owner: number): boolean {
    if (!this.#take(s, owner)) return false;
    if (Atomics.load(this.header, s + SEQ) !== ((lap + 1) | 0)) {
      Atomics.store(this.header, s + OWNER, 0);
      return false;
    }
    Atomics.store(this.header, s + SEQ, (lap + this.slots) | 0);
    Atomics.store(this.header, s + OWNER, 0);
    Atomics.add(this.header, DROPPED_TAKEN, 1);
    this.#freed();
    return true;
  }

  #freed(): void {
    Atomics.add(this.header, FREED, 1);
    wakeTarget(this.header, this.freedWord, PRODUCERS_SLEEPING);
  }

  #published(): void {
    Atomics.add(this.header, PUBLISHED, 1);
    wakeTarget(this.header, this.publishedWord, CONSUMERS_SLEEPING);
  }

  /** Sends `message` if a slot is free: true; false when full; BUSY. */
  trySend(message: Uint8Array): boolean | Busy {
    const action = "send";
    const h = this.header;
    if (h[CLOSED] !== 0 && this.ended(action)) {
      throw new MessagingError("CLOSED", "Cannot send: the queue was ended");
    }
    const n = this.slots;
    for (let tries = 0; tries < TRIES; tries++) {
      // A plain read: a stale tail fails the CAS below, or is re-read before any verdict.
      const pos = h[TAIL]!;
      const s = this.#slot(pos);
      // Plain too: "free" is confirmed by the owner CAS below, which orders the last
      // holder's stores (docs/messaging.md); anything else is read again atomically.
      let seq = h[s + SEQ]!;
      if (seq !== pos) seq = Atomics.load(h, s + SEQ);
      const diff = (seq - pos) | 0;
      if (diff === 0) {
        // Look before taking: a failed CAS costs the line to everybody.
        let owner = h[s + OWNER]!;
        if (owner === 0) owner = Atomics.compareExchange(h, s + OWNER, 0, this.#me);
        if (owner !== 0) {
          this.#checkOwner(s, owner, action);
          // Another producer won pos: try the next one.
          if (Atomics.load(h, TAIL) !== pos) continue;
          // A producer mid-claim; if it died there, let go of its hold.
          if (this.#holderGone(s, owner)) {
            this.#release(s, owner);
            continue;
          }
          return BUSY;
        }
        // Only the claimer of lap pos moves seq off pos, and it moved tail first:
        // winning this CAS means seq is still pos.
        if (Atomics.compareExchange(h, TAIL, pos, (pos + 1) | 0) !== pos) {
          Atomics.store(h, s + OWNER, 0);
          continue;
        }
        h[s + LENGTH] = message.length;
        this.copier.in(message, (s << 2) + QUEUE_SLOT_HEADER);
        Atomics.store(h, s + SEQ, (pos + 1) | 0);
        Atomics.store(h, s + OWNER, 0);
        this.#published();
        return true;
      }
      if (Atomics.load(h, TAIL) !== pos) continue;
      if (diff === 1 - n) {
        // Lap pos - n published: not consumed yet, or taken by a consumer. Its owner
        // word (on the line a consumer is about to write) is looked at, for a dead
        // consumer, only when this position is seen full again.
        if (this.#fullAt !== pos) {
          this.#fullAt = pos;
          return false;
        }
        const owner = this.#owner(s, action);
        const lap = (pos - n) | 0;
        if (
          owner !== 0 && ((Atomics.load(h, HEAD) - lap) | 0) > 0 && this.#holderGone(s, owner)
        ) {
          this.#reclaimTaken(s, lap, owner);
          continue;
        }
        return owner === 0 ? false : BUSY;
      }
      // Lap pos - n claimed by a producer, not published: full for now.
      if (diff === -n) return false;
      this.fail(
        action,
        `seq of slot ${pos & this.mask}`,
        seq,
        `with tail ${pos} it must be ${pos}, ${(pos - n) | 0} or ${(pos - n + 1) | 0}`,
      );
    }
    return BUSY;
  }

  /**
   * A copy of the next message: a new Uint8Array, or its length once
   * copied into `into` (at least maxMessage bytes); null when empty;
   * undefined when empty and ended; BUSY.
   */
  tryReceive(into?: Uint8Array): Uint8Array | number | null | undefined | Busy {
    const action = "receive";
    const h = this.header;
    const n = this.slots;
    for (let tries = 0; tries < TRIES; tries++) {
      // A plain read: a stale head fails the CAS below, or is re-read before any verdict.
      const pos = h[HEAD]!;
      const s = this.#slot(pos);
      // Plain, as in trySend: the owner CAS confirms "published" and orders the payload.
      let seq = h[s + SEQ]!;
      if (seq !== ((pos + 1) | 0)) seq = Atomics.load(h, s + SEQ);
      const diff = (seq - pos - 1) | 0;
      if (diff === 0) {
        let owner = h[s + OWNER]!;
        if (owner === 0) owner = Atomics.compareExchange(h, s + OWNER, 0, this.#me);
        if (owner !== 0) {
          this.#checkOwner(s, owner, action);
          // Another consumer won pos (if it dies holding it, it is found a lap later).
          if (Atomics.load(h, HEAD) !== pos) continue;
          // A consumer mid-claim, or a producer between publishing and letting go.
          if (this.#holderGone(s, owner)) {
            this.#release(s, owner);
            continue;
          }
          return BUSY;
        }
        // Only the taker of lap pos (or a recoverer, after head moved) moves seq
        // off pos + 1: winning this CAS means seq is still pos + 1.
        if (Atomics.compareExchange(h, HEAD, pos, (pos + 1) | 0) !== pos) {
          Atomics.store(h, s + OWNER, 0);
          continue;
        }
        const length = h[s + LENGTH]!;
        if (length < 0 || length > this.maxMessage) {
          this.fail(
            action,
            `length of slot ${pos & this.mask}`,
            length,
            `it must be 0 to ${this.maxMessage}`,
          );
        }
        const start = (s << 2) + QUEUE_SLOT_HEADER;
        let copy: Uint8Array | number;
        if (into === undefined) copy = this.bytes.slice(start, start + length);
        else {
          this.copier.out(into, start, length);
          copy = length;
        }
        Atomics.store(h, s + SEQ, (pos + n) | 0);
        Atomics.store(h, s + OWNER, 0);
        this.#freed();
        return copy;
      }
      if (Atomics.load(h, HEAD) !== pos) continue;
      if (diff === -1) {
        // Lap pos not published: empty, or a producer claimed it and is writing (or died).
        const tail = Atomics.load(h, TAIL);
        const ahead = (tail - pos) | 0;
        if (ahead === 0) {
          if (!this.ended(action)) return null;
          // Tail again: read before the end, it may have missed the last sends.
          if (Atomics.load(h, TAIL) === pos) return undefined;
          continue;
        }
        if (ahead < 0 || ahead > n) {
          if (Atomics.load(h, HEAD) !== pos) continue;
          this.fail(action, "tail", tail, `with head ${pos} it must be ${pos} to ${(pos + n) | 0}`);
        }
        // A producer is writing the slot, or died there: its owner word (on the line
        // being written) is looked at only when this position is seen claimed again.
        if (this.#claimedAt !== pos) {
          this.#claimedAt = pos;
          return BUSY;
        }
        const owner = this.#owner(s, action);
        if (owner !== 0 && this.#holderGone(s, owner)) {
          this.#dropUnpublished(s, pos, owner);
          continue;
        }
        return BUSY;
      }
      if (diff === -n) {
        // Lap pos - n still held by the consumer that took it (or that died).
        const owner = this.#owner(s, action);
        const lap = (pos - n) | 0;
        if (owner !== 0 && this.#holderGone(s, owner)) {
          this.#reclaimTaken(s, lap, owner);
          continue;
        }
        return BUSY;
      }
      this.fail(
        action,
        `seq of slot ${pos & this.mask}`,
        seq,
        `with head ${pos} it must be ${pos}, ${(pos + 1) | 0} or ${(pos - n + 1) | 0}`,
      );
    }
    return BUSY;
  }

  /**
   * Slot `s` was claimed for lap `pos` by a producer that died before
   * publishing: passes over it, counting the message as dropped.
   */
  #dropUnpublished(s: number, pos: number, owner: number): void {
    const h = this.header;
    if (!this.#take(s, owner)) return;
    if (
      Atomics.load(h, s + SEQ) !== pos ||
      Atomics.compareExchange(h, HEAD, pos, (pos + 1) | 0) !== pos
    ) {
      Atomics.store(h, s + OWNER, owner);
      return;
    }
    Atomics.store(h, s + SEQ, (pos + this.slots) | 0);
    Atomics.store(h, s + OWNER, 0);
    Atomics.add(h, DROPPED_UNPUBLISHED, 1);
    this.#freed();
  }

  /** Messages in the queue as the positions say (claimed ones included). */
  length(): number {
    const h = this.live("read the queue");
    for (let tries = 0; tries < TRIES; tries++) {
      const head = Atomics.load(h, HEAD);
      const tail = Atomics.load(h, TAIL);
      const n = (tail - head) | 0;
      if (Atomics.load(h, HEAD) !== head) continue;
      if (n < 0 || n > this.slots) {
        this.fail(
          "read the queue",
          "tail",
          tail,
          `with head ${head} it must be ${head} to ${(head + this.slots) | 0}`,
        );
      }
      return n;
    }
    return 0;
  }

  /** Marks the queue ended and wakes every waiter. */
  end(): void {
    Atomics.or(this.header, CLOSED, 1);
    this.#published();
    this.#freed();
  }
}

/**
 * Internal: the broadcast ring's shared memory and what every handle of one
 * process knows of it (the layout is in broadcast.ts and docs/messaging.md).
 *
 * @module
 */
import { ClosedError } from "../core/errors.ts";
import {
  Copier,
  corrupted,
  futexWordAt,
  isValidId,
  Liveness,
  type MessagingError,
  type Settings,
  type WaitTarget,
} from "./_common.ts";

/** "BCS1": an initialised broadcast ring, layout version 1. */
export const BROADCAST_MAGIC = 0x42435331;
/** Bytes before the first slot. */
export const BROADCAST_HEADER_BYTES = 128;
/** Bytes of a slot's header (stamp, length) before the payload. */
export const BROADCAST_SLOT_HEADER = 8;

// Word indices of the header (the table in broadcast.ts).
export const MAGIC = 0;
export const SLOTS = 1;
export const SLOT_BYTES = 2;
export const MAX_MESSAGE = 3;
export const PUBLISHER = 4;
export const CLOSED = 5;
export const HEAD = 16;
export const SLEEPING = 17;
/** What errors call the ring. */
export const WHAT = "broadcast ring";

/** The done stamp of message m. */
export function stamp(m: number): number {
  return (m * 2 + 2) | 0;
}

/** The shared memory and what every handle of one process knows of it. */
export class Ring {
  readonly header: Int32Array;
  readonly bytes: Uint8Array;
  readonly slots: number;
  readonly slotWords: number;
  readonly maxMessage: number;
  readonly target: WaitTarget;
  readonly liveness: Liveness;
  readonly copier: Copier;
  broken: MessagingError | undefined;

  constructor(bytes: Uint8Array, slots: number, slotBytes: number, settings: Settings) {
    this.header = new Int32Array(
      bytes.buffer,
      bytes.byteOffset,
      (BROADCAST_HEADER_BYTES + slots * slotBytes) / 4,
    );
    this.bytes = bytes;
    this.slots = slots;
    this.slotWords = slotBytes / 4;
    this.maxMessage = slotBytes - BROADCAST_SLOT_HEADER;
    this.target = {
      header: this.header,
      word: futexWordAt(bytes, HEAD),
      flag: SLEEPING,
    };
    this.liveness = new Liveness(settings.checkIntervalMs);
    this.copier = new Copier(this.header, bytes);
  }

  live(action: string, closed: boolean): Int32Array {
    if (this.broken !== undefined) throw this.broken;
    if (closed || this.header.length === 0) throw new ClosedError(action, WHAT);
    return this.header;
  }

  fail(action: string, word: string, value: number, rule: string): never {
    this.broken = corrupted(WHAT, action, word, value, rule);
    throw this.broken;
  }

  slot(m: number): number {
    return (BROADCAST_HEADER_BYTES >> 2) + (m & (this.slots - 1)) * this.slotWords;
  }

  /** The closed word, checked. */
  ended(action: string): boolean {
    const closed = Atomics.load(this.header, CLOSED);
    if ((closed & ~1) !== 0) this.fail(action, "closed", closed, "only bit 0 may be set");
    return closed !== 0;
  }

  /** Whether no more messages will come: ended, or the publisher's process is gone. */
  finished(action: string): boolean {
    if (this.ended(action)) return true;
    const id = Atomics.load(this.header, PUBLISHER);
    if (id === 0) return false;
    if (!isValidId(id)) this.fail(action, "publisher", id, "it must be 0 or an owner id");
    return this.liveness.gone(id);
  }
}

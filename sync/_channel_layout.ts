/**
 * Internal: the channel's layout in memory (see docs/locks.md): word
 * indices, record sizes, and the checks of views and messages.
 *
 * @module
 */
import { typeName } from "../ffi/pointer.ts";
import { ClosedError } from "../core/errors.ts";

/** The magic word (offset 0) of an initialised channel, layout version 2 ("CHN2"). */
export const CHANNEL_MAGIC = 0x43484e32;
/** The magic word of layout version 1 ("CHN1"), before the lifecycle words. */
const MAGIC_V1 = 0x43484e31;
/** Bytes of the header before the data. */
export const CHANNEL_HEADER_BYTES = 384;

// Word indices into the header.
export const MAGIC = 0;
export const CAPACITY = 1;
export const DATA_OFFSET = 2;
export const MAX_MESSAGE = 3;
export const PRODUCER = 4;
export const CONSUMER = 5;
export const CLOSED = 6;
export const TAIL = 32;
export const CONSUMER_SLEEPING = 33;
export const SENT = 34;
export const HEAD = 64;
export const PRODUCER_SLEEPING = 65;
export const RECEIVED = 66;

/** Bits of the closed word: each end's close. */
export const PRODUCER_CLOSED = 1;
export const CONSUMER_CLOSED = 2;
// An owner id is the pid (bits 0-21) and a start-time tag (bits 22-29).
const ID_BITS = 0x3fffffff;

export const RECORD_HEADER = 8;
export const PADDING = -1;
export const MIN_CAPACITY = 64;
export const MAX_CAPACITY = 1 << 30;

/** Why a {@linkcode ChannelError} was thrown. */
export type ChannelErrorCode = "CORRUPTED" | "CONSUMER_CLOSED" | "CONSUMER_DIED" | "ROLE_TAKEN";

/**
 * A channel can't be used: a word in its shared memory breaks the layout's
 * rules (CORRUPTED, naming the word and its value; the channel then refuses
 * further use), its consumer closed it or died (CONSUMER_CLOSED,
 * CONSUMER_DIED: nobody will receive what is sent), or another process
 * already is its producer or consumer (ROLE_TAKEN).
 */
export class ChannelError extends Error {
  /** The reason. */
  readonly code: ChannelErrorCode;
  /** For CORRUPTED: the word that broke the rules ("tail", "record length at 64"). */
  readonly word: string | undefined;
  /** For CORRUPTED: the value it held. */
  readonly value: number | undefined;

  /**
   * Builds the error.
   *
   * @param code The reason.
   * @param message What happened, starting "Cannot ...".
   * @param word For CORRUPTED: the word's name.
   * @param value For CORRUPTED: its value.
   */
  constructor(code: ChannelErrorCode, message: string, word?: string, value?: number) {
    super(message);
    this.name = "ChannelError";
    this.code = code;
    this.word = word;
    this.value = value;
  }
}

/** The error for a word of the layout that breaks its rules. */
export function corrupted(action: string, word: string, value: number, rule: string): ChannelError {
  return new ChannelError(
    "CORRUPTED",
    `Cannot ${action}: the channel is corrupted: ${word} is ${value}, but ${rule}; it refuses further use`,
    word,
    value,
  );
}

/** Checks an owner id word (0: none yet); returns it. */
export function checkId(value: number, word: string, action: string): number {
  if ((value & ~ID_BITS) !== 0) {
    throw corrupted(action, word, value, "an owner id has bits 30 and 31 clear");
  }
  return value;
}

/**
 * Checks the words a channel's header holds from init on: magic, capacity,
 * data offset, largest message, and the lifecycle words; returns the capacity.
 */
export function checkHeader(header: Int32Array, byteLength: number): number {
  const action = "attach to a channel";
  const magic = Atomics.load(header, MAGIC);
  if (magic !== CHANNEL_MAGIC) {
    const version = magic === MAGIC_V1 ? " (layout version 1, from an older shmkit)" : "";
    throw new ChannelError(
      "CORRUPTED",
      `Cannot ${action}: the memory holds 0x${
        (magic >>> 0).toString(16)
      }${version} where an initialised channel has 0x${
        CHANNEL_MAGIC.toString(16)
      }; call Channel.init first`,
      "magic",
      magic,
    );
  }
  const capacity = Atomics.load(header, CAPACITY);
  if (capacity < MIN_CAPACITY || capacity > MAX_CAPACITY || capacity % 8 !== 0) {
    throw corrupted(
      action,
      "capacity",
      capacity,
      `it must be a multiple of 8 from ${MIN_CAPACITY} to ${MAX_CAPACITY}`,
    );
  }
  const offset = Atomics.load(header, DATA_OFFSET);
  if (offset !== CHANNEL_HEADER_BYTES) {
    throw corrupted(action, "dataOffset", offset, `it must be ${CHANNEL_HEADER_BYTES}`);
  }
  const max = Atomics.load(header, MAX_MESSAGE);
  if (max !== maxMessageFor(capacity)) {
    throw corrupted(
      action,
      "maxMessage",
      max,
      `a ring of ${capacity} bytes carries ${maxMessageFor(capacity)}`,
    );
  }
  checkId(Atomics.load(header, PRODUCER), "producer", action);
  checkId(Atomics.load(header, CONSUMER), "consumer", action);
  const closed = Atomics.load(header, CLOSED);
  if ((closed & ~(PRODUCER_CLOSED | CONSUMER_CLOSED)) !== 0) {
    throw corrupted(action, "closed", closed, "only bits 0 and 1 may be set");
  }
  for (const [index, word] of [[TAIL, "tail"], [HEAD, "head"]] as const) {
    const position = Atomics.load(header, index);
    if (position < 0 || position >= capacity || position % 8 !== 0) {
      throw corrupted(action, word, position, `it must be a multiple of 8 below ${capacity}`);
    }
  }
  if (byteLength < CHANNEL_HEADER_BYTES + capacity) {
    throw new RangeError(
      `Cannot ${action} in ${byteLength} bytes: its ring needs ${CHANNEL_HEADER_BYTES + capacity}`,
    );
  }
  return capacity;
}

/** The bytes a channel needs to carry messages of up to `maxMessage` bytes. */
export function capacityForMessage(maxMessage: number): number {
  return Math.max(MIN_CAPACITY, 16 * Math.ceil((maxMessage + RECORD_HEADER) / 8));
}

/** The record size of a payload: header plus payload, rounded up to 8. */
export function recordBytes(length: number): number {
  return RECORD_HEADER + ((length + 7) & ~7);
}

/** The largest payload a ring of `capacity` bytes carries. */
export function maxMessageFor(capacity: number): number {
  // Half the ring, so that a record fits before or after any position.
  return Math.floor(capacity / 16) * 8 - RECORD_HEADER;
}

/** Checks a view a channel is laid out in; returns its bytes. */
export function checkView(view: unknown, action: string): Uint8Array {
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

/** Checks a message to send; returns its bytes. */
export function messageBytes(message: unknown, max: number): Uint8Array {
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

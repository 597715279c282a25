/**
 * Internal: the channel's layout in memory (see docs/locks.md): word
 * indices, record sizes, and the checks of views and messages.
 *
 * @module
 */
import { typeName } from "../ffi/pointer.ts";
import { ClosedError } from "../core/errors.ts";

/** The magic word (offset 0) of an initialised channel, layout version 1 ("CHN1"). */
export const CHANNEL_MAGIC = 0x43484e31;
/** Bytes of the header before the data. */
export const CHANNEL_HEADER_BYTES = 384;

// Word indices into the header.
export const MAGIC = 0;
export const CAPACITY = 1;
export const DATA_OFFSET = 2;
export const MAX_MESSAGE = 3;
export const TAIL = 32;
export const CONSUMER_SLEEPING = 33;
export const SENT = 34;
export const HEAD = 64;
export const PRODUCER_SLEEPING = 65;
export const RECEIVED = 66;

export const RECORD_HEADER = 8;
export const PADDING = -1;
export const MIN_CAPACITY = 64;
export const MAX_CAPACITY = 1 << 30;

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

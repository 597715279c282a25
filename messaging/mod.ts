/**
 * Messaging beyond one-to-one, in shared memory: a multi-producer
 * multi-consumer {@linkcode Queue} (each message delivered once), a
 * one-to-many {@linkcode Broadcast} ring (every subscriber sees every
 * message, a slow one learns what it lost), and a {@linkcode LoanPool} of
 * blocks for zero-copy hand-off of large messages. All three survive their
 * peers: every word read from shared memory is checked, and a process that
 * dies mid-operation leaves nothing stuck (docs/messaging.md).
 *
 * @example A queue between two handles
 * ```ts
 * import { Mapping } from "@shmkit/shmkit";
 * import { Queue } from "@shmkit/shmkit/messaging";
 * const shape = { slots: 8, maxMessage: 48 };
 * using mapping = Mapping.anonymous(Queue.byteLengthFor(shape));
 * const queue = Queue.init(mapping.view(), shape);
 * queue.send(new Uint8Array([1, 2, 3]));
 * const message = Queue.from(mapping.view()).receive(0);
 * console.log(message instanceof Uint8Array ? [...message] : message); // [1, 2, 3]
 * ```
 *
 * @module
 */
export { MessagingError, type MessagingErrorCode } from "./_common.ts";
export type { SignalOptions, SlotShape, WaitSettings } from "./_common.ts";
export {
  Queue,
  QUEUE_HEADER_BYTES,
  QUEUE_MAGIC,
  QUEUE_SLOT_HEADER,
  type QueueDropped,
  type QueueOptions,
} from "./queue.ts";
export {
  Broadcast,
  BROADCAST_HEADER_BYTES,
  BROADCAST_MAGIC,
  BROADCAST_SLOT_HEADER,
  type BroadcastOptions,
  Subscriber,
} from "./broadcast.ts";
export {
  HANDED_OFF,
  Loan,
  LOAN_POOL_MAGIC,
  LOAN_POOL_OWNERS_OFFSET,
  LoanPool,
  type LoanPoolOptions,
  type LoanPoolShape,
} from "./loan_pool.ts";

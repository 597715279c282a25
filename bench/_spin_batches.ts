/**
 * The timed loops of the spinning ping-pong, shared by bench/channel_bench.ts
 * and bench/spin_parts.ts: one function per kind of channel, so that each
 * loop's call sites see one class (a shared loop would be polymorphic).
 *
 * @module
 */
import type { Channel } from "../mod.ts";
import type { BareChannel } from "./peers/channel_bare.ts";

/** A timed loop of spinning round trips through two channels: ns per round trip. */
export function channelBatch(outbox: Channel, inbox: Channel): (count: number) => number {
  const message = new Uint8Array(8);
  return (count) => {
    const start = performance.now();
    for (let k = 0; k < count; k++) {
      outbox.send(message);
      inbox.receive();
    }
    return ((performance.now() - start) * 1e6) / count;
  };
}

/** The same loop through the floor's bare channels. */
export function bareBatch(outbox: BareChannel, inbox: BareChannel): (count: number) => number {
  const message = new Uint8Array(8);
  return (count) => {
    const start = performance.now();
    for (let k = 0; k < count; k++) {
      outbox.send(message);
      inbox.receive();
    }
    return ((performance.now() - start) * 1e6) / count;
  };
}

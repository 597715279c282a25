/**
 * Internal: the channel's options, checked before anything is written, and
 * the AbortSignal of its asynchronous calls.
 *
 * @module
 */
import { checkTimeout, DEFAULT_POLL_MS } from "./wait.ts";
import { checkSignal as checkSignalValue } from "./_futex.ts";
import { checkOptions } from "../core/_validate.ts";
import { CONSUMER_CLOSED, PRODUCER_CLOSED } from "./_channel_layout.ts";
import type { ChannelOptions, ChannelWaitOptions } from "./channel.ts";

/** The options, checked before anything is written. */
export interface Settings {
  readonly spinMs: number;
  readonly pollMs: number;
  readonly checkIntervalMs: number;
  /** PRODUCER_CLOSED or CONSUMER_CLOSED (the role's bit), or 0. */
  readonly role: number;
}

export function checkSettings(options: ChannelOptions | undefined): Settings {
  const o = checkOptions(options, "options");
  const checkIntervalMs = checkTimeout(o.checkIntervalMs ?? 50, "checkIntervalMs");
  if (checkIntervalMs === 0) {
    throw new RangeError("Cannot use checkIntervalMs 0: expected more than 0 milliseconds");
  }
  if (o.role !== undefined && o.role !== "producer" && o.role !== "consumer") {
    throw new TypeError(`Cannot use options.role: expected "producer" or "consumer"`);
  }
  return {
    spinMs: checkTimeout(o.spinMs ?? 0.02, "spinMs"),
    pollMs: checkTimeout(o.pollMs ?? DEFAULT_POLL_MS, "pollMs"),
    checkIntervalMs,
    role: o.role === "producer" ? PRODUCER_CLOSED : o.role === "consumer" ? CONSUMER_CLOSED : 0,
  };
}

/**
 * Polls before a blocking call enters its wait loop: about a microsecond
 * (a poll costs 4-10 ns), which covers a prompt peer's answer, and no more
 * than spinMs allows.
 */
export function spinPolls(spinMs: number): number {
  return Math.min(SPIN_POLLS, Math.ceil(spinMs * 250_000));
}
const SPIN_POLLS = 256;

/** Checks `{ signal }` of the asynchronous calls. */
export function checkSignal(options: ChannelWaitOptions | undefined): AbortSignal | undefined {
  return checkSignalValue(checkOptions(options, "options").signal, "options.signal");
}

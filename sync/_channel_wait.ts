/**
 * Internal: the channel's blocking calls. One I/O-free step function
 * decides what to do next; a synchronous loop (spin, then futex) and an
 * asynchronous one (poll from the event loop, then block on another thread)
 * do it, for sending and receiving alike.
 *
 * @module
 */
import { futexWait, futexWaitAsync } from "./wait.ts";
import { CONSUMER_SLEEPING, HEAD, PRODUCER_SLEEPING, TAIL } from "./_channel_layout.ts";
import type { Ring } from "./_channel_ring.ts";

/** What a wait loop does next: wait for the word to leave `expected`, spinning or asleep. */
class Wait {
  readonly expected: number;
  readonly timeoutMs: number;
  readonly sleep: boolean;
  // Plain fields, not parameter properties: Node's type stripping refuses those.
  constructor(expected: number, timeoutMs: number, sleep: boolean) {
    this.expected = expected;
    this.timeoutMs = timeoutMs;
    this.sleep = sleep;
  }
}

// "Look again at once": the word moved while announcing the sleep.
const RETRY = new Wait(0, 0, false);

/** One blocking call in progress. */
interface Attempt {
  readonly deadline: number;
  /** How long to wait without sleeping first (spinMs, or pollMs when async); what is left of it. */
  spinMs: number;
  /** This end's sleeping flag is set and must be cleared. */
  sleeping: boolean;
  /** `op` gave null just now: the first step need not call it again. */
  tried: boolean;
}

/**
 * One pass of a blocking call: `op`'s result, null (timed out), or what
 * to wait for. `producer` tells which end waits: the producer for head to
 * move (room), the consumer for tail (a message). Sleeps last at most the
 * check interval, so that a dead peer is noticed by `op`.
 */
function step<T>(
  ring: Ring,
  attempt: Attempt,
  producer: boolean,
  op: () => T | null,
): T | null | Wait {
  const header = ring.live(producer ? "send" : "receive");
  const flag = producer ? PRODUCER_SLEEPING : CONSUMER_SLEEPING;
  if (attempt.sleeping) {
    attempt.sleeping = false;
    Atomics.store(header, flag, 0);
  }
  if (attempt.tried) attempt.tried = false;
  else {
    const result = op();
    if (result !== null) return result;
  }
  // No clock for a wait without a deadline (the usual case): a read costs up to ~150 ns.
  const left = attempt.deadline === Infinity ? Infinity : attempt.deadline - performance.now();
  if (left <= 0) return null;
  const expected = producer ? ring.seenHead : ring.head;
  if (attempt.spinMs > 0) {
    // In slices of the check interval, so that op looks at the other end between them.
    const slice = Math.min(left, attempt.spinMs, ring.checkIntervalMs);
    attempt.spinMs -= slice;
    return new Wait(expected, slice, false);
  }
  // Announce the sleep, then look again: the other end either sees the
  // flag or its move is seen here (both sides order store-then-load).
  Atomics.exchange(header, flag, 1);
  if (Atomics.load(header, producer ? HEAD : TAIL) !== expected) {
    Atomics.store(header, flag, 0);
    return RETRY;
  }
  attempt.sleeping = true;
  return new Wait(expected, Math.min(left, ring.checkIntervalMs), true);
}

/** Clears this end's sleeping flag if a wait ended by an exception left it set. */
function unannounce(ring: Ring, attempt: Attempt, producer: boolean): void {
  if (!attempt.sleeping || ring.header.length === 0) return;
  Atomics.store(ring.header, producer ? PRODUCER_SLEEPING : CONSUMER_SLEEPING, 0);
}

/** Blocks the thread until `op` gives a result or `timeout` ms pass (then null). */
export function run<T>(
  ring: Ring,
  producer: boolean,
  op: () => T | null,
  timeout: number,
  spinMs: number,
): T | null {
  const attempt: Attempt = {
    deadline: timeout === Infinity ? Infinity : performance.now() + timeout,
    spinMs,
    sleeping: false,
    tried: false,
  };
  const word = producer ? ring.headWord : ring.tailWord;
  try {
    for (;;) {
      const next = step(ring, attempt, producer, op);
      if (!(next instanceof Wait)) return next;
      if (next === RETRY) continue;
      if (next.sleep) futexWait(word, next.expected, next.timeoutMs);
      else spinWhile(ring.header, producer ? HEAD : TAIL, next.expected, next.timeoutMs);
    }
  } finally {
    unannounce(ring, attempt, producer);
  }
}

/**
 * The asynchronous twin of {@linkcode run}; an abort rejects with the
 * signal's reason. A result at hand is returned in an already-resolved
 * promise, with no async frame (the common case when the other end keeps up).
 */
export function runAsync<T>(
  ring: Ring,
  producer: boolean,
  op: () => T | null,
  timeout: number,
  window: PollWindow,
  signal: AbortSignal | undefined,
): Promise<T | null> {
  if (signal?.aborted === true) return Promise.reject(signal.reason);
  try {
    ring.live(producer ? "send" : "receive");
    const result = op();
    if (result !== null) return Promise.resolve(result);
  } catch (error) {
    return Promise.reject(error);
  }
  return runAsyncAfterMiss(ring, producer, op, timeout, window, signal);
}

/** The most an end's polling window stretches, as a multiple of its pollMs. */
const MAX_STRETCH = 4;
/** How fast a stretched window shrinks back, per wait answered while polling. */
const SHRINK = 0.95;

/**
 * One end's polling window for async waits. Two async ends answering each
 * other stay fast only while each answers within the other's window: once
 * one is late (descheduled under load), the other blocks, its wake-up takes
 * a thread hand-off (~1 ms under load), which makes it late in turn, and
 * both can stay there, ~1 ms a round trip. So an end whose answer came soon
 * after it stopped polling polls longer next time (up to 4x pollMs, and
 * not past checkIntervalMs), and shrinks back while answers come during
 * the poll.
 */
export class PollWindow {
  ms: number;
  readonly #base: number;
  readonly #max: number;
  constructor(base: number, checkIntervalMs: number) {
    this.#base = base;
    // Not past the check interval: a dead peer is only noticed between waits.
    this.#max = Math.max(base, Math.min(base * MAX_STRETCH, checkIntervalMs));
    this.ms = base;
  }
  /** A wait got its answer while polling (`blockedMs` < 0) or `blockedMs` after it blocked. */
  answered(blockedMs: number): void {
    if (blockedMs < 0) this.ms = Math.max(this.#base, this.ms * SHRINK);
    else this.ms = blockedMs <= this.#max ? Math.min(this.#max, this.ms * 2) : this.#base;
  }
}

/**
 * {@linkcode runAsync} for a caller that has just called `op` (on a live
 * ring, with no abort) and got null: the first step does not call it again.
 */
export async function runAsyncAfterMiss<T>(
  ring: Ring,
  producer: boolean,
  op: () => T | null,
  timeout: number,
  window: PollWindow,
  signal: AbortSignal | undefined,
): Promise<T | null> {
  const attempt: Attempt = {
    deadline: timeout === Infinity ? Infinity : performance.now() + timeout,
    spinMs: window.ms,
    sleeping: false,
    tried: true,
  };
  const word = producer ? ring.headWord : ring.tailWord;
  let blockedAt = -1;
  try {
    for (;;) {
      const next = step(ring, attempt, producer, op);
      if (!(next instanceof Wait)) {
        if (next !== null) window.answered(blockedAt < 0 ? -1 : performance.now() - blockedAt);
        return next;
      }
      if (next === RETRY) continue;
      if (next.sleep && blockedAt < 0) blockedAt = performance.now();
      // An abort rejects at once and wakes the thread blocked for the wait.
      // A polling slice polls all of it (step has already counted it off spinMs).
      const poll = next.sleep ? 0 : next.timeoutMs;
      await futexWaitAsync(word, next.expected, next.timeoutMs, poll, signal);
      signal?.throwIfAborted();
    }
  } finally {
    unannounce(ring, attempt, producer);
  }
}

/**
 * Spins until `words[index]` differs from `expected` or `ms` pass; reads
 * the clock only every 64 polls, as it costs more than a poll.
 */
function spinWhile(words: Int32Array, index: number, expected: number, ms: number): void {
  let end = Infinity;
  for (let i = 1; Atomics.load(words, index) === expected; i++) {
    if ((i & 63) !== 0) continue;
    const now = performance.now();
    if (end === Infinity) end = now + ms;
    else if (now >= end) return;
  }
}

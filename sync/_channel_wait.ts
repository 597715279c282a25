/**
 * Internal: the channel's blocking calls. One I/O-free step function
 * decides what to do next; a synchronous loop (spin, then futex) and an
 * asynchronous one (poll from the event loop, then block on another thread)
 * do it, for sending and receiving alike.
 *
 * @module
 */
import { futexWait, futexWaitAsync, futexWake } from "./wait.ts";
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
  const result = op();
  if (result !== null) return result;
  const left = attempt.deadline - performance.now();
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
    deadline: performance.now() + timeout,
    spinMs,
    sleeping: false,
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

/** The asynchronous twin of {@linkcode run}; an abort rejects with the signal's reason. */
export async function runAsync<T>(
  ring: Ring,
  producer: boolean,
  op: () => T | null,
  timeout: number,
  pollMs: number,
  signal: AbortSignal | undefined,
): Promise<T | null> {
  signal?.throwIfAborted();
  const attempt: Attempt = {
    deadline: performance.now() + timeout,
    spinMs: pollMs,
    sleeping: false,
  };
  const word = producer ? ring.headWord : ring.tailWord;
  try {
    for (;;) {
      const next = step(ring, attempt, producer, op);
      if (!(next instanceof Wait)) return next;
      if (next === RETRY) continue;
      await waitAbortable(word, next.expected, next.timeoutMs, next.sleep ? 0 : pollMs, signal);
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

/**
 * `futexWaitAsync`, ended early by `signal`: the promise rejects with its
 * reason at once, and the wait still in flight on another thread is woken
 * (a wake on this end's own word, which only this end sleeps on), so that
 * nothing keeps waiting and the process can exit. Kept apart so that a
 * futex wait taking a signal itself can replace it.
 */
function waitAbortable(
  word: Int32Array,
  expected: number,
  timeoutMs: number,
  pollMs: number,
  signal: AbortSignal | undefined,
): Promise<unknown> {
  const waiting = futexWaitAsync(word, expected, timeoutMs, pollMs);
  if (signal === undefined) return waiting;
  return new Promise((resolve, reject) => {
    let settled = false;
    const abort = (): void => {
      // Wake until the wait in flight has ended: a wake may come before it sleeps.
      const kick = (): void => {
        if (settled || word.length === 0) return;
        futexWake(word);
        setTimeout(kick, 1);
      };
      kick();
      reject(signal.reason);
    };
    signal.addEventListener("abort", abort, { once: true });
    waiting.then(
      (value) => {
        settled = true;
        signal.removeEventListener("abort", abort);
        resolve(value);
      },
      (error) => {
        settled = true;
        signal.removeEventListener("abort", abort);
        reject(error);
      },
    );
  });
}

/**
 * Internal: the channel's waits for a word to change, without sleeping
 * (a spin) and without blocking the event loop.
 *
 * @module
 */

/**
 * Spins until `words[index]` differs from `expected` or `ms` pass; reads
 * the clock only every 64 polls, as it costs more than a poll.
 */
export function spinWhile(words: Int32Array, index: number, expected: number, ms: number): void {
  let end = Infinity;
  for (let i = 1; Atomics.load(words, index) === expected; i++) {
    if ((i & 63) !== 0) continue;
    const now = performance.now();
    if (end === Infinity) end = now + ms;
    else if (now >= end) return;
  }
}

/**
 * Benchmark driver and peer for the same-run comparison with an older tree
 * (bench/lifecycle_bench.ts): the same code measures the tree it is given,
 * so an old end only ever talks to an old end.
 *
 * Usage:
 *   lifecycle_ab.ts <root> channel|futex main <perBatch> <batches>
 *   lifecycle_ab.ts <root> channel echo <path> <half> <count>
 *   lifecycle_ab.ts <root> futex echo <path> <count>
 *
 * `main` prints `NS <median of its batches' mean ns per round trip>` and
 * `P50 <median single round trip, ns>` (the typical round trip, which
 * the scheduler's tail on a busy machine does not move), `TRIM <mean round
 * trip without the slowest 1%, ns>` and `FAST <share of round trips under
 * 4 us>`, `SLOW <median round trip of 4-16 us, ns>`, `MODES <count> <sum, ns>` for each
 * of the three modes (under 4 us, 4-16 us, beyond).
 * `channel`: an 8-byte message out with `sendAsync` and back with
 * `receiveAsync` through two channels (default options) on both ends.
 * `futex`: `waitAsync` with a 0.1 ms polling window against a peer that
 * waits synchronously (bench/lock_bench.ts's waitAsync row).
 *
 * It imports nothing of this tree but `<root>/mod.ts`, and uses only API
 * that the old tree (effd2da) has too.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { closeSync, ftruncateSync, openSync, rmSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { endPeer } from "./_end.ts";

interface View {
  view<T>(type: new (buffer: ArrayBuffer, offset: number, length: number) => T): T;
  view<T>(
    type: new (buffer: ArrayBuffer, offset: number, length: number) => T,
    offset: number,
    length: number,
  ): T;
  [Symbol.dispose](): void;
}
interface AsyncChannel {
  sendAsync(message: Uint8Array): Promise<unknown>;
  receiveAsync(): Promise<unknown>;
}
interface Api {
  Mapping: { file(path: string): View };
  Channel: {
    init(view: Uint8Array, options: object): AsyncChannel;
    from(view: Uint8Array, options: object): AsyncChannel;
  };
  notify(words: Int32Array, index: number, count?: number): number;
  wait(words: Int32Array, index: number, value: number, timeoutMs: number): string;
  waitAsync(
    words: Int32Array,
    index: number,
    value: number,
    timeoutMs: number,
    options?: { pollMs?: number },
  ): Promise<string>;
}

const [root, shape, role, ...rest] = process.argv.slice(2) as [string, string, string, ...string[]];
const api = (await import(`${root}/mod.ts`)) as Api;
const HALF = 64 * 1024;
/** A spare word after both channels, for starting the blocking thread early. */
const SPARE = (2 * HALF) / 4;

/** The same start-up for both trees: the thread/Worker an async wait blocks on. */
async function startBlockingThread(words: Int32Array): Promise<void> {
  await api.waitAsync(words, SPARE, 0, 1, { pollMs: 0 });
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function startEcho(args: readonly (string | number)[]): Promise<void> {
  const g = globalThis as { Deno?: { execPath(): string } };
  const [command, prefix] = g.Deno !== undefined
    ? [g.Deno.execPath(), ["run", "-A", "--quiet", "--no-check"]]
    : "Bun" in globalThis
    ? [process.execPath, []]
    : [process.execPath, ["--disable-warning=ExperimentalWarning"]];
  const child = spawn(
    command,
    [...prefix, fileURLToPath(import.meta.url), root, shape, "echo", ...args.map(String)],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  return new Promise((resolve, reject) => {
    child.on("close", (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`lifecycle_ab echo exited with ${code ?? signal}`));
    });
  });
}

/**
 * The mean round trip with the slowest 1% left out (descheduling by other
 * processes, not the code). Unlike the median, it does not jump between the
 * futex shape's two modes (see FAST_MS): it weighs them as often as they came.
 */
function trimmedMean(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const kept = sorted.slice(0, Math.max(1, Math.floor(sorted.length * 0.99)));
  return kept.reduce((a, b) => a + b, 0) / kept.length;
}

/**
 * Under 4 us, a futex round trip was one where the synchronous peer never
 * slept (main's next store came before its FUTEX_WAIT compared the word:
 * EAGAIN; ~0.6-2 us in Bun, ~1.4-3 us in Deno); the other mode (~6-10 us)
 * is a kernel wake-up. Which one a round
 * mostly gets is a race between the two processes, in either tree.
 */
const FAST_MS = 0.004;

/**
 * The kernel wake-up mode's end: beyond 16 us lies the tail (descheduling,
 * a hand-off to the blocking thread), whose share also follows the race.
 */
const SLOW_END_MS = 0.016;

/** Every measured round trip, ms (the clock is read once per round trip, as in both trees). */
const trips: number[] = [];

/** The median of the batches' mean round trips, and the median single round trip, in ns. */
async function main(perBatch: number, batches: number): Promise<[number, number]> {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  const path = `/dev/shm/shmkit-bench-${
    [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")
  }`;
  const fd = openSync(path, "wx", 0o600);
  try {
    ftruncateSync(fd, 2 * HALF + 4096);
  } finally {
    closeSync(fd);
  }
  try {
    using mapping = api.Mapping.file(path);
    const words = mapping.view(Int32Array);
    // A long warm-up: the JIT settles later in Bun than in Deno.
    const warmUp = Math.max(500, perBatch);
    const total = warmUp + batches * perBatch;
    let batch: (n: number) => Promise<number>;
    let done: Promise<void>;
    if (shape === "channel") {
      const outbox = api.Channel.init(mapping.view(Uint8Array, 0, HALF), {});
      const inbox = api.Channel.init(mapping.view(Uint8Array, HALF, HALF), {});
      await startBlockingThread(words);
      done = startEcho([path, HALF, total]);
      const message = new Uint8Array(8);
      batch = async (n) => {
        const start = performance.now();
        let t = start;
        for (let i = 0; i < n; i++) {
          await outbox.sendAsync(message);
          await inbox.receiveAsync();
          const now = performance.now();
          trips.push(now - t);
          t = now;
        }
        return ((performance.now() - start) * 1e6) / n;
      };
    } else {
      await startBlockingThread(words);
      done = startEcho([path, total]);
      let i = 0;
      batch = async (n) => {
        const start = performance.now();
        let t = start;
        for (let k = 0; k < n; k++) {
          i++;
          Atomics.store(words, 0, i);
          api.notify(words, 0, 1);
          for (let seen = Atomics.load(words, 32); seen !== i; seen = Atomics.load(words, 32)) {
            await api.waitAsync(words, 32, seen, 60_000, { pollMs: 0.1 });
          }
          const now = performance.now();
          trips.push(now - t);
          t = now;
        }
        return ((performance.now() - start) * 1e6) / n;
      };
    }
    await batch(warmUp);
    trips.length = 0;
    const samples: number[] = [];
    for (let b = 0; b < batches; b++) samples.push(await batch(perBatch));
    await done;
    return [median(samples), median(trips) * 1e6];
  } finally {
    rmSync(path, { force: true });
  }
}

async function echo(): Promise<void> {
  const [path, ...counts] = rest as unknown as [string, ...string[]];
  using mapping = api.Mapping.file(path);
  const words = mapping.view(Int32Array);
  if (shape === "channel") {
    const [halfText, countText] = counts as [string, string];
    const half = Number(halfText);
    await startBlockingThread(words);
    const inbox = api.Channel.from(mapping.view(Uint8Array, 0, half), {});
    const outbox = api.Channel.from(mapping.view(Uint8Array, half, half), {});
    for (let i = 0; i < Number(countText); i++) {
      const message = await inbox.receiveAsync();
      if (!(message instanceof Uint8Array)) throw new Error("no message");
      await outbox.sendAsync(message);
    }
  } else {
    const count = Number(counts[0]);
    for (let i = 1; i <= count; i++) {
      for (let seen = Atomics.load(words, 0); seen !== i; seen = Atomics.load(words, 0)) {
        api.wait(words, 0, seen, 60_000);
      }
      Atomics.store(words, 32, i);
      api.notify(words, 32, 1);
    }
  }
}

if (role === "main") {
  const [ns, p50] = await main(Number(rest[0]), Number(rest[1]));
  console.log(`NS ${ns}`);
  console.log(`P50 ${p50}`);
  console.log(`TRIM ${trimmedMean(trips) * 1e6}`);
  console.log(`FAST ${trips.filter((t) => t < FAST_MS).length / trips.length}`);
  const slow = trips.filter((t) => t >= FAST_MS && t < SLOW_END_MS);
  // Count and sum (ns) of the round trips in each mode: fast, kernel wake-up, tail.
  const modes = [[0, FAST_MS], [FAST_MS, SLOW_END_MS], [SLOW_END_MS, Infinity]].flatMap(
    ([from, to]) => {
      const inMode = trips.filter((t) => t >= from! && t < to!);
      return [inMode.length, inMode.reduce((a, b) => a + b, 0) * 1e6];
    },
  );
  console.log(`MODES ${modes.join(" ")}`);
  // Too few for a median: NaN, and the bench leaves the round out.
  console.log(`SLOW ${slow.length >= 100 ? median(slow) * 1e6 : NaN}`);
} else {
  await echo();
}
endPeer();

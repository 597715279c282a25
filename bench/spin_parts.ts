/**
 * Where the spinning channel ping-pong and the uncontended Mutex spend
 * their time, against their bare lower bounds in the same runtime: a
 * two-word JS ping-pong between two processes over a shared mapping (the
 * channel's kind of memory), C's, the channel's protocol as bare JS with no
 * checks (bench/peers/channel_bare.ts), and the channel's, alternated in rounds
 * so that load hits all alike; then one-process costs of the parts
 * (Atomics on external memory, clocks, views). Not a `*_bench.ts` module:
 * it has no goals.
 *
 * Usage: deno run -A bench/spin_parts.ts | bun bench/spin_parts.ts | node bench/spin_parts.ts
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import process from "node:process";
import { Channel, Mapping, Mutex } from "../mod.ts";
import { compileC, median } from "./harness.ts";
import { exited, sharedFile, startPeer } from "./peers/support.ts";
import { BareChannel } from "./peers/channel_bare.ts";
import { bareBatch, channelBatch } from "./_spin_batches.ts";

const ROUNDS = Number(process.env.SPIN_ROUNDS ?? 5);
const PER = 20_000;

const BATCH = 500;

/**
 * `n` round trips in batches of 500; the 10th percentile of the batches'
 * means. On a loaded machine most batches include a time slice in which
 * one side was descheduled; the fast ones show the cost itself.
 */
function batches(batch: (count: number) => number, n: number): number {
  const means: number[] = [];
  for (let done = 0; done < n; done += BATCH) means.push(batch(BATCH));
  return low(means);
}

/** The 10th percentile. */
function low(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 10)]!;
}

/** The C ping-pong's figure for short runs, the 10th percentile over `runs` runs. */
function cPingPong(program: string, runs: number): number {
  const figures: number[] = [];
  for (let r = 0; r < runs; r++) {
    figures.push(Number(execFileSync(program, [String(BATCH)], { encoding: "utf8" }).trim()));
  }
  return low(figures);
}

/** ns per round trip of the bare two-word spin ping-pong with a peer of this runtime. */
async function barePingPong(n: number): Promise<number> {
  const file = sharedFile(4096);
  try {
    using mapping = Mapping.file(file.path);
    const words = mapping.view(Int32Array);
    const warm = 2000;
    const peer = startPeer("spin_echo.ts", [file.path, warm + n]);
    const done = exited(peer, "spin echo");
    let i = 0;
    const batch = (count: number): number => {
      const start = performance.now();
      for (let k = 0; k < count; k++) {
        i++;
        Atomics.store(words, 0, i);
        while (Atomics.load(words, 32) !== i) { /* spin */ }
      }
      return ((performance.now() - start) * 1e6) / count;
    };
    batch(warm);
    const value = batches(batch, n);
    await done;
    return value;
  } finally {
    file.remove();
  }
}

/**
 * ns per round trip of an 8-byte message through two spinning channels;
 * `bare`: through the same layout driven by {@linkcode BareChannel} at both
 * ends (the protocol without its checks). The peer is fresh: WARM round
 * trips first, so that both processes' JIT has settled.
 */
async function channelPingPong(n: number, bare = false): Promise<number> {
  const half = 64 * 1024;
  const file = sharedFile(2 * half);
  try {
    using mapping = Mapping.file(file.path);
    const options = { spinMs: Infinity };
    const a = Channel.init(mapping.view(Uint8Array, 0, half), options);
    const b = Channel.init(mapping.view(Uint8Array, half, half), options);
    const peer = bare
      ? startPeer("channel_bare_echo.ts", [file.path, half, WARM + n])
      : startPeer("channel_echo.ts", [file.path, half, WARM + n, "spin"]);
    const done = exited(peer, "channel echo");
    const batch = bare
      ? bareBatch(
        new BareChannel(mapping.view(Uint8Array, 0, half), a.capacity),
        new BareChannel(mapping.view(Uint8Array, half, half), b.capacity),
      )
      : channelBatch(a, b);
    batch(WARM);
    const value = batches(batch, n);
    if (!bare) b.release();
    await done;
    return value;
  } finally {
    file.remove();
  }
}

/** Round trips before a channel ping-pong's batches: V8 needs 10-35 thousand to optimise. */
const WARM = 60_000;

/**
 * Median ns of CPU time per call of each part, timed in a loop of its own,
 * in alternating rounds: CPU time, not wall time, so that other work on
 * the machine does not count (it still disturbs the caches).
 */
function parts(table: Record<string, (n: number) => unknown>, n: number): Record<string, number> {
  const samples: Record<string, number[]> = {};
  for (let r = 0; r < 8; r++) {
    for (const [name, fn] of Object.entries(table)) {
      const start = process.cpuUsage();
      fn(n);
      const used = process.cpuUsage(start);
      (samples[name] ??= []).push(((used.user + used.system) * 1e3) / n);
    }
  }
  return Object.fromEntries(Object.entries(samples).map(([k, s]) => [k, median(s.slice(1))]));
}

const runtime = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";
const out: Record<string, number[]> = { c: [], bare: [], protocol: [], channel: [] };
const pingpong = compileC("pingpong_spin");
for (let r = 0; r < ROUNDS; r++) {
  if (process.env.SPIN_ONLY_PARTS) break;
  // SPIN_ONLY=channel: the channel's rounds alone, to alternate builds.
  // The bare protocol is the channel's floor: the same words and copies, no checks.
  if (process.env.SPIN_ONLY !== "channel") {
    out.c!.push(cPingPong(pingpong, 40));
    out.bare!.push(await barePingPong(PER));
    out.protocol!.push(await channelPingPong(PER, true));
  }
  out.channel!.push(await channelPingPong(PER));
}
const show = (s: number[]): string =>
  `median ${median(s).toFixed(0)} (${s.map((x) => x.toFixed(0)).join(" ")})`;
console.log(
  `${runtime} spin ping-pong, ns per round trip (10th percentile of batches of ${BATCH}), ${ROUNDS} rounds:`,
);
console.log(`  C two words        ${show(out.c!)}`);
console.log(`  JS two words       ${show(out.bare!)}`);
console.log(`  JS bare protocol   ${show(out.protocol!)}`);
console.log(`  channel            ${show(out.channel!)}`);

using mapping = Mapping.anonymous(4096);
const ext = mapping.view(Int32Array, 0, 64);
const sab = new Int32Array(new SharedArrayBuffer(256));
const mutex = Mutex.init(mapping.view(Uint8Array, 1024, 16));
const bytes = mapping.view(Uint8Array, 2048, 1024);
const source = new Uint8Array(8);
const ID = 12345;
let sink = 0;
using ringMapping = Mapping.anonymous(Channel.byteLengthFor(64 * 1024));
const channel = Channel.init(ringMapping.view(), { spinMs: Infinity });
const message = new Uint8Array(8);
const table: Record<string, (n: number) => unknown> = {
  "channel send + receive, one process": (n) => {
    for (let i = 0; i < n; i++) {
      channel.send(message);
      sink += (channel.receive() as Uint8Array).length;
    }
  },
  "channel trySend + tryReceive, one process": (n) => {
    for (let i = 0; i < n; i++) {
      channel.trySend(message);
      sink += (channel.tryReceive() as Uint8Array).length;
    }
  },
  "channel tryReceive, empty": (n) => {
    for (let i = 0; i < n; i++) if (channel.tryReceive() === null) sink++;
  },
  "channel receive(0), empty": (n) => {
    for (let i = 0; i < n; i++) if (channel.receive(0) === null) sink++;
  },
  "loop alone": (n) => {
    for (let i = 0; i < n; i++) sink += i;
  },
  "Atomics.load, external": (n) => {
    for (let i = 0; i < n; i++) sink += Atomics.load(ext, 1);
  },
  "Atomics.load, SharedArrayBuffer": (n) => {
    for (let i = 0; i < n; i++) sink += Atomics.load(sab, 1);
  },
  "plain read, external": (n) => {
    for (let i = 0; i < n; i++) sink += ext[i & 7]!;
  },
  "Atomics.exchange, external": (n) => {
    for (let i = 0; i < n; i++) Atomics.exchange(ext, 2, i);
  },
  "CAS lock + CAS unlock, external (bare Mutex)": (n) => {
    for (let i = 0; i < n; i++) {
      Atomics.compareExchange(ext, 0, 0, ID);
      Atomics.compareExchange(ext, 0, ID, 0);
    }
  },
  "CAS lock + CAS unlock, SharedArrayBuffer": (n) => {
    for (let i = 0; i < n; i++) {
      Atomics.compareExchange(sab, 0, 0, ID);
      Atomics.compareExchange(sab, 0, ID, 0);
    }
  },
  "Mutex lock + unlock": (n) => {
    for (let i = 0; i < n; i++) {
      mutex.lock();
      mutex.unlock();
    }
  },
  "performance.now()": (n) => {
    for (let i = 0; i < n; i++) sink += performance.now();
  },
  "Date.now()": (n) => {
    for (let i = 0; i < n; i++) sink += Date.now();
  },
  "subarray (8 bytes)": (n) => {
    for (let i = 0; i < n; i++) sink += bytes.subarray(i & 511, (i & 511) + 8).length;
  },
  "new Uint8Array(buffer, offset, 8)": (n) => {
    for (let i = 0; i < n; i++) {
      sink += new Uint8Array(bytes.buffer, bytes.byteOffset + (i & 511), 8).length;
    }
  },
  "set() of 8 bytes": (n) => {
    for (let i = 0; i < n; i++) bytes.set(source, (i & 63) * 8);
  },
};
console.log(`${runtime} one-process parts, ns of CPU time per call:`);
for (const [name, ns] of Object.entries(parts(table, 1_000_000))) {
  console.log(`  ${name.padEnd(45)} ${ns.toFixed(1)}`);
}
const c = compileC("mutex_uncontended", ["-lpthread"]);
const cMutex: number[] = [];
for (let r = 0; r < 20; r++) {
  cMutex.push(Number(execFileSync(c, ["default", "1000000"], { encoding: "utf8" }).trim()));
}
// Wall time, but the 10th percentile of 20 short runs: the ones nothing interrupted.
console.log(
  `  ${"C pthread_mutex default lock + unlock (p10)".padEnd(45)} ${low(cMutex).toFixed(1)}`,
);
if (sink === 0.5) console.log("");

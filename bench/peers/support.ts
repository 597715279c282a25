/**
 * Helpers for the lock and channel benchmarks: a /dev/shm file each process
 * maps, peers started in the runtime running the benchmark, and a wait for
 * a shared word that keeps the event loop free.
 *
 * @module
 */
import { type ChildProcess, spawn, type StdioOptions } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { SharedMemory, waitAsync } from "../../mod.ts";

const HERE = dirname(fileURLToPath(import.meta.url));

/** The command prefix that runs a script in this runtime. */
export function runtimeCommand(): [string, string[]] {
  const g = globalThis as { Deno?: { execPath(): string }; process?: { execPath: string } };
  if (g.Deno !== undefined) return [g.Deno.execPath(), ["run", "-A", "--quiet", "--no-check"]];
  if ("Bun" in globalThis) return [g.process!.execPath, []];
  return [g.process!.execPath, ["--disable-warning=ExperimentalWarning"]];
}

/** Starts bench/peers/<script> in this runtime. */
export function startPeer(
  script: string,
  args: readonly (string | number)[],
  stdio: StdioOptions = ["ignore", "inherit", "inherit"],
): ChildProcess {
  const [command, prefix] = runtimeCommand();
  return spawn(command, [...prefix, join(HERE, script), ...args.map(String)], { stdio });
}

/** Resolves when a child exits; rejects unless it exits with 0. */
export function exited(child: ChildProcess, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null) {
      if (child.exitCode === 0) resolve();
      else reject(new Error(`${what} exited with ${child.exitCode}`));
      return;
    }
    child.on("close", (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${what} exited with ${code ?? signal}`));
    });
  });
}

/**
 * A zeroed /dev/shm file with a random name, and its removal. Made by
 * `SharedMemory.create`, so that shmkit's cleaner process removes it when
 * the benchmark is stopped by Ctrl-C or a kill, not only at a normal end.
 */
export function sharedFile(size: number): { path: string; remove(): void } {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  const name = `/shmkit-bench-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
  // Sparse, as an ftruncate'd file: the benchmarks touch what they use.
  const shm = SharedMemory.create({ name, size, reserve: false });
  return { path: `/dev/shm${name}`, remove: () => shm[Symbol.dispose]() };
}

/** Waits (without blocking the event loop) until words[index] is `value`. */
export async function awaitWord(words: Int32Array, index: number, value: number): Promise<void> {
  for (let seen = Atomics.load(words, index); seen !== value; seen = Atomics.load(words, index)) {
    if (await waitAsync(words, index, seen, 60_000) === "timed-out") {
      throw new Error(`Timed out waiting for word ${index} to be ${value}`);
    }
  }
}

/** The median of some numbers. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const BATCHES = 5;

/** Round trips of 8 bytes over a byte stream: write, then wait for 8 bytes back. */
export async function streamPingPong(
  write: (bytes: Uint8Array) => void,
  onData: (listener: (chunk: Uint8Array) => void) => void,
  perBatch: number,
): Promise<number> {
  let pending = 0;
  let wake: () => void = () => {};
  onData((chunk) => {
    pending -= chunk.length;
    if (pending <= 0) wake();
  });
  const message = new Uint8Array(8);
  const roundTrip = (): Promise<void> =>
    new Promise((resolve) => {
      pending = message.length;
      wake = resolve;
      write(message);
    });
  const batch = async (n: number): Promise<number> => {
    const start = performance.now();
    for (let i = 0; i < n; i++) await roundTrip();
    return ((performance.now() - start) * 1e6) / n;
  };
  await batch(Math.max(100, perBatch >> 2));
  const samples: number[] = [];
  for (let b = 0; b < BATCHES; b++) samples.push(await batch(perBatch));
  return median(samples);
}

/** ns per round trip through a pipe pair (node:child_process stdio) in this runtime. */
export async function pipePingPong(perBatch: number): Promise<number> {
  const peer: ChildProcess = startPeer("pipe_echo.ts", [], ["pipe", "pipe", "inherit"]);
  const done = exited(peer, "pipe echo");
  const result = await streamPingPong(
    (bytes) => void peer.stdin!.write(bytes),
    (listener) => void peer.stdout!.on("data", listener),
    perBatch,
  );
  peer.stdin!.end();
  await done;
  return result;
}

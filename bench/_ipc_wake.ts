/**
 * Wake-up round trips for the ipc/ async waits: this process waits in
 * `waitAsync` / `acquireAsync` / `lockAsync` (on another thread, `pollMs: 0`
 * where there is a polling window), and a C peer (bench/c/ipc_wake.c) wakes
 * it, then blocks itself until this side wakes it back. The peer posts only
 * once the waiter is registered: glibc's semaphore waiter count and GETNCNT
 * count a thread already in the wait call, so those two wake a blocked
 * waiter; a mutex's FUTEX_WAITERS bit is set by lockAsync before the wait
 * reaches its thread, so that figure is a hand-over through the async path,
 * often without a sleep in the kernel. The baseline is the same protocol
 * with a C waiter blocked in sem_wait / semop / pthread_mutex_lock,
 * measured in the same run.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { Mapping } from "../mod.ts";
import { NamedSemaphore, PthreadMutex, SystemVSemaphoreSet } from "../ipc/mod.ts";
import { compileC, median, runForNumber } from "./harness.ts";
import { sharedFile } from "./peers/support.ts";

const BATCHES = 5;

/** The wake-up benchmark's figures, ns per round trip. */
export interface WakeFigures {
  /** shmkit's async waiter against the C peer. */
  readonly value: number;
  /** A C waiter against the same C peer. */
  readonly c: number;
}

function program(): string {
  return compileC("ipc_wake", ["-lpthread"]);
}

function finished(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (code: number | null, signal: string | null): void => {
      if (code === 0) resolve();
      else reject(new Error(`Cannot bench: the C peer exited with ${code ?? signal}`));
    };
    if (child.exitCode !== null || child.signalCode !== null) {
      settle(child.exitCode, child.signalCode);
    } else child.on("close", settle);
  });
}

/** Round trips in batches; returns the median batch's ns per round trip. */
async function batches(perBatch: number, roundTrip: () => Promise<void>): Promise<number> {
  for (let i = 0; i < Math.max(50, perBatch >> 2); i++) await roundTrip();
  const samples: number[] = [];
  for (let b = 0; b < BATCHES; b++) {
    const start = performance.now();
    for (let i = 0; i < perBatch; i++) await roundTrip();
    samples.push(((performance.now() - start) * 1e6) / perBatch);
  }
  return median(samples);
}

function total(perBatch: number): number {
  return Math.max(50, perBatch >> 2) + BATCHES * perBatch;
}

/** NamedSemaphore: post(A), then waitAsync(B) until the peer's sem_wait(A) + sem_post(B). */
export async function namedSemaphoreWake(perBatch: number): Promise<WakeFigures> {
  const exe = program();
  using ping = NamedSemaphore.create();
  using pong = NamedSemaphore.create();
  const peer = spawn(exe, ["sem-peer", ping.name, pong.name, String(total(perBatch))], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const done = finished(peer);
  try {
    const value = await batches(perBatch, async () => {
      ping.post();
      await pong.waitAsync({ pollMs: 0 });
    });
    await done;
    return { value, c: runForNumber(exe, ["sem-base", String(perBatch * 4)]) };
  } finally {
    if (peer.exitCode === null) peer.kill("SIGKILL");
  }
}

/** System V: release(0), then acquireAsync(1) until the peer's semop(0, -1) + semop(1, +1). */
export async function systemVSemaphoreWake(perBatch: number): Promise<WakeFigures> {
  const exe = program();
  const set = SystemVSemaphoreSet.create(2);
  const peer = spawn(exe, ["sysv-peer", String(set.id), String(total(perBatch))], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const done = finished(peer);
  try {
    const value = await batches(perBatch, async () => {
      set.release(0, { undo: false });
      if (!await set.acquireAsync(1, { undo: false })) throw new Error("Cannot bench: timed out");
    });
    await done;
    return { value, c: runForNumber(exe, ["sysv-base", String(perBatch * 4)]) };
  } finally {
    if (peer.exitCode === null) peer.kill("SIGKILL");
    set.remove();
  }
}

/** Resolves on the peer's "ready" line. */
function ready(peer: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = "";
    peer.stdout!.setEncoding("utf8");
    peer.stdout!.on("data", (chunk: string) => {
      text += chunk;
      if (text.includes("ready\n")) resolve();
    });
    peer.on("close", (code) => reject(new Error(`Cannot bench: the C peer exited with ${code}`)));
  });
}

/**
 * PthreadMutex: a relay of three mutexes (see ipc_wake.c); each round trip
 * is lockAsync of the mutex the peer unlocks, then unlock of the one it
 * waits for.
 */
export async function pthreadMutexWake(perBatch: number): Promise<WakeFigures> {
  const exe = program();
  const file = sharedFile(4096);
  try {
    using mapping = Mapping.file(file.path);
    const mutexes = [0, 1, 2].map((i) =>
      PthreadMutex.init(mapping.view(Uint8Array, 64 * i, PthreadMutex.size))
    );
    mutexes[1]!.lock();
    const peer = spawn(exe, ["mutex-peer", file.path, String(total(perBatch))], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const done = finished(peer);
    try {
      await ready(peer);
      let t = 0;
      const value = await batches(perBatch, async () => {
        const got = await mutexes[(2 * t) % 3]!.lockAsync(undefined, { pollMs: 0 });
        if (got === null || got.ownerDied) throw new Error("Cannot bench: the relay broke");
        mutexes[(2 * t + 1) % 3]!.unlock();
        t++;
      });
      await done;
      // The peer exits holding two mutexes; this side holds one.
      for (const mutex of mutexes) if (mutex.held) mutex.unlock();
      return { value, c: runForNumber(exe, ["mutex-base", String(perBatch * 4)]) };
    } finally {
      if (peer.exitCode === null) peer.kill("SIGKILL");
    }
  } finally {
    file.remove();
  }
}

// The fd-readiness reactor under spawn (spawn/_poll_reactor.ts): its edge
// cases, in whichever engine this runtime uses (Deno: poll on the blocking
// thread; Bun: epoll waited on by a native thread; Node: by a Worker), in
// Bun's Worker fallback, and in the timer fallback.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unsafeLibc } from "../ffi/libc.ts";
import { cString } from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";
import {
  closingFd,
  onceReady,
  reactorEngine,
  useEpollEngineForTesting,
  useTimerEngineForTesting,
  waitReady,
} from "../spawn/_poll_reactor.ts";
import { runtime } from "./helpers.ts";

const C = platform.constants;
/** Bun's 5 s default is too short on a loaded machine. */
const SLOW = { timeout: 60_000 };

function pipe(): [number, number] {
  const fds = new Int32Array(2);
  assert.equal(unsafeLibc.pipe2(fds, C.O_CLOEXEC | C.O_NONBLOCK), 0);
  return [fds[0]!, fds[1]!];
}

function write(fd: number): void {
  assert.equal(unsafeLibc.write(fd, new Uint8Array([1]), 1), 1);
}

/** Whether `promise` settles before `ms` have passed (a hang guard, not a timing claim). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const result = await Promise.race([promise.then(() => true), late]);
  clearTimeout(timer);
  return result;
}

/** Waits a few turns of the event loop, long enough for a wrong report to arrive. */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 50));

test("reactor: this runtime's engine is the expected one", () => {
  const expected = { deno: "deno-nonblocking", bun: "bun-native", node: "node-worker" }[runtime];
  assert.equal(reactorEngine(), expected);
});

// Bun's Worker waiter is the fallback where TinyCC or memfd is missing.
const engines = runtime === "bun"
  ? ["default", "bun-worker", "timer"] as const
  : ["default", "timer"] as const;
for (const engine of engines) {
  const withEngine = async (fn: () => Promise<void>): Promise<void> => {
    const restore = engine === "timer"
      ? useTimerEngineForTesting()
      : engine === "bun-worker"
      ? useEpollEngineForTesting(false)!
      : () => {};
    if (engine === "bun-worker") assert.equal(reactorEngine(), "bun-worker");
    try {
      await fn();
    } finally {
      restore();
    }
  };

  test(
    `reactor (${engine}): a pipe's wait resolves with POLLIN once written, not before`,
    SLOW,
    () =>
      withEngine(async () => {
        const [read, writeEnd] = pipe();
        try {
          const wait = waitReady(read, C.POLLIN);
          assert.equal(await settlesWithin(wait.promise, 50), false);
          write(writeEnd);
          const revents = await wait.promise;
          assert.equal(revents & C.POLLIN, C.POLLIN);
        } finally {
          unsafeLibc.close(read);
          unsafeLibc.close(writeEnd);
        }
      }),
  );

  test(
    `reactor (${engine}): two waits on one fd both resolve; waiting again re-arms it`,
    SLOW,
    () =>
      withEngine(async () => {
        const [read, writeEnd] = pipe();
        try {
          const first = waitReady(read, C.POLLIN);
          const second = waitReady(read, C.POLLIN);
          write(writeEnd);
          assert.equal((await first.promise) & C.POLLIN, C.POLLIN);
          assert.equal((await second.promise) & C.POLLIN, C.POLLIN);
          // Drain, then wait again on the same fd: no report until new data.
          unsafeLibc.read(read, new Uint8Array(16), 16);
          const again = waitReady(read, C.POLLIN);
          assert.equal(await settlesWithin(again.promise, 50), false);
          write(writeEnd);
          assert.equal((await again.promise) & C.POLLIN, C.POLLIN);
        } finally {
          unsafeLibc.close(read);
          unsafeLibc.close(writeEnd);
        }
      }),
  );

  test(
    `reactor (${engine}): a cancelled wait never resolves; a new one on the fd does`,
    SLOW,
    () =>
      withEngine(async () => {
        const [read, writeEnd] = pipe();
        try {
          const cancelled = waitReady(read, C.POLLIN);
          let resolved = false;
          cancelled.promise.then(() => (resolved = true));
          cancelled.cancel();
          cancelled.cancel(); // idempotent
          const next = waitReady(read, C.POLLIN);
          write(writeEnd);
          assert.equal((await next.promise) & C.POLLIN, C.POLLIN);
          await settle();
          assert.equal(resolved, false);
        } finally {
          unsafeLibc.close(read);
          unsafeLibc.close(writeEnd);
        }
      }),
  );

  test(
    `reactor (${engine}): an fd closed and its number reused is waited for afresh`,
    SLOW,
    () =>
      withEngine(async () => {
        const [read, writeEnd] = pipe();
        const first = waitReady(read, C.POLLIN);
        write(writeEnd);
        await first.promise;
        unsafeLibc.close(read);
        unsafeLibc.close(writeEnd);
        // The lowest free numbers come back: very likely the same two.
        const [read2, writeEnd2] = pipe();
        try {
          const second = waitReady(read2, C.POLLIN);
          assert.equal(await settlesWithin(second.promise, 50), false);
          write(writeEnd2);
          assert.equal((await second.promise) & C.POLLIN, C.POLLIN);
        } finally {
          unsafeLibc.close(read2);
          unsafeLibc.close(writeEnd2);
        }
      }),
  );

  test(
    `reactor (${engine}): an fd announced with closingFd, closed, and its number reused is waited for afresh, every time`,
    SLOW,
    () =>
      withEngine(async () => {
        // What a pidfd per child does: the books for the number are kept and reused.
        for (let round = 0; round < 5; round++) {
          const [read, writeEnd] = pipe();
          try {
            const wait = waitReady(read, C.POLLIN);
            assert.equal(await settlesWithin(wait.promise, 20), false);
            write(writeEnd);
            assert.equal((await wait.promise) & C.POLLIN, C.POLLIN);
          } finally {
            closingFd(read);
            unsafeLibc.close(read);
            unsafeLibc.close(writeEnd);
          }
        }
      }),
  );

  test(
    `reactor (${engine}): onceReady reports one readiness to its callback, not before it comes`,
    SLOW,
    () =>
      withEngine(async () => {
        const [read, writeEnd] = pipe();
        const dir = mkdtempSync(join(tmpdir(), "shmkit-once-"));
        const file = join(dir, "regular");
        writeFileSync(file, "x");
        const fileFd = unsafeLibc.open(cString(file, "path"), C.O_RDONLY | C.O_CLOEXEC, 0);
        try {
          const seen: number[] = [];
          let woken!: () => void;
          const arrived = new Promise<void>((resolve) => (woken = resolve));
          const wait = onceReady(read, C.POLLIN, true, (revents) => {
            seen.push(revents);
            woken();
          });
          // Only the epoll engines offer it; elsewhere the caller uses waitReady.
          const expected = engine === "timer" || reactorEngine() === "deno-nonblocking";
          assert.equal(wait === undefined, expected);
          if (wait === undefined) return;
          assert.equal(await settlesWithin(arrived, 50), false);
          write(writeEnd);
          await arrived;
          await settle(); // a second report would come now
          assert.deepEqual(seen.map((r) => r & C.POLLIN), [C.POLLIN]);
          // A regular file can't be polled: it is reported ready at once, as poll() says.
          const fileReady = new Promise<number>((resolve) =>
            onceReady(fileFd, C.POLLIN, true, resolve)
          );
          assert.equal((await fileReady) & C.POLLIN, C.POLLIN);
        } finally {
          unsafeLibc.close(fileFd);
          unsafeLibc.close(read);
          unsafeLibc.close(writeEnd);
          rmSync(dir, { recursive: true });
        }
      }),
  );

  test(
    `reactor (${engine}): POLLOUT on a pipe with room, POLLHUP once the reader is gone`,
    SLOW,
    () =>
      withEngine(async () => {
        const [read, writeEnd] = pipe();
        try {
          assert.equal((await waitReady(writeEnd, C.POLLOUT).promise) & C.POLLOUT, C.POLLOUT);
          const [read2, writeEnd2] = pipe();
          const hangup = waitReady(read2, C.POLLIN);
          unsafeLibc.close(writeEnd2);
          assert.notEqual((await hangup.promise) & (C.POLLHUP | C.POLLIN), 0);
          unsafeLibc.close(read2);
        } finally {
          unsafeLibc.close(read);
          unsafeLibc.close(writeEnd);
        }
      }),
  );

  test(
    `reactor (${engine}): a regular file is ready at once, as poll says`,
    SLOW,
    () =>
      withEngine(async () => {
        const dir = mkdtempSync(join(tmpdir(), "shmkit-reactor-"));
        const path = join(dir, "file");
        writeFileSync(path, "x");
        const fd = unsafeLibc.open(cString(path, "path"), C.O_RDONLY | C.O_CLOEXEC, 0);
        assert.ok(fd >= 0);
        try {
          const revents = await waitReady(fd, C.POLLIN).promise;
          assert.equal(revents & C.POLLIN, C.POLLIN);
        } finally {
          unsafeLibc.close(fd);
          rmSync(dir, { recursive: true });
        }
      }),
  );

  test(
    `reactor (${engine}): 200 pipes waited for at once each resolve exactly when written`,
    SLOW,
    () =>
      withEngine(async () => {
        const pipes = Array.from({ length: 200 }, pipe);
        try {
          const waits = pipes.map(([read]) => waitReady(read, C.POLLIN));
          const done = waits.map(() => false);
          waits.forEach((w, i) => w.promise.then(() => (done[i] = true)));
          // Write every other pipe: only those resolve.
          for (let i = 0; i < pipes.length; i += 2) write(pipes[i]![1]);
          await Promise.all(waits.filter((_, i) => i % 2 === 0).map((w) => w.promise));
          await settle();
          assert.deepEqual(done, pipes.map((_, i) => i % 2 === 0));
          for (let i = 1; i < pipes.length; i += 2) write(pipes[i]![1]);
          await Promise.all(waits.map((w) => w.promise));
        } finally {
          for (const [read, writeEnd] of pipes) {
            unsafeLibc.close(read);
            unsafeLibc.close(writeEnd);
          }
        }
      }),
  );
}

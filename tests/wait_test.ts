import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { ClosedError, Mapping, notify, wait, waitAsync } from "../mod.ts";
import { DEFAULT_POLL_MS, unsafeLibc } from "../raw.ts";
import { futexWorkerCounts } from "../sync/wait.ts";
import { runtimeName, scheduleMacrotask } from "../core/_runtime.ts";
import {
  afterTicks,
  expectSuccess,
  isEmulated,
  other,
  type Peer,
  PEER_TEST,
  self,
  sharedFile,
  startPeer,
  until,
} from "./fixtures/lock_peers.ts";

const peers: Peer[] = other === undefined ? [self] : [self, other];

test("Atomics load/store/add/sub/exchange/compareExchange work on Int32Array views of a mapping", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  Atomics.store(words, 3, 41);
  assert.equal(Atomics.add(words, 3, 1), 41);
  assert.equal(Atomics.load(words, 3), 42);
  assert.equal(Atomics.sub(words, 3, 2), 42);
  assert.equal(Atomics.exchange(words, 3, 7), 40);
  assert.equal(Atomics.compareExchange(words, 3, 8, 9), 7, "no swap when not equal");
  assert.equal(Atomics.compareExchange(words, 3, 7, 9), 7);
  assert.equal(Atomics.or(words, 3, 0x10), 9);
  assert.equal(words[3], 0x19);
  // The same bytes, seen through another view of the mapping.
  assert.equal(mapping.dataView().getInt32(12, true), 0x19);
});

test("Atomics.wait and Atomics.notify refuse mapping views (which is why wait/notify exist)", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  assert.throws(() => Atomics.wait(words, 0, 0, 0), TypeError);
  // notify on a non-shared buffer returns 0 rather than throwing in some engines.
  let notified: number | undefined;
  try {
    notified = Atomics.notify(words, 0, 1);
  } catch (error) {
    assert.ok(error instanceof TypeError);
  }
  assert.ok(notified === undefined || notified === 0);
});

test("wait: not-equal at once, timed-out when nobody notifies, 0 means do not sleep", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  words[0] = 5;
  assert.equal(wait(words, 0, 4, 1000), "not-equal");
  assert.equal(wait(words, 0, 5, 25), "timed-out");
  assert.equal(wait(words, 0, 5, 0), "timed-out");
  // uint32 spellings of negative int32 values compare as the same word.
  words[1] = -1;
  assert.equal(wait(words, 1, 0xffffffff, 0), "timed-out");
  assert.equal(notify(words, 0), 0, "nobody waits");
});

test("wait/notify reject bad arguments with TypeError/RangeError, closed memory with ClosedError", () => {
  const mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  assert.throws(() => wait(mapping.view(Uint32Array) as never, 0, 0, 0), TypeError);
  assert.throws(() => wait([0] as never, 0, 0, 0), TypeError);
  assert.throws(() => wait(words, 1024, 0, 0), RangeError);
  assert.throws(() => wait(words, -1, 0, 0), RangeError);
  assert.throws(() => wait(words, 0, 0.5, 0), RangeError);
  assert.throws(() => wait(words, 0, 2 ** 32, 0), RangeError);
  assert.throws(() => wait(words, 0, 0, -1), /expected 0 or more/);
  assert.throws(() => wait(words, 0, 0, NaN), /NaN/);
  assert.throws(() => wait(words, 0, 0, "10" as never), TypeError);
  assert.throws(() => waitAsync(words, 0, 0, -1), RangeError);
  assert.throws(() => waitAsync(words, 0, 0, 10, { pollMs: NaN }), RangeError);
  assert.throws(() => notify(words, 0, -1), RangeError);
  assert.throws(() => notify(words, 0, 1.5), RangeError);
  mapping.close();
  assert.throws(() => wait(words, 0, 0, 0), ClosedError);
  assert.throws(() => notify(words, 0), ClosedError);
});

test("waitAsync: the event loop runs during the wait, and notify wakes it", async () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const pending = waitAsync(words, 0, 0, 30_000);
  // Only the timer's third tick can end the wait.
  const timer = afterTicks(3, () => {
    Atomics.store(words, 0, 1);
    notify(words, 0);
  });
  try {
    assert.equal(await pending, "ok");
    assert.ok(timer.count >= 3, `the timer fired ${timer.count} times during the wait`);
  } finally {
    timer.stop();
  }
  assert.equal(await waitAsync(words, 0, 0, 10), "not-equal");
  assert.equal(await waitAsync(words, 0, 1, 20), "timed-out");
  assert.equal(await waitAsync(words, 0, 1, 20, { pollMs: 0 }), "timed-out");
});

test("waitAsync polls from the event loop for its window: not in the kernel, and sees the change", async () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const pending = waitAsync(words, 0, 0, 30_000, { pollMs: 30_000 });
  let notified = -1;
  // Timers run meanwhile; on the third tick the waiter is still polling, so notify finds nobody.
  const timer = afterTicks(3, () => {
    notified = notify(words, 0);
    Atomics.store(words, 0, 1);
  });
  try {
    assert.equal(await pending, "ok");
    assert.equal(notified, 0, "nobody slept in the kernel during the polling window");
    assert.ok(timer.count >= 3, `the timer fired ${timer.count} times during the wait`);
  } finally {
    timer.stop();
  }
});

test("notify counts the waiters it woke, once they sleep in the kernel", async () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const pending = [
    waitAsync(words, 0, 0, 10_000, { pollMs: 0 }),
    waitAsync(words, 0, 0, 10_000, { pollMs: 0 }),
  ];
  // A waiter on a worker thread is asleep once a notify finds it.
  let woken = 0;
  await until(() => (woken += notify(words, 0, 1)) >= 1, 10_000, "a waiter to sleep");
  await until(() => (woken += notify(words, 0)) >= 2, 10_000, "the other waiter");
  assert.equal(woken, 2);
  assert.deepEqual(await Promise.all(pending), ["ok", "ok"]);
});

test("waitAsync without a timeout rejects with ClosedError when the memory is closed during the wait", async () => {
  for (const pollMs of [0, DEFAULT_POLL_MS, Infinity]) {
    const mapping = Mapping.anonymous(4096);
    const words = mapping.view(Int32Array);
    const pending = waitAsync(words, 0, 0, undefined, { pollMs });
    // Closed on the timer's third tick, while the wait blocks (or polls).
    const timer = afterTicks(3, () => mapping.close());
    try {
      await assert.rejects(pending, ClosedError, `pollMs ${pollMs}`);
    } finally {
      timer.stop();
    }
  }
  const mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  mapping.close();
  const rejected = waitAsync(words, 0, 0);
  assert.ok(rejected instanceof Promise, "closed memory is a rejection, not a synchronous throw");
  await assert.rejects(rejected, ClosedError);
});

test("waitAsync with an AbortSignal rejects with its reason as soon as it aborts, and frees the thread", async () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  for (const pollMs of [0, DEFAULT_POLL_MS, Infinity]) {
    const controller = new AbortController();
    let outcome: unknown;
    const pending = waitAsync(words, 0, 0, undefined, { pollMs, signal: controller.signal }).then(
      (value) => (outcome = value),
      (error: unknown) => (outcome = error),
    );
    await new Promise((resolve) => setTimeout(resolve, 5));
    const reason = new Error("stop");
    controller.abort(reason);
    // Settled by the abort event itself, or by the polling look already queued
    // (a look checks the signal): an immediate queued now runs after that look.
    await new Promise<void>((resolve) => scheduleMacrotask(resolve));
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(outcome, reason, `pollMs ${pollMs}`);
    await pending;
  }
  if (runtimeName === "bun") {
    // The Worker that blocked for the wait was woken and went back to the pool.
    await until(
      () => {
        const { live, idle } = futexWorkerCounts();
        return live === idle;
      },
      30_000,
      "the futex Worker to return",
    );
  }
  const aborted = AbortSignal.abort(new Error("before"));
  await assert.rejects(waitAsync(words, 0, 0, 1000, { signal: aborted }), /before/);
  assert.throws(() => waitAsync(words, 0, 0, 10, { signal: {} as never }), TypeError);
  assert.equal(words[0], 0, "the word was left alone");
});

test("-0 is 0 for every integer argument (Deno's FFI refuses -0 for 32-bit parameters)", async () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  assert.equal(notify(words, -0, -0), 0);
  assert.equal(wait(words, -0, -0, -0), "timed-out");
  assert.equal(await waitAsync(words, 0, -0, 5, { pollMs: -0 }), "timed-out");
  // Straight through the raw table: kill(pid, 0) only checks that the process exists.
  assert.equal(unsafeLibc.kill(process.pid, -0), 0);
  assert.equal(unsafeLibc.getpid(), process.pid);
});

test(
  "futex words are shared across processes: Atomics.add from peers and wait/notify ping-pong",
  PEER_TEST,
  async () => {
    const rounds = isEmulated ? 20 : 200;
    const adds = isEmulated ? 1000 : 20_000;
    for (const peer of peers) {
      const file = sharedFile(4096);
      try {
        using mapping = Mapping.file(file.path);
        const words = mapping.view(Int32Array);
        const running = startPeer(peer, "lock_pingpong.ts", [file.path, rounds, adds]);
        for (let i = 0; i < adds; i++) Atomics.add(words, 2, 1);
        for (let i = 1; i <= rounds; i++) {
          Atomics.store(words, 0, i);
          notify(words, 0);
          // Alternate the sync and async waits.
          for (let seen = Atomics.load(words, 1); seen !== i; seen = Atomics.load(words, 1)) {
            const result = i % 2 === 0
              ? wait(words, 1, seen, 60_000)
              : await waitAsync(words, 1, seen, 60_000);
            if (result === "timed-out") {
              running.kill("SIGKILL");
              const { output } = await running.done;
              assert.fail(
                `${peer.runtime}: no pong ${i} (ping ${words[0]}, pong ${words[1]}):\n${output}`,
              );
            }
          }
        }
        await expectSuccess(running, `${peer.runtime} ping-pong`);
        assert.equal(Atomics.load(words, 2), 2 * adds, "no atomic add was lost across processes");
      } finally {
        file.remove();
      }
    }
  },
);

test(
  "a process whose async waits are done exits by itself (idle wait threads don't hold it)",
  PEER_TEST,
  async () => {
    for (const peer of peers) {
      const file = sharedFile(4096);
      try {
        using mapping = Mapping.file(file.path);
        const words = mapping.view(Int32Array);
        // The peer waits for each ping with waitAsync, then has nothing left to do.
        const running = startPeer(peer, "lock_pingpong.ts", [file.path, 3, 0, "async"], 30_000);
        for (let i = 1; i <= 3; i++) {
          Atomics.store(words, 0, i);
          notify(words, 0);
          for (let seen = Atomics.load(words, 1); seen !== i; seen = Atomics.load(words, 1)) {
            assert.notEqual(await waitAsync(words, 1, seen, 30_000), "timed-out");
          }
        }
        await expectSuccess(running, `${peer.runtime} peer`);
      } finally {
        file.remove();
      }
    }
  },
);

test(
  "a process whose async waits were aborted or closed exits by itself (no thread left blocked)",
  PEER_TEST,
  async () => {
    for (const peer of peers) {
      for (const mode of ["abort", "close"]) {
        const running = startPeer(peer, "lock_abort.ts", [mode], 60_000);
        const output = await expectSuccess(running, `${peer.runtime} ${mode}`);
        const reason = mode === "abort" ? "Stopped" : "ClosedError";
        for (const kind of ["wait", "mutex", "semaphore", "event"]) {
          assert.match(output, new RegExp(`^${kind}: rejected ${reason}$`, "m"), output);
        }
      }
    }
  },
);

test("futexWake on a remembered word (address cached on Node) wakes the waiter of that word, not of its neighbour", async () => {
  const { futexWake, rememberFutexWord } = await import("../sync/_futex.ts");
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const word = new Int32Array(words.buffer, words.byteOffset + 12, 1);
  rememberFutexWord(word);
  const neighbour = waitAsync(words, 4, 0, 10_000, { pollMs: 0 });
  const waiter = waitAsync(words, 3, 0, 10_000, { pollMs: 0 });
  let woken = 0;
  await until(() => (woken += futexWake(word, 1)) >= 1, 10_000, "the waiter to sleep");
  assert.equal(woken, 1);
  assert.equal(await waiter, "ok");
  // The neighbour still sleeps: only a notify of its own word ends it.
  let others = 0;
  await until(() => (others += notify(words, 4)) >= 1, 10_000, "the neighbour to sleep");
  assert.equal(others, 1);
  assert.equal(await neighbour, "ok");
});

test("futexWake/futexWait on a remembered word whose memory is closed behave as on any closed view", async () => {
  const { futexWait, futexWake, rememberFutexWord } = await import("../sync/_futex.ts");
  const outcome = (f: () => unknown): string => {
    try {
      return `returned ${String(f())}`;
    } catch (error) {
      return `threw ${(error as Error).constructor.name}`;
    }
  };
  const results: string[][] = [];
  for (const remember of [false, true]) {
    const mapping = Mapping.anonymous(4096);
    const word = mapping.view(Int32Array).subarray(2, 3);
    if (remember) rememberFutexWord(word);
    mapping.close();
    assert.equal(word.length, 0);
    results.push([outcome(() => futexWake(word, 1)), outcome(() => futexWait(word, 0, 0))]);
  }
  assert.deepEqual(results[1], results[0]);
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import process from "node:process";
import { ClosedError, LockError, Mapping, Mutex, notify, waitAsync } from "../mod.ts";
import {
  MUTEX_MAGIC,
  MUTEX_NOT_RECOVERABLE,
  MUTEX_OWNER_DIED,
  MUTEX_PID_MASK,
  MUTEX_TAG_SHIFT,
  MUTEX_WAITERS,
} from "../raw.ts";
import { have, skipReason } from "./helpers.ts";
import {
  afterTicks,
  compileFixture,
  expectSuccess,
  isEmulated,
  other,
  type Peer,
  PEER_TEST,
  self,
  sharedFile,
  startPeer,
  startProgram,
  until,
} from "./fixtures/lock_peers.ts";

/** A pid no process has now (checked through /proc). */
function deadPid(): number {
  const max = Number(readFileSync("/proc/sys/kernel/pid_max", "utf8"));
  for (let pid = max - 1; pid > 300; pid--) {
    if (!existsSync(`/proc/${pid}`)) return pid;
  }
  throw new Error("no free pid");
}

/** The start-time tag /proc gives a pid, as the mutex computes it. */
function tagOfPid(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return (Math.floor(Number(fields[19]) / 64) % 255) + 1;
}

test("Mutex.init lays out the documented words; lock records this pid, unlock clears it", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const mutex = Mutex.init(mapping.view(Int32Array, 0, 4));
  assert.equal(Mutex.byteLength, 16);
  assert.deepEqual([...words.subarray(0, 4)], [0, MUTEX_MAGIC, 0, 0]);
  assert.equal(mutex.ownerPid, 0);
  assert.deepEqual(mutex.lock(), { ownerDied: false });
  assert.equal(mutex.ownerPid, process.pid);
  assert.equal(words[0]! & MUTEX_PID_MASK, process.pid);
  assert.equal(words[0]! & MUTEX_WAITERS, 0);
  assert.equal(words[0]! & MUTEX_OWNER_DIED, 0, "nobody died");
  mutex.unlock();
  assert.equal(words[0], 0);
  assert.equal(mutex.ownerPid, 0);
});

test("Mutex.from attaches to the same lock; tryLock and lock(timeout) fail while it is held", () => {
  using mapping = Mapping.anonymous(4096);
  const a = Mutex.init(mapping.view(Uint8Array, 64, 16));
  const b = Mutex.from(mapping.dataView(64, 16));
  assert.deepEqual(a.tryLock(), { ownerDied: false });
  assert.equal(b.tryLock(), null);
  assert.equal(b.lock(20), null);
  a.unlock();
  assert.deepEqual(b.lock(20), { ownerDied: false });
  b.unlock();
});

test(
  "unlock wakes a thread asleep on the lock word (the word's address, cached once on Node, is the word's)",
  { timeout: 60_000 },
  async () => {
    using mapping = Mapping.anonymous(4096);
    const words = mapping.view(Int32Array);
    // At a byte offset, so a cached address missing it would miss the sleeper.
    const mutex = Mutex.init(mapping.view(Uint8Array, 64, Mutex.byteLength));
    mutex.lock();
    const held = Atomics.or(words, 16, MUTEX_WAITERS) | MUTEX_WAITERS;
    let settled = false;
    const woken = waitAsync(words, 16, held, 30_000, { pollMs: 0 }).finally(() => {
      settled = true;
    });
    // Unlock (the waiters bit makes it FUTEX_WAKE one) and lock again at once, until the
    // sleeper wakes: the word holds `held` again by the time it looks, so only a wake at
    // its address ends its wait; a missed one leaves it asleep to its timeout.
    while (!settled) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      mutex.unlock();
      mutex.lock();
      Atomics.or(words, 16, MUTEX_WAITERS);
    }
    assert.equal(await woken, "ok");
    mutex.unlock();
    assert.equal(Atomics.load(words, 16), 0);
  },
);

test("a synchronous lock by the holder throws EDEADLK instead of hanging", () => {
  using mapping = Mapping.anonymous(4096);
  const mutex = Mutex.init(mapping.view());
  mutex.lock();
  assert.throws(() => mutex.lock(), (e: unknown) => e instanceof LockError && e.code === "EDEADLK");
  mutex.unlock();
});

test("unlock without holding the lock throws LockError EPERM naming the holder", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const mutex = Mutex.init(mapping.view());
  assert.throws(
    () => mutex.unlock(),
    (e: unknown) => e instanceof LockError && e.code === "EPERM" && /not locked/.test(e.message),
  );
  // Held by pid 1 (alive), as another process would hold it.
  Atomics.store(words, 0, 1 | (tagOfPid(1) << MUTEX_TAG_SHIFT));
  assert.throws(
    () => mutex.unlock(),
    (e: unknown) =>
      e instanceof LockError && e.code === "EPERM" && /held by pid 1\b/.test(e.message),
  );
  assert.throws(() => mutex.markConsistent(), LockError);
  assert.equal(mutex.ownerPid, 1);
});

test("a lock held by a pid that no longer exists is taken over and reported, once", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const mutex = Mutex.init(mapping.view());
  Atomics.store(words, 0, deadPid() | MUTEX_WAITERS);
  assert.deepEqual(mutex.lock(1000), { ownerDied: true });
  assert.equal(mutex.ownerPid, process.pid);
  assert.equal(mutex.recoveries, 1);
  assert.notEqual(words[0]! & MUTEX_OWNER_DIED, 0, "bit 30 says: owner died");
  assert.notEqual(words[0]! & MUTEX_WAITERS, 0, "the waiters bit is kept");
  mutex.markConsistent();
  assert.equal(words[0]! & MUTEX_OWNER_DIED, 0);
  assert.equal(words[0]! & MUTEX_PID_MASK, process.pid);
  mutex.unlock();
  assert.deepEqual(mutex.lock(), { ownerDied: false });
  mutex.unlock();
});

test("unlocking after ownerDied without markConsistent makes the mutex unrecoverable", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const mutex = Mutex.init(mapping.view());
  Atomics.store(words, 0, deadPid());
  assert.deepEqual(mutex.tryLock(), { ownerDied: true });
  mutex.unlock();
  assert.equal(mutex.recoverable, false);
  assert.equal(words[0], MUTEX_NOT_RECOVERABLE);
  assert.throws(
    () => mutex.lock(),
    (e: unknown) => e instanceof LockError && e.code === "ENOTRECOVERABLE",
  );
  assert.throws(() => mutex.tryLock(), LockError);
  assert.throws(() => mutex.unlock(), /not locked/);
  const again = Mutex.init(mapping.view());
  assert.equal(again.recoverable, true);
  assert.deepEqual(again.lock(), { ownerDied: false });
  again.unlock();
});

test("a waiter sees ENOTRECOVERABLE when the holder unlocks a recovered mutex unrepaired", async () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const holder = Mutex.init(mapping.view());
  const waiter = Mutex.from(mapping.view());
  Atomics.store(words, 0, deadPid());
  assert.deepEqual(holder.lock(), { ownerDied: true });
  const pending = waiter.lockAsync(30_000);
  // The waiter sets the waiters bit before it sleeps.
  await until(() => (Atomics.load(words, 0) & MUTEX_WAITERS) !== 0, 30_000, "the waiter to wait");
  holder.unlock();
  await assert.rejects(
    pending,
    (e: unknown) => e instanceof LockError && e.code === "ENOTRECOVERABLE",
  );
});

test("a reused pid (same pid, other start-time tag) counts as a dead owner; the right tag does not", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const tag = tagOfPid(1);
  const mutex = Mutex.init(mapping.view(Int32Array, 16, 4));
  Atomics.store(words, 4, 1 | (tag << MUTEX_TAG_SHIFT));
  assert.equal(mutex.tryLock(), null, "pid 1 with its own tag is alive");
  // One bucket off is tolerated (clock views differ by a few ticks); two is another process.
  const nearTag = (tag % 255) + 1;
  Atomics.store(words, 4, 1 | (nearTag << MUTEX_TAG_SHIFT));
  assert.equal(Mutex.from(mapping.view(Int32Array, 16, 4)).tryLock(), null, "one bucket off");
  const wrongTag = ((tag + 1) % 255) + 1;
  Atomics.store(words, 4, 1 | (wrongTag << MUTEX_TAG_SHIFT));
  const reused = Mutex.from(mapping.view(Int32Array, 16, 4));
  assert.deepEqual(reused.tryLock(), { ownerDied: true });
  reused.markConsistent();
  reused.unlock();
});

/** A predicate for assert.throws/rejects: LockError ECORRUPT about `word` holding `value`. */
function corrupt(word: string, value: number): (e: unknown) => boolean {
  return (e) =>
    e instanceof LockError && e.code === "ECORRUPT" && e.word === word && e.value === value;
}

test("this process's own pid under another start-time tag is a dead owner (its pid reused by us)", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const mutex = Mutex.init(mapping.view());
  const tag = tagOfPid(process.pid);
  for (const otherTag of [((tag + 1) % 255) + 1, 0]) {
    Mutex.init(mapping.view());
    Atomics.store(words, 0, process.pid | (otherTag << MUTEX_TAG_SHIFT));
    assert.deepEqual(mutex.lock(400), { ownerDied: true }, `tag ${otherTag}`);
    assert.equal(mutex.recoveries, 1);
    mutex.markConsistent();
    mutex.unlock();
    assert.equal(words[0], 0);
  }
});

test("lock words no peer writes throw ECORRUPT naming the word, in every call that reads them", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const mutex = Mutex.init(mapping.view());
  const pidMax = Number(readFileSync("/proc/sys/kernel/pid_max", "utf8"));
  const cases: [number, number, string][] = [
    [0, MUTEX_WAITERS, "lock"], // waiters without an owner
    [0, MUTEX_WAITERS | MUTEX_OWNER_DIED, "lock"],
    [0, 5 << MUTEX_TAG_SHIFT, "lock"], // a tag, pid 0
    [1, 0x1234, "magic"],
  ];
  if (pidMax <= MUTEX_PID_MASK) cases.push([0, pidMax, "lock"]);
  for (const [index, value, word] of cases) {
    Mutex.init(mapping.view());
    Atomics.store(words, 0, 1 | (tagOfPid(1) << MUTEX_TAG_SHIFT));
    Atomics.store(words, index, value);
    const seen = Atomics.load(words, index);
    assert.throws(() => mutex.lock(1000), corrupt(word, seen), `${word} = ${value}`);
    assert.throws(() => mutex.tryLock(), corrupt(word, seen));
    assert.throws(() => mutex.unlock(), corrupt(word, seen));
    assert.throws(() => mutex.markConsistent(), corrupt(word, seen));
  }
});

test("bad views and timeouts are refused with TypeError/RangeError before any use", () => {
  using mapping = Mapping.anonymous(4096);
  assert.throws(() => Mutex.init(mapping.view(Uint8Array, 0, 12)), RangeError);
  assert.throws(() => Mutex.init(mapping.view(Uint8Array, 2, 16)), /multiple of 4/);
  assert.throws(() => Mutex.init({} as never), TypeError);
  assert.throws(() => Mutex.init(new ArrayBuffer(16) as never), TypeError);
  assert.throws(() => Mutex.from(mapping.view(Uint8Array, 64, 16)), /Mutex\.init/);
  const mutex = Mutex.init(mapping.view());
  assert.throws(() => mutex.lock(-1), RangeError);
  assert.throws(() => mutex.lock(NaN), RangeError);
  assert.throws(() => mutex.lock("5" as never), TypeError);
  assert.throws(() => mutex.lockAsync(-5), RangeError);
  assert.throws(() => Mutex.init(mapping.view(), { checkIntervalMs: -1 }), RangeError);
  assert.equal(mutex.ownerPid, 0, "nothing was locked by the failed calls");
});

test("a closed mapping makes the mutex throw ClosedError, not crash; lockAsync rejects", async () => {
  const mapping = Mapping.anonymous(4096);
  const mutex = Mutex.init(mapping.view());
  mapping.close();
  assert.throws(() => mutex.lock(), ClosedError);
  assert.throws(() => mutex.unlock(), ClosedError);
  assert.throws(() => mutex.acquire(), ClosedError);
  const pending = mutex.lockAsync();
  assert.ok(pending instanceof Promise, "a rejection, not a synchronous throw");
  await assert.rejects(pending, ClosedError);
  await assert.rejects(mutex.acquireAsync(), ClosedError);
});

test("lockAsync without a timeout ends with ClosedError when the memory closes, and with the reason on abort", async () => {
  const mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const holder = Mutex.init(mapping.view());
  const waiter = Mutex.from(mapping.view(), { pollMs: 0 });
  holder.lock();
  const controller = new AbortController();
  const aborted = waiter.lockAsync(undefined, { signal: controller.signal });
  await until(() => (Atomics.load(words, 0) & MUTEX_WAITERS) !== 0, 30_000, "the waiter to wait");
  const reason = new Error("stop");
  controller.abort(reason);
  await assert.rejects(aborted, (e: unknown) => e === reason);
  assert.equal(waiter.ownerPid, process.pid, "the holder still holds it");
  const closing = waiter.lockAsync();
  const timer = afterTicks(3, () => mapping.close());
  try {
    await assert.rejects(closing, ClosedError);
  } finally {
    timer.stop();
  }
  await assert.rejects(
    Mutex.init(Mapping.anonymous(4096).view()).lockAsync(undefined, {
      signal: AbortSignal.abort(),
    }),
    (e: unknown) => e instanceof Error && e.name === "AbortError",
  );
});

test("using guard = mutex.acquire() holds the lock in its block and unlocks at its end", async () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const mutex = Mutex.init(mapping.view());
  {
    using guard = mutex.acquire();
    assert.equal(guard.ownerDied, false);
    assert.equal(guard.held, true);
    assert.equal(words[0]! & MUTEX_PID_MASK, process.pid);
    assert.equal(Mutex.from(mapping.view()).tryLock(), null, "held while in the block");
  }
  assert.equal(words[0], 0, "unlocked at the end of the block");
  {
    await using guard = await mutex.acquireAsync({ signal: AbortSignal.timeout(30_000) });
    assert.equal(words[0]! & MUTEX_PID_MASK, process.pid);
    guard.unlock();
    assert.equal(guard.held, false);
    assert.equal(words[0], 0);
    guard.unlock(); // idempotent: the dispose at the end of the block does nothing either
  }
  assert.equal(words[0], 0);
  mutex.lock();
  assert.equal(
    Mutex.from(mapping.view()).acquire(10),
    null,
    "a timeout gives null, as lock(timeout) does",
  );
  const controller = new AbortController();
  const pending = Mutex.from(mapping.view(), { pollMs: 0 }).acquireAsync({
    signal: controller.signal,
  });
  await until(() => (Atomics.load(words, 0) & MUTEX_WAITERS) !== 0, 30_000, "the waiter to wait");
  controller.abort(new Error("enough"));
  await assert.rejects(pending, /enough/);
  mutex.unlock();
});

test("a guard reports ownerDied; markConsistent on it keeps the mutex usable, forgetting it does not", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const mutex = Mutex.init(mapping.view());
  Atomics.store(words, 0, deadPid());
  {
    using guard = mutex.acquire();
    assert.equal(guard.ownerDied, true);
    guard.markConsistent();
  }
  assert.equal(words[0], 0);
  assert.equal(mutex.recoverable, true);
  Atomics.store(words, 0, deadPid());
  {
    using guard = mutex.acquire();
    assert.equal(guard.ownerDied, true);
  }
  assert.equal(mutex.recoverable, false, "released unrepaired: unrecoverable, as unlock() does");
  const released = Mutex.init(mapping.view()).acquire();
  released.unlock();
  assert.throws(
    () => released.markConsistent(),
    (e: unknown) => e instanceof LockError && e.code === "EPERM",
  );
});

test("lockAsync waits without blocking the event loop and gets the lock on unlock", async () => {
  using mapping = Mapping.anonymous(4096);
  const holder = Mutex.init(mapping.view());
  const waiter = Mutex.from(mapping.view());
  holder.lock();
  const pending = waiter.lockAsync(30_000);
  // Only the timer's third tick can end the wait.
  const timer = afterTicks(3, () => holder.unlock());
  try {
    assert.deepEqual(await pending, { ownerDied: false });
    assert.ok(timer.count >= 3, `timers fired ${timer.count} times during the wait`);
  } finally {
    timer.stop();
  }
  waiter.unlock();
  assert.equal(await waiter.lockAsync(0).then((r) => r !== null), true);
  waiter.unlock();
  holder.lock();
  assert.equal(await waiter.lockAsync(20), null, "times out while held");
  holder.unlock();
});

// --- across processes

/** Peers alternating between this runtime and the other (when installed). */
function mixedPeers(count: number): Peer[] {
  return Array.from(
    { length: count },
    (_, i) => (i % 2 === 1 && other !== undefined ? other : self),
  );
}

async function countWithPeers(mode: "lock" | "nolock", iterations: number): Promise<number> {
  const file = sharedFile(4096);
  try {
    using mapping = Mapping.file(file.path);
    const words = mapping.view(Int32Array);
    Mutex.init(mapping.view(Int32Array, 0, 4));
    const peers = mixedPeers(isEmulated ? 2 : 4);
    const running = peers.map((peer) =>
      startPeer(peer, "lock_counter.ts", [file.path, iterations, mode])
    );
    await until(
      () => Atomics.load(words, 48) === peers.length,
      isEmulated ? 300_000 : 60_000,
      "the peers to start",
    );
    Atomics.store(words, 49, 1);
    // Peers wait with a timeout, so a missed wake only delays them.
    notify(words, 49);
    await Promise.all(running.map((r, i) => expectSuccess(r, `${peers[i]!.runtime} counter`)));
    return words[16]! / peers.length;
  } finally {
    file.remove();
  }
}

test(
  "processes (Deno and Bun mixed) incrementing under the mutex lose no increment",
  PEER_TEST,
  async () => {
    const iterations = isEmulated ? 500 : 5000;
    const perPeer = await countWithPeers("lock", iterations);
    assert.equal(perPeer, iterations);
  },
);

test(
  "a C peer following docs/locks.md shares the mutex with Deno and Bun peers: no lost increment",
  { ...PEER_TEST, skip: have("cc") ? false : skipReason("no C compiler (cc) for the C peer") },
  async () => {
    const iterations = isEmulated ? 500 : 5000;
    const program = compileFixture("lock_peer");
    const file = sharedFile(4096);
    try {
      using mapping = Mapping.file(file.path);
      const words = mapping.view(Int32Array);
      Mutex.init(mapping.view(Int32Array, 0, 4));
      const running = [
        startProgram(program.path, [file.path, String(iterations)]),
        startProgram(program.path, [file.path, String(iterations)]),
        startPeer(self, "lock_counter.ts", [file.path, iterations, "lock"]),
        startPeer(other ?? self, "lock_counter.ts", [file.path, iterations, "lock"]),
      ];
      await until(
        () => Atomics.load(words, 48) === running.length,
        isEmulated ? 300_000 : 60_000,
        "the peers to start",
      );
      Atomics.store(words, 49, 1);
      notify(words, 49);
      await Promise.all(running.map((r, i) => expectSuccess(r, `peer ${i}`)));
      assert.equal(words[16], running.length * iterations);
      assert.equal(words[0], 0, "left unlocked");
    } finally {
      file.remove();
      program.remove();
    }
  },
);

test(
  "the same increments without the mutex lose some (so the test above can fail)",
  PEER_TEST,
  async () => {
    // Losing updates needs the peers to overlap, which a slow start (qemu, a
    // loaded machine) can prevent in one try: a few tries, longer each time.
    const base = isEmulated ? 5000 : 20000;
    const seen: string[] = [];
    for (let attempt = 1; attempt <= 4; attempt++) {
      const iterations = base * attempt;
      const perPeer = await countWithPeers("nolock", iterations);
      if (perPeer < iterations) return;
      seen.push(`${perPeer} of ${iterations}`);
    }
    assert.fail(
      `expected lost updates without the mutex, got none per peer in: ${seen.join(", ")}`,
    );
  },
);

test(
  "an owner SIGKILLed while holding 3 locks: the next locker recovers each, 5 rounds running",
  PEER_TEST,
  async () => {
    const LOCKS = 3;
    const ROUNDS = isEmulated ? 2 : 5;
    const file = sharedFile(4096);
    try {
      using mapping = Mapping.file(file.path);
      const words = mapping.view(Int32Array);
      const mutexes = Array.from(
        { length: LOCKS },
        (_, i) => Mutex.init(mapping.view(Int32Array, i * 16, 4)),
      );
      let recovered = 0;
      for (let round = 0; round < ROUNDS; round++) {
        Atomics.store(words, 256, 0);
        const peer = round % 2 === 1 && other !== undefined ? other : self;
        const holder = startPeer(peer, "lock_holder.ts", [file.path, LOCKS]);
        await until(() => Atomics.load(words, 256) !== 0, 60_000, "the holder to lock");
        assert.equal(Atomics.load(words, 256), holder.pid);
        for (const mutex of mutexes) {
          assert.equal(mutex.ownerPid, holder.pid);
          assert.equal(mutex.tryLock(), null, "held by a live process");
          assert.throws(
            () => mutex.unlock(),
            (e: unknown) => e instanceof LockError && e.code === "EPERM",
          );
        }
        holder.kill("SIGKILL");
        const { signal } = await holder.done;
        assert.equal(signal, "SIGKILL");
        for (const mutex of mutexes) {
          const result = mutex.lock(5000);
          assert.deepEqual(result, { ownerDied: true }, `round ${round}`);
          recovered++;
          mutex.markConsistent();
          mutex.unlock();
        }
      }
      assert.equal(recovered, LOCKS * ROUNDS);
      for (const mutex of mutexes) assert.equal(mutex.recoveries, ROUNDS);
    } finally {
      file.remove();
    }
  },
);

test(
  "a waiter blocked in lock() recovers a SIGKILLed owner that nobody wakes (and is not yet reaped)",
  PEER_TEST,
  async () => {
    const file = sharedFile(4096);
    try {
      using mapping = Mapping.file(file.path);
      const words = mapping.view(Int32Array);
      const mutex = Mutex.init(mapping.view(Int32Array, 0, 4), { checkIntervalMs: 20 });
      const holder = startPeer(other ?? self, "lock_holder.ts", [file.path, 1]);
      await until(() => Atomics.load(words, 256) !== 0, 60_000, "the holder to lock");
      const killer = startPeer(self, "lock_killer.ts", [file.path, holder.pid, 200]);
      await until(() => Atomics.load(words, 258) !== 0, 60_000, "the killer to start");
      // Blocks this thread: the dead holder stays a zombie until we return to the event loop.
      const result = mutex.lock(30_000);
      assert.deepEqual(result, { ownerDied: true });
      mutex.markConsistent();
      mutex.unlock();
      await expectSuccess(killer, "killer");
      assert.equal((await holder.done).signal, "SIGKILL");
    } finally {
      file.remove();
    }
  },
);

test(
  "a peer writing an ownerless lock word while this process sleeps in lock(): ECORRUPT, not a hang",
  PEER_TEST,
  async () => {
    const file = sharedFile(4096);
    try {
      using mapping = Mapping.file(file.path);
      const holder = Mutex.init(mapping.view(Int32Array, 0, 4));
      const waiter = Mutex.from(mapping.view(Int32Array, 0, 4));
      holder.lock();
      // Once the waiter set the waiters bit, the peer writes "waiters, no owner" and wakes it.
      const peer = startPeer(self, "lock_scribbler.ts", [
        file.path,
        0,
        MUTEX_WAITERS,
        0,
        MUTEX_WAITERS,
        0,
      ]);
      assert.throws(() => waiter.lock(60_000), corrupt("lock", MUTEX_WAITERS));
      await expectSuccess(peer, "scribbler");
    } finally {
      file.remove();
    }
  },
);

test(
  "lockAsync waiting when the owner is SIGKILLed recovers it while timers keep firing",
  PEER_TEST,
  async () => {
    const file = sharedFile(4096);
    try {
      using mapping = Mapping.file(file.path);
      const words = mapping.view(Int32Array);
      const mutex = Mutex.init(mapping.view(Int32Array, 0, 4), { checkIntervalMs: 20 });
      const holder = startPeer(self, "lock_holder.ts", [file.path, 1]);
      await until(() => Atomics.load(words, 256) !== 0, 60_000, "the holder to lock");
      const pending = mutex.lockAsync(30_000);
      // The owner dies on the timer's fifth tick, while lockAsync waits.
      const timer = afterTicks(5, () => holder.kill("SIGKILL"));
      try {
        assert.deepEqual(await pending, { ownerDied: true });
        assert.ok(timer.count >= 5, `timers fired ${timer.count} times`);
      } finally {
        timer.stop();
      }
      mutex.markConsistent();
      mutex.unlock();
      await holder.done;
    } finally {
      file.remove();
    }
  },
);

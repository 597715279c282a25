import { test } from "node:test";
import assert from "node:assert/strict";
import { ClosedError, LockError, Mapping, Semaphore } from "../mod.ts";
import { MUTEX_TAG_SHIFT, SEMAPHORE_MAGIC } from "../raw.ts";
import { existsSync, readFileSync } from "node:fs";
import process from "node:process";
import {
  afterTicks,
  expectSuccess,
  isEmulated,
  other,
  PEER_TEST,
  self,
  sharedFile,
  startPeer,
  until,
} from "./fixtures/lock_peers.ts";

/** A predicate for assert.throws/rejects: LockError ECORRUPT about `word` holding `value`. */
function corrupt(word: string, value: number): (e: unknown) => boolean {
  return (e) =>
    e instanceof LockError && e.code === "ECORRUPT" && e.word === word && e.value === value;
}

const COUNT = 0;
const WAITERS = 2;
const MAXIMUM = 3;
const HOLDERS = 6;
const SLOTS = 29;

/** A pid no process has now (checked through /proc). */
function deadPid(): number {
  const max = Number(readFileSync("/proc/sys/kernel/pid_max", "utf8"));
  for (let pid = max - 1; pid > 300; pid--) {
    if (!existsSync(`/proc/${pid}`)) return pid;
  }
  throw new Error("no free pid");
}

/** The start-time tag /proc gives a pid, as the locks compute it. */
function tagOfPid(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return (Math.floor(Number(fields[19]) / 64) % 255) + 1;
}

/** The [id, units] pairs of the holder slots in use. */
function holders(words: Int32Array): [number, number][] {
  const used: [number, number][] = [];
  for (let i = 0; i < SLOTS; i++) {
    const id = words[HOLDERS + 2 * i]!;
    if (id !== 0) used.push([id & 0x3fffff, words[HOLDERS + 2 * i + 1]!]);
  }
  return used;
}

test("Semaphore.init lays out the documented words: count, magic, waiters, maximum", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  words.fill(-1, 0, 64);
  Semaphore.init(mapping.view(), { initial: 2, maximum: 5 });
  assert.equal(Semaphore.byteLength, 256);
  assert.deepEqual([...words.subarray(0, 6)], [2, SEMAPHORE_MAGIC, 0, 5, 0, 0]);
  assert.deepEqual(holders(words), [], "every holder slot is free");
});

test("Semaphore: permits, maximum, timeouts and async acquire", async () => {
  using mapping = Mapping.anonymous(4096);
  const sem = Semaphore.init(mapping.view(), { initial: 2, maximum: 3 });
  const peer = Semaphore.from(mapping.view());
  assert.equal(sem.value, 2);
  assert.equal(sem.maximum, 3);
  assert.equal(peer.tryAcquire(), true);
  assert.equal(peer.acquire(10), true);
  assert.equal(peer.tryAcquire(), false);
  assert.equal(peer.acquire(15), false);
  sem.release(3);
  assert.equal(sem.value, 3);
  assert.throws(() => sem.release(), RangeError);
  assert.equal(sem.value, 3, "a refused release changes nothing");
  assert.equal(peer.acquire(), true);
  assert.equal(peer.acquire(), true);
  assert.equal(peer.acquire(), true);
  const pending = peer.acquireAsync(30_000);
  // Only the timer's second tick can end the wait.
  const timer = afterTicks(2, () => sem.release());
  try {
    assert.equal(await pending, true);
    assert.ok(timer.count >= 2);
  } finally {
    timer.stop();
  }
  assert.equal(sem.value, 0);
});

test("Semaphore rejects bad views and arguments with TypeError/RangeError", () => {
  using mapping = Mapping.anonymous(4096);
  assert.throws(() => Semaphore.init(mapping.view(Uint8Array, 6, 16)), RangeError);
  assert.throws(() => Semaphore.init(mapping.view(Uint8Array, 0, 252)), RangeError);
  assert.throws(() => Semaphore.init({} as never), TypeError);
  assert.throws(() => Semaphore.from(mapping.view(Uint8Array, 512, 256)), /Semaphore\.init/);
  assert.throws(() => Semaphore.init(mapping.view(), { initial: 5, maximum: 2 }), RangeError);
  assert.throws(() => Semaphore.init(mapping.view(), { maximum: 0 }), RangeError);
  const sem = Semaphore.init(mapping.view());
  assert.throws(() => sem.acquire(NaN), RangeError);
  assert.throws(() => sem.acquire(-1), RangeError);
  assert.throws(() => sem.release(0), RangeError);
  assert.throws(() => sem.release(1.5), RangeError);
  assert.equal(sem.value, 0, "nothing was released by the failed calls");
});

test("a closed mapping makes the semaphore throw ClosedError, not crash", () => {
  const mapping = Mapping.anonymous(4096);
  const sem = Semaphore.init(mapping.view(), { initial: 1 });
  mapping.close();
  assert.throws(() => sem.tryAcquire(), ClosedError);
  assert.throws(() => sem.release(), ClosedError);
  assert.throws(() => sem.value, ClosedError);
});

test("every word of the layout is checked: a value no peer writes throws ECORRUPT naming it", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const sem = Semaphore.init(mapping.view(), { initial: 1, maximum: 3 });
  const cases: [number, number, string][] = [
    [COUNT, -1, "count"],
    [COUNT, 4, "count"],
    [MAXIMUM, 0, "maximum"],
    [1, 0x12345678, "magic"],
  ];
  for (const [index, value, word] of cases) {
    Semaphore.init(mapping.view(), { initial: 1, maximum: 3 });
    Atomics.store(words, index, value);
    assert.throws(() => sem.tryAcquire(), corrupt(word, value), `${word} = ${value}`);
    assert.throws(() => sem.acquire(1000), corrupt(word, value));
    assert.throws(() => sem.release(), corrupt(word, value));
  }
  // The sleeper count is read (and checked) by releases, which decide on it whether to wake.
  Semaphore.init(mapping.view(), { initial: 1, maximum: 3 });
  Atomics.store(words, WAITERS, -2);
  assert.throws(() => sem.release(), corrupt("waiters", -2));
  Semaphore.init(mapping.view(), { initial: 1, maximum: 3 });
  assert.equal(sem.tryAcquire(), true, "usable again after init");
});

test(
  "a peer writing a negative count while this process sleeps in acquire(): ECORRUPT, not a spin",
  PEER_TEST,
  async () => {
    const file = sharedFile(4096);
    try {
      using mapping = Mapping.file(file.path);
      const sem = Semaphore.init(mapping.view(), { initial: 0, maximum: 4 });
      // The peer waits for this process to count itself a sleeper, then scribbles and wakes it.
      const peer = startPeer(self, "lock_scribbler.ts", [file.path, WAITERS, -1, COUNT, -5, COUNT]);
      assert.throws(() => sem.acquire(60_000), corrupt("count", -5));
      await expectSuccess(peer, "scribbler");
      Semaphore.init(mapping.view(), { maximum: 4 });
      const pending = sem.acquireAsync(60_000);
      // Over the maximum; written to the futex word, so no wake can be missed.
      const again = startPeer(self, "lock_scribbler.ts", [file.path, WAITERS, -1, COUNT, 9, COUNT]);
      await assert.rejects(pending, corrupt("count", 9));
      await expectSuccess(again, "scribbler");
    } finally {
      file.remove();
    }
  },
);

test("acquireAsync without a timeout ends with ClosedError when the memory closes, and with the reason on abort", async () => {
  const mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const semaphore = Semaphore.init(mapping.view(), { pollMs: 0 });
  const controller = new AbortController();
  const aborted = semaphore.acquireAsync(undefined, { signal: controller.signal });
  await until(() => Atomics.load(words, WAITERS) === 1, 30_000, "the waiter to wait");
  const reason = new Error("stop");
  controller.abort(reason);
  await assert.rejects(aborted, (e: unknown) => e === reason);
  assert.equal(Atomics.load(words, WAITERS), 0, "the waiter no longer counts itself");
  await assert.rejects(semaphore.acquireAsync(undefined, { signal: AbortSignal.abort() }), {
    name: "AbortError",
  });
  const closing = semaphore.acquireAsync();
  await until(() => Atomics.load(words, WAITERS) === 1, 30_000, "the waiter to wait");
  mapping.close();
  await assert.rejects(closing, ClosedError);
  const rejected = semaphore.acquireAsync();
  assert.ok(rejected instanceof Promise, "closed memory is a rejection, not a synchronous throw");
  await assert.rejects(rejected, ClosedError);
});

test("a process records the permits it holds in a slot; releases beyond them are plain releases", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const sem = Semaphore.init(mapping.view(), { initial: 3, maximum: 4 });
  const twin = Semaphore.from(mapping.view());
  assert.equal(sem.acquire(1000), true);
  assert.equal(twin.acquire(1000), true, "another object of this process shares the slot");
  assert.deepEqual(holders(words), [[process.pid, 2]]);
  sem.release();
  assert.deepEqual(holders(words), [[process.pid, 1]]);
  sem.release(2); // one held, one more: a release anyone may make
  assert.deepEqual(holders(words), [[process.pid, 0]]);
  assert.equal(sem.value, 4);
  assert.throws(() => sem.release(), RangeError);
  assert.deepEqual(holders(words), [[process.pid, 0]], "a refused release changes no holding");
});

test("permits held by a dead pid, or by our own pid under another tag, are given back to a waiter", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const tag = tagOfPid(process.pid);
  const owners = [deadPid(), process.pid | ((((tag + 1) % 255) + 1) << MUTEX_TAG_SHIFT)];
  for (const owner of owners) {
    const sem = Semaphore.init(mapping.view(), { initial: 0, maximum: 3 });
    Atomics.store(words, HOLDERS + 2 * 4, owner);
    Atomics.store(words, HOLDERS + 2 * 4 + 1, 2);
    assert.equal(sem.acquire(30_000), true);
    assert.equal(sem.recovered, 2);
    assert.equal(sem.value, 1);
    assert.deepEqual(holders(words), [[process.pid, 1]], "the dead holder's slot is free");
  }
});

test("the holder table's bound: a 30th holder is not recorded but still gets its permit", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const alive = 1 | (tagOfPid(1) << MUTEX_TAG_SHIFT);
  const sem = Semaphore.init(mapping.view(), { initial: 2, maximum: 2 });
  for (let i = 0; i < SLOTS; i++) Atomics.store(words, HOLDERS + 2 * i, alive);
  assert.equal(sem.tryAcquire(), true);
  assert.equal(holders(words).filter(([pid]) => pid === process.pid).length, 0, "not recorded");
  sem.release();
  assert.equal(sem.value, 2);
  // Slots of dead holders holding nothing are freed when a newcomer needs one.
  const dead = deadPid();
  for (let i = 0; i < SLOTS; i++) Atomics.store(words, HOLDERS + 2 * i, dead);
  assert.equal(sem.tryAcquire(), true);
  assert.deepEqual(holders(words), [[process.pid, 1]]);
});

test("holder slots are checked too: ECORRUPT for an id without a pid or units above the maximum", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const sem = Semaphore.init(mapping.view(), { initial: 1, maximum: 3 });
  Atomics.store(words, HOLDERS + 2 * 3, 5 << MUTEX_TAG_SHIFT);
  assert.throws(() => sem.tryAcquire(), corrupt("holder 3 id", 5 << MUTEX_TAG_SHIFT));
  assert.equal(sem.value, 1, "no permit was taken by the failed call");
  Semaphore.init(mapping.view(), { initial: 1, maximum: 3 });
  Atomics.store(words, HOLDERS + 2 * 7, deadPid());
  Atomics.store(words, HOLDERS + 2 * 7 + 1, 9);
  assert.throws(() => sem.tryAcquire(), corrupt("holder 7 units", 9));
});

test(
  "a holder SIGKILLed with 2 of 3 permits: they come back, 5 rounds running, also to a waiter",
  PEER_TEST,
  async () => {
    const ROUNDS = isEmulated ? 2 : 5;
    const file = sharedFile(4096);
    try {
      using mapping = Mapping.file(file.path);
      const words = mapping.view(Int32Array);
      const sem = Semaphore.init(mapping.view(Uint8Array, 0, Semaphore.byteLength), {
        initial: 3,
        maximum: 3,
        checkIntervalMs: 20,
      });
      for (let round = 0; round < ROUNDS; round++) {
        Atomics.store(words, 256, 0);
        const peer = round % 2 === 1 && other !== undefined ? other : self;
        const holder = startPeer(peer, "lock_sem_holder.ts", [file.path, 2]);
        await until(() => Atomics.load(words, 256) !== 0, 60_000, "the holder to take its permits");
        assert.deepEqual(holders(words).filter(([pid]) => pid === holder.pid), [[holder.pid, 2]]);
        assert.equal(sem.tryAcquire(), true, "one permit is left");
        assert.equal(sem.tryAcquire(), false, "held by a live process");
        // A waiter sleeps, then the holder dies; nobody wakes the waiter.
        const waiting = sem.acquireAsync(60_000);
        await until(() => Atomics.load(words, WAITERS) === 1, 60_000, "the waiter to sleep");
        holder.kill("SIGKILL");
        assert.equal((await holder.done).signal, "SIGKILL");
        assert.equal(await waiting, true, `round ${round}`);
        assert.equal(sem.acquire(30_000), true, "the second permit came back too");
        assert.equal(sem.value, 0);
        sem.release(3);
      }
      assert.equal(sem.recovered, 2 * ROUNDS);
      assert.equal(sem.value, 3);
    } finally {
      file.remove();
    }
  },
);

import { test } from "node:test";
import assert from "node:assert/strict";
import { ClosedError, LockError, Mapping, Semaphore } from "../mod.ts";
import { SEMAPHORE_MAGIC } from "../raw.ts";
import {
  afterTicks,
  expectSuccess,
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

test("Semaphore.init lays out the documented words: count, magic, waiters, maximum", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  Semaphore.init(mapping.view(), { initial: 2, maximum: 5 });
  assert.equal(Semaphore.byteLength, 16);
  assert.deepEqual([...words.subarray(0, 4)], [2, SEMAPHORE_MAGIC, 0, 5]);
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
  assert.throws(() => Semaphore.init(mapping.view(Uint8Array, 0, 12)), RangeError);
  assert.throws(() => Semaphore.init({} as never), TypeError);
  assert.throws(() => Semaphore.from(mapping.view(Uint8Array, 64, 16)), /Semaphore\.init/);
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
    [WAITERS, -2, "waiters"],
    [1, 0x12345678, "magic"],
  ];
  for (const [index, value, word] of cases) {
    Semaphore.init(mapping.view(), { initial: 1, maximum: 3 });
    Atomics.store(words, index, value);
    assert.throws(() => sem.tryAcquire(), corrupt(word, value), `${word} = ${value}`);
    assert.throws(() => sem.acquire(1000), corrupt(word, value));
    assert.throws(() => sem.release(), corrupt(word, value));
  }
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

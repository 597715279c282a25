import { test } from "node:test";
import assert from "node:assert/strict";
import { ClosedError, LockError, Mapping, SharedEvent } from "../mod.ts";
import { EVENT_MAGIC } from "../raw.ts";
import {
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

const STATE = 0;
const WAITERS = 2;
const MODE = 3;

test("SharedEvent.init lays out the documented words: state, magic, waiters, mode", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  SharedEvent.init(mapping.view(), { mode: "auto", set: true });
  assert.equal(SharedEvent.byteLength, 16);
  assert.deepEqual([...words.subarray(0, 4)], [1, EVENT_MAGIC, 0, 1]);
});

test("SharedEvent: manual reset releases every waiter, once both sleep", async () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const manual = SharedEvent.init(mapping.view(Int32Array, 0, 4));
  assert.equal(manual.mode, "manual");
  assert.equal(manual.wait(5), false);
  const waiters = [
    manual.waitAsync(30_000),
    SharedEvent.from(mapping.view(Int32Array, 0, 4)).waitAsync(30_000),
  ];
  await until(() => Atomics.load(words, WAITERS) === 2, 30_000, "both waiters to sleep");
  manual.set();
  assert.deepEqual(await Promise.all(waiters), [true, true]);
  assert.equal(manual.isSet, true);
  assert.equal(manual.wait(), true, "stays set");
  manual.reset();
  assert.equal(manual.tryWait(), false);
});

test("SharedEvent: auto reset lets one waiter through per set and resets", async () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const auto = SharedEvent.init(mapping.view(Int32Array, 16, 4), { mode: "auto" });
  const peer = SharedEvent.from(mapping.view(Int32Array, 16, 4));
  assert.equal(peer.mode, "auto");
  const outcomes: boolean[] = [];
  const first = peer.waitAsync(30_000).then((r) => void outcomes.push(r));
  const second = peer.waitAsync(30_000).then((r) => void outcomes.push(r));
  await until(() => Atomics.load(words, 4 + WAITERS) === 2, 30_000, "both waiters to sleep");
  auto.set();
  await until(() => outcomes.length === 1, 30_000, "one waiter to pass");
  assert.equal(auto.isSet, false, "the pass reset the event");
  assert.equal(outcomes.length, 1, "the other still waits");
  auto.set();
  await Promise.all([first, second]);
  assert.deepEqual(outcomes, [true, true]);
  assert.equal(auto.isSet, false);
  assert.equal(auto.tryWait(), false);
});

test("SharedEvent rejects bad views and options with TypeError/RangeError", () => {
  using mapping = Mapping.anonymous(4096);
  assert.throws(() => SharedEvent.init(mapping.view(Uint8Array, 0, 8)), RangeError);
  assert.throws(() => SharedEvent.init(mapping.view(Uint8Array, 2, 16)), RangeError);
  assert.throws(() => SharedEvent.init(mapping.view(), { mode: "sometimes" as never }), RangeError);
  assert.throws(() => SharedEvent.from(mapping.view(Uint8Array, 64, 16)), /SharedEvent\.init/);
  const event = SharedEvent.init(mapping.view());
  assert.throws(() => event.wait(-1), RangeError);
  assert.throws(() => event.waitAsync(NaN), RangeError);
});

test("a closed mapping makes the event throw ClosedError, not crash", () => {
  const mapping = Mapping.anonymous(4096);
  const event = SharedEvent.init(mapping.view());
  mapping.close();
  assert.throws(() => event.set(), ClosedError);
  assert.throws(() => event.tryWait(), ClosedError);
  assert.throws(() => event.isSet, ClosedError);
});

test("every word of the layout is checked: a value no peer writes throws ECORRUPT naming it", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const event = SharedEvent.init(mapping.view(), { mode: "auto" });
  const cases: [number, number, string][] = [
    [STATE, 7, "state"],
    [STATE, -1, "state"],
    [MODE, 0, "mode"],
    [1, 0, "magic"],
  ];
  for (const [index, value, word] of cases) {
    SharedEvent.init(mapping.view(), { mode: "auto" });
    Atomics.store(words, index, value);
    assert.throws(() => event.tryWait(), corrupt(word, value), `${word} = ${value}`);
    assert.throws(() => event.wait(1000), corrupt(word, value));
    assert.throws(() => event.set(), corrupt(word, value));
  }
  // The sleeper count is read (and checked) by set(), which decides on it whether to wake.
  SharedEvent.init(mapping.view(), { mode: "auto" });
  Atomics.store(words, WAITERS, -1);
  assert.throws(() => event.set(), corrupt("waiters", -1));
  SharedEvent.init(mapping.view(), { mode: "auto" });
  Atomics.store(words, MODE, 9);
  assert.throws(() => SharedEvent.from(mapping.view()), corrupt("mode", 9));
});

test(
  "a peer writing state 7 while this process sleeps in an auto event's wait(): ECORRUPT, not a spin",
  PEER_TEST,
  async () => {
    const file = sharedFile(4096);
    try {
      using mapping = Mapping.file(file.path);
      const event = SharedEvent.init(mapping.view(), { mode: "auto" });
      const peer = startPeer(self, "lock_scribbler.ts", [file.path, WAITERS, -1, STATE, 7, STATE]);
      assert.throws(() => event.wait(60_000), corrupt("state", 7));
      await expectSuccess(peer, "scribbler");
      SharedEvent.init(mapping.view(), { mode: "auto" });
      const pending = event.waitAsync(60_000);
      const again = startPeer(self, "lock_scribbler.ts", [file.path, WAITERS, -1, STATE, 2, STATE]);
      await assert.rejects(pending, corrupt("state", 2));
      await expectSuccess(again, "scribbler");
    } finally {
      file.remove();
    }
  },
);

test("waitAsync without a timeout ends with ClosedError when the memory closes, and with the reason on abort", async () => {
  const mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const event = SharedEvent.init(mapping.view(), { pollMs: 0 });
  const controller = new AbortController();
  const aborted = event.waitAsync(undefined, { signal: controller.signal });
  await until(() => Atomics.load(words, WAITERS) === 1, 30_000, "the waiter to wait");
  const reason = new Error("stop");
  controller.abort(reason);
  await assert.rejects(aborted, (e: unknown) => e === reason);
  assert.equal(Atomics.load(words, WAITERS), 0, "the waiter no longer counts itself");
  await assert.rejects(event.waitAsync(undefined, { signal: AbortSignal.abort() }), {
    name: "AbortError",
  });
  const closing = event.waitAsync();
  await until(() => Atomics.load(words, WAITERS) === 1, 30_000, "the waiter to wait");
  mapping.close();
  await assert.rejects(closing, ClosedError);
  const rejected = event.waitAsync();
  assert.ok(rejected instanceof Promise, "closed memory is a rejection, not a synchronous throw");
  await assert.rejects(rejected, ClosedError);
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { ClosedError, Mapping, Memfd, spawn } from "../mod.ts";
import { LockError, PthreadMutex } from "../ipc/mod.ts";
import { platform } from "../platform/mod.ts";
import { have, skipReason } from "./helpers.ts";
import {
  afterTicks,
  compileFixture,
  expectSuccess,
  isEmulated,
  other,
  self,
  sharedFile,
  startPeer,
  until,
} from "./fixtures/lock_peers.ts";

const SIZE = PthreadMutex.size;
const COUNTER = 32;
const HOLDER = 33;
const STARTED = 34;
const GO = 35;
const LOCK_WORD = platform.structs.pthread_mutex_internals.fields["__data.__lock"]!.offset / 4;
const TIMEOUT = { timeout: isEmulated ? 900_000 : 120_000 };
const NEEDS_CC = { ...TIMEOUT, skip: have("cc") ? false : skipReason("no C compiler (cc)") };

let peer: { path: string; remove(): void } | undefined;
function peerProgram(): string {
  peer ??= compileFixture("ipc_mutex_peer");
  return peer.path;
}

/** A memfd with an initialised mutex at offset 0. */
function sharedMutex(): { memory: Memfd; mutex: PthreadMutex; words: Int32Array } {
  const memory = Memfd.create({ size: 4096, seals: ["shrink", "grow"] });
  const mutex = PthreadMutex.init(memory.view(Uint8Array, 0, SIZE));
  return { memory, mutex, words: memory.view(Int32Array) };
}

test("size and alignment come from the platform table; lock word is inside", () => {
  assert.equal(PthreadMutex.size, platform.structs.pthread_mutex_t.size);
  assert.equal(PthreadMutex.align, platform.structs.pthread_mutex_t.align);
  assert.ok(LOCK_WORD * 4 + 4 <= SIZE);
});

test("lock, tryLock, unlock in one thread; errorcheck: EDEADLK and EPERM, never a hang", async () => {
  using mapping = Mapping.anonymous(4096);
  const mutex = PthreadMutex.init(mapping.view(Uint8Array, 0, SIZE));
  const word = mapping.view(Int32Array);
  assert.deepEqual(mutex.lock(), { ownerDied: false });
  assert.equal(mutex.held, true);
  assert.notEqual(word[LOCK_WORD], 0, "glibc's lock word holds the owner");
  assert.throws(() => mutex.lock(), (e) => e instanceof LockError && e.code === "EDEADLK");
  assert.throws(() => mutex.tryLock(), (e) => e instanceof LockError && e.code === "EDEADLK");
  await assert.rejects(mutex.lockAsync(100), (e) => e instanceof LockError && e.code === "EDEADLK");
  mutex.unlock();
  assert.equal(mutex.held, false);
  assert.equal(word[LOCK_WORD], 0);
  assert.throws(() => mutex.unlock(), (e) => e instanceof LockError && e.code === "EPERM");
  assert.deepEqual(mutex.tryLock(), { ownerDied: false });
  mutex.unlock();
  assert.deepEqual(mutex.lock(50), { ownerDied: false });
  mutex.unlock();
  assert.deepEqual(await mutex.lockAsync(), { ownerDied: false });
  mutex.unlock();
  // Another object over the same bytes: the same mutex.
  const again = PthreadMutex.from(mapping.view(Uint8Array, 0, SIZE));
  again.lock();
  assert.throws(() => mutex.tryLock(), (e) => e instanceof LockError && e.code === "EDEADLK");
  again.unlock();
});

test("bad views: TypeError (not a Uint8Array, JS heap), RangeError (small, misaligned), ClosedError", () => {
  const mapping = Mapping.anonymous(4096);
  assert.throws(() => PthreadMutex.init(new Int32Array(16) as unknown as Uint8Array), TypeError);
  assert.throws(() => PthreadMutex.from(null as unknown as Uint8Array), TypeError);
  assert.throws(() => PthreadMutex.init(new Uint8Array(64)), /memory shmkit mapped/);
  assert.throws(() => PthreadMutex.init(mapping.view(Uint8Array, 0, SIZE - 1)), RangeError);
  assert.throws(() => PthreadMutex.init(mapping.view(Uint8Array, 4, SIZE)), /aligned/);
  const mutex = PthreadMutex.init(mapping.view(Uint8Array, 0, SIZE));
  assert.throws(() => mutex.lock(-1), RangeError);
  assert.throws(() => mutex.lockAsync(0, { signal: 1 as unknown as AbortSignal }), TypeError);
  mapping.close();
  assert.throws(() => mutex.lock(), ClosedError);
  assert.throws(() => mutex.tryLock(), ClosedError);
  assert.throws(() => mutex.unlock(), ClosedError);
  assert.throws(() => mutex.consistent(), ClosedError);
  assert.throws(() => PthreadMutex.from(mapping.view(Uint8Array)), ClosedError);
});

test("consistent() outside the owner-died state is EINVAL", () => {
  using mapping = Mapping.anonymous(4096);
  const mutex = PthreadMutex.init(mapping.view(Uint8Array, 0, SIZE));
  mutex.lock();
  assert.throws(() => mutex.consistent(), { name: "ErrnoError", code: "EINVAL" });
  mutex.unlock();
});

test("releasing the memory while holding the mutex unlocks it first", TIMEOUT, async () => {
  const file = sharedFile(4096);
  try {
    using watcher = Mapping.file(file.path);
    const word = watcher.view(Int32Array);
    const mapping = Mapping.file(file.path);
    const mutex = PthreadMutex.init(mapping.view(Uint8Array, 0, SIZE));
    mutex.lock();
    assert.notEqual(Atomics.load(word, LOCK_WORD), 0);
    mapping.close();
    await until(() => Atomics.load(word, LOCK_WORD) === 0, 60_000, "the lock word to clear");
    // The robust list no longer points at the released memory: locking another still works.
    const other = PthreadMutex.from(watcher.view(Uint8Array, 0, SIZE));
    assert.deepEqual(other.lock(), { ownerDied: false });
    other.unlock();
  } finally {
    file.remove();
  }
});

test(
  "a C holder SIGKILLed while shmkit waits: lockAsync reports ownerDied; consistent, unlock, relock",
  NEEDS_CC,
  async () => {
    const { memory, mutex, words } = sharedMutex();
    try {
      const child = spawn([peerProgram(), "hold"], { fds: { 3: memory } });
      await until(() => Atomics.load(words, HOLDER) === child.pid, 60_000, "the C child to lock");
      assert.equal(mutex.tryLock(), null, "the C child holds it");
      assert.equal(mutex.lock(20), null, "timedlock gives up");
      const waiting = mutex.lockAsync(60_000);
      const ticks = afterTicks(10, () => child.kill("SIGKILL"));
      const result = await waiting;
      ticks.stop();
      assert.ok(ticks.count >= 10, "the event loop ran while waiting");
      assert.equal((await child.status).signal, "SIGKILL");
      assert.deepEqual(result, { ownerDied: true });
      mutex.consistent();
      mutex.unlock();
      assert.deepEqual(mutex.lock(), { ownerDied: false });
      mutex.unlock();

      // Killed first, locked after: the synchronous lock reports it too.
      Atomics.store(words, HOLDER, 0);
      const second = spawn([peerProgram(), "hold"], { fds: { 3: memory } });
      await until(() => Atomics.load(words, HOLDER) === second.pid, 60_000, "the second child");
      second.kill("SIGKILL");
      await second.status;
      assert.deepEqual(mutex.lock(), { ownerDied: true });
      mutex.consistent();
      mutex.unlock();
      assert.deepEqual(mutex.tryLock(), { ownerDied: false });
      mutex.unlock();
    } finally {
      memory.close();
    }
  },
);

test(
  "a Deno or Bun holder that dropped its objects is SIGKILLed: the next locker sees ownerDied",
  TIMEOUT,
  async () => {
    const file = sharedFile(4096);
    try {
      using mapping = Mapping.file(file.path);
      const words = mapping.view(Int32Array);
      const mutex = PthreadMutex.init(mapping.view(Uint8Array, 0, SIZE));
      for (const peer of [self, other]) {
        Atomics.store(words, HOLDER, 0);
        const child = startPeer(peer, "ipc_mutex_holder.ts", [file.path], 60_000);
        await until(() => Atomics.load(words, HOLDER) !== 0, 60_000, `the ${peer.runtime} holder`);
        assert.equal(mutex.tryLock(), null, `${peer.runtime} holds it`);
        child.kill("SIGKILL");
        assert.equal((await child.done).signal, "SIGKILL");
        assert.deepEqual(await mutex.lockAsync(60_000), { ownerDied: true }, peer.runtime);
        mutex.consistent();
        mutex.unlock();
      }
    } finally {
      file.remove();
    }
  },
);

test(
  "an aborted lockAsync in a Deno or Bun process frees its thread: the process exits",
  TIMEOUT,
  async () => {
    const file = sharedFile(4096);
    try {
      using mapping = Mapping.file(file.path);
      const mutex = PthreadMutex.init(mapping.view(Uint8Array, 0, SIZE));
      mutex.lock();
      try {
        for (const peer of [self, other]) {
          const child = startPeer(peer, "ipc_mutex_abort.ts", [file.path], 60_000);
          const output = await expectSuccess(child, `${peer.runtime} abort child`);
          assert.match(output, /^aborted: stop waiting, held: false$/m);
        }
      } finally {
        mutex.unlock();
      }
    } finally {
      file.remove();
    }
  },
);

test(
  "unlocking after ownerDied without consistent() makes the mutex ENOTRECOVERABLE",
  NEEDS_CC,
  async () => {
    const { memory, mutex, words } = sharedMutex();
    try {
      const child = spawn([peerProgram(), "hold"], { fds: { 3: memory } });
      await until(() => Atomics.load(words, HOLDER) === child.pid, 60_000, "the C child to lock");
      child.kill("SIGKILL");
      await child.status;
      assert.deepEqual(mutex.lock(), { ownerDied: true });
      mutex.unlock();
      assert.throws(
        () => mutex.lock(),
        (e) => e instanceof LockError && e.code === "ENOTRECOVERABLE",
      );
      await assert.rejects(
        mutex.lockAsync(1000),
        (e) => e instanceof LockError && e.code === "ENOTRECOVERABLE",
      );
    } finally {
      memory.close();
    }
  },
);

test("lockAsync is woken by a C holder's unlock and honours an AbortSignal", NEEDS_CC, async () => {
  const { memory, mutex, words } = sharedMutex();
  try {
    const child = spawn([peerProgram(), "hold-until"], { fds: { 3: memory } });
    await until(() => Atomics.load(words, HOLDER) === child.pid, 60_000, "the C child to lock");
    const reason = new Error("give up");
    const controller = new AbortController();
    const aborted = mutex.lockAsync(undefined, { signal: controller.signal });
    const abortTicks = afterTicks(5, () => controller.abort(reason));
    await assert.rejects(aborted, (e) => e === reason);
    abortTicks.stop();
    assert.equal(mutex.held, false);

    const waiting = mutex.lockAsync(60_000, { pollMs: 0 });
    const ticks = afterTicks(10, () => Atomics.store(words, GO, 1));
    assert.deepEqual(await waiting, { ownerDied: false });
    ticks.stop();
    assert.equal((await child.status).code, 0);
    mutex.unlock();
  } finally {
    memory.close();
  }
});

test(
  "C children and shmkit (lock and lockAsync) share the mutex: no increment lost",
  NEEDS_CC,
  async () => {
    const ITERATIONS = isEmulated ? 500 : 10_000;
    const CHILDREN = 3;
    const { memory, mutex, words } = sharedMutex();
    try {
      const children = Array.from(
        { length: CHILDREN },
        () => spawn([peerProgram(), "count", String(ITERATIONS)], { fds: { 3: memory } }),
      );
      await until(() => Atomics.load(words, STARTED) === CHILDREN, 60_000, "the children");
      Atomics.store(words, GO, 1);
      for (let i = 0; i < ITERATIONS; i++) {
        const result = i % 2 === 0 ? mutex.lock() : await mutex.lockAsync(60_000);
        assert.deepEqual(result, { ownerDied: false });
        words[COUNTER] = words[COUNTER]! + 1;
        mutex.unlock();
      }
      for (const child of children) assert.equal((await child.status).code, 0);
      assert.equal(words[COUNTER], (CHILDREN + 1) * ITERATIONS);
      assert.equal(Atomics.load(words, LOCK_WORD), 0, "left unlocked");
    } finally {
      memory.close();
    }
  },
);

test("cleanup: remove the compiled peer", () => {
  peer?.remove();
  peer = undefined;
});

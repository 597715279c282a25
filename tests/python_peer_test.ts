/**
 * The Python peer module (peers/python/shmkit_peer.py, standard library plus
 * libatomic through ctypes) against shmkit in this runtime (the suite runs
 * under Deno and under Bun): a Channel in both directions with thousands of
 * messages of every size (1-3 bytes and the maximum included), every byte
 * compared, no loss and no duplicate; a Mutex shared by Python, Deno and
 * Bun processes incrementing one counter; and a Python end refusing a
 * corrupt word.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { Channel, Mapping, Mutex, notify } from "../mod.ts";
import { have, skipReason } from "./helpers.ts";
import {
  expectSuccess,
  isEmulated,
  other,
  PEER_TEST,
  self,
  sharedFile,
  startPeer,
  startProgram,
  until,
} from "./fixtures/lock_peers.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;
const PYTHON = "python3";
const NO_PEER = !have(PYTHON)
  ? skipReason("python3 missing")
  : spawnSync(PYTHON, ["-c", "import ctypes; ctypes.CDLL('libatomic.so.1')"]).status !== 0
  ? skipReason("libatomic.so.1 missing (apt-get install libatomic1)")
  : false;
const PY_TEST = { ...PEER_TEST, skip: NO_PEER };

interface Summary {
  received: number;
  errors: string[];
  extra: number;
  pending: number;
}

function python(
  script: string,
  args: readonly (string | number)[],
): ReturnType<typeof startProgram> {
  return startProgram(PYTHON, ["-B", join(FIXTURES, script), ...args.map(String)]);
}

const COUNT = isEmulated ? 300 : 3000;
const SEED = 4242;

for (const { ring, api } of [{ ring: 4096, api: "sync" }, { ring: 64 * 1024, api: "async" }]) {
  test(
    `${self.runtime} producer (${api}) to a Python consumer, ${ring}-byte ring: every message, in order, no duplicate`,
    PY_TEST,
    async () => {
      const file = sharedFile(ring);
      try {
        {
          using mapping = Mapping.file(file.path);
          Channel.init(mapping.view());
        }
        const consuming = python("pypeer_channel.py", [file.path, "consume", COUNT, SEED]);
        const producing = startPeer(self, "channel_peer.ts", [
          file.path,
          "produce",
          COUNT,
          api,
          0,
          SEED,
        ]);
        await expectSuccess(producing, `${self.runtime} producer`);
        const output = await expectSuccess(consuming, "Python consumer");
        const summary = JSON.parse(output.trim().split("\n").pop()!) as Summary;
        assert.deepEqual(summary, { received: COUNT, errors: [], extra: 0, pending: 0 });
      } finally {
        file.remove();
      }
    },
  );

  test(
    `a Python producer to a ${self.runtime} consumer (${api}), ${ring}-byte ring: every message, in order, then the end`,
    PY_TEST,
    async () => {
      const file = sharedFile(ring);
      try {
        {
          using mapping = Mapping.file(file.path);
          Channel.init(mapping.view());
        }
        const consuming = startPeer(self, "channel_peer.ts", [
          file.path,
          "consume",
          COUNT,
          api,
          0,
          SEED,
        ]);
        const producing = python("pypeer_channel.py", [file.path, "produce", COUNT, SEED]);
        await expectSuccess(producing, "Python producer");
        const output = await expectSuccess(consuming, `${self.runtime} consumer`);
        const summary = JSON.parse(output.trim().split("\n").pop()!) as Summary;
        assert.deepEqual(summary, { received: COUNT, errors: [], extra: 0, pending: 0 });
        // The Python producer closed its end: the closed word has the producer's bit.
        using mapping = Mapping.file(file.path);
        assert.equal(Atomics.load(mapping.view(Int32Array), 6), 1);
      } finally {
        file.remove();
      }
    },
  );
}

test(
  "a Python consumer refuses a corrupt tail, naming the word",
  PY_TEST,
  async () => {
    const file = sharedFile(4096);
    try {
      using mapping = Mapping.file(file.path);
      Channel.init(mapping.view());
      Atomics.store(mapping.view(Int32Array), 32, 4093); // tail: not a multiple of 8
      const code = [
        "import sys",
        `sys.path.insert(0, ${JSON.stringify(join(FIXTURES, "..", "..", "peers", "python"))})`,
        "import shmkit_peer",
        "try:",
        `    shmkit_peer.Channel(shmkit_peer.map_file(${JSON.stringify(file.path)}), 'consumer')`,
        "except shmkit_peer.Corrupted as e:",
        "    print(e.word, e.value)",
      ].join("\n");
      const { output } = await startProgram(PYTHON, ["-B", "-c", code]).done;
      assert.equal(output.trim(), "tail 4093");
    } finally {
      file.remove();
    }
  },
);

test(
  "Python, Deno and Bun processes incrementing under one Mutex lose no increment",
  PY_TEST,
  async () => {
    const iterations = isEmulated ? 300 : 2000;
    const file = sharedFile(4096);
    try {
      using mapping = Mapping.file(file.path);
      const words = mapping.view(Int32Array);
      Mutex.init(mapping.view(Int32Array, 0, 4));
      const running = [
        python("pypeer_counter.py", [file.path, iterations]),
        python("pypeer_counter.py", [file.path, iterations]),
        startPeer(self, "lock_counter.ts", [file.path, iterations, "lock"]),
        startPeer(other, "lock_counter.ts", [file.path, iterations, "lock"]),
      ];
      await until(() => Atomics.load(words, 48) === running.length, 60_000, "the peers to start");
      Atomics.store(words, 49, 1);
      notify(words, 49);
      for (const [i, r] of running.entries()) await expectSuccess(r, `counter ${i}`);
      assert.equal(words[16], running.length * iterations);
      assert.equal(words[0], 0, "the mutex is free at the end");
    } finally {
      file.remove();
    }
  },
);

test(
  "a Python mutex holder SIGKILLed while holding: the JS waiter takes the lock with ownerDied",
  PY_TEST,
  async () => {
    const file = sharedFile(4096);
    try {
      using mapping = Mapping.file(file.path);
      const words = mapping.view(Int32Array);
      const mutex = Mutex.init(mapping.view(Int32Array, 0, 4));
      const code = [
        "import signal, sys",
        `sys.path.insert(0, ${JSON.stringify(join(FIXTURES, "..", "..", "peers", "python"))})`,
        "import shmkit_peer",
        `mutex = shmkit_peer.Mutex(shmkit_peer.map_file(${JSON.stringify(file.path)}))`,
        "assert mutex.lock() is False",
        "print('holding', flush=True)",
        "signal.pause()",
      ].join("\n");
      const holder = startProgram(PYTHON, ["-B", "-c", code]);
      await until(() => (Atomics.load(words, 0) & 0x3fffff) === holder.pid, 60_000, "the holder");
      assert.equal(mutex.tryLock(), null, "the lock is held");
      holder.kill("SIGKILL");
      assert.equal((await holder.done).signal, "SIGKILL");
      const result = await mutex.lockAsync(60_000);
      assert.deepEqual(result, { ownerDied: true });
      mutex.markConsistent();
      mutex.unlock();
      assert.equal(Atomics.load(words, 0), 0);
      assert.equal(Atomics.load(words, 3), 1, "recoveries");
    } finally {
      file.remove();
    }
  },
);

test(
  `a ${self.runtime} mutex holder SIGKILLed while holding: the Python waiter's lock() reports the dead owner`,
  PY_TEST,
  async () => {
    const file = sharedFile(4096);
    try {
      using mapping = Mapping.file(file.path);
      const words = mapping.view(Int32Array);
      Mutex.init(mapping.view(Int32Array, 0, 4));
      const holder = startPeer(self, "lock_holder.ts", [file.path, 1]);
      await until(() => Atomics.load(words, 256) === holder.pid, 60_000, "the holder");
      const code = [
        "import sys",
        `sys.path.insert(0, ${JSON.stringify(join(FIXTURES, "..", "..", "peers", "python"))})`,
        "import shmkit_peer",
        `memory = shmkit_peer.map_file(${JSON.stringify(file.path)})`,
        "mutex = shmkit_peer.Mutex(memory)",
        "print('timed out' if mutex.lock(timeout=0.2) is None else 'taken', flush=True)",
        "print('waiting', flush=True)",
        "shmkit_peer.Words(memory).store(2048, 1)",
        "died = mutex.lock(timeout=60)",
        "mutex.mark_consistent()",
        "mutex.unlock()",
        "print('owner died' if died else 'no death seen', flush=True)",
      ].join("\n");
      const waiter = startProgram(PYTHON, ["-B", "-c", code]);
      // Killed once the Python waiter's short lock timed out (it then flags word 512).
      await until(() => Atomics.load(words, 512) === 1, 60_000, "the waiter");
      holder.kill("SIGKILL");
      const { code: status, output } = await waiter.done;
      assert.equal(status, 0, output);
      assert.deepEqual(output.trim().split("\n"), ["timed out", "waiting", "owner died"]);
      assert.equal(Atomics.load(words, 0), 0);
    } finally {
      file.remove();
    }
  },
);

test(
  `a ${self.runtime} producer SIGKILLed mid-stream: the Python consumer gets everything it published, then the end`,
  PY_TEST,
  async () => {
    const file = sharedFile(8192);
    try {
      using mapping = Mapping.file(file.path);
      const words = mapping.view(Int32Array);
      Channel.init(mapping.view());
      const consuming = python("pypeer_channel.py", [file.path, "drain"]);
      const producing = startPeer(self, "channel_peer.ts", [file.path, "stream"]);
      // Kill it once a good number of messages went through (the count of received, word 66).
      await until(() => Atomics.load(words, 66) > 2000, 60_000, "messages to flow");
      producing.kill("SIGKILL");
      assert.equal((await producing.done).signal, "SIGKILL");
      const output = await expectSuccess(consuming, "Python consumer");
      const summary = JSON.parse(output.trim().split("\n").pop()!) as {
        received: number;
        errors: string[];
        pending: number;
      };
      assert.deepEqual(summary.errors, []);
      // Everything the producer published arrived: its sent count, nothing pending.
      assert.equal(summary.received, Atomics.load(words, 34));
      assert.equal(summary.pending, 0);
      assert.ok(summary.received > 2000);
    } finally {
      file.remove();
    }
  },
);

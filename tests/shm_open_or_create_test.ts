/**
 * SharedMemory.openOrCreate: ten processes of both runtimes racing on one
 * name (exactly one runs init, all see its result), an initializer killed
 * mid-init (the waiters find out), timeouts, AbortSignal, and init throwing.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { SharedMemory } from "../mod.ts";
import {
  installed,
  leftovers,
  runFixture,
  RUNTIMES,
  shmExists,
  startFixture,
  testName,
} from "./fixtures/runtimes.ts";
import { skipReason } from "./helpers.ts";
import {
  clockTicks,
  creatorLiveness,
  ownPidNamespace,
  readCreator,
  startTimeOf,
} from "../shm/_creator.ts";
import { spawn as spawnChild } from "node:child_process";
import { readFileSync } from "node:fs";

const CHILD = "shm_open_or_create_child.ts";
const missing = RUNTIMES.filter((r) => !installed(r)).map((r) => r.program);

/** Whether /dev/shm takes user xattrs (the creator record; tmpfs from Linux 6.6). */
function xattrsHere(): boolean {
  try {
    // persist: its record is written at create (others' at the end of the job).
    const shm = SharedMemory.create({ size: 1, persist: true });
    try {
      return typeof readCreator("/dev/shm" + shm.name) !== "string";
    } finally {
      shm.close();
      shm.unlink();
    }
  } catch {
    return false;
  }
}

function remove(name: string): void {
  rmSync("/dev/shm" + name, { force: true });
}

test("ten processes (Deno and Bun) open one name at once: exactly one runs init, all see it", {
  skip: missing.length === 0 ? false : skipReason(`not installed: ${missing.join(", ")}`),
}, async () => {
  const name = testName("race");
  // A common start a few seconds ahead, so that all are running before it.
  const start = String(Date.now() + 3000);
  try {
    const exits = await Promise.all(
      Array.from({ length: 10 }, (_, i) => runFixture(RUNTIMES[i % 2]!, CHILD, [name, start])),
    );
    const said = exits.map((exit) => {
      assert.equal(exit.code, 0, exit.stderr);
      return JSON.parse(exit.stdout.trim().split("\n").pop() ?? "{}");
    });
    assert.equal(said.filter((s) => s.initRan).length, 1, JSON.stringify(said));
    assert.equal(said.filter((s) => s.created).length, 1, JSON.stringify(said));
    for (const s of said) {
      assert.equal(s.error, undefined, s.error);
      assert.equal(s.inits, 1, "init ran more than once");
      assert.equal(s.value, 42, "a process got the object before init finished");
      assert.equal(s.byteLength, 4096);
    }
  } finally {
    remove(name);
  }
});

test("an initializer killed mid-init (SIGKILL): the waiter rejects naming its pid", async () => {
  const name = testName("dead");
  const child = startFixture(RUNTIMES[0]!, CHILD, [name, "0", "hang"], "initializing", 60000);
  try {
    const line = await child.ready;
    const pid = Number(line.split(" ")[1]);
    const waiting = SharedMemory.openOrCreate({
      name,
      size: 4096,
      init: () => {},
      timeoutMs: 60000,
    });
    child.process.kill("SIGKILL");
    await assert.rejects(waiting, (error: unknown) => {
      assert.match(
        String(error),
        new RegExp(`initializer \\(pid ${pid}\\) died before init finished`),
      );
      assert.match(String(error), /SharedMemory\.unlink/);
      return true;
    });
    assert.equal((await child.exited).signal, "SIGKILL");
  } finally {
    child.process.kill("SIGKILL");
    remove(name);
  }
});

for (const mode of ["empty", "unclaimed"] as const) {
  test(
    `a creator SIGKILLed before ${
      mode === "empty" ? "sizing the object" : "claiming the ready word"
    } (persist): the waiter rejects naming its pid, not at its timeout`,
    {
      skip: xattrsHere() ? false : skipReason("this /dev/shm keeps no user xattrs (Linux < 6.6)"),
    },
    async () => {
      const name = testName(`dead-${mode}`);
      const child = startFixture(
        RUNTIMES[0]!,
        "shm_dead_creator_child.ts",
        [name, mode],
        "created",
      );
      try {
        const pid = Number((await child.ready).split(" ")[1]);
        const waiting = SharedMemory.openOrCreate({
          name,
          size: 4096,
          init: () => assert.fail("init ran in a waiter"),
          timeoutMs: 20_000, // the death must end the wait, not this (its message differs)
        });
        // Handled below; it may reject before the child's exit is seen, which must not count
        // as an unhandled rejection.
        waiting.catch(() => {});
        child.process.kill("SIGKILL");
        assert.equal((await child.exited).signal, "SIGKILL");
        await assert.rejects(waiting, (error: unknown) => {
          assert.match(
            String(error),
            mode === "empty"
              ? new RegExp(`its creator \\(pid ${pid}\\) died before sizing it`)
              : new RegExp(`its creator \\(pid ${pid}\\) died before init finished`),
          );
          assert.match(String(error), /SharedMemory\.unlink/);
          return true;
        });
      } finally {
        child.process.kill("SIGKILL");
        remove(name);
      }
    },
  );
}

test("creator liveness (shared by openOrCreate and the CLI): alive, dead when killed, a reused pid, another namespace", async () => {
  const child = spawnChild("sleep", ["600"], { stdio: "ignore" });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  try {
    const pid = child.pid!;
    const start = startTimeOf(readFileSync(`/proc/${pid}/stat`, "utf8"))!;
    const pidns = ownPidNamespace();
    assert.ok(pidns > 0);
    assert.equal(creatorLiveness({ pid, start, pidns }), "alive");
    // A few ticks off is the same process (qemu-user); more than a second is a reused pid.
    assert.equal(creatorLiveness({ pid, start: start + 3, pidns }), "alive");
    assert.equal(creatorLiveness({ pid, start: start + 5 * clockTicks(), pidns }), "dead");
    assert.equal(creatorLiveness({ pid, start, pidns: pidns + 1 }), "unknown");
    assert.equal(creatorLiveness({ pid, start, pidns: 0 }), "unknown");
    child.kill("SIGKILL");
    await exited;
    // Reaped: the pid is gone (a new process under it would have a later start time).
    assert.equal(creatorLiveness({ pid, start, pidns }), "dead");
  } finally {
    child.kill("SIGKILL");
  }
});

test("a live but slow initializer: the wait ends at timeoutMs, or when the signal aborts", async () => {
  const name = testName("slow");
  const child = startFixture(RUNTIMES[0]!, CHILD, [name, "0", "hang"], "initializing", 60000);
  try {
    const pid = Number((await child.ready).split(" ")[1]);
    const init = (): void => assert.fail("init ran in a waiter");
    await assert.rejects(
      SharedMemory.openOrCreate({ name, size: 4096, init, timeoutMs: 100 }),
      new RegExp(`timed out after 100 ms waiting for its initializer \\(pid ${pid}\\)`),
    );
    const controller = new AbortController();
    const waiting = SharedMemory.openOrCreate({
      name,
      size: 4096,
      init,
      timeoutMs: 60000,
      signal: controller.signal,
    });
    const reason = new Error("no longer needed");
    controller.abort(reason);
    await assert.rejects(waiting, (error: unknown) => error === reason);
  } finally {
    child.process.kill("SIGKILL");
    await child.exited;
    remove(name);
  }
});

test("init that throws: the error is thrown, the object removed, and the next call initializes anew", async () => {
  const name = testName("throws");
  try {
    await assert.rejects(
      SharedMemory.openOrCreate({
        name,
        size: 100,
        init: () => {
          throw new Error("bad init");
        },
      }),
      /bad init/,
    );
    assert.equal(shmExists(name), false);
    let runs = 0;
    using shm = await SharedMemory.openOrCreate({
      name,
      size: 100,
      init: (fresh) => {
        runs++;
        fresh.view()[99] = 7;
      },
    });
    assert.equal(runs, 1);
    assert.equal(shm.created, true);
    assert.equal(shm.byteLength, 100);
    // A second opener in this process joins: no init, same memory.
    using again = await SharedMemory.openOrCreate({
      name,
      size: 100,
      init: () => assert.fail("ran twice"),
    });
    assert.equal(again.created, false);
    assert.equal(again.view()[99], 7);
  } finally {
    remove(name);
  }
});

test("init that throws in another process: that call fails and leaves no object behind", async () => {
  const name = testName("retry");
  try {
    const exit = await runFixture(RUNTIMES[0]!, CHILD, [name, "0", "throw"]);
    assert.match(exit.stdout, /init failed on purpose/);
    assert.equal(shmExists(name), false, "the failed object was left behind");
  } finally {
    remove(name);
  }
});

test("an object not made by openOrCreate (too small for the ready page) is refused", async () => {
  const name = testName("plain");
  using plain = SharedMemory.create({ name, size: 4096 });
  await assert.rejects(
    SharedMemory.openOrCreate({ name, size: 4096, init: () => {} }),
    (error: unknown) =>
      error instanceof RangeError && /one page more for its ready word/.test(error.message),
  );
  assert.equal(plain.created, true);
});

test("options are checked before any call", async () => {
  await assert.rejects(
    SharedMemory.openOrCreate({ name: "/x", size: 1, init: 5 as unknown as () => void }),
    TypeError,
  );
  await assert.rejects(
    SharedMemory.openOrCreate({ name: "x", size: 1, init: () => {} }),
    RangeError,
  );
  await assert.rejects(
    SharedMemory.openOrCreate({ name: "/x", size: 1, init: () => {}, timeoutMs: -1 }),
    RangeError,
  );
});

test("the suite leaves /dev/shm as it found it", () => {
  assert.deepEqual(leftovers(), []);
});

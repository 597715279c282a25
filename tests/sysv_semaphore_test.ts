/**
 * System V semaphore sets (ipc/sysv_semaphore.ts): values and atomic
 * operations, keys and their errors, `ipcs -s`/`ipcrm -s`, timed and
 * asynchronous waits (timeout, AbortSignal, EIDRM), the kernel.sem limits
 * provoked in a new IPC namespace, and SEM_UNDO giving a lock back when its
 * holder is SIGKILLed, with Deno, Bun and Python sysv_ipc peers.
 *
 * The suite removes every set it makes and checks at the end that none is
 * left (`ipcs -s` as found, for our sets; other suites may run meanwhile).
 *
 * @module
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { ErrnoError } from "../mod.ts";
import { SystemVSemaphoreSet } from "../ipc/mod.ts";
import { have, runtime, skipReason, tempDir } from "./helpers.ts";
import { FIXTURES, runtimeCommand, spawnTracked } from "./fixtures/sysv_support.ts";
import { type Child, type RuntimeCommand, RUNTIMES, startFixture } from "./fixtures/runtimes.ts";

const PYTHON = "/usr/bin/python3";
const NO_IPCS = have("ipcs") && have("ipcrm") ? false : skipReason("util-linux ipcs/ipcrm missing");
const NO_SYSV_IPC = spawnSync(PYTHON, ["-c", "import sysv_ipc"]).status === 0
  ? false
  : skipReason("python3-sysv-ipc missing (apt-get install python3-sysv-ipc)");
const NO_UNSHARE = process.getuid?.() === 0 && have("unshare") &&
    spawnSync("unshare", ["--ipc", "true"]).status === 0
  ? false
  : skipReason("unshare --ipc needs root and util-linux unshare");

/** Ids of every set this suite made; none may be left at the end. */
const ours = new Set<number>();

function make(
  size: number,
  options?: Parameters<typeof SystemVSemaphoreSet.create>[1],
): SystemVSemaphoreSet {
  const set = SystemVSemaphoreSet.create(size, options);
  ours.add(set.id);
  return set;
}

function procSetIds(): Map<number, string> {
  const lines = readFileSync("/proc/sysvipc/sem", "utf8").trim().split("\n").slice(1);
  return new Map(
    lines.filter((l) => l.trim() !== "").map((l) => [Number(l.trim().split(/\s+/)[1]), l.trim()]),
  );
}

function randomKey(): number {
  const taken = new Set(SystemVSemaphoreSet.list().map((s) => s.key));
  for (;;) {
    const key = crypto.getRandomValues(new Uint32Array(1))[0]! | 0x1000;
    if (!taken.has(key >>> 0)) return key >>> 0;
  }
}

function removeQuietly(set: SystemVSemaphoreSet): void {
  try {
    set.remove();
  } catch {
    // Already removed by the test.
  }
}

async function until(what: string, condition: () => boolean, limitMs = 60_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

after(() => {
  const left = [...procSetIds().entries()].filter(([id]) => ours.has(id));
  assert.deepEqual(left, [], "semaphore sets this suite made are still there");
});

test("create: IPC_PRIVATE, mode 0o600, initial values, stat", () => {
  const set = make(3, { initial: [1, 2, 3] });
  try {
    assert.equal(set.key, 0);
    assert.equal(set.size, 3);
    assert.equal(set.created, true);
    assert.deepEqual(set.getAll(), [1, 2, 3]);
    const s = set.stat();
    assert.equal(s.mode, 0o600);
    assert.equal(s.size, 3);
    assert.equal(s.uid, process.getuid!());
    assert.equal(s.otime, null);
    set.set(1, 7);
    set.setAll([set.get(0), set.get(1), 9]);
    assert.deepEqual(set.getAll(), [1, 7, 9]);
  } finally {
    set.remove();
  }
});

test("operate is all or none, and a failed try changes nothing", () => {
  const set = make(2, { initial: [1, 0] });
  try {
    // The second operation can't proceed, so the first must not happen either.
    assert.equal(
      set.operate([{ index: 0, delta: -1 }, { index: 1, delta: -1 }], { timeoutMs: 0 }),
      false,
    );
    assert.deepEqual(set.getAll(), [1, 0]);
    assert.equal(set.operate([{ index: 0, delta: -1 }, { index: 1, delta: 2 }]), true);
    assert.deepEqual(set.getAll(), [0, 2]);
    assert.equal(set.lastPid(1), process.pid);
    assert.notEqual(set.stat().otime, null);
    // Wait-for-zero: semaphore 0 is 0 now.
    assert.equal(set.operate([{ index: 0, delta: 0 }], { timeoutMs: 0 }), true);
    assert.equal(set.operate([{ index: 1, delta: 0 }], { timeoutMs: 0 }), false);
    // semtimedop: runs out of time and reports it.
    assert.equal(set.acquire(0, { timeoutMs: 20 }), false);
  } finally {
    set.remove();
  }
});

test("cached one-operation encodings stay right past the cache's 64 entries and a GC", () => {
  const set = make(3);
  try {
    // 100 different (index, delta) pairs: the cache is cleared and refilled on the way.
    const expected = [0, 0, 0];
    for (let round = 0; round < 3; round++) {
      for (let delta = 1; delta <= 100; delta++) {
        const index = delta % 3;
        set.release(index, { count: delta, undo: false });
        expected[index]! += delta;
        // Garbage between calls: a cached address (Node) must still name the encoding.
        for (let i = 0; i < 50; i++) new Uint8Array(64 + i).fill(round);
        assert.equal(set.acquire(index, { count: delta, undo: false }), true);
        expected[index]! -= delta;
      }
      (globalThis as { gc?: () => void }).gc?.();
      set.operate([{ index: 2, delta: 7 }]);
      expected[2]! += 7;
    }
    assert.deepEqual(set.getAll(), expected);
    assert.equal(set.getAll()[2], 21);
  } finally {
    set.remove();
  }
});

test("bad arguments are TypeError/RangeError before any call", () => {
  const set = make(2);
  try {
    assert.throws(() => set.get(2), RangeError);
    assert.throws(() => set.set(0, 40000), RangeError);
    assert.throws(() => set.set(0, -1), RangeError);
    assert.throws(() => set.operate([]), TypeError);
    assert.throws(() => set.operate([{ index: 5, delta: 1 }]), RangeError);
    assert.throws(() => set.operate([{ index: 0, delta: 1.5 }]), RangeError);
    assert.throws(() => set.operate([{ index: 0, delta: -40000 }]), RangeError);
    assert.throws(() => set.operate([null as never]), TypeError);
    assert.throws(() => set.acquire(0, { timeoutMs: -1 }), RangeError);
    assert.throws(() => set.setAll([1]), RangeError);
    assert.throws(() => set.setAll(undefined as never), TypeError);
    assert.throws(() => set.setAll(3 as never), TypeError);
    assert.throws(() => SystemVSemaphoreSet.create(0), RangeError);
    assert.throws(() => SystemVSemaphoreSet.create(1, { key: 0 }), /IPC_PRIVATE/);
    assert.throws(() => SystemVSemaphoreSet.create(1, { mode: 0o1777 }), RangeError);
    assert.throws(() => SystemVSemaphoreSet.create(2, { initial: [1] }), RangeError);
    assert.throws(() => SystemVSemaphoreSet.openById(-1), RangeError);
    // The set is untouched by all of that.
    assert.deepEqual(set.getAll(), [0, 0]);
  } finally {
    set.remove();
  }
});

test("ERANGE past SEMVMX names the limit", () => {
  const set = make(1, { initial: 32767 });
  try {
    assert.throws(() => set.release(0, { undo: false }), (error: unknown) => {
      assert.ok(error instanceof ErrnoError);
      assert.equal(error.code, "ERANGE");
      assert.match(error.message, /SEMVMX \(32767\)/);
      return true;
    });
  } finally {
    set.remove();
  }
});

test("keys: exclusive is EEXIST, get-or-create opens, another number of semaphores is an error", () => {
  const key = randomKey();
  const set = make(2, { key, mode: 0o640, initial: 1 });
  try {
    assert.equal(set.key, key);
    assert.throws(() => SystemVSemaphoreSet.create(2, { key }), (error: unknown) => {
      assert.ok(error instanceof ErrnoError);
      assert.equal(error.code, "EEXIST");
      assert.match(error.message, new RegExp(`id ${set.id}, 2 semaphores`));
      return true;
    });
    const again = SystemVSemaphoreSet.create(2, { key, exclusive: false, initial: 5 });
    assert.equal(again.created, false);
    assert.equal(again.id, set.id);
    assert.deepEqual(again.getAll(), [1, 1], "an opened set keeps its values");
    assert.throws(
      () => SystemVSemaphoreSet.create(3, { key, exclusive: false }),
      (error: unknown) => {
        assert.ok(error instanceof ErrnoError);
        assert.equal(error.code, "EINVAL");
        assert.match(error.message, /exists with 2 semaphores; 3 were asked/);
        return true;
      },
    );
    assert.throws(
      () => SystemVSemaphoreSet.create(1, { key, exclusive: false }),
      /exists with 2 semaphores; 1 were asked/,
    );
    assert.equal(SystemVSemaphoreSet.open(key).size, 2);
    assert.throws(
      () => SystemVSemaphoreSet.open(key, { size: 3 }),
      /exists with 2 semaphores; 3 were asked/,
    );
    assert.equal(SystemVSemaphoreSet.openById(set.id).key, key);
  } finally {
    set.remove();
  }
  assert.throws(() => SystemVSemaphoreSet.open(key), (error: unknown) => {
    assert.ok(error instanceof ErrnoError);
    assert.equal(error.code, "ENOENT");
    return true;
  });
  assert.throws(() => SystemVSemaphoreSet.openById(set.id), /EINVAL.*removed/);
  assert.throws(() => set.get(0), /EINVAL.*removed/);
});

test("ipcs -s shows our set; ipcrm -s removes it; list() agrees", { skip: NO_IPCS }, () => {
  const key = randomKey();
  const set = make(4, { key, mode: 0o640 });
  try {
    const hex = `0x${key.toString(16).padStart(8, "0")}`;
    const rows = execFileSync("ipcs", ["-s"], {
      encoding: "utf8",
      env: { ...process.env, LC_ALL: "C" },
    })
      .split("\n").map((l) => l.trim().split(/\s+/));
    const row = rows.find((c) => c[1] === String(set.id));
    assert.ok(row !== undefined, "ipcs -s does not list the set");
    assert.deepEqual([row[0], row[3], row[4]], [hex, "640", "4"]);
    const listed = SystemVSemaphoreSet.list().find((s) => s.id === set.id);
    assert.deepEqual(
      listed && { key: listed.key, perms: listed.perms, size: listed.size },
      { key, perms: 0o640, size: 4 },
    );
    execFileSync("ipcrm", ["-s", String(set.id)]);
    assert.equal(SystemVSemaphoreSet.list().some((s) => s.id === set.id), false);
    assert.throws(() => set.getAll(), (error: unknown) => error instanceof ErrnoError);
  } finally {
    removeQuietly(set);
  }
});

test("acquireAsync waits without blocking the loop, and a timeout resolves false", async () => {
  const set = make(1);
  try {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const waiting = set.acquireAsync(0, { timeoutMs: 60_000 });
    await until("the wait to be in the kernel", () => set.waiting(0).decrease === 1);
    const seen = ticks;
    await until("the event loop to run", () => ticks > seen);
    set.release(0, { undo: false });
    assert.equal(await waiting, true);
    clearInterval(timer);
    assert.equal(set.get(0), 0);
    assert.equal(await set.acquireAsync(0, { timeoutMs: 30 }), false);
    assert.equal(set.get(0), 0);
  } finally {
    set.remove();
  }
});

test("20 acquireAsync waits at once (more than Bun's 16 Workers) all end when released", async () => {
  const set = make(1);
  try {
    const waits = Array.from({ length: 20 }, () => set.acquireAsync(0, { undo: false }));
    await until("some waits to be in the kernel", () => set.waiting(0).decrease >= 1);
    set.release(0, { count: 20, undo: false });
    assert.deepEqual(await Promise.all(waits), new Array(20).fill(true));
    assert.equal(set.get(0), 0);
  } finally {
    set.remove();
  }
});

test("an aborted acquireAsync rejects with the reason and never keeps the semaphore", async () => {
  const set = make(1);
  try {
    const controller = new AbortController();
    const waiting = set.acquireAsync(0, { signal: controller.signal });
    await until("the wait to be in the kernel", () => set.waiting(0).decrease === 1);
    const reason = new Error("stop");
    controller.abort(reason);
    // The blocked thread may still take it: it must give it back.
    set.release(0, { undo: false });
    await assert.rejects(waiting, (error: unknown) => error === reason);
    await until("the blocked thread to return", () => set.waiting(0).decrease === 0);
    await until("the value to come back", () => set.get(0) === 1);
    assert.equal(set.get(0), 1);
    await assert.rejects(
      set.acquireAsync(0, { signal: controller.signal }),
      (e: unknown) => e === reason,
    );
  } finally {
    set.remove();
  }
});

for (const peer of RUNTIMES) {
  test(
    `a ${peer.name} process whose acquireAsync was aborted exits by itself`,
    { timeout: 120_000 },
    async () => {
      const child = startFixture(peer, "sysvsem_abort.ts", [], "id ", 60_000);
      const id = Number((await child.ready).slice(3));
      ours.add(id);
      const end = await child.exited;
      if (end.signal !== null) {
        // Killed by the fixture timer: it hung. Remove what it left.
        spawnSync("ipcrm", ["-s", String(id)]);
      }
      assert.equal(end.signal, null, "the process did not exit by itself");
      assert.equal(end.code, 0, end.stderr);
      assert.match(end.stdout, /^rejected: stop waiting$/m);
      assert.equal(procSetIds().has(id), false, "the exit handler removed the set");
    },
  );
}

test("removing the set while acquireAsync waits rejects with EIDRM", async () => {
  const set = make(1);
  const waiting = set.acquireAsync(0);
  await until("the wait to be in the kernel", () => set.waiting(0).decrease === 1);
  set.remove();
  await assert.rejects(waiting, (error: unknown) => {
    assert.ok(error instanceof ErrnoError);
    assert.equal(error.code, "EIDRM");
    assert.match(error.message, /removed \(IPC_RMID, ipcrm -s\) while this call waited/);
    return true;
  });
});

test("removing the set while a blocking acquire waits throws EIDRM (ipcrm -s from a peer)", {
  skip: NO_IPCS,
  timeout: 120_000,
}, () => {
  const set = make(1);
  // A shell peer waits for our waiter to show in GETNCNT (via ipcs -i), then removes the set.
  const watcher = spawn("sh", [
    "-c",
    `for i in $(seq 1 6000); do ipcs -s -i ${set.id} 2>/dev/null | grep -Eq '^0 +0 +1 ' && exec ipcrm -s ${set.id}; sleep 0.01; done; exit 9`,
  ], { stdio: "ignore" });
  try {
    assert.throws(() => set.acquire(0), (error: unknown) => {
      assert.ok(error instanceof ErrnoError);
      assert.equal(error.code, "EIDRM");
      assert.equal(error.syscall, "semop");
      return true;
    });
  } finally {
    watcher.kill();
    removeQuietly(set);
  }
});

test("kernel.sem limits provoked in a new IPC namespace are named with their sysctl", {
  skip: NO_UNSHARE,
  timeout: 120_000,
}, () => {
  const before = readFileSync("/proc/sys/kernel/sem", "utf8");
  const [program, args] = runtimeCommand(join(FIXTURES, "sysvsem_limits_child.ts"));
  const result = spawnTracked("unshare", ["--ipc", program, ...args], {
    SHMKIT_PARENT_IPC_NS: readlinkSync("/proc/self/ns/ipc"),
  });
  assert.equal(result.status, 0, result.stdout + result.stderr);
  const out = JSON.parse(result.stdout) as Record<string, { code: string; message: string }> & {
    namespace: string;
    limits: unknown;
    setsAtStart: number;
    setsAtEnd: number;
  };
  assert.notEqual(out.namespace, readlinkSync("/proc/self/ns/ipc"));
  assert.deepEqual(out.limits, { semmsl: 4, semmns: 6, semopm: 2, semmni: 3 });
  assert.equal(out.setsAtStart, 0);
  assert.equal(out.overSemmsl!.code, "EINVAL");
  assert.match(
    out.overSemmsl!.message,
    /^Cannot semget: EINVAL .*: SEMMSL \(kernel\.sem, first number\) is 4 semaphores per set; 5 were asked; raise it with sysctl -w kernel\.sem="5 6 2 3"/,
  );
  assert.equal(out.overSemmns!.code, "ENOSPC");
  assert.match(
    out.overSemmns!.message,
    /: SEMMNS \(kernel\.sem, second number\) is 6 semaphores in all sets; 4 are in use and this set needs 4 more; .* kernel\.sem="4 8 2 3"$/,
  );
  assert.equal(out.overSemopm!.code, "E2BIG");
  assert.match(
    out.overSemopm!.message,
    /^Cannot semop id \d+: E2BIG .*: SEMOPM \(kernel\.sem, third number\) is 2 operations per call; 3 were given; .* kernel\.sem="4 6 3 3"$/,
  );
  assert.equal(out.overSemmni!.code, "ENOSPC");
  assert.match(
    out.overSemmni!.message,
    /: SEMMNI \(kernel\.sem, fourth number\) is 3 sets and 3 exist; .* kernel\.sem="4 100 2 4"$/,
  );
  assert.equal(out.setsAtEnd, 0);
  assert.equal(
    readFileSync("/proc/sys/kernel/sem", "utf8"),
    before,
    "the machine's kernel.sem changed",
  );
});

// --- SEM_UNDO with real peers: Deno, Bun and Python sysv_ipc

const PYTHON_PEER = { name: runtime, program: PYTHON, prefix: [] } as unknown as RuntimeCommand;
const ITERATIONS = 150;

function peer(kind: "deno" | "bun" | "python", args: string[]): Child {
  const [command, script] = kind === "python"
    ? [PYTHON_PEER, "sysvsem_counter.py"]
    : [RUNTIMES.find((r) => r.name === kind)!, "sysvsem_counter.ts"];
  const child = startFixture(command, script, args, "ready", 180_000);
  return child;
}

for (const holder of ["deno", "bun", "python"] as const) {
  test(
    `SEM_UNDO: a ${holder} holder SIGKILLed mid-critical-section gives the lock back; Deno, Bun and Python peers lose no increment`,
    { skip: NO_SYSV_IPC, timeout: 240_000 },
    async () => {
      const dir = tempDir();
      const key = randomKey();
      const set = make(1, { key, initial: 1 });
      const counter = join(dir.path, "counter");
      writeFileSync(counter, new Uint8Array(4));
      const started: Child[] = [];
      try {
        const held = peer(holder, [String(key), counter, "0", "hold"]);
        started.push(held);
        await held.ready;
        await until("the holder to take the lock", () => set.get(0) === 0);
        const workers = (["deno", "bun", "python"] as const).map((kind) =>
          peer(kind, [String(key), counter, String(ITERATIONS), "count"])
        );
        started.push(...workers);
        await Promise.all(workers.map((w) => w.ready));
        // Every worker is blocked behind the holder: nothing was counted.
        await until("all workers to wait", () => set.waiting(0).decrease === 3);
        const atStart = readFileSync(counter); // Node: a slice of a shared pool
        assert.equal(new DataView(atStart.buffer, atStart.byteOffset).getUint32(0, true), 0);
        held.process.kill("SIGKILL");
        const killed = await held.exited;
        assert.equal(killed.signal, "SIGKILL");
        assert.match(killed.stdout, /holding/);
        const ends = await Promise.all(workers.map((w) => w.exited));
        for (const end of ends) assert.equal(end.code, 0, end.stderr);
        // Exactly the workers' increments: the killed holder's unfinished one is the only one missing.
        const bytes = readFileSync(counter);
        assert.equal(
          new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true),
          3 * ITERATIONS,
        );
        // The kernel undid the holder's -1: the lock is free again.
        assert.equal(set.get(0), 1);
      } finally {
        // A failed assertion must not leave the holder holding until its fixture timeout.
        for (const child of started) {
          if (child.process.exitCode === null && child.process.signalCode === null) {
            child.process.kill("SIGKILL");
          }
        }
        set.remove();
        dir.remove();
      }
    },
  );
}

/**
 * The out-of-process cleaner (shm/_cleaner.ts), from outside: children under
 * Deno and Bun create objects and are killed with real signals; the objects
 * they created must be gone soon after, the ones they only opened or that
 * were re-created by someone else must stay, and no cleaner may linger.
 * Deadlines are hang guards only (poll up to 5 s), never timing assertions.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import type { Buffer } from "node:buffer";
import { Mutex, SharedMemory, SystemVSegment } from "../mod.ts";
import { fieldsOf } from "../shm/_cleaner.ts";
import { Ledger, LEDGER_LINE } from "../shm/_cleaner_ledger.ts";
import {
  type Child,
  installed,
  repoPath,
  type RuntimeCommand,
  RUNTIMES,
  startFixture,
} from "./fixtures/runtimes.ts";

const PREFIX = `/shmkit-cleanup-${process.pid}-`;
let counter = 0;
const segments = new Set<number>(); // System V ids to remove if a test fails midway

function uniqueName(label: string): string {
  return `${PREFIX}${label}-${counter++}`;
}

function shmExists(name: string): boolean {
  return existsSync("/dev/shm" + name);
}

function sysvExists(id: number): boolean {
  return readFileSync("/proc/sysvipc/shm", "utf8").split("\n").slice(1)
    .some((line) => line.trim().split(/\s+/)[1] === String(id));
}

function sysvOwnedBy(pid: number): number {
  return readFileSync("/proc/sysvipc/shm", "utf8").split("\n").slice(1)
    .filter((line) => line.trim().split(/\s+/)[4] === String(pid)).length;
}

/** Gone, or a zombie waiting for a reaper that is not ours to be. */
function processGone(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return true;
  }
  return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
}

/** Whether the process's main thread is blocked in futex(2) (a synchronous wait). */
function inFutex(pid: number): boolean {
  try {
    if (readFileSync(`/proc/${pid}/wchan`, "utf8").includes("futex")) return true;
    const nr = readFileSync(`/proc/${pid}/syscall`, "utf8").split(" ")[0];
    return nr === (process.arch === "arm64" ? "98" : "202");
  } catch {
    return false;
  }
}

/** Polls `condition` until true; throws after `ms` (a hang guard, not a timing assertion). */
async function until(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The runtime started through `sh -c 'ulimit -c 0; exec ...'`: SIGABRT must not dump a core. */
function withoutCore(rt: RuntimeCommand): RuntimeCommand {
  return {
    name: rt.name,
    program: "/bin/sh",
    prefix: ["-c", 'ulimit -c 0; exec "$0" "$@"', rt.program, ...rt.prefix],
  };
}

interface Ready {
  readonly pid: number;
  readonly sysv?: number;
  readonly kept?: number;
  readonly workerPid?: number;
  readonly old?: number;
  readonly reaped?: boolean;
  readonly openedCreated?: boolean;
  readonly live?: string[];
  readonly gone?: string[];
}

function parseReady(line: string): Ready {
  const info = JSON.parse(line.slice("ready ".length)) as Ready;
  if (info.sysv !== undefined) segments.add(info.sysv);
  if (info.kept !== undefined) segments.add(info.kept);
  return info;
}

function removeSegment(id: number | undefined): void {
  if (id === undefined) return;
  segments.delete(id);
  if (sysvExists(id)) SystemVSegment.openById(id).remove();
}

const children: Child[] = [];

/** Starts the fixture; {@linkcode killLeft} ends it if a failed test left it running. */
function start(rt: RuntimeCommand, args: string[]): Child {
  const running = startFixture(rt, "cleanup_child.ts", args);
  children.push(running);
  return running;
}

function killLeft(): void {
  for (const running of children.splice(0)) {
    const p = running.process;
    if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  }
}

const SIGNALS = ["SIGKILL", "SIGHUP", "SIGABRT", "SIGTERM", "SIGINT"] as const;

for (const rt of RUNTIMES) {
  const skip = installed(rt) ? false : `${rt.program} is not installed`;
  const child = withoutCore(rt);

  for (const signal of SIGNALS) {
    test(
      `${rt.name} child killed by ${signal}: its object and removeOnExit segment are removed by the cleaner`,
      {
        skip,
      },
      async () => {
        // A name with characters a shell would trip on, sent through the pipe intact.
        const name = uniqueName(`${signal} 'q' "d" $x \\ *\n-`);
        let info: Ready | undefined;
        try {
          const running = start(child, ["hold", name]);
          info = parseReady(await running.ready);
          assert.ok(info.pid > 0, "a cleaner runs once something is registered");
          assert.equal(shmExists(name), true);
          assert.equal(sysvExists(info.sysv!), true);
          process.kill(running.process.pid!, signal);
          const result = await running.exited;
          assert.equal(result.signal, signal, `ended by the signal itself: ${result.stderr}`);
          await until(() => !shmExists(name), "the object is removed");
          await until(() => !sysvExists(info!.sysv!), "the removeOnExit segment is removed");
          await until(() => processGone(info!.pid), "the cleaner has exited");
          assert.equal(sysvExists(info.kept!), true, "a segment without removeOnExit stays");
        } finally {
          killLeft();
          if (shmExists(name)) SharedMemory.unlink(name);
          removeSegment(info?.sysv);
          removeSegment(info?.kept);
        }
      },
    );
  }

  test(
    `${rt.name} Ctrl-C to the whole process group: the child dies, its cleaner survives and removes`,
    {
      skip,
    },
    async () => {
      const name = uniqueName("ctrl-c");
      // A group of its own, as a shell job is: SIGINT to the group is what Ctrl-C sends.
      const group = spawn(child.program, [
        ...child.prefix,
        repoPath("tests/fixtures/cleanup_child.ts"),
        "hold",
        name,
      ], { detached: true, stdio: ["ignore", "pipe", "inherit"] });
      const exited = new Promise<string | null>((resolve) => {
        group.once("exit", (_code: number | null, signal: string | null) => resolve(signal));
      });
      let info: Ready | undefined;
      try {
        const line = await new Promise<string>((resolve, reject) => {
          let text = "";
          group.stdout!.on("data", (chunk: Buffer) => {
            text += String(chunk);
            if (text.includes("\n")) resolve(text.slice(0, text.indexOf("\n")));
          });
          group.once("exit", () => reject(new Error(`ended before ready: ${text}`)));
        });
        info = parseReady(line);
        process.kill(-group.pid!, "SIGINT");
        assert.equal(await exited, "SIGINT");
        await until(() => !shmExists(name), "the object is removed");
        await until(() => !sysvExists(info!.sysv!), "the removeOnExit segment is removed");
        await until(() => processGone(info!.pid), "the cleaner has exited");
      } finally {
        if (group.exitCode === null && group.signalCode === null) group.kill("SIGKILL");
        if (shmExists(name)) SharedMemory.unlink(name);
        removeSegment(info?.sysv);
        removeSegment(info?.kept);
      }
    },
  );

  for (const mode of ["lock", "wait"] as const) {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      test(
        `${rt.name} child blocked in a synchronous ${mode}() ends on ${signal}; its object is removed, the opened one stays`,
        {
          skip,
        },
        async () => {
          using peer = SharedMemory.create({ name: uniqueName("peer"), size: 4096 });
          const mutex = Mutex.init(peer.view(Uint8Array, 0, Mutex.byteLength));
          mutex.lock(); // held by this process: the child's lock() blocks
          const name = uniqueName(`blocked-${mode}`);
          try {
            const running = start(child, [mode, name, peer.name]);
            const info = parseReady(await running.ready);
            const pid = running.process.pid!;
            await until(() => inFutex(pid), `the child blocks in futex (${mode})`);
            process.kill(pid, signal);
            const result = await running.exited;
            assert.equal(
              result.signal,
              signal,
              `ended by the signal: ${result.stdout}${result.stderr}`,
            );
            await until(() => !shmExists(name), "the child's object is removed");
            await until(() => processGone(info.pid), "the cleaner has exited");
            assert.equal(shmExists(peer.name), true, "an object the child only opened stays");
          } finally {
            killLeft();
            mutex.unlock();
            if (shmExists(name)) SharedMemory.unlink(name);
          }
        },
      );
    }
  }

  test(`${rt.name} child killed: an object it only opened is never removed`, { skip }, async () => {
    using peer = SharedMemory.create({ name: uniqueName("opened"), size: 4096 });
    const name = uniqueName("own");
    try {
      const running = start(child, ["open", name, peer.name]);
      const info = parseReady(await running.ready);
      process.kill(running.process.pid!, "SIGKILL");
      await running.exited;
      await until(() => !shmExists(name), "the child's own object is removed");
      await until(() => processGone(info.pid), "the cleaner has exited");
      assert.equal(shmExists(peer.name), true);
      assert.equal(peer.view()[0], 7, "the child wrote through the opened object");
    } finally {
      killLeft();
      if (shmExists(name)) SharedMemory.unlink(name);
    }
  });

  test(`${rt.name} child killed: a name re-created by someone else is never removed`, {
    skip,
  }, async () => {
    const name = uniqueName("recreated");
    let info: Ready | undefined;
    try {
      const running = start(child, ["hold", name]);
      info = parseReady(await running.ready);
      SharedMemory.unlink(name);
      using again = SharedMemory.create({ name, size: 8192 });
      again.view()[0] = 9;
      process.kill(running.process.pid!, "SIGKILL");
      await running.exited;
      // The segment's removal shows the cleaner ran its list; then it exits.
      await until(() => !sysvExists(info!.sysv!), "the cleaner has run");
      await until(() => processGone(info!.pid), "the cleaner has exited");
      assert.equal(shmExists(name), true, "the new object under the old name stays");
      assert.equal(again.unlink(), true, "and it is still ours");
    } finally {
      killLeft();
      if (shmExists(name)) SharedMemory.unlink(name);
      removeSegment(info?.sysv);
      removeSegment(info?.kept);
    }
  });

  test(`${rt.name} removeOnExit at a normal end: the created segment goes, an opened one stays`, {
    skip,
  }, async () => {
    const key = 0x5348_c000 + (process.pid % 0x1000);
    const parents = SystemVSegment.create(4096, { key, exclusive: false });
    segments.add(parents.id);
    let info: Ready | undefined;
    try {
      const running = start(child, ["sysv-exit", "-", String(key)]);
      info = parseReady(await running.ready);
      assert.equal(info.openedCreated, false, "the child opened the parent's segment");
      const result = await running.exited;
      assert.equal(result.code, 0, result.stderr);
      await until(() => !sysvExists(info!.sysv!), "the created segment is removed");
      await until(() => processGone(info!.pid), "the cleaner has exited");
      assert.equal(sysvExists(parents.id), true, "a segment the child only opened stays");
    } finally {
      killLeft();
      removeSegment(info?.sysv);
      removeSegment(parents.id);
    }
  });

  test(
    `${rt.name} child killed with many objects, some disposed and one long-named: exactly the live ones are removed`,
    { skip },
    async () => {
      const name = uniqueName("many");
      let info: Ready | undefined;
      let again: SharedMemory | undefined;
      try {
        const running = start(child, ["many", name]);
        info = parseReady(await running.ready);
        assert.equal(info.live!.length, 75 + 20 + 1);
        for (const live of info.live!) assert.equal(shmExists(live), true, live);
        for (const gone of info.gone!) assert.equal(shmExists(gone), false, gone);
        // Someone else re-creates a name the child had registered and disposed.
        again = SharedMemory.create({ name: info.gone![0]!, size: 4096 });
        process.kill(running.process.pid!, "SIGKILL");
        await running.exited;
        await until(
          () => info!.live!.every((live) => !shmExists(live)),
          "every live object is removed",
        );
        await until(() => processGone(info!.pid), "the cleaner has exited");
        assert.equal(shmExists(again.name), true, "the re-created object stays");
      } finally {
        killLeft();
        again?.[Symbol.dispose]();
        for (const live of info?.live ?? []) if (shmExists(live)) SharedMemory.unlink(live);
      }
    },
  );

  test(
    `${rt.name} cleaner killed while its creator lives: a new one starts and knows every object`,
    {
      skip,
    },
    async () => {
      const first = uniqueName("restart-first");
      const second = uniqueName("restart-second");
      try {
        const running = start(child, ["restart", first, second]);
        const info = parseReady(await running.ready);
        assert.ok(info.pid > 0 && info.pid !== info.old, "another cleaner runs");
        assert.equal(info.reaped, true, "the dead cleaner was reaped, not left a zombie");
        process.kill(running.process.pid!, "SIGKILL");
        await running.exited;
        await until(
          () => !shmExists(first),
          "the object registered with the dead cleaner is removed",
        );
        await until(
          () => !shmExists(second),
          "the object registered with the new cleaner is removed",
        );
        await until(() => processGone(info.pid), "the new cleaner has exited");
      } finally {
        killLeft();
        for (const name of [first, second]) if (shmExists(name)) SharedMemory.unlink(name);
      }
    },
  );

  test(
    `${rt.name} Worker that closes itself: its object and its cleaner go while the process lives`,
    {
      skip: skip ||
        (rt.name === "deno" &&
          "Deno fires no event at a Worker's end: removal waits for the process"),
    },
    async () => {
      const name = uniqueName("worker-close");
      try {
        const running = start(child, ["worker-close", name]);
        const info = parseReady(await running.ready);
        assert.ok(info.workerPid! > 0);
        await until(() => !shmExists(name), "the Worker's object is removed");
        await until(() => processGone(info.workerPid!), "the Worker's cleaner has exited");
        const p = running.process;
        assert.ok(p.exitCode === null && p.signalCode === null, "the process still runs");
      } finally {
        killLeft();
        if (shmExists(name)) SharedMemory.unlink(name);
      }
    },
  );

  for (const mode of ["worker", "worker-exit"] as const) {
    const how = mode === "worker"
      ? "the process is killed with SIGKILL"
      : "the process ends normally";
    test(`${rt.name} object created in a Worker is removed when ${how}`, { skip }, async () => {
      const name = uniqueName(mode);
      try {
        const running = start(child, [mode, name]);
        const info = parseReady(await running.ready);
        assert.ok(info.workerPid! > 0, "the Worker's copy of the library started a cleaner");
        if (mode === "worker") process.kill(running.process.pid!, "SIGKILL");
        const result = await running.exited;
        if (mode === "worker-exit") assert.equal(result.code, 0, result.stderr);
        await until(() => !shmExists(name), "the Worker's object is removed");
        await until(() => processGone(info.workerPid!), "the Worker's cleaner has exited");
      } finally {
        killLeft();
        if (shmExists(name)) SharedMemory.unlink(name);
      }
    });
  }
}

test("removeOnExit must be a boolean", () => {
  const before = sysvOwnedBy(process.pid);
  assert.throws(
    () => SystemVSegment.create(4096, { removeOnExit: "yes" as never }),
    TypeError,
  );
  assert.equal(sysvOwnedBy(process.pid), before, "nothing was created");
});

test("the ledger line of a POSIX object is written byte for byte as the pipe's text", () => {
  const ledger = Ledger.create();
  if (ledger === undefined) return; // no memfd here: every record takes the pipe
  try {
    const longest = "/" + "n".repeat(Math.floor((LEDGER_LINE - 2 - "p 9 9 ".length) / 4));
    const records = [
      { dev: 0, ino: 1, name: "/a" },
      { dev: 64769, ino: 2 ** 53 - 1, name: "/shmkit-0123456789abcdef" },
      { dev: 27, ino: 1234567, name: "/with space\tab\t%x\nnewline~\x7f" },
      { dev: 9, ino: 9, name: longest },
    ];
    const lines = records.map((r) => ledger.addShm(r.dev, r.ino, r.name));
    assert.ok(lines.every((line) => line >= 0), `all fit: ${lines}`);
    const text = readFileSync(`/proc/self/fd/${ledger.fd}`, "latin1");
    records.forEach((r, k) => {
      const line = text.slice(lines[k]! * LEDGER_LINE, (lines[k]! + 1) * LEDGER_LINE);
      const fields = fieldsOf({ kind: "shm", ...r });
      assert.equal(line, ("+" + fields).padEnd(LEDGER_LINE - 1, " ") + "\n", r.name);
    });
    // One byte more than fits, a name that is not ASCII, an identity that is not an
    // integer: no line (the caller sends those down the pipe, escaped as UTF-8).
    assert.equal(ledger.addShm(9, 9, longest + "n"), -1);
    assert.equal(ledger.addShm(1, 2, "/caf\u00e9"), -1);
    assert.equal(ledger.addShm(1.5, 2, "/x"), -1);
    assert.equal(ledger.addShm(1, -2, "/x"), -1);
    assert.equal(readFileSync(`/proc/self/fd/${ledger.fd}`, "latin1"), text, "nothing written");
  } finally {
    ledger.close();
  }
});

test("the suite leaves /dev/shm and System V as it found them", () => {
  for (const id of [...segments]) removeSegment(id);
  const left = SharedMemory.list({ prefix: PREFIX }).map((info) => info.name);
  assert.deepEqual(left, []);
});

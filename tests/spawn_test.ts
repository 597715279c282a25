/**
 * spawn(): posix_spawn children with pipes, inherited fds and hygiene
 * (signals, fds, reaping, a free event loop), bad input, and the raw layer.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { type Child, ErrnoError, Memfd, type SignalName, spawn } from "../mod.ts";
import {
  decodeWaitStatus,
  platform,
  posixSpawn,
  PosixSpawnAttributes,
  PosixSpawnFileActions,
  signalName,
  signalNumber,
  SignalSet,
  SpawnFlags,
  unsafeLibc,
  waitpid,
} from "../raw.ts";
import { PLATFORMS } from "../platform/mod.ts";
import { SIGNAL_NAMES } from "../platform/signal_names.ts";
import { cString } from "../ffi/pointer.ts";
import { reactorEngine, useTimerEngineForTesting } from "../spawn/_poll_reactor.ts";
import { checkProgramsFirstForTesting } from "../spawn/_plan.ts";
import { withoutCloseFromForTesting } from "../spawn/spawn.ts";
import { GUARDIAN_SCRIPT, guardianPidForTesting } from "../spawn/_supervise.ts";
import { type ExitStrategy, useExitStrategyForTesting } from "../spawn/_exit_watch.ts";
import { repoPath, RUNTIMES } from "./fixtures/runtimes.ts";
import { emulator, runtime, skipIf, tempDir, tick } from "./helpers.ts";

const C = platform.constants;
/** For tests that start many processes: Bun's 5 s default is too short on a loaded machine. */
const SLOW = { timeout: 120_000 };
const decoder = new TextDecoder();
const text = (bytes: Uint8Array): string => decoder.decode(bytes);

/** The fds this process has open (without the one that lists them, gone by then). */
function openFds(): number[] {
  return readdirSync("/proc/self/fd")
    .filter((fd) => existsSync(`/proc/self/fd/${fd}`))
    .map(Number)
    .sort((a, b) => a - b);
}

/** The pids of this process's children (every thread's). */
function children(): Set<number> {
  const pids = new Set<number>();
  for (const tid of readdirSync("/proc/self/task")) {
    const list = readFileSync(`/proc/self/task/${tid}/children`, "utf8").trim();
    for (const pid of list.split(/\s+/)) if (pid !== "") pids.add(Number(pid));
  }
  return pids;
}

/** The fds of another process. */
function fdsOf(pid: number): number[] {
  return readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
}

/**
 * Waits until `pid` runs `sleep`. Natively posix_spawn returns after the
 * exec; under qemu-user (vfork run as fork) it returns before the child's
 * file actions, setsid or setpgid have run.
 */
async function sleeping(pid: number): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (readFileSync(`/proc/${pid}/comm`, "utf8") === "sleep\n") return;
    await tick(5);
  }
  assert.fail(`child ${pid} never ran sleep`);
}

/**
 * The fds of a freshly started program once it has settled: `sleep` opens
 * (and closes) locale files as it starts, so a look too early can catch one.
 */
async function settledFdsOf(pid: number, expected: number[]): Promise<number[]> {
  await sleeping(pid);
  let fds = fdsOf(pid);
  for (let i = 0; i < 200 && fds.join() !== expected.join(); i++) {
    await tick(5);
    fds = fdsOf(pid);
  }
  return fds;
}

/** A /proc/<pid>/status line's value. */
function statusField(status: string, name: string): string {
  const line = status.split("\n").find((l) => l.startsWith(`${name}:`));
  assert.ok(line !== undefined, `no ${name} in status`);
  return line.slice(name.length + 1).trim();
}

/** Opens a file WITHOUT O_CLOEXEC, as careless code (or a parent) would. */
function openLeaky(path: string): number {
  const fd = unsafeLibc.open(cString(path, "path"), C.O_RDONLY, 0);
  assert.ok(fd >= 0, `open ${path}`);
  return fd;
}

/** A leaky (not close-on-exec) /dev/null at the lowest free fd from `at` up. */
function leakyAt(at: number): number {
  const fd = openLeaky("/dev/null");
  const moved = unsafeLibc.fcntl(fd, C.F_DUPFD_CLOEXEC, at);
  unsafeLibc.close(fd);
  assert.ok(moved >= at, `F_DUPFD_CLOEXEC ${at}`);
  assert.equal(unsafeLibc.fcntl(moved, C.F_SETFD, 0), 0);
  return moved;
}

/**
 * Proves `fds` would leak without shmkit's closing: a child started by the
 * raw posixSpawn, with no file actions, has them all open.
 */
async function leakWithoutHygiene(fds: readonly number[]): Promise<void> {
  const pid = posixSpawn("/bin/sleep", null, null, ["sleep", "5"], []);
  try {
    await sleeping(pid);
    const open = fdsOf(pid);
    for (const fd of fds) assert.ok(open.includes(fd), `fd ${fd} is not leaky: ${open}`);
  } finally {
    unsafeLibc.kill(pid, platform.signals.SIGKILL!);
    waitpid(pid);
  }
}

/** Everything a stream yields. */
async function collectAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function stopped(child: Child): Promise<void> {
  child.kill("SIGKILL");
  await child.status;
}

test("spawn() runs a program; output() collects stdout, stderr and the exit code", async () => {
  const child = spawn(["sh", "-c", "echo out; echo err >&2; exit 3"], {
    stdout: "pipe",
    stderr: "pipe",
  });
  assert.ok(child.pid > 0);
  const output = await child.output();
  assert.equal(text(output.stdout), "out\n");
  assert.equal(text(output.stderr), "err\n");
  assert.deepEqual(
    { code: output.code, signal: output.signal, success: output.success },
    { code: 3, signal: null, success: false },
  );
  assert.equal(child.exited, true);
  assert.deepEqual(await child.status, { code: 3, signal: null, success: false });
});

test("status: code 0 is success; a signal gives code null and the signal's name", async () => {
  assert.deepEqual(await spawn(["true"]).status, { code: 0, signal: null, success: true });
  const sleeper = spawn(["sleep", "30"]);
  assert.equal(sleeper.kill("SIGKILL"), true);
  assert.deepEqual(await sleeper.status, { code: null, signal: "SIGKILL", success: false });
  const term = spawn(["sh", "-c", "kill -TERM $$"]);
  assert.equal((await term.status).signal, "SIGTERM");
});

test("pipes: a MiB through cat's stdin and stdout, with backpressure both ways", async () => {
  const child = spawn(["cat"], { stdin: "pipe", stdout: "pipe" });
  const payload = new Uint8Array(1 << 20);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
  const writing = (async () => {
    const writer = child.stdin!.getWriter();
    for (let at = 0; at < payload.length; at += 100_000) {
      await writer.write(payload.subarray(at, at + 100_000));
    }
    await writer.close();
  })();
  const [output] = await Promise.all([child.output(), writing]);
  assert.equal(output.code, 0);
  assert.equal(output.stdout.length, payload.length);
  assert.ok(output.stdout.every((b, i) => b === payload[i]));
});

test("pipes: writing to a child that closed its stdin fails with EPIPE, not SIGPIPE", async () => {
  const child = spawn(["sh", "-c", "exec 0<&-; sleep 0.2"], { stdin: "pipe" });
  const writer = child.stdin!.getWriter();
  await tick(50);
  await assert.rejects(
    async () => {
      for (let i = 0; i < 100; i++) await writer.write(new Uint8Array(65536));
    },
    (error: unknown) => error instanceof ErrnoError && error.code === "EPIPE",
  );
  assert.equal((await child.status).code, 0);
});

test(
  "argv: arguments reach the child exactly, however often and in whatever split they come",
  SLOW,
  async () => {
    const args = async (argv: string[]): Promise<string> =>
      text(
        (await spawn(["sh", "-c", 'printf "%s|" "$@"', "sh", ...argv], { stdout: "pipe" }).output())
          .stdout,
      );
    assert.equal(await args(["a b", "c"]), "a b|c|");
    assert.equal(await args(["a b", "c"]), "a b|c|"); // the same command again
    assert.equal(await args(["a", "b", "c"]), "a|b|c|");
    assert.equal(await args(["a", "b c"]), "a|b c|");
    assert.equal(await args(["", ""]), "||");
    assert.equal(await args([""]), "|");
    assert.equal(await args(["é", "✓"]), "é|✓|");
    // More distinct commands than are kept, then the first again.
    for (let i = 0; i < 40; i++) assert.equal(await args([`n${i}`]), `n${i}|`);
    assert.equal(await args(["a b", "c"]), "a b|c|");
    // A NUL is refused even right after the same bytes came as two arguments.
    assert.equal(await args(["a", "b"]), "a|b|");
    assert.throws(() => spawn(["sh", "-c", 'printf "%s|" "$@"', "sh", "a\0b"]), /NUL/);
    assert.throws(() => spawn(["sh", 1 as never]), TypeError);
  },
);

test("no options: the same argv array changed in place runs the new arguments, bad ones still throw", async () => {
  const argv = ["sh", "-c", "exit 3"];
  assert.equal((await spawn(argv).status).code, 3);
  assert.equal((await spawn(argv).status).code, 3);
  argv[2] = "exit 4";
  assert.equal((await spawn(argv).status).code, 4);
  argv.push("sh", "extra");
  argv[2] = 'test "$1" = extra';
  assert.equal((await spawn(argv).status).code, 0);
  argv[3] = "a\0b";
  assert.throws(() => spawn(argv), /argv\[3\].*NUL/);
  argv[3] = 5 as never;
  assert.throws(() => spawn(argv), TypeError);
  assert.throws(() => spawn([""]), RangeError);
});

test("no options: each child gets the environment of the moment, never SHMKIT_FDS", async () => {
  const sees = async (expected: string): Promise<number | null> =>
    (await spawn([
      "sh",
      "-c",
      'test "${SHMKIT_SPAWN_PLAIN-unset}|${SHMKIT_FDS-unset}" = "$1"',
      "sh",
      expected,
    ]).status).code;
  try {
    assert.equal(await sees("unset|unset"), 0);
    process.env.SHMKIT_SPAWN_PLAIN = "one";
    assert.equal(await sees("one|unset"), 0);
    process.env.SHMKIT_FDS = "stale=3";
    process.env.SHMKIT_SPAWN_PLAIN = "two";
    assert.equal(await sees("two|unset"), 0);
    assert.equal(await sees("two|unset"), 0);
    delete process.env.SHMKIT_SPAWN_PLAIN;
    assert.equal(await sees("unset|unset"), 0);
  } finally {
    delete process.env.SHMKIT_SPAWN_PLAIN;
    delete process.env.SHMKIT_FDS;
  }
});

test("env: every change to the environment between spawns reaches the next child", async () => {
  const show = ["sh", "-c", 'printf "%s" "${SHMKIT_SPAWN_CHANGE-unset}"'];
  const seen = async (): Promise<string> =>
    text((await spawn(show, { stdout: "pipe" }).output()).stdout);
  try {
    assert.equal(await seen(), "unset");
    assert.equal(await seen(), "unset"); // the same environment twice
    process.env.SHMKIT_SPAWN_CHANGE = "one";
    assert.equal(await seen(), "one");
    process.env.SHMKIT_SPAWN_CHANGE = "two"; // same names, another value
    assert.equal(await seen(), "two");
    process.env.SHMKIT_SPAWN_CHANGE = "";
    assert.equal(await seen(), "");
    delete process.env.SHMKIT_SPAWN_CHANGE;
    assert.equal(await seen(), "unset");
  } finally {
    delete process.env.SHMKIT_SPAWN_CHANGE;
  }
});

test("env: the current environment by default, env merged on top, clearEnv starts empty", async () => {
  process.env.SHMKIT_SPAWN_TEST = "inherited";
  try {
    const show = ["sh", "-c", 'printf "%s|%s" "$SHMKIT_SPAWN_TEST" "$EXTRA"'];
    const inherited = await spawn(show, { stdout: "pipe" }).output();
    assert.equal(text(inherited.stdout), "inherited|");
    const merged = await spawn(show, { stdout: "pipe", env: { EXTRA: "a b=c" } }).output();
    assert.equal(text(merged.stdout), "inherited|a b=c");
    const cleared = await spawn(["/usr/bin/env"], {
      stdout: "pipe",
      clearEnv: true,
      env: { ONLY: "1" },
    }).output();
    assert.equal(text(cleared.stdout), "ONLY=1\n");
  } finally {
    delete process.env.SHMKIT_SPAWN_TEST;
  }
});

test("env: an SHMKIT_FDS in this process's environment is not passed on unless env sets it", async () => {
  process.env.SHMKIT_FDS = "stale=3";
  try {
    const show = ["sh", "-c", 'printf "%s|%s" "${SHMKIT_FDS-unset}" "${PATH:+path}"'];
    assert.equal(text((await spawn(show, { stdout: "pipe" }).output()).stdout), "unset|path");
    const merged = await spawn(show, { stdout: "pipe", env: { OTHER: "1" } }).output();
    assert.equal(text(merged.stdout), "unset|path");
    const given = await spawn(show, { stdout: "pipe", env: { SHMKIT_FDS: "mine=4" } }).output();
    assert.equal(text(given.stdout), "mine=4|path");
  } finally {
    delete process.env.SHMKIT_FDS;
  }
});

test("cwd: the child runs in the given directory", async () => {
  const dir = tempDir();
  try {
    const output = await spawn(["pwd", "-P"], { cwd: dir.path, stdout: "pipe" }).output();
    assert.equal(
      text(output.stdout).trim(),
      execFileSync("realpath", [dir.path], { encoding: "utf8" }).trim(),
    );
  } finally {
    dir.remove();
  }
});

test("stdio: 'null' gives /dev/null, an fd number gives that fd", async () => {
  const dir = tempDir();
  try {
    const path = join(dir.path, "out.txt");
    writeFileSync(path, "");
    const fd = unsafeLibc.open(cString(path, "path"), C.O_WRONLY | C.O_CLOEXEC, 0);
    assert.ok(fd >= 0);
    try {
      const child = spawn(["sh", "-c", "cat; echo to-file"], { stdin: "null", stdout: fd });
      assert.equal((await child.status).code, 0);
    } finally {
      unsafeLibc.close(fd);
    }
    assert.equal(readFileSync(path, "utf8"), "to-file\n");
    const nulls = spawn(["sleep", "5"], { stdin: "null", stdout: "null", stderr: "null" });
    try {
      await sleeping(nulls.pid);
      for (const target of [0, 1, 2]) {
        assert.equal(readlinkSync(`/proc/${nulls.pid}/fd/${target}`), "/dev/null");
      }
    } finally {
      await stopped(nulls);
    }
  } finally {
    dir.remove();
  }
});

test("hygiene: the child starts with default signal dispositions and an empty mask", async () => {
  const own = readFileSync("/proc/self/status", "utf8");
  console.log(`this ${runtime} process: SigIgn ${statusField(own, "SigIgn")}`);
  const output = await spawn(["cat", "/proc/self/status"], { stdout: "pipe" }).output();
  const status = text(output.stdout);
  let ignored = BigInt(`0x${statusField(status, "SigIgn")}`);
  if (emulator === "qemu-user") {
    // qemu-user keeps host signals 32 and 33 for the host's glibc: a guest
    // can't reset them, so an ignored 32 or 33 from the runner passes through.
    ignored &= ~0x180000000n;
  }
  assert.equal(ignored, 0n, `SigIgn ${statusField(status, "SigIgn")}`);
  assert.match(statusField(status, "SigBlk"), /^0+$/);
});

test("hygiene: only fds 0 to 2 and the named ones reach the child, leaky fds included", async () => {
  const leaky = openLeaky("/dev/null");
  using memory = Memfd.create({ name: "spawn-named", size: 4096 });
  try {
    const child = spawn(["sleep", "5"], { fds: { 3: memory } });
    try {
      assert.deepEqual(await settledFdsOf(child.pid, [0, 1, 2, 3]), [0, 1, 2, 3]);
      assert.match(readlinkSync(`/proc/${child.pid}/fd/3`), /^\/memfd:spawn-named/);
    } finally {
      await stopped(child);
    }
    // Gaps between named fds are closed too, even when this process has them open.
    const gappy = spawn(["sleep", "5"], { fds: { 5: memory, 9: leaky } });
    try {
      assert.deepEqual(await settledFdsOf(gappy.pid, [0, 1, 2, 5, 9]), [0, 1, 2, 5, 9]);
      assert.equal(readlinkSync(`/proc/${gappy.pid}/fd/9`), "/dev/null");
    } finally {
      await stopped(gappy);
    }
  } finally {
    unsafeLibc.close(leaky);
  }
});

for (const way of ["closefrom", "a close per listed fd"] as const) {
  const setUp = (): () => void => way === "closefrom" ? () => {} : withoutCloseFromForTesting();

  test(`hygiene (${way}): stdio marked close-on-exec here (as Node marks it) still reaches the child`, async () => {
    const before = [0, 1, 2].map((fd) => unsafeLibc.fcntl(fd, C.F_GETFD, 0));
    const restore = setUp();
    try {
      // Each subset of 0-2 close-on-exec: the child must get all three either way.
      for (const mask of [0b001, 0b010, 0b100, 0b111, 0b000]) {
        for (let fd = 0; fd <= 2; fd++) {
          const on = (mask & (1 << fd)) !== 0;
          assert.equal(unsafeLibc.fcntl(fd, C.F_SETFD, on ? C.FD_CLOEXEC : 0), 0);
        }
        const child = spawn(["sleep", "5"]);
        try {
          assert.deepEqual(await settledFdsOf(child.pid, [0, 1, 2]), [0, 1, 2], `mask ${mask}`);
        } finally {
          await stopped(child);
        }
      }
    } finally {
      restore();
      before.forEach((flags, fd) => unsafeLibc.fcntl(fd, C.F_SETFD, flags));
    }
  });

  test(`hygiene (${way}): a plain spawn() gives the child fds 0 to 2 only, whatever leaky fds are open`, async () => {
    const low = openLeaky("/dev/null");
    const high = leakyAt(low + 150);
    const restore = setUp();
    try {
      await leakWithoutHygiene([low, high]);
      const child = spawn(["sleep", "5"]);
      try {
        assert.deepEqual(await settledFdsOf(child.pid, [0, 1, 2]), [0, 1, 2]);
      } finally {
        await stopped(child);
      }
    } finally {
      restore();
      unsafeLibc.close(low);
      unsafeLibc.close(high);
    }
  });

  test(`hygiene (${way}): a leaky fd in a gap between named fds, and one above them, stay out`, async () => {
    const gap = leakyAt(120);
    const above = leakyAt(gap + 60);
    using a = Memfd.create({ name: "gap-below", size: 4096 });
    using b = Memfd.create({ name: "gap-above", size: 4096 });
    const restore = setUp();
    try {
      await leakWithoutHygiene([gap, above]);
      const child = spawn(["sleep", "5"], { fds: { [gap - 2]: a, [gap + 2]: b } });
      try {
        const expected = [0, 1, 2, gap - 2, gap + 2];
        assert.deepEqual(await settledFdsOf(child.pid, expected), expected);
        assert.match(readlinkSync(`/proc/${child.pid}/fd/${gap - 2}`), /^\/memfd:gap-below/);
        assert.match(readlinkSync(`/proc/${child.pid}/fd/${gap + 2}`), /^\/memfd:gap-above/);
      } finally {
        await stopped(child);
      }
    } finally {
      restore();
      unsafeLibc.close(gap);
      unsafeLibc.close(above);
    }
  });
}

test("fds whose numbers are also targets are moved first, so a swap works", async () => {
  using a = Memfd.create({ name: "swap-a", size: 4096 });
  using b = Memfd.create({ name: "swap-b", size: 4096 });
  const low = unsafeLibc.fcntl(a.fd, C.F_DUPFD_CLOEXEC, 100);
  const high = unsafeLibc.fcntl(b.fd, C.F_DUPFD_CLOEXEC, low + 1);
  try {
    const child = spawn(["sleep", "5"], { fds: { [low]: high, [high]: low } });
    try {
      await sleeping(child.pid);
      assert.match(readlinkSync(`/proc/${child.pid}/fd/${low}`), /^\/memfd:swap-b/);
      assert.match(readlinkSync(`/proc/${child.pid}/fd/${high}`), /^\/memfd:swap-a/);
    } finally {
      await stopped(child);
    }
    // An fd handed over at its own number (it is O_CLOEXEC here) reaches the child too.
    const same = spawn(["sleep", "5"], { fds: { [high]: high } });
    try {
      await sleeping(same.pid);
      assert.match(readlinkSync(`/proc/${same.pid}/fd/${high}`), /^\/memfd:swap-b/);
    } finally {
      await stopped(same);
    }
  } finally {
    unsafeLibc.close(low);
    unsafeLibc.close(high);
  }
});

test("a region handed over as fd 3 shows the child what this process wrote", async () => {
  using memory = Memfd.create({ size: 4096 });
  memory.view().set(new TextEncoder().encode("hello"));
  const output = await spawn(["sh", "-c", "head -c 5 <&3"], { fds: { 3: memory }, stdout: "pipe" })
    .output();
  assert.equal(text(output.stdout), "hello");
});

test("a missing or non-executable program is an ErrnoError from spawn(), and nothing is left", async () => {
  await spawn(["true"]).status; // starts the waiter, whose fds stay
  const fdsBefore = openFds();
  const childrenBefore = children();
  assert.throws(() => spawn(["/no/such/program"]), (error: unknown) => {
    assert.ok(error instanceof ErrnoError);
    assert.equal(error.code, "ENOENT");
    assert.equal(error.syscall, "posix_spawn");
    assert.equal(error.path, "/no/such/program");
    return true;
  });
  assert.throws(() => spawn(["shmkit-no-such-program"]), (error: unknown) => {
    assert.ok(error instanceof ErrnoError);
    assert.equal(error.code, "ENOENT");
    assert.equal(error.syscall, "posix_spawnp");
    assert.equal(error.path, "shmkit-no-such-program");
    return true;
  });
  const dir = tempDir();
  try {
    const script = join(dir.path, "not-executable.sh");
    writeFileSync(script, "#!/bin/sh\nexit 0\n");
    chmodSync(script, 0o644);
    assert.throws(
      () => spawn([script], { stdout: "pipe" }),
      (error: unknown) => error instanceof ErrnoError && error.code === "EACCES",
    );
  } finally {
    dir.remove();
  }
  assert.deepEqual(openFds(), fdsBefore);
  assert.deepEqual(children(), childrenBefore);
});

test("where exec failures go unreported (qemu-user), programs are checked first", async () => {
  const restore = checkProgramsFirstForTesting();
  const dir = tempDir();
  try {
    assert.throws(
      () => spawn(["/no/such/program"]),
      (e: unknown) => e instanceof ErrnoError && e.code === "ENOENT" && e.syscall === "posix_spawn",
    );
    assert.throws(
      () => spawn(["shmkit-no-such-program"]),
      (e: unknown) =>
        e instanceof ErrnoError && e.code === "ENOENT" && e.syscall === "posix_spawnp",
    );
    writeFileSync(join(dir.path, "plain.sh"), "#!/bin/sh\nexit 4\n");
    assert.throws(
      () => spawn(["./plain.sh"], { cwd: dir.path }),
      (e: unknown) => e instanceof ErrnoError && e.code === "EACCES",
    );
    chmodSync(join(dir.path, "plain.sh"), 0o755);
    assert.equal((await spawn(["./plain.sh"], { cwd: dir.path }).status).code, 4);
    assert.equal((await spawn(["true"]).status).code, 0);
  } finally {
    restore();
    dir.remove();
  }
});

test("every child is reaped: after status, waitpid says ECHILD; an unawaited child too", async () => {
  const child = spawn(["true"]);
  await child.status;
  assert.throws(
    () => waitpid(child.pid, C.WNOHANG),
    (e: unknown) => (e as ErrnoError).code === "ECHILD",
  );

  const forgotten = spawn(["true"]);
  for (let i = 0; i < 5000 && !forgotten.exited; i++) await tick(1);
  assert.equal(forgotten.exited, true);
  assert.equal(children().has(forgotten.pid), false);
  assert.throws(
    () => waitpid(forgotten.pid, C.WNOHANG),
    (e: unknown) => (e as ErrnoError).code === "ECHILD",
  );
});

test("a child reaped by someone else: status rejects with ECHILD, kill() sends nothing", async () => {
  const child = spawn(["sleep", "0.05"]);
  assert.equal(waitpid(child.pid).pid, child.pid); // blocks this thread for 50 ms
  await assert.rejects(child.status, (error: unknown) => {
    assert.ok(error instanceof ErrnoError);
    assert.equal(error.code, "ECHILD");
    assert.equal(error.syscall, "waitpid");
    return true;
  });
  assert.equal(child.exited, true);
  assert.equal(child.kill("SIGKILL"), false);
});

test("a child reaped by someone else and never awaited does not crash the process", SLOW, () => {
  const self = RUNTIMES.find((r) => r.name === runtime)!;
  const out = execFileSync(self.program, [
    ...self.prefix,
    repoPath("tests/fixtures/spawn_unawaited_echild.ts"),
  ], { encoding: "utf8", timeout: 60000 }); // throws on a non-zero exit
  assert.equal(out.trim().split("\n").at(-1), "alive", out);
});

/**
 * A child that ends only after a timer callback of this process has written
 * to its stdin: if waiting blocked the event loop, it would never end (and the
 * test would hang until its limit) — an event, not a timing, proves it.
 */
async function endsOnlyIfTheLoopRuns(what: string): Promise<void> {
  const child = spawn(["sh", "-c", 'read line && test "$line" = go'], { stdin: "pipe" });
  const writer = child.stdin!.getWriter();
  setTimeout(
    () => void writer.write(new TextEncoder().encode("go\n")).then(() => writer.close()),
    0,
  );
  assert.equal((await child.status).success, true, what);
}

test("waiting never blocks the event loop: a timer callback runs while the child is awaited", async () => {
  await endsOnlyIfTheLoopRuns("default strategy");
});

test("many children at once are all reaped", SLOW, async () => {
  const all = Array.from({ length: 20 }, (_, i) => spawn(["sh", "-c", `exit ${i}`]));
  const statuses = await Promise.all(all.map((c) => c.status));
  assert.deepEqual(statuses.map((s) => s.code), Array.from({ length: 20 }, (_, i) => i));
});

test("kill(): unknown signals are refused; after the child is reaped it sends nothing", async () => {
  const child = spawn(["sleep", "30"]);
  assert.throws(() => child.kill("SIGNOPE" as SignalName), RangeError);
  assert.throws(() => child.kill(1.5), RangeError);
  assert.equal(child.kill("SIGTERM"), true);
  assert.equal((await child.status).signal, "SIGTERM");
  assert.equal(child.kill("SIGKILL"), false);
});

test("newSession and processGroup put the child in a new session or group", async () => {
  const stat = (pid: number): string[] =>
    readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "").split(" ");
  // This process's session, as a plain child inherits it (/proc/self/stat is faked under qemu).
  const plain = spawn(["sleep", "5"]);
  await sleeping(plain.pid);
  const ownSession = stat(plain.pid)[3];
  await stopped(plain);
  const session = spawn(["sleep", "5"], { newSession: true });
  try {
    await sleeping(session.pid);
    const fields = stat(session.pid);
    assert.equal(Number(fields[2]), session.pid, "process group");
    assert.equal(Number(fields[3]), session.pid, "session");
  } finally {
    await stopped(session);
  }
  const group = spawn(["sleep", "5"], { processGroup: true });
  try {
    await sleeping(group.pid);
    const fields = stat(group.pid);
    assert.equal(Number(fields[2]), group.pid);
    assert.equal(fields[3], ownSession);
  } finally {
    await stopped(group);
  }
});

test("bad input is refused before anything starts, and nothing leaks", async () => {
  await spawn(["true"]).status;
  const dir = tempDir();
  const marker = join(dir.path, "marker");
  const touch = ["sh", "-c", `touch ${marker}`];
  const closed = unsafeLibc.fcntl(0, C.F_DUPFD_CLOEXEC, 0);
  unsafeLibc.close(closed);
  const fdsBefore = openFds();
  const childrenBefore = children();
  try {
    assert.throws(() => spawn([]), RangeError);
    assert.throws(() => spawn("true" as never), TypeError);
    assert.throws(() => spawn(["sh", "-c", "a\0b"]), /argv\[2\].*NUL/);
    assert.throws(() => spawn(["sh", 1 as never]), TypeError);
    assert.throws(() => spawn(touch, { env: { A: "x\0y" } }), TypeError);
    assert.throws(() => spawn(touch, { env: { "A=B": "x" } }), RangeError);
    assert.throws(() => spawn(touch, { env: { A: 1 as never } }), TypeError);
    assert.throws(() => spawn(touch, { cwd: "/tmp\0x" }), TypeError);
    assert.throws(() => spawn(touch, { stdout: "piped" as never }), RangeError);
    assert.throws(() => spawn(touch, { fds: { x: 1 } as never }), RangeError);
    assert.throws(() => spawn(touch, { fds: { 3: {} as never } }), TypeError);
    assert.throws(() => spawn(touch, { stdout: "pipe", fds: { 1: 2 } }), /fd 1 twice/);
    assert.throws(() => spawn(touch, { newSession: true, processGroup: true }), RangeError);
    assert.throws(() => spawn(touch, { fds: { 3: closed } }), (error: unknown) => {
      assert.ok(error instanceof ErrnoError);
      assert.equal(error.code, "EBADF");
      assert.equal(error.fd, closed);
      return true;
    });
    assert.throws(
      () => spawn(touch, { cwd: join(dir.path, "missing"), stdout: "pipe" }),
      (error: unknown) => {
        assert.ok(error instanceof ErrnoError);
        assert.equal(error.code, "ENOENT");
        assert.equal(error.path, join(dir.path, "missing"));
        return true;
      },
    );
    assert.throws(
      () => spawn(touch, { cwd: marker + "-file" }),
      (error: unknown) => error instanceof ErrnoError && error.code === "ENOENT",
    );
    writeFileSync(marker + "-file", "");
    assert.throws(
      () => spawn(touch, { cwd: marker + "-file", stdin: "pipe" }),
      (error: unknown) => error instanceof ErrnoError && error.code === "ENOTDIR",
    );
    assert.equal(existsSync(marker), false, "a child ran");
    assert.deepEqual(children(), childrenBefore);
    assert.deepEqual(openFds(), fdsBefore);
  } finally {
    dir.remove();
  }
});

test("pipes: cancelling an unread stdout closes this process's end", async () => {
  await spawn(["true"]).status;
  const before = openFds();
  const child = spawn(["sleep", "0.1"], { stdout: "pipe", stderr: "pipe", stdin: "pipe" });
  const added = openFds().filter((fd) => !before.includes(fd));
  const kinds = added.map((fd) => readlinkSync(`/proc/self/fd/${fd}`).replace(/:.*/, ""));
  // Three pipe ends (and, where exits are polled, the pidfd that tells when the child ends).
  assert.equal(kinds.filter((kind) => kind === "pipe").length, 3);
  await child.stdout!.cancel();
  await child.stderr!.cancel();
  await child.stdin!.close();
  await child.status;
  assert.deepEqual(openFds(), before);
});

test(
  "pipes: 60 children's unread stdout and stderr are closed once they are reaped, without GC",
  SLOW,
  async () => {
    await spawn(["sh", "-c", "echo warm"], { stdout: "pipe" }).output(); // starts the waiter
    const before = openFds();
    const all = Array.from(
      { length: 60 },
      (_, i) =>
        spawn(["sh", "-c", `echo out ${i}; echo err ${i} >&2`], {
          stdin: "pipe",
          stdout: "pipe",
          stderr: "pipe",
        }),
    );
    assert.ok(openFds().length >= before.length + 180, "the pipes were not open");
    const statuses = await Promise.all(all.map((child) => child.status));
    assert.ok(statuses.every((s) => s.success));
    assert.deepEqual(openFds(), before);
    // What the children wrote is still there to read.
    assert.equal(text((await all[7]!.output()).stdout), "out 7\n");
    assert.equal(text(await collectAll(all[59]!.stderr!)), "err 59\n");
  },
);

test("pipes: one a grandchild still holds stays open after the reap, and dispose closes it", async () => {
  await spawn(["true"], { stdout: "pipe" }).status;
  const before = openFds();
  const child = spawn(["sh", "-c", "sleep 30 2>/dev/null & echo $! >&2; echo before"], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const grandchild = Number(text(await collectAll(child.stderr!)).trim());
  assert.ok(grandchild > 0);
  try {
    assert.equal((await child.status).code, 0);
    // stdout's writer lives on in the grandchild: no EOF yet, so the read end stays.
    assert.equal(openFds().length, before.length + 1);
    const reader = child.stdout!.getReader();
    assert.equal(text((await reader.read()).value!), "before\n");
    const pending = reader.read();
    await child[Symbol.asyncDispose]();
    assert.deepEqual(await pending, { done: true, value: undefined });
    assert.deepEqual(openFds(), before);
  } finally {
    process.kill(grandchild, "SIGKILL");
  }
});

test(
  "timeoutMs: SIGTERM when time is up, SIGKILL after graceMs for a child that ignores it",
  SLOW,
  async () => {
    const child = spawn(["sleep", "30"], { timeoutMs: 50 });
    assert.deepEqual(await child.status, { code: null, signal: "SIGTERM", success: false });
    // Time for sh to run its trap first, even under qemu (at 50 ms, SIGTERM came before it once).
    const stubborn = spawn(["sh", "-c", "trap '' TERM; exec sleep 30"], {
      timeoutMs: 2000,
      graceMs: 50,
    });
    assert.equal((await stubborn.status).signal, "SIGKILL");
    const chosen = spawn(["sleep", "30"], { timeoutMs: 50, killSignal: "SIGINT" });
    assert.equal((await chosen.status).signal, "SIGINT");
    // A child that ends in time is left alone, and so is its reused pid later.
    assert.equal((await spawn(["true"], { timeoutMs: 60_000 }).status).success, true);
  },
);

test("signal: an abort ends the child; an abort before spawn starts nothing", async () => {
  const controller = new AbortController();
  const child = spawn(["sleep", "30"], { signal: controller.signal, stdout: "pipe" });
  controller.abort();
  const output = await child.output();
  assert.deepEqual(
    { code: output.code, signal: output.signal, success: output.success },
    { code: null, signal: "SIGTERM", success: false },
  );
  // Aborting again, after the reap, sends nothing.
  assert.equal(child.kill("SIGKILL"), false);

  const childrenBefore = children();
  const fdsBefore = openFds();
  const reason = new Error("stop before starting");
  assert.throws(
    () => spawn(["sleep", "30"], { signal: AbortSignal.abort(reason), stdout: "pipe" }),
    (error: unknown) => error === reason,
  );
  assert.throws(
    () => spawn(["sleep", "30"], { signal: AbortSignal.abort() }),
    (error: unknown) => (error as Error).name === "AbortError",
  );
  assert.deepEqual(children(), childrenBefore);
  assert.deepEqual(openFds(), fdsBefore);
});

test("supervision options are checked before anything starts", () => {
  const childrenBefore = children();
  assert.throws(() => spawn(["true"], { timeoutMs: 0 }), RangeError);
  assert.throws(() => spawn(["true"], { timeoutMs: Number.NaN }), RangeError);
  assert.throws(() => spawn(["true"], { timeoutMs: "5" as never }), TypeError);
  assert.throws(() => spawn(["true"], { graceMs: -1 }), RangeError);
  assert.throws(() => spawn(["true"], { killSignal: "SIGNOPE" as SignalName }), RangeError);
  assert.throws(() => spawn(["true"], { killOnExit: "yes" as never }), TypeError);
  assert.throws(() => spawn(["true"], { signal: {} as never }), TypeError);
  assert.deepEqual(children(), childrenBefore);
});

test("the killOnExit guardian signals exactly the pids still listed at EOF", async () => {
  // `kill` as a function that prints what it would do.
  const guardian = spawn(["sh", "-c", `kill() { echo "$@"; }\n${GUARDIAN_SCRIPT}`], {
    stdin: "pipe",
    stdout: "pipe",
  });
  const writer = guardian.stdin!.getWriter();
  await writer.write(
    new TextEncoder().encode("+ 1 15\n+ 12 9\n+ 123 15\n- 12\n+ 1234 2\n- 1\n- 99\n"),
  );
  await writer.close();
  const output = await guardian.output();
  assert.equal(text(output.stdout), "-15 123\n-2 1234\n");
});

test(
  "killOnExit: one guardian serves every child, and a guardian killed is replaced",
  SLOW,
  async () => {
    const a = spawn(["sleep", "30"], { killOnExit: true });
    const b = spawn(["sleep", "30"], { killOnExit: true });
    const guardian = guardianPidForTesting();
    assert.ok(guardian !== undefined && children().has(guardian));
    try {
      process.kill(guardian, "SIGKILL");
      for (let i = 0; i < 2000 && guardianPidForTesting() === guardian; i++) await tick(5);
      const replacement = guardianPidForTesting();
      assert.ok(replacement !== undefined && replacement !== guardian);
      // Running (not a zombie), once its exec is through.
      for (
        let i = 0;
        i < 400 && readFileSync(`/proc/${replacement}/comm`, "utf8") !== "sh\n";
        i++
      ) {
        await tick(5);
      }
      assert.match(readFileSync(`/proc/${replacement}/stat`, "utf8"), /^\d+ \(sh\) [RS] /);
    } finally {
      await stopped(a);
      await stopped(b);
    }
  },
);

test("raw layer: file actions and attributes own their structs; posixSpawn + waitpid", () => {
  const dir = tempDir();
  try {
    const path = join(dir.path, "raw.txt");
    const actions = new PosixSpawnFileActions();
    actions.addOpen(1, path, C.O_WRONLY | C.O_CREAT | C.O_TRUNC, 0o600).addDup2(1, 2);
    if (PosixSpawnFileActions.canChdir) actions.addChdir(dir.path);
    if (PosixSpawnFileActions.canCloseFrom) actions.addCloseFrom(3);
    const attributes = new PosixSpawnAttributes()
      .setSigMask(SignalSet.empty())
      .setSigDefault(SignalSet.every())
      .setFlags(C.POSIX_SPAWN_SETSIGMASK | C.POSIX_SPAWN_SETSIGDEF);
    const pid = posixSpawn("/bin/sh", actions, attributes, ["sh", "-c", "pwd -P; exit 7"], []);
    const { pid: reaped, status } = waitpid(pid);
    assert.equal(reaped, pid);
    assert.equal(decodeWaitStatus(status).code, 7);
    if (PosixSpawnFileActions.canChdir) {
      assert.equal(
        readFileSync(path, "utf8").trim(),
        execFileSync("realpath", [dir.path], { encoding: "utf8" }).trim(),
      );
    }
    actions.destroy();
    actions.destroy();
    attributes[Symbol.dispose]();
    assert.equal(actions.destroyed, true);
    assert.throws(() => actions.addClose(5), /destroyed/);
    assert.throws(() => attributes.setFlags(0), /destroyed/);
    assert.throws(() => posixSpawn("/bin/true", actions, null, ["true"], []), /destroyed/);
    assert.throws(() => new PosixSpawnAttributes().setFlags(-1), RangeError);
  } finally {
    dir.remove();
  }
});

test("raw layer: signals by name, wait statuses decoded as the W* macros do", () => {
  assert.equal(signalNumber("SIGKILL"), 9);
  assert.equal(signalName(platform.signals.SIGTERM!), "SIGTERM");
  assert.equal(signalName(platform.signals.SIGCHLD!), "SIGCHLD");
  assert.throws(() => signalNumber("SIGFOO" as SignalName), RangeError);
  assert.throws(() => SignalSet.empty().add("SIGFOO" as SignalName), RangeError);
  assert.deepEqual(decodeWaitStatus(3 << 8), {
    code: 3,
    signal: null,
    stopped: false,
    success: false,
    coreDumped: false,
  });
  assert.equal(decodeWaitStatus(0).success, true);
  assert.equal(decodeWaitStatus(platform.signals.SIGKILL!).signal, "SIGKILL");
  assert.equal(decodeWaitStatus(platform.signals.SIGSEGV! | 0x80).coreDumped, true);
  const stoppedStatus = decodeWaitStatus((platform.signals.SIGSTOP! << 8) | 0x7f);
  assert.equal(stoppedStatus.stopped, true);
  assert.equal(stoppedStatus.signal, "SIGSTOP");
});

test("signal names: every table's names are in the SignalName list; other platforms' are refused", () => {
  // The generated list and the generated union agree (checked by the type checker).
  const listed: readonly SignalName[] = SIGNAL_NAMES;
  const unlisted: [Exclude<SignalName, typeof SIGNAL_NAMES[number]>] extends [never] ? true
    : false = true;
  assert.ok(unlisted && listed.length > 0);
  const known = new Set<string>(SIGNAL_NAMES);
  for (const table of PLATFORMS) {
    for (const name of Object.keys(table.signals)) {
      assert.ok(known.has(name), `${table.os}-${table.arch}: ${name} is not a SignalName`);
    }
  }
  const elsewhere = SIGNAL_NAMES.filter((name) => platform.signals[name] === undefined);
  assert.ok(elsewhere.length > 0, "every table has the same signals: the union test is moot");
  for (const name of elsewhere) assert.throws(() => signalNumber(name), RangeError, name);
});

test("SpawnFlags: a flag the platform lacks is undefined, never -1", () => {
  for (const [name, value] of Object.entries(SpawnFlags)) {
    assert.ok(value === undefined || (Number.isInteger(value) && value > 0), `${name}: ${value}`);
  }
  // glibc 2.26+ has SETSID; newSession is refused with an Error where it is undefined.
  assert.equal(SpawnFlags.SETSID, C.POSIX_SPAWN_SETSID);
  const darwin = PLATFORMS.find((p) => p.os === "darwin")!;
  assert.equal(darwin.constants.POSIX_SPAWN_USEVFORK, -1, "the tables mark a missing flag -1");
  assert.throws(() => new PosixSpawnAttributes().setFlags(-1), RangeError);
});

test("unref(): a running child does not keep this process alive; unawaited children end cleanly", () => {
  const self = RUNTIMES.find((r) => r.name === runtime)!;
  const out = execFileSync(self.program, [
    ...self.prefix,
    repoPath("tests/fixtures/spawn_unref.ts"),
  ], {
    encoding: "utf8",
    timeout: 20000,
  });
  const pid = Number(/sleeper (\d+)/.exec(out)?.[1]);
  assert.ok(pid > 0, out);
  // The fixture has exited while its unref'd child still sleeps.
  assert.equal(existsSync(`/proc/${pid}`), true, "the unref'd child is gone already");
  process.kill(pid, "SIGKILL");
  assert.match(out, /done/);
});

test("a closed stdio fd is not passed on, and spawning still works (inherited stdio)", SLOW, () => {
  const self = RUNTIMES.find((r) => r.name === runtime)!;
  const out = execFileSync(self.program, [
    ...self.prefix,
    repoPath("tests/fixtures/spawn_closed_stdin.ts"),
  ], { encoding: "utf8", timeout: 60000 });
  const lines = out.trim().split("\n");
  assert.deepEqual(JSON.parse(lines.at(-1)!), { codes: [0, 0] }, out);
  const views = lines.slice(0, -1);
  assert.equal(views.length, 4, out);
  // Each child has an fd 0 exactly when this process had one as it spawned.
  for (let i = 0; i < 4; i += 2) {
    assert.equal(views[i + 1]!.replace("child:", ""), views[i]!.replace("parent:", ""), out);
  }
});

test(
  "Bun: children's exits are waited for by the native thread, compiled in-process with no C compiler on PATH",
  { ...SLOW, skip: skipIf(runtime !== "bun", "the native waiter thread is Bun's (bun:ffi cc)") },
  () => {
    const self = RUNTIMES.find((r) => r.name === runtime)!;
    const out = execFileSync(self.program, [
      ...self.prefix,
      repoPath("tests/fixtures/spawn_native_waiter.ts"),
    ], { encoding: "utf8", timeout: 60000, env: { ...process.env, PATH: "/nonexistent" } });
    assert.deepEqual(JSON.parse(out.trim().split("\n").at(-1)!), { engine: "bun-native", code: 0 });
  },
);

test(
  "exiting while the reactor's waiter is delivering readiness ends the process cleanly",
  SLOW,
  () => {
    const self = RUNTIMES.find((r) => r.name === runtime)!;
    // Bun: a native thread calls into the JS thread; exit must not crash a call in flight.
    for (let i = 0; i < (runtime === "bun" ? 8 : 2); i++) {
      execFileSync(self.program, [
        ...self.prefix,
        repoPath("tests/fixtures/spawn_exit_race.ts"),
        String(i),
      ], { encoding: "utf8", timeout: 60000 }); // throws on a non-zero exit or a signal
    }
  },
);

test(
  "the first child of a fresh process is noticed by its SIGCHLD, not by the once-a-second reap",
  SLOW,
  () => {
    const self = RUNTIMES.find((r) => r.name === runtime)!;
    // A few fresh processes: the lost-signal race it guards against hit most first spawns.
    for (let i = 0; i < 3; i++) {
      const out = execFileSync(self.program, [
        ...self.prefix,
        repoPath("tests/fixtures/spawn_first_child.ts"),
      ], { encoding: "utf8", timeout: 60000 });
      const counts = JSON.parse(out.trim().split("\n").at(-1)!);
      assert.equal(counts.code, 0, out);
      assert.equal(counts.tick, 0, `reaped by the keep-alive tick: ${out}`);
      // Bun notices ends by pidfd, not by signal.
      assert.equal(counts.signal, runtime === "bun" ? 0 : 1, out);
    }
  },
);

test("exit() with a child's pipe and a futex wait pending ends the process at once", SLOW, () => {
  const self = RUNTIMES.find((r) => r.name === runtime)!;
  let out = "";
  try {
    // A hang guard well below the sleeper's 60 s: a poll left blocked would last that long.
    out = execFileSync(self.program, [
      ...self.prefix,
      repoPath("tests/fixtures/spawn_exit_pending.ts"),
    ], { encoding: "utf8", timeout: 30000 });
  } finally {
    const pid = Number(/sleeper (\d+)/.exec(out)?.[1]);
    if (pid > 0) process.kill(pid, "SIGKILL");
  }
  assert.match(out, /exiting/);
});

test("every way of noticing a child's end reaps it and reports its status", SLOW, async () => {
  const ways: ExitStrategy[] = runtime === "bun"
    ? ["pidfd", "timer"]
    : ["signal", "pidfd", "timer"];
  for (const way of ways) {
    const before = useExitStrategyForTesting(way);
    try {
      assert.equal((await spawn(["sh", "-c", "exit 5"]).status).code, 5, way);
      const sleeper = spawn(["sleep", "30"]);
      sleeper.kill("SIGKILL");
      assert.equal((await sleeper.status).signal, "SIGKILL", way);
      await endsOnlyIfTheLoopRuns(`${way}: the event loop was blocked`);
      assert.throws(
        () => waitpid(sleeper.pid, C.WNOHANG),
        (e: unknown) => (e as ErrnoError).code === "ECHILD",
      );
    } finally {
      useExitStrategyForTesting(before);
    }
  }
  if (runtime === "bun") assert.throws(() => useExitStrategyForTesting("signal"), RangeError);
});

test("the timer engine (fallback when no better wait exists) runs children and pipes too", async () => {
  console.log(`engine before: ${reactorEngine()}`);
  const restore = useTimerEngineForTesting();
  try {
    assert.equal(reactorEngine(), "timer");
    const child = spawn(["sh", "-c", "sleep 0.05; echo late"], { stdout: "pipe" });
    const output = await child.output();
    assert.equal(text(output.stdout), "late\n");
    assert.equal(output.code, 0);
  } finally {
    restore();
  }
  assert.notEqual(reactorEngine(), "timer");
});

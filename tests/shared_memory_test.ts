import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readlinkSync, rmdirSync, statfsSync, statSync } from "node:fs";
import process from "node:process";
import { ClosedError, ErrnoError, SharedMemory, type SharedMemoryCreateOptions } from "../mod.ts";
import { registerCleanup, runCleanups, setSignalCleanup, unregisterCleanup } from "../raw.ts";
import {
  closeFd,
  fchmod,
  fchown,
  fstat,
  ftruncate,
  pendingCleanups,
  platform,
  shmOpen,
  shmUnlink,
} from "../raw.ts";
import { cleanupHooks, hasCleanup } from "../shm/cleanup.ts";
import { unsafeLibc } from "../ffi/libc.ts";
import { checkShmName } from "../shm/raw.ts";
import { readCreator } from "../shm/_creator.ts";
import { collectGarbage, skipReason, tick } from "./helpers.ts";
import {
  installed,
  leftovers,
  randomHex,
  RUNTIMES,
  shmExists,
  shmSnapshot,
  startFixture,
  testName,
  track,
  usedNames,
} from "./fixtures/runtimes.ts";

const C = platform.constants;

/** SharedMemory.create, with the name recorded for the final leak check. */
function create(options: SharedMemoryCreateOptions): SharedMemory {
  return track(SharedMemory.create(options));
}
const S_IFREG = C.S_IFREG;

function expectErrno(code: string, fragment?: string): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof ErrnoError, `expected an ErrnoError, got ${error}`);
    assert.equal(error.code, code, error.message);
    if (fragment !== undefined) assert.ok(error.message.includes(fragment), error.message);
    return true;
  };
}

function expectMessage(
  type: typeof TypeError | typeof RangeError,
  fragment: string,
): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof type, `expected a ${type.name}, got ${error}`);
    assert.ok((error as Error).message.includes(fragment), (error as Error).message);
    return true;
  };
}

/** Fds of this process that point at a path. */
function fdsPointingAt(path: string): number {
  let count = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(path)) count++;
    } catch {
      // closed meanwhile (the one readdir used)
    }
  }
  return count;
}

function openFdCount(): number {
  return readdirSync("/proc/self/fd").length;
}

test("create() with defaults: random exclusive name, mode 0o600, zeroed, unlinked by using", () => {
  let name: string;
  {
    using shm = create({ size: 10000 });
    name = shm.name;
    assert.match(name, /^\/shmkit-[0-9a-f]{16}$/);
    assert.equal(shm.created, true);
    assert.equal(shm.persist, false);
    assert.equal(shm.readOnly, false);
    assert.equal(shm.byteLength, 10000);
    const info = statSync("/dev/shm" + name);
    assert.equal(info.size, 10000);
    assert.equal(info.mode & 0o7777, 0o600);
    assert.equal(info.mode & C.S_IFMT, S_IFREG);
    const bytes = shm.view();
    assert.equal(bytes.length, 10000);
    assert.ok(bytes.every((b) => b === 0));
    bytes[9999] = 9;
    assert.equal(shm.view()[9999], 9);
    assert.ok(hasCleanup(`shm:${name}`), "a created object is registered for exit cleanup");
  }
  assert.equal(shmExists(name), false, "using must unlink a created object");
  assert.equal(hasCleanup(`shm:${name}`), false);
});

test("random names across refills of the random pool: distinct, and each names its own object", () => {
  // 100 names use the pool (32 names per draw) more than three times over.
  const objects = Array.from({ length: 100 }, () => create({ size: 4096 }));
  try {
    const names = new Set(objects.map((shm) => shm.name));
    assert.equal(names.size, 100, "no name repeats");
    for (const shm of objects) {
      assert.match(shm.name, /^\/shmkit-[0-9a-f]{16}$/);
      // The C string passed to shm_open is the name reported: the path exists, same inode.
      assert.equal(statSync("/dev/shm" + shm.name).ino, statSync(`/proc/self/fd/${shm.fd}`).ino);
    }
  } finally {
    for (const shm of objects) shm[Symbol.dispose]();
  }
  for (const shm of objects) assert.equal(shmExists(shm.name), false);
});

test("space is reserved at create (blocks allocated), and reserve: false makes it sparse", () => {
  const size = 1 << 20;
  {
    using shm = create({ size });
    assert.ok(statSync("/dev/shm" + shm.name).blocks * 512 >= size);
  }
  using sparse = create({ size, reserve: false });
  assert.equal(statSync("/dev/shm" + sparse.name).blocks, 0);
  sparse.view()[0] = 1; // first touch allocates one page
  assert.ok(statSync("/dev/shm" + sparse.name).blocks > 0);
});

test("an explicit mode is applied exactly, whatever the umask", () => {
  const previous = process.umask(0o077);
  try {
    using shm = create({ name: testName("mode"), size: 4096, mode: 0o640 });
    assert.equal(statSync("/dev/shm" + shm.name).mode & 0o7777, 0o640);
    assert.equal(shm.stat().mode, 0o640);
    shm.chmod(0o600);
    assert.equal(shm.stat().mode, 0o600);
  } finally {
    process.umask(previous);
  }
});

test("stat() reports size, mode, uid and gid", () => {
  using shm = create({ size: 12345, mode: 0o604 });
  const s = shm.stat();
  assert.deepEqual(s, {
    size: 12345,
    mode: 0o604,
    uid: process.getuid!(),
    gid: process.getgid!(),
  });
  shm.chown(-1, -1);
  assert.equal(shm.stat().uid, process.getuid!());
});

test("the fd is open, close-on-exec, and the object's", () => {
  using shm = create({ size: 4096 });
  const fd = shm.fd;
  assert.ok(fd > 2);
  assert.notEqual(unsafeLibc.fcntl(fd, C.F_GETFD, 0) & C.FD_CLOEXEC, 0);
  assert.equal(readlinkSync(`/proc/self/fd/${fd}`), "/dev/shm" + shm.name);
});

test("open() attaches: both see each other's writes; size comes from fstat", () => {
  using shm = create({ name: testName("open"), size: 8192 });
  using peer = SharedMemory.open(shm.name);
  assert.equal(peer.byteLength, 8192);
  assert.equal(peer.created, false);
  shm.view(Uint32Array)[10] = 0xdeadbeef;
  assert.equal(peer.view(Uint32Array)[10], 0xdeadbeef);
  peer.dataView().setFloat64(4096, 2.5, true);
  assert.equal(shm.dataView().getFloat64(4096, true), 2.5);
});

test("open() with size maps that prefix, and refuses a smaller object before mapping", () => {
  using shm = create({ name: testName("opensize"), size: 4096 });
  {
    using prefix = SharedMemory.open(shm.name, { size: 100 });
    assert.equal(prefix.byteLength, 100);
  }
  const fds = openFdCount();
  assert.throws(
    () => SharedMemory.open(shm.name, { size: 4097 }),
    expectMessage(RangeError, "the object has 4096 bytes"),
  );
  assert.equal(openFdCount(), fds, "the refused open must not leak its fd");
});

test("open() refuses an empty object (its creator has not sized it yet)", () => {
  const name = testName("empty");
  const fd = shmOpen(name, C.O_CREAT | C.O_EXCL | C.O_RDWR, 0o600);
  try {
    assert.throws(() => SharedMemory.open(name), expectMessage(RangeError, "empty"));
  } finally {
    closeFd(fd);
    shmUnlink(name);
  }
});

test("open() refuses a name that is not a regular file (a directory in /dev/shm)", () => {
  const name = testName("dir");
  mkdirSync("/dev/shm" + name);
  try {
    // glibc turns EISDIR into EINVAL for shm_open.
    assert.throws(() => SharedMemory.open(name), expectErrno("EINVAL"));
    assert.throws(() => SharedMemory.open(name, { readOnly: true }), (error: unknown) => {
      assert.ok(error instanceof Error);
      assert.match(error.message, /not a shared memory object/);
      return true;
    });
  } finally {
    rmdirSync("/dev/shm" + name);
  }
});

test("open() of a missing name is ENOENT with the name in the message", () => {
  const name = testName("missing");
  assert.throws(() => SharedMemory.open(name), expectErrno("ENOENT", name));
  assert.throws(() => SharedMemory.open(name), (error: unknown) => {
    assert.equal((error as ErrnoError).syscall, "shm_open");
    assert.equal((error as ErrnoError).path, name);
    return true;
  });
});

test("exclusive create of an existing name is EEXIST and says how to attach instead", () => {
  using shm = create({ name: testName("exists"), size: 4096 });
  assert.throws(
    () => create({ name: shm.name, size: 4096 }),
    expectErrno("EEXIST", `SharedMemory.open("${shm.name}")`),
  );
  assert.equal(shm.view().length, 4096, "the existing object is untouched");
});

test("read-only open: writes through views stay private and never crash; untouched pages follow the peer", () => {
  using shm = create({ name: testName("ro"), size: 8192 });
  shm.view()[0] = 1;
  using ro = SharedMemory.open(shm.name, { readOnly: true });
  assert.equal(ro.readOnly, true);
  assert.equal(ro.view()[0], 1);
  ro.view()[0] = 99; // private copy of page 0
  assert.equal(ro.view()[0], 99);
  assert.equal(shm.view()[0], 1, "a read-only attach must not change the object");
  shm.view()[4096] = 7; // page 1, never written by ro
  assert.equal(ro.view()[4096], 7);
  assert.throws(() => ro.resize(16384), TypeError);
  assert.equal(shm.stat().size, 8192);
});

test("views are detached on close; use after close gives length 0 or ClosedError, never a crash", () => {
  const shm = create({ size: 4096 });
  const bytes = shm.view();
  const words = shm.view(Int32Array);
  const dv = shm.dataView();
  bytes[0] = 1;
  shm.close();
  assert.equal(bytes.length, 0);
  assert.equal(words.length, 0);
  assert.equal(bytes[0], undefined);
  bytes[0] = 5; // ignored on a detached buffer
  assert.throws(() => dv.getUint8(0), TypeError);
  assert.equal(shm.closed, true);
  assert.equal(shm.byteLength, 0);
  assert.throws(() => shm.view(), ClosedError);
  assert.throws(() => shm.fd, ClosedError);
  assert.throws(() => shm.stat(), ClosedError);
  assert.throws(() => shm.resize(8192), ClosedError);
  shm.close(); // double close: no-op
  assert.equal(shmExists(shm.name), true, "close() leaves the object");
  assert.equal(shm.unlink(), true);
});

test("resize() grows and shrinks, keeps contents, detaches old views", () => {
  using shm = create({ size: 4096 });
  using peer = SharedMemory.open(shm.name);
  const old = shm.view();
  old[100] = 42;
  shm.resize(3 * 4096 + 5);
  assert.equal(old.length, 0, "old views are detached");
  assert.equal(shm.byteLength, 3 * 4096 + 5);
  assert.equal(shm.stat().size, 3 * 4096 + 5);
  assert.equal(shm.view()[100], 42);
  shm.view()[3 * 4096 + 4] = 8;
  assert.ok(statSync("/dev/shm" + shm.name).blocks * 512 >= 3 * 4096 + 5, "growth is reserved");
  assert.equal(peer.view()[100], 42, "a peer's mapping of the first page still works");
  peer.close(); // nobody else maps it before we shrink
  shm.resize(50);
  assert.equal(shm.byteLength, 50);
  assert.equal(shm.stat().size, 50);
  assert.equal(shm.view()[49], 0);
  assert.throws(() => shm.resize(0), RangeError);
  assert.throws(() => shm.resize(1.5), RangeError);
});

/** ENOSPC (room in /dev/shm) or ENOMEM (memory left), whichever limit is lower here. */
function expectUnbacked(error: unknown): boolean {
  assert.ok(error instanceof ErrnoError, `expected an ErrnoError, got ${error}`);
  assert.ok(["ENOSPC", "ENOMEM"].includes(error.code), error.message);
  assert.match(error.message, /refused before anything was allocated/);
  return true;
}

test("resize() beyond the free space of /dev/shm is refused and keeps the old size and views", () => {
  using shm = create({ size: 4096 });
  const bytes = shm.view();
  bytes[1] = 1;
  const fs = statfsSync("/dev/shm");
  const tooBig = fs.bavail * fs.bsize + (1 << 30);
  assert.throws(() => shm.resize(tooBig), expectUnbacked);
  assert.equal(shm.stat().size, 4096);
  assert.equal(shm.byteLength, 4096);
  assert.equal(bytes[1], 1, "views survive a failed resize");
});

test("create() larger than /dev/shm's free space is refused, and no object is left", () => {
  const fs = statfsSync("/dev/shm");
  const free = fs.bavail * fs.bsize;
  const name = testName("nospace");
  assert.throws(
    () => create({ name, size: free + (1 << 30) }),
    (error: unknown) => {
      expectUnbacked(error);
      assert.equal((error as ErrnoError).syscall, "posix_fallocate");
      assert.ok((error as Error).message.includes(name), (error as Error).message);
      return true;
    },
  );
  assert.equal(shmExists(name), false);
  assert.equal(hasCleanup(`shm:${name}`), false);
});

test("unlink(): the name goes, the mapping stays; a second unlink() is a no-op returning false", () => {
  const pending = pendingCleanups();
  const shm = create({ size: 4096 });
  assert.equal(pendingCleanups(), pending + 1, "create() registers its exit cleanup");
  shm.view()[0] = 3;
  assert.equal(shm.unlink(), true);
  assert.equal(shm.unlinked, true);
  assert.equal(shmExists(shm.name), false);
  assert.equal(shm.view()[0], 3, "the mapping outlives the name");
  assert.equal(shm.unlink(), false);
  assert.equal(pendingCleanups(), pending, "unlink() drops the exit cleanup");
  assert.equal(hasCleanup(`shm:${shm.name}`), false);
  shm.close();
  shm[Symbol.dispose](); // nothing left to do
});

test("static unlink(): removes by name; a missing name is ENOENT", () => {
  const name = testName("static");
  const shm = create({ name, size: 4096 });
  shm.close();
  SharedMemory.unlink(name);
  assert.equal(shmExists(name), false);
  assert.equal(hasCleanup(`shm:${name}`), false, "nothing left to remove at exit");
  assert.throws(() => SharedMemory.unlink(name), expectErrno("ENOENT", name));
  assert.equal(shm.unlink(), false, "already gone: nothing removed");
});

test("unlink and exit cleanup never remove another object that took the same name", () => {
  const name = testName("reuse");
  const mine = create({ name, size: 4096 });
  shmUnlink(name); // someone else removes it...
  const theirs = create({ name, size: 4096, persist: true }); // ...and makes a new one
  try {
    assert.equal(mine.unlink(), false);
    assert.equal(shmExists(name), true, "the other object must survive");
    mine[Symbol.dispose]();
    assert.equal(shmExists(name), true);
  } finally {
    theirs.close();
    assert.equal(theirs.unlink(), true);
  }
});

test("dispose: persist keeps a created object; an opened object is never unlinked", () => {
  const name = testName("persist");
  {
    using shm = create({ name, size: 4096, persist: true });
    assert.equal(shm.persist, true);
    assert.equal(hasCleanup(`shm:${name}`), false, "persisted objects are not cleaned at exit");
  }
  assert.equal(shmExists(name), true);
  {
    using opened = SharedMemory.open(name);
    assert.equal(opened.created, false);
  }
  assert.equal(shmExists(name), true, "dispose of an opened object leaves it");
  SharedMemory.unlink(name);
});

test("list() shows named objects with size, mode and owner, filtered by prefix", () => {
  using a = create({ name: testName("list-a"), size: 4096, mode: 0o640 });
  using b = create({ name: testName("list-b"), size: 8192 });
  const all = SharedMemory.list();
  assert.ok(all.some((info) => info.name === a.name));
  assert.ok(all.some((info) => info.name === b.name));
  const onlyA = SharedMemory.list({ prefix: "/shmkit-test-list-a" });
  assert.deepEqual(onlyA, [{
    name: a.name,
    size: 4096,
    mode: 0o640,
    uid: process.getuid!(),
    gid: process.getgid!(),
  }]);
  assert.deepEqual(SharedMemory.list({ prefix: "/no-such-prefix-at-all" }), []);
  assert.deepEqual(all.map((i) => i.name), [...all.map((i) => i.name)].sort());
  assert.throws(() => SharedMemory.list({ prefix: 3 as never }), TypeError);
  assert.throws(() => SharedMemory.list({ prefix: "shmkit-" }), RangeError);
});

test("names are checked before any call; each broken rule says which", () => {
  // Unique where glibc would have accepted the name, so that we can tell it never got there.
  const tag = randomHex();
  const cases: [unknown, typeof TypeError | typeof RangeError, string][] = [
    [42, TypeError, "expected a string"],
    [undefined, TypeError, "expected a string"],
    [`/bad-${tag}\0b`, TypeError, "NUL"],
    [`bad-${tag}`, RangeError, 'must start with "/"'],
    ["", RangeError, 'must start with "/"'],
    ["/", RangeError, 'needs a name after the "/"'],
    ["/a/b", RangeError, 'no "/" after the first character'],
    [`//bad-${tag}`, RangeError, 'no "/" after the first character'],
    ["/.", RangeError, "directories"],
    ["/..", RangeError, "directories"],
    ["/" + "x".repeat(256), RangeError, "at most 255"],
    ["/" + "é".repeat(128), RangeError, "256 bytes"],
  ];
  for (const [name, type, fragment] of cases) {
    const check = expectMessage(type, fragment);
    assert.throws(() => checkShmName(name), check, String(name));
    // (create() without a name, or with name undefined, picks a random one)
    if (name !== undefined) {
      assert.throws(() => create({ name: name as string, size: 4096 }), check);
    }
    assert.throws(() => SharedMemory.open(name as string), check);
    assert.throws(() => SharedMemory.unlink(name as string), check);
    assert.throws(() => shmOpen(name as string, C.O_RDONLY), check);
    assert.throws(() => shmUnlink(name as string), check);
  }
  assert.deepEqual(
    shmSnapshot().filter((name) => name.includes(tag)),
    [],
    "no bad name may reach shm_open",
  );
});

test("the longest name the platform allows works", () => {
  const name = "/" + "n".repeat(platform.constants.NAME_MAX);
  using shm = create({ name, size: 4096 });
  assert.equal(shm.name, name);
  assert.equal(shmExists(name), true);
  assert.equal(SharedMemory.list({ prefix: name })[0]?.size, 4096);
});

test("sizes and modes are checked before any call", () => {
  const name = testName("bad-args");
  for (const size of [0, -1, 1.5, NaN, Infinity, -Infinity, 2 ** 53]) {
    assert.throws(() => create({ name, size }), RangeError, String(size));
  }
  for (const size of ["4096", undefined, null, 4096n]) {
    assert.throws(() => create({ name, size: size as never }), TypeError, String(size));
  }
  for (const mode of [0o10000, -1, 1.5]) {
    assert.throws(() => create({ name, size: 4096, mode }), RangeError, String(mode));
  }
  assert.throws(() => create({ name, size: 4096, mode: "600" as never }), TypeError);
  assert.throws(() => create({ name, size: 4096, persist: 1 as never }), TypeError);
  assert.throws(() => create(null as never), TypeError);
  assert.throws(() => create(4096 as never), TypeError);
  assert.throws(() => SharedMemory.open("/x", { size: 0 }), RangeError);
  assert.throws(() => SharedMemory.open("/x", { readOnly: "yes" as never }), TypeError);
  assert.equal(shmExists(name), false);
});

test("raw wrappers: 1:1 calls that validate and throw ErrnoError", () => {
  const name = testName("raw");
  const fd = shmOpen(name, C.O_CREAT | C.O_EXCL | C.O_RDWR, 0o600);
  try {
    assert.throws(() => shmOpen(name, C.O_CREAT | C.O_EXCL | C.O_RDWR), expectErrno("EEXIST"));
    ftruncate(fd, 8192);
    const s = fstat(fd);
    assert.equal(s.size, 8192);
    assert.equal(s.isFile, true);
    assert.equal(s.mode & 0o7777, 0o600);
    fchmod(fd, 0o644);
    assert.equal(fstat(fd).mode & 0o7777, 0o644);
    fchown(fd, -1, -1);
    assert.throws(() => ftruncate(fd, -1), RangeError);
    assert.throws(() => fchmod(fd, 0o10000), RangeError);
    assert.throws(() => fchown(fd, -2, 0), RangeError);
    assert.throws(() => shmOpen(name, -1), RangeError);
  } finally {
    closeFd(fd);
  }
  assert.throws(() => closeFd(fd), expectErrno("EBADF"));
  assert.throws(() => fstat(fd), expectErrno("EBADF"));
  assert.throws(() => closeFd(-1), RangeError);
  shmUnlink(name);
  assert.throws(() => shmUnlink(name), expectErrno("ENOENT"));
});

test("cleanup registry: newest first, errors reported, hooks only while something is pending", () => {
  assert.equal(pendingCleanups(), 0, "no test before this one may leave a cleanup pending");
  assert.deepEqual(cleanupHooks(), { exit: false, signals: false });
  const order: string[] = [];
  registerCleanup("a", () => order.push("a"));
  registerCleanup("b", () => {
    order.push("b");
    throw new Error("deliberate failure in a cleanup task");
  });
  registerCleanup("c", () => order.push("c"));
  assert.deepEqual(cleanupHooks(), { exit: true, signals: false }, "no signal listener by default");
  setSignalCleanup(true);
  assert.deepEqual(cleanupHooks(), { exit: true, signals: true });
  setSignalCleanup(false);
  assert.equal(unregisterCleanup("c"), true);
  assert.equal(unregisterCleanup("c"), false);
  const error = console.error;
  const reported: unknown[] = [];
  console.error = (...args: unknown[]) => reported.push(args);
  try {
    assert.equal(runCleanups(), 2);
  } finally {
    console.error = error;
  }
  assert.deepEqual(order, ["b", "a"]);
  assert.equal(reported.length, 1);
  assert.equal(pendingCleanups(), 0);
  assert.deepEqual(cleanupHooks(), { exit: false, signals: false });
  assert.throws(() => registerCleanup("x", 3 as never), TypeError);
  assert.throws(() => registerCleanup(undefined as never, () => {}), TypeError);
  assert.throws(() => setSignalCleanup("no" as never), TypeError);
});

test("an unreachable object gives its fd back when collected (the name stays registered)", async () => {
  let name = "";
  (() => {
    const shm = create({ size: 4096 });
    name = shm.name;
  })();
  assert.equal(fdsPointingAt("/dev/shm" + name), 1);
  for (let i = 0; i < 20 && fdsPointingAt("/dev/shm" + name) > 0; i++) {
    collectGarbage();
    await tick(10);
  }
  assert.equal(fdsPointingAt("/dev/shm" + name), 0, "the fd was not closed after collection");
  assert.equal(hasCleanup(`shm:${name}`), true, "the exit cleanup still knows the name");
  assert.equal(runCleanups(), 1);
  assert.equal(shmExists(name), false);
});

// --- exit cleanup in child processes, under both runtimes

const KINDS = [
  { mode: "exit", code: 0, signal: null, left: false },
  { mode: "exit-call", code: 3, signal: null, left: false },
  { mode: "close-then-exit", code: 0, signal: null, left: false },
  { mode: "throw", code: 1, signal: null, left: false },
  { mode: "throw-later", code: 1, signal: null, left: false },
  { mode: "reject", code: 1, signal: null, left: false },
  { mode: "persist", code: 0, signal: null, left: true },
] as const;

for (const rt of RUNTIMES) {
  const skip = installed(rt) ? false : skipReason(`${rt.program} is not installed`);
  for (const kind of KINDS) {
    test(`${rt.name} child, ${kind.mode}: ${kind.left ? "object kept" : "object unlinked"}`, {
      skip,
    }, async () => {
      const name = testName(`child-${kind.mode}`);
      try {
        const child = startFixture(rt, "shm_cleanup_child.ts", [kind.mode, name]);
        const result = await child.exited;
        assert.ok(result.stdout.startsWith("ready"), result.stdout + result.stderr);
        assert.equal(result.code, kind.code, result.stderr);
        assert.equal(result.signal, kind.signal);
        assert.equal(shmExists(name), kind.left);
      } finally {
        if (shmExists(name)) SharedMemory.unlink(name);
      }
    });
  }

  // SIGINT, SIGTERM and SIGKILL: tests/cleanup_test.ts (the out-of-process cleaner).

  test(`${rt.name} child with nothing to clean keeps the default SIGINT (no listeners left)`, {
    skip,
  }, async () => {
    const name = testName("child-released");
    const child = startFixture(rt, "shm_cleanup_child.ts", ["released-wait", name]);
    const line = await child.ready;
    assert.deepEqual(JSON.parse(line.slice("ready ".length)), { exit: false, signals: false });
    process.kill(child.process.pid!, "SIGINT");
    const result = await child.exited;
    assert.equal(result.signal, "SIGINT", `killed by the signal, not exit code ${result.code}`);
    assert.equal(shmExists(name), false);
  });

  test(`${rt.name} child that only opened an object never unlinks it`, { skip }, async () => {
    using shm = create({ name: testName("child-open"), size: 4096 });
    const result = await startFixture(rt, "shm_cleanup_child.ts", ["open-only", shm.name]).exited;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(shmExists(shm.name), true);
    assert.equal(shm.view()[1], 2, "the child wrote through its mapping");
  });

  test(
    `${rt.name} peer killed with SIGKILL while this process holds the object: it keeps working`,
    {
      skip,
    },
    async () => {
      using shm = create({ name: testName("peer-kill"), size: 4096 });
      const child = startFixture(rt, "shm_cleanup_child.ts", ["open-only-wait", shm.name]);
      await child.ready;
      assert.equal(shm.view(Int32Array)[0], 1234);
      process.kill(child.process.pid!, "SIGKILL");
      const result = await child.exited;
      assert.equal(result.signal, "SIGKILL");
      shm.view(Int32Array)[1] = 5678;
      assert.equal(shm.view(Int32Array)[1], 5678);
      assert.equal(shmExists(shm.name), true);
      shm.resize(8192);
      assert.equal(shm.view(Int32Array)[0], 1234);
    },
  );
}

/** The pid in the creator record of `name`; "none" or "unsupported" when there is none. */
function recordedPid(name: string): number | string {
  const record = readCreator("/dev/shm" + name);
  return typeof record === "string" ? record : record.pid;
}

/** Whether /dev/shm takes user xattrs (tmpfs from Linux 6.6): a persist object's record is written at create. */
function xattrsHere(): boolean {
  if (platform.os !== "linux") return false;
  using probe = create({ size: 4096, persist: true, name: testName("record-probe") });
  const supported = recordedPid(probe.name) !== "unsupported";
  probe.unlink();
  return supported;
}

test(
  "the creator record of a non-persist object: written by the end of the job, or at once before close, chmod and chown",
  { skip: xattrsHere() ? false : skipReason("this /dev/shm keeps no user xattrs (Linux < 6.6)") },
  async () => {
    using later = create({ size: 4096 });
    await tick();
    assert.equal(recordedPid(later.name), process.pid);

    // Each of these writes the record on the spot: read before the job ends.
    const closed = create({ size: 4096 });
    closed.close();
    assert.equal(recordedPid(closed.name), process.pid);
    closed[Symbol.dispose]();
    assert.equal(shmExists(closed.name), false);

    using chmodded = create({ size: 4096 });
    chmodded.chmod(0o400); // the owner can't write a user xattr after this (unless root)
    assert.equal(recordedPid(chmodded.name), process.pid);

    using chowned = create({ size: 4096 });
    chowned.chown(-1, -1);
    assert.equal(recordedPid(chowned.name), process.pid);

    // With a mode, persist, or from openOrCreate, the record is written at create.
    using moded = create({ size: 4096, mode: 0o600 });
    assert.equal(recordedPid(moded.name), process.pid);
  },
);

test("the suite leaves /dev/shm as it found it (no name it used is left)", () => {
  assert.ok(usedNames.size > 30, `only ${usedNames.size} names were tracked`);
  assert.deepEqual(leftovers(), []);
});

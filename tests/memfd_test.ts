import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readlinkSync } from "node:fs";
import process from "node:process";
import { ClosedError, ErrnoError, Mapping, Memfd, SharedMemory } from "../mod.ts";
import { ftruncate, getSeals, memfdCreate, platform } from "../raw.ts";
import { unsafeLibc } from "../ffi/libc.ts";
import { cString } from "../ffi/pointer.ts";
import { memfdUnsupportedReason } from "../shm/raw.ts";
import { skipReason } from "./helpers.ts";
import {
  installed,
  leftovers,
  randomHex,
  RUNTIMES,
  shmSnapshot,
  startFixture,
  testName,
  usedNames,
} from "./fixtures/runtimes.ts";

const C = platform.constants;

function isOpen(fd: number): boolean {
  return unsafeLibc.fcntl(fd, C.F_GETFD, 0) !== -1;
}

function dup(fd: number): number {
  const copy = unsafeLibc.fcntl(fd, C.F_DUPFD_CLOEXEC, 0);
  assert.ok(copy >= 0);
  return copy;
}

/** A read-only fd for the same memfd, as a receiver might get it. */
function reopenReadOnly(fd: number): number {
  const copy = unsafeLibc.open(cString(`/proc/self/fd/${fd}`, "path"), C.O_RDONLY | C.O_CLOEXEC, 0);
  assert.ok(copy >= 0);
  return copy;
}

function expectErrno(code: string): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof ErrnoError, `expected an ErrnoError, got ${error}`);
    assert.equal(error.code, code, error.message);
    return true;
  };
}

function expectMessage(
  type: ErrorConstructor | typeof RangeError,
  fragment: string,
): (error: unknown) => boolean {
  return (error: unknown): boolean => {
    assert.ok(error instanceof type, `expected ${type.name}, got ${error}`);
    assert.ok((error as Error).message.includes(fragment), (error as Error).message);
    return true;
  };
}

test("memfd is supported here, and the capability check refuses clearly where it is not", () => {
  assert.equal(Memfd.supported, true);
  assert.equal(memfdUnsupportedReason(), undefined);
  const reason = memfdUnsupportedReason(new Set(["mmap"]), "darwin-aarch64");
  assert.ok(reason?.includes("not supported on this platform (darwin-aarch64"), reason);
  assert.ok(memfdUnsupportedReason(new Set(["memfd_create"]), "x", -1) !== undefined);
});

test("create(): zeroed, shared, close-on-exec, never in /dev/shm, unsealed", () => {
  const label = `frames-${randomHex()}`;
  using memory = Memfd.create({ name: label, size: 10000 });
  assert.equal(memory.byteLength, 10000);
  assert.equal(memory.name, label);
  assert.ok(memory.view().every((b) => b === 0));
  assert.equal(readlinkSync(`/proc/self/fd/${memory.fd}`), `/memfd:${label} (deleted)`);
  assert.notEqual(unsafeLibc.fcntl(memory.fd, C.F_GETFD, 0) & C.FD_CLOEXEC, 0);
  assert.deepEqual(memory.seals, []);
  assert.deepEqual(shmSnapshot().filter((name) => name.includes(label)), []);
  assert.equal(memory.stat().size, 10000);
  assert.equal(memory.stat().uid, process.getuid!());
  // A second mapping of the same fd sees the writes: it is shared memory.
  using other = Mapping.fromFd(memory.fd);
  memory.view()[5] = 55;
  assert.equal(other.view()[5], 55);
});

test("seals at create: shrink and grow refuse resizing with EPERM", () => {
  using memory = Memfd.create({ size: 8192, seals: ["shrink", "grow"] });
  assert.deepEqual(memory.seals, ["shrink", "grow"]);
  assert.equal(getSeals(memory.fd), C.F_SEAL_SHRINK | C.F_SEAL_GROW);
  const bytes = memory.view();
  bytes[0] = 1;
  assert.throws(() => memory.resize(16384), expectErrno("EPERM"));
  assert.throws(() => memory.resize(4096), expectErrno("EPERM"));
  assert.throws(() => ftruncate(memory.fd, 1), expectErrno("EPERM"));
  assert.equal(memory.stat().size, 8192);
  assert.equal(memory.view()[0], 1, "the memory is mapped again after the refused shrink");
});

test("addSeals(['write']) remaps this process read-only; contents frozen for everyone", () => {
  using memory = Memfd.create({ size: 4096 });
  const old = memory.view();
  old.set([1, 2, 3]);
  memory.addSeals(["shrink", "grow", "write"]);
  assert.equal(old.length, 0, "views from before the seal are detached");
  assert.equal(memory.readOnly, true);
  assert.deepEqual(memory.seals, ["shrink", "grow", "write"]);
  const now = memory.view();
  assert.deepEqual([...now.subarray(0, 3)], [1, 2, 3]);
  now[0] = 99; // private copy-on-write: no crash, no change to the memfd
  using reader = Memfd.fromFd(dup(memory.fd), { requireSeals: ["write"] });
  assert.equal(reader.readOnly, true);
  assert.equal(reader.view()[0], 1);
  assert.throws(() => Mapping.fromFd(memory.fd), expectErrno("EPERM"));
});

test("seals: ['write'] at create gives a zero-filled memfd that nobody can change", () => {
  using memory = Memfd.create({ size: 4096, seals: ["write", "shrink"] });
  assert.equal(memory.readOnly, true);
  assert.deepEqual(memory.seals, ["shrink", "write"]);
  const view = memory.view();
  assert.ok(view.every((b) => b === 0));
  view[0] = 1; // private copy only
  using reader = Memfd.fromFd(dup(memory.fd), { requireSeals: ["shrink", "write"] });
  assert.equal(reader.view()[0], 0);
  assert.throws(() => memory.resize(8192), TypeError);
});

test("sealing 'write' while another writable shared mapping exists is EBUSY; ours is restored", () => {
  using memory = Memfd.create({ size: 4096 });
  using other = Mapping.fromFd(memory.fd); // writable, shared
  memory.view()[0] = 7;
  assert.throws(() => memory.addSeals(["write"]), expectErrno("EBUSY"));
  assert.equal(memory.readOnly, false);
  memory.view()[1] = 8;
  assert.equal(other.view()[1], 8, "the writable shared mapping is back");
  other.close();
  memory.addSeals(["write"]);
  assert.equal(memory.readOnly, true);
});

test("'future-write': existing mapping keeps writing, new ones are read-only", () => {
  using memory = Memfd.create({ size: 4096, seals: ["future-write"] });
  assert.equal(memory.readOnly, false);
  memory.view()[0] = 5;
  using reader = Memfd.fromFd(dup(memory.fd), { requireSeals: ["future-write"] });
  assert.equal(reader.readOnly, true);
  assert.equal(reader.view()[0], 5);
  memory.view()[0] = 6;
  assert.equal(reader.view()[0], 6, "a page it never wrote shows the writer's changes");
  assert.throws(
    () => Memfd.fromFd(dup(memory.fd), { requireSeals: [], readOnly: false }),
    expectMessage(Error, "sealed against writing"),
  );
});

test("'seal' forbids more seals (EPERM)", () => {
  using memory = Memfd.create({ size: 4096, seals: ["seal"] });
  assert.deepEqual(memory.seals, ["seal"]);
  assert.throws(() => memory.addSeals(["shrink"]), expectErrno("EPERM"));
});

test("fromFd refuses an fd lacking required seals, leaving the fd open and the caller's", () => {
  using memory = Memfd.create({ size: 4096, seals: ["grow"] });
  const fd = dup(memory.fd);
  try {
    assert.throws(() => Memfd.fromFd(fd), expectMessage(Error, 'lacks the seals ["shrink"]'));
    assert.throws(
      () => Memfd.fromFd(fd, { requireSeals: ["shrink", "write"] }),
      expectMessage(Error, "SIGBUS"),
    );
    assert.ok(isOpen(fd));
  } finally {
    unsafeLibc.close(fd);
  }
});

test("fromFd refuses an object smaller than minSize", () => {
  using memory = Memfd.create({ size: 4096, seals: ["shrink"] });
  const fd = dup(memory.fd);
  try {
    assert.throws(
      () => Memfd.fromFd(fd, { minSize: 4097 }),
      expectMessage(RangeError, "4096 bytes, fewer than minSize 4097"),
    );
    assert.ok(isOpen(fd));
  } finally {
    unsafeLibc.close(fd);
  }
});

test("fromFd takes ownership on success and closes the fd with the object", () => {
  using memory = Memfd.create({ size: 4096, seals: ["shrink"] });
  memory.view()[0] = 4;
  const fd = dup(memory.fd);
  const received = Memfd.fromFd(fd, { minSize: 4096 });
  assert.equal(received.fd, fd);
  assert.equal(received.name, "");
  assert.equal(received.readOnly, false);
  assert.equal(received.view()[0], 4);
  received.view()[1] = 9;
  assert.equal(memory.view()[1], 9);
  received.close();
  assert.equal(isOpen(fd), false);
  assert.throws(() => received.fd, ClosedError);
  received.close();
});

test("fromFd of a read-only fd maps private copy-on-write; asking for writable throws", () => {
  using memory = Memfd.create({ size: 4096, seals: ["shrink"] });
  const fd = reopenReadOnly(memory.fd);
  try {
    assert.throws(
      () => Memfd.fromFd(fd, { readOnly: false }),
      expectMessage(Error, "open read-only"),
    );
  } catch (error) {
    unsafeLibc.close(fd);
    throw error;
  }
  using received = Memfd.fromFd(fd);
  assert.equal(received.readOnly, true);
  received.view()[0] = 1; // stays private
  assert.equal(memory.view()[0], 0);
});

test("fromFd checks the fd: closed (EBADF), not a memory object, a POSIX shm fd only unsealed", () => {
  const fd = dup(0);
  unsafeLibc.close(fd);
  assert.throws(() => Memfd.fromFd(fd), expectErrno("EBADF"));
  assert.throws(() => Memfd.fromFd(-1), RangeError);
  assert.throws(() => Memfd.fromFd(1.5), RangeError);
  const pipe = new Int32Array(2);
  assert.equal(unsafeLibc.pipe2(pipe, C.O_CLOEXEC), 0);
  try {
    assert.throws(
      () => Memfd.fromFd(pipe[0]!, { requireSeals: [] }),
      expectMessage(Error, "not a memory object"),
    );
  } finally {
    unsafeLibc.close(pipe[0]!);
    unsafeLibc.close(pipe[1]!);
  }
  using shm = SharedMemory.create({ name: testName("memfd-shm"), size: 4096 });
  const shmFd = dup(shm.fd);
  try {
    // tmpfs files from shm_open carry F_SEAL_SEAL only: never "shrink".
    assert.throws(() => Memfd.fromFd(shmFd), expectMessage(Error, "lacks the seals"));
  } catch (error) {
    unsafeLibc.close(shmFd);
    throw error;
  }
  using received = Memfd.fromFd(shmFd, { requireSeals: [] });
  shm.view()[3] = 3;
  assert.equal(received.view()[3], 3);
});

test("bad arguments are refused before any call", () => {
  assert.throws(() => Memfd.create({ size: 0 }), RangeError);
  assert.throws(() => Memfd.create({ size: -1 }), RangeError);
  assert.throws(() => Memfd.create({ size: 1.5 }), RangeError);
  assert.throws(() => Memfd.create({ size: NaN }), RangeError);
  assert.throws(() => Memfd.create({ size: "1" as never }), TypeError);
  assert.throws(() => Memfd.create({ size: 4096, name: "a\0b" }), TypeError);
  assert.throws(() => Memfd.create({ size: 4096, name: "x".repeat(250) }), RangeError);
  assert.throws(() => Memfd.create({ size: 4096, seals: ["shrnk" as never] }), RangeError);
  assert.throws(() => Memfd.create({ size: 4096, seals: "shrink" as never }), TypeError);
  assert.throws(() => Memfd.fromFd(0, { minSize: 0 }), RangeError);
  assert.throws(() => Memfd.fromFd(0, { requireSeals: ["nope" as never] }), RangeError);
  assert.throws(() => memfdCreate("x", -1), RangeError);
  using memory = Memfd.create({ size: 4096, name: "y".repeat(249) });
  assert.throws(() => memory.addSeals(["bogus" as never]), RangeError);
  assert.deepEqual(memory.seals, []);
});

test("use after close: views detached, ClosedError, no crash", () => {
  const memory = Memfd.create({ size: 4096, seals: ["shrink"] });
  const fd = memory.fd;
  const view = memory.view();
  memory.close();
  assert.equal(view.length, 0);
  assert.equal(isOpen(fd), false);
  assert.throws(() => memory.seals, ClosedError);
  assert.throws(() => memory.addSeals(["grow"]), ClosedError);
  assert.throws(() => memory.view(), ClosedError);
  memory.close();
});

test("fds of closed memfds are all given back", () => {
  const count = readdirSync("/proc/self/fd").length;
  for (let i = 0; i < 50; i++) {
    using memory = Memfd.create({ size: 4096, seals: ["shrink", "write"] });
    memory.view();
  }
  assert.equal(readdirSync("/proc/self/fd").length, count);
});

for (const rt of RUNTIMES) {
  const skip = installed(rt) ? false : skipReason(`${rt.program} is not installed`);
  test(`a ${rt.name} process receiving a sealed memfd checks it, can't shrink it, writes to it`, {
    skip,
  }, async () => {
    using memory = Memfd.create({ size: 8192, seals: ["shrink", "grow"] });
    const result = await startFixture(rt, "memfd_peer.ts", [
      String(process.pid),
      String(memory.fd),
      "shrink,grow",
    ]).exited;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /accepted 8192 seals=shrink,grow shrink=EPERM/);
    assert.equal(new TextDecoder().decode(memory.view().subarray(0, 4)), "peer");
    assert.equal(memory.stat().size, 8192);
  });

  test(`a ${rt.name} process refuses a memfd without the seals it requires`, {
    skip,
  }, async () => {
    using memory = Memfd.create({ size: 8192, seals: ["grow"] });
    const result = await startFixture(rt, "memfd_peer.ts", [
      String(process.pid),
      String(memory.fd),
      "shrink",
    ]).exited;
    assert.notEqual(result.code, 0);
    assert.match(result.stdout, /refused .*lacks the seals \["shrink"\]/);
    assert.equal(memory.view()[0], 0, "a refused fd is never mapped or written");
  });
}

test("memfd tests leave /dev/shm as they found it", () => {
  assert.ok(usedNames.size > 0);
  assert.deepEqual(leftovers(), []);
});

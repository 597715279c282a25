import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { ClosedError, ErrnoError, Mapping, pageSize, readProcMaps } from "../mod.ts";
import { tombstones } from "../core/_region.ts";
import { collectGarbage, skipReason, tempDir, tick } from "./helpers.ts";

function mapsLine(address: number): string | undefined {
  return readProcMaps().find((entry) => entry.contains(address))?.line;
}

/** The /proc/self/smaps fields of the mapping holding `address` ("VmFlags", "Private_Dirty"...). */
function smaps(address: number): Map<string, string> {
  let fields: Map<string, string> | undefined;
  for (const line of readFileSync("/proc/self/smaps", "utf8").split("\n")) {
    const range = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (range !== null) {
      if (fields !== undefined) break;
      const inside = parseInt(range[1]!, 16) <= address && address < parseInt(range[2]!, 16);
      if (inside) fields = new Map();
    } else if (fields !== undefined) {
      const colon = line.indexOf(":");
      if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
    }
  }
  if (fields === undefined) throw new Error(`no smaps entry holds 0x${address.toString(16)}`);
  return fields;
}

/** The kernel's VmFlags for the mapping holding `address` ("lo" = mlocked). */
function vmFlags(address: number): string[] {
  return (smaps(address).get("VmFlags") ?? "").split(/\s+/);
}

/** Dirty kB in the mapping holding `address`, as smaps counts them. */
function dirtyKb(address: number): number {
  const fields = smaps(address);
  return parseInt(fields.get("Private_Dirty") ?? "0") + parseInt(fields.get("Shared_Dirty") ?? "0");
}

/**
 * A parent directory on a file system with writeback (not tmpfs, whose pages
 * stay dirty whatever msync does), or undefined. The scratch directory itself
 * is made by the test that uses it: one made at load time was left behind by
 * every run that ended before that test (a killed mutant, a name filter).
 */
function diskParent(): string | undefined {
  for (const parent of [tmpdir(), "/var/tmp"]) {
    try {
      const type = execFileSync("stat", ["-f", "-c", "%T", parent], { encoding: "utf8" }).trim();
      if (type !== "tmpfs" && type !== "ramfs") return parent;
    } catch {
      // no such directory, or no stat(1): try the next
    }
  }
  return undefined;
}

test("pageSize() matches getconf PAGESIZE and is a power of two", () => {
  const size = pageSize();
  // getconf asks sysconf(_SC_PAGESIZE) in a process of its own: an independent reading.
  assert.equal(size, Number(execFileSync("getconf", ["PAGESIZE"], { encoding: "utf8" }).trim()));
  assert.ok(size >= 4096);
  assert.equal(size & (size - 1), 0);
});

test("anonymous shared mapping starts zeroed, is writable, and shows rw-s in /proc/self/maps", () => {
  using mapping = Mapping.anonymous(10000);
  assert.equal(mapping.byteLength, 10000);
  const bytes = mapping.view();
  assert.equal(bytes.length, 10000);
  assert.ok(bytes.every((b) => b === 0));
  bytes[9999] = 7;
  assert.equal(mapping.view()[9999], 7);
  const line = mapsLine(mapping.unsafeAddress);
  assert.ok(line !== undefined, "mapping missing from /proc/self/maps");
  assert.match(line, / rw-s /);
});

test("anonymous private mapping shows rw-p", () => {
  using mapping = Mapping.anonymous(4096, { shared: false, populate: true });
  assert.match(mapsLine(mapping.unsafeAddress)!, / rw-p /);
});

test("close() unmaps the range and is idempotent", () => {
  const mapping = Mapping.anonymous(pageSize() * 3);
  const address = mapping.unsafeAddress;
  assert.ok(mapsLine(address) !== undefined);
  mapping.close();
  mapping.close();
  assert.equal(mapping.closed, true);
  assert.equal(mapping.byteLength, 0);
  const after = mapsLine(address);
  assert.ok(after === undefined || !after.includes(" rw-s "), `still mapped: ${after}`);
});

test("views of every TypedArray type share the same bytes", () => {
  using mapping = Mapping.anonymous(64);
  const words = mapping.view(Uint32Array);
  assert.equal(words.length, 16);
  words[1] = 0x01020304;
  assert.deepEqual([...mapping.view(Uint8Array, 4, 4)], [4, 3, 2, 1]);
  assert.equal(mapping.view(BigUint64Array, 0, 1)[0], 0x01020304n << 32n);
  assert.equal(mapping.dataView(4, 4).getUint32(0, true), 0x01020304);
  mapping.view(Float64Array)[2] = 1.5;
  assert.equal(mapping.dataView().getFloat64(16, true), 1.5);
});

test("view() rejects misaligned offsets, overlong lengths and non-TypedArray types", () => {
  using mapping = Mapping.anonymous(64);
  assert.throws(() => mapping.view(Int32Array, 2), RangeError);
  assert.throws(() => mapping.view(Uint8Array, 65), RangeError);
  assert.throws(() => mapping.view(Uint8Array, 60, 5), RangeError);
  assert.throws(() => mapping.view(Uint16Array, 0, 33), RangeError);
  assert.throws(() => mapping.view(Uint8Array, -1), RangeError);
  assert.throws(() => mapping.view(Uint8Array, 1.5), RangeError);
  assert.throws(() => mapping.dataView(0, 65), RangeError);
  assert.throws(() => mapping.view(Object as never), TypeError);
  assert.throws(() => mapping.view(ArrayBuffer as never), TypeError);
});

test("views are detached after close: length 0, reads undefined, no crash", () => {
  const mapping = Mapping.anonymous(4096);
  const bytes = mapping.view();
  const words = mapping.view(Int32Array, 8);
  const dv = mapping.dataView();
  bytes[0] = 1;
  mapping.close();
  assert.equal(bytes.length, 0);
  assert.equal(bytes[0], undefined);
  assert.equal(words.length, 0);
  bytes[0] = 5; // a write to a detached view is ignored
  assert.throws(() => dv.getUint8(0), TypeError);
  assert.throws(() => mapping.view(), ClosedError);
  assert.throws(() => mapping.dataView(), ClosedError);
  assert.throws(() => mapping.unsafeAddress, ClosedError);
});

test("a buffer transferred away survives close: it reads zeros and the range is tombstoned", () => {
  const mapping = Mapping.anonymous(8192);
  const view = mapping.view();
  view[0] = 99;
  const moved = new Uint8Array(view.buffer.transfer());
  assert.equal(moved[0], 99);
  const before = tombstones.count;
  const address = mapping.unsafeAddress;
  mapping.close();
  assert.equal(tombstones.count, before + 1);
  assert.equal(moved[0], 0);
  moved[1] = 3; // lands in private zero pages, not in freed memory
  assert.equal(moved[1], 3);
  assert.match(mapsLine(address)!, / rw-p /);
});

test("structuredClone with transfer is caught as an escape too", () => {
  const mapping = Mapping.anonymous(4096);
  const view = mapping.view();
  view[0] = 5;
  const clone = structuredClone(view, { transfer: [view.buffer] });
  assert.equal(clone[0], 5);
  assert.equal(view.length, 0);
  const fresh = mapping.view(); // a new tracked buffer over the same memory
  assert.equal(fresh[0], 5);
  const before = tombstones.count;
  mapping.close();
  assert.equal(tombstones.count, before + 1);
  assert.equal(clone[0], 0);
  assert.equal(fresh.length, 0);
});

test("anonymous() rejects bad lengths before calling mmap", () => {
  for (const bad of [0, -1, 1.5, NaN, Infinity, -Infinity, 2 ** 53]) {
    assert.throws(() => Mapping.anonymous(bad), RangeError, String(bad));
  }
  for (const bad of ["4096", null, undefined, 4096n, {}]) {
    assert.throws(() => Mapping.anonymous(bad as never), TypeError, String(bad));
  }
  assert.throws(() => Mapping.anonymous(4096, "shared" as never), TypeError);
  assert.throws(() => Mapping.anonymous(4096, { shared: 1 as never }), TypeError);
});

test("a huge mapping fails with ErrnoError ENOMEM naming mmap", () => {
  assert.throws(
    () => Mapping.anonymous(2 ** 52),
    (error: unknown) => {
      assert.ok(error instanceof ErrnoError);
      assert.equal(error.code, "ENOMEM");
      assert.equal(error.errno, 12);
      assert.equal(error.syscall, "mmap");
      assert.match(error.message, /^Cannot mmap: ENOMEM/);
      return true;
    },
  );
});

test("file mapping: shared writes reach the file after sync", () => {
  const dir = tempDir();
  try {
    const path = join(dir.path, "data");
    writeFileSync(path, "hello world");
    const mapping = Mapping.file(path);
    const bytes = mapping.view();
    assert.equal(new TextDecoder().decode(bytes), "hello world");
    bytes[0] = "J".charCodeAt(0);
    mapping.sync();
    mapping.sync({ async: true });
    mapping.close();
    assert.equal(readFileSync(path, "utf8"), "Jello world");
  } finally {
    dir.remove();
  }
});

const diskRoot = diskParent();

test("sync() writes the dirty pages back: smaps counts none dirty after it", {
  skip: diskRoot === undefined ? skipReason("no scratch directory outside tmpfs") : false,
}, () => {
  const disk = mkdtempSync(join(diskRoot!, "shmkit-test-"));
  try {
    const path = join(disk, "data");
    writeFileSync(path, "x".repeat(3 * pageSize()));
    using mapping = Mapping.file(path);
    mapping.view()[0] = 1;
    mapping.view()[2 * pageSize()] = 2;
    assert.ok(dirtyKb(mapping.unsafeAddress) > 0, "the writes dirtied pages");
    mapping.sync(); // msync(MS_SYNC)
    assert.equal(dirtyKb(mapping.unsafeAddress), 0, "msync(MS_SYNC) cleaned them");
    assert.equal(readFileSync(path)[2 * pageSize()], 2);
  } finally {
    rmSync(disk, { recursive: true, force: true });
  }
});

test("read-only file mapping: a write through its view stays private and does not crash", () => {
  const dir = tempDir();
  try {
    const path = join(dir.path, "ro");
    writeFileSync(path, "abc");
    using mapping = Mapping.file(path, { readOnly: true });
    assert.equal(mapping.readOnly, true);
    assert.equal(mapping.shared, false);
    const bytes = mapping.view();
    assert.equal(bytes[0], 97);
    bytes[0] = 122;
    assert.equal(bytes[0], 122);
    assert.equal(readFileSync(path, "utf8"), "abc");
  } finally {
    dir.remove();
  }
});

test("file mapping refuses ranges past the end of the file (SIGBUS) and unaligned offsets", () => {
  const dir = tempDir();
  try {
    const path = join(dir.path, "short");
    writeFileSync(path, "x".repeat(100));
    assert.throws(() => Mapping.file(path, { length: 101 }), /SIGBUS/);
    assert.throws(() => Mapping.file(path, { offset: pageSize() }), RangeError);
    assert.throws(() => Mapping.file(path, { offset: 10 }), /multiple of the page size/);
    const empty = join(dir.path, "empty");
    writeFileSync(empty, "");
    assert.throws(() => Mapping.file(empty), RangeError);
    using ok = Mapping.file(path, { length: 50 });
    assert.equal(ok.byteLength, 50);
  } finally {
    dir.remove();
  }
});

test("file mapping of a missing path is ENOENT with the path", () => {
  assert.throws(
    () => Mapping.file("/nonexistent/shmkit/file"),
    (error: unknown) =>
      error instanceof ErrnoError && error.code === "ENOENT" && error.syscall === "open" &&
      error.path === "/nonexistent/shmkit/file" &&
      error.message.includes("/nonexistent/shmkit/file"),
  );
  assert.throws(() => Mapping.file("bad\0path"), TypeError);
  assert.throws(() => Mapping.file(42 as never), TypeError);
});

test("fromFd rejects closed and invalid fds", () => {
  assert.throws(
    () => Mapping.fromFd(999999, { length: 4096 }),
    (error: unknown) =>
      error instanceof ErrnoError && error.code === "EBADF" && error.fd === 999999,
  );
  assert.throws(() => Mapping.fromFd(-1), RangeError);
  assert.throws(() => Mapping.fromFd(1.5), RangeError);
  assert.throws(() => Mapping.fromFd("3" as never), TypeError);
});

test("protect() lowering access detaches views and refuses new ones until restored", () => {
  using mapping = Mapping.anonymous(pageSize());
  const bytes = mapping.view();
  bytes[0] = 1;
  mapping.protect("read");
  assert.equal(mapping.access, "read");
  assert.equal(bytes.length, 0);
  assert.throws(() => mapping.view(), TypeError);
  assert.match(mapsLine(mapping.unsafeAddress)!, / r--s /);
  mapping.protect("none");
  assert.match(mapsLine(mapping.unsafeAddress)!, / ---s /);
  mapping.protect("read-write");
  assert.equal(mapping.view()[0], 1);
  assert.throws(() => mapping.protect("rwx" as never), RangeError);
});

test("protect() refuses to lower access once a view escaped by transfer", () => {
  const mapping = Mapping.anonymous(pageSize());
  const moved = mapping.view().buffer.transfer();
  assert.throws(() => mapping.protect("read"), /transferred away/);
  assert.equal(mapping.access, "read-write");
  mapping.close();
  assert.equal(new Uint8Array(moved)[0], 0);
});

test("lock and unlock set and clear the kernel's locked flag on exactly the range given", () => {
  const page = pageSize();
  using mapping = Mapping.anonymous(page * 4);
  const at = (i: number): number => mapping.unsafeAddress + i * page;
  const locked = (): boolean[] => [0, 1, 2, 3].map((i) => vmFlags(at(i)).includes("lo"));
  assert.deepEqual(locked(), [false, false, false, false]);
  mapping.lock();
  assert.deepEqual(locked(), [true, true, true, true]);
  mapping.unlock({ byteOffset: page, byteLength: 2 * page });
  assert.deepEqual(locked(), [true, false, false, true]);
  mapping.unlock();
  assert.deepEqual(locked(), [false, false, false, false]);
  mapping.lock({ byteOffset: 2 * page, byteLength: page });
  assert.deepEqual(locked(), [false, false, true, false]);
});

test("advise, lock and unlock work on whole and page-aligned ranges", () => {
  using mapping = Mapping.anonymous(pageSize() * 4);
  mapping.view()[0] = 9;
  mapping.advise("willneed");
  mapping.advise("sequential", { byteOffset: pageSize(), byteLength: pageSize() });
  mapping.lock();
  assert.ok(vmFlags(mapping.unsafeAddress).includes("lo"), "mlock set the locked flag");
  mapping.unlock();
  assert.ok(!vmFlags(mapping.unsafeAddress).includes("lo"), "munlock cleared it");
  mapping.advise("dontneed", { byteOffset: 0, byteLength: pageSize() });
  assert.equal(mapping.view()[0], 9, "MAP_SHARED memory keeps its data after dontneed");
  using priv = Mapping.anonymous(pageSize(), { shared: false });
  priv.view()[0] = 9;
  priv.advise("dontneed");
  assert.equal(priv.view()[0], 0, "MAP_PRIVATE anonymous memory is zeroed by dontneed");
  assert.throws(() => mapping.advise("bogus" as never), RangeError);
  assert.throws(() => mapping.advise("toString" as never), RangeError, "not an inherited name");
  assert.throws(() => mapping.advise("normal", { byteOffset: 1 }), RangeError);
  assert.throws(() => mapping.lock({ byteLength: pageSize() * 5 }), RangeError);
});

test("calls on a closed mapping throw ClosedError", () => {
  const mapping = Mapping.anonymous(4096);
  mapping.close();
  assert.throws(() => mapping.sync(), ClosedError);
  assert.throws(() => mapping.protect("read"), ClosedError);
  assert.throws(() => mapping.advise("normal"), ClosedError);
  assert.throws(() => mapping.lock(), ClosedError);
});

test("an unreachable mapping is released by the garbage collector, but not while a view lives", async () => {
  const held: { view: Uint8Array } = { view: new Uint8Array(0) };
  const make = (): number => {
    const mapping = Mapping.anonymous(pageSize() * 2);
    held.view = mapping.view();
    held.view[0] = 42;
    return mapping.unsafeAddress;
  };
  const address = make();
  for (let i = 0; i < 5; i++) {
    assert.ok(collectGarbage(), "run deno test with --v8-flags=--expose-gc");
    await tick(10);
  }
  assert.equal(held.view[0], 42, "the view kept its mapping alive");
  assert.match(mapsLine(address)!, / rw-s /);
  held.view = new Uint8Array(0);
  let released = false;
  for (let i = 0; i < 50 && !released; i++) {
    collectGarbage();
    await tick(10);
    released = !(mapsLine(address) ?? "").includes(" rw-s ");
  }
  assert.ok(released, "the shared mapping was not released after GC");
});

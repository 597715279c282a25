import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, openSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { availableSymbols, backend, bindTable, errno, unsafeLibc } from "../ffi/libc.ts";
import {
  allocStruct,
  cString,
  readField,
  unsafeAddressOf,
  unsafeRead,
  unsafeReadCString,
  unsafeView,
  unsafeWrite,
  writeField,
} from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";
import { runtime, tempDir } from "./helpers.ts";

test("the backend matches the runtime running the suite", () => {
  assert.equal(backend.runtime, runtime);
  assert.equal(backend.nonblocking, runtime === "deno");
});

test("64-bit and pointer results are numbers in both runtimes", () => {
  const page = unsafeLibc.sysconf(platform.constants._SC_PAGESIZE);
  assert.equal(typeof page, "number");
  // getconf asks sysconf in a process of its own: an independent reading.
  assert.equal(page, Number(execFileSync("getconf", ["PAGESIZE"], { encoding: "utf8" }).trim()));
  const address = unsafeLibc.errno_location();
  assert.equal(typeof address, "number");
  // The pointer is usable: errno read through it is what the failing call set.
  unsafeLibc.close(-1);
  assert.equal(unsafeRead(address, "i32"), platform.errno.EBADF);
  // mmap's MAP_FAILED comes back as -1, not 2^64 - 1.
  const failed = unsafeLibc.mmap(
    0,
    4096,
    platform.constants.PROT_READ,
    platform.constants.MAP_SHARED,
    -1,
    0,
  );
  assert.equal(failed, -1);
  assert.equal(errno(), platform.errno.EBADF);
});

test("-0 passes as 0 to a 32-bit parameter (node:ffi alone refuses it raw)", () => {
  const limit = unsafeLibc.sysconf(-0);
  assert.equal(limit, unsafeLibc.sysconf(0));
  assert.ok(limit > 0, `sysconf(0) is a limit, not an error: ${limit}`);
});

test("errno is read right after the failing call", () => {
  assert.equal(unsafeLibc.close(-1), -1);
  assert.equal(errno(), platform.errno.EBADF);
  assert.equal(unsafeLibc.shm_unlink(cString("/shmkit-no-such-object-ever", "name")), -1);
  assert.equal(errno(), platform.errno.ENOENT);
});

test("optional symbols this libc lacks are left out, not a crash; required ones throw naming them", () => {
  const bound = bindTable({
    getpid: { args: [], result: "i32" },
    shmkit_no_such_symbol: { args: [], result: "i32", optional: true },
  });
  assert.equal(typeof bound.getpid, "function");
  assert.equal(bound.shmkit_no_such_symbol, undefined);
  assert.throws(
    () => bindTable({ shmkit_required_missing: { args: [], result: "i32" } }),
    /lack shmkit_required_missing/,
  );
});

test("glibc 2.36 provides the optional symbols shmkit looks for", () => {
  for (const name of ["memfd_create", "posix_spawn_file_actions_addchdir_np"]) {
    assert.ok(availableSymbols.has(name), name);
  }
  assert.equal(availableSymbols.has("syscall_nonblocking"), runtime === "deno");
});

test("cString encodes UTF-8 with one NUL and rejects interior NULs and non-strings", () => {
  const bytes = cString("hé", "name");
  assert.deepEqual([...bytes], [0x68, 0xc3, 0xa9, 0]);
  assert.throws(() => cString("a\0b", "name"), /contains a NUL/);
  assert.throws(() => cString(42, "name"), TypeError);
  assert.throws(() => cString(undefined, "name"), TypeError);
});

test("C strings round-trip through memory", () => {
  const buffer = cString("/dev/shm/ünïcode", "path");
  assert.equal(unsafeReadCString(unsafeAddressOf(buffer)), "/dev/shm/ünïcode");
  assert.equal(unsafeReadCString(unsafeAddressOf(buffer), 4), "/dev");
  // strerror hands back libc's own string.
  assert.equal(
    unsafeReadCString(unsafeLibc.strerror(platform.errno.ENOENT!)),
    "No such file or directory",
  );
});

test("scalars read and write at raw addresses, every type", () => {
  const buffer = new Uint8Array(16);
  const address = unsafeAddressOf(buffer);
  unsafeWrite(address, "u32", 0xdeadbeef);
  assert.equal(unsafeRead(address, "u32"), 0xdeadbeef);
  assert.equal(unsafeRead(address, "i32"), 0xdeadbeef | 0);
  assert.deepEqual([...buffer.subarray(0, 4)], [0xef, 0xbe, 0xad, 0xde]);
  unsafeWrite(address + 8, "i64", -2n);
  assert.equal(unsafeRead(address + 8, "i64"), -2n);
  assert.equal(unsafeRead(address + 8, "u64"), 2n ** 64n - 2n);
  unsafeWrite(address, "f64", 0.25);
  assert.equal(unsafeRead(address, "f64"), 0.25);
  unsafeWrite(address, "i8", -1);
  assert.equal(unsafeRead(address, "u8"), 255);
  unsafeWrite(address, "u16", 0xabcd);
  assert.equal(unsafeRead(address, "i16"), 0xabcd - 0x10000);
  unsafeWrite(address, "f32", 1.5);
  assert.equal(unsafeRead(address, "f32"), 1.5);
  assert.throws(() => unsafeRead(address, "u128" as never), TypeError);
  assert.equal(unsafeView(address, 16).byteLength, 16);
});

test("struct fields read and write by the platform's layout", () => {
  const layout = platform.structs.stat;
  const buffer = allocStruct(layout);
  assert.equal(buffer.byteLength, layout.size);
  writeField(buffer, layout, "st_size", 2 ** 40 + 5);
  writeField(buffer, layout, "st_mode", 0o100600);
  assert.equal(readField(buffer, layout, "st_size"), 2 ** 40 + 5);
  assert.equal(readField(buffer, layout, "st_mode"), 0o100600);
  assert.throws(() => readField(buffer, layout, "no_such_field"), /no_such_field/);
  // fstat fills the same layout: compared field by field with node:fs's stat of the file.
  const dir = tempDir();
  const path = join(dir.path, "file");
  writeFileSync(path, new Uint8Array(12345), { mode: 0o640 });
  const fd = openSync(path, "r");
  try {
    const status = allocStruct(layout);
    assert.equal(unsafeLibc.fstat(fd, status), 0);
    const expected = statSync(path, { bigint: true });
    assert.equal(readField(status, layout, "st_size"), 12345);
    assert.equal(readField(status, layout, "st_mode"), Number(expected.mode));
    assert.equal(BigInt(readField(status, layout, "st_ino")), expected.ino);
  } finally {
    closeSync(fd);
    dir.remove();
  }
});

test("an alias key binds the same C function beside the original, in both runtimes", () => {
  const bound = bindTable({
    getpid: { args: [], result: "i32" },
    getpid_alias: { name: "getpid", args: [], result: "i64" },
    strlen_of_buffer: { name: "strlen", args: ["buffer"], result: "usize" },
  });
  const pid = (bound.getpid as () => number)();
  assert.equal(pid, process.pid);
  assert.equal((bound.getpid_alias as () => number)(), pid);
  assert.equal((bound.strlen_of_buffer as (b: Uint8Array) => number)(cString("four", "s")), 4);
  // The table's keys, not C names, are what gets bound.
  assert.ok(availableSymbols.has("errno_location"));
  assert.ok(!availableSymbols.has("__errno_location"));
});

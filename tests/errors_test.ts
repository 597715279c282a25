import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { check, checkReturned, ErrnoError, errnoName } from "../core/errors.ts";
import { unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { checkFd, checkInteger, checkMode, checkSize } from "../core/_validate.ts";
import { have, skipReason } from "./helpers.ts";

test("errnoName names numbers, preferring EAGAIN over EWOULDBLOCK", () => {
  assert.equal(errnoName(platform.errno.EEXIST!), "EEXIST");
  assert.equal(errnoName(platform.errno.EWOULDBLOCK!), "EAGAIN");
  assert.equal(errnoName(99999), "E99999");
  // Linux numbers, literally (asm-generic/errno-base.h), not from the table.
  assert.deepEqual([1, 2, 9, 11, 12, 13, 17, 22].map(errnoName), [
    "EPERM",
    "ENOENT",
    "EBADF",
    "EAGAIN",
    "ENOMEM",
    "EACCES",
    "EEXIST",
    "EINVAL",
  ]);
});

const python = have("python3") ? undefined : skipReason("python3 is not installed");

test("every errno name and number agrees with Python's errno module", { skip: python }, () => {
  // Python's errno module is built from the C library's headers: an independent source.
  const script = "import errno, json; " +
    'print(json.dumps({k: v for k, v in vars(errno).items() if k.startswith("E")}))';
  const theirs = JSON.parse(
    execFileSync("python3", ["-c", script], { encoding: "utf8" }),
  ) as Record<
    string,
    number
  >;
  const ours = platform.errno;
  const shared = Object.keys(ours).filter((name) => name in theirs);
  assert.ok(shared.length >= 30, `only ${shared.length} names in common`);
  for (const name of shared) assert.equal(ours[name], theirs[name], name);
  // errnoName gives each number a name Python gives the same number (aliases allowed).
  for (const value of new Set(Object.values(theirs))) {
    const name = errnoName(value);
    if (name === `E${value}`) continue; // a number the table leaves out
    assert.equal(theirs[name], value, `errnoName(${value}) is ${name}`);
  }
});

test("ErrnoError carries code, errno, syscall and the object, in an actionable message", () => {
  const error = new ErrnoError("shm_open", platform.errno.EEXIST!, {
    path: "/demo",
    hint: 'attach with SharedMemory.open("/demo")',
  });
  assert.ok(error instanceof Error);
  assert.equal(error.name, "ErrnoError");
  assert.equal(error.code, "EEXIST");
  assert.equal(error.errno, 17);
  assert.equal(error.syscall, "shm_open");
  assert.equal(error.path, "/demo");
  assert.equal(
    error.message,
    'Cannot shm_open "/demo": EEXIST (File exists): attach with SharedMemory.open("/demo")',
  );
  const keyed = new ErrnoError("shmget", platform.errno.EINVAL!, { key: 0x1234, id: 7 });
  assert.match(keyed.message, /^Cannot shmget key 0x00001234 id 7: EINVAL \(Invalid argument\)$/);
  assert.equal(keyed.key, 0x1234);
  assert.equal("path" in keyed, false);
});

test("check() passes results through and throws the errno error on -1, with per-code hints", () => {
  assert.equal(check(5, "open"), 5);
  unsafeLibc.close(-1);
  assert.throws(
    () => check(-1, "close", { fd: -1 }, { EBADF: "the fd is not open" }),
    (error: unknown) =>
      error instanceof ErrnoError && error.code === "EBADF" && error.fd === -1 &&
      error.message.endsWith(": the fd is not open"),
  );
});

test("checkReturned() turns a returned error number into ErrnoError", () => {
  checkReturned(0, "posix_fallocate");
  assert.throws(
    () => checkReturned(platform.errno.ENOSPC!, "posix_fallocate", { path: "/x" }),
    (error: unknown) => error instanceof ErrnoError && error.code === "ENOSPC",
  );
});

test("argument checks: TypeError for types, RangeError for values", () => {
  assert.equal(checkInteger(3, "n", 0, 10), 3);
  assert.throws(() => checkInteger("3", "n", 0, 10), TypeError);
  assert.throws(() => checkInteger(NaN, "n", 0, 10), RangeError);
  assert.throws(() => checkInteger(11, "n", 0, 10), /expected 0 to 10/);
  assert.throws(() => checkSize(0, "size"), RangeError);
  assert.throws(() => checkFd(-1), RangeError);
  assert.throws(() => checkFd(2 ** 31), RangeError);
  assert.equal(checkMode(0o600), 0o600);
  assert.throws(() => checkMode(0o10000), /0o10000/);
  assert.throws(() => checkMode(-1), RangeError);
});

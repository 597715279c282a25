/**
 * A smoke test of shmkit's core paths for the oldest runtimes the npm package
 * claims (`engines` in scripts/build_npm.ts). It is a plain script, not a
 * `node:test` file, and uses no syntax newer than the library itself (no
 * `using`), so that an old runtime fails on what the library needs, not on
 * the test. `scripts/check_min_versions.sh` runs it under the minimum Deno
 * and Bun.
 *
 * Usage:
 *
 *     deno run --allow-ffi [--allow-write=DIR] scripts/min_version_smoke.ts [DIR]
 *     bun scripts/min_version_smoke.ts [DIR]
 *     node --disable-warning=ExperimentalWarning scripts/min_version_smoke.ts [DIR]
 *
 * DIR is where a scratch file for `Mapping.file` is written (default: the
 * OS temp dir under Bun and Node, /tmp under Deno). Deno needs `--allow-write` there
 * for that part; without it the part is skipped with a note, and the rest
 * still runs on `--allow-ffi` alone, as the README promises. Exports that
 * other modules add to mod.ts (SharedMemory, Memfd, System V, spawn) are
 * exercised when present. The last line is `smoke ok <runtime> <version>`.
 *
 * @module
 */
import * as mod from "../mod.ts";
import { ClosedError, ErrnoError, Mapping, pageSize, readProcMaps } from "../mod.ts";
import { platform } from "../raw.ts";
import { unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

// Found in this file's own text when it is mapped (see mapOwnSource).
const MARKER = "shmkit-min-version-smoke-marker";

interface DenoLike {
  version: { deno: string };
  args: string[];
  permissions: {
    querySync(descriptor: { name: "write"; path: string }): { state: string };
  };
}

const g = globalThis as unknown as { Deno?: DenoLike; Bun?: { version: string } };
const runtime = g.Deno !== undefined ? "deno" : g.Bun !== undefined ? "bun" : "node";
const version = g.Deno?.version.deno ?? g.Bun?.version ?? process.versions.node;
const args = g.Deno?.args ?? process.argv.slice(2);
const covered: string[] = [];
const notes: string[] = [];

function fail(what: string): never {
  throw new Error(`smoke failed (${runtime} ${version}): ${what}`);
}

function expectThrows(what: string, fn: () => unknown, check: (error: unknown) => boolean): void {
  try {
    fn();
  } catch (error) {
    if (check(error)) return;
    fail(`${what}: threw the wrong error: ${String(error)}`);
  }
  fail(`${what}: did not throw`);
}

function isErrno(error: unknown, syscall: string, code: string): boolean {
  return error instanceof ErrnoError && error.syscall === syscall && error.code === code &&
    error.errno === platform.errno[code];
}

/** Anonymous mapping: views, write/read, /proc/self/maps, close detaching views. */
function anonymousMapping(): void {
  const page = pageSize();
  if (!(page >= 4096 && (page & (page - 1)) === 0)) fail(`pageSize() gave ${page}`);
  const mapping = Mapping.anonymous(2 * page);
  const bytes = mapping.view();
  const words = mapping.view(Uint32Array, 8, 4);
  const data = mapping.dataView(page);
  if (bytes.length !== 2 * page || mapping.byteLength !== 2 * page) fail("view length");
  if (bytes[0] !== 0 || bytes[2 * page - 1] !== 0) fail("anonymous memory is not zeroed");
  words[0] = 0xdeadbeef;
  bytes[page] = 0x5a;
  if (bytes[8] !== 0xef || bytes[11] !== 0xde) fail("bytes do not show the word written");
  if (data.getUint8(0) !== 0x5a) fail("the DataView does not see the byte written");
  if (mapping.view(Uint32Array, 8)[0] !== 0xdeadbeef) fail("a second view does not share memory");

  const address = mapping.unsafeAddress;
  const entry = readProcMaps().find((e) => e.contains(address));
  if (entry === undefined) fail("readProcMaps() has no line for the mapping");
  if (entry.perms !== "rw-s") fail(`the mapping's perms are ${entry.perms}, expected rw-s`);
  if (entry.end - entry.start < 2 * page) fail("the /proc/self/maps line is too short");

  expectThrows(
    "view(Uint32Array, 2)",
    () => mapping.view(Uint32Array, 2),
    (e) => e instanceof RangeError,
  );
  expectThrows("Mapping.anonymous(0)", () => Mapping.anonymous(0), (e) => e instanceof RangeError);

  mapping.close();
  mapping.close(); // idempotent
  if (!mapping.closed || mapping.byteLength !== 0) fail("closed/byteLength after close()");
  if (bytes.length !== 0 || words.length !== 0) fail("close() left a view attached");
  if (bytes[0] !== undefined) fail("a detached view still reads memory");
  bytes[0] = 1; // ignored, must not crash
  expectThrows("view() after close()", () => mapping.view(), (e) => e instanceof ClosedError);
  covered.push("anonymous");

  if (typeof Symbol.dispose === "symbol") {
    const disposed = Mapping.anonymous(page, { shared: false });
    const view = disposed.view();
    disposed[Symbol.dispose]();
    if (!disposed.closed || view.length !== 0) fail("[Symbol.dispose]() did not close");
    covered.push("dispose");
  } else {
    notes.push("Symbol.dispose is absent: `using` can't close mappings on this runtime");
  }
}

/** Mapping.file of this script, read-only: needs no permission beyond FFI. */
function mapOwnSource(): void {
  const path = decodeURIComponent(new URL(import.meta.url).pathname);
  const mapping = Mapping.file(path, { readOnly: true });
  const text = new TextDecoder().decode(mapping.view());
  if (!text.includes(MARKER)) fail("the read-only file mapping does not show the file");
  if (!mapping.readOnly || mapping.shared) fail("readOnly/shared of a read-only mapping");
  mapping.view()[0] = 0x21; // private copy-on-write: stays in this process
  mapping.close();
  const again = Mapping.file(path, { readOnly: true });
  const first = again.view()[0];
  again.close();
  if (first !== "/".charCodeAt(0)) fail("a write to a read-only mapping reached the file");
  covered.push("file-readonly");
}

/** Mapping.file of a scratch file written by the runtime, shared and written through. */
function mapScratchFile(): void {
  const base = args[0] ?? (runtime === "deno" ? "/tmp" : tmpdir());
  if (g.Deno !== undefined) {
    const state = g.Deno.permissions.querySync({ name: "write", path: base }).state;
    if (state !== "granted") {
      notes.push(`file write skipped: no --allow-write=${base}`);
      return;
    }
  }
  const suffix = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16))
    .join("");
  const path = join(base, `shmkit-smoke-${suffix}`);
  const page = pageSize();
  const initial = new Uint8Array(2 * page);
  initial.set(new TextEncoder().encode("hello"));
  writeFileSync(path, initial, { flag: "wx", mode: 0o600 }); // wx: never someone else's file
  try {
    const mapping = Mapping.file(path);
    const bytes = mapping.view();
    if (bytes.length !== 2 * page) fail(`file mapping has ${bytes.length} bytes`);
    if (new TextDecoder().decode(bytes.subarray(0, 5)) !== "hello") {
      fail("the file mapping does not show the file's contents");
    }
    bytes[page] = 0x42;
    mapping.sync();
    mapping.close();
    if (bytes.length !== 0) fail("close() left the file view attached");

    const second = Mapping.file(path, { offset: page, readOnly: true });
    const seen = second.view()[0];
    second.close();
    if (seen !== 0x42) fail("a shared write did not reach the file (remapped at an offset)");

    expectThrows(
      "a range past the end",
      () => Mapping.file(path, { length: 3 * page }),
      (e) => e instanceof RangeError,
    );
    covered.push("file-shared");
  } finally {
    unlinkSync(path);
  }
}

function errors(): void {
  expectThrows(
    "Mapping.file of a missing file",
    () => Mapping.file("/nonexistent/shmkit-min-version-smoke"),
    (e) => isErrno(e, "open", "ENOENT") && e instanceof Error && /ENOENT/.test(e.message),
  );
  expectThrows(
    "Mapping.file(42)",
    () => Mapping.file(42 as unknown as string),
    (e) => e instanceof TypeError,
  );
  covered.push("errno");
}

/** A buffer moved out with transfer(), then close(): a tombstone, not a crash. */
function transferEscape(): void {
  const mapping = Mapping.anonymous(pageSize());
  const view = mapping.view();
  view[0] = 7;
  const escaped = new Uint8Array(view.buffer.transfer());
  if (view.length !== 0) fail("transfer() did not detach the original");
  if (escaped[0] !== 7) fail("the transferred buffer lost the contents");
  mapping.view()[0] = 9; // a fresh tracked view: shows whether `escaped` aliases the memory
  const aliases = escaped.at(0) === 9;
  mapping.close();
  // Moved: the alias now sees the tombstone's zero pages. Copied: it kept its 7.
  const expected = aliases ? 0 : 7;
  const after = escaped.at(0);
  if (after !== expected) fail(`escaped alias reads ${after}, expected ${expected}`);
  escaped[1] = 1; // lands in the tombstone (or the copy), must not crash
  covered.push(aliases ? "transfer-tombstone" : "transfer-copy");
}

type Mod = Record<string, unknown>;
const exported = mod as unknown as Mod;

interface ShmLike {
  name: string;
  closed: boolean;
  view(): Uint8Array;
  close(): void;
  unlink(): boolean;
}
interface ShmClass {
  create(o: { size: number }): ShmLike;
  open(name: string): ShmLike;
  unlink(name: string): void;
}

function sharedMemory(): void {
  if (!("SharedMemory" in exported)) return;
  const Shm = exported.SharedMemory as ShmClass;
  const created = Shm.create({ size: pageSize() });
  let removed = false;
  try {
    created.view()[3] = 33;
    const peer = Shm.open(created.name);
    const seen = peer.view()[3];
    peer.close();
    if (seen !== 33) fail("SharedMemory.open does not see the creator's write");
    Shm.unlink(created.name);
    removed = true;
    expectThrows(
      "SharedMemory.open after unlink",
      () => Shm.open(created.name),
      (e) => isErrno(e, "shm_open", "ENOENT"),
    );
  } finally {
    if (!removed) created.unlink();
    created.close();
  }
  if (!created.closed) fail("SharedMemory.close()");
  covered.push("shm");
}

interface MemfdClass {
  readonly supported: boolean;
  create(o: { size: number }): { view(): Uint8Array; close(): void };
}

function memfd(): void {
  if (!("Memfd" in exported)) return;
  const Memfd = exported.Memfd as MemfdClass;
  if (!Memfd.supported) {
    notes.push("memfd unsupported by this libc/kernel");
    return;
  }
  const memory = Memfd.create({ size: pageSize() });
  const view = memory.view();
  view[0] = 5;
  memory.close();
  if (view.length !== 0) fail("Memfd.close() left a view attached");
  covered.push("memfd");
}

interface ReadOnlyLike {
  readonly closed: boolean;
  getUint8(byteOffset: number): number;
}
interface AttachmentLike {
  view(): Uint8Array;
  readOnlyView?(): ReadOnlyLike;
  detach(): void;
}
interface SegmentLike {
  attach(): AttachmentLike;
  remove(): void;
}

function systemV(): void {
  if (!("SystemVSegment" in exported)) return;
  const Segment = exported.SystemVSegment as { create(size: number): SegmentLike };
  const segment = Segment.create(pageSize());
  try {
    const first = segment.attach();
    const second = segment.attach();
    first.view()[0] = 11;
    const seen = second.view()[0];
    const view = first.view();
    // ReadOnlyView checks ArrayBuffer.prototype.detached, newer than transfer().
    const readOnly = second.readOnlyView?.();
    if (readOnly !== undefined && readOnly.getUint8(0) !== 11) fail("readOnlyView() reads wrong");
    first.detach();
    second.detach();
    if (seen !== 11) fail("two System V attachments do not share memory");
    if (view.length !== 0) fail("detach() left a view attached");
    if (readOnly !== undefined) {
      if (!readOnly.closed) fail("a ReadOnlyView is not closed after detach()");
      covered.push("readonly-view");
    }
  } finally {
    segment.remove();
  }
  covered.push("sysv");
}

type Spawn = (
  path: string,
  actions: null,
  attributes: null,
  argv: string[],
  envp: string[],
) => number;

/** posix_spawn of /bin/true and waitpid, the raw layer. */
function rawSpawn(): void {
  if (!("posixSpawn" in exported && "waitpid" in exported && "decodeWaitStatus" in exported)) {
    return;
  }
  const posixSpawn = exported.posixSpawn as Spawn;
  const waitpid = exported.waitpid as (pid: number) => { pid: number; status: number };
  const decode = exported.decodeWaitStatus as (status: number) => { code: number | null };
  const pid = posixSpawn("/bin/true", null, null, ["true"], []);
  const result = waitpid(pid);
  if (result.pid !== pid || decode(result.status).code !== 0) fail("/bin/true did not exit 0");
  covered.push("posix-spawn");
}

interface ChildLike {
  readonly status: Promise<{ code: number | null; success: boolean }>;
  output(): Promise<{ code: number | null; stdout: Uint8Array }>;
}
type SpawnChild = (argv: string[], options?: { stdout?: "pipe" }) => ChildLike;

/** spawn(): a child's exit status, and its output through a pipe. */
async function spawnChild(): Promise<void> {
  if (typeof exported.spawn !== "function") return;
  const spawn = exported.spawn as SpawnChild;
  const status = await spawn(["/bin/true"]).status;
  if (!status.success || status.code !== 0) fail(`spawn(["/bin/true"]) ended with ${status.code}`);
  const output = await spawn(["/bin/echo", "hi"], { stdout: "pipe" }).output();
  const text = new TextDecoder().decode(output.stdout);
  if (output.code !== 0 || text !== "hi\n") fail(`spawn echo gave ${JSON.stringify(text)}`);
  covered.push("spawn");
}

anonymousMapping();
mapOwnSource();
mapScratchFile();
errors();
transferEscape();
sharedMemory();
memfd();
systemV();
rawSpawn();
await spawnChild();

console.log(`covered: ${covered.join(" ")}${notes.length > 0 ? `; ${notes.join("; ")}` : ""}`);
console.log(`smoke ok ${runtime} ${version}`);

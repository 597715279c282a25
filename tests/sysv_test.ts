/**
 * System V shared memory: the safe API (sysv/segment.ts), the thin wrappers
 * (sysv/raw.ts) and each classic pitfall turned into an error or a
 * documented behaviour. Every segment made here is removed in a finally;
 * the last test asserts that `ipcs -m` is as the first one found it.
 *
 * @module
 */
import { before as beforeAll, test } from "node:test";
import { execFileSync } from "node:child_process";
import assert from "node:assert/strict";
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import {
  ClosedError,
  ErrnoError,
  ftok,
  Mapping,
  pageSize,
  readProcMaps,
  SystemVAttachment,
  type SystemVLimits,
  SystemVSegment,
} from "../mod.ts";
import {
  decodeShmidDs,
  explainShmgetFailure,
  platform,
  shmctlRemove,
  shmctlStat,
  shmget,
  unsafeShmat,
  unsafeShmdt,
} from "../raw.ts";
import { allocStruct, writeField } from "../ffi/pointer.ts";
import { LINUX_AARCH64 } from "../platform/linux_aarch64.ts";
import { LINUX_X86_64 } from "../platform/linux_x86_64.ts";
import { DARWIN_AARCH64 } from "../platform/darwin.ts";
import { tombstones } from "../core/_region.ts";
import { collectGarbage, have, skipReason, tempDir, tick } from "./helpers.ts";
import {
  assertSegmentsRestored,
  procSegments,
  randomKey,
  type SegmentSnapshot,
  segmentSnapshot,
} from "./fixtures/sysv_support.ts";

const C = platform.constants;
let before: SegmentSnapshot | undefined;

/** The lines of /proc/self/maps that map segment `id` (the inode there is the shmid). */
function mapsOf(id: number): string[] {
  return readProcMaps()
    .filter((e) => e.pathname.startsWith("/SYSV") && e.inode === id)
    .map((e) => e.perms);
}

/** Creates segments for a test and removes them all afterwards. */
function withSegments(fn: (make: typeof SystemVSegment.create) => void): void {
  const made: SystemVSegment[] = [];
  try {
    fn((size, options) => {
      const segment = SystemVSegment.create(size, options);
      made.push(segment);
      return segment;
    });
  } finally {
    for (const segment of made) segment.remove();
  }
}

function isErrno(code: string, pattern?: RegExp): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof ErrnoError, `expected ErrnoError, got ${error}`);
    assert.equal(error.code, code, error.message);
    if (pattern !== undefined) assert.match(error.message, pattern);
    return true;
  };
}

beforeAll(() => {
  before = segmentSnapshot();
});

test("create() defaults: IPC_PRIVATE, mode 0o600, exclusive; stat() decodes shmid_ds", () => {
  withSegments((make) => {
    // shm_ctime is whole seconds of the same real-time clock as Date.now().
    const started = Math.floor(Date.now() / 1000);
    const segment = make(10000);
    assert.equal(segment.key, 0);
    assert.equal(segment.size, 10000);
    assert.equal(segment.created, true);
    const s = segment.stat();
    assert.equal(s.id, segment.id);
    assert.equal(s.key, 0);
    assert.equal(s.size, 10000);
    assert.equal(s.mode, 0o600);
    assert.equal(s.nattch, 0);
    assert.equal(s.cpid, process.pid);
    assert.equal(s.lpid, 0);
    assert.equal(s.atime, null);
    assert.equal(s.dtime, null);
    const ended = Math.ceil(Date.now() / 1000);
    assert.ok(s.ctime instanceof Date);
    const ctime = s.ctime.getTime() / 1000;
    assert.ok(started <= ctime && ctime <= ended, `ctime ${ctime} not in [${started}, ${ended}]`);
    assert.equal(s.uid, process.getuid!());
    assert.equal(s.cuid, process.getuid!());
    assert.equal(s.gid, process.getgid!());
    assert.equal(s.cgid, process.getgid!());
    assert.equal(s.markedForDeletion, false);
    assert.equal(s.locked, false);
    assert.match(String(segment), /^SystemVSegment\(id \d+, key 0x00000000, 10000 bytes\)$/);
  });
});

test("attach and detach update nattch, lpid, atime and dtime", () => {
  withSegments((make) => {
    const segment = make(4096);
    const attachment = segment.attach();
    let s = segment.stat();
    assert.equal(s.nattch, 1);
    assert.equal(s.lpid, process.pid);
    assert.ok(s.atime instanceof Date);
    assert.equal(s.dtime, null);
    attachment.view()[0] = 1;
    attachment.detach();
    s = segment.stat();
    assert.equal(s.nattch, 0);
    assert.ok(s.dtime instanceof Date);
  });
});

test("memory is shared between attachments and starts zeroed; views of every type work", () => {
  withSegments((make) => {
    const segment = make(64);
    using writer = segment.attach();
    using reader = segment.attach({ readOnly: true });
    assert.ok(writer.view().every((b) => b === 0));
    writer.view(Uint32Array)[1] = 0x01020304;
    writer.dataView().setFloat64(8, 1.5, true);
    assert.equal(writer.byteLength, 64);
    assert.equal(reader.readOnlyView().getUint32(4, true), 0x01020304);
    assert.equal(reader.readOnlyView().getFloat64(8, true), 1.5);
    assert.equal(writer.view(BigUint64Array, 8, 1)[0], 0x3ff8000000000000n);
  });
});

test("pitfall 1: limits() reads /proc/sys/kernel as bigints (values beyond 2^53 survive)", () => {
  const limits = SystemVSegment.limits();
  const read = (name: string): bigint =>
    BigInt(readFileSync(`/proc/sys/kernel/${name}`, "utf8").trim());
  assert.equal(typeof limits.shmmax, "bigint");
  assert.equal(typeof limits.shmall, "bigint");
  assert.equal(limits.shmmax, read("shmmax"));
  assert.equal(limits.shmall, read("shmall"));
  assert.equal(limits.shmmni, Number(read("shmmni")));
  assert.equal(limits.shmmin, 1);
  assert.equal(limits.pageSize, pageSize());
  // The machine's default is 18446744073692774399: a number would round it.
  if (limits.shmmax > BigInt(Number.MAX_SAFE_INTEGER)) {
    assert.notEqual(BigInt(Number(limits.shmmax)), limits.shmmax);
  }
});

const FAKE: SystemVLimits = {
  shmmax: 33554432n,
  shmall: 2097152n,
  shmmni: 4096,
  shmmin: 1,
  pageSize: 4096,
};

test("pitfall 1: the shmget message names the limit, its value, the size asked and the sysctl", () => {
  const create = C.IPC_CREAT | C.IPC_EXCL | 0o600;
  assert.equal(
    explainShmgetFailure("EINVAL", { key: 0, size: 67108864, flags: create }, {
      limits: FAKE,
      segments: [],
    }),
    "kernel.shmmax is 33554432 bytes; 67108864 were asked; raise it with sysctl -w kernel.shmmax=67108864 (it is per IPC namespace)",
  );
  // shmall counts pages: 3 segments of 2 pages in use, 3 more asked, limit 8.
  const segments = [1, 2, 3].map((id) => ({ key: 0, id, size: 8000, uid: 0, mode: 0o600 }));
  assert.equal(
    explainShmgetFailure("ENOSPC", { key: 0, size: 12288, flags: create }, {
      limits: { ...FAKE, shmall: 8n },
      segments,
    }),
    "kernel.shmall is 8 pages (32768 bytes); 6 are in use and this segment needs 3 more (12288 bytes); raise it with sysctl -w kernel.shmall=9 or remove unused segments (ipcs -m, ipcrm)",
  );
  assert.equal(
    explainShmgetFailure("ENOSPC", { key: 0, size: 1, flags: create }, {
      limits: { ...FAKE, shmmni: 3 },
      segments,
    }),
    "kernel.shmmni is 3 segments and 3 exist; remove unused ones (ipcs -m, ipcrm) or raise it with sysctl -w kernel.shmmni=4",
  );
  const both = explainShmgetFailure("ENOSPC", { key: 0, size: 8192, flags: create }, {
    limits: { ...FAKE, shmmni: 3, shmall: 6n },
    segments,
  });
  assert.match(both!, /^kernel\.shmall is 6 pages .*; and kernel\.shmmni is 3 segments/);
  assert.match(
    explainShmgetFailure("ENOMEM", { key: 0, size: 4096, flags: create }, {
      limits: FAKE,
      segments: [],
    })!,
    /could not allocate 4096 bytes/,
  );
  assert.equal(
    explainShmgetFailure("ENOSPC", { key: 0, size: 4096, flags: create }, {
      limits: FAKE,
      segments: [],
    }),
    undefined,
    "no limit explains it: say nothing rather than something wrong",
  );
  assert.equal(
    explainShmgetFailure("EINVAL", { key: 0, size: 4096, flags: create }, {
      limits: FAKE,
      segments: [],
    }),
    undefined,
  );
  const taken = [{ key: 0xabcd, id: 7, size: 100, uid: 1000, mode: 0o1600 }];
  assert.equal(
    explainShmgetFailure("EACCES", { key: 0xabcd, size: 0, flags: 0o666 }, {
      limits: FAKE,
      segments: taken,
    }),
    "the segment (id 7) has mode 0o600 and owner uid 1000; that does not allow this access",
  );
  assert.match(
    explainShmgetFailure("EEXIST", { key: 0xabcd, size: 1, flags: create }, {
      limits: FAKE,
      segments: taken,
    })!,
    /^a segment with key 0x0000abcd already exists \(id 7, 100 bytes\)/,
  );
});

test("pitfall 1: the limit check uses the values it is given, beyond 2^53 too", () => {
  const huge = 18446744073692774399n;
  const limits = { ...FAKE, shmmax: huge, shmall: huge };
  const size = Number.MAX_SAFE_INTEGER;
  assert.equal(
    explainShmgetFailure("EINVAL", { key: 0, size, flags: C.IPC_CREAT }, { limits, segments: [] }),
    undefined,
    "2^53 - 1 is below 18446744073692774399",
  );
  assert.match(
    explainShmgetFailure("EINVAL", { key: 0, size: 2 ** 40, flags: C.IPC_CREAT }, {
      limits: { ...limits, shmmax: 2n ** 40n - 1n },
      segments: [],
    })!,
    /^kernel\.shmmax is 1099511627775 bytes; 1099511627776 were asked/,
  );
});

test("pitfall 1: the real EINVAL for a new segment of size 0 says size 0 only opens", () => {
  assert.throws(
    () => shmget(C.IPC_PRIVATE, 0, C.IPC_CREAT | 0o600),
    isErrno("EINVAL", /^Cannot shmget: EINVAL .*at least SHMMIN \(1\) bytes; 0 were asked/),
  );
  // The safe API refuses it before calling C.
  assert.throws(() => SystemVSegment.create(0), RangeError);
});

test("pitfall 2: attaching again in one process shares one mapping; shmdt at the last detach", () => {
  withSegments((make) => {
    const segment = make(3 * pageSize());
    const first = segment.attach();
    first.view()[5] = 55;
    const more: SystemVAttachment[] = [];
    for (let i = 0; i < 200; i++) more.push(segment.attach());
    assert.equal(segment.stat().nattch, 1, "one mapping, counted once by the kernel");
    assert.deepEqual(mapsOf(segment.id), ["rw-s"], "one range in /proc/self/maps");
    assert.ok(more.every((a) => a.unsafeAddress === first.unsafeAddress));
    assert.equal(more[199]!.view()[5], 55);
    const view = first.view();
    first.detach();
    assert.equal(first.detached, true);
    assert.throws(() => first.view(), ClosedError);
    assert.equal(view[5], 55, "views belong to the mapping, which others still use");
    assert.equal(segment.stat().nattch, 1);
    for (const attachment of more.slice(1)) attachment.detach();
    assert.deepEqual(mapsOf(segment.id), ["rw-s"]);
    more[0]!.detach();
    assert.equal(segment.stat().nattch, 0, "the real shmdt came with the last detach");
    assert.deepEqual(mapsOf(segment.id), []);
    assert.equal(view.length, 0, "views are detached with the mapping");
    // A new attach after the last detach maps again.
    using again = segment.attach();
    assert.equal(again.view()[5], 55);
    assert.equal(segment.stat().nattch, 1);
  });
});

test("pitfall 2: read-only and read-write attachments are separate mappings", () => {
  withSegments((make) => {
    const segment = make(4096);
    using rw = segment.attach();
    using ro = segment.attach({ readOnly: true });
    using ro2 = segment.attach({ readOnly: true });
    assert.equal(segment.stat().nattch, 2);
    assert.deepEqual(mapsOf(segment.id).sort(), ["r--s", "rw-s"]);
    assert.equal(ro.unsafeAddress, ro2.unsafeAddress);
    assert.notEqual(ro.unsafeAddress, rw.unsafeAddress);
  });
});

test("pitfall 3: asking for more than an existing segment holds is EINVAL naming both sizes", () => {
  withSegments((make) => {
    const key = randomKey();
    make(8192, { key });
    const hex = `0x${key.toString(16).padStart(8, "0")}`;
    const expected = new RegExp(
      `^Cannot shmget key ${hex}: EINVAL .*: segment for key ${hex} exists with 8192 bytes; 16384 were asked`,
    );
    assert.throws(() => SystemVSegment.open(key, { size: 16384 }), isErrno("EINVAL", expected));
    assert.throws(
      () => SystemVSegment.create(16384, { key, exclusive: false }),
      isErrno("EINVAL", expected),
    );
  });
});

test("pitfall 3: asking for less opens the bigger segment whole; nothing is resized", () => {
  withSegments((make) => {
    const key = randomKey();
    const made = make(8192, { key });
    const opened = SystemVSegment.open(key, { size: 100 });
    assert.equal(opened.id, made.id);
    assert.equal(opened.size, 8192);
    assert.equal(opened.created, false);
    const got = SystemVSegment.create(100, { key, exclusive: false });
    assert.equal(got.id, made.id);
    assert.equal(got.created, false);
    assert.equal(got.size, 8192);
    assert.equal(got.stat().size, 8192);
    using attachment = got.attach();
    assert.equal(attachment.byteLength, 8192);
    assert.equal(SystemVSegment.open(key).size, 8192, "size 0 accepts any size");
  });
});

test("pitfall 4: IPC_EXCL refuses a taken key; IPC_PRIVATE never collides", () => {
  withSegments((make) => {
    const key = randomKey();
    const first = make(4096, { key, mode: 0o640 });
    assert.equal(first.key, key);
    assert.equal(first.stat().key, key);
    assert.throws(
      () => make(4096, { key }),
      isErrno("EEXIST", new RegExp(`already exists \\(id ${first.id}, 4096 bytes\\)`)),
    );
    const again = SystemVSegment.create(4096, { key, exclusive: false });
    assert.equal(again.id, first.id);
    assert.equal(again.created, false);
    const a = make(4096);
    const b = make(4096);
    assert.notEqual(a.id, b.id);
    assert.equal(a.key, 0);
    assert.equal(b.stat().key, 0);
  });
});

test("get-or-create creates when the key is free", () => {
  withSegments(() => {
    const key = randomKey();
    const segment = SystemVSegment.create(5000, { key, exclusive: false });
    try {
      assert.equal(segment.created, true);
      assert.equal(segment.size, 5000);
    } finally {
      segment.remove();
    }
  });
});

test("pitfall 5: ftok checks its arguments and the path; the key follows the inode", () => {
  const dir = tempDir();
  try {
    const path = join(dir.path, "keyfile");
    writeFileSync(path, "x");
    const key = ftok(path, 42);
    assert.equal(ftok(path, 42), key, "same file, same project: same key");
    assert.notEqual(ftok(path, 43), key);
    const st = statSync(path, { bigint: true });
    const expected = Number(
      (st.ino & 0xffffn) | ((st.dev & 0xffn) << 16n) | (42n << 24n),
    ) >>> 0;
    assert.equal(key, expected, "glibc: inode low 16 bits, device low 8 bits, proj_id");
    assert.ok(key >= 0 && key <= 0xffffffff);
    assert.ok(ftok(path, 200) > 0x7fffffff, "a proj_id of 128+ makes a key above 2^31, unsigned");

    for (const bad of [0, 256, -1, 1.5, NaN]) {
      assert.throws(() => ftok(path, bad), RangeError, String(bad));
    }
    assert.throws(() => ftok(path, "1" as never), TypeError);
    assert.throws(() => ftok(42 as never, 1), TypeError);
    assert.throws(() => ftok("bad\0path", 1), TypeError);
    const missing = join(dir.path, "missing");
    assert.throws(
      () => ftok(missing, 1),
      (error: unknown) =>
        isErrno("ENOENT", /ftok needs an existing file/)(error) &&
        (error as ErrnoError).path === missing && (error as ErrnoError).syscall === "ftok",
    );

    // Delete and re-create the file: a new inode, so a new key. (Another
    // file is made in between, so that a freed inode number can't simply
    // come back to the same name.)
    rmSync(path);
    writeFileSync(join(dir.path, "placeholder"), "y");
    writeFileSync(path, "x");
    assert.notEqual(statSync(path, { bigint: true }).ino, st.ino);
    assert.notEqual(ftok(path, 42), key, "the re-created file gives another key");
  } finally {
    dir.remove();
  }
});

test("pitfall 6: detach does not remove, remove does not detach, no call does both", () => {
  withSegments((make) => {
    const segment = make(4096);
    const attachment = segment.attach();
    attachment.view()[0] = 9;
    attachment.detach();
    assert.equal(segment.isRemoved(), false, "detach left the segment in place");
    assert.ok(SystemVSegment.list().some((s) => s.id === segment.id));
    using again = segment.attach();
    assert.equal(again.view()[0], 9, "the data outlived the detach");
    segment.remove();
    assert.equal(segment.isRemoved(), true);
    assert.equal(again.closed, false, "remove left the attachment attached");
    again.view()[1] = 8;
    assert.equal(again.view()[0], 9);
    assert.equal(segment.stat().nattch, 1);
    const verbs = (o: object): string[] => Object.getOwnPropertyNames(o);
    assert.ok(!verbs(SystemVAttachment.prototype).includes("remove"));
    assert.ok(!verbs(SystemVSegment.prototype).includes("detach"));
  });
});

test("remove() marks for deletion: key 0 at once, reusable key, Linux attaches while it lingers", () => {
  withSegments((make) => {
    const key = randomKey();
    const segment = make(4096, { key });
    const attachment = segment.attach();
    attachment.view()[0] = 77;
    segment.remove();
    segment.remove(); // idempotent
    const s = segment.stat();
    assert.equal(s.markedForDeletion, true);
    assert.equal(s.key, 0, "Linux sets the key to IPC_PRIVATE");
    // The key is free again at once.
    const successor = make(4096, { key });
    assert.notEqual(successor.id, segment.id);
    // Linux still attaches the lingering segment by id (a separate mapping,
    // so a real shmat happens).
    const late = segment.attach({ readOnly: true });
    assert.equal(late.readOnlyView().getUint8(0), 77);
    assert.equal(segment.stat().nattch, 2);
    late.detach();
    attachment.detach();
    assert.throws(() => segment.stat(), isErrno("EINVAL", /it was removed/));
    assert.equal(segment.isRemoved(), true);
    assert.throws(() => segment.attach(), isErrno("EINVAL", /it was removed/));
    assert.throws(() => SystemVSegment.openById(segment.id), isErrno("EINVAL"));
    segment.remove(); // gone already: still fine
  });
});

test("open by key and by id; key 0 is refused (IPC_PRIVATE would create)", () => {
  withSegments((make) => {
    const key = randomKey();
    const made = make(12345, { key, mode: 0o640 });
    const byKey = SystemVSegment.open(key);
    assert.equal(byKey.id, made.id);
    assert.equal(byKey.size, 12345);
    const byId = SystemVSegment.openById(made.id);
    assert.equal(byId.key, key);
    assert.equal(byId.size, 12345);
    const other = randomKey();
    assert.throws(
      () => SystemVSegment.open(other),
      isErrno("ENOENT", /no segment has key 0x[0-9a-f]{8}; create it first/),
    );
    assert.throws(() => SystemVSegment.open(0), /IPC_PRIVATE/);
    assert.throws(() => SystemVSegment.create(10, { key: 0 }), RangeError);
    // Keys may be given signed, as C's key_t.
    const signed = key | 0;
    assert.equal(SystemVSegment.open(signed).id, made.id);
  });
});

test("read-only attachment: PROT_READ, no writable views, a ReadOnlyView instead", () => {
  withSegments((make) => {
    const segment = make(4096);
    using writer = segment.attach();
    writer.view().set(new TextEncoder().encode("hello\0"), 16);
    using reader = segment.attach({ readOnly: true });
    assert.equal(reader.readOnly, true);
    const entry = readProcMaps().find((e) => e.contains(reader.unsafeAddress))!;
    assert.equal(entry.perms, "r--s");
    assert.throws(
      () => reader.view(),
      (error: unknown) =>
        error instanceof TypeError && /readOnlyView\(\)/.test(error.message) &&
        /SIGSEGV/.test(error.message),
    );
    assert.throws(() => reader.view(Uint32Array), TypeError);
    assert.throws(() => reader.dataView(), TypeError);
    const memory = reader.readOnlyView();
    assert.equal(memory.byteLength, 4096);
    assert.equal(memory.cString(16), "hello");
    assert.throws(() => {
      (memory as unknown as Record<number, number>)[16] = 1;
    }, TypeError);
    assert.equal(memory.getUint8(16), "h".charCodeAt(0), "the write attempt changed nothing");
    reader.detach();
    assert.throws(() => memory.getUint8(0), ClosedError);
    assert.equal(memory.byteLength, 0);
  });
});

test("address hint with SHM_RND: rounded down to SHMLBA; unaligned without it is EINVAL", () => {
  withSegments((make) => {
    const segment = make(2 * pageSize());
    // Find a free, page-aligned range by mapping and unmapping it.
    const probe = Mapping.anonymous(4 * pageSize());
    const free = probe.unsafeAddress + pageSize();
    probe.close();
    using hinted = segment.attach({ address: free + 123 });
    assert.equal(hinted.unsafeAddress, free);
    using plain = segment.attach();
    assert.notEqual(plain.unsafeAddress, hinted.unsafeAddress, "a hinted attach is not shared");
    assert.equal(segment.stat().nattch, 2);
    assert.throws(
      () => segment.attach({ address: free + 2 * pageSize() + 1, roundAddress: false }),
      isErrno("EINVAL", /multiple of SHMLBA/),
    );
    assert.throws(
      () => segment.attach({ address: hinted.unsafeAddress, roundAddress: false }),
      isErrno("EINVAL", /must not overlap an existing mapping/),
    );
  });
});

test("setPermissions changes mode, uid and gid through IPC_SET", () => {
  withSegments((make) => {
    const segment = make(4096);
    segment.setPermissions({ mode: 0o640 });
    assert.equal(segment.stat().mode, 0o640);
    const uid = process.getuid!();
    if (uid === 0) {
      segment.setPermissions({ uid: 4321, gid: 4322 });
      const s = segment.stat();
      assert.equal(s.uid, 4321);
      assert.equal(s.gid, 4322);
      assert.equal(s.cuid, 0, "the creator stays");
      assert.equal(s.mode, 0o640, "IPC_SET kept the mode");
    }
    assert.throws(() => segment.setPermissions({ mode: 0o1777 }), RangeError);
    assert.throws(() => segment.setPermissions({ mode: "0640" as never }), TypeError);
    assert.throws(() => segment.setPermissions({ uid: -1 }), RangeError);
  });
});

test(
  "lock() and unlock() set and clear SHM_LOCKED (as root)",
  { skip: process.getuid!() === 0 ? false : skipReason("SHM_LOCK needs root here") },
  () => {
    withSegments((make) => {
      const segment = make(4096);
      segment.lock();
      assert.equal(segment.stat().locked, true);
      assert.equal(SystemVSegment.list().find((s) => s.id === segment.id)?.locked, true);
      segment.unlock();
      assert.equal(segment.stat().locked, false);
    });
  },
);

test("list() reads /proc/sysvipc/shm: what ipcs -m shows", () => {
  withSegments((make) => {
    const key = randomKey();
    const segment = make(7777, { key, mode: 0o604 });
    using attachment = segment.attach();
    const entry = SystemVSegment.list().find((s) => s.id === segment.id);
    assert.ok(entry !== undefined);
    assert.equal(entry.key, key);
    assert.equal(entry.perms, 0o604);
    assert.equal(entry.size, 7777);
    assert.equal(entry.nattch, 1);
    assert.equal(entry.cpid, process.pid);
    assert.equal(entry.uid, process.getuid!());
    if (process.getuid!() === 0) assert.equal(entry.owner, "root");
    assert.equal(entry.markedForDeletion, false);
    assert.ok(entry.atime instanceof Date);
    assert.equal(entry.dtime, null);
    const mine = procSegments().find((s) => s.id === segment.id)!;
    assert.equal(mine.size, entry.size);
    assert.equal(attachment.byteLength, 7777);
  });
});

// What this proves is decodeShmidDs's field mapping (each C field to its
// property) under every layout; the offsets themselves are pinned against
// independent sources: the C compiler (below) and Apple's headers (platform_test).
test("decodeShmidDs maps every shmid_ds field to its property under each platform's layout", () => {
  const values: Record<string, number> = {
    "shm_perm.__key": -559038737, // 0xdeadbeef as key_t
    "shm_perm.uid": 1001,
    "shm_perm.gid": 1002,
    "shm_perm.cuid": 1003,
    "shm_perm.cgid": 1004,
    "shm_perm.mode": 0o1640,
    shm_segsz: 123456789,
    shm_atime: 1700000000,
    shm_dtime: 1700000001,
    shm_ctime: 1700000002,
    shm_cpid: 4242,
    shm_lpid: 4343,
    shm_nattch: 3,
  };
  for (const p of [LINUX_X86_64, LINUX_AARCH64, DARWIN_AARCH64]) {
    const layout = p.structs.shmid_ds;
    const bytes = allocStruct(layout);
    for (const [name, value] of Object.entries(values)) writeField(bytes, layout, name, value);
    assert.deepEqual(decodeShmidDs(bytes, layout), {
      key: 0xdeadbeef,
      uid: 1001,
      gid: 1002,
      cuid: 1003,
      cgid: 1004,
      mode: 0o1640,
      segsz: 123456789,
      atime: 1700000000,
      dtime: 1700000001,
      ctime: 1700000002,
      cpid: 4242,
      lpid: 4343,
      nattch: 3,
    }, `${p.os}-${p.arch}`);
  }
  assert.notEqual(
    DARWIN_AARCH64.structs.shmid_ds.fields.shm_segsz!.offset,
    LINUX_X86_64.structs.shmid_ds.fields.shm_segsz!.offset,
  );
});

// The C compiler fills a struct shmid_ds by field name and prints its bytes:
// decoding them checks this machine's layout against an independent source.
const SHMID_DS_C = `#include <stdio.h>
#include <string.h>
#include <sys/shm.h>
int main(void) {
  struct shmid_ds d;
  memset(&d, 0, sizeof d);
  d.shm_perm.__key = (key_t)0xdeadbeef;
  d.shm_perm.uid = 1001; d.shm_perm.gid = 1002; d.shm_perm.cuid = 1003; d.shm_perm.cgid = 1004;
  d.shm_perm.mode = 01640; d.shm_segsz = 123456789;
  d.shm_atime = 1700000000; d.shm_dtime = 1700000001; d.shm_ctime = 1700000002;
  d.shm_cpid = 4242; d.shm_lpid = 4343; d.shm_nattch = 3;
  const unsigned char *p = (const unsigned char *)&d;
  for (size_t i = 0; i < sizeof d; i++) printf("%02x", p[i]);
  return 0;
}
`;

test("shmid_ds bytes laid out by the C compiler decode to the values C put there", {
  skip: platform.os === "linux" && have("cc")
    ? false
    : skipReason("needs Linux and a C compiler (cc)"),
}, () => {
  const dir = tempDir();
  try {
    writeFileSync(join(dir.path, "shmid_ds.c"), SHMID_DS_C);
    const exe = join(dir.path, "shmid_ds");
    execFileSync("cc", ["-o", exe, join(dir.path, "shmid_ds.c")]);
    const hex = execFileSync(exe, { encoding: "utf8" }).trim();
    assert.equal(hex.length / 2, platform.structs.shmid_ds.size, "sizeof(struct shmid_ds)");
    const bytes = new Uint8Array(hex.match(/../g)!.map((h) => parseInt(h, 16)));
    assert.deepEqual(decodeShmidDs(bytes), {
      key: 0xdeadbeef,
      uid: 1001,
      gid: 1002,
      cuid: 1003,
      cgid: 1004,
      mode: 0o1640,
      segsz: 123456789,
      atime: 1700000000,
      dtime: 1700000001,
      ctime: 1700000002,
      cpid: 4242,
      lpid: 4343,
      nattch: 3,
    });
  } finally {
    dir.remove();
  }
});

test("thin wrappers: shmget, unsafeShmat, unsafeShmdt, shmctl IPC_STAT and IPC_RMID", () => {
  const id = shmget(C.IPC_PRIVATE, 4096, C.IPC_CREAT | C.IPC_EXCL | 0o600);
  try {
    const address = unsafeShmat(id, 0, 0);
    assert.equal(shmctlStat(id).nattch, 1);
    unsafeShmdt(address);
    assert.equal(shmctlStat(id).nattch, 0);
    assert.throws(() => unsafeShmdt(address), isErrno("EINVAL", /no segment is attached/));
  } finally {
    shmctlRemove(id);
  }
  assert.throws(() => shmctlStat(id), isErrno("EINVAL", /it was removed/));
  assert.throws(() => shmctlRemove(id), (error: unknown) => error instanceof ErrnoError);
  assert.throws(() => shmget(2 ** 32, 1, 0), RangeError);
  assert.throws(() => shmget(0, -1, 0), RangeError);
  assert.throws(() => unsafeShmat(-1, 0, 0), RangeError);
});

test("arguments are checked before any C call", () => {
  for (const bad of [0, -1, 1.5, NaN, Infinity, 2 ** 53]) {
    assert.throws(() => SystemVSegment.create(bad), RangeError, String(bad));
  }
  for (const bad of ["4096", null, undefined, 4096n]) {
    assert.throws(() => SystemVSegment.create(bad as never), TypeError, String(bad));
  }
  assert.throws(() => SystemVSegment.create(4096, { mode: 0o1000 }), RangeError);
  assert.throws(() => SystemVSegment.create(4096, { key: 2 ** 32 }), RangeError);
  assert.throws(() => SystemVSegment.create(4096, { key: -(2 ** 31) - 1 }), RangeError);
  assert.throws(() => SystemVSegment.create(4096, { exclusive: "no" as never }), TypeError);
  assert.throws(() => SystemVSegment.create(4096, "private" as never), TypeError);
  assert.throws(() => SystemVSegment.open("1" as never), TypeError);
  assert.throws(() => SystemVSegment.open(1, { size: -1 }), RangeError);
  assert.throws(() => SystemVSegment.openById(-1), RangeError);
  assert.throws(() => SystemVSegment.openById(1.5), RangeError);
  withSegments((make) => {
    const segment = make(4096);
    assert.throws(() => segment.attach({ readOnly: 1 as never }), TypeError);
    assert.throws(() => segment.attach({ address: -4096 }), RangeError);
    assert.throws(() => segment.attach({ address: "0x1000" as never }), TypeError);
    assert.equal(segment.stat().nattch, 0, "nothing was attached by the failed calls");
  });
});

test("a detached attachment refuses views and addresses; detach is idempotent; using detaches", () => {
  withSegments((make) => {
    const segment = make(4096);
    const attachment = segment.attach();
    attachment.detach();
    attachment.detach();
    attachment.close();
    assert.equal(attachment.closed, true);
    assert.equal(attachment.byteLength, 0);
    assert.throws(() => attachment.view(), ClosedError);
    assert.throws(() => attachment.dataView(), ClosedError);
    assert.throws(() => attachment.readOnlyView(), ClosedError);
    assert.throws(() => attachment.unsafeAddress, ClosedError);
    {
      using scoped = segment.attach();
      scoped.view()[0] = 1;
      assert.equal(segment.stat().nattch, 1);
    }
    assert.equal(segment.stat().nattch, 0);
  });
});

test("a view's buffer transferred away survives detach: the range is tombstoned, the alias reads 0", () => {
  withSegments((make) => {
    const segment = make(4096);
    const attachment = segment.attach();
    const view = attachment.view();
    view[0] = 99;
    const moved = new Uint8Array(view.buffer.transfer());
    assert.equal(moved[0], 99);
    const count = tombstones.count;
    attachment.detach();
    assert.equal(tombstones.count, count + 1);
    assert.equal(moved[0], 0, "the alias now sees zero pages, not the segment");
    moved[0] = 1; // lands in private zero pages
    assert.equal(segment.stat().nattch, 0, "the segment was detached by the tombstone");
    using fresh = segment.attach();
    assert.equal(fresh.view()[0], 99, "the segment kept its data");
  });
});

test("a forgotten attachment is detached by the garbage collector", async () => {
  const segment = SystemVSegment.create(4096);
  try {
    (() => {
      const attachment = segment.attach();
      attachment.view()[0] = 1;
    })();
    assert.equal(segment.stat().nattch, 1);
    let nattch = 1;
    for (let i = 0; i < 50 && nattch !== 0; i++) {
      assert.ok(collectGarbage(), "run deno test with --v8-flags=--expose-gc");
      await tick(10);
      nattch = segment.stat().nattch;
    }
    assert.equal(nattch, 0);
    using again = segment.attach();
    assert.equal(again.view()[0], 1);
  } finally {
    segment.remove();
  }
});

test("a view keeps its mapping alive after its attachment is dropped, until the view goes too", async () => {
  const segment = SystemVSegment.create(4096);
  try {
    const held = { view: (() => segment.attach().view())() };
    held.view[0] = 3;
    for (let i = 0; i < 5; i++) {
      assert.ok(collectGarbage(), "run deno test with --v8-flags=--expose-gc");
      await tick(10);
    }
    assert.equal(held.view.length, 4096, "the view was not detached under the user");
    assert.equal(held.view[0], 3);
    assert.equal(segment.stat().nattch, 1);
    held.view = new Uint8Array(0);
    let nattch = 1;
    for (let i = 0; i < 50 && nattch !== 0; i++) {
      collectGarbage();
      await tick(10);
      nattch = segment.stat().nattch;
    }
    assert.equal(nattch, 0);
  } finally {
    segment.remove();
  }
});

test("ipcs -m is as the suite found it", () => {
  assert.ok(before !== undefined);
  assertSegmentsRestored(before);
});

/**
 * System V interop: shmkit's segments as util-linux `ipcs -m` and `ipcrm`
 * see them, a C program (compiled here with the machine's cc from
 * tests/fixtures/sysv_peer.c) meeting shmkit at an ftok key both ways, the
 * real shmget limit errors provoked inside a separate IPC namespace
 * (`unshare --ipc`, as root), and the SIGSEGV a writable view of a
 * read-only attachment would cause. Tests skip, saying why, where the
 * machine lacks ipcs, cc or unshare.
 *
 * @module
 */
import { before as beforeAll, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { ErrnoError, ftok, SystemVSegment } from "../mod.ts";
import { have, runtime, skipReason, tempDir } from "./helpers.ts";
import {
  assertSegmentsRestored,
  compileFixture,
  FIXTURES,
  ipcsRows,
  ourPids,
  randomKey,
  runtimeCommand,
  type SegmentSnapshot,
  segmentSnapshot,
  spawnTracked,
} from "./fixtures/sysv_support.ts";

const NO_IPCS = have("ipcs") && have("ipcrm") ? false : skipReason("util-linux ipcs/ipcrm missing");
const NO_CC = have("cc") ? false : skipReason("no C compiler (cc) to build the C peer");

function canUnshareIpc(): boolean {
  if (process.getuid?.() !== 0 || !have("unshare")) return false;
  return spawnSync("unshare", ["--ipc", "true"]).status === 0;
}
const NO_UNSHARE = canUnshareIpc()
  ? false
  : skipReason("unshare --ipc needs root and util-linux unshare");

let before: SegmentSnapshot | undefined;

function hex(key: number): string {
  return `0x${key.toString(16).padStart(8, "0")}`;
}

beforeAll(() => {
  before = segmentSnapshot();
});

test(
  "ipcs -m shows shmkit's segment with its key, perms, size and nattch",
  { skip: NO_IPCS },
  () => {
    const key = randomKey();
    const segment = SystemVSegment.create(12345, { key, mode: 0o640 });
    try {
      const row = () => ipcsRows().find((r) => r.id === segment.id);
      let shown = row();
      assert.ok(shown !== undefined, "ipcs -m does not list the segment");
      assert.equal(shown.key, hex(key));
      assert.equal(shown.perms, "640");
      assert.equal(shown.bytes, 12345);
      assert.equal(shown.nattch, 0);
      const a = segment.attach();
      const b = segment.attach(); // shares a's mapping
      const r = segment.attach({ readOnly: true });
      shown = row()!;
      assert.equal(shown.nattch, 2, "two mappings: read-write (shared by 2) and read-only");
      segment.setPermissions({ mode: 0o604 });
      assert.equal(row()!.perms, "604");
      for (const attachment of [a, b, r]) attachment.detach();
      assert.equal(row()!.nattch, 0);
      segment.lock();
      assert.match(row()!.status, /locked/);
      segment.unlock();
    } finally {
      segment.remove();
    }
    assert.equal(ipcsRows().find((r) => r.id === segment.id), undefined, "removed and gone");
  },
);

test("list() agrees with ipcs -m on every segment", { skip: NO_IPCS }, () => {
  const segments = [
    SystemVSegment.create(4096),
    SystemVSegment.create(100000, { key: randomKey(), mode: 0o644 }),
  ];
  const attachment = segments[1]!.attach();
  try {
    // Rows ipcs shows both before and after list() existed while list() read: all must be there.
    const first = new Set(ipcsRows().map((r) => r.id));
    const listed = new Map(SystemVSegment.list().map((s) => [s.id, s]));
    const rows = ipcsRows().filter((r) => first.has(r.id));
    for (const segment of segments) assert.ok(listed.has(segment.id), `list() misses ${segment}`);
    assert.ok(rows.length >= 2);
    for (const row of rows) {
      const entry = listed.get(row.id);
      assert.ok(entry !== undefined, `list() misses the segment ipcs -m shows: ${row.line}`);
      assert.equal(hex(entry.key), row.key, row.line);
      assert.equal(entry.owner, row.owner, row.line);
      assert.equal(entry.perms.toString(8), row.perms.replace(/^0+(?=.)/, ""), row.line);
      assert.equal(entry.size, row.bytes, row.line);
      // Another process may attach its own segments between the two reads.
      if (ourPids.has(entry.cpid)) assert.equal(entry.nattch, row.nattch, row.line);
    }
    for (const segment of segments) assert.ok(rows.some((r) => r.id === segment.id));
  } finally {
    attachment.detach();
    for (const segment of segments) segment.remove();
  }
});

test("ipcrm -m run outside is seen by shmkit as removed", { skip: NO_IPCS }, () => {
  const segment = SystemVSegment.create(4096, { key: randomKey() });
  try {
    assert.equal(segment.isRemoved(), false);
    execFileSync("ipcrm", ["-m", String(segment.id)]);
    assert.equal(segment.isRemoved(), true);
    assert.throws(
      () => segment.stat(),
      (error: unknown) =>
        error instanceof ErrnoError && error.code === "EINVAL" && error.id === segment.id &&
        /it was removed \(IPC_RMID, ipcrm -m\)/.test(error.message),
    );
    assert.throws(
      () => segment.attach(),
      (error: unknown) =>
        error instanceof ErrnoError && error.syscall === "shmat" &&
        /it was removed/.test(error.message),
    );
    assert.throws(
      () => SystemVSegment.open(segment.key),
      (error: unknown) => error instanceof ErrnoError && error.code === "ENOENT",
    );
  } finally {
    segment.remove(); // already gone: not an error
  }
});

test(
  "ipcrm -m while attached: the memory lives on until the last detach",
  { skip: NO_IPCS },
  () => {
    const segment = SystemVSegment.create(4096, { key: randomKey() });
    const attachment = segment.attach();
    try {
      attachment.view()[0] = 5;
      execFileSync("ipcrm", ["-m", String(segment.id)]);
      assert.equal(segment.isRemoved(), true);
      const s = segment.stat();
      assert.equal(s.markedForDeletion, true);
      assert.equal(s.key, 0);
      assert.match(ipcsRows().find((r) => r.id === segment.id)!.status, /dest/);
      attachment.view()[1] = 6;
      assert.deepEqual([...attachment.view().subarray(0, 2)], [5, 6]);
    } finally {
      attachment.detach();
      segment.remove();
    }
    assert.equal(ipcsRows().find((r) => r.id === segment.id), undefined);
  },
);

test("C creates from an ftok key and writes; shmkit opens the same key and reads", {
  skip: NO_CC,
}, () => {
  console.log("compiling tests/fixtures/sysv_peer.c with cc");
  const dir = tempDir();
  let created: SystemVSegment | undefined;
  try {
    const peer = compileFixture("sysv_peer", dir.path);
    const keyFile = join(dir.path, "key");
    writeFileSync(keyFile, "");
    const result = spawnTracked(peer, ["create", keyFile, "65", "8192", "0xc0ffee", "from C"]);
    assert.equal(result.status, 0, result.stdout + result.stderr);
    const made = JSON.parse(result.stdout) as { key: number; id: number };
    const key = ftok(keyFile, 65);
    assert.equal(key, made.key, "shmkit's ftok gives C's key");
    created = SystemVSegment.open(key);
    assert.equal(created.id, made.id);
    assert.equal(created.size, 8192);
    using reader = created.attach({ readOnly: true });
    const memory = reader.readOnlyView();
    assert.equal(memory.getUint32(0, true), 0xc0ffee);
    assert.equal(memory.cString(8), "from C");
    const s = created.stat();
    assert.equal(s.cpid, result.pid);
    assert.equal(s.mode, 0o600);
    assert.equal(s.nattch, 1);
  } finally {
    created?.remove();
    dir.remove();
  }
});

test("shmkit creates from an ftok key and writes; C reads it and agrees on IPC_STAT", {
  skip: NO_CC,
}, () => {
  console.log("compiling tests/fixtures/sysv_peer.c with cc");
  const dir = tempDir();
  let segment: SystemVSegment | undefined;
  try {
    const peer = compileFixture("sysv_peer", dir.path);
    const keyFile = join(dir.path, "key");
    writeFileSync(keyFile, "");
    segment = SystemVSegment.create(20000, { key: ftok(keyFile, 200), mode: 0o640 });
    using writer = segment.attach();
    writer.dataView().setUint32(0, 123456789, true);
    writer.view().set(new TextEncoder().encode("from shmkit\0"), 8);
    const result = spawnTracked(peer, ["read", keyFile, "200"]);
    assert.equal(result.status, 0, result.stdout + result.stderr);
    const read = JSON.parse(result.stdout) as {
      key: number;
      id: number;
      value: number;
      text: string;
      stat: Record<string, number>;
    };
    assert.equal(read.key, segment.key);
    assert.ok(read.key > 0x7fffffff, "proj_id 200 sets the top bit: both sides read it unsigned");
    assert.equal(read.id, segment.id);
    assert.equal(read.value, 123456789);
    assert.equal(read.text, "from shmkit");
    assert.equal(read.stat.nattch, 2, "C saw shmkit's attachment and its own");
    assert.equal(read.stat.segsz, 20000);
    // The C program's IPC_STAT, field by field, against shmkit's decoding.
    const peerStat = spawnTracked(peer, ["stat", String(segment.id)]);
    assert.equal(peerStat.status, 0, peerStat.stdout);
    const c = (JSON.parse(peerStat.stdout) as { stat: Record<string, number> }).stat;
    const s = segment.stat();
    assert.deepEqual(
      {
        key: s.key,
        uid: s.uid,
        gid: s.gid,
        cuid: s.cuid,
        cgid: s.cgid,
        mode: s.mode,
        segsz: s.size,
        atime: (s.atime?.getTime() ?? 0) / 1000,
        dtime: (s.dtime?.getTime() ?? 0) / 1000,
        ctime: (s.ctime?.getTime() ?? 0) / 1000,
        cpid: s.cpid,
        lpid: s.lpid,
        nattch: s.nattch,
      },
      { ...c, mode: c.mode! & 0o777 },
    );
    // Node's child_process forks, and a fork attaches (its exec detaches): there the stat
    // child is the last; Deno and Bun start children without a fork.
    const last = runtime === "node" ? peerStat.pid : result.pid;
    assert.equal(s.lpid, last, "the C reader's shmdt was the last attach or detach");
  } finally {
    segment?.remove();
    dir.remove();
  }
});

test(
  "attachments dropped without detach are bounded (maxLive, EMFILE) before kernel.shmmni runs out",
  {
    skip: NO_UNSHARE,
  },
  () => {
    const [program, args] = runtimeCommand(join(FIXTURES, "sysv_attach_cycle_child.ts"));
    const result = spawnTracked("unshare", ["--ipc", program, ...args], {
      SHMKIT_PARENT_IPC_NS: readlinkSync("/proc/self/ns/ipc"),
    });
    assert.equal(result.status, 0, result.stdout + result.stderr);
    const out = JSON.parse(result.stdout);
    assert.notEqual(out.namespace, readlinkSync("/proc/self/ns/ipc"));
    // Detached cycles: more than shmmni (32) of them, nothing left behind.
    assert.equal(out.detachedCycles, 100);
    assert.equal(out.segmentsAfterDetached, 0);
    // Held attachments: the 9th is refused with a sentence naming the cause.
    assert.equal(out.refusedAt, 8);
    assert.equal(out.refusal.code, "EMFILE");
    assert.match(out.refusal.message, /8 System V attachments that were never detached \(limit 8/);
    assert.match(out.refusal.message, /8 of them hold segments that were removed/);
    assert.equal(out.liveAtRefusal, 8);
    assert.equal(out.segmentsAtRefusal, 8);
    assert.equal(out.liveAfterDetach, 0);
    // Dropped attachments never let shmget reach kernel.shmmni.
    assert.equal(out.dropped.enospc, 0);
    assert.ok(out.dropped.most <= 8, `up to ${out.dropped.most} segments lived at once`);
  },
);

test("real limit errors, provoked in a new IPC namespace (unshare --ipc) by a child runtime", {
  skip: NO_UNSHARE,
}, () => {
  const [program, args] = runtimeCommand(join(FIXTURES, "sysv_limits_child.ts"));
  const result = spawnTracked("unshare", ["--ipc", program, ...args], {
    SHMKIT_PARENT_IPC_NS: readlinkSync("/proc/self/ns/ipc"),
  });
  assert.equal(result.status, 0, result.stdout + result.stderr);
  const out = JSON.parse(result.stdout) as Record<string, { code: string; message: string }> & {
    namespace: string;
    limits: Record<string, unknown>;
    segmentsAtStart: number;
    segmentsAtEnd: number;
  };
  assert.notEqual(out.namespace, readlinkSync("/proc/self/ns/ipc"));
  assert.deepEqual(out.limits, { shmmax: "8192", shmall: "4", shmmni: 3 });
  assert.equal(out.segmentsAtStart, 0);
  assert.equal(out.overShmmax!.code, "EINVAL");
  assert.equal(
    out.overShmmax!.message,
    "Cannot shmget: EINVAL (Invalid argument): kernel.shmmax is 8192 bytes; 16384 were asked; raise it with sysctl -w kernel.shmmax=16384 (it is per IPC namespace)",
  );
  assert.equal(out.overShmall!.code, "ENOSPC");
  assert.match(
    out.overShmall!.message,
    /^Cannot shmget: ENOSPC .*: kernel\.shmall is 4 pages \(16384 bytes\); 4 are in use and this segment needs 1 more \(4096 bytes\); raise it with sysctl -w kernel\.shmall=5/,
  );
  assert.equal(out.overShmmni!.code, "ENOSPC");
  assert.match(
    out.overShmmni!.message,
    /: kernel\.shmmni is 3 segments and 3 exist; remove unused ones \(ipcs -m, ipcrm\) or raise it with sysctl -w kernel\.shmmni=4$/,
  );
  assert.equal(out.segmentsAtEnd, 0);
  // The machine's own limits were not touched.
  assert.ok(SystemVSegment.limits().shmmax > 8192n);
});

test("why read-only attachments hand out no Uint8Array: a write through one is SIGSEGV", () => {
  const [program, args] = runtimeCommand(join(FIXTURES, "sysv_rdonly_crash_child.ts"));
  const result = spawnTracked(program, args);
  assert.match(result.stdout, /attached \d+, reads 0/);
  assert.match(result.stdout, /safe write refused: TypeError/);
  assert.doesNotMatch(result.stdout, /survived/);
  const died = result.signal === "SIGSEGV" || result.status === 139 ||
    // Bun catches the signal, reports a crash, and exits with its own status.
    (result.status !== 0 && /Segmentation fault|SIGSEGV|panic/i.test(result.stderr));
  assert.ok(died, `expected a SIGSEGV death: status ${result.status} signal ${result.signal}`);
});

test("ipcs -m is as the suite found it", () => {
  assert.ok(before !== undefined);
  assertSegmentsRestored(before);
});

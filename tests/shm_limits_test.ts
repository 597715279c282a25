/**
 * Hostile names and sizes that can't be backed: what a planted FIFO, socket,
 * symlink or device does to open() and list() (refused, never blocked), and
 * sizes refused before anything is allocated.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { Mapping, SharedMemory } from "../mod.ts";
import { have, runtime, skipReason, tempDir } from "./helpers.ts";
import { leftovers, runFixture, RUNTIMES, testName } from "./fixtures/runtimes.ts";

const self = RUNTIMES.find((r) => r.name === runtime)!;

interface Said {
  readonly opened?: boolean;
  readonly name?: string;
  readonly code?: string | null;
  readonly message?: string;
}

/** Runs the hostile-open child; a blocked open would be killed (SIGKILL) and fail here. */
async function hostile(how: string, target: string): Promise<Said> {
  const exit = await runFixture(self, "shm_hostile_child.ts", [how, target]);
  assert.equal(exit.signal, null, `the child was killed (blocked?): ${exit.stderr}`);
  assert.equal(exit.code, 0, exit.stderr);
  const line = exit.stdout.trim().split("\n").pop() ?? "";
  return JSON.parse(line) as Said;
}

test("open() of a FIFO planted under the name is refused at once, read-only or not", async () => {
  const name = testName("fifo");
  execFileSync("mkfifo", ["-m", "600", "/dev/shm" + name]);
  try {
    for (const how of ["open-ro", "open-rw"]) {
      const said = await hostile(how, name);
      assert.equal(said.opened, undefined, `${how} opened a FIFO`);
      assert.equal(said.name, "Error", said.message);
      assert.match(said.message ?? "", /FIFO/);
      assert.match(said.message ?? "", /not a shared memory object/);
    }
  } finally {
    rmSync("/dev/shm" + name, { force: true });
  }
});

test("open() of a socket planted under the name is an error naming the socket", {
  skip: have("python3") ? false : skipReason("python3 is not installed"),
}, async () => {
  const name = testName("sock");
  const path = "/dev/shm" + name;
  execFileSync("python3", [
    "-c",
    "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])",
    path,
  ]);
  try {
    const said = await hostile("open-ro", name);
    assert.equal(said.opened, undefined);
    assert.equal(said.code, "ENXIO", said.message);
    assert.match(said.message ?? "", /socket/);
    assert.equal(SharedMemory.list({ prefix: name }).length, 0, "list() showed a socket");
  } finally {
    rmSync(path, { force: true });
  }
});

test("a symlink planted in /dev/shm is neither opened nor listed (lstat, O_NOFOLLOW)", () => {
  const dir = tempDir();
  const name = testName("link");
  const target = join(dir.path, "target");
  writeFileSync(target, new Uint8Array(4096));
  symlinkSync(target, "/dev/shm" + name);
  try {
    assert.throws(() => SharedMemory.open(name, { readOnly: true }), (error: unknown) => {
      assert.equal((error as { code?: string }).code, "ELOOP", String(error));
      assert.match((error as Error).message, /symbolic link/);
      return true;
    });
    assert.deepEqual(SharedMemory.list({ prefix: name }), [], "list() followed the symlink");
    // The same name as a real object is listed: the filter is the link, not the name.
    rmSync("/dev/shm" + name);
    using shm = SharedMemory.create({ name, size: 4096 });
    assert.deepEqual(SharedMemory.list({ prefix: name }).map((i) => i.name), [shm.name]);
  } finally {
    rmSync("/dev/shm" + name, { force: true });
    dir.remove();
  }
});

test("Mapping.file refuses a FIFO (without blocking), a device and a directory", async () => {
  const dir = tempDir();
  try {
    const fifo = join(dir.path, "fifo");
    execFileSync("mkfifo", [fifo]);
    for (const how of ["map-file-ro", "map-file"]) {
      const said = await hostile(how, fifo);
      assert.equal(said.opened, undefined, `${how} mapped a FIFO`);
      assert.match(said.message ?? "", /FIFO.*not a mappable file/);
    }
    assert.throws(
      () => Mapping.file("/dev/zero", { readOnly: true, length: 4096 }),
      /character device, not a mappable file/,
    );
    const sub = join(dir.path, "sub");
    mkdirSync(sub);
    assert.throws(() => Mapping.file(sub, { readOnly: true }), /directory, not a mappable file/);
  } finally {
    dir.remove();
  }
});

test("the suite leaves /dev/shm as it found it", () => {
  assert.deepEqual(leftovers(), []);
});

type Outcome = { ok: true; size?: number } | { code: string; message: string };

/** Runs shm_backing_child.ts under `wrapper` (prlimit, unshare) and returns what it printed. */
function backing(wrapper: string[], scenario: string): Record<string, Outcome> {
  const script = join(import.meta.dirname!, "fixtures", "shm_backing_child.ts");
  const out = execFileSync(wrapper[0]!, [
    ...wrapper.slice(1),
    self.program,
    ...self.prefix,
    script,
    scenario,
  ], {
    encoding: "utf8",
    timeout: 120_000,
  });
  return JSON.parse(out.trim().split("\n").pop() ?? "{}");
}

function refused(outcome: Outcome | undefined, code: string, fragment: RegExp): void {
  assert.ok(
    outcome !== undefined && "code" in outcome,
    `expected ${code}, got ${JSON.stringify(outcome)}`,
  );
  assert.equal(outcome.code, code, outcome.message);
  assert.match(outcome.message, fragment);
  assert.match(outcome.message, /refused before anything was allocated/);
}

// The child runs under a file size limit below 2^46 too: were the memory check
// ever gone, the kernel would stop the allocation (EFBIG) instead of the OOM killer.
test("sizes beyond memory + swap are ENOMEM before any allocation (memfd, shm, resize)", {
  skip: have("prlimit") ? false : skipReason("prlimit (util-linux) is not installed"),
}, () => {
  const result = backing(["prlimit", `--fsize=${2 ** 45}`], "huge");
  for (const key of ["memfd", "shm", "resize"]) {
    refused(result[key], "ENOMEM", /MemAvailable \+ SwapFree/);
  }
});

test("RLIMIT_FSIZE is EFBIG up front, never SIGXFSZ (prlimit --fsize on a child)", {
  skip: have("prlimit") ? false : skipReason("prlimit (util-linux) is not installed"),
}, () => {
  const result = backing(["prlimit", `--fsize=${64 << 20}`], "fsize");
  for (const key of ["shm", "shmSparse", "memfd", "memfdSparse", "resize"]) {
    refused(result[key], "EFBIG", /RLIMIT_FSIZE of 67108864 bytes/);
  }
  assert.deepEqual(result.small, { ok: true, size: 1 << 19 });
});

test("a 1 MiB tmpfs on /dev/shm (mount namespace): ENOSPC up front naming its room", {
  skip: have("unshare") && process.getuid?.() === 0
    ? false
    : skipReason("needs unshare (util-linux) and root to mount a tmpfs in a mount namespace"),
}, () => {
  const result = backing([
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    'mount -t tmpfs -o size=1m tmpfs /dev/shm && exec "$@"',
    "sh",
  ], "tmpfs");
  refused(result.reserved, "ENOSPC", /\/dev\/shm has room for \d+ more bytes/);
  refused(result.sparse, "ENOSPC", /\/dev\/shm holds 1048576 bytes in all/);
  refused(result.resize, "ENOSPC", /\/dev\/shm has room/);
  assert.deepEqual(result.keptSize, { ok: true, size: 1 << 19 });
  assert.deepEqual(result.left, { ok: true, size: 0 });
});

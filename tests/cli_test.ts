/**
 * The `shmkit` CLI (cli/main.ts), run as a subprocess under the runtime
 * running this suite, over objects made by Python
 * (`multiprocessing.shared_memory`), util-linux `ipcmk`, shmkit children
 * that stay alive or are SIGKILLed, and this process. Every gc run names
 * its targets, so other suites' objects on this machine are never touched;
 * every object made here is removed at the end.
 *
 * @module
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import process from "node:process";
import { SystemVSegment } from "../mod.ts";
import { have, skipReason } from "./helpers.ts";
import { repoPath, RUNTIMES, startFixture } from "./fixtures/runtimes.ts";

const RUNTIME = RUNTIMES.find((r) => r.name === ("Bun" in globalThis ? "bun" : "deno"))!;
const CLI = repoPath("cli/main.ts");
const SLOW = { timeout: 120_000 };

const NO_PYTHON = have("python3") ? false : skipReason("python3 is not installed");
const NO_IPCMK = have("ipcmk") && have("ipcrm")
  ? false
  : skipReason("util-linux ipcmk/ipcrm missing");

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function cli(args: readonly string[], wrapper: readonly string[] = []): Run {
  const argv = [...wrapper, RUNTIME.program, ...RUNTIME.prefix, CLI, ...args];
  const result = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout: 60_000 });
  if (result.error !== undefined) throw result.error;
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function cliJson<T>(args: readonly string[]): T {
  const run = cli([...args, "--json"]);
  assert.equal(run.code, 0, `shmkit ${args.join(" ")} failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

function randomHex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

// Everything this suite makes, removed at the end whatever happened.
const madeNames = new Set<string>();
const madeSegments = new Set<number>();
const madeSemaphores = new Set<number>();

after(() => {
  for (const name of madeNames) {
    spawnSync("python3", [
      "-c",
      `import os\ntry: os.unlink(${
        JSON.stringify("/dev/shm" + name)
      })\nexcept FileNotFoundError: pass`,
    ]);
  }
  for (const id of madeSegments) spawnSync("ipcrm", ["-m", String(id)]);
  for (const id of madeSemaphores) spawnSync("ipcrm", ["-s", String(id)]);
});

const PY_CREATE = `
import sys
from multiprocessing import resource_tracker, shared_memory
m = shared_memory.SharedMemory(name=sys.argv[1], create=True, size=int(sys.argv[2]))
m.close()
resource_tracker.unregister(m._name, "shared_memory")  # keep it after exit
`;

/** Makes "/NAME" with Python's multiprocessing.shared_memory. */
function pythonCreate(name: string, size: number): void {
  madeNames.add(name);
  const run = spawnSync("python3", ["-c", PY_CREATE, name.slice(1), String(size)], {
    encoding: "utf8",
  });
  assert.equal(run.status, 0, run.stderr);
}

function setCreatorXattr(name: string, value: string): void {
  const hex = [...new TextEncoder().encode(value)].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
  const run = spawnSync("python3", [
    "-c",
    "import os, sys; os.setxattr(sys.argv[1], 'user.shmkit.creator', bytes.fromhex(sys.argv[2]))",
    "/dev/shm" + name,
    hex,
  ], { encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
}

function ipcmk(args: string[]): number {
  const run = spawnSync("ipcmk", args, { encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  const id = Number(/id: (\d+)/.exec(run.stdout)?.[1]);
  assert.ok(Number.isInteger(id), run.stdout);
  return id;
}

function segmentExists(id: number): boolean {
  return readFileSync("/proc/sysvipc/shm", "utf8").split("\n").slice(1)
    .some((line) => line.trim().split(/\s+/)[1] === String(id));
}

interface PosixJson {
  type: string;
  name: string;
  size: number;
  mode: number;
  uid: number;
  creator: { pid: number; alive: string; start: number } | null;
  users: number[];
  randomName: boolean;
}
interface SegmentJson {
  id: number;
  key: string;
  size: number;
  mode: number;
  nattch: number;
  creator: { pid: number; alive: string };
  users: number[];
}
interface SemJson {
  id: number;
  key: string;
  nsems: number;
  mode: number;
}
interface LsJson {
  posix: PosixJson[];
  sysvShm: SegmentJson[];
  sysvSem: SemJson[];
}
interface GcJson {
  action: string;
  type: string;
  target: string;
  reason: string;
}

test("ls --json shows a Python object, an ipcmk segment and an ipcmk semaphore set", {
  ...SLOW,
  skip: NO_PYTHON || NO_IPCMK,
}, () => {
  const name = `/cli-py-${randomHex(6)}`;
  pythonCreate(name, 10000);
  const segment = ipcmk(["-M", "12288", "-p", "0640"]);
  madeSegments.add(segment);
  const sem = ipcmk(["-S", "3", "-p", "0600"]);
  madeSemaphores.add(sem);

  const listing = cliJson<LsJson>(["ls"]);
  const object = listing.posix.find((o) => o.name === name);
  assert.ok(object !== undefined, `${name} not listed`);
  assert.equal(object.type, "posix-shm");
  assert.equal(object.size, 10000);
  assert.equal(object.mode, 0o600);
  assert.equal(object.creator, null, "Python records no creator");
  assert.equal(object.randomName, false);

  const seg = listing.sysvShm.find((s) => s.id === segment);
  assert.ok(seg !== undefined, `segment ${segment} not listed`);
  assert.equal(seg.size, 12288);
  assert.equal(seg.mode, 0o640);
  assert.equal(seg.nattch, 0);
  assert.match(seg.key, /^0x[0-9a-f]{8}$/);
  // ipcmk made it and exited at once.
  assert.ok(seg.creator.pid > 0);
  assert.equal(seg.creator.alive, "dead");

  const set = listing.sysvSem.find((s) => s.id === sem);
  assert.ok(set !== undefined, `semaphore set ${sem} not listed`);
  assert.equal(set.nsems, 3);
  assert.equal(set.mode, 0o600);

  // The table for people: the same rows, aligned under their headings.
  const table = cli(["ls"]);
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.split("\n");
  const header = lines.find((l) => l.startsWith("NAME"))!;
  const row = lines.find((l) => l.startsWith(name + " "))!;
  assert.ok(row !== undefined, table.stdout);
  assert.equal(row.indexOf("0600"), header.indexOf("MODE"), "MODE column aligned");
  assert.ok(lines.some((l) => l.trim().startsWith(`${segment} `)), "segment row");
});

test("stat shows who maps an object and who has a segment attached", {
  ...SLOW,
  skip: NO_PYTHON,
}, async () => {
  const name = `/cli-held-${randomHex(6)}`;
  pythonCreate(name, 4096);
  const holder = spawn("python3", [
    "-c",
    // Python 3.11 registers even an opened object with its resource tracker: unregister.
    "import sys\nfrom multiprocessing import resource_tracker, shared_memory\nm = shared_memory.SharedMemory(name=sys.argv[1])\nresource_tracker.unregister(m._name, 'shared_memory')\nprint('ready', flush=True)\nsys.stdin.read()\nm.close()",
    name.slice(1),
  ], { stdio: ["pipe", "pipe", "inherit"] });
  try {
    await new Promise<void>((resolve, reject) => {
      let seen = "";
      holder.stdout!.on("data", (chunk: Buffer) => {
        seen += chunk.toString();
        if (seen.includes("ready")) resolve();
      });
      holder.on("exit", () => reject(new Error("the Python holder ended early")));
    });
    const info = cliJson<PosixJson>(["stat", name]);
    assert.equal(info.name, name);
    assert.ok(info.users.includes(holder.pid!), `users ${info.users} lack ${holder.pid}`);
    // The same object as /dev/shm/NAME, in the table form.
    const table = cli(["stat", "/dev/shm" + name]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, new RegExp(`users:\\s+.*\\b${holder.pid}\\b`));
  } finally {
    holder.stdin!.end();
    holder.kill("SIGKILL");
  }

  const segment = SystemVSegment.create(4096);
  madeSegments.add(segment.id);
  const attachment = segment.attach();
  try {
    const info = cliJson<SegmentJson>(["stat", String(segment.id)]);
    assert.equal(info.nattch, 1);
    assert.deepEqual(info.users, [process.pid]);
    assert.equal(info.creator.pid, process.pid);
    assert.equal(info.creator.alive, "alive");
  } finally {
    attachment.detach();
    segment.remove();
  }
});

test(
  "stat and rm say what went wrong, with exit 1 for a missing object and 2 for bad usage",
  SLOW,
  () => {
    const missing = `/cli-missing-${randomHex(6)}`;
    const stat = cli(["stat", missing]);
    assert.equal(stat.code, 1);
    assert.match(stat.stderr, /no such object.*shmkit ls/);
    assert.equal(cli(["stat"]).code, 2);
    assert.equal(cli(["frobnicate"]).code, 2);
    assert.equal(cli(["ls", "--bogus"]).code, 2);
    const help = cli(["help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Exit codes/);
    const rm = cli(["rm", missing, "--json"]);
    assert.equal(rm.code, 1);
    const [result] = JSON.parse(rm.stdout) as { removed: boolean; message: string }[];
    assert.equal(result!.removed, false);
    assert.match(result!.message, /ENOENT/);
  },
);

test("rm removes POSIX objects and segments, reports each failure and exits 1 if any failed", {
  ...SLOW,
  skip: NO_PYTHON || NO_IPCMK,
}, () => {
  const a = `/cli-rm-${randomHex(6)}`;
  const b = `/cli-rm-${randomHex(6)}`;
  pythonCreate(a, 4096);
  pythonCreate(b, 4096);
  const segment = ipcmk(["-M", "4096"]);
  madeSegments.add(segment);
  const missing = `/cli-rm-missing-${randomHex(6)}`;
  // The same segment by its key.
  const { key } = cliJson<SegmentJson>(["stat", String(segment)]);
  assert.equal(cliJson<SegmentJson>(["stat", key]).id, segment);

  const run = cli(["rm", a, missing, String(segment), "/dev/shm" + b]);
  assert.equal(run.code, 1, "one target was missing");
  assert.match(run.stderr, new RegExp(`${missing}.*ENOENT`));
  assert.equal(run.stderr.trim().split("\n").length, 1, run.stderr);
  assert.equal(existsSync("/dev/shm" + a), false);
  assert.equal(existsSync("/dev/shm" + b), false);
  assert.equal(segmentExists(segment), false);

  const ok = cli(["rm", "--json", `/cli-rm-none-${randomHex(4)}`]);
  assert.equal(ok.code, 1);
});

test("gc removes a SIGKILLed shmkit creator's object, never a live creator's or a non-shmkit one", {
  ...SLOW,
  skip: NO_PYTHON,
}, async () => {
  const named = `/cli-gc-named-${randomHex(6)}`;
  const live = startFixture(RUNTIME, "cli_creator.ts", [], "ready", 120_000);
  const doomed = startFixture(RUNTIME, "cli_creator.ts", [named], "ready", 120_000);
  try {
    const liveInfo = JSON.parse((await live.ready).slice(6)) as { pid: number; names: string[] };
    const doomedInfo = JSON.parse((await doomed.ready).slice(6)) as {
      pid: number;
      names: string[];
    };
    for (const n of [...liveInfo.names, ...doomedInfo.names]) madeNames.add(n);
    const [liveName] = liveInfo.names as [string];
    const [doomedName, doomedNamed] = doomedInfo.names as [string, string];
    assert.equal(doomedNamed, named);
    // A Python object under a name of shmkit's random form, without a record.
    const impostor = `/shmkit-${randomHex(8)}`;
    pythonCreate(impostor, 4096);

    // The record is there, naming the creator.
    const before = cliJson<PosixJson>(["stat", doomedName]);
    assert.equal(before.creator?.pid, doomedInfo.pid);
    assert.equal(before.creator?.alive, "alive");

    doomed.process.kill("SIGKILL");
    const ended = await doomed.exited;
    assert.equal(ended.signal, "SIGKILL");
    // persist: true: the cleaner leaves it; the creator is dead.
    assert.equal(existsSync("/dev/shm" + doomedName), true);
    assert.equal(cliJson<PosixJson>(["stat", doomedName]).creator?.alive, "dead");

    const scope = [liveName, doomedName, doomedNamed, impostor];
    const dry = cliJson<GcJson[]>(["gc", "--dry-run", ...scope]);
    assert.deepEqual(dry.filter((a) => a.action === "would remove").map((a) => a.target), [
      doomedName,
    ]);
    assert.equal(existsSync("/dev/shm" + doomedName), true, "dry run removes nothing");

    const first = cliJson<GcJson[]>(["gc", ...scope]);
    const byTarget = new Map(first.map((a) => [a.target, a]));
    assert.equal(byTarget.get(doomedName)?.action, "removed");
    assert.equal(byTarget.get(doomedNamed)?.action, "kept");
    assert.match(byTarget.get(doomedNamed)!.reason, /--all-dead/);
    assert.equal(byTarget.get(liveName)?.action, "kept");
    assert.match(byTarget.get(liveName)!.reason, /alive/);
    assert.equal(byTarget.get(impostor)?.action, "kept");
    assert.match(byTarget.get(impostor)!.reason, /no creator record/);
    assert.equal(existsSync("/dev/shm" + doomedName), false);
    assert.equal(existsSync("/dev/shm" + doomedNamed), true);
    assert.equal(existsSync("/dev/shm" + liveName), true);
    assert.equal(existsSync("/dev/shm" + impostor), true);

    const second = cliJson<GcJson[]>(["gc", "--all-dead", ...scope]);
    assert.deepEqual(second.filter((a) => a.action === "removed").map((a) => a.target), [
      doomedNamed,
    ]);
    assert.equal(existsSync("/dev/shm" + liveName), true);
    assert.equal(existsSync("/dev/shm" + impostor), true);
  } finally {
    live.process.kill("SIGKILL");
    doomed.process.kill("SIGKILL");
    await Promise.all([live.exited, doomed.exited]);
  }
});

test(
  "gc checks every recorded creator: a reused pid is dead, garbage and other namespaces are kept",
  {
    ...SLOW,
    skip: NO_PYTHON,
  },
  () => {
    const stat = readFileSync("/proc/self/stat", "utf8");
    const start = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
    const pidns = statSync("/proc/self/ns/pid").ino;
    const cases = {
      self: `${process.pid}:${start}:${pidns}`,
      reused: `${process.pid}:${start + 100_000}:${pidns}`,
      otherNamespace: `1:${start}:${pidns + 1}`,
      garbage: "12:x:\u0000",
      huge: `99999999999:${start}:${pidns}`,
    };
    const names: Record<string, string> = {};
    for (const [label, value] of Object.entries(cases)) {
      const name = `/shmkit-${randomHex(8)}`;
      pythonCreate(name, 4096);
      setCreatorXattr(name, value);
      names[label] = name;
    }
    const result = cliJson<GcJson[]>(["gc", ...Object.values(names)]);
    const action = (label: string): GcJson => result.find((a) => a.target === names[label])!;
    assert.equal(action("self").action, "kept");
    assert.equal(action("reused").action, "removed", "same pid, another start time: a reused pid");
    assert.equal(action("otherNamespace").action, "kept");
    assert.match(action("otherNamespace").reason, /namespace/);
    assert.equal(action("garbage").action, "kept");
    assert.equal(action("huge").action, "kept");
    assert.equal(existsSync("/dev/shm" + names["reused"]), false);
    for (const label of ["self", "otherNamespace", "garbage", "huge"]) {
      assert.equal(existsSync("/dev/shm" + names[label]), true, label);
    }
  },
);

test("gc --all-dead removes an orphaned segment, never an attached one or a live creator's", {
  ...SLOW,
  skip: NO_IPCMK,
}, () => {
  const orphan = ipcmk(["-M", "4096"]);
  madeSegments.add(orphan);
  const attached = ipcmk(["-M", "4096"]);
  madeSegments.add(attached);
  const mine = SystemVSegment.create(4096);
  madeSegments.add(mine.id);
  const attachment = SystemVSegment.openById(attached).attach();
  try {
    const scope = [String(orphan), String(attached), String(mine.id)];
    const plain = cliJson<GcJson[]>(["gc", ...scope]);
    assert.deepEqual(plain, [], "segments only with --all-dead");
    const result = cliJson<GcJson[]>(["gc", "--all-dead", ...scope]);
    const byId = new Map(result.map((a) => [a.target, a]));
    assert.equal(byId.get(String(orphan))?.action, "removed");
    assert.equal(byId.get(String(attached))?.action, "kept");
    assert.match(byId.get(String(attached))!.reason, /attachment/);
    assert.equal(byId.get(String(mine.id))?.action, "kept");
    assert.match(byId.get(String(mine.id))!.reason, /alive/);
    assert.equal(segmentExists(orphan), false);
    assert.equal(segmentExists(attached), true);
    assert.equal(segmentExists(mine.id), true);
  } finally {
    attachment.detach();
    mine.remove();
  }
});

test("limits --json reads each limit from its file, and RLIMIT_FSIZE from the process", {
  ...SLOW,
  skip: have("prlimit") ? false : skipReason("util-linux prlimit missing"),
}, () => {
  interface LimitJson {
    name: string;
    value: number | string | null;
    used: number | null;
    note: string;
  }
  const limits = cliJson<LimitJson[]>(["limits"]);
  const get = (name: string): LimitJson => {
    const found = limits.find((l) => l.name === name);
    assert.ok(found !== undefined, `${name} missing`);
    return found;
  };
  const file = (path: string): string => readFileSync(path, "utf8").trim();
  assert.equal(String(get("kernel.shmmax").value), file("/proc/sys/kernel/shmmax"));
  assert.equal(String(get("kernel.shmmni").value), file("/proc/sys/kernel/shmmni"));
  const sem = file("/proc/sys/kernel/sem").split(/\s+/);
  for (let i = 0; i < 4; i++) assert.equal(String(get(`kernel.sem[${i}]`).value), sem[i]);
  assert.equal(String(get("vm.max_map_count").value), file("/proc/sys/vm/max_map_count"));
  assert.equal(typeof get("/dev/shm size").value, "number");

  const limited = cli(["limits", "--json"], ["prlimit", "--fsize=1073741824:1073741824", "--"]);
  assert.equal(limited.code, 0, limited.stderr);
  const fsize = (JSON.parse(limited.stdout) as LimitJson[]).find((l) => l.name === "RLIMIT_FSIZE");
  assert.equal(fsize?.value, 1073741824);

  const table = cli(["limits"]);
  assert.equal(table.code, 0);
  assert.match(table.stdout, /^kernel\.shmmni\s+[\d,]+/m);
});

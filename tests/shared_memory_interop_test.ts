import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { SharedMemory } from "../mod.ts";
import { have, runtime, skipReason } from "./helpers.ts";
import {
  installed,
  leftovers,
  repoPath,
  RUNTIMES,
  shmExists,
  startFixture,
  testName,
  usedNames,
  waitFor,
} from "./fixtures/runtimes.ts";

const PY = repoPath("tests/fixtures/py_shm.py");
const pythonSkip = have("python3") ? false : skipReason("python3 is not installed");

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function fromHex(text: string): Uint8Array {
  return new Uint8Array(text.match(/../g)!.map((pair) => parseInt(pair, 16)));
}

/**
 * Runs the Python fixture and returns what it printed; Python names objects
 * without the leading "/". Its resource tracker must have nothing to say.
 */
function python(...args: string[]): string {
  const result = spawnSync("python3", [PY, ...args], { encoding: "utf8" });
  assert.equal(result.status, 0, result.stderr);
  assert.doesNotMatch(result.stderr, /leaked|resource_tracker/, result.stderr);
  return result.stdout.trim();
}

test("Python creates, shmkit opens, reads and writes, Python sees the writes", {
  skip: pythonSkip,
}, () => {
  const name = testName("py-create");
  const payload = new TextEncoder().encode("from python");
  try {
    assert.equal(python("create", name.slice(1), "8192", hex(payload)), "ok");
    assert.equal(shmExists(name), true, "Python's object persists for shmkit to open");
    {
      using shm = SharedMemory.open(name);
      assert.equal(shm.byteLength, 8192);
      assert.equal(shm.created, false);
      assert.deepEqual(shm.view().subarray(0, payload.length), payload);
      shm.view().set(new TextEncoder().encode("from shmkit"), 100);
    }
    assert.equal(shmExists(name), true, "shmkit never unlinks what it only opened");
    const seen = fromHex(python("read", name.slice(1), "111"));
    assert.equal(new TextDecoder().decode(seen.subarray(100)), "from shmkit");
  } finally {
    if (shmExists(name)) SharedMemory.unlink(name);
  }
});

test("shmkit creates, Python attaches and sees the bytes, and its writes come back", {
  skip: pythonSkip,
}, () => {
  using shm = SharedMemory.create({ name: testName("py-attach"), size: 4096 });
  shm.view().set([1, 2, 3, 250]);
  assert.equal(python("read", shm.name.slice(1), "4"), "010203fa");
  assert.equal(python("write", shm.name.slice(1), "8", hex(new TextEncoder().encode("py"))), "ok");
  assert.equal(new TextDecoder().decode(shm.view().subarray(8, 10)), "py");
  assert.equal(shmExists(shm.name), true, "Python's attach must not unlink it");
});

test("Python and shmkit hold one object at the same time", { skip: pythonSkip }, async () => {
  const name = testName("py-serve");
  const child = spawn("python3", [PY, "serve", name.slice(1), "4096"], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const closed = new Promise<number | null>((resolve) => child.on("close", resolve));
  try {
    await waitFor(() => stdout.includes("ready"), "python to create the object");
    using shm = SharedMemory.open(name);
    assert.equal(new TextDecoder().decode(shm.view().subarray(0, 12)), "python-hello");
    shm.view().set(new TextEncoder().encode(`shmkit-${runtime}`), 64);
    child.stdin.write("go\n");
    assert.equal(await closed, 0, stderr);
    const answer = new TextDecoder().decode(fromHex(stdout.trim().split("\n").pop()!));
    assert.equal(answer.replace(/\0+$/, ""), `shmkit-${runtime}`);
    assert.equal(shmExists(name), false, "Python unlinked its own object");
    assert.equal(shm.view().subarray(0, 12).length, 12, "our mapping outlives the name");
    assert.doesNotMatch(stderr, /leaked/);
  } finally {
    child.kill("SIGKILL");
    if (shmExists(name)) SharedMemory.unlink(name);
  }
});

const other = RUNTIMES.find((rt) => rt.name !== runtime)!;
const same = RUNTIMES.find((rt) => rt.name === runtime)!;

for (const peer of [other, same]) {
  test(`this ${runtime} process and a ${peer.name} process see each other's writes`, {
    skip: installed(peer) ? false : skipReason(`${peer.program} is not installed`),
  }, async () => {
    using shm = SharedMemory.create({ name: testName(`peer-${peer.name}`), size: 4096 });
    const words = shm.view(Int32Array);
    const child = startFixture(peer, "shm_peer.ts", [shm.name]);
    const line = await child.ready;
    assert.equal(line, `ready ${peer.name}`);
    assert.equal(Atomics.load(words, 0), 1, "the peer has it open now");
    Atomics.store(words, 2, 21);
    Atomics.store(words, 1, 1);
    await waitFor(() => Atomics.load(words, 0) === 2, "the peer's answer");
    assert.equal(Atomics.load(words, 3), 42);
    assert.equal(new TextDecoder().decode(shm.view(Uint8Array, 64, peer.name.length)), peer.name);
    const result = await child.exited;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(shmExists(shm.name), true, "the peer only opened it: it must not unlink it");
  });
}

test("interop tests leave /dev/shm as they found it", () => {
  assert.ok(usedNames.size > 0);
  assert.deepEqual(leftovers(), []);
});

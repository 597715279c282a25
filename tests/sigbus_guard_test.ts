/**
 * The SIGBUS guard: its machine code is what the assembler makes of the
 * sources, and a peer shrinking what we have mapped no longer kills us.
 * Every crash scenario runs in a child (tests/fixtures/sigbus_child.ts), so
 * a SIGBUS that gets through shows as the child's death, not the runner's.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readdirSync, rmSync } from "node:fs";
import process from "node:process";

import { SIGBUS_CODE } from "../core/_sigbus_code.ts";
import {
  CODE,
  CODE_MAGIC,
  DATA,
  type GuardArch,
  SLOT,
  SLOT_COUNT,
  SLOT_STATE,
} from "../core/_sigbus_layout.ts";
import {
  guardRange,
  sigbusGuard,
  slotIndex,
  TRUNCATED_HINT,
  unsafeGuardWords,
} from "../core/_sigbus_guard.ts";
import { errnoName } from "../core/errors.ts";
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { Mapping, Memfd } from "../mod.ts";
import { assemble, TOOLS, toolsFor } from "../scripts/gen_sigbus.ts";
import { emulator, have, runtime, skipReason, tempDir } from "./helpers.ts";
import { repoPath } from "./fixtures/runtimes.ts";
import { startWorker } from "./fixtures/web_worker.ts";

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

for (const arch of ["x86_64", "aarch64"] as GuardArch[]) {
  const tools = toolsFor(arch);
  test(
    `the ${arch} handler bytes equal what ${TOOLS[arch].as} makes of core/sigbus/${arch}.S`,
    { skip: tools === undefined ? skipReason(`${TOOLS[arch].as} not installed`) : false },
    () => {
      assert.equal(SIGBUS_CODE[arch], hex(assemble(arch, tools!)));
    },
  );
}

test("each handler starts with the code magic and an empty data address slot", () => {
  for (const arch of ["x86_64", "aarch64"] as GuardArch[]) {
    const bytes = SIGBUS_CODE[arch];
    const magic = new DataView(
      new Uint8Array(bytes.slice(0, 16).match(/../g)!.map((h) => parseInt(h, 16))).buffer,
    ).getBigUint64(0, true);
    assert.equal(magic, CODE_MAGIC, arch);
    assert.equal(bytes.slice(CODE.dataAddress * 2, CODE.entry * 2), "0".repeat(16), arch);
    // The code must fit in the smallest page, after its header.
    assert.ok(bytes.length / 2 < 4096, `${arch}: ${bytes.length / 2} bytes`);
  }
});

/** How a child ran: exit code or signal, and its output. */
interface Outcome {
  readonly code: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The arguments that run a script under this test's own runtime (also under qemu). */
function runtimeArgs(script: string, args: readonly string[]): string[] {
  return runtime === "deno"
    ? ["run", "-A", "--quiet", repoPath(script), ...args]
    : [repoPath(script), ...args];
}

/** A hang guard only (natively a scenario takes well under a second; qemu is slow). */
const CHILD_TIMEOUT = emulator === undefined ? 120000 : 600000;

function runChild(scenario: string, onReady?: (pid: number) => void): Promise<Outcome> {
  const dir = tempDir();
  const child = spawn(
    process.execPath,
    runtimeArgs("tests/fixtures/sigbus_child.ts", [scenario, dir.path]),
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  let signalled = false;
  child.stdout!.setEncoding("utf8");
  child.stderr!.setEncoding("utf8");
  child.stdout!.on("data", (chunk: string) => {
    stdout += chunk;
    if (!signalled && onReady !== undefined && /^ready /m.test(stdout)) {
      signalled = true;
      onReady(child.pid!);
    }
  });
  child.stderr!.on("data", (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill("SIGKILL"), CHILD_TIMEOUT);
  return new Promise((resolve) => {
    child.on("close", (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      dir.remove();
      // A child that died can't unlink what it created: its names carry its pid.
      for (const entry of readdirSync("/dev/shm")) {
        if (entry.startsWith(`shmkit-test-sigbus-${child.pid}-`)) rmSync(`/dev/shm/${entry}`);
      }
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Whether the child died of SIGBUS (by the signal, or a runtime's 128 + 7). */
function diedOfSigbus(outcome: Outcome): boolean {
  return outcome.signal === "SIGBUS" || outcome.code === 135;
}

function result(outcome: Outcome): Record<string, unknown> {
  const line = outcome.stdout.split("\n").find((l) => l.startsWith("result "));
  assert.ok(
    line !== undefined && outcome.code === 0,
    `child ended with code ${outcome.code}, signal ${outcome.signal}\n${outcome.stdout}\n${
      outcome.stderr.slice(-2000)
    }`,
  );
  return JSON.parse(line.slice("result ".length)) as Record<string, unknown>;
}

const noPython = have("python3") ? false : skipReason("python3 not installed");

for (
  const [scenario, what] of [
    ["file", "a file mapped with Mapping.file"],
    ["shm-rw", "a named shm object opened read-write"],
    ["shm-ro", "a named shm object opened read-only"],
    ["memfd", "an unsealed memfd handed to the peer as fd 3"],
  ] as const
) {
  test(
    `${what}, truncated by a Python peer, reads 0 past the new end and reports truncated`,
    { skip: noPython, timeout: CHILD_TIMEOUT + 10000 },
    async () => {
      const r = result(await runChild(scenario));
      assert.equal(r.before, 1, "the byte before truncation");
      assert.equal(r.after, 0, "the byte past the new end");
      assert.equal(r.kept, 1, "a byte below the new end is untouched");
      assert.equal(r.truncated, true);
      assert.ok((r.faults as number) >= 1);
      if (scenario === "file") {
        assert.equal(r.written, 5, "a write past the end lands in a private page");
      }
      if (scenario.startsWith("shm")) {
        assert.equal(r.ownerTruncated, false, "the owner never touched the end");
      }
    },
  );
}

test("one process: b = open(a.name); a.resize(4096); b.view()[60000] reads 0", {
  timeout: CHILD_TIMEOUT + 10000,
}, async () => {
  const r = result(await runChild("one-process"));
  assert.equal(r.after, 0);
  assert.equal(r.truncated, true);
  assert.equal(r.ownerTruncated, false);
});

test("Workers share one installed guard, and concurrent faults on one page lose no write", {
  timeout: CHILD_TIMEOUT + 10000,
}, async () => {
  const r = result(await runChild("workers"));
  assert.deepEqual(
    r.shared,
    [true, true, true, true],
    "each Worker's copy found the installed handler",
  );
  assert.equal(r.mainShared, false, "the main thread's copy installed it");
  assert.equal(r.lost, 0, "writes lost to a late page replacement");
  assert.equal(r.truncated, r.rounds);
});

test("kill -BUS from outside still kills a process with the guard installed", {
  timeout: CHILD_TIMEOUT + 10000,
}, async () => {
  const outcome = await runChild("kill", (pid) => {
    spawnSync("kill", ["-BUS", `${pid}`]);
  });
  assert.match(outcome.stdout, /^ready true$/m, "the guard was installed");
  assert.ok(diedOfSigbus(outcome), `code ${outcome.code}, signal ${outcome.signal}`);
  assert.doesNotMatch(outcome.stdout, /survived/);
});

test("a fault outside shmkit's ranges still kills the process (the runtime's handler runs)", {
  timeout: CHILD_TIMEOUT + 10000,
}, async () => {
  const outcome = await runChild("outside");
  assert.match(outcome.stdout, /^installed true/m);
  assert.ok(diedOfSigbus(outcome), `code ${outcome.code}, signal ${outcome.signal}`);
  assert.doesNotMatch(outcome.stdout, /^read /m);
});

test("closing a guarded mapping frees its slot: more mappings than slots over time", {
  timeout: CHILD_TIMEOUT,
}, () => {
  const before = sigbusGuard.unguarded;
  for (let i = 0; i < SLOT_COUNT + 10; i++) {
    using memfd = Memfd.create({ size: 4096 });
    memfd.view()[0] = 1;
  }
  assert.equal(sigbusGuard.installed, true);
  assert.equal(sigbusGuard.available, true);
  assert.equal(sigbusGuard.reason, undefined);
  assert.equal(sigbusGuard.unguarded, before);
});

test("releasing a range waits until no thread is inside the handler", async () => {
  const words = unsafeGuardWords();
  assert.ok(words !== undefined, sigbusGuard.reason);
  using mapping = Mapping.anonymous(4096);
  const range = guardRange(mapping.unsafeAddress, 4096, 0);
  assert.ok(range !== undefined);
  const worker = startWorker(new URL("./fixtures/sigbus_busy_worker.ts", import.meta.url));
  const next = () =>
    new Promise<Record<string, number>>((resolve, reject) => {
      worker.onmessage = (event: MessageEvent) => resolve(event.data);
      worker.onerror = (event: Event) => reject(new Error(String((event as ErrorEvent).message)));
    });
  try {
    await next(); // its copy of shmkit is loaded and found the guard
    Atomics.add(words, DATA.busy / 8, 1n); // "a thread is inside the handler"
    const reply = next();
    worker.postMessage({ slot: range.slot });
    range.release(); // spins until the Worker lowers busy
    assert.equal(Atomics.load(words, DATA.busy / 8), 0n);
    assert.equal(Atomics.load(words, slotIndex(range.slot, SLOT.state)), BigInt(SLOT_STATE.free));
    assert.equal((await reply).seen, SLOT_STATE.claimed, "the slot was freed before busy fell");
  } finally {
    worker.terminate();
  }
});

test("an untouched guarded mapping is not reported truncated", () => {
  using memfd = Memfd.create({ size: 8192 });
  memfd.view()[8191] = 1;
  assert.equal(memfd.truncated, false);
  memfd.close();
  assert.equal(memfd.truncated, false);
});

test("a buffer past the new end handed to write(2) is EFAULT, not a signal", () => {
  using memfd = Memfd.create({ size: 8192 });
  const view = memfd.view();
  view[0] = 1;
  unsafeLibc.ftruncate(memfd.fd, 4096);
  const pipe = new Int32Array(2);
  assert.equal(unsafeLibc.pipe2(pipe, platform.constants.O_CLOEXEC), 0);
  try {
    // The kernel reads the second page for us: no user-space fault, no handler.
    assert.equal(unsafeLibc.write(pipe[1]!, view.subarray(4096), 16), -1);
    assert.equal(errnoName(errno()), "EFAULT");
    assert.equal(memfd.truncated, false);
    assert.match(TRUNCATED_HINT, /truncated/);
  } finally {
    unsafeLibc.close(pipe[0]!);
    unsafeLibc.close(pipe[1]!);
  }
});

const MDWE_LAUNCH = "import ctypes, os, sys\n" +
  "libc = ctypes.CDLL(None, use_errno=True)\n" +
  "PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1\n" +
  "if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0: sys.exit(3)\n" +
  "os.execv(sys.argv[1], sys.argv[1:])";

test(
  "where executable memory is refused (prctl PR_SET_MDWE), the guard says so and shmkit works on",
  {
    skip: runtime === "bun"
      ? skipReason("Bun's FFI compiles its bindings at run time and can't load under MDWE at all")
      : runtime === "node"
      ? skipReason(
        "Node aborts under MDWE unless --jitless, and --jitless turns off the WebAssembly its TypeScript stripping needs",
      )
      : emulator !== undefined
      ? skipReason("qemu-user translates code at run time and can't run under MDWE")
      : noPython,
  },
  () => {
    const script = "import { sigbusGuard } from '" + repoPath("core/_sigbus_guard.ts") +
      "'; import { Memfd } from '" + repoPath("mod.ts") + "';\n" +
      "using m = Memfd.create({ size: 4096 }); m.view()[0] = 7;\n" +
      "console.log(JSON.stringify({ available: sigbusGuard.available, reason: sigbusGuard.reason, " +
      "installed: sigbusGuard.installed, read: m.view()[0], truncated: m.truncated }));";
    // V8 without its JIT needs no executable memory of its own.
    const r = spawnSync("python3", [
      "-c",
      MDWE_LAUNCH,
      process.execPath,
      "eval",
      "--quiet",
      "--v8-flags=--jitless",
      script,
    ], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr.slice(-2000));
    const line = r.stdout.trim().split("\n").pop()!;
    const out = JSON.parse(line) as Record<string, unknown>;
    assert.equal(out.available, false);
    assert.equal(out.installed, false);
    assert.match(
      out.reason as string,
      /executable memory is refused here \(mprotect PROT_EXEC: EACCES/,
    );
    assert.equal(out.read, 7);
    assert.equal(out.truncated, false);
  },
);

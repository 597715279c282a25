/**
 * scripts/test.ts reads real `deno test`, `bun test` and `node --test` runs: a run killed in
 * the middle of a test is reported with its signal and that test, and the
 * reasons tests give for skipping reach the output and are counted. Also: a
 * test mixing Deno and Bun peers fails when the second runtime is missing.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  describeEnd,
  oomKilled,
  type ProcessEnd,
  readBun,
  readDeno,
  readNode,
  type RunResult,
} from "../scripts/_test_output.ts";
import { runtime, tempDir } from "./helpers.ts";
import { repoPath, RUNTIMES } from "./fixtures/runtimes.ts";

const DENO = RUNTIMES.find((r) => r.name === "deno")!.program;
const BUN = RUNTIMES.find((r) => r.name === "bun")!.program;
const NODE = RUNTIMES.find((r) => r.name === "node")!.program;
const HELPERS = pathToFileURL(repoPath("tests/helpers.ts")).href;

// Signal numbers of Linux, for a shell's 128 + n.
const SIGNAL_NUMBERS: Record<string, number> = { SIGKILL: 9, SIGSEGV: 11, SIGTERM: 15 };

/** Runs `program args` in `cwd` to its end, as scripts/test.ts sees it. */
function runTo(program: string, args: string[], cwd: string): ProcessEnd & { output: string } {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1" };
  // Under node --test, a nested runner would report to the outer one rather than print.
  delete env.NODE_TEST_CONTEXT;
  const r = spawnSync(program, args, {
    cwd,
    encoding: "utf8",
    env,
    timeout: 120_000,
  });
  if (r.error !== undefined) throw r.error;
  const signal = r.signal ?? null;
  return {
    code: r.status ?? 128 + (SIGNAL_NUMBERS[signal ?? ""] ?? 0),
    signal,
    output: r.stdout + r.stderr,
  };
}

function runDeno(dir: string, file: string): RunResult {
  const { output, ...end } = runTo(DENO, ["test", "-A", "--no-check", file], dir);
  return readDeno(output, end);
}

function runBun(dir: string, file: string): RunResult {
  const { output, ...end } = runTo(BUN, ["test", `./${file}`], dir);
  return readBun(output, end);
}

function runNode(dir: string, file: string): RunResult {
  const { output, ...end } = runTo(
    NODE,
    ["--disable-warning=ExperimentalWarning", "--test", "--test-reporter=tap", file],
    dir,
  );
  return readNode(output, end);
}

const DYING = `
import { test } from "node:test";
import process from "node:process";
test("a test that passes first", () => {});
test("the test that is killed", async () => {
  await new Promise((resolve) => setTimeout(resolve, 1));
  process.kill(process.pid, "SIGKILL");
});
test("a test never reached", () => {});
`;

const SKIPPING = `
import { test } from "node:test";
import { skipIf, skipReason } from ${JSON.stringify(HELPERS)};
test("runs", () => {});
test("skipped by reason", { skip: skipReason("the frobnicator is not installed") }, () => {});
test("skipped by condition", { skip: skipIf(true, "no widget on PATH") }, () => {});
test("not skipped", { skip: skipIf(false, "never shown") }, () => {});
`;

function withFile<T>(name: string, source: string, body: (dir: string) => T): T {
  const dir = tempDir();
  try {
    writeFileSync(join(dir.path, name), source);
    return body(dir.path);
  } finally {
    dir.remove();
  }
}

test("a deno test run killed mid-test is reported with its signal and the test it was in", () => {
  withFile("dying_test.ts", DYING, (dir) => {
    const result = runDeno(dir, "dying_test.ts");
    assert.match(result.death ?? "", /killed by SIGKILL/);
    assert.match(result.death ?? "", /during "the test that is killed" \(\.\/dying_test\.ts\)/);
    assert.equal(result.passed, 1, "the test that finished before");
    assert.ok(result.failed >= 1, "a death counts as a failure");
  });
});

test("a bun test run killed mid-test is reported with its signal, file and last finished test", () => {
  withFile("dying_test.ts", DYING, (dir) => {
    const result = runBun(dir, "dying_test.ts");
    assert.match(result.death ?? "", /killed by SIGKILL/);
    assert.match(
      result.death ?? "",
      /dying_test\.ts, in the test after "a test that passes first"/,
    );
    assert.equal(result.passed, 1);
    assert.ok(result.failed >= 1);
  });
});

test("a node --test file killed mid-test counts as failed; the test before it passed", () => {
  // Node runs each file in a child process and still prints its summary.
  withFile("dying_test.ts", DYING, (dir) => {
    const result = runNode(dir, "dying_test.ts");
    assert.equal(result.death, undefined);
    assert.equal(result.passed, 1);
    assert.ok(result.failed >= 1, "the killed file counts as a failure");
  });
});

test("a death passed on by a wrapper shell as 128 + n is named as that signal", () => {
  withFile("dying_test.ts", DYING, (dir) => {
    // Not exec: the shell outlives the runtime and exits 137.
    const { output, ...end } = runTo("sh", [
      "-c",
      `"${DENO}" test -A --no-check dying_test.ts; exit $?`,
    ], dir);
    assert.equal(end.signal, null);
    const result = readDeno(output, end);
    assert.match(result.death ?? "", /exit code 137 \(as if killed by SIGKILL\)/);
  });
});

test("an OOM kill recorded in the kernel log is named for that pid only", () => {
  // As this machine's kernel (6.18) wrote it when /dev/shm filled the memory.
  const log = "[  585.017296] [  32381]     0 32381      648       26        0       26  sh\n" +
    "[  585.017330] Out of memory: Killed process 30608 (deno) total-vm:18376504kB, " +
    "anon-rss:31968kB, file-rss:220kB, shmem-rss:0kB, UID:0 pgtables:1132kB oom_score_adj:0\n";
  assert.equal(oomKilled(log, 30608), true);
  assert.equal(oomKilled(log, 3060), false);
  assert.equal(oomKilled(log, 32381), false);
  assert.equal(
    describeEnd({ code: 137, signal: "SIGKILL", oom: true }),
    "killed by SIGKILL, by the OOM killer (dmesg)",
  );
  assert.equal(
    describeEnd({ code: 137, signal: null, oom: true }),
    "exit code 137 (as if killed by SIGKILL, by the OOM killer (dmesg))",
  );
  assert.equal(describeEnd({ code: 137, signal: "SIGKILL", oom: false }), "killed by SIGKILL");
});

test("a run that ends normally has no death and keeps its counts", () => {
  withFile("skipping_test.ts", SKIPPING, (dir) => {
    const deno = runDeno(dir, "skipping_test.ts");
    const bun = runBun(dir, "skipping_test.ts");
    const node = runNode(dir, "skipping_test.ts");
    for (const [name, r] of [["deno", deno], ["bun", bun], ["node", node]] as const) {
      assert.equal(r.death, undefined, name);
      assert.deepEqual([r.passed, r.failed, r.skipped], [2, 0, 2], name);
    }
  });
});

test("skip reasons given through skipReason and skipIf show in every runner's output, with their line", () => {
  withFile("skipping_test.ts", SKIPPING, (dir) => {
    const runs = [runDeno, runBun, runNode].map((run) => run(dir, "skipping_test.ts"));
    for (const r of runs) {
      assert.equal(r.skipReasons.length, 2, r.skipReasons.join("; "));
      assert.match(
        r.skipReasons[0]!,
        /^the frobnicator is not installed \(.*skipping_test\.ts:5\)$/,
      );
      assert.match(r.skipReasons[1]!, /^no widget on PATH \(.*skipping_test\.ts:6\)$/);
    }
  });
});

test("a peer started in the second runtime fails, naming it, when that runtime is missing", async () => {
  // A copy of the peer helpers whose node_modules/.bin lacks the other runtime.
  const dir = tempDir();
  try {
    const fixtures = join(dir.path, "tests", "fixtures");
    mkdirSync(fixtures, { recursive: true });
    for (const f of ["lock_peers.ts", "runtimes.ts"]) {
      copyFileSync(repoPath(`tests/fixtures/${f}`), join(fixtures, f));
    }
    const peers = await import(pathToFileURL(join(fixtures, "lock_peers.ts")).href);
    const otherName = runtime === "deno" ? "bun" : "deno";
    assert.equal(peers.other.runtime, otherName);
    assert.throws(
      () => peers.startPeer(peers.other, "lock_counter.ts", []),
      (e: unknown) =>
        e instanceof Error && e.message.includes("mixed-runtime test") &&
        e.message.includes(join(dir.path, "node_modules", ".bin", otherName)),
    );
  } finally {
    dir.remove();
  }
});

/**
 * Runs every check on every target: type check, lint, format, doc lint, the
 * suite under Deno, Bun and Node on x86_64, the mutation check, and a named
 * subset under Deno, Bun and Node on aarch64 (qemu-user). Prints the reasons tests gave for
 * skipping, then one summary line per target (`deno x86_64: N passed, N
 * failed, N skipped`; a line saying how a run died before its summary goes
 * just above its target's line), and the total last, as `N passed, N failed,
 * N skipped`.
 *
 * Usage: deno run -A scripts/test.ts [--no-aarch64] [--no-mutation] [--real-shm]
 *   [--only=deno|bun|node] [files...]
 *
 * @module
 */

import {
  oomKilled as kernelLogSaysOom,
  type ProcessEnd,
  readBun,
  readDeno,
  readNode,
  readSummaryLine,
  type RunResult,
} from "./_test_output.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const BIN = `${ROOT}/node_modules/.bin`;

/** Tests that also run on aarch64 under qemu: layouts, mappings and the calls they feed. */
const AARCH64_SUBSET = [
  "tests/platform_test.ts",
  "tests/mapping_test.ts",
  "tests/errors_test.ts",
  "tests/shared_memory_test.ts",
  "tests/memfd_test.ts",
  "tests/sysv_test.ts",
  "tests/readonly_view_test.ts",
  "tests/spawn_test.ts",
  "tests/spawn_reactor_test.ts",
  "tests/wait_test.ts",
  "tests/mutex_test.ts",
  "tests/semaphore_test.ts",
  "tests/event_test.ts",
  "tests/channel_test.ts",
  "tests/identity_test.ts",
  "tests/sigbus_guard_test.ts",
  "tests/layout_test.ts",
  "tests/layout_interop_test.ts",
  "tests/loan_pool_test.ts",
  "tests/sysv_semaphore_test.ts",
];
// Not tests/pthread_mutex_test.ts: qemu-user answers set_robust_list with ENOSYS (the
// guest's robust list can't be walked by the host kernel), so glibc's robust mutexes
// are plain ones under emulation and a dead owner is never reported.

interface Tally {
  readonly target: string;
  passed: number;
  failed: number;
  /** Only for test runs. */
  skipped?: number;
  /** How the run ended without its summary. */
  death?: string;
  skipReasons?: readonly string[];
}

const args = new Set(Deno.args.filter((a) => a.startsWith("--")));
const files = Deno.args.filter((a) => !a.startsWith("--"));
const only = [...args].find((a) => a.startsWith("--only="))?.slice(7);
/** Whether `--only` leaves this runtime's runs in. */
function wanted(name: string): boolean {
  return only === undefined || only === name;
}
const tallies: Tally[] = [];
const decoder = new TextDecoder();

async function run(
  command: string,
  commandArgs: string[],
  env: Record<string, string> = {},
): Promise<ProcessEnd & { output: string }> {
  const full = [command, ...commandArgs];
  const wrapped = PRIVATE_SHM.every((word, i) => full[i] === word);
  const shown = wrapped ? ["(private /dev/shm)", ...full.slice(PRIVATE_SHM.length)] : full;
  console.log(`\n$ ${shown.join(" ")}`);
  const child = new Deno.Command(command, {
    args: commandArgs,
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  let output = "";
  const pump = async (stream: ReadableStream<Uint8Array>, sink: typeof Deno.stdout) => {
    for await (const chunk of stream) {
      output += decoder.decode(chunk, { stream: true });
      await sink.write(chunk);
    }
  };
  await Promise.all([pump(child.stdout, Deno.stdout), pump(child.stderr, Deno.stderr)]);
  const status = await child.status;
  const killed = status.signal === "SIGKILL" || status.code === 137;
  return { code: status.code, signal: status.signal, oom: killed && oomKilled(child.pid), output };
}

/** Whether the kernel log (when this user may read it) says the OOM killer took `pid`. */
function oomKilled(pid: number): boolean {
  try {
    const out = new Deno.Command("dmesg", { stdout: "piped", stderr: "null" }).outputSync();
    return out.success && kernelLogSaysOom(decoder.decode(out.stdout), pid);
  } catch {
    return false;
  }
}

/**
 * The suites run in a mount namespace with their own 1 GiB /dev/shm (as root,
 * with util-linux unshare): the real one is a tmpfs as large as RAM, and a
 * test that fills it (a posix_fallocate past the free space does, page by
 * page) wakes the OOM killer, which takes whatever is largest: the runtime
 * under qemu, or other work on the machine. `--real-shm` turns this off.
 */
const PRIVATE_SHM = [
  "unshare",
  "--mount",
  "--propagation",
  "private",
  "sh",
  "-c",
  'mount -t tmpfs -o size=1g,mode=1777 shmkit-test /dev/shm && exec "$0" "$@"',
];

const privateShm = !args.has("--real-shm") && (() => {
  try {
    const probe = new Deno.Command(PRIVATE_SHM[0]!, {
      args: [...PRIVATE_SHM.slice(1), "true"],
      stdout: "null",
      stderr: "null",
    });
    return probe.outputSync().success;
  } catch {
    return false;
  }
})();
if (!privateShm) console.log("note: the suites use the real /dev/shm");

/** `command` run with the private /dev/shm when there is one. */
function suite(command: string[]): [string, string[]] {
  const full = privateShm ? [...PRIVATE_SHM, ...command] : command;
  return [full[0]!, full.slice(1)];
}

/** Records a test run, saying at once how it died if it did. */
function record(target: string, result: RunResult): void {
  if (result.death !== undefined) console.log(`${target} ${result.death}`);
  tallies.push({ target, ...result });
}

function testFiles(subset?: readonly string[]): string[] {
  const all = [...Deno.readDirSync(`${ROOT}/tests`)]
    .filter((e) => e.isFile && e.name.endsWith("_test.ts"))
    .map((e) => `tests/${e.name}`)
    .sort();
  const chosen = files.length > 0 ? all.filter((f) => files.some((x) => f.includes(x))) : all;
  return subset === undefined ? chosen : chosen.filter((f) => subset.includes(f));
}

async function checks(): Promise<void> {
  const tally: Tally = { target: "checks", passed: 0, failed: 0 };
  const steps: [string, string[]][] = [
    ["type check", ["check", "."]],
    ["lint", ["lint"]],
    ["format", ["fmt", "--check"]],
    ["doc lint", [
      "doc",
      "--lint",
      "mod.ts",
      "raw.ts",
      "layout/mod.ts",
      "cli/main.ts",
      "messaging/mod.ts",
    ]],
    // JSR: no slow types, every published file resolvable.
    ["publish dry run", ["publish", "--dry-run", "--allow-dirty"]],
  ];
  for (const [name, stepArgs] of steps) {
    const { code } = await run(`${BIN}/deno`, stepArgs);
    if (code === 0) tally.passed++;
    else {
      tally.failed++;
      console.log(`check failed: ${name}`);
    }
  }
  tallies.push(tally);
}

async function denoSuite(
  target: string,
  deno: string[],
  list: string[],
  extra: string[],
): Promise<void> {
  const { output, ...end } = await run(
    ...suite([...deno, "test", "-A", "--v8-flags=--expose-gc", ...extra, ...list]),
  );
  record(target, readDeno(output, end));
}

async function bunSuite(target: string, bun: string[], list: string[]): Promise<void> {
  // bunfig.toml's [test] section (run from ROOT) sets the timeout and root.
  // Bun's default per-test limit (5 s) is a hang guard Deno doesn't have; on a loaded
  // machine (or under qemu) it fails tests that are merely slow. Tests that can hang
  // set their own limits.
  const { output, ...end } = await run(
    ...suite([...bun, "test", "--timeout=60000", ...list.map((f) => `./${f}`)]),
  );
  record(target, readBun(output, end));
}

async function nodeSuite(target: string, node: string[], list: string[]): Promise<void> {
  // One file at a time, as the other runners do (tests share fixtures and
  // the machine); each test's own limit is the hang guard, as for Bun.
  const { output, ...end } = await run(
    ...suite([
      ...node,
      "--disable-warning=ExperimentalWarning",
      "--expose-gc",
      "--test",
      "--test-concurrency=1",
      "--test-timeout=120000",
      "--test-reporter=tap",
      ...list,
    ]),
  );
  record(target, readNode(output, end));
}

if (files.length === 0) await checks();

if (files.length === 0 && wanted("deno")) {
  // The JSDoc examples, their value comments asserted (scripts/doc_examples.ts).
  const { output, ...end } = await run(
    ...suite([`${BIN}/deno`, "run", "-A", "scripts/doc_examples.ts"]),
  );
  record("deno doc examples", readDeno(output, end));
}

const x86 = testFiles();
if (wanted("deno")) await denoSuite("deno x86_64", [`${BIN}/deno`], x86, []);
if (wanted("bun")) await bunSuite("bun x86_64", [`${BIN}/bun`], x86);
if (wanted("node")) await nodeSuite("node x86_64", [`${BIN}/node`], x86);

if (files.length === 0 && wanted("deno") && !args.has("--no-mutation")) {
  // One-line bugs the suite must catch, each in a scratch copy (scripts/mutation_check.ts).
  const { output, ...end } = await run(`${BIN}/deno`, ["run", "-A", "scripts/mutation_check.ts"]);
  const target = "mutation check";
  const result = readSummaryLine(output, target, end);
  if (result.death !== undefined) console.log(`${target} ${result.death}`);
  tallies.push({ target, ...result });
}

if (files.length === 0 && only === undefined) {
  // The oldest runtimes the npm package's engines field claims, tested for real.
  const { output } = await run("bash", [`${ROOT}/scripts/check_min_versions.sh`]);
  const ok = (output.match(/^min (deno|bun|node) \S+: ok$/gm) ?? []).length;
  tallies.push({ target: "minimum runtimes", passed: ok, failed: 3 - ok });
}

if (!args.has("--no-aarch64")) {
  const setup = await run("bash", [`${ROOT}/scripts/setup_aarch64.sh`]);
  const arm = testFiles(AARCH64_SUBSET);
  if (setup.code !== 0) {
    tallies.push({ target: "deno aarch64", passed: 0, failed: 1 });
    tallies.push({ target: "bun aarch64", passed: 0, failed: 1 });
    tallies.push({ target: "node aarch64", passed: 0, failed: 1 });
  } else {
    const runner = `${ROOT}/scripts/aarch64_run.sh`;
    // Types were checked on x86_64; checking again under emulation only costs time.
    if (wanted("deno")) await denoSuite("deno aarch64", [runner, "deno"], arm, ["--no-check"]);
    if (wanted("bun")) await bunSuite("bun aarch64", [runner, "bun"], arm);
    if (wanted("node")) await nodeSuite("node aarch64", [runner, "node"], arm);
  }
}

const withReasons = tallies.filter((t) => (t.skipReasons?.length ?? 0) > 0);
if (withReasons.length > 0) {
  console.log("\nSkip reasons the tests gave:");
  for (const t of withReasons) {
    for (const reason of t.skipReasons!) console.log(`  ${t.target}: ${reason}`);
  }
}

console.log("");
let passed = 0;
let failed = 0;
let skipped = 0;
for (const t of tallies) {
  if (t.death !== undefined) console.log(`${t.target} ${t.death}`);
  const skips = t.skipped === undefined ? "" : `, ${t.skipped} skipped`;
  console.log(`${t.target}: ${t.passed} passed, ${t.failed} failed${skips}`);
  passed += t.passed;
  failed += t.failed;
  skipped += t.skipped ?? 0;
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
Deno.exit(failed === 0 ? 0 : 1);

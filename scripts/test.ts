/**
 * Runs every check on every target: type check, lint, format, doc lint, the
 * suite under Deno and Bun on x86_64, and a named subset under Deno and Bun
 * on aarch64 (qemu-user). Prints one summary line per target and the total
 * last, as `N passed, N failed`.
 *
 * Usage: deno run -A scripts/test.ts [--no-aarch64] [--only=deno|bun] [files...]
 *
 * @module
 */

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
  "tests/wait_test.ts",
  "tests/mutex_test.ts",
  "tests/channel_test.ts",
];

interface Tally {
  readonly target: string;
  passed: number;
  failed: number;
}

const args = new Set(Deno.args.filter((a) => a.startsWith("--")));
const files = Deno.args.filter((a) => !a.startsWith("--"));
const only = [...args].find((a) => a.startsWith("--only="))?.slice(7);
const tallies: Tally[] = [];
const decoder = new TextDecoder();

async function run(
  command: string,
  commandArgs: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; output: string }> {
  console.log(`\n$ ${[command, ...commandArgs].join(" ")}`);
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
  return { code: status.code, output };
}

// deno-lint-ignore no-control-regex
const stripAnsi = (s: string): string => s.replace(/\x1b\[[0-9;]*m/g, "");

function denoCounts(output: string, code: number): [number, number] {
  const m = /(\d+) passed[^|\n]*\| (\d+) failed/.exec(stripAnsi(output));
  if (m === null) return [0, Math.max(1, code === 0 ? 0 : 1)];
  return [Number(m[1]), Number(m[2]) + (Number(m[2]) === 0 && code !== 0 ? 1 : 0)];
}

function bunCounts(output: string, code: number): [number, number] {
  const text = stripAnsi(output);
  const pass = /^\s*(\d+) pass\s*$/m.exec(text);
  const fail = /^\s*(\d+) fail\s*$/m.exec(text);
  if (pass === null) return [0, 1];
  const failed = Number(fail?.[1] ?? 0);
  return [Number(pass[1]), failed === 0 && code !== 0 ? 1 : failed];
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
    ["doc lint", ["doc", "--lint", "mod.ts", "raw.ts"]],
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
  const { code, output } = await run(deno[0]!, [
    ...deno.slice(1),
    "test",
    "-A",
    "--v8-flags=--expose-gc",
    ...extra,
    ...list,
  ]);
  const [passed, failed] = denoCounts(output, code);
  tallies.push({ target, passed, failed });
}

async function bunSuite(target: string, bun: string[], list: string[]): Promise<void> {
  const { code, output } = await run(bun[0]!, [
    ...bun.slice(1),
    "test",
    ...list.map((f) => `./${f}`),
  ]);
  const [passed, failed] = bunCounts(output, code);
  tallies.push({ target, passed, failed });
}

if (files.length === 0) await checks();

/** The library's folders, one per capability. */
const LIBRARY_DIRS = ["core", "ffi", "platform", "mapping", "shm", "sysv", "sync", "spawn"];

/** Library modules whose JSDoc examples run as tests. */
function libraryFiles(): string[] {
  const list: string[] = [];
  for (const dir of [".", ...LIBRARY_DIRS]) {
    for (const e of Deno.readDirSync(`${ROOT}/${dir}`)) {
      if (e.isFile && e.name.endsWith(".ts")) list.push(dir === "." ? e.name : `${dir}/${e.name}`);
    }
  }
  return list.sort();
}

if (files.length === 0 && only !== "bun") {
  const { code, output } = await run(`${BIN}/deno`, [
    "test",
    "--doc",
    "-A",
    "--v8-flags=--expose-gc",
    ...libraryFiles(),
  ]);
  const [passed, failed] = denoCounts(output, code);
  tallies.push({ target: "deno doc examples", passed, failed });
}

const x86 = testFiles();
if (only !== "bun") await denoSuite("deno x86_64", [`${BIN}/deno`], x86, []);
if (only !== "deno") await bunSuite("bun x86_64", [`${BIN}/bun`], x86);

if (files.length === 0 && only === undefined) {
  // The oldest runtimes the npm package's engines field claims, tested for real.
  const { output } = await run("bash", [`${ROOT}/scripts/check_min_versions.sh`]);
  const ok = (output.match(/^min (deno|bun) \S+: ok$/gm) ?? []).length;
  tallies.push({ target: "minimum runtimes", passed: ok, failed: 2 - ok });
}

if (!args.has("--no-aarch64")) {
  const setup = await run("bash", [`${ROOT}/scripts/setup_aarch64.sh`]);
  const arm = testFiles(AARCH64_SUBSET);
  if (setup.code !== 0) {
    tallies.push({ target: "deno aarch64", passed: 0, failed: 1 });
    tallies.push({ target: "bun aarch64", passed: 0, failed: 1 });
  } else {
    const runner = `${ROOT}/scripts/aarch64_run.sh`;
    // Types were checked on x86_64; checking again under emulation only costs time.
    if (only !== "bun") await denoSuite("deno aarch64", [runner, "deno"], arm, ["--no-check"]);
    if (only !== "deno") await bunSuite("bun aarch64", [runner, "bun"], arm);
  }
}

console.log("");
let passed = 0;
let failed = 0;
for (const t of tallies) {
  console.log(`${t.target}: ${t.passed} passed, ${t.failed} failed`);
  passed += t.passed;
  failed += t.failed;
}
console.log(`${passed} passed, ${failed} failed`);
Deno.exit(failed === 0 ? 0 : 1);

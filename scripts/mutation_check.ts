/**
 * Mutation check: proves the suite catches a few bugs that matter. Copies the
 * repository (the files git knows, as they are in the work tree) to a scratch
 * directory, runs the named test files there once unchanged (they must pass),
 * then plants each one-line bug ("mutant") in turn and runs its test files
 * under Deno. A mutant whose tests still pass has survived: the suite would
 * not notice that bug. The work tree is never modified.
 *
 * A mutant may also name library files whose JSDoc examples must fail
 * (scripts/doc_examples.ts runs them, their value comments asserted): a
 * documented value that changes must break its example.
 *
 * Each mutant is found by a search string that must occur exactly once in the
 * library's sources; when a refactor removes or duplicates it, the check fails
 * and names the mutant, instead of silently testing nothing.
 *
 * Prints one line per mutant and `mutation check: N passed, N failed` last
 * (passed = killed, failed = survived or not found); exits 1 unless every
 * mutant was killed.
 *
 * Usage: deno run -A scripts/mutation_check.ts [--keep] [mutant names...]
 *
 * @module
 */

/** A one-line bug, and the test files that must fail when it is planted. */
interface Mutant {
  readonly name: string;
  /** What the bug breaks, for the report. */
  readonly what: string;
  /** Text that must occur exactly once in the library sources. */
  readonly find: string;
  readonly replace: string;
  readonly tests: readonly string[];
  /** Library files whose doc examples must fail too (or instead). */
  readonly docs?: readonly string[];
  /** Only the tests whose names contain this run against the mutant (`deno test --filter`). */
  readonly filter?: string;
}

const MUTANTS: readonly Mutant[] = [
  {
    name: "spawn-closefrom",
    what: "a plain spawn no longer closes the fds from 3 up",
    find: "new PosixSpawnFileActions().addCloseFrom(3)",
    replace: "new PosixSpawnFileActions()",
    tests: ["tests/spawn_test.ts"],
  },
  {
    name: "spawn-gap-close",
    what: "fds between the named ones (e.g. 4 when only 3 and 5 are given) stay open",
    find: "for (let fd = 3; fd <= highest; fd++) if (!dups.has(fd)) actions.addClose(fd);",
    replace: "// (mutant: the gaps between named fds stay open)",
    tests: ["tests/spawn_test.ts"],
  },
  {
    name: "shm-create-excl",
    what: "SharedMemory.create opens an existing object instead of failing with EEXIST",
    find: "const flags = C.O_CREAT | C.O_EXCL | C.O_RDWR | C.O_CLOEXEC;",
    replace: "const flags = C.O_CREAT | C.O_RDWR | C.O_CLOEXEC;",
    tests: ["tests/shared_memory_test.ts"],
  },
  {
    name: "region-detach",
    what: "closing a region unmaps it without detaching its views",
    find: "else buffer.transfer(0);",
    replace: "else void buffer;",
    tests: ["tests/mapping_test.ts"],
  },
  {
    name: "mutex-owner-died",
    what: "a lock held by a dead owner is never taken over",
    find: "if (isOwnerGone(owner, attempt.thorough)) {",
    replace: "if (false && isOwnerGone(owner, attempt.thorough)) {",
    tests: ["tests/mutex_test.ts"],
  },
  {
    name: "shm-name-slash",
    what: 'checkShmName accepts a "/" after the first character',
    find: 'if (name.indexOf("/", 1) !== -1) {',
    replace: "if (false) {",
    tests: ["tests/shared_memory_test.ts"],
  },
  {
    name: "mapping-sync-async",
    what: "sync() asks msync for MS_ASYNC (a no-op on Linux) when it should wait: MS_SYNC",
    find: 'checkBoolean(o.async, "async", false) ? C.MS_ASYNC : C.MS_SYNC;',
    replace: 'checkBoolean(o.async, "async", false) ? C.MS_ASYNC : C.MS_ASYNC;',
    tests: ["tests/mapping_test.ts"],
  },
  {
    name: "mapping-lock-range",
    what: "lock() locks nothing: mlock is given a length of 0",
    find: 'check(unsafeLibc.mlock(address, length), "mlock", {}, {',
    replace: 'check(unsafeLibc.mlock(address, 0), "mlock", {}, {',
    tests: ["tests/mapping_test.ts"],
  },
  {
    name: "channel-position-align",
    what: "a head or tail word that is not a multiple of 8 is accepted",
    find: "if (value < 0 || value >= this.capacity || (value & 7) !== 0) {",
    replace: "if (value < 0 || value >= this.capacity) {",
    tests: ["tests/channel_test.ts"],
  },
  {
    name: "quarantine-sweep",
    what: "the sweep gives back the ranges closed less than QUARANTINE_MS ago",
    find: "while (due < held.length && now - held[due]!.since >= QUARANTINE_MS) due++;",
    replace: "while (due < held.length && now - held[due]!.since <= QUARANTINE_MS) due++;",
    tests: ["tests/quarantine_test.ts"],
  },
  {
    name: "sigbus-guard-high",
    what: "registering a range never raises the table's high-water mark: the handler can't see it",
    find: "if (Atomics.compareExchange(words, DATA.high / W, high, next) === high) break;",
    replace: "break;",
    tests: ["tests/sigbus_guard_test.ts"],
  },
  {
    name: "cleaner-identity",
    what: "the cleaner removes a /dev/shm name without checking its dev and inode",
    find: `[ "$(stat -c '%d %i' -- "$f" 2>/dev/null)" = "$a $b" ] && rm -f -- "$f"`,
    replace: `rm -f -- "$f"`,
    tests: ["tests/cleanup_test.ts"],
  },
  {
    name: "readonly-view-at-lookup",
    what: "ReadOnlyView.at looks Uint8Array.prototype.at up at call time, not at load",
    find: 'at: method(TypedArrayPrototype, "at"),',
    replace: "at: function (this: Uint8Array, i: number) { return this.at(i); },",
    tests: ["tests/readonly_view_test.ts"],
  },
  {
    name: "channel-byte-length-doc",
    what: "Channel.byteLengthFor(capacity) returns 8 bytes more than its example shows",
    find: "return CHANNEL_HEADER_BYTES + ((c + 7) & ~7);",
    replace: "return CHANNEL_HEADER_BYTES + ((c + 7) & ~7) + 8;",
    tests: [],
    docs: ["sync/channel.ts"],
  },
  {
    name: "channel-spin-slices",
    what: "a spinning send()/receive() with no timeout never looks at the other end again",
    find: "const slice = Math.min(left, attempt.spinMs, ring.checkIntervalMs);",
    replace: "const slice = Math.min(left, attempt.spinMs);",
    tests: ["tests/channel_test.ts"],
    // The rest of the file is the baseline's; against the mutant the first of these fails.
    filter: "spinning with no timeout",
  },
];

/** Where mutants may be planted: the library, not its tests or tools. */
const LIBRARY =
  /^(?:[^/]+\.ts|(?:core|ffi|platform|mapping|shm|sysv|sync|spawn|layout|cli|ipc|messaging)\/.+\.ts)$/;
/** A run that takes longer than this is stopped and counted as a hang. */
const RUN_LIMIT_MS = 240_000;

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const DENO = `${ROOT}/node_modules/.bin/deno`;
const decoder = new TextDecoder();

function git(args: string[]): string {
  const out = new Deno.Command("git", { args, cwd: ROOT, stdout: "piped", stderr: "inherit" })
    .outputSync();
  if (!out.success) throw new Error(`Cannot run git ${args.join(" ")}`);
  return decoder.decode(out.stdout);
}

/** Tracked and new (not ignored) files, as they are in the work tree, copied to `dir`. */
function copyRepository(dir: string): string[] {
  const files = git(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
    .split("\0")
    .filter((f) => f !== "");
  const copied: string[] = [];
  for (const file of files) {
    const from = `${ROOT}/${file}`;
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(from);
    } catch {
      continue; // deleted in the work tree, not yet in the index
    }
    if (!info.isFile) continue;
    const to = `${dir}/${file}`;
    Deno.mkdirSync(to.slice(0, to.lastIndexOf("/")), { recursive: true });
    Deno.copyFileSync(from, to);
    copied.push(file);
  }
  Deno.symlinkSync(`${ROOT}/node_modules`, `${dir}/node_modules`);
  return copied;
}

interface Located {
  readonly file: string;
  readonly line: number;
}

/** The one library file and line holding `mutant.find`, or why there is none. */
function locate(dir: string, files: readonly string[], mutant: Mutant): Located | string {
  const hits: Located[] = [];
  for (const file of files.filter((f) => LIBRARY.test(f))) {
    const text = Deno.readTextFileSync(`${dir}/${file}`);
    let at = text.indexOf(mutant.find);
    while (at !== -1) {
      hits.push({ file, line: text.slice(0, at).split("\n").length });
      at = text.indexOf(mutant.find, at + 1);
    }
  }
  if (hits.length === 1) return hits[0]!;
  const where = hits.map((h) => `${h.file}:${h.line}`).join(", ");
  return hits.length === 0
    ? `search string not found (${JSON.stringify(mutant.find)}): update the mutant`
    : `search string found ${hits.length} times (${where}): make it unique`;
}

interface RunEnd {
  readonly failed: boolean;
  readonly how: string;
  readonly output: string;
}

/**
 * The tests run with a private 1 GiB /dev/shm (a mount namespace, as root):
 * a mutant, or a test, that fills /dev/shm then fills that instead of the
 * machine's memory (the real /dev/shm is a tmpfs as large as RAM, and filling
 * it wakes the OOM killer). Without root or unshare, they run as they are.
 */
const PRIVATE_SHM = [
  "unshare",
  "--mount",
  "--propagation",
  "private",
  "sh",
  "-c",
  'mount -t tmpfs -o size=1g,mode=1777 shmkit-mutation /dev/shm && exec "$0" "$@"',
];

function canUsePrivateShm(): boolean {
  try {
    return new Deno.Command(PRIVATE_SHM[0]!, {
      args: [...PRIVATE_SHM.slice(1), "true"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

const privateShm = canUsePrivateShm();

/** Runs `args` (a deno command) in the scratch copy, with a hang guard. */
async function runDeno(dir: string, args: readonly string[]): Promise<RunEnd> {
  const command = [DENO, ...args];
  if (privateShm) command.unshift(...PRIVATE_SHM);
  const child = new Deno.Command(command[0]!, {
    args: command.slice(1),
    cwd: dir,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let hung = false;
  const timer = setTimeout(() => {
    hung = true;
    child.kill("SIGKILL");
  }, RUN_LIMIT_MS);
  const out = await child.output();
  clearTimeout(timer);
  const output = decoder.decode(out.stdout) + decoder.decode(out.stderr);
  if (hung) return { failed: true, how: `hung (stopped after ${RUN_LIMIT_MS / 1000} s)`, output };
  if (out.signal !== null) return { failed: true, how: `crashed (${out.signal})`, output };
  const failing = /^(.+?) \.\.\. FAILED/m.exec(output)?.[1];
  return {
    failed: out.code !== 0,
    how: out.code === 0
      ? "passed"
      : failing === undefined
      ? `exit code ${out.code}`
      : `failed: "${failing.trim()}"`,
    output,
  };
}

/**
 * Runs test files under Deno in the scratch copy, then the doc examples of
 * `docs`; stops at the first failure.
 */
async function runTests(
  dir: string,
  tests: readonly string[],
  docs: readonly string[] = [],
  filter?: string,
): Promise<RunEnd> {
  let end: RunEnd = { failed: false, how: "passed", output: "" };
  if (tests.length > 0) {
    // Types were checked on the real tree; a mutant need not type-check.
    const args = ["test", "-A", "--no-check", "--fail-fast", "--v8-flags=--expose-gc"];
    if (filter !== undefined) args.push(`--filter=${filter}`);
    end = await runDeno(dir, [...args, ...tests]);
  }
  if (end.failed || docs.length === 0) return end;
  const doc = await runDeno(dir, ["run", "-A", "scripts/doc_examples.ts", ...docs]);
  return doc.failed ? { ...doc, how: `doc examples ${doc.how}` } : end;
}

/** What a mutant runs, for the report. */
function targets(tests: readonly string[], docs: readonly string[] = []): string {
  return [...tests, ...docs.map((d) => `examples of ${d}`)].join(" ");
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).map((l) => `    ${l}`).join("\n");
}

const keep = Deno.args.includes("--keep");
const names = Deno.args.filter((a) => !a.startsWith("--"));
const unknown = names.filter((n) => !MUTANTS.some((m) => m.name === n));
if (unknown.length > 0) {
  console.error(`Unknown mutant(s): ${unknown.join(", ")}; known: ${MUTANTS.map((m) => m.name)}`);
  Deno.exit(2);
}
const chosen = names.length === 0 ? MUTANTS : MUTANTS.filter((m) => names.includes(m.name));

if (!privateShm) {
  console.log(
    "note: no private /dev/shm (needs root and util-linux unshare): tests use the real one",
  );
}
const dir = Deno.makeTempDirSync({ prefix: "shmkit-mutation-" });
let killed = 0;
let survived = 0;
const started = performance.now();
try {
  const files = copyRepository(dir);
  const located = chosen.map((m) => [m, locate(dir, files, m)] as const);
  for (const [mutant, where] of located) {
    if (typeof where === "string") {
      survived++;
      console.log(`NOT FOUND ${mutant.name}: ${where}`);
    }
  }

  // A mutant only counts as killed if its tests pass without it.
  const wanted = [
    ...new Set(
      located.filter(([, w]) => typeof w !== "string")
        .flatMap(([m]) => m.tests),
    ),
  ].sort();
  const wantedDocs = [
    ...new Set(
      located.filter(([, w]) => typeof w !== "string")
        .flatMap(([m]) => m.docs ?? []),
    ),
  ].sort();
  const t0 = performance.now();
  const baseline = wanted.length + wantedDocs.length === 0
    ? undefined
    : await runTests(dir, wanted, wantedDocs);
  const all = targets(wanted, wantedDocs);
  if (baseline?.failed === false) {
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(`baseline  ${all} pass without mutants [${secs} s]`);
  }
  if (baseline?.failed === true) {
    console.log(`baseline: ${all} ${baseline.how} without any mutant:`);
    console.log(tail(baseline.output, 30));
    survived += located.filter(([, w]) => typeof w !== "string").length;
  } else {
    for (const [mutant, where] of located) {
      if (typeof where === "string") continue;
      const path = `${dir}/${where.file}`;
      const original = Deno.readTextFileSync(path);
      // A function, so that "$" in the replacement is taken as it is.
      Deno.writeTextFileSync(path, original.replace(mutant.find, () => mutant.replace));
      const t0 = performance.now();
      try {
        const end = await runTests(dir, mutant.tests, mutant.docs, mutant.filter);
        const secs = ((performance.now() - t0) / 1000).toFixed(1);
        const label = `${mutant.name} (${where.file}:${where.line}, ${mutant.what})`;
        if (end.failed) {
          killed++;
          console.log(
            `killed    ${label}: ${targets(mutant.tests, mutant.docs)} ${end.how} [${secs} s]`,
          );
        } else {
          survived++;
          console.log(
            `SURVIVED  ${label}: ${targets(mutant.tests, mutant.docs)} still pass [${secs} s]`,
          );
        }
      } finally {
        Deno.writeTextFileSync(path, original);
      }
    }
  }
} finally {
  if (keep) console.log(`scratch copy kept in ${dir}`);
  else Deno.removeSync(dir, { recursive: true });
}
console.log(`(${((performance.now() - started) / 1000).toFixed(0)} s in all)`);
console.log(`mutation check: ${killed} passed, ${survived} failed`);
Deno.exit(survived === 0 ? 0 : 1);

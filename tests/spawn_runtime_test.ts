/**
 * spawnScript() and the child side (inheritedRegion): a script on Deno, Bun
 * or Node receives named shared regions, from each runtime to each; and the
 * README demo (scripts/demo.ts) on all three runtimes.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, realpathSync } from "node:fs";
import process from "node:process";
import { ErrnoError, inheritedFds, inheritedRegion, Memfd, spawnScript } from "../mod.ts";
import { parseInheritedFds } from "../raw.ts";
import { repoPath, RUNTIMES, startFixture, waitFor } from "./fixtures/runtimes.ts";
import { runtime, skipReason } from "./helpers.ts";

/** The real executables behind node_modules/.bin (which are links, or could be wrappers). */
const BINARIES = {
  deno: realpathSync(repoPath("node_modules/.bin/deno")),
  bun: realpathSync(repoPath("node_modules/.bin/bun")),
  node: realpathSync(repoPath("node_modules/.bin/node")),
} as const;

const CHILD = new URL("./fixtures/spawn_child.ts", import.meta.url);

/** For tests that start runtimes: Bun's 5 s default is too short on a loaded machine. */
const SLOW = { timeout: 120_000 };

function run(runtimeName: "deno" | "bun" | "node", script: string, args: string[]): string {
  const argv = runtimeName === "deno"
    ? ["run", "--allow-ffi", "--quiet", repoPath(script), ...args]
    : runtimeName === "node"
    ? ["--disable-warning=ExperimentalWarning", repoPath(script), ...args]
    : [repoPath(script), ...args];
  return execFileSync(BINARIES[runtimeName], argv, {
    encoding: "utf8",
    timeout: 60000,
    stdio: ["ignore", "pipe", "pipe"],
  });
}

test(
  "spawnScript runs a script on this runtime with named regions it maps by name",
  SLOW,
  async () => {
    using counter = Memfd.create({ name: "counter", size: 8 });
    using log = Memfd.create({ name: "log", size: 4096 });
    counter.view(BigUint64Array)[0] = 21n;
    const child = spawnScript(CHILD, { regions: { counter, log }, stdout: "pipe" });
    const output = await child.output();
    assert.equal(output.code, 0);
    assert.equal(new TextDecoder().decode(output.stdout), `child ${runtime} done\n`);
    assert.equal(counter.view(BigUint64Array)[0], 42n);
    const bytes = log.view();
    const report = JSON.parse(new TextDecoder().decode(bytes.subarray(0, bytes.indexOf(0))));
    assert.deepEqual(report, { runtime, fds: { counter: 3, log: 4 } });
  },
);

for (const parent of ["deno", "bun", "node"] as const) {
  for (const child of ["deno", "bun", "node"] as const) {
    test(
      `spawnScript from ${parent} to ${child}: the child doubles the shared counter`,
      SLOW,
      () => {
        const line = run(parent, "tests/fixtures/spawn_parent.ts", [child, BINARIES[child]]);
        const seen = JSON.parse(line.trim().split("\n").at(-1)!);
        assert.deepEqual(seen, {
          parent,
          code: 0,
          value: "2000",
          log: { runtime: child, fds: { counter: 3, log: 4 } },
          stdout: `child ${child} done\n`,
        });
      },
    );
  }
}

test("regions skip fd numbers taken by fds, and SHMKIT_FDS lists them", SLOW, async () => {
  using counter = Memfd.create({ size: 8 });
  using log = Memfd.create({ size: 4096 });
  using other = Memfd.create({ size: 8 });
  const child = spawnScript(CHILD, {
    regions: { counter, log },
    fds: { 3: other },
    stdout: "null",
  });
  assert.equal((await child.status).code, 0);
  const bytes = log.view();
  const report = JSON.parse(new TextDecoder().decode(bytes.subarray(0, bytes.indexOf(0))));
  assert.deepEqual(report.fds, { counter: 4, log: 5 });
});

test(
  "SHMKIT_FDS and its fds reach no grandchild, by shmkit's spawn or the runtime's",
  SLOW,
  async () => {
    using counter = Memfd.create({ size: 8 });
    const child = spawnScript(new URL("./fixtures/spawn_grandchild.ts", import.meta.url), {
      regions: { counter },
      runtimeArgs: runtime === "deno" ? ["--allow-run", "--allow-env", "--quiet"] : [],
      stdout: "pipe",
      stderr: "pipe",
    });
    const output = await child.output();
    const decoder = new TextDecoder();
    assert.equal(output.code, 0, decoder.decode(output.stderr));
    assert.deepEqual(JSON.parse(decoder.decode(output.stdout)), {
      runtimeEnv: null,
      cEnv: null,
      viaShmkit: "unset|",
      viaRuntime: "unset|",
      fds: { counter: 3 },
    });
  },
);

/** Whether a process has ended (gone, or a zombie nobody reaped yet). */
function gone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "").startsWith("Z");
  } catch {
    return true;
  }
}

/** A process's command line and state, for failure messages. */
function describe(pid: number): string {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
    const environ = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "").split(" ");
    return `${pid} [${stat[0]} ppid ${stat[1]}] ${cmdline} ${
      environ.filter((e) => e.startsWith("SHMKIT")).join(" ")
    }`;
  } catch (error) {
    return `${pid}: ${error}`;
  }
}

/**
 * The pids a fixture prints on its "ready" line. The fixture helper may
 * resolve `ready` on a line still being written, so this waits for its end.
 */
async function readyPids(
  fixture: ReturnType<typeof startFixture>,
  count: number,
): Promise<number[]> {
  let out = "";
  fixture.process.stdout!.on("data", (chunk: string) => (out += chunk));
  await fixture.ready;
  await waitFor(() => /^ready [^\n]*\n/m.test(out), "the whole ready line");
  const pids = /^ready ([^\n]*)\n/m.exec(out)![1]!.split(" ").map(Number);
  assert.equal(pids.length, count, out);
  assert.ok(pids.every((pid) => Number.isInteger(pid) && pid > 1), out);
  return pids;
}

/** SIGKILLs what is left of the processes a test started (and only those: by command line). */
function killLeft(pids: readonly number[], command: string): void {
  for (const pid of pids) {
    try {
      if (!gone(pid) && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(command)) {
        process.kill(pid, "SIGKILL");
      }
    } catch {
      // It ended meanwhile.
    }
  }
}

const self = RUNTIMES.find((r) => r.name === runtime)!;

test(
  "spawnScript children end when their parent is SIGKILLed; a detached one lives on",
  SLOW,
  async () => {
    const parent = startFixture(self, "spawn_supervised_parent.ts", []);
    const pids = await readyPids(parent, 4);
    const [detached] = pids.splice(3);
    try {
      assert.ok(![...pids, detached!].some(gone), "a child was not running");
      parent.process.kill("SIGKILL");
      assert.equal((await parent.exited).signal, "SIGKILL");
      await waitFor(() => pids.every(gone), "the supervised children to end").catch((error) => {
        throw new Error(`${error.message}: ${pids.filter((pid) => !gone(pid)).map(describe)}`);
      });
      assert.equal(gone(detached!), false, "the detached child ended too");
    } finally {
      killLeft([...pids, detached!], "_child.ts");
    }
  },
);

for (const how of ["exit", "throw", "SIGTERM", "SIGINT", "SIGKILL"] as const) {
  test(
    `killOnExit: the child is killed when the parent ends (${how}); others live on`,
    SLOW,
    async () => {
      const parent = startFixture(self, "spawn_kill_on_exit.ts", [
        how.startsWith("SIG") ? "wait" : how,
      ]);
      const [guarded, unguarded] = await readyPids(parent, 2);
      try {
        if (how.startsWith("SIG")) parent.process.kill(how as NodeJS.Signals);
        const end = await parent.exited;
        if (how === "exit") assert.equal(end.code, 0, end.stderr);
        if (how === "throw") assert.notEqual(end.code, 0);
        if (how.startsWith("SIG")) assert.equal(end.signal, how);
        await waitFor(() => gone(guarded!), "the guarded child to end");
        assert.equal(gone(unguarded!), false, "the unguarded child ended too");
      } finally {
        killLeft([guarded!, unguarded!], "sleep");
      }
    },
  );
}

test(
  "a long-lived child that takes its region with const still writes after its module body",
  SLOW,
  async () => {
    using counter = Memfd.create({ size: 8 });
    counter.view(BigUint64Array)[0] = 100n;
    const child = spawnScript(new URL("./fixtures/spawn_long_child.ts", import.meta.url), {
      regions: { counter },
    });
    assert.equal((await child.status).code, 0);
    assert.equal(counter.view(BigUint64Array)[0], 103n);
  },
);

test(
  "a child handed no regions loads shmkit, finds none, and passes nothing on",
  SLOW,
  async () => {
    const child = spawnScript(new URL("./fixtures/spawn_grandchild.ts", import.meta.url), {
      runtimeArgs: runtime === "deno" ? ["--allow-run", "--allow-env", "--quiet"] : [],
      stdout: "pipe",
      stderr: "pipe",
    });
    const output = await child.output();
    const decoder = new TextDecoder();
    assert.equal(output.code, 0, decoder.decode(output.stderr));
    assert.deepEqual(JSON.parse(decoder.decode(output.stdout)), {
      runtimeEnv: null,
      cEnv: null,
      viaShmkit: "unset|",
      viaRuntime: "unset|",
      fds: {},
    });
  },
);

const OLD_DENO = repoPath(".cache/minver/deno-2.0.0/deno");

test(
  "a child on a Deno without --preload (2.0) still starts, and gets its regions",
  {
    ...SLOW,
    skip: existsSync(OLD_DENO) ? false : skipReason("no Deno 2.0 (scripts/check_min_versions.sh)"),
  },
  async () => {
    using counter = Memfd.create({ size: 8 });
    using log = Memfd.create({ size: 4096 });
    counter.view(BigUint64Array)[0] = 21n;
    const child = spawnScript(CHILD, {
      regions: { counter, log },
      runtime: "deno",
      execPath: OLD_DENO,
      stdout: "pipe",
      stderr: "pipe",
    });
    const output = await child.output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    assert.equal(counter.view(BigUint64Array)[0], 42n);
  },
);

test("spawnScript refuses bad options before starting anything", () => {
  using memory = Memfd.create({ size: 8 });
  assert.throws(() => spawnScript(CHILD, { regions: { "a=b": memory } }), RangeError);
  assert.throws(() => spawnScript(CHILD, { regions: { "": memory } }), RangeError);
  assert.throws(() => spawnScript(CHILD, { runtime: "python" as never }), RangeError);
  assert.throws(() => spawnScript(CHILD, { path: "/bin/sh" } as never), TypeError);
  assert.throws(() => spawnScript(CHILD, { args: [1] as never }), TypeError);
  assert.throws(() => spawnScript(42 as never), TypeError);
  assert.throws(
    () => spawnScript(CHILD, { execPath: "/no/such/runtime" }),
    (error: unknown) => error instanceof ErrnoError && error.code === "ENOENT",
  );
});

test("a script not started by spawnScript has no inherited regions, and says so", () => {
  assert.deepEqual({ ...inheritedFds() }, {});
  assert.throws(() => inheritedRegion("counter"), /no SHMKIT_FDS.*spawnScript/);
  const out = (() => {
    try {
      return run(runtime, "tests/fixtures/spawn_child.ts", []);
    } catch (error) {
      return String((error as { stderr?: string }).stderr);
    }
  })();
  assert.match(out, /Cannot find inherited region "counter"/);
});

test("parseInheritedFds reads name=fd lists and refuses malformed ones", () => {
  assert.deepEqual({ ...parseInheritedFds("counter=3,log=4") }, { counter: 3, log: 4 });
  assert.deepEqual({ ...parseInheritedFds("") }, {});
  const odd = parseInheritedFds("__proto__=5");
  assert.equal(Object.getPrototypeOf(odd), null);
  assert.equal(odd["__proto__"], 5);
  assert.throws(() => parseInheritedFds("counter"), /not "name=fd"/);
  assert.throws(() => parseInheritedFds("counter=3x"), /not "name=fd"/);
  assert.throws(() => parseInheritedFds("a=3,a=4"), /twice/);
  assert.throws(() => parseInheritedFds("a=-1"), /not "name=fd"/);
});

for (const name of ["deno", "bun", "node"] as const) {
  test(`the demo on ${name}: 1000 before the child, 2000 after`, SLOW, () => {
    assert.ok(existsSync(BINARIES[name]));
    const out = run(name, "scripts/demo.ts", []);
    const lines = out.trim().split("\n");
    const at = (pattern: RegExp): number => {
      const index = lines.findIndex((l) => pattern.test(l));
      assert.ok(index >= 0, `no line matching ${pattern} in:\n${out}`);
      return index;
    };
    const mapsBefore = at(/maps before mapping: \(none\)$/);
    const mapsAfter = at(/maps after mapping: +[0-9a-f]+-[0-9a-f]+ rw-s .*\/memfd:shmkit-demo/);
    const before = at(new RegExp(`^parent \\d+ \\(${name}\\): value before child = 1000$`));
    const doubled = at(new RegExp(`^child \\d+ \\(${name}\\): doubled 1000 to 2000$`));
    const after = at(/child exited with code 0; value after = 2000$/);
    assert.ok(mapsBefore < mapsAfter && mapsAfter < before && before < doubled && doubled < after);
  });
}

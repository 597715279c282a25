/**
 * Builds the npm package, packs it, installs the tarball into a scratch
 * project, and imports it from Bun, Deno and Node (through the scratch
 * project's node_modules), running a smoke script in each.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import process from "node:process";
import { join } from "node:path";
import { have, skipReason, tempDir } from "./helpers.ts";

const ROOT = join(import.meta.dirname!, "..");
const DENO = join(ROOT, "node_modules/.bin/deno");
const BUN = join(ROOT, "node_modules/.bin/bun");
const NODE = join(ROOT, "node_modules/.bin/node");
const TSC = join(ROOT, "node_modules/.bin/tsc");

const SMOKE = `
import { ErrnoError, Mapping, Memfd, pageSize, readProcMaps, spawn } from "shmkit";
import { fstat, unsafeAddressOf, unsafeView } from "shmkit/raw";
import { Queue } from "shmkit/messaging";
import { NamedSemaphore } from "shmkit/ipc";
import { defineStruct } from "shmkit/layout";
const mapping = Mapping.anonymous(pageSize());
mapping.view(Uint32Array)[0] = 0xbeef;
// Read back through the raw entry: it shares the library with the safe one.
const alias = new Uint32Array(unsafeView(unsafeAddressOf(mapping.view()), 4).buffer);
const word = alias[0];
const entry = readProcMaps().find((e) => e.contains(mapping.unsafeAddress));
let code = "";
try {
  Mapping.file("/nonexistent/shmkit");
} catch (error) {
  if (error instanceof ErrnoError) code = error.code;
}
const view = mapping.view();
mapping.close();
// A child sees a region handed over as fd 3 and writes into it.
const region = Memfd.create({ size: 8 });
const child = spawn(["sh", "-c", "printf 7 >&3"], { fds: { 3: region } });
const status = await child.status;
const fromChild = String.fromCharCode(region.view()[0]);
const regionSize = fstat(region.fd).size;
region.close();
// The subpath entries: a queue in the safe entry's memory, a named semaphore.
const shape = { slots: 4, maxMessage: 8 };
using queueMemory = Mapping.anonymous(Queue.byteLengthFor(shape));
const queue = Queue.init(queueMemory.view(), shape);
queue.send(new Uint8Array([42]));
const queued = Queue.from(queueMemory.view()).tryReceive();
const sem = NamedSemaphore.create({ value: 1 });
const semTaken = sem.tryWait() && !sem.tryWait();
sem.close();
const struct = defineStruct({ x: "u32" }).size;
console.log(JSON.stringify({
  queued: queued instanceof Uint8Array ? [...queued] : String(queued),
  semTaken,
  struct,
  word,
  regionSize,
  perms: entry?.perms,
  code,
  detached: view.length === 0,
  child: status.code,
  fromChild,
}));
`;

const TYPED = `
import { Mapping, type ProcMapsEntry } from "shmkit";
import { type FdStat, platform } from "shmkit/raw";
import { Queue } from "shmkit/messaging";
import { NamedSemaphore } from "shmkit/ipc";
import { defineStruct } from "shmkit/layout";
const slots: number = Queue.byteLengthFor({ slots: 4, maxMessage: 8 });
const semValue: (sem: NamedSemaphore) => number = (sem) => sem.value;
const structBytes: number = defineStruct({ x: "u32" }).size;
const n: number = Mapping.anonymous(16).byteLength;
const shared: number = platform.constants.MAP_SHARED;
const s: FdStat | undefined = undefined;
const e: ProcMapsEntry | undefined = undefined;
export { e, n, s, semValue, shared, slots, structBytes };
`;

const SUPERVISOR = `
import { spawnScript } from "shmkit";
const child = spawnScript(new URL("./idle.mjs", import.meta.url));
console.log(child.pid);
setInterval(() => {}, 1000);
`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts `program args` (a supervisor.mjs), reads its child's pid, SIGKILLs
 * it, and says whether the child then ended (within a 30 s hang guard).
 */
async function childOfKilledParent(
  program: string,
  args: string[],
  cwd: string,
): Promise<"ended" | "outlived"> {
  const parent = spawn(program, args, { cwd, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  const pid = await new Promise<number>((resolve, reject) => {
    parent.stdout!.on("data", (chunk: Uint8Array) => {
      out += new TextDecoder().decode(chunk);
      const line = out.split("\n").slice(0, -1)[0];
      if (line !== undefined) resolve(Number(line));
    });
    parent.on("exit", (code) => reject(new Error(`${program} exited with ${code}: ${out}`)));
  });
  assert.ok(Number.isSafeInteger(pid) && alive(pid), `${program} printed ${out}`);
  parent.kill("SIGKILL");
  const deadline = Date.now() + 30_000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  if (!alive(pid)) return "ended";
  process.kill(pid, "SIGKILL");
  return "outlived";
}

test("the npm package builds, packs, installs and runs under Bun, Deno and Node", {
  skip: have("npm") ? false : skipReason("npm is not on PATH"),
  // Builds, packs, installs and type-checks: long under load, and Bun's default is 5 s.
  timeout: 300_000,
}, async () => {
  const scratch = tempDir();
  try {
    const tarball = execFileSync(DENO, ["run", "-A", "scripts/build_npm.ts", "--pack"], {
      cwd: ROOT,
      encoding: "utf8",
    }).trim().split("\n").pop()!;
    const manifest = JSON.parse(readFileSync(join(ROOT, "npm/package.json"), "utf8"));
    assert.equal(manifest.name, "shmkit");
    assert.equal(manifest.type, "module");
    assert.equal(manifest.exports["."].types, "./types/mod.d.ts");
    assert.equal(manifest.exports["./raw"].types, "./types/raw.d.ts");
    // Every subpath JSR has, npm has, and every file an export names is in the package.
    const denoJson = JSON.parse(readFileSync(join(ROOT, "deno.json"), "utf8"));
    assert.deepEqual(Object.keys(manifest.exports).sort(), Object.keys(denoJson.exports).sort());
    for (const [subpath, targets] of Object.entries(manifest.exports)) {
      for (const file of Object.values(targets as Record<string, string>)) {
        assert.ok(existsSync(join(ROOT, "npm", file)), `${subpath} names ${file}, not built`);
      }
    }
    assert.ok(manifest.engines.deno && manifest.engines.bun && manifest.engines.node);

    writeFileSync(
      join(scratch.path, "package.json"),
      JSON.stringify({ name: "scratch", private: true, type: "module" }),
    );
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--offline", tarball], {
      cwd: scratch.path,
      stdio: "ignore",
    });
    writeFileSync(join(scratch.path, "smoke.mjs"), SMOKE);
    const expected = {
      queued: [42],
      semTaken: true,
      struct: 4,
      word: 0xbeef,
      regionSize: 8,
      perms: "rw-s",
      code: "ENOENT",
      detached: true,
      child: 0,
      fromChild: "7",
    };
    const fromBun = execFileSync(BUN, ["smoke.mjs"], { cwd: scratch.path, encoding: "utf8" });
    assert.deepEqual(JSON.parse(fromBun), expected);
    const fromDeno = execFileSync(DENO, ["run", "--allow-ffi", "smoke.mjs"], {
      cwd: scratch.path,
      encoding: "utf8",
    });
    assert.deepEqual(JSON.parse(fromDeno), expected);
    // A plain Node project: no flags but the one that quiets node:ffi's ExperimentalWarning.
    const fromNode = execFileSync(NODE, ["--disable-warning=ExperimentalWarning", "smoke.mjs"], {
      cwd: scratch.path,
      encoding: "utf8",
    });
    assert.deepEqual(JSON.parse(fromNode), expected);

    // The shmkit bin (cli/): Bun and Deno run it in place; under Node it runs itself with Bun.
    assert.equal(manifest.bin.shmkit, "./bin/shmkit.js");
    const bin = join(scratch.path, "node_modules/.bin/shmkit");
    const runs: string[][] = [[BUN, bin, "help"], [DENO, "run", "-A", bin, "help"]];
    if (have("node")) runs.push([bin, "help"]);
    for (const [program, ...args] of runs) {
      const help = execFileSync(program!, args, {
        cwd: scratch.path,
        encoding: "utf8",
        env: { ...process.env, PATH: `${join(ROOT, "node_modules/.bin")}:${process.env.PATH}` },
      });
      assert.match(help, /^Usage: shmkit/, `${program} ${args.join(" ")}`);
    }
    // A supervised child that never imports shmkit still ends with its parent,
    // SIGKILL included: the package ships the lifeline preload.
    writeFileSync(join(scratch.path, "idle.mjs"), "setInterval(() => {}, 1000);\n");
    writeFileSync(join(scratch.path, "supervisor.mjs"), SUPERVISOR);
    const supervisors: [string, string[]][] = [
      [BUN, ["supervisor.mjs"]],
      [DENO, ["run", "-A", "supervisor.mjs"]],
      [NODE, ["--disable-warning=ExperimentalWarning", "supervisor.mjs"]],
    ];
    for (const [program, args] of supervisors) {
      const orphan = await childOfKilledParent(program, args, scratch.path);
      assert.equal(orphan, "ended", `${program}: the child outlived its SIGKILLed parent`);
    }

    // The README's docs/ links resolve inside the package.
    assert.ok(existsSync(join(scratch.path, "node_modules/shmkit/docs/shm.md")));

    // The .d.ts files type-check for a TypeScript consumer.
    writeFileSync(join(scratch.path, "typed.ts"), TYPED);
    execFileSync(TSC, [
      "--noEmit",
      "--strict",
      "--module",
      "nodenext",
      "--moduleResolution",
      "nodenext",
      "--target",
      "es2022",
      "--lib",
      "es2024,esnext.disposable,dom",
      "--types",
      "",
      "typed.ts",
    ], { cwd: scratch.path, stdio: "inherit" });
  } finally {
    scratch.remove();
  }
});

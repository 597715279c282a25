/**
 * {@linkcode spawnScript}: a Deno, Bun or Node script as a child process, handed
 * shared regions by name (`SHMKIT_FDS`).
 *
 * @module
 */
import { backend } from "../ffi/libc.ts";
import { cString, typeName } from "../ffi/pointer.ts";
import { deno, execPath as runtimeExecPath } from "../core/_runtime.ts";
import { checkBoolean, checkChoice, checkOptions } from "../core/_validate.ts";
import type { Child } from "./child.ts";
import { type FdSource, type SpawnOptions, statMode } from "./_plan.ts";
import { spawn } from "./spawn.ts";
import { INHERITED_FDS_VARIABLE, LIFELINE_VARIABLE } from "./_environ.ts";
import { lifelineReadEnd } from "./_lifeline.ts";

export { INHERITED_FDS_VARIABLE } from "./_environ.ts";

/** Options of {@linkcode spawnScript}: those of {@linkcode spawn} but `path`, plus these. */
export interface SpawnScriptOptions extends Omit<SpawnOptions, "path"> {
  /**
   * Shared regions to hand over, by name: anything with an `fd` (a
   * {@linkcode Memfd}, a {@linkcode SharedMemory}) or an fd number. The child
   * gets them back with `inheritedRegion(name)`.
   */
  readonly regions?: Readonly<Record<string, number | FdSource>>;
  /** The runtime to run the script on (default: this one). */
  readonly runtime?: "deno" | "bun" | "node";
  /**
   * The runtime's executable. Default: this process's own when `runtime` is
   * this one, else `deno`, `bun` or `node` found in PATH.
   */
  readonly execPath?: string;
  /** Arguments for the script. */
  readonly args?: readonly string[];
  /**
   * Arguments for the runtime, before the script: e.g. Deno permissions
   * (`["--allow-read"]`; `--allow-ffi` is always given) or Bun flags.
   */
  readonly runtimeArgs?: readonly string[];
  /**
   * Let the child outlive this process (default false). Otherwise the child
   * exits (code 129) as soon as this process is gone, however it ended,
   * SIGKILL included: it watches a pipe only this process holds open.
   */
  readonly detached?: boolean;
}

// Preloaded into supervised children, so the watch runs whether or not the
// script imports shmkit: the source module, or the npm build's entry for it
// (esm/spawn/_lifeline.js, seen from a chunk in esm/chunks/). Not where
// shmkit is not a local file (remote), nor for a Deno that may lack --preload
// (before 2.4): the watch then starts when the script loads shmkit.
const LIFELINE_MODULES = [
  new URL("./_lifeline.ts", import.meta.url),
  new URL("../spawn/_lifeline.js", import.meta.url),
];
let lifelinePath: string | null | undefined;

function preloadFor(runtime: "deno" | "bun" | "node", execPath: string): string[] {
  if (lifelinePath === undefined) {
    lifelinePath = null;
    for (const url of LIFELINE_MODULES) {
      if (url.protocol !== "file:") continue;
      const path = decodeURIComponent(url.pathname);
      if (statMode(path) >= 0) {
        lifelinePath = path;
        break;
      }
    }
  }
  if (lifelinePath === null) return [];
  if (runtime === "deno") {
    // Only this very Deno is known to have the flag.
    const [major = 0, minor = 0] = (deno?.version.deno ?? "0.0").split(".").map(Number);
    const ownDeno = deno !== undefined && execPath === runtimeExecPath();
    if (!ownDeno || major < 2 || (major === 2 && minor < 4)) return [];
  }
  // Node preloads an ES module with --import (every Node with node:ffi has it).
  return [runtime === "node" ? "--import" : "--preload", lifelinePath];
}

const REGION_NAME = /^[A-Za-z0-9_.-]+$/;

function modulePath(module: unknown): string {
  if (module instanceof URL) module = module.href;
  if (typeof module !== "string") {
    throw new TypeError(`Cannot spawn a script: expected a path or URL, got ${typeName(module)}`);
  }
  cString(module, "module");
  if (module === "") throw new RangeError("Cannot spawn a script: the module path is empty");
  return module.startsWith("file:") ? decodeURIComponent(new URL(module).pathname) : module;
}

function stringList(value: unknown, what: string): readonly string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    throw new TypeError(`Cannot use ${what}: expected an array of strings, got ${typeName(value)}`);
  }
  value.forEach((item, i) => cString(item, `${what}[${i}]`));
  return value;
}

/**
 * Runs a script on Deno, Bun or Node as a child process, handing it shared
 * regions by name: each region's fd is given to the child (3, 4, ...) and
 * listed in `SHMKIT_FDS`; the script gets them back with
 * `inheritedRegion(name)`. The script may run on the other runtime.
 *
 * Deno children run as `deno run --allow-ffi [runtimeArgs] module [args]`,
 * Bun children as `bun [runtimeArgs] module [args]`, Node children as
 * `node --disable-warning=ExperimentalWarning [runtimeArgs] module [args]`,
 * each with a preload (`--preload`, Node's `--import`) of shmkit's lifeline watch unless `detached` (where the
 * runtime is known to have the flag): the child ends when this process does
 * (see {@linkcode SpawnScriptOptions.detached}).
 *
 * @example The classic fork program, without fork
 * ```ts
 * import { Memfd, spawnScript } from "@shmkit/shmkit";
 * // The child: takes the region handed to it and doubles the number in it.
 * const script = Deno.makeTempFileSync({ suffix: ".ts" });
 * Deno.writeTextFileSync(script, `
 *   import { inheritedRegion } from "${import.meta.resolve("@shmkit/shmkit")}";
 *   const counter = inheritedRegion("counter");
 *   counter.view(BigUint64Array)[0]! *= 2n;
 * `);
 * using counter = Memfd.create({ size: 8 });
 * counter.view(BigUint64Array)[0] = 1000n;
 * const child = spawnScript(script, { regions: { counter } });
 * console.log((await child.status).code); // 0
 * console.log(counter.view(BigUint64Array)[0]); // 2000n
 * Deno.removeSync(script);
 * ```
 *
 * @param module The script: a path, or a `file:` URL.
 * @throws {TypeError} For options of the wrong type.
 * @throws {RangeError} For a bad region name, a runtime other than "deno", "bun" or "node", or an fd given twice.
 * @throws {ErrnoError} As {@linkcode spawn} does: ENOENT when the runtime's executable is missing.
 */
export function spawnScript(module: string | URL, options?: SpawnScriptOptions): Child {
  const path = modulePath(module);
  const o = checkOptions(options, "options");
  if ("path" in o) throw new TypeError("Cannot use path with spawnScript: use execPath");
  const runtime = o.runtime === undefined
    ? backend.runtime
    : checkChoice(o.runtime, "runtime", ["deno", "bun", "node"] as const);
  const execPath = o.execPath ??
    (runtime === backend.runtime ? runtimeExecPath() : runtime);
  cString(execPath, "execPath");
  const args = stringList(o.args, "args");
  const runtimeArgs = stringList(o.runtimeArgs, "runtimeArgs");

  const fds: Record<number, number | FdSource> = { ...o.fds };
  const listed: string[] = [];
  if (o.regions !== undefined) {
    if (typeof o.regions !== "object" || o.regions === null || Array.isArray(o.regions)) {
      throw new TypeError(
        `Cannot use regions: expected an object by name, got ${typeName(o.regions)}`,
      );
    }
    let next = 3;
    for (const [name, region] of Object.entries(o.regions)) {
      if (!REGION_NAME.test(name)) {
        throw new RangeError(
          `Cannot use region name ${JSON.stringify(name)}: use letters, digits, "_", "." and "-"`,
        );
      }
      while (Object.hasOwn(fds, next)) next++;
      fds[next] = region;
      listed.push(`${name}=${next}`);
      next++;
    }
  }
  const env: Record<string, string> = { ...o.env, [INHERITED_FDS_VARIABLE]: listed.join(",") };
  if (runtime === "deno") env.DENO_NO_UPDATE_CHECK ??= "1";
  const supervisor: string[] = [];
  if (!checkBoolean(o.detached, "detached", false)) {
    let at = 3;
    while (Object.hasOwn(fds, at)) at++;
    fds[at] = lifelineReadEnd();
    env[LIFELINE_VARIABLE] = String(at);
    supervisor.push(...preloadFor(runtime, execPath));
  }

  const argv = runtime === "deno"
    ? [execPath, "run", "--allow-ffi", ...supervisor, ...runtimeArgs, path, ...args]
    : runtime === "node"
    // node:ffi is experimental in Node 26 and says so on stderr at every start.
    ? [
      execPath,
      "--disable-warning=ExperimentalWarning",
      ...supervisor,
      ...runtimeArgs,
      path,
      ...args,
    ]
    : [execPath, ...supervisor, ...runtimeArgs, path, ...args];
  const {
    regions: _r,
    runtime: _rt,
    execPath: _e,
    args: _a,
    runtimeArgs: _ra,
    detached: _d,
    ...rest
  } = o;
  return spawn(argv, { ...rest, env, fds });
}

/**
 * The classic shared-memory program — create shared memory, start a child,
 * the child changes the data, the parent reads it after waiting — on Deno,
 * Bun or Node, without fork: the child is this same script, started with
 * posix_spawn and handed the memory as an fd.
 *
 * ```sh
 * node_modules/.bin/deno run --allow-ffi scripts/demo.ts
 * node_modules/.bin/bun scripts/demo.ts
 * node_modules/.bin/node --disable-warning=ExperimentalWarning scripts/demo.ts
 * # the child on the other runtime:
 * node_modules/.bin/deno run --allow-ffi scripts/demo.ts --child-runtime=bun --child-exec=node_modules/.bin/bun
 * ```
 *
 * Prints:
 *
 * ```text
 * parent 1234 (deno): maps before mapping: (none)
 * parent 1234 (deno): maps after mapping:  7f1c2a000000-7f1c2a001000 rw-s 00000000 00:01 6 /memfd:shmkit-demo (deleted)
 * parent 1234 (deno): value before child = 1000
 * child 1240 (deno): doubled 1000 to 2000
 * parent 1234 (deno): child exited with code 0; value after = 2000
 * ```
 *
 * @module
 */
import { inheritedRegion, Memfd, readProcMaps, spawnScript } from "../mod.ts";
import { ftruncate, memfdCreate, platform } from "../raw.ts";

const C = platform.constants;

const g = globalThis as {
  Deno?: { args: string[]; pid: number; exit(code: number): never };
  process?: { argv: string[]; pid: number; exit(code: number): never };
};
const args = g.Deno?.args ?? g.process!.argv.slice(2);
const pid = g.Deno?.pid ?? g.process!.pid;
const runtime = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";
const exit = (code: number): never => (g.Deno ?? g.process)!.exit(code);

function option(name: string): string | undefined {
  const prefix = `--${name}=`;
  return args.find((a) => a.startsWith(prefix))?.slice(prefix.length);
}

if (args.includes("--child")) {
  // The child: map what the parent handed over as "counter" and double it.
  using counter = inheritedRegion("counter");
  const value = counter.view(BigUint64Array, 0, 1);
  const before = value[0]!;
  value[0] = before * 2n;
  console.log(`child ${pid} (${runtime}): doubled ${before} to ${value[0]}`);
} else {
  // Shared memory: an anonymous memory file, sized for one u64.
  const fd = memfdCreate("shmkit-demo", C.MFD_CLOEXEC | C.MFD_ALLOW_SEALING);
  ftruncate(fd, 8);
  const mapsLine = (): string =>
    readProcMaps().find((entry) => entry.pathname.startsWith("/memfd:shmkit-demo"))?.line
      .replace(/\s+/g, " ") ?? "(none)";
  console.log(`parent ${pid} (${runtime}): maps before mapping: ${mapsLine()}`);
  using counter = Memfd.fromFd(fd, { requireSeals: [] });
  console.log(`parent ${pid} (${runtime}): maps after mapping:  ${mapsLine()}`);
  counter.view(BigUint64Array, 0, 1)[0] = 1000n;
  console.log(
    `parent ${pid} (${runtime}): value before child = ${counter.view(BigUint64Array)[0]}`,
  );

  const childRuntime = option("child-runtime") as "deno" | "bun" | "node" | undefined;
  const execPath = option("child-exec");
  const child = spawnScript(new URL(import.meta.url), {
    regions: { counter },
    args: ["--child"],
    ...(childRuntime === undefined ? {} : { runtime: childRuntime }),
    ...(execPath === undefined ? {} : { execPath }),
  });
  const status = await child.status;
  const after = counter.view(BigUint64Array, 0, 1)[0];
  console.log(
    `parent ${pid} (${runtime}): child exited with code ${status.code}; value after = ${after}`,
  );
  if (!status.success || after !== 2000n) exit(1);
}

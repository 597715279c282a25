#!/usr/bin/env node
// The npm package's `shmkit` bin (copied to bin/shmkit.js by scripts/build_npm.ts).
// An npm bin's shebang names one runtime, and shmkit runs on Deno and Bun, not
// Node. Under Deno (`deno run -A npm:shmkit`) or Bun (`bunx --bun shmkit`) this
// runs the CLI in place; under Node (`npx shmkit`, or `bunx shmkit` when node is
// on PATH, as bunx honours the shebang) it runs itself again under
// $SHMKIT_RUNTIME ("bun" or "deno"), else bun, else deno. See docs/cli.md.
import process from "node:process";

const scope = globalThis;
if (scope.Deno !== undefined || scope.Bun !== undefined) {
  const { main } = await import("../esm/cli/main.js");
  main();
} else {
  const { spawnSync } = await import("node:child_process");
  const { fileURLToPath } = await import("node:url");
  const self = fileURLToPath(import.meta.url);
  const args = process.argv.slice(2);
  const commands = { bun: [self, ...args], deno: ["run", "-A", self, ...args] };
  const wanted = process.env.SHMKIT_RUNTIME;
  const order = wanted === "bun" || wanted === "deno" ? [wanted] : ["bun", "deno"];
  for (const runtime of order) {
    const result = spawnSync(runtime, commands[runtime], { stdio: "inherit" });
    if (result.error?.code === "ENOENT") continue;
    if (result.error !== undefined) {
      console.error(`shmkit: cannot run ${runtime}: ${result.error.message}`);
      process.exit(1);
    }
    if (result.signal !== null) process.kill(process.pid, result.signal);
    process.exit(result.status ?? 1);
  }
  console.error(
    "shmkit: needs Bun or Deno on PATH (npm i -g bun, or install deno), or run it as " +
      "`bunx --bun shmkit` or `deno run -A npm:shmkit`",
  );
  process.exit(1);
}

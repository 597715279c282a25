/**
 * Where spawn + wait of /bin/true spends its time over C, part by part, in
 * the current runtime. The wall-clock parts run in alternating rounds and
 * are compared by the median of their per-round differences (the machine's
 * load moves every part alike within a round); the CPU-bound parts are timed
 * alone. Not a `*_bench.ts` module: it has no goals.
 *
 * Usage: deno run -A bench/spawn_parts.ts [rounds] | bun bench/spawn_parts.ts |
 * node bench/spawn_parts.ts
 *
 * @module
 */
import { spawn as spawnProcess } from "node:child_process";
import { readdirSync } from "node:fs";
import { spawn } from "../mod.ts";
import { backend, unsafeLibc } from "../ffi/libc.ts";
import { ExitWatch } from "../spawn/_exit_watch.ts";
import { useEpollEngineForTesting } from "../spawn/_poll_reactor.ts";
import { plan } from "../spawn/_plan.ts";
import { CStringArray, posixSpawn, PosixSpawnFileActions } from "../spawn/raw.ts";
import { attributesFor } from "../spawn/_attributes.ts";
import { compileC, median, runForNumber } from "./harness.ts";
import { bareSignalSpawn, bareThreadSpawn } from "./spawn_bench.ts";

const PER_ROUND = 20;
const rounds = Number(globalThis.process?.argv[2] ?? 15);

const attributes = attributesFor(); // the ones spawn() passes
const actions = new PosixSpawnFileActions().addCloseFrom(3);
const argv = new CStringArray(["/bin/true"], "argv");
// The environment spawn() passes (LANG in it makes /bin/true load its locale, as from C).
const envp = plan(["/bin/true"], undefined).envp as CStringArray | number;
const cell = new Int32Array(1);
const bare = (): number => posixSpawn("/bin/true", actions, attributes, argv, envp);

/** The runtime's own spawn + wait of /bin/true. */
function ownSpawn(): [string, () => Promise<unknown>] {
  const g = globalThis as {
    Bun?: { spawn(a: string[], o: object): { exited: Promise<number> } };
    Deno?: { Command: new (p: string, o: object) => { spawn(): { status: Promise<unknown> } } };
  };
  const stdio = "inherit";
  if (g.Bun !== undefined) {
    const bun = g.Bun;
    return ["Bun.spawn", () => bun.spawn(["/bin/true"], { stdio: [stdio, stdio, stdio] }).exited];
  }
  if (g.Deno !== undefined) {
    const deno = g.Deno;
    return [
      "Deno.Command",
      () =>
        new deno.Command("/bin/true", { stdin: stdio, stdout: stdio, stderr: stdio }).spawn()
          .status,
    ];
  }
  return [
    "child_process.spawn",
    () =>
      new Promise((resolve, reject) => {
        const child = spawnProcess("/bin/true", [], { stdio });
        child.on("error", reject);
        child.on("exit", resolve);
      }),
  ];
}

const [ownName, own] = ownSpawn();
const exe = compileC("spawn_true", ["-pthread"]);
const FLOOR = "posixSpawn + blocking waitpid (same attributes and environment)";
/** Runs `fn` with Bun's epoll engine waiting on a native thread or a Worker. */
function withWaiter(
  native: boolean,
  fn: () => Promise<unknown>,
): (() => Promise<unknown>) | undefined {
  if (backend.runtime !== "bun") return undefined;
  const probe = useEpollEngineForTesting(native);
  if (probe === undefined) return undefined;
  probe();
  return async () => {
    const restore = useEpollEngineForTesting(native)!;
    try {
      return await fn();
    } finally {
      restore();
    }
  };
}

const exitWatch = (): Promise<number> => new ExitWatch(bare()).promise;
const parts: Record<string, () => unknown> = {
  [FLOOR]: () => unsafeLibc.waitpid(bare(), cell, 0),
  "posixSpawn + ExitWatch (the exit wake-up path)": exitWatch,
  "spawn() + await status": () => spawn(["/bin/true"]).status,
  [ownName]: own,
};
// Deno, Node: the runtime's cheapest exit event with no shmkit code (spawn_bench's floor).
const bareListener = bareSignalSpawn();
if (bareListener !== undefined) {
  parts["posixSpawn + a bare SIGCHLD listener and waitpid(WNOHANG)"] = bareListener.run;
}
// Bun: raw posix_spawn + a pidfd waited by a native thread of its own (spawn_bench's floor).
const bareThread = bareThreadSpawn();
if (bareThread !== undefined) {
  parts["posixSpawn + a pidfd waited by a native thread of its own, no reactor (Bun's floor)"] =
    bareThread.run;
}
// Bun: the two waiters of the pidfd, side by side.
const viaWorker = withWaiter(false, exitWatch);
const viaNative = withWaiter(true, exitWatch);
if (viaWorker !== undefined && viaNative !== undefined) {
  parts["posixSpawn + ExitWatch, pidfd waited by a Worker"] = viaWorker;
  parts["posixSpawn + ExitWatch, pidfd waited by the native thread"] = viaNative;
}

// C again with this runtime's shape: as many idle threads as it has besides
// its main one, then also with its wake-up: one wake from a pidfd poll (as
// Bun.spawn), two through a waiter thread (as a loop that can't watch an fd
// needs: shmkit on Bun), or a signal handler's self-pipe (Deno, Node).
const threads = String(Math.max(0, readdirSync("/proc/self/task").length - 1));
const cParts: Record<string, string[]> = {
  "C posix_spawn + waitpid": ["0", "waitpid"],
  [`C, ${threads} idle threads, waitpid`]: [threads, "waitpid"],
  [`C, ${threads} idle threads, poll of a pidfd`]: [threads, "pidfd"],
  [`C, ${threads} idle threads, a waiter thread polls the pidfd`]: [threads, "thread"],
  [`C, ${threads} idle threads, SIGCHLD handler + self-pipe poll`]: [threads, "signal"],
};

const samples: Record<string, number[]> = {};
for (let round = -1; round < rounds; round++) {
  for (const [part, args] of Object.entries(cParts)) {
    const c = runForNumber(exe, [String(PER_ROUND), "1", ...args]);
    if (round >= 0) (samples[part] ??= []).push(c);
  }
  for (const [part, fn] of Object.entries(parts)) {
    const start = performance.now();
    for (let i = 0; i < PER_ROUND; i++) await fn();
    const us = ((performance.now() - start) * 1000) / PER_ROUND;
    if (round >= 0) (samples[part] ??= []).push(us);
  }
}
bareListener?.stop();
bareThread?.stop();
const floor = samples[FLOOR]!;
console.log(`${backend.runtime} | spawn + wait of /bin/true, ${rounds} rounds of ${PER_ROUND}`);
for (const [part, values] of Object.entries(samples)) {
  const diff = median(values.map((v, i) => v - floor[i]!));
  console.log(
    `  ${part}: ${median(values).toFixed(0)} us (${diff >= 0 ? "+" : ""}${
      diff.toFixed(0)
    } vs the floor)`,
  );
}

/** Median microseconds per call of a CPU-bound part. */
function cpu(fn: () => unknown, iterations = 2000): number {
  const values: number[] = [];
  for (let round = 0; round < 7; round++) {
    const start = performance.now();
    for (let i = 0; i < iterations; i++) fn();
    values.push(((performance.now() - start) * 1000) / iterations);
  }
  return median(values);
}
console.log(`${backend.runtime} | CPU parts before posix_spawn`);
console.log(
  `  plan() (argument checks, environment): ${
    cpu(() => plan(["/bin/true"], undefined)).toFixed(2)
  } us`,
);
console.log(`  inherited stdio check (3 fcntl F_GETFD): ${
  cpu(() => {
    for (let fd = 0; fd < 3; fd++) unsafeLibc.fcntl(fd, 1, 0);
  }).toFixed(2)
} us`);

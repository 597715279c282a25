/**
 * Spawn + wait of /bin/true: shmkit's {@linkcode spawn} against C
 * `posix_spawn` + `waitpid` (bench/c/spawn_true.c, same signal and fd
 * hygiene), and against the runtime's own API (`Deno.Command` under Deno,
 * `Bun.spawn` under Bun, `child_process.spawn` under Node), all with
 * inherited stdio.
 *
 * Two floors show which part of the gap to C is the runtime's: C itself
 * learning of the exit the way this runtime's event loop can (a SIGCHLD
 * handler and a self-pipe for Deno and Node; a waiter thread handing the
 * pidfd's readiness to the main thread for Bun, whose loop can't watch an
 * fd it didn't open), with the runtime's idle threads; and (Deno, Node) the
 * same `posix_spawn` call through the raw layer and a bare SIGCHLD listener
 * that reaps with `waitpid(WNOHANG)`: no `spawn()` code at all (shmkit's
 * own listener, installed by the warm-up, also runs on each SIGCHLD there,
 * finding no child of its own).
 *
 * Spawning costs hundreds of microseconds and the machine's load moves it a
 * lot, so the three are measured in alternating rounds and compared by
 * their medians.
 *
 * @module
 */
import { spawn as spawnProcess } from "node:child_process";
import { readdirSync } from "node:fs";
import { spawn } from "../mod.ts";
import { unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { plan } from "../spawn/_plan.ts";
import {
  type CStringArray,
  posixSpawn,
  PosixSpawnAttributes,
  PosixSpawnFileActions,
  SignalSet,
  SpawnFlags,
} from "../spawn/raw.ts";
import {
  type Benchmark,
  type Comparison,
  compileC,
  type Measured,
  median,
  runForNumber,
} from "./harness.ts";

const ROUNDS = 9;
const PER_ROUND = 40;

interface DenoLike {
  addSignalListener(signal: "SIGCHLD", handler: () => void): void;
  removeSignalListener(signal: "SIGCHLD", handler: () => void): void;
  Command: new (
    program: string,
    options: { stdin: "inherit"; stdout: "inherit"; stderr: "inherit" },
  ) => { spawn(): { status: Promise<{ success: boolean }> } };
}

interface BunLike {
  spawn(
    argv: string[],
    options: { stdio: ["inherit", "inherit", "inherit"] },
  ): { exited: Promise<number> };
}

/** The runtime's own spawn + wait of /bin/true, and its name. */
function runtimeSpawn(): { name: string; run: () => Promise<unknown> } {
  const g = globalThis as { Deno?: DenoLike; Bun?: BunLike };
  if (g.Bun !== undefined) {
    const bun = g.Bun;
    return {
      name: "Bun.spawn",
      run: () => bun.spawn(["/bin/true"], { stdio: ["inherit", "inherit", "inherit"] }).exited,
    };
  }
  if (g.Deno === undefined) {
    return {
      name: "child_process.spawn",
      run: () =>
        new Promise((resolve, reject) => {
          const child = spawnProcess("/bin/true", [], { stdio: "inherit" });
          child.on("error", reject);
          child.on("exit", resolve);
        }),
    };
  }
  const deno = g.Deno;
  return {
    name: "Deno.Command",
    run: () =>
      new deno.Command("/bin/true", { stdin: "inherit", stdout: "inherit", stderr: "inherit" })
        .spawn().status,
  };
}

interface NodeProcessLike {
  on(event: "SIGCHLD", handler: () => void): void;
  off(event: "SIGCHLD", handler: () => void): void;
}

/**
 * Deno, Node: posix_spawn through the raw layer (attributes, file actions,
 * argv and environment made once) and a bare SIGCHLD listener that reaps the
 * one child with waitpid(WNOHANG): the cheapest spawn + exit event this
 * runtime offers, with none of spawn()'s code. Undefined under Bun.
 */
export function bareSignalSpawn(): { run: () => Promise<void>; stop: () => void } | undefined {
  const g = globalThis as { Deno?: DenoLike; Bun?: unknown; process?: NodeProcessLike };
  if (g.Bun !== undefined) return undefined;
  const attributes = new PosixSpawnAttributes()
    .setSigDefault(SignalSet.every())
    .setSigMask(SignalSet.empty())
    .setFlags(SpawnFlags.SETSIGDEF | SpawnFlags.SETSIGMASK);
  const actions = new PosixSpawnFileActions().addCloseFrom(3);
  // The same program, argv and environment spawn() passes.
  const p = plan(["/bin/true"], undefined);
  const envp = p.envp as CStringArray | number;
  const cell = new Int32Array(1);
  const WNOHANG = platform.constants.WNOHANG;
  let pending: { pid: number; resolve: () => void } | undefined;
  const onChild = (): void => {
    if (pending !== undefined && unsafeLibc.waitpid(pending.pid, cell, WNOHANG) === pending.pid) {
      const done = pending;
      pending = undefined;
      done.resolve();
    }
  };
  if (g.Deno !== undefined) g.Deno.addSignalListener("SIGCHLD", onChild);
  else g.process!.on("SIGCHLD", onChild);
  // Signal listeners keep neither runtime alive.
  const alive = setInterval(() => {}, 1000);
  return {
    run: () =>
      new Promise<void>((resolve) => {
        pending = { pid: posixSpawn(p.file, actions, attributes, p.argv, envp), resolve };
        onChild();
      }),
    stop: () => {
      clearInterval(alive);
      if (g.Deno !== undefined) g.Deno.removeSignalListener("SIGCHLD", onChild);
      else g.process!.off("SIGCHLD", onChild);
    },
  };
}

async function usPerOp(fn: () => Promise<unknown>, iterations: number): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < iterations; i++) await fn();
  return ((performance.now() - start) * 1000) / iterations;
}

async function shmkitTrue(): Promise<void> {
  const status = await spawn(["/bin/true"]).status;
  if (!status.success) throw new Error("Cannot benchmark: /bin/true failed");
}

/** The spawn benchmarks. */
export const benchmarks: Benchmark[] = [
  {
    name: "spawn + wait of /bin/true",
    unit: "us/op",
    async run(): Promise<Measured> {
      const exe = compileC("spawn_true", ["-pthread"]);
      const native = runtimeSpawn();
      const bun = (globalThis as { Bun?: unknown }).Bun !== undefined;
      // C with this runtime's idle threads and its kind of wake-up.
      const threads = String(Math.max(0, readdirSync("/proc/self/task").length - 1));
      const cShape = [String(PER_ROUND), "1", threads, bun ? "thread" : "signal"];
      const floor = bareSignalSpawn();
      // Warm up: the first spawn starts shmkit's waiter, the first JIT tiers kick in.
      await usPerOp(shmkitTrue, PER_ROUND);
      await usPerOp(native.run, PER_ROUND);
      if (floor !== undefined) await usPerOp(floor.run, PER_ROUND);
      const c: number[] = [];
      const cLoop: number[] = [];
      const ours: number[] = [];
      const theirs: number[] = [];
      const bare: number[] = [];
      try {
        for (let round = 0; round < ROUNDS; round++) {
          c.push(runForNumber(exe, [String(PER_ROUND), "1"]));
          cLoop.push(runForNumber(exe, cShape));
          ours.push(await usPerOp(shmkitTrue, PER_ROUND));
          theirs.push(await usPerOp(native.run, PER_ROUND));
          if (floor !== undefined) bare.push(await usPerOp(floor.run, PER_ROUND));
        }
      } finally {
        floor?.stop();
      }
      const comparisons: Comparison[] = [
        { baselineName: "C posix_spawn + waitpid", baseline: median(c), goal: { max: 1.15 } },
        { baselineName: native.name, baseline: median(theirs), goal: { max: 1 } },
        {
          baselineName: bun
            ? `C posix_spawn, ${threads} idle threads, exit learned by a waiter thread polling the pidfd and waking the main thread (Bun's loop can't watch a foreign fd)`
            : `C posix_spawn, ${threads} idle threads, exit learned by a SIGCHLD handler + self-pipe poll (an event loop's wake-up)`,
          baseline: median(cLoop),
          goal: { max: 1.15 },
        },
      ];
      if (floor !== undefined) {
        comparisons.push({
          baselineName:
            "posix_spawn through the raw layer + a bare SIGCHLD listener reaping with waitpid(WNOHANG), no spawn() code (this runtime's floor)",
          baseline: median(bare),
          goal: { max: 1.1 },
        });
      }
      return { value: median(ours), comparisons };
    },
  },
];

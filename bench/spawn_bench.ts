/**
 * Spawn + wait of /bin/true: shmkit's {@linkcode spawn} against C
 * `posix_spawn` + `waitpid` (bench/c/spawn_true.c, same signal and fd
 * hygiene), and against the runtime's own API (`Deno.Command` under Deno,
 * `Bun.spawn` under Bun, `child_process.spawn` under Node), all with
 * inherited stdio.
 *
 * Spawning costs hundreds of microseconds and the machine's load moves it a
 * lot, so the three are measured in alternating rounds and compared by
 * their medians.
 *
 * @module
 */
import { spawn as spawnProcess } from "node:child_process";
import { spawn } from "../mod.ts";
import { type Benchmark, compileC, type Measured, median, runForNumber } from "./harness.ts";

const ROUNDS = 9;
const PER_ROUND = 40;

interface DenoLike {
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
      const exe = compileC("spawn_true");
      const native = runtimeSpawn();
      // Warm up: the first spawn starts shmkit's waiter, the first JIT tiers kick in.
      await usPerOp(shmkitTrue, PER_ROUND);
      await usPerOp(native.run, PER_ROUND);
      const c: number[] = [];
      const ours: number[] = [];
      const theirs: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        c.push(runForNumber(exe, [String(PER_ROUND), "1"]));
        ours.push(await usPerOp(shmkitTrue, PER_ROUND));
        theirs.push(await usPerOp(native.run, PER_ROUND));
      }
      return {
        value: median(ours),
        comparisons: [
          { baselineName: "C posix_spawn + waitpid", baseline: median(c), goal: { max: 1.15 } },
          { baselineName: native.name, baseline: median(theirs), goal: { max: 1 } },
        ],
      };
    },
  },
];

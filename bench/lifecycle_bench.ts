/**
 * Issue 11's latency goal, literally: the async channel round trip and the
 * async futex wait round trip may grow by at most 10% over the code before
 * the lifecycle work (commit effd2da), measured in the same run.
 *
 * An old end and a new end don't interoperate (the channel layout changed),
 * so each tree talks to itself: bench/peers/lifecycle_ab.ts, the same code
 * for both, imports the tree it is given. The old tree is extracted from git
 * history into .cache/ (skipped, with the reason printed, without it).
 * Rounds alternate old and new (ABBA). Two figures per shape, each the
 * median over the rounds: a batch's mean round trip (which a busy
 * machine's scheduling tail moves 10x from run to run), and the typical
 * round trip: for the channel, the median single round trip; for the
 * futex, the median round trip of its kernel wake-up mode (4-16 us). Its round trips
 * fall in two modes: ~1 us when the synchronous peer never slept (main's
 * next store beat its FUTEX_WAIT), ~6-10 us when it slept and was woken. A
 * round lands mostly in one or the other by a race between the two
 * processes, in either tree and with either tree's peer, so a round's
 * median (and its mean) follows that lottery, not the code; the median
 * within the slow mode, the one most round trips land in, does not. Each
 * round also prints its fast share and trimmed mean. effd2da had no Node
 * backend: Node is skipped.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Benchmark, Measured } from "./harness.ts";
import { median, runtimeCommand } from "./peers/support.ts";

/** The last commit before the lifecycle work. */
const OLD_COMMIT = "effd2da";
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
/**
 * Rounds per shape. The futex shape gets more: each of its round trips lands in
 * one of two modes (the synchronous peer slept or not, a race), and a round's
 * share of each varies 0-60% in either tree, so 10 rounds were too few.
 */
const ROUNDS: Readonly<Record<string, number>> = { channel: 10, futex: 16 };

/** The old tree's directory, or why there is none. */
function oldTree(): { root: string } | { skipped: string } {
  if (!("Bun" in globalThis) && !("Deno" in globalThis)) {
    return { skipped: `${OLD_COMMIT} had no Node backend` };
  }
  const dir = join(ROOT, ".cache", `old-tree-${OLD_COMMIT}`);
  if (existsSync(join(dir, "mod.ts"))) return { root: dir };
  const verify = spawnSync("git", ["-C", ROOT, "rev-parse", "--verify", `${OLD_COMMIT}^{commit}`]);
  if (verify.status !== 0) return { skipped: `no git history with ${OLD_COMMIT} here` };
  mkdirSync(join(ROOT, ".cache"), { recursive: true });
  const tmp = mkdtempSync(join(ROOT, ".cache", `old-tree-${OLD_COMMIT}-`));
  const archive = spawnSync("sh", [
    "-c",
    `git -C "$1" archive "$2" | tar -x -C "$3"`,
    "sh",
    ROOT,
    OLD_COMMIT,
    tmp,
  ]);
  if (archive.status !== 0 || !existsSync(join(tmp, "mod.ts"))) {
    rmSync(tmp, { recursive: true, force: true });
    return { skipped: `git archive ${OLD_COMMIT} failed: ${archive.stderr}` };
  }
  try {
    renameSync(tmp, dir);
  } catch {
    // Another bench run extracted it first.
    rmSync(tmp, { recursive: true, force: true });
  }
  return { root: dir };
}

/** One round measured by lifecycle_ab.ts in `root`: mean and median round trip, ns. */
function round(root: string, shape: string, perBatch: number): Figures {
  const [command, prefix] = runtimeCommand();
  const script = join(ROOT, "bench", "peers", "lifecycle_ab.ts");
  const out = spawnSync(command, [...prefix, script, root, shape, "main", String(perBatch), "7"], {
    stdio: ["ignore", "pipe", "inherit"],
    encoding: "utf8",
    timeout: 300_000,
  });
  const field = (name: string): number => {
    const match = new RegExp(`^${name} (\\S+)$`, "m").exec(out.stdout ?? "");
    if (out.status !== 0 || match === null) {
      throw new Error(`lifecycle_ab ${shape} in ${root} exited with ${out.status ?? out.signal}`);
    }
    return Number(match[1]);
  };
  return {
    mean: field("NS"),
    p50: field("P50"),
    trim: field("TRIM"),
    fast: field("FAST"),
    slow: field("SLOW"),
  };
}

interface Figures {
  /** The median of the round's batch means. */
  readonly mean: number;
  /** The round's median single round trip. */
  readonly p50: number;
  /** The round's mean round trip without its slowest 1%. */
  readonly trim: number;
  /** The share of the round's round trips in the fast mode (informative). */
  readonly fast: number;
  /** The median of the round's round trips in the kernel wake-up mode (NaN: too few). */
  readonly slow: number;
}

/** Alternating old/new rounds (ABBA, so neither always goes first); undefined: skipped. */
function alternate(
  shape: string,
  perBatch: number,
): { old: Figures[]; now: Figures[] } | undefined {
  const tree = oldTree();
  if ("skipped" in tree) {
    console.error(`lifecycle bench: ${shape} skipped: ${tree.skipped}`);
    return undefined;
  }
  const old: Figures[] = [];
  const now: Figures[] = [];
  for (let r = 0; r < (ROUNDS[shape] ?? 10); r++) {
    if (r % 2 === 0) {
      old.push(round(tree.root, shape, perBatch));
      now.push(round(ROOT, shape, perBatch));
    } else {
      now.push(round(ROOT, shape, perBatch));
      old.push(round(tree.root, shape, perBatch));
    }
  }
  const list = (xs: Figures[], key: keyof Figures): string =>
    xs.map((x) => (key === "fast" ? x[key].toFixed(2) : Math.round(x[key]))).join(" ");
  for (const key of ["mean", "p50", "trim", "fast", "slow"] as const) {
    console.error(
      `lifecycle bench: ${shape} ${key} by round, old: ${list(old, key)}; new: ${list(now, key)}`,
    );
  }
  return { old, now };
}

// One set of rounds per shape serves both of its rows.
const measured = new Map<string, ReturnType<typeof alternate>>();

function row(shape: string, key: keyof Figures): Measured {
  if (!measured.has(shape)) measured.set(shape, alternate(shape, 1000));
  const rounds = measured.get(shape);
  if (rounds === undefined) return { value: NaN, comparisons: [] };
  return {
    value: median(rounds.now.map((x) => x[key]).filter((x) => !Number.isNaN(x))),
    comparisons: [{
      baselineName:
        `the same with the code before the lifecycle work (${OLD_COMMIT}), same run, alternating rounds`,
      baseline: median(rounds.old.map((x) => x[key]).filter((x) => !Number.isNaN(x))),
      goal: { max: 1.1 },
    }],
  };
}

/** The same-run comparisons with the code before the lifecycle work. */
export const benchmarks: Benchmark[] = [
  {
    name: "channel ping-pong round trip between two processes, receiveAsync/sendAsync " +
      "(fresh processes per round; mean of a batch)",
    unit: "ns/op",
    run: () => Promise.resolve(row("channel", "mean")),
  },
  {
    name: "channel ping-pong round trip between two processes, receiveAsync/sendAsync " +
      "(fresh processes per round; median single round trip)",
    unit: "ns/op",
    run: () => Promise.resolve(row("channel", "p50")),
  },
  {
    name: "wait/notify round trip between two processes, waitAsync with a 0.1 ms polling window " +
      "against a synchronous waiter (fresh processes per round; mean of a batch)",
    unit: "ns/op",
    run: () => Promise.resolve(row("futex", "mean")),
  },
  {
    name: "wait/notify round trip between two processes, waitAsync with a 0.1 ms polling window " +
      "against a synchronous waiter (fresh processes per round; median round trip when the " +
      "waiter slept in the kernel, i.e. of the round trips of 4-16 us)",
    unit: "ns/op",
    run: () => Promise.resolve(row("futex", "slow")),
  },
];

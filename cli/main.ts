#!/usr/bin/env -S deno run -A
/**
 * The `shmkit` command line: lists, inspects, removes and garbage-collects
 * POSIX shared memory objects (/dev/shm), System V segments and semaphore
 * sets, and prints every limit that bounds them (Linux). Run it with
 * `deno run -A jsr:@shmkit/shmkit/cli ls`, `bun cli/main.ts ls`, or the
 * npm package's `shmkit` bin; see docs/cli.md.
 *
 * Commands: `ls`, `stat TARGET`, `rm TARGET...`, `gc`, `limits`; each
 * takes `--json`. Exit codes: 0 done, 1 something failed or was not
 * found, 2 bad usage.
 *
 * @example Run it from a program
 * ```ts
 * import { run } from "@shmkit/shmkit/cli";
 * const { stdout, exit } = run(["ls", "--json"]);
 * if (exit === 0) console.log(JSON.parse(stdout).posix.length);
 * ```
 *
 * @module
 */
import process from "node:process";
import { limits, ls, parseTarget, rm, stat } from "./_commands.ts";
import { gc } from "./_gc.ts";
import { EXIT, type Outcome } from "./_outcome.ts";

export { EXIT } from "./_outcome.ts";
export type { Outcome } from "./_outcome.ts";

/** The help text. */
export const USAGE = `Usage: shmkit COMMAND [OPTIONS]

Commands:
  ls [--prefix /P]         POSIX objects in /dev/shm, System V segments and semaphore sets
  stat TARGET              everything known about one object
  rm TARGET...             remove objects (shm_unlink, shmctl IPC_RMID)
  gc [--dry-run] [--all-dead] [--verbose] [TARGET...]
                           remove what dead creators left (shmkit's random-named objects;
                           --all-dead: also its named ones and orphaned System V segments);
                           with targets, only those
  limits                   every limit: sysctls, /dev/shm room, rlimits, and what is in use
  help                     this text

Options:
  --json                   machine-readable output (every command)

Targets:
  /NAME or /dev/shm/NAME   a POSIX object (a bare NAME gets its "/")
  ID                       a System V segment id (as ls shows it)
  0xKEY                    the System V segment with this key
  sem:ID                   a System V semaphore set (stat only)

Exit codes: 0 done, 1 something failed or was not found, 2 bad usage.
`;

function usage(problem: string): Outcome {
  return { stdout: "", stderr: `shmkit: ${problem}\n\n${USAGE}`, exit: EXIT.usage };
}

interface Parsed {
  readonly positional: string[];
  readonly flags: Set<string>;
  readonly values: Map<string, string>;
}

function parse(args: readonly string[], known: readonly string[], valued: readonly string[]):
  | Parsed
  | string {
  const positional: string[] = [];
  const flags = new Set<string>();
  const values = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      positional.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith("--")) {
      positional.push(arg);
      continue;
    }
    const [name, inline] = arg.includes("=") ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    if (valued.includes(name!)) {
      const value = inline ?? args[++i];
      if (value === undefined) return `${name} needs a value`;
      values.set(name!, value);
    } else if (known.includes(name!) && inline === undefined) flags.add(name!);
    else return `unknown option ${arg}`;
  }
  return { positional, flags, values };
}

/**
 * Runs one command and returns what it prints and its exit code, without
 * writing anything or exiting: the CLI as a function.
 *
 * @example
 * ```ts
 * import { run } from "@shmkit/shmkit/cli";
 * console.log(run(["limits"]).stdout);
 * ```
 *
 * @param args The arguments after the program name, e.g. `["stat", "/x", "--json"]`.
 * @returns The output and the exit code (0 done, 1 failed, 2 usage).
 */
export function run(args: readonly string[]): Outcome {
  const [command, ...rest] = args;
  if (command === undefined) return usage("no command");
  if (command === "help" || command === "--help" || command === "-h") {
    return { stdout: USAGE, stderr: "", exit: EXIT.ok };
  }
  try {
    switch (command) {
      case "ls": {
        const p = parse(rest, ["--json"], ["--prefix"]);
        if (typeof p === "string") return usage(p);
        if (p.positional.length > 0) return usage(`ls takes no targets (got ${p.positional[0]})`);
        const prefix = p.values.get("--prefix") ?? "/";
        if (!prefix.startsWith("/")) return usage(`--prefix must start with "/" (got ${prefix})`);
        return ls({ json: p.flags.has("--json"), prefix });
      }
      case "stat": {
        const p = parse(rest, ["--json"], []);
        if (typeof p === "string") return usage(p);
        if (p.positional.length !== 1) return usage("stat takes exactly one target");
        return stat(p.positional[0]!, { json: p.flags.has("--json") });
      }
      case "rm": {
        const p = parse(rest, ["--json"], []);
        if (typeof p === "string") return usage(p);
        if (p.positional.length === 0) return usage("rm needs at least one target");
        return rm(p.positional, { json: p.flags.has("--json") });
      }
      case "gc": {
        const p = parse(rest, ["--json", "--dry-run", "--all-dead", "--verbose"], []);
        if (typeof p === "string") return usage(p);
        const targets = p.positional.map(parseTarget);
        const bad = targets.find((t) => t.kind === "bad" || t.kind === "sem");
        if (bad !== undefined) {
          return usage(
            `gc takes POSIX names, segment ids and keys (not ${
              p.positional[targets.indexOf(bad)]
            })`,
          );
        }
        return gc({
          targets,
          json: p.flags.has("--json"),
          dryRun: p.flags.has("--dry-run"),
          allDead: p.flags.has("--all-dead"),
          verbose: p.flags.has("--verbose"),
        });
      }
      case "limits": {
        const p = parse(rest, ["--json"], []);
        if (typeof p === "string") return usage(p);
        if (p.positional.length > 0) return usage("limits takes no arguments");
        return limits({ json: p.flags.has("--json") });
      }
      default:
        return usage(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    return { stdout: "", stderr: `shmkit ${command}: ${text}\n`, exit: EXIT.error };
  }
}

/**
 * The program: runs `args` (default: this process's arguments), writes the
 * output to stdout and stderr, and sets `process.exitCode`.
 *
 * @example
 * ```ts
 * import { main } from "@shmkit/shmkit/cli";
 * main(["ls"]);
 * ```
 *
 * @param args The arguments after the program name.
 * @returns The exit code.
 */
export function main(args: readonly string[] = process.argv.slice(2)): number {
  const outcome = run(args);
  if (outcome.stdout !== "") process.stdout.write(outcome.stdout);
  if (outcome.stderr !== "") process.stderr.write(outcome.stderr);
  process.exitCode = outcome.exit;
  return outcome.exit;
}

// Run as a program, not when imported (the npm bin imports it, then calls main).
if ((import.meta as { main?: boolean }).main === true) main();

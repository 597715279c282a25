/**
 * Internal (CLI): `shmkit gc`, removing what dead creators left behind.
 *
 * By default only POSIX objects shmkit made with a random name whose
 * recorded creator (shm/_creator.ts) is dead and that no process maps or
 * holds open. `--all-dead` adds shmkit objects with chosen names, and
 * System V segments nobody has attached whose creator and last user are
 * dead. Never: objects without a creator record, of live or unknown
 * creators, in use, or semaphores.
 *
 * @module
 */
import { shmctlRemove, shmctlStat } from "../sysv/raw.ts";
import { shmName, unlinkIfSame } from "../shm/_names.ts";
import {
  hexKey,
  type PosixObject,
  posixObjects,
  type SysvSegment,
  sysvSegments,
} from "./_objects.ts";
import type { Target } from "./_commands.ts";
import { scanUsers } from "./_procs.ts";
import { table } from "./_table.ts";
import { EXIT, type Outcome } from "./_outcome.ts";

/** Options of `shmkit gc`. */
export interface GcOptions {
  readonly json: boolean;
  /** Say what would go, remove nothing. */
  readonly dryRun: boolean;
  /** Include named shmkit objects and System V segments. */
  readonly allDead: boolean;
  /** Also list what was kept, and why. */
  readonly verbose: boolean;
  /** Only these objects (names, ids, keys; see parseTarget); empty: all. */
  readonly targets: readonly Target[];
}

function inScope(targets: readonly Target[], o: PosixObject | SysvSegment): boolean {
  if (targets.length === 0) return true;
  return targets.some((t) =>
    o.type === "sysv-shm"
      ? (t.kind === "sysv-id" && t.id === o.id) ||
        (t.kind === "sysv-key" && hexKey(t.key) === o.key)
      : t.kind === "posix" && t.name === o.name
  );
}

/** One object gc looked at. */
export interface GcAction {
  /** "removed", "would remove", "kept" or "failed". */
  readonly action: "removed" | "would remove" | "kept" | "failed";
  readonly type: "posix-shm" | "sysv-shm";
  /** The name ("/x") or segment id. */
  readonly target: string;
  readonly reason: string;
}

function posixVerdict(o: PosixObject, allDead: boolean): string | undefined {
  if (o.creator === null) return "no creator record (not made by shmkit)";
  if (!o.randomName && !allDead) return "a chosen name (--all-dead includes it)";
  if (o.creator.alive === "alive") return `creator ${o.creator.pid} is alive`;
  if (o.creator.alive === "unknown") {
    return `creator ${o.creator.pid} can't be checked (another pid namespace, or /proc hides it)`;
  }
  if (o.users.length > 0) return `in use by ${o.users.join(", ")}`;
  return undefined;
}

function sysvVerdict(s: SysvSegment): string | undefined {
  if (s.markedForDeletion) return "already marked for deletion";
  if (s.nattch > 0) return `${s.nattch} attachment(s)`;
  if (s.creator.alive !== "dead") return `creator ${s.creator.pid} is ${s.creator.alive}`;
  if (s.lastPid.pid !== 0 && s.lastPid.alive !== "dead") {
    return `last user ${s.lastPid.pid} is ${s.lastPid.alive}`;
  }
  return undefined;
}

/** `shmkit gc`. */
export function gc(options: GcOptions): Outcome {
  const users = scanUsers();
  const actions: GcAction[] = [];
  for (const o of posixObjects(users)) {
    if (o.type !== "posix-shm" || !inScope(options.targets, o)) continue;
    const keep = posixVerdict(o, options.allDead);
    const target = o.name;
    if (keep !== undefined) {
      actions.push({ action: "kept", type: o.type, target, reason: keep });
      continue;
    }
    const reason = `creator ${o.creator!.pid} is dead`;
    if (options.dryRun) {
      actions.push({ action: "would remove", type: o.type, target, reason });
      continue;
    }
    try {
      // Only the object that was checked: never one made under the name since.
      const removed = unlinkIfSame(shmName(o.name), o.dev, o.ino);
      actions.push(
        removed
          ? { action: "removed", type: o.type, target, reason }
          : { action: "kept", type: o.type, target, reason: "gone or replaced meanwhile" },
      );
    } catch (error) {
      actions.push({ action: "failed", type: o.type, target, reason: (error as Error).message });
    }
  }
  if (options.allDead) {
    for (const s of sysvSegments(users)) {
      if (!inScope(options.targets, s)) continue;
      const keep = sysvVerdict(s);
      const target = String(s.id);
      if (keep !== undefined) {
        actions.push({ action: "kept", type: s.type, target, reason: keep });
        continue;
      }
      const reason = `creator ${s.creator.pid} is dead, nothing attached`;
      if (options.dryRun) {
        actions.push({ action: "would remove", type: s.type, target, reason });
        continue;
      }
      try {
        // Checked again just before: an attach since the scan keeps it.
        const now = shmctlStat(s.id);
        if (now.nattch !== 0 || now.cpid !== s.creator.pid) {
          actions.push({ action: "kept", type: s.type, target, reason: "changed meanwhile" });
          continue;
        }
        shmctlRemove(s.id);
        actions.push({ action: "removed", type: s.type, target, reason });
      } catch (error) {
        actions.push({ action: "failed", type: s.type, target, reason: (error as Error).message });
      }
    }
  }
  const failed = actions.some((a) => a.action === "failed");
  const exit = failed ? EXIT.error : EXIT.ok;
  if (options.json) {
    return { stdout: JSON.stringify(actions, null, 2) + "\n", stderr: "", exit };
  }
  const shown = options.verbose ? actions : actions.filter((a) => a.action !== "kept");
  const done = actions.filter((a) => a.action === "removed").length;
  const would = actions.filter((a) => a.action === "would remove").length;
  const summary = options.dryRun
    ? `${would} would be removed, ${actions.length - would} kept\n`
    : `${done} removed, ${actions.length - done} kept${failed ? " or failed" : ""}\n`;
  return {
    stdout: (shown.length === 0 ? "" : table(
      [{ title: "ACTION" }, { title: "TYPE" }, { title: "TARGET" }, { title: "REASON" }],
      shown.map((a) => [a.action, a.type, a.target, a.reason]),
    )) + summary,
    stderr: users.uninspected.length > 0
      ? `note: ${users.uninspected.length} process(es) could not be inspected; an object only they use looks unused\n`
      : "",
    exit,
  };
}

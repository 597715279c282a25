/**
 * Internal (CLI): the commands. Each returns what to print and the exit
 * code; main.ts parses the arguments and writes.
 *
 * @module
 */
import { SharedMemory } from "../shm/shared_memory.ts";
import { shmctlRemove, shmctlStat } from "../sysv/raw.ts";
import { readAllLimits } from "./_limits.ts";
import {
  hexKey,
  type PosixObject,
  posixObject,
  posixObjects,
  type ProcessInfo,
  type SysvSegment,
  sysvSegments,
  type SysvSemaphoreSet,
  sysvSemaphoreSets,
} from "./_objects.ts";
import { scanUsers, type Users } from "./_procs.ts";
import { bytes, keyValues, octal, table, when } from "./_table.ts";
import { EXIT, type Outcome } from "./_outcome.ts";

function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}

function who(p: ProcessInfo): string {
  if (p.pid === 0) return "-";
  return `${p.pid} ${p.alive}${p.command === "" ? "" : ` (${p.command})`}`;
}

function pids(list: readonly number[]): string {
  if (list.length === 0) return "-";
  return list.length <= 3 ? list.join(",") : `${list.slice(0, 3).join(",")},+${list.length - 3}`;
}

function uninspectedNote(users: Users): string {
  const n = users.uninspected.length;
  if (n === 0) return "";
  return `note: ${n} process(es) could not be inspected (${
    pids(users.uninspected)
  }; others' processes need root): USERS is a lower bound\n`;
}

/** `shmkit ls`. */
export function ls(options: { json: boolean; prefix: string }): Outcome {
  const users = scanUsers();
  const posix = posixObjects(users, options.prefix);
  const segments = sysvSegments(users);
  const sets = sysvSemaphoreSets();
  if (options.json) {
    return {
      stdout: json({ posix, sysvShm: segments, sysvSem: sets, uninspected: users.uninspected }),
      stderr: "",
      exit: EXIT.ok,
    };
  }
  let out = `POSIX shared memory (/dev/shm): ${posix.length}\n`;
  if (posix.length > 0) {
    out += table(
      [
        { title: "NAME" },
        { title: "SIZE", right: true },
        { title: "MODE" },
        { title: "OWNER" },
        { title: "MODIFIED (UTC)" },
        { title: "CREATOR" },
        { title: "USERS" },
      ],
      posix.map((o) => [
        o.name,
        bytes(o.size),
        octal(o.mode),
        o.owner,
        when(o.mtime),
        o.creator === null ? "-" : who(o.creator),
        pids(o.users),
      ]),
    );
  }
  out += `\nSystem V segments: ${segments.length}\n`;
  if (segments.length > 0) {
    out += table(
      [
        { title: "ID", right: true },
        { title: "KEY" },
        { title: "SIZE", right: true },
        { title: "MODE" },
        { title: "OWNER" },
        { title: "NATTCH", right: true },
        { title: "CREATOR (CPID)" },
        { title: "LAST (LPID)" },
        { title: "STATUS" },
      ],
      segments.map((s) => [
        String(s.id),
        s.key,
        bytes(s.size),
        octal(s.mode),
        s.owner,
        String(s.nattch),
        who(s.creator),
        who(s.lastPid),
        [s.markedForDeletion ? "dest" : "", s.locked ? "locked" : ""].filter(Boolean).join(",") ||
        "-",
      ]),
    );
  }
  out += `\nSystem V semaphore sets: ${sets.length}\n`;
  if (sets.length > 0) {
    out += table(
      [
        { title: "ID", right: true },
        { title: "KEY" },
        { title: "NSEMS", right: true },
        { title: "MODE" },
        { title: "OWNER" },
        { title: "LAST SEMOP (UTC)" },
        { title: "CHANGED (UTC)" },
      ],
      sets.map((s) => [
        String(s.id),
        s.key,
        String(s.nsems),
        octal(s.mode),
        s.owner,
        when(s.otime),
        when(s.ctime),
      ]),
    );
  }
  return { stdout: out, stderr: uninspectedNote(users), exit: EXIT.ok };
}

/** What a command-line target names. */
export type Target =
  | { readonly kind: "posix"; readonly name: string }
  | { readonly kind: "sysv-id"; readonly id: number }
  | { readonly kind: "sysv-key"; readonly key: number }
  | { readonly kind: "sem"; readonly id: number }
  | { readonly kind: "bad"; readonly message: string };

/**
 * Parses a target: "/name" or "/dev/shm/name" (POSIX), a bare name
 * (POSIX, "/" added), digits (a System V segment id), "0x..." (a System V
 * key), "sem:ID" (a semaphore set).
 */
export function parseTarget(text: string): Target {
  if (/^\d+$/.test(text)) {
    const id = Number(text);
    return id <= 0x7fffffff
      ? { kind: "sysv-id", id }
      : { kind: "bad", message: `${text} is not a System V id (0 to 2147483647)` };
  }
  if (/^0x[0-9a-f]{1,8}$/i.test(text)) return { kind: "sysv-key", key: parseInt(text, 16) >>> 0 };
  const sem = /^sem:(\d{1,10})$/.exec(text);
  if (sem !== null) return { kind: "sem", id: Number(sem[1]) };
  if (text === "" || text.includes("\0")) return { kind: "bad", message: "an empty or NUL name" };
  if (text.startsWith("/dev/shm/")) return { kind: "posix", name: text.slice("/dev/shm".length) };
  return { kind: "posix", name: text.startsWith("/") ? text : "/" + text };
}

function segmentByKey(key: number, users: Users): SysvSegment | undefined {
  if (key === 0) return undefined; // IPC_PRIVATE: many segments, none by key
  return sysvSegments(users).find((s) => s.key === hexKey(key));
}

const NOT_FOUND_HINT = "list what exists with `shmkit ls`";

/** `shmkit stat TARGET`. */
export function stat(target: string, options: { json: boolean }): Outcome {
  const parsed = parseTarget(target);
  const users = scanUsers();
  let found: PosixObject | SysvSegment | SysvSemaphoreSet | undefined;
  switch (parsed.kind) {
    case "bad":
      return { stdout: "", stderr: `shmkit stat: ${parsed.message}\n`, exit: EXIT.usage };
    case "posix":
      found = posixObject(parsed.name, users);
      break;
    case "sysv-id":
      found = sysvSegments(users).find((s) => s.id === parsed.id);
      break;
    case "sysv-key":
      found = segmentByKey(parsed.key, users);
      break;
    case "sem":
      found = sysvSemaphoreSets().find((s) => s.id === parsed.id);
      break;
  }
  if (found === undefined) {
    return {
      stdout: "",
      stderr: `shmkit stat: no such object: ${target} (${NOT_FOUND_HINT})\n`,
      exit: EXIT.error,
    };
  }
  if (options.json) return { stdout: json(found), stderr: "", exit: EXIT.ok };
  return { stdout: describe(found), stderr: uninspectedNote(users), exit: EXIT.ok };
}

function describe(o: PosixObject | SysvSegment | SysvSemaphoreSet): string {
  switch (o.type) {
    case "posix-shm":
    case "posix-sem":
      return keyValues([
        ["type", o.type === "posix-sem" ? "POSIX named semaphore" : "POSIX shared memory"],
        ["name", o.name],
        ["path", o.path],
        ["size", `${o.size} bytes (${bytes(o.size)})`],
        ["mode", octal(o.mode)],
        ["owner", `${o.owner} (uid ${o.uid}, gid ${o.gid})`],
        ["modified", `${when(o.mtime)} UTC`],
        ["inode", `${o.ino} (dev ${o.dev})`],
        ["random name", o.randomName ? "yes (shmkit's /shmkit-XXXXXXXXXXXXXXXX)" : "no"],
        [
          "creator",
          o.creator === null
            ? "not recorded (not made by shmkit, or no xattr support)"
            : `${who(o.creator)}, start time ${o.creator.start} ticks`,
        ],
        ["users", o.users.length === 0 ? "none seen" : o.users.join(", ")],
      ]);
    case "sysv-shm":
      return keyValues([
        ["type", "System V shared memory segment"],
        ["id", String(o.id)],
        ["key", o.key],
        ["size", `${o.size} bytes (${bytes(o.size)})`],
        ["mode", octal(o.mode)],
        ["owner", `${o.owner} (uid ${o.uid}; creator uid ${o.cuid})`],
        ["attached", `${o.nattch} (seen: ${o.users.length === 0 ? "none" : o.users.join(", ")})`],
        ["creator", who(o.creator)],
        ["last attach/detach", who(o.lastPid)],
        ["status", o.markedForDeletion ? "marked for deletion" : o.locked ? "locked" : "normal"],
        ["changed", `${when(o.ctime)} UTC`],
        ["attached last", `${when(o.atime)} UTC`],
        ["detached last", `${when(o.dtime)} UTC`],
        ["resident", `${o.rss} bytes; swapped ${o.swap} bytes`],
      ]);
    case "sysv-sem":
      return keyValues([
        ["type", "System V semaphore set"],
        ["id", String(o.id)],
        ["key", o.key],
        ["semaphores", String(o.nsems)],
        ["mode", octal(o.mode)],
        ["owner", `${o.owner} (uid ${o.uid})`],
        ["last semop", `${when(o.otime)} UTC`],
        ["changed", `${when(o.ctime)} UTC`],
      ]);
  }
}

/** One removal's result. */
export interface Removal {
  readonly target: string;
  readonly removed: boolean;
  /** What was done, or why not. */
  readonly message: string;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function removeOne(target: string, users: () => Users): Removal {
  const parsed = parseTarget(target);
  try {
    switch (parsed.kind) {
      case "bad":
        return { target, removed: false, message: `Cannot remove ${target}: ${parsed.message}` };
      case "posix":
        SharedMemory.unlink(parsed.name);
        return { target, removed: true, message: `removed ${parsed.name}` };
      case "sem":
        return {
          target,
          removed: false,
          message:
            `Cannot remove semaphore set ${parsed.id}: shmkit does not remove semaphore sets yet; use ipcrm -s ${parsed.id}`,
        };
      case "sysv-id":
      case "sysv-key": {
        let id: number;
        if (parsed.kind === "sysv-key") {
          const segment = segmentByKey(parsed.key, users());
          if (segment === undefined) {
            return {
              target,
              removed: false,
              message: `Cannot remove ${target}: no segment has key ${
                hexKey(parsed.key)
              } (${NOT_FOUND_HINT})`,
            };
          }
          id = segment.id;
        } else id = parsed.id;
        const nattch = shmctlStat(id).nattch;
        shmctlRemove(id);
        return {
          target,
          removed: true,
          message: nattch === 0
            ? `removed segment ${id}`
            : `marked segment ${id} for deletion; it goes when its ${nattch} attachment(s) detach`,
        };
      }
    }
  } catch (error) {
    return { target, removed: false, message: message(error) };
  }
}

/** `shmkit rm TARGET...`. */
export function rm(targets: readonly string[], options: { json: boolean }): Outcome {
  let scanned: Users | undefined;
  const users = (): Users => scanned ??= scanUsers();
  const results = targets.map((t) => removeOne(t, users));
  const failed = results.some((r) => !r.removed);
  const exit = failed ? EXIT.error : EXIT.ok;
  if (options.json) return { stdout: json(results), stderr: "", exit };
  return {
    stdout: results.filter((r) => r.removed).map((r) => r.message + "\n").join(""),
    stderr: results.filter((r) => !r.removed).map((r) => `shmkit rm: ${r.message}\n`).join(""),
    exit,
  };
}

/** `shmkit limits`. */
export function limits(options: { json: boolean }): Outcome {
  const empty: Users = { posix: new Map(), sysv: new Map(), uninspected: [] };
  const rows = readAllLimits(sysvSegments(empty), sysvSemaphoreSets());
  if (options.json) return { stdout: json(rows), stderr: "", exit: EXIT.ok };
  const value = (v: number | string | null, note: string): string =>
    v === null ? note : typeof v === "number" ? v.toLocaleString("en-US") : v;
  return {
    stdout: table(
      [
        { title: "LIMIT" },
        { title: "VALUE", right: true },
        { title: "USED", right: true },
        { title: "UNIT" },
        { title: "MEANING" },
        { title: "SET IN" },
      ],
      rows.map((r) => [
        r.name,
        value(r.value, r.note),
        r.used === null ? "-" : r.used.toLocaleString("en-US"),
        r.unit,
        r.meaning,
        r.source,
      ]),
    ),
    stderr: "",
    exit: EXIT.ok,
  };
}

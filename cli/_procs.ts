/**
 * Internal (CLI): what /proc says about processes: whether a pid still
 * runs, who maps or holds open an object, user names.
 *
 * @module
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { clockTicks, type Liveness, startTimeOf } from "../shm/_creator.ts";

/** A process as /proc/PID/stat shows it, or why it can't be read. */
type ProcStat = { state: string; start: number } | "gone" | "unreadable";

function procStat(pid: number): ProcStat {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch (error) {
    return (error as { code?: string }).code === "ENOENT" ? "gone" : "unreadable";
  }
  const state = text.slice(text.lastIndexOf(")") + 2).split(" ")[0] ?? "";
  const start = startTimeOf(text);
  return start === undefined ? "unreadable" : { state, start };
}

let bootSeconds: number | undefined;

/** The boot time, in seconds since the epoch (/proc/stat btime). */
function bootTime(): number | undefined {
  if (bootSeconds !== undefined) return bootSeconds;
  try {
    const match = /^btime (\d+)$/m.exec(readFileSync("/proc/stat", "utf8"));
    if (match !== null) bootSeconds = Number(match[1]);
  } catch {
    // unknown
  }
  return bootSeconds;
}

/** When `pid` started, as a Date; undefined when it isn't running or /proc can't say. */
export function startDate(pid: number): Date | undefined {
  const stat = procStat(pid);
  const boot = bootTime();
  if (typeof stat === "string" || boot === undefined) return undefined;
  return new Date((boot + stat.start / clockTicks()) * 1000);
}

/**
 * Whether the process `pid` that did something at `when` still runs: dead
 * when gone, a zombie, or started after `when` (then it is another process
 * under a reused pid). Unknown for pid 0 (not visible in this namespace).
 */
export function pidLiveness(pid: number, when: Date | null): Liveness {
  if (pid <= 0) return "unknown";
  const stat = procStat(pid);
  if (stat === "gone") return "dead";
  if (stat === "unreadable") return "unknown";
  if (stat.state === "Z" || stat.state === "X") return "dead";
  const started = startDate(pid);
  // Two seconds of slack: btime and ctime are whole seconds.
  if (when !== null && started !== undefined && started.getTime() > when.getTime() + 2000) {
    return "dead";
  }
  return "alive";
}

/** A process's command name (/proc/PID/comm), or "" when unknown. */
export function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

/** Which processes map or hold open what: /dev/shm paths and System V ids to pids. */
export interface Users {
  /** "/dev/shm/NAME" → pids that map it or have it open. */
  readonly posix: Map<string, Set<number>>;
  /** System V segment id → pids that have it attached. */
  readonly sysv: Map<number, Set<number>>;
  /** Processes that could not be inspected (others' when not root): the sets are lower bounds. */
  readonly uninspected: number[];
}

function add<K>(map: Map<K, Set<number>>, key: K, pid: number): void {
  let set = map.get(key);
  if (set === undefined) map.set(key, set = new Set());
  set.add(pid);
}

const DELETED = " (deleted)";

/**
 * Scans /proc/PID/maps and /proc/PID/fd of every process this user may
 * read. Processes of other users are skipped unless running as root.
 */
export function scanUsers(): Users {
  const posix = new Map<string, Set<number>>();
  const sysv = new Map<number, Set<number>>();
  const uninspected: number[] = [];
  let pids: number[];
  try {
    pids = readdirSync("/proc").filter((n) => /^\d+$/.test(n)).map(Number);
  } catch {
    return { posix, sysv, uninspected: [0] };
  }
  for (const pid of pids) {
    let maps: string;
    try {
      maps = readFileSync(`/proc/${pid}/maps`, "utf8");
    } catch (error) {
      if ((error as { code?: string }).code !== "ENOENT") uninspected.push(pid);
      continue;
    }
    for (const line of maps.split("\n")) {
      const at = line.indexOf(" /");
      if (at === -1) continue;
      const path = line.slice(at + 1);
      if (path.startsWith("/dev/shm/")) {
        // An unlinked object's old name may name another object now.
        if (!path.endsWith(DELETED)) add(posix, path, pid);
      } else if (path.startsWith("/SYSV")) {
        // The inode column of a System V mapping is the segment id.
        const inode = Number(line.slice(0, at).trim().split(/\s+/)[4]);
        if (Number.isSafeInteger(inode)) add(sysv, inode, pid);
      }
    }
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch (error) {
      if ((error as { code?: string }).code !== "ENOENT") uninspected.push(pid);
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (!target.startsWith("/dev/shm/")) continue;
      if (target.endsWith(DELETED)) continue; // unlinked: no longer under its name
      add(posix, target, pid);
    }
  }
  return { posix, sysv, uninspected: [...new Set(uninspected)] };
}

let names: Map<number, string> | undefined;

/** A user's name from /etc/passwd, or the uid as text. */
export function userName(uid: number): string {
  if (names === undefined) {
    names = new Map();
    try {
      for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
        const [name, , id] = line.split(":");
        if (name !== undefined && id !== undefined && /^\d+$/.test(id)) {
          if (!names.has(Number(id))) names.set(Number(id), name);
        }
      }
    } catch {
      // numbers then
    }
  }
  return names.get(uid) ?? String(uid);
}

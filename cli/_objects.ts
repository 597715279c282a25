/**
 * Internal (CLI): the objects `shmkit ls` and `stat` show, gathered from
 * /dev/shm, /proc/sysvipc/shm and /proc/sysvipc/sem, as plain JSON-ready
 * records.
 *
 * @module
 */
import { lstatSync, readFileSync } from "node:fs";
import { SharedMemory } from "../shm/shared_memory.ts";
import { SystemVSegment } from "../sysv/segment.ts";
import { creatorLiveness, type Liveness, readCreator } from "../shm/_creator.ts";
import { SHM_DIR } from "../shm/_names.ts";
import { commandOf, pidLiveness, userName, type Users } from "./_procs.ts";

/** Random names `SharedMemory.create` draws: "/shmkit-" and 16 hex digits. */
export const RANDOM_NAME = /^\/shmkit-[0-9a-f]{16}$/;

/** A process as the CLI reports it. */
export interface ProcessInfo {
  /** Process id (0: not visible from here). */
  readonly pid: number;
  /** Whether it still runs. */
  readonly alive: Liveness;
  /** Its command name, "" when unknown or dead. */
  readonly command: string;
}

/** A POSIX object in /dev/shm. */
export interface PosixObject {
  readonly type: "posix-shm" | "posix-sem";
  /** The name, with its leading "/". */
  readonly name: string;
  readonly path: string;
  readonly size: number;
  /** Permission bits. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly owner: string;
  /** Last modification, ISO 8601. */
  readonly mtime: string;
  readonly dev: number;
  readonly ino: number;
  /** Whether the name is one `SharedMemory.create` draws at random. */
  readonly randomName: boolean;
  /** Who created it, as shmkit recorded (null: no record; not made by shmkit, or unrecordable). */
  readonly creator: (ProcessInfo & { readonly start: number }) | null;
  /** Processes that map it or hold it open (a lower bound when not root). */
  readonly users: number[];
}

/** A System V shared memory segment. */
export interface SysvSegment {
  readonly type: "sysv-shm";
  readonly id: number;
  /** The key as "0x" and 8 hex digits (0x00000000: IPC_PRIVATE or marked for deletion). */
  readonly key: string;
  readonly size: number;
  readonly mode: number;
  readonly uid: number;
  readonly owner: string;
  readonly cuid: number;
  readonly nattch: number;
  readonly creator: ProcessInfo;
  readonly lastPid: ProcessInfo;
  readonly markedForDeletion: boolean;
  readonly locked: boolean;
  readonly ctime: string | null;
  readonly atime: string | null;
  readonly dtime: string | null;
  readonly rss: number;
  readonly swap: number;
  /** Processes that have it attached (a lower bound when not root). */
  readonly users: number[];
}

/** A System V semaphore set. */
export interface SysvSemaphoreSet {
  readonly type: "sysv-sem";
  readonly id: number;
  readonly key: string;
  readonly nsems: number;
  readonly mode: number;
  readonly uid: number;
  readonly owner: string;
  readonly otime: string | null;
  readonly ctime: string | null;
}

/** "0x" and 8 hex digits. */
export function hexKey(key: number): string {
  return "0x" + (key >>> 0).toString(16).padStart(8, "0");
}

function iso(date: Date | null): string | null {
  return date === null ? null : date.toISOString();
}

function processInfo(pid: number, alive: Liveness): ProcessInfo {
  return { pid, alive, command: alive === "alive" ? commandOf(pid) : "" };
}

/** One /dev/shm entry by name ("/x"); undefined when missing or not a regular file. */
export function posixObject(name: string, users: Users): PosixObject | undefined {
  const path = SHM_DIR + name;
  let status;
  try {
    status = lstatSync(path);
  } catch {
    return undefined;
  }
  if (!status.isFile()) return undefined;
  const record = readCreator(path);
  const creator = typeof record === "string"
    ? null
    : { ...processInfo(record.pid, creatorLiveness(record)), start: record.start };
  return {
    type: name.startsWith("/sem.") ? "posix-sem" : "posix-shm",
    name,
    path,
    size: status.size,
    mode: status.mode & 0o7777,
    uid: status.uid,
    gid: status.gid,
    owner: userName(status.uid),
    mtime: status.mtime.toISOString(),
    dev: status.dev,
    ino: status.ino,
    randomName: RANDOM_NAME.test(name),
    creator,
    users: [...(users.posix.get(path) ?? [])].sort((a, b) => a - b),
  };
}

/** Every POSIX object in /dev/shm, sorted by name. */
export function posixObjects(users: Users, prefix = "/"): PosixObject[] {
  const found: PosixObject[] = [];
  for (const info of SharedMemory.list({ prefix })) {
    const object = posixObject(info.name, users);
    if (object !== undefined) found.push(object);
  }
  return found;
}

/** Every System V segment, by id. */
export function sysvSegments(users: Users): SysvSegment[] {
  return SystemVSegment.list().sort((a, b) => a.id - b.id).map((s) => {
    const lastAction = [s.atime, s.dtime, s.ctime].reduce<Date | null>(
      (latest, d) => d !== null && (latest === null || d > latest) ? d : latest,
      null,
    );
    return {
      type: "sysv-shm",
      id: s.id,
      key: hexKey(s.key),
      size: s.size,
      mode: s.perms,
      uid: s.uid,
      owner: s.owner,
      cuid: s.cuid,
      nattch: s.nattch,
      creator: processInfo(s.cpid, pidLiveness(s.cpid, s.ctime)),
      lastPid: processInfo(s.lpid, pidLiveness(s.lpid, lastAction)),
      markedForDeletion: s.markedForDeletion,
      locked: s.locked,
      ctime: iso(s.ctime),
      atime: iso(s.atime),
      dtime: iso(s.dtime),
      rss: s.rss,
      swap: s.swap,
      users: [...(users.sysv.get(s.id) ?? [])].sort((a, b) => a - b),
    };
  });
}

/** Every System V semaphore set, from /proc/sysvipc/sem; [] where it is absent. */
export function sysvSemaphoreSets(): SysvSemaphoreSet[] {
  let text: string;
  try {
    text = readFileSync("/proc/sysvipc/sem", "utf8");
  } catch {
    return [];
  }
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const header = (lines.shift() ?? "").trim().split(/\s+/);
  const at = (name: string): number => header.indexOf(name);
  const sets: SysvSemaphoreSet[] = [];
  for (const line of lines) {
    const cells = line.trim().split(/\s+/);
    const num = (name: string): number => {
      const i = at(name);
      const value = i < 0 ? NaN : Number(cells[i]);
      return Number.isFinite(value) ? value : 0;
    };
    const seconds = (name: string): string | null => {
      const value = num(name);
      return value === 0 ? null : new Date(value * 1000).toISOString();
    };
    const uid = num("uid");
    sets.push({
      type: "sysv-sem",
      id: num("semid"),
      key: hexKey(num("key")),
      nsems: num("nsems"),
      mode: parseInt(cells[at("perms")] ?? "0", 8) & 0o777,
      uid,
      owner: userName(uid),
      otime: seconds("otime"),
      ctime: seconds("ctime"),
    });
  }
  return sets.sort((a, b) => a.id - b.id);
}

/**
 * Internal (CLI): every limit that bounds shared memory and IPC here, where
 * it is set, and how much of it is in use.
 *
 * @module
 */
import { readFileSync, statfsSync } from "node:fs";
import { SHM_DIR } from "../shm/_names.ts";
import { pageSize } from "../core/memory.ts";
import type { SysvSegment, SysvSemaphoreSet } from "./_objects.ts";

/** One limit. */
export interface Limit {
  /** Its name: the sysctl ("kernel.shmmax"), rlimit ("RLIMIT_FSIZE") or a description. */
  readonly name: string;
  /**
   * The value: a number, a decimal string when it passes 2^53, null when
   * unlimited or unreadable (see `note`).
   */
  readonly value: number | string | null;
  /** The unit: "bytes", "pages", "count", ... */
  readonly unit: string;
  /** How much is in use, where that is known; same unit. */
  readonly used: number | null;
  /** Where it is set (the file to read, the command to raise it). */
  readonly source: string;
  /** What it bounds. */
  readonly meaning: string;
  /** "unlimited", "unreadable", or "". */
  readonly note: string;
}

function numeric(text: string): number | string | null {
  const t = text.trim();
  if (!/^\d+$/.test(t)) return null;
  const n = Number(t);
  return Number.isSafeInteger(n) ? n : BigInt(t).toString();
}

function readProcValues(path: string): string[] | undefined {
  try {
    return readFileSync(path, "utf8").trim().split(/\s+/);
  } catch {
    return undefined;
  }
}

function rlimits(): Map<string, string> {
  const found = new Map<string, string>();
  try {
    for (const line of readFileSync("/proc/self/limits", "utf8").split("\n").slice(1)) {
      // "Max file size             unlimited            unlimited            bytes"
      const match = /^(.+?)\s{2,}(\S+)\s+(\S+)/.exec(line);
      if (match !== null) found.set(match[1]!.trim(), match[2]!);
    }
  } catch {
    // no /proc
  }
  return found;
}

/** Gathers the limits, with use counted from the objects already listed. */
export function readAllLimits(
  segments: readonly SysvSegment[],
  semaphoreSets: readonly SysvSemaphoreSet[],
): Limit[] {
  const limits: Limit[] = [];
  const page = pageSize();
  const sysctl = (
    name: string,
    index: number,
    unit: string,
    used: number | null,
    meaning: string,
  ): void => {
    const path = `/proc/sys/${name.replaceAll(".", "/")}`;
    const values = readProcValues(path);
    const value = values?.[index] === undefined ? null : numeric(values[index]!);
    limits.push({
      name: index === 0 && values?.length === 1 ? name : `${name}[${index}]`,
      value,
      unit,
      used,
      source: `${path} (sysctl -w ${name}=...)`,
      meaning,
      note: value === null ? "unreadable" : "",
    });
  };
  const segmentPages = segments.reduce((sum, s) => sum + Math.ceil(s.size / page), 0);
  const semaphores = semaphoreSets.reduce((sum, s) => sum + s.nsems, 0);

  sysctl("kernel.shmmax", 0, "bytes", null, "largest System V segment");
  sysctl(
    "kernel.shmall",
    0,
    "pages",
    segmentPages,
    `all System V segments together (${page}-byte pages)`,
  );
  sysctl("kernel.shmmni", 0, "count", segments.length, "System V segments");
  // kernel.sem is "SEMMSL SEMMNS SEMOPM SEMMNI" on one line.
  const sem: [number, string, number | null, string][] = [
    [0, "SEMMSL", null, "semaphores per set"],
    [1, "SEMMNS", semaphores, "semaphores in all sets"],
    [2, "SEMOPM", null, "operations per semop call"],
    [3, "SEMMNI", semaphoreSets.length, "semaphore sets"],
  ];
  for (const [index, label, used, meaning] of sem) {
    sysctl("kernel.sem", index, "count", used, `${label}: ${meaning}`);
  }
  sysctl("kernel.msgmax", 0, "bytes", null, "largest System V message");
  sysctl("kernel.msgmnb", 0, "bytes", null, "bytes in one System V message queue");
  sysctl("kernel.msgmni", 0, "count", null, "System V message queues");
  sysctl("fs.mqueue.queues_max", 0, "count", null, "POSIX message queues");
  sysctl("fs.mqueue.msg_max", 0, "count", null, "messages in one POSIX message queue");
  sysctl("fs.mqueue.msgsize_max", 0, "bytes", null, "largest POSIX message");
  sysctl(
    "vm.max_map_count",
    0,
    "count",
    mapCount(),
    "mappings in one process (used: this process)",
  );
  sysctl("kernel.pid_max", 0, "count", null, "process ids (pids are below this)");

  try {
    const fs = statfsSync(SHM_DIR);
    const size = fs.blocks * fs.bsize;
    limits.push({
      name: `${SHM_DIR} size`,
      value: size,
      unit: "bytes",
      used: (fs.blocks - fs.bfree) * fs.bsize,
      source: `mount -o remount,size=... ${SHM_DIR}`,
      meaning: `room for POSIX objects (free: ${fs.bavail * fs.bsize} bytes)`,
      note: "",
    });
    limits.push({
      name: `${SHM_DIR} inodes`,
      value: fs.files,
      unit: "count",
      used: fs.files - fs.ffree,
      source: `mount -o remount,nr_inodes=... ${SHM_DIR}`,
      meaning: "POSIX objects",
      note: "",
    });
  } catch {
    limits.push({
      name: `${SHM_DIR} size`,
      value: null,
      unit: "bytes",
      used: null,
      source: SHM_DIR,
      meaning: "room for POSIX objects",
      note: "unreadable",
    });
  }

  const soft = rlimits();
  const rlimit = (label: string, name: string, unit: string, meaning: string): void => {
    const text = soft.get(label);
    const value = text === undefined || text === "unlimited" ? null : numeric(text);
    limits.push({
      name,
      value,
      unit,
      used: null,
      source: `/proc/self/limits soft limit (ulimit, prlimit)`,
      meaning,
      note: text === "unlimited" ? "unlimited" : value === null ? "unreadable" : "",
    });
  };
  rlimit(
    "Max file size",
    "RLIMIT_FSIZE",
    "bytes",
    "largest file a process may grow (SIGXFSZ past it)",
  );
  rlimit("Max open files", "RLIMIT_NOFILE", "count", "open fds per process");
  rlimit("Max locked memory", "RLIMIT_MEMLOCK", "bytes", "mlock and SHM_LOCK without CAP_IPC_LOCK");
  rlimit("Max address space", "RLIMIT_AS", "bytes", "virtual memory per process (mappings)");
  rlimit("Max processes", "RLIMIT_NPROC", "count", "processes per user (posix_spawn)");
  return limits;
}

function mapCount(): number | null {
  try {
    return readFileSync("/proc/self/maps", "utf8").split("\n").filter((l) => l !== "").length;
  } catch {
    return null;
  }
}

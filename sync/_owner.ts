/**
 * Internal: process ids with a start-time tag, as the lock layouts record
 * their holders, and whether the process an id names is gone.
 *
 * An owner id is `pid | tag << 22`: the pid in bits 0-21 (Linux pids are
 * below 2^22) and in bits 22-29 a tag from the process's start time, which
 * tells a reused pid from the process that died (docs/locks.md).
 *
 * @module
 */
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { cString } from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";

/** Bits 0-21 of an owner id: the pid. */
export const PID_MASK = 0x003fffff;
/** Where the start-time tag starts in an owner id (bits 22-29; 0 = none). */
export const TAG_SHIFT = 22;
/** Bits 0-29: the whole owner id. */
export const ID_MASK = 0x3fffffff;

const procBuffer = new Uint8Array(4096);
const decoder = new TextDecoder();

/** Reads a small /proc file through libc; the text, or the errno when it can't be read. */
function readProc(path: string): { text?: string; errno: number } {
  const fd = unsafeLibc.open(
    cString(path, "path"),
    platform.constants.O_RDONLY | platform.constants.O_CLOEXEC,
    0,
  );
  if (fd < 0) return { errno: errno() };
  const n = unsafeLibc.read(fd, procBuffer, procBuffer.length);
  const code = errno();
  unsafeLibc.close(fd);
  if (n < 0) return { errno: code };
  return { text: decoder.decode(procBuffer.subarray(0, n)), errno: 0 };
}

/** The fields after the command name of /proc/<pid>/stat (field 3, the state, first). */
function statFields(text: string): string[] {
  // The command may hold spaces and parentheses: it ends at the last ")".
  return text.slice(text.lastIndexOf(")") + 2).split(" ");
}

/**
 * The start-time tag (1-255) for a /proc/<pid>/stat text; 0 when unknown:
 * `floor(starttime / 64) % 255 + 1`, starttime (field 22) in clock ticks
 * after boot. Buckets of 64 ticks (0.64 s) absorb small disagreements
 * between a process's own view and others' (under qemu-user, the start
 * time a process reads for itself is a few ticks off the kernel's).
 */
function tagOf(fields: string[]): number {
  const start = Number(fields[22 - 3]);
  return Number.isSafeInteger(start) ? (Math.floor(start / 64) % 255) + 1 : 0;
}

/** Whether two tags are further apart than one bucket, around the circle of 255. */
function tagsDiffer(a: number, b: number): boolean {
  const d = Math.abs(a - b);
  return Math.min(d, 255 - d) > 1;
}

let ownId = 0;

/**
 * This process's owner id: `pid | tag << 22`, the tag from its start time
 * in /proc/self/stat (0 where /proc is missing).
 */
export function ownerId(): number {
  if (ownId !== 0) return ownId;
  const pid = unsafeLibc.getpid();
  if (pid > PID_MASK) {
    throw new RangeError(`Cannot use a lock: pid ${pid} needs more than 22 bits`);
  }
  const stat = readProc(`/proc/${pid}/stat`);
  const tag = stat.text === undefined ? 0 : tagOf(statFields(stat.text));
  ownId = (pid | (tag << TAG_SHIFT)) | 0;
  return ownId;
}

// Linux's PID_MAX_LIMIT; /proc/sys/kernel/pid_max is at most this.
const PID_MAX_LIMIT = 1 << 22;
let pidMax = 0;

/**
 * Whether `pid` can be a process id here: 1 or more and below
 * /proc/sys/kernel/pid_max (re-read before saying no, as it may have grown).
 */
export function isPlausiblePid(pid: number): boolean {
  if (!Number.isInteger(pid) || pid < 1 || pid >= PID_MAX_LIMIT) return false;
  if (pid < pidMax) return true;
  const text = readProc("/proc/sys/kernel/pid_max").text;
  const value = text === undefined ? NaN : Number(text.trim());
  pidMax = Number.isSafeInteger(value) && value > 0
    ? Math.min(value, PID_MAX_LIMIT)
    : PID_MAX_LIMIT;
  return pid < pidMax;
}

/**
 * Whether the process an owner id names is gone: `kill(pid, 0)` fails with
 * ESRCH; our own pid under another id (a dead process whose pid we now
 * have); with `thorough`, also a zombie (dead, not yet reaped by its
 * parent) or a pid now used by a process with another start-time tag.
 */
export function isOwnerGone(id: number, thorough: boolean): boolean {
  const pid = id & PID_MASK;
  if (pid === 0) return true;
  const self = ownerId();
  // Two live processes never share a pid: under another tag, it is a dead one's.
  if (pid === (self & PID_MASK)) return (id & ID_MASK) !== self;
  if (unsafeLibc.kill(pid, 0) === -1 && errno() === platform.errno.ESRCH) return true;
  if (!thorough) return false;
  const stat = readProc(`/proc/${pid}/stat`);
  if (stat.text === undefined) return stat.errno === platform.errno.ENOENT;
  const fields = statFields(stat.text);
  const state = fields[0];
  if (state === "Z" || state === "X" || state === "x") return true;
  const tag = (id >>> TAG_SHIFT) & 0xff;
  const actual = tagOf(fields);
  // Only a clear difference means another process: a wrong "dead" would
  // break the lock, a wrong "alive" only delays recovery.
  return tag !== 0 && actual !== 0 && tagsDiffer(tag, actual);
}

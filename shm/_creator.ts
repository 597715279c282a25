/**
 * Internal: the creator record of POSIX objects shmkit creates. A user
 * extended attribute on the object, `user.shmkit.creator` =
 * "PID:START:PIDNS" (pid, start time in clock ticks after boot from
 * /proc/self/stat field 22, pid namespace inode), written once at create
 * with `fsetxattr`. `shmkit gc` reads it to tell a dead creator's leftover
 * from a live process's object (docs/cli.md).
 *
 * Best-effort: tmpfs takes user xattrs from Linux 6.6; elsewhere (older
 * kernels, macOS) nothing is recorded and gc leaves the object alone.
 *
 * @module
 */
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { cString } from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";
import { readTextFile, statPath } from "../core/_io.ts";

/** The attribute's name. */
export const CREATOR_XATTR = "user.shmkit.creator";
const NAME_BYTES = new TextEncoder().encode(CREATOR_XATTR + "\0");

/** Who created an object, as recorded. */
export interface CreatorRecord {
  /** The creator's pid, in the pid namespace `pidns`. */
  readonly pid: number;
  /** Its start time, in clock ticks after boot (/proc/PID/stat field 22). */
  readonly start: number;
  /** The inode of its pid namespace (/proc/self/ns/pid); 0 when unknown. */
  readonly pidns: number;
}

/** The start time (field 22) in a /proc/PID/stat text, or undefined. */
export function startTimeOf(statText: string): number | undefined {
  // The command may hold spaces and parentheses: it ends at the last ")".
  const fields = statText.slice(statText.lastIndexOf(")") + 2).split(" ");
  const start = Number(fields[22 - 3]);
  return Number.isSafeInteger(start) && start >= 0 ? start : undefined;
}

/** This process's pid namespace inode; 0 when /proc can't say. */
export function ownPidNamespace(): number {
  try {
    return statPath("/proc/self/ns/pid")?.ino ?? 0;
  } catch {
    return 0;
  }
}

// undefined: not computed yet; null: can't be recorded here.
let ownValue: Uint8Array | null | undefined;

function ownRecord(): Uint8Array | null {
  if (ownValue !== undefined) return ownValue;
  ownValue = null;
  if (platform.os !== "linux" || unsafeLibc.fsetxattr === undefined) return ownValue;
  try {
    const pid = unsafeLibc.getpid();
    const start = startTimeOf(readTextFile(`/proc/${pid}/stat`));
    if (start !== undefined) {
      ownValue = new TextEncoder().encode(`${pid}:${start}:${ownPidNamespace()}`);
    }
  } catch {
    // no /proc: nothing to record
  }
  return ownValue;
}

/**
 * Records this process as the creator of the object open as `fd`. Never
 * throws: a filesystem without user xattrs just leaves no record.
 */
export function recordCreator(fd: number): void {
  const value = ownRecord();
  if (value === null) return;
  unsafeLibc.fsetxattr!(fd, NAME_BYTES, value, value.length, 0);
}

/** Parses a record; undefined when it isn't one (anyone owning the object can write it). */
export function parseCreator(text: string): CreatorRecord | undefined {
  const match = /^(\d{1,7}):(\d{1,15}):(\d{1,15})$/.exec(text);
  if (match === null) return undefined;
  const pid = Number(match[1]);
  if (pid < 1) return undefined;
  return { pid, start: Number(match[2]), pidns: Number(match[3]) };
}

const valueBuffer = new Uint8Array(256);

/**
 * The creator record of the file at `path` (not following a link): the
 * parsed record, `"none"` when there is none or it is not well-formed, or
 * `"unsupported"` where the filesystem or platform keeps no user xattrs.
 */
export function readCreator(path: string): CreatorRecord | "none" | "unsupported" {
  if (unsafeLibc.lgetxattr === undefined) return "unsupported";
  const n = unsafeLibc.lgetxattr(
    cString(path, "path"),
    NAME_BYTES,
    valueBuffer,
    valueBuffer.length,
  );
  if (n < 0) {
    const code = errno();
    return code === platform.errno.ENOTSUP || code === platform.errno.EOPNOTSUPP
      ? "unsupported"
      : "none";
  }
  return parseCreator(new TextDecoder().decode(valueBuffer.subarray(0, n))) ?? "none";
}

/** What is known about whether a recorded creator still runs. */
export type Liveness = "alive" | "dead" | "unknown";

/** Clock ticks per second (sysconf(_SC_CLK_TCK)). */
export function clockTicks(): number {
  const ticks = Number(unsafeLibc.sysconf(platform.constants._SC_CLK_TCK));
  return ticks > 0 ? ticks : 100;
}

let ownNamespace: number | undefined;

/**
 * Whether the creator `record` names still runs: dead when its pid is
 * gone, a zombie, or now a process with another start time (a reused pid);
 * unknown when it was recorded in another pid namespace or /proc hides it.
 * A start time within a second counts as the same process (qemu-user shows
 * a process its own start time a few ticks off): a doubt keeps the object.
 */
export function creatorLiveness(record: CreatorRecord): Liveness {
  ownNamespace ??= ownPidNamespace();
  if (record.pidns === 0 || ownNamespace === 0 || record.pidns !== ownNamespace) return "unknown";
  let text;
  try {
    text = readTextFile(`/proc/${record.pid}/stat`);
  } catch {
    // Gone, or hidden (hidepid): only the kernel can tell these apart.
    return unsafeLibc.kill(record.pid, 0) === -1 && errno() === platform.errno.ESRCH
      ? "dead"
      : "unknown";
  }
  const end = text.lastIndexOf(")");
  const state = text.slice(end + 2, end + 3);
  if (state === "Z" || state === "X") return "dead";
  const start = startTimeOf(text);
  if (start === undefined) return "unknown";
  return Math.abs(start - record.start) > clockTicks() ? "dead" : "alive";
}

/** The creator recorded on the object at `path` if it has died (see {@linkcode creatorLiveness}). */
export function deadCreatorOf(path: string): CreatorRecord | undefined {
  const record = readCreator(path);
  return typeof record !== "string" && creatorLiveness(record) === "dead" ? record : undefined;
}

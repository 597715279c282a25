/**
 * `removeOnExit` for System V segments: removal at a normal exit (in
 * process) and after any other death (by the cleaner, shm/_cleaner.ts).
 * A segment is recognised by id, key and creator pid: never one this
 * process only opened, nor a new segment that got a recycled id.
 *
 * @module
 */
import { ErrnoError } from "../core/errors.ts";
import { unsafeLibc } from "../ffi/libc.ts";
import { readSegments, shmctlRemove, shmctlStat } from "../sysv/raw.ts";
import { registerRemoval, unregisterCleanup } from "./cleanup.ts";

function cleanupKey(id: number): string {
  return `sysv:${id}`;
}

/** Key (signed) and creator pid of segment `id`, or undefined when it is gone. */
function identityOf(id: number): { key: number; cpid: number } | undefined {
  try {
    const status = shmctlStat(id);
    return { key: status.key | 0, cpid: status.cpid };
  } catch (error) {
    if (!(error instanceof ErrnoError)) throw error;
    if (error.code === "EINVAL" || error.code === "EIDRM") return undefined;
    if (error.code !== "EACCES") throw error;
  }
  // A mode without read permission for us: /proc/sysvipc/shm shows every segment.
  const entry = readSegments().find((segment) => segment.id === id);
  return entry === undefined ? undefined : { key: entry.key | 0, cpid: entry.cpid };
}

function removeIfSame(id: number, key: number, cpid: number): void {
  const now = identityOf(id);
  if (now === undefined || now.key !== key || now.cpid !== cpid) return;
  try {
    shmctlRemove(id);
  } catch (error) {
    // Removed meanwhile by someone else: nothing to do.
    if (!(error instanceof ErrnoError) || (error.code !== "EINVAL" && error.code !== "EIDRM")) {
      throw error;
    }
  }
}

/**
 * Internal: removes the segment `id`, which this process just created with
 * `key`, when the process ends (normally or not), unless
 * {@linkcode keepSegment} is called first. Its creator pid is this process's.
 */
export function removeSegmentOnExit(id: number, key: number): void {
  const signedKey = key | 0; // as /proc/sysvipc/shm prints it
  const cpid = unsafeLibc.getpid();
  registerRemoval(cleanupKey(id), () => removeIfSame(id, signedKey, cpid), {
    kind: "sysv",
    id,
    key: signedKey,
    cpid,
  });
}

/** Internal: withdraws {@linkcode removeSegmentOnExit} (the segment was removed). */
export function keepSegment(id: number): void {
  unregisterCleanup(cleanupKey(id));
}

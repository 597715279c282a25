/**
 * `removeOnExit` for System V segments: removal at a normal exit (in
 * process) and after any other death (by the cleaner, shm/_cleaner.ts).
 * A segment is recognised by id, key and creator pid: never one this
 * process only opened, nor a new segment that got a recycled id.
 *
 * @module
 */
import { ErrnoError } from "../core/errors.ts";
import { shmctlRemove, shmctlStat } from "../sysv/raw.ts";
import { registerRemoval, unregisterCleanup } from "./cleanup.ts";

function cleanupKey(id: number): string {
  return `sysv:${id}`;
}

function removeIfSame(id: number, key: number, cpid: number): void {
  try {
    const status = shmctlStat(id);
    if ((status.key | 0) === key && status.cpid === cpid) shmctlRemove(id);
  } catch (error) {
    // Gone already (removed by someone, or detached after IPC_RMID): nothing to do.
    if (!(error instanceof ErrnoError) || (error.code !== "EINVAL" && error.code !== "EIDRM")) {
      throw error;
    }
  }
}

/**
 * Internal: removes the segment `id`, which this process just created, when
 * the process ends (normally or not), unless {@linkcode keepSegment} is
 * called first.
 *
 * @throws {ErrnoError} `shmctl(IPC_STAT)` failing (the segment vanished already).
 */
export function removeSegmentOnExit(id: number): void {
  const status = shmctlStat(id);
  const key = status.key | 0; // as /proc/sysvipc/shm prints it
  const cpid = status.cpid;
  registerRemoval(cleanupKey(id), () => removeIfSame(id, key, cpid), {
    kind: "sysv",
    id,
    key,
    cpid,
  });
}

/** Internal: withdraws {@linkcode removeSegmentOnExit} (the segment was removed). */
export function keepSegment(id: number): void {
  unregisterCleanup(cleanupKey(id));
}

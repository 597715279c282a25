/**
 * Internal: the names of POSIX named semaphores: their /dev/shm file
 * (`sem.NAME`, Linux), its identity, unlinking only the semaphore a name
 * still names, and removal after this process ends (the exit hooks and the
 * out-of-process cleaner, as for shared memory objects).
 *
 * @module
 */
import { ErrnoError } from "../core/errors.ts";
import { statPath } from "../core/_io.ts";
import { unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { registerCleanup, registerRemoval, unregisterCleanup } from "../shm/cleanup.ts";
import { encodeShmName } from "../shm/raw.ts";

const E = platform.errno;

/** Where glibc keeps a semaphore (Linux). */
export function semPath(name: string): string {
  return `/dev/shm/sem.${name.slice(1)}`;
}

export function identityOf(name: string): { dev: number; ino: number } | undefined {
  if (platform.os !== "linux") return undefined;
  try {
    return statPath(semPath(name));
  } catch {
    return undefined;
  }
}

/** sem_unlink(name) if `name` still names the semaphore (dev, ino) this process created. */
export function unlinkIfSame(name: string, dev: number, ino: number): boolean {
  const now = identityOf(name);
  if (now !== undefined && (now.dev !== dev || now.ino !== ino)) return false;
  if (now === undefined && platform.os === "linux") return false;
  return unsafeLibc.sem_unlink(encodeShmName(name, "semaphore name")) === 0;
}

function openHints(name: string, code: number): string | undefined {
  if (code === E.EEXIST) {
    return `a semaphore named ${name} exists; open it with NamedSemaphore.open, or pick another name`;
  }
  if (code === E.ENOENT) return `no semaphore is named ${name}`;
  if (code === E.ENAMETOOLONG) return 'glibc adds "sem.": the name may have at most 251 bytes';
  return undefined;
}

/** The error of a failed `sem_open` of `name`, with advice. */
export function openError(name: string, code: number): ErrnoError {
  const hint = openHints(name, code);
  return new ErrnoError(
    "sem_open",
    code,
    hint === undefined ? { path: name } : { path: name, hint },
  );
}

function cleanupKey(name: string): string {
  return `sem:${name}`;
}

/**
 * Unlinks a semaphore this process created when the process ends: at exit,
 * or (Linux) by the out-of-process cleaner after any death, if `sem.NAME`
 * still has the identity it had.
 */
export function removeOnExit(
  name: string,
  identity: { dev: number; ino: number } | undefined,
): void {
  if (identity === undefined) {
    registerCleanup(cleanupKey(name), () => {
      unsafeLibc.sem_unlink(encodeShmName(name, "semaphore name"));
    });
    return;
  }
  const { dev, ino } = identity;
  registerRemoval(cleanupKey(name), () => void unlinkIfSame(name, dev, ino), {
    kind: "shm",
    name: `/sem.${name.slice(1)}`,
    dev,
    ino,
  });
}

/** Withdraws {@linkcode removeOnExit}. */
export function keepName(name: string): void {
  unregisterCleanup(cleanupKey(name));
}

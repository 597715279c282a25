/**
 * Names of POSIX shared memory objects: random names, the encoded form, the
 * /dev/shm path, and unlinking only the object a name still names.
 *
 * @module
 */
import { ErrnoError } from "../core/errors.ts";
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { statFd, statPath } from "../core/_io.ts";
import { bufferArgument } from "../ffi/_arguments.ts";
import { encodeShmName } from "./raw.ts";

const C = platform.constants;

/** Where glibc keeps POSIX shared memory objects (Linux). */
export const SHM_DIR = "/dev/shm";

const PREFIX = "/shmkit-";
const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"));
const HEX_CODES = new TextEncoder().encode("0123456789abcdef");

// Random bytes drawn 32 names at a time: getRandomValues is a runtime call
// that costs about as much for 256 bytes as for 8. Each byte is used once.
const pool = new Uint8Array(256);
let poolUsed = pool.length;

/** The next 8 unused random bytes' offset in `pool`. */
function drawEight(): number {
  if (poolUsed === pool.length) {
    crypto.getRandomValues(pool);
    poolUsed = 0;
  }
  const at = poolUsed;
  poolUsed += 8;
  return at;
}

/** A random name: "/shmkit-" and 16 hex digits. */
export function randomName(): string {
  return randomShmName().name;
}

/**
 * A random name, checked and encoded: the C string is written straight from
 * the random bytes, with no check of a name made here to the rules.
 */
export function randomShmName(): ShmName {
  const at = drawEight();
  const c = new Uint8Array(PREFIX.length + 16 + 1);
  for (let i = 0; i < PREFIX.length; i++) c[i] = PREFIX.charCodeAt(i);
  let hex = "";
  for (let i = 0, o = PREFIX.length; i < 8; i++, o += 2) {
    const byte = pool[at + i]!;
    hex += HEX[byte];
    c[o] = HEX_CODES[byte >> 4]!;
    c[o + 1] = HEX_CODES[byte & 15]!;
  }
  return { name: PREFIX + hex, c };
}

/** A checked name, encoded once for every call that needs it. */
export interface ShmName {
  /** The name, "/x". */
  readonly name: string;
  /** The name as a C string. */
  readonly c: Uint8Array<ArrayBuffer>;
}

const SHM_DIR_BYTES = new TextEncoder().encode(SHM_DIR);

export function shmName(name: string, c: Uint8Array<ArrayBuffer> = encodeShmName(name)): ShmName {
  return { name, c };
}

// "/dev/shm" followed by room for the longest name; reused by every (synchronous) call.
const pathScratch = new Uint8Array(SHM_DIR_BYTES.length + 1 + platform.constants.NAME_MAX + 1);
pathScratch.set(SHM_DIR_BYTES);
const pathArgument = bufferArgument(pathScratch);

// A name as a C string, for the calls of one cycle (shm_open, shm_unlink);
// with a pinned address, node:ffi need not resolve a fresh array's per call.
const nameScratch = new Uint8Array(1 + platform.constants.NAME_MAX + 1);
const nameArgument = bufferArgument(nameScratch);

/** `name.c` in a buffer reused by the next call, as the argument to pass. */
export function nameArgumentOf(name: ShmName): Uint8Array {
  // Only node:ffi gains: elsewhere the array is passed as fast as the scratch.
  if (nameArgument === nameScratch || name.c.length > nameScratch.length) return name.c;
  nameScratch.set(name.c);
  return nameArgument;
}

/** "/dev/shm/x" as a C string, in a buffer reused by the next call. */
export function shmPath(name: ShmName): Uint8Array {
  pathScratch.set(name.c, SHM_DIR_BYTES.length);
  return pathScratch;
}

function identityOf(name: ShmName): { dev: number; ino: number } | undefined {
  if (platform.os === "linux") return statPath(shmPath(name), true, pathArgument);
  // Elsewhere there is no path to stat: open the name read-only.
  const fd = unsafeLibc.shm_open(name.c, C.O_RDONLY, 0);
  if (fd === -1) return undefined;
  try {
    return statFd(fd);
  } finally {
    unsafeLibc.close(fd);
  }
}

/**
 * Unlinks `name` if it still names the object (dev, ino): never an object
 * someone else made under the same name after ours was removed. Returns
 * whether it unlinked.
 */
export function unlinkIfSame(name: ShmName, dev: number, ino: number): boolean {
  let current: { dev: number; ino: number } | undefined;
  try {
    current = identityOf(name);
  } catch {
    current = { dev, ino }; // can't tell (EACCES on the directory): trust the name
  }
  if (current === undefined || current.dev !== dev || current.ino !== ino) return false;
  if (unsafeLibc.shm_unlink(nameArgumentOf(name)) === -1) {
    const code = errno();
    if (code === platform.errno.ENOENT) return false;
    throw new ErrnoError("shm_unlink", code, { path: name.name });
  }
  return true;
}

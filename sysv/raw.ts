/**
 * Thin System V shared memory wrappers: `ftok`, `shmget`, `shmat`, `shmdt`
 * and `shmctl` (IPC_STAT, IPC_SET, IPC_RMID, SHM_LOCK, SHM_UNLOCK), with
 * arguments checked before the call and failures thrown as
 * {@linkcode ErrnoError}s that say what happened. `struct shmid_ds` is
 * decoded with the platform's generated layout, never with offsets typed
 * here.
 *
 * Also the kernel's limits (`/proc/sys/kernel/shm*`) and the segment list
 * (`/proc/sysvipc/shm`, what `ipcs -m` shows), which the errors use to name
 * the limit or the segment a failed `shmget` ran into.
 *
 * Most programs want {@linkcode SystemVSegment} (sysv/segment.ts) instead.
 *
 * @example Raw calls
 * ```ts
 * import { platform, shmctlRemove, shmctlStat, shmget } from "@shmkit/shmkit/raw";
 * const C = platform.constants;
 * const id = shmget(C.IPC_PRIVATE, 4096, C.IPC_CREAT | C.IPC_EXCL | 0o600);
 * console.log(shmctlStat(id).segsz); // 4096
 * shmctlRemove(id);
 * ```
 *
 * @module
 */
import { check, ErrnoError, errnoName, type Hints } from "../core/errors.ts";
import { errno, setErrno, unsafeLibc } from "../ffi/libc.ts";
import { allocStruct, cString, readField, writeField } from "../ffi/pointer.ts";
import { pageSize } from "../core/memory.ts";
import { platform } from "../platform/mod.ts";
import type { StructLayout } from "../platform/types.ts";
import { checkInteger, checkMode, checkOptions } from "../core/_validate.ts";

import {
  explainShmgetFailure,
  PERMISSION_BITS,
  readLimits,
  readSegments,
  type ShmgetRequest,
} from "./_limits.ts";

export {
  dateOrNull,
  explainShmgetFailure,
  formatKey,
  readLimits,
  readSegments,
  type ShmgetFacts,
  type ShmgetRequest,
  type SystemVLimits,
  type SystemVSegmentEntry,
} from "./_limits.ts";

const C = platform.constants;

/**
 * Checks a System V key and returns it as C's `key_t` (a signed 32-bit
 * number). Keys may be given signed (as C's `key_t`) or unsigned (as `ipcs`
 * prints them).
 *
 * @throws {TypeError} When it is not a number.
 * @throws {RangeError} When it is not an integer from -2^31 to 2^32 - 1.
 */
export function checkKey(value: unknown, what = "key"): number {
  return checkInteger(value, what, -0x80000000, 0xffffffff) | 0;
}

/** Checks a System V shared memory id: an integer from 0 to 2^31 - 1. */
export function checkId(value: unknown, what = "id"): number {
  return checkInteger(value, what, 0, 0x7fffffff);
}

/** Checks System V permission bits: 0 to 0o777 (no setuid/sticky bits there). */
export function checkIpcMode(value: unknown, what = "mode"): number {
  const mode = checkMode(value, what);
  if (mode > PERMISSION_BITS) {
    throw new RangeError(
      `Cannot use ${what} 0o${mode.toString(8)}: System V permissions are 0o0 to 0o777`,
    );
  }
  return mode;
}

// --- ftok

/**
 * Makes a System V key from a file and a project number: `ftok(path, proj_id)`.
 *
 * The key is built from the file's inode number and device, not its name:
 * when the file is deleted and created again with another inode, the key
 * changes, and programs that computed it before and after no longer meet
 * (on ext4 a freed inode number often comes straight back, so the key may
 * also stay the same and lead to a stale segment). Use a file that lives as
 * long as the segment (not one that is rewritten by rename or re-created at
 * start-up).
 *
 * @example
 * ```ts
 * import { ftok } from "@shmkit/shmkit";
 * const key = ftok("/etc/hostname", 1);
 * console.log(key.toString(16));
 * ```
 *
 * @param path An existing file or directory.
 * @param projId A project number from 1 to 255 (only its low 8 bits reach the key).
 * @returns The key, as an unsigned 32-bit number (as `ipcs` prints keys).
 * @throws {TypeError} When `path` is not a string or contains a NUL, or `projId` is not a number.
 * @throws {RangeError} When `projId` is not an integer from 1 to 255.
 * @throws {ErrnoError} `ftok` with ENOENT (no such file), EACCES, ...
 */
export function ftok(path: string, projId: number): number {
  const cpath = cString(path, "ftok path");
  checkInteger(projId, "projId", 1, 255);
  // 0xffffffff is a valid key but reads as -1: tell it from failure by errno.
  setErrno(0);
  const key = unsafeLibc.ftok(cpath, projId);
  const code = key === -1 ? errno() : 0;
  if (code !== 0) {
    throw new ErrnoError("ftok", code, {
      path,
      hint: code === platform.errno.ENOENT
        ? "ftok needs an existing file: the key is made from its inode and device"
        : "ftok stats the file to make the key from its inode and device",
    });
  }
  return key >>> 0;
}

// --- struct shmid_ds

/** `struct shmid_ds` decoded; times are seconds since the epoch (0: never). */
export interface ShmidDs {
  /** `shm_perm.__key`, unsigned (0 for IPC_PRIVATE and, on Linux, once removed). */
  readonly key: number;
  /** `shm_perm.uid`: owner's user id. */
  readonly uid: number;
  /** `shm_perm.gid`: owner's group id. */
  readonly gid: number;
  /** `shm_perm.cuid`: creator's user id. */
  readonly cuid: number;
  /** `shm_perm.cgid`: creator's group id. */
  readonly cgid: number;
  /** `shm_perm.mode`: permission bits, plus SHM_DEST and SHM_LOCKED on Linux. */
  readonly mode: number;
  /** `shm_segsz`: size in bytes. */
  readonly segsz: number;
  /** `shm_atime`: last attach, seconds. */
  readonly atime: number;
  /** `shm_dtime`: last detach, seconds. */
  readonly dtime: number;
  /** `shm_ctime`: creation or last IPC_SET, seconds. */
  readonly ctime: number;
  /** `shm_cpid`: creator's pid. */
  readonly cpid: number;
  /** `shm_lpid`: pid of the last shmat or shmdt. */
  readonly lpid: number;
  /** `shm_nattch`: number of attachments, over all processes. */
  readonly nattch: number;
}

/**
 * Decodes a `struct shmid_ds` with a layout (the running platform's by
 * default; tests pass the other platforms' to check the decoding).
 */
export function decodeShmidDs(
  bytes: Uint8Array,
  layout: StructLayout = platform.structs.shmid_ds,
): ShmidDs {
  const get = (name: string): number => readField(bytes, layout, name);
  return {
    key: get("shm_perm.__key") >>> 0,
    uid: get("shm_perm.uid"),
    gid: get("shm_perm.gid"),
    cuid: get("shm_perm.cuid"),
    cgid: get("shm_perm.cgid"),
    mode: get("shm_perm.mode"),
    segsz: get("shm_segsz"),
    atime: get("shm_atime"),
    dtime: get("shm_dtime"),
    ctime: get("shm_ctime"),
    cpid: get("shm_cpid"),
    lpid: get("shm_lpid"),
    nattch: get("shm_nattch"),
  };
}

// --- shmget

function shmgetHint(code: string, request: ShmgetRequest): string | undefined {
  try {
    return explainShmgetFailure(code, request, { limits: readLimits(), segments: readSegments() });
  } catch {
    // No /proc (or not Linux): the errno has to speak for itself.
    return undefined;
  }
}

/**
 * Gets or creates a segment: `shmget(key, size, shmflg)`. On failure the
 * error names the limit (kernel.shmmax, kernel.shmall, kernel.shmmni) or the
 * existing segment the call ran into, with its value and the sysctl or
 * size that fixes it.
 *
 * @param key A key, or `platform.constants.IPC_PRIVATE` (0) for a new private segment.
 * @param size Bytes; 0 only when opening an existing segment.
 * @param flags IPC_CREAT, IPC_EXCL, SHM_HUGETLB... ORed with permission bits.
 * @returns The segment id.
 * @throws {TypeError} For non-number arguments.
 * @throws {RangeError} For out-of-range arguments.
 * @throws {ErrnoError} `shmget` with EINVAL, ENOSPC, ENOMEM, EEXIST, ENOENT, EACCES.
 */
export function shmget(key: number, size: number, flags: number): number {
  const k = checkKey(key);
  checkInteger(size, "size", 0);
  checkInteger(flags, "flags", -0x80000000, 0x7fffffff);
  const id = unsafeLibc.shmget(k, size, flags);
  if (id !== -1) return id;
  const code = errno();
  const hint = shmgetHint(errnoName(code), { key: k, size, flags });
  throw new ErrnoError(
    "shmget",
    code,
    k === C.IPC_PRIVATE
      ? (hint === undefined ? {} : { hint })
      : hint === undefined
      ? { key: k }
      : { key: k, hint },
  );
}

// --- shmat and shmdt

const GONE =
  "no segment has this id: it was removed (IPC_RMID, ipcrm -m) and every attachment detached, or the id is wrong";

function gone(id: number): boolean {
  const buffer = allocStruct(platform.structs.shmid_ds);
  if (unsafeLibc.shmctl(id, C.IPC_STAT, buffer) === 0) return false;
  const code = errno();
  return code === platform.errno.EINVAL || code === platform.errno.EIDRM;
}

/**
 * UNSAFE: attaches a segment: `shmat(shmid, shmaddr, shmflg)`, returning
 * the raw address. Nothing tracks the memory; use
 * {@linkcode SystemVSegment.attach} for views that can't outlive it.
 *
 * @param id The segment id.
 * @param address 0 to let the kernel choose, or an address (with SHM_RND, rounded down to SHMLBA).
 * @param flags SHM_RDONLY, SHM_RND, SHM_REMAP, SHM_EXEC.
 * @throws {RangeError} For out-of-range arguments.
 * @throws {ErrnoError} `shmat` with EINVAL (no such id, or a bad address), EACCES, ENOMEM.
 */
export function unsafeShmat(id: number, address: number, flags: number): number {
  checkId(id);
  checkInteger(address, "address", 0);
  checkInteger(flags, "flags", -0x80000000, 0x7fffffff);
  const result = unsafeLibc.shmat(id, address, flags);
  if (result !== -1) return result;
  const code = errno();
  let hint: string | undefined;
  if (code === platform.errno.EINVAL || code === platform.errno.EIDRM) {
    hint = gone(id)
      ? GONE
      : address !== 0
      ? `address 0x${
        address.toString(16)
      } is not usable: it must be a multiple of SHMLBA (${shmlba()}) unless SHM_RND is given, and must not overlap an existing mapping`
      : undefined;
  } else if (code === platform.errno.EACCES) {
    hint = (flags & C.SHM_RDONLY) !== 0
      ? "a read-only attach needs read permission on the segment"
      : "a read-write attach needs read and write permission on the segment; attach read-only if you only read";
  } else if (code === platform.errno.ENOMEM) {
    hint = "no room in the address space for the segment";
  }
  throw new ErrnoError("shmat", code, hint === undefined ? { id } : { id, hint });
}

/**
 * UNSAFE: detaches the segment attached at `address`: `shmdt(shmaddr)`. Any
 * view still over that memory crashes the process when touched; attachments
 * made with {@linkcode SystemVSegment.attach} are detached by their
 * `detach()` instead.
 *
 * @throws {ErrnoError} `shmdt` with EINVAL when no segment is attached there.
 */
export function unsafeShmdt(address: number): void {
  checkInteger(address, "address", 1);
  check(unsafeLibc.shmdt(address), "shmdt", {}, {
    EINVAL: `no segment is attached at 0x${address.toString(16)}`,
  });
}

/** SHMLBA: the attach address alignment (the page size in glibc). */
export function shmlba(): number {
  // glibc defines SHMLBA as the run-time page size; the probe printed this
  // machine's, so prefer the live value.
  return platform.os === "linux" ? pageSize() : C.SHMLBA;
}

// --- shmctl

const STAT_HINTS: Hints = {
  EINVAL: GONE,
  EIDRM: GONE,
  EACCES: "IPC_STAT needs read permission on the segment",
};

/**
 * Reads a segment's status: `shmctl(shmid, IPC_STAT, &buf)`.
 *
 * @throws {ErrnoError} `shmctl(IPC_STAT)` with EINVAL when the segment is gone, EACCES.
 */
export function shmctlStat(id: number): ShmidDs {
  checkId(id);
  const buffer = allocStruct(platform.structs.shmid_ds);
  check(unsafeLibc.shmctl(id, C.IPC_STAT, buffer), "shmctl(IPC_STAT)", { id }, STAT_HINTS);
  return decodeShmidDs(buffer);
}

/** What {@linkcode shmctlSet} changes; omitted fields keep their value. */
export interface ShmctlSetOptions {
  /** New permission bits, 0 to 0o777. */
  readonly mode?: number;
  /** New owner user id. */
  readonly uid?: number;
  /** New owner group id. */
  readonly gid?: number;
}

/**
 * Changes a segment's owner and permissions: IPC_STAT, then
 * `shmctl(shmid, IPC_SET, &buf)` with the fields given.
 *
 * @throws {RangeError} For an out-of-range mode, uid or gid.
 * @throws {ErrnoError} `shmctl(IPC_SET)` with EPERM unless you are the owner, the creator or privileged.
 */
export function shmctlSet(id: number, options: ShmctlSetOptions): void {
  checkId(id);
  const o = checkOptions(options, "options");
  const mode = o.mode === undefined ? undefined : checkIpcMode(o.mode);
  const uid = o.uid === undefined ? undefined : checkInteger(o.uid, "uid", 0, 0xfffffffe);
  const gid = o.gid === undefined ? undefined : checkInteger(o.gid, "gid", 0, 0xfffffffe);
  const layout = platform.structs.shmid_ds;
  const buffer = allocStruct(layout);
  check(unsafeLibc.shmctl(id, C.IPC_STAT, buffer), "shmctl(IPC_STAT)", { id }, STAT_HINTS);
  if (mode !== undefined) {
    const old = readField(buffer, layout, "shm_perm.mode");
    writeField(buffer, layout, "shm_perm.mode", (old & ~PERMISSION_BITS) | mode);
  }
  if (uid !== undefined) writeField(buffer, layout, "shm_perm.uid", uid);
  if (gid !== undefined) writeField(buffer, layout, "shm_perm.gid", gid);
  check(unsafeLibc.shmctl(id, C.IPC_SET, buffer), "shmctl(IPC_SET)", { id }, {
    EINVAL: GONE,
    EIDRM: GONE,
    EPERM: "IPC_SET needs the owner's or creator's uid, or CAP_SYS_ADMIN",
  });
}

/**
 * Marks a segment for deletion: `shmctl(shmid, IPC_RMID, NULL)`. It goes
 * away when the last process detaches; until then Linux lets processes
 * that know the id attach it, and its key reads 0 (it can be reused).
 *
 * @throws {ErrnoError} `shmctl(IPC_RMID)` with EINVAL when it is already gone, EPERM.
 */
export function shmctlRemove(id: number): void {
  checkId(id);
  check(unsafeLibc.shmctl(id, C.IPC_RMID, null), "shmctl(IPC_RMID)", { id }, {
    EINVAL: GONE,
    EIDRM: GONE,
    EPERM: "IPC_RMID needs the owner's or creator's uid, or CAP_SYS_ADMIN",
  });
}

function lockCall(id: number, command: "SHM_LOCK" | "SHM_UNLOCK"): void {
  checkId(id);
  const value = C[command];
  if (value < 0) {
    throw new Error(`Cannot shmctl(${command}): ${platform.os} has no ${command}`);
  }
  check(unsafeLibc.shmctl(id, value, null), `shmctl(${command})`, { id }, {
    EINVAL: GONE,
    EIDRM: GONE,
    EPERM:
      `${command} needs CAP_IPC_LOCK, or the owner's uid with RLIMIT_MEMLOCK (ulimit -l) large enough`,
    ENOMEM: "the segment is larger than RLIMIT_MEMLOCK allows (ulimit -l)",
  });
}

/**
 * Locks a segment's pages in RAM: `shmctl(shmid, SHM_LOCK, NULL)` (Linux).
 *
 * @throws {Error} Where the platform has no SHM_LOCK.
 * @throws {ErrnoError} `shmctl(SHM_LOCK)` with EPERM or ENOMEM (RLIMIT_MEMLOCK).
 */
export function shmctlLock(id: number): void {
  lockCall(id, "SHM_LOCK");
}

/**
 * Unlocks a segment's pages: `shmctl(shmid, SHM_UNLOCK, NULL)` (Linux).
 *
 * @throws {Error} Where the platform has no SHM_UNLOCK.
 * @throws {ErrnoError} `shmctl(SHM_UNLOCK)` with EPERM.
 */
export function shmctlUnlock(id: number): void {
  lockCall(id, "SHM_UNLOCK");
}

/**
 * System V shared memory, the safe way: {@linkcode SystemVSegment} (a
 * segment: create, open, stat, set permissions, remove) and
 * {@linkcode SystemVAttachment} (the segment mapped into this process, with
 * views that are detached on detach).
 *
 * The classic traps become errors or documented behaviour:
 *
 * - A failed `shmget` names the limit (kernel.shmmax, kernel.shmall,
 *   kernel.shmmni) with its value, the size asked and the sysctl that raises
 *   it, or the existing segment that is smaller than asked.
 * - Attaching the same segment again in one process shares one mapping
 *   (counted); the real `shmdt` happens at the last `detach()`.
 * - Asking for less than an existing segment holds opens the bigger one;
 *   `size` and `stat()` show its real size. Nothing is resized.
 * - A read-only attachment hands out {@linkcode ReadOnlyView}s, never a
 *   writable TypedArray that would crash the process on a write.
 * - `detach()` and `remove()` are different verbs; nothing does both.
 * - Attachments dropped without `detach()` can't pin segments without
 *   bound: past `SystemVAttachment.maxLive` (1024) live mappings, attaching
 *   is EMFILE with a message naming them, not kernel.shmmni running out.
 *
 * @example Two processes meet at a key made from a file
 * ```ts
 * import { ftok, SystemVSegment } from "@shmkit/shmkit";
 * const key = ftok("/etc/hostname", 7);
 * // Every process runs this; the first one creates the segment.
 * const segment = SystemVSegment.create(4096, { key, exclusive: false });
 * const attachment = segment.attach();
 * attachment.view(Uint32Array)[0] = 42;
 * attachment.detach();
 * // The last one to leave removes it (detach alone leaves it in place).
 * segment.remove();
 * ```
 *
 * @module
 */
import { ErrnoError } from "../core/errors.ts";
import { platform } from "../platform/mod.ts";
import { attachSegment, type SystemVAttachment } from "./attachment.ts";
import {
  checkId,
  checkIpcMode,
  checkKey,
  dateOrNull,
  formatKey,
  readLimits,
  readSegments,
  shmctlLock,
  shmctlRemove,
  shmctlSet,
  type ShmctlSetOptions,
  shmctlStat,
  shmctlUnlock,
  shmget,
  type SystemVLimits,
  type SystemVSegmentEntry,
} from "./raw.ts";
import { checkBoolean, checkInteger, checkOptions, checkSize } from "../core/_validate.ts";
import { keepSegment, removeSegmentOnExit } from "../shm/_cleaner_sysv.ts";

export type { ShmctlSetOptions, SystemVLimits, SystemVSegmentEntry } from "./raw.ts";
export { ftok } from "./raw.ts";
export { SystemVAttachment } from "./attachment.ts";

const C = platform.constants;

/** Options of {@linkcode SystemVSegment.create}. */
export interface SystemVCreateOptions {
  /**
   * The key other processes find the segment by (e.g. from
   * {@linkcode ftok}). Omitted: IPC_PRIVATE, a new segment only reachable
   * by its id (pass the id to the processes that need it).
   */
  readonly key?: number;
  /** Permission bits, 0 to 0o777 (default 0o600: only this user). */
  readonly mode?: number;
  /**
   * Fail with EEXIST when a segment with the key exists (IPC_CREAT |
   * IPC_EXCL; default true). With false, an existing segment is opened
   * (get-or-create); `created` then tells which happened.
   */
  readonly exclusive?: boolean;
  /**
   * Remove the segment (IPC_RMID) when this process ends, however it ends:
   * in process at a normal exit, and by shmkit's cleaner process (Linux)
   * after a signal, SIGKILL or a crash (default false). Only a segment this
   * call created: an opened one (`created` false) is never removed.
   */
  readonly removeOnExit?: boolean;
}

/** Options of {@linkcode SystemVSegment.open}. */
export interface SystemVOpenOptions {
  /**
   * The least size the segment must have (default 0: any). An existing
   * segment smaller than this is an error; a bigger one is opened whole.
   */
  readonly size?: number;
}

/** Options of {@linkcode SystemVSegment.attach}. */
export interface SystemVAttachOptions {
  /**
   * Attach with SHM_RDONLY (default false). The pages are then PROT_READ:
   * read them through {@linkcode SystemVAttachment.readOnlyView};
   * `view()` and `dataView()` throw instead of handing out a TypedArray
   * whose first write would crash the process.
   */
  readonly readOnly?: boolean;
  /**
   * Where to attach (default: where the kernel chooses). A hinted attach
   * gets a mapping of its own (it is not shared with other attachments).
   * The kernel refuses an address that overlaps an existing mapping.
   */
  readonly address?: number;
  /**
   * With `address`: round it down to SHMLBA (SHM_RND; default true). With
   * false, an address that is not a multiple of SHMLBA is EINVAL.
   */
  readonly roundAddress?: boolean;
}

/** What {@linkcode SystemVSegment.setPermissions} changes; omitted fields stay. */
export type SystemVPermissions = ShmctlSetOptions;

/** A segment's status, from `shmctl(IPC_STAT)`. */
export interface SystemVSegmentStatus {
  /** The segment id. */
  readonly id: number;
  /** The key, unsigned; 0 for IPC_PRIVATE and, on Linux, once marked for deletion. */
  readonly key: number;
  /** The real size in bytes (`shm_segsz`). */
  readonly size: number;
  /** Attachments over all processes (`shm_nattch`); this process counts once per mapping. */
  readonly nattch: number;
  /** Creator's pid. */
  readonly cpid: number;
  /** Pid of the last shmat or shmdt. */
  readonly lpid: number;
  /** Last attach, or null if never. */
  readonly atime: Date | null;
  /** Last detach, or null if never. */
  readonly dtime: Date | null;
  /** Creation or last IPC_SET. */
  readonly ctime: Date | null;
  /** Owner's user id. */
  readonly uid: number;
  /** Owner's group id. */
  readonly gid: number;
  /** Creator's user id. */
  readonly cuid: number;
  /** Creator's group id. */
  readonly cgid: number;
  /** Permission bits, 0 to 0o777. */
  readonly mode: number;
  /** Marked for deletion (IPC_RMID) and waiting for its last detach (SHM_DEST). */
  readonly markedForDeletion: boolean;
  /** Locked in RAM (SHM_LOCKED). */
  readonly locked: boolean;
}

/**
 * A System V shared memory segment: a key (or IPC_PRIVATE), an id, a size.
 *
 * The object holds no resource of its own, so there is nothing to close:
 * `attach()` maps the segment (detach the attachment when done), and
 * `remove()` marks it for deletion. A segment outlives the processes that
 * made it until it is removed (`ipcs -m` lists them, `ipcrm` removes them).
 *
 * IPC_EXCL or IPC_PRIVATE: create with a `key` (exclusive by default) when
 * unrelated processes must find the segment; they agree on the key (often
 * from {@linkcode ftok}). Create without a key (IPC_PRIVATE) when the
 * processes that need it can be told the id (children, a socket, a file):
 * no other program can collide with it by picking the same key.
 *
 * @example
 * ```ts
 * import { SystemVSegment } from "@shmkit/shmkit";
 * const segment = SystemVSegment.create(1 << 20);
 * try {
 *   using attachment = segment.attach();
 *   attachment.view(Float64Array)[0] = 1.5;
 *   console.log(segment.stat().nattch); // 1
 * } finally {
 *   segment.remove();
 * }
 * ```
 */
export class SystemVSegment {
  // Private, with getters only: assigning another segment's id must not
  // make remove() remove that segment.
  readonly #id: number;
  readonly #key: number;
  readonly #size: number;
  readonly #created: boolean;
  #removed = false;

  private constructor(id: number, key: number, size: number, created: boolean) {
    this.#id = id;
    this.#key = key >>> 0;
    this.#size = size;
    this.#created = created;
  }

  /** The segment id (`shmid`). */
  get id(): number {
    return this.#id;
  }

  /** The key it was created or opened with, unsigned (0 for IPC_PRIVATE). */
  get key(): number {
    return this.#key;
  }

  /** The real size in bytes (that of the existing segment when one was opened). */
  get size(): number {
    return this.#size;
  }

  /** Whether this call created the segment (false when an existing one was opened). */
  get created(): boolean {
    return this.#created;
  }

  /**
   * Creates a segment: `shmget(key, size, IPC_CREAT | IPC_EXCL | mode)`.
   * The memory starts zeroed.
   *
   * With `exclusive: false` and a key, an existing segment is opened instead
   * (get-or-create). If it is smaller than `size`, that is an error naming
   * both sizes; if it is bigger, it is opened whole and `size` shows its
   * real size: a segment is never resized.
   *
   * @example
   * ```ts
   * import { SystemVSegment } from "@shmkit/shmkit";
   * const segment = SystemVSegment.create(4096, { key: 0x5348_4b01, mode: 0o640 });
   * segment.remove();
   * ```
   *
   * @param size Bytes, 1 or more (rounded up to pages in memory; `size` stays as asked).
   * @throws {TypeError} For non-number arguments.
   * @throws {RangeError} For a size below 1, a mode above 0o777, or key 0 (omit the key for IPC_PRIVATE).
   * @throws {ErrnoError} `shmget` with EEXIST (the key is taken), EINVAL (over kernel.shmmax, or an
   * existing segment is smaller), ENOSPC (over kernel.shmall or kernel.shmmni), ENOMEM.
   */
  static create(size: number, options?: SystemVCreateOptions): SystemVSegment {
    const removeOnExit = checkBoolean(
      checkOptions(options, "options").removeOnExit,
      "removeOnExit",
      false,
    );
    const segment = SystemVSegment.#create(size, options);
    if (removeOnExit && segment.created) removeSegmentOnExit(segment.id, segment.key);
    return segment;
  }

  static #create(size: number, options?: SystemVCreateOptions): SystemVSegment {
    checkSize(size, "size");
    const o = checkOptions(options, "options");
    const mode = checkIpcMode(o.mode ?? 0o600);
    const exclusive = checkBoolean(o.exclusive, "exclusive", true);
    if (o.key === undefined) {
      const id = shmget(C.IPC_PRIVATE, size, C.IPC_CREAT | C.IPC_EXCL | mode);
      return new SystemVSegment(id, C.IPC_PRIVATE, size, true);
    }
    const key = checkUserKey(o.key);
    if (exclusive) {
      return new SystemVSegment(
        shmget(key, size, C.IPC_CREAT | C.IPC_EXCL | mode),
        key,
        size,
        true,
      );
    }
    // Get-or-create, knowing which happened: try to create first.
    for (;;) {
      try {
        return new SystemVSegment(
          shmget(key, size, C.IPC_CREAT | C.IPC_EXCL | mode),
          key,
          size,
          true,
        );
      } catch (error) {
        if (!(error instanceof ErrnoError) || error.code !== "EEXIST") throw error;
      }
      try {
        const id = shmget(key, size, mode);
        return new SystemVSegment(id, key, shmctlStat(id).segsz, false);
      } catch (error) {
        // Removed between the two calls: try to create it again.
        if (!(error instanceof ErrnoError) || error.code !== "ENOENT") throw error;
      }
    }
  }

  /**
   * Opens an existing segment by key: `shmget(key, size, 0)`, then IPC_STAT
   * for its real size.
   *
   * @example
   * ```ts
   * import { SystemVSegment } from "@shmkit/shmkit";
   * const made = SystemVSegment.create(8192, { key: 0x5348_4b02 });
   * const found = SystemVSegment.open(0x5348_4b02, { size: 100 });
   * console.log(found.size); // 8192: the real size
   * made.remove();
   * ```
   *
   * @param key The key (not 0: IPC_PRIVATE segments are found by id, see {@linkcode SystemVSegment.openById}).
   * @throws {RangeError} For key 0 or a negative size.
   * @throws {ErrnoError} `shmget` with ENOENT (no segment has the key), EINVAL (it is smaller than
   * `size`; the message names both sizes), EACCES.
   */
  static open(key: number, options?: SystemVOpenOptions): SystemVSegment {
    const k = checkUserKey(key);
    const o = checkOptions(options, "options");
    const size = checkInteger(o.size ?? 0, "size", 0);
    const id = shmget(k, size, 0);
    return new SystemVSegment(id, k, shmctlStat(id).segsz, false);
  }

  /**
   * Opens an existing segment by id (as `ipcs -m` lists it, or as another
   * process passed it), checking with IPC_STAT that it exists.
   *
   * @throws {RangeError} For an id that is not an integer from 0 to 2^31 - 1.
   * @throws {ErrnoError} `shmctl(IPC_STAT)` with EINVAL when no segment has the id, EACCES.
   */
  static openById(id: number): SystemVSegment {
    checkId(id);
    const status = shmctlStat(id);
    return new SystemVSegment(id, status.key, status.segsz, false);
  }

  /**
   * The kernel's limits: `kernel.shmmax` (bytes), `kernel.shmall` (pages),
   * `kernel.shmmni` (segments), from /proc/sys/kernel. shmmax and shmall
   * are bigints (Linux's default, 18446744073692774399, is beyond 2^53).
   * Root raises them with `sysctl -w kernel.shmmax=...`; they are per IPC
   * namespace.
   *
   * @example
   * ```ts
   * import { SystemVSegment } from "@shmkit/shmkit";
   * const { shmmax } = SystemVSegment.limits();
   * console.log(BigInt(1 << 30) <= shmmax);
   * ```
   *
   * @throws {ErrnoError} `open` with ENOENT where /proc/sys/kernel/shm* is absent.
   */
  static limits(): SystemVLimits {
    return readLimits();
  }

  /**
   * Every segment in this IPC namespace, as `ipcs -m` shows them (key, id,
   * owner, perms, bytes, nattch, status) and more, from /proc/sysvipc/shm.
   *
   * @example
   * ```ts
   * import { SystemVSegment } from "@shmkit/shmkit";
   * for (const s of SystemVSegment.list()) console.log(s.key.toString(16), s.id, s.size, s.nattch);
   * ```
   *
   * @throws {ErrnoError} `open` with ENOENT where /proc/sysvipc is absent.
   */
  static list(): SystemVSegmentEntry[] {
    return readSegments();
  }

  /**
   * Attaches the segment: `shmat(id, NULL, 0)` (SHM_RDONLY with
   * `readOnly`). Attaching the same segment with the same access again in
   * this process returns another attachment of the same mapping (no new
   * `shmat`); each must be detached.
   *
   * Linux lets a segment marked for deletion be attached until its last
   * detach; other systems refuse.
   *
   * @example Read-only
   * ```ts
   * import { SystemVSegment } from "@shmkit/shmkit";
   * const segment = SystemVSegment.create(4096);
   * using reader = segment.attach({ readOnly: true });
   * console.log(reader.readOnlyView().getUint8(0)); // 0
   * segment.remove();
   * ```
   *
   * @throws {TypeError} For non-boolean `readOnly`/`roundAddress` or a non-number `address`.
   * @throws {ErrnoError} `shmat` with EINVAL (the segment is gone, or a bad address), EACCES, ENOMEM.
   */
  attach(options?: SystemVAttachOptions): SystemVAttachment {
    const o = checkOptions(options, "options");
    const readOnly = checkBoolean(o.readOnly, "readOnly", false);
    let flags = readOnly ? C.SHM_RDONLY : 0;
    let address = 0;
    if (o.address !== undefined) {
      address = checkInteger(o.address, "address", 1);
      if (checkBoolean(o.roundAddress, "roundAddress", true)) flags |= C.SHM_RND;
    }
    return attachSegment(this, readOnly, address, flags);
  }

  /**
   * The segment's status: `shmctl(id, IPC_STAT)`, with times as Dates
   * (null when 0) and the mode split into permission bits and flags.
   *
   * @throws {ErrnoError} `shmctl(IPC_STAT)` with EINVAL when the segment is gone (removed and
   * detached everywhere, e.g. by `ipcrm -m`), EACCES.
   */
  stat(): SystemVSegmentStatus {
    const s = shmctlStat(this.#id);
    return {
      id: this.#id,
      key: s.key,
      size: s.segsz,
      nattch: s.nattch,
      cpid: s.cpid,
      lpid: s.lpid,
      atime: dateOrNull(s.atime),
      dtime: dateOrNull(s.dtime),
      ctime: dateOrNull(s.ctime),
      uid: s.uid,
      gid: s.gid,
      cuid: s.cuid,
      cgid: s.cgid,
      mode: s.mode & 0o777,
      markedForDeletion: C.SHM_DEST > 0 && (s.mode & C.SHM_DEST) !== 0,
      locked: C.SHM_LOCKED > 0 && (s.mode & C.SHM_LOCKED) !== 0,
    };
  }

  /**
   * Changes the permission bits and/or owner: `shmctl(id, IPC_SET)`.
   *
   * @example
   * ```ts
   * import { SystemVSegment } from "@shmkit/shmkit";
   * const segment = SystemVSegment.create(4096);
   * segment.setPermissions({ mode: 0o640 });
   * segment.remove();
   * ```
   *
   * @throws {RangeError} For a mode above 0o777 or an out-of-range uid/gid.
   * @throws {ErrnoError} `shmctl(IPC_SET)` with EPERM unless owner, creator or CAP_SYS_ADMIN.
   */
  setPermissions(permissions: SystemVPermissions): void {
    shmctlSet(this.#id, permissions);
  }

  /**
   * Locks the segment's pages in RAM: `shmctl(id, SHM_LOCK)` (Linux).
   *
   * @throws {Error} Where the platform has no SHM_LOCK.
   * @throws {ErrnoError} `shmctl(SHM_LOCK)` with EPERM or ENOMEM (CAP_IPC_LOCK / RLIMIT_MEMLOCK).
   */
  lock(): void {
    shmctlLock(this.#id);
  }

  /**
   * Unlocks the segment's pages: `shmctl(id, SHM_UNLOCK)` (Linux).
   *
   * @throws {Error} Where the platform has no SHM_UNLOCK.
   * @throws {ErrnoError} `shmctl(SHM_UNLOCK)` with EPERM.
   */
  unlock(): void {
    shmctlUnlock(this.#id);
  }

  /**
   * Marks the segment for deletion: `shmctl(id, IPC_RMID)`. This is not an
   * immediate delete: the segment lives until its last detach, in every
   * process, and its memory stays usable by attachments made before. On
   * Linux its key reads 0 at once (the key can be reused by a new segment)
   * and it can still be attached by id while it lingers; other systems
   * refuse that. Does NOT detach anything: detach your attachments too.
   *
   * Idempotent; a segment someone else already removed (`ipcrm -m`) counts
   * as removed.
   *
   * @throws {ErrnoError} `shmctl(IPC_RMID)` with EPERM unless owner, creator or CAP_SYS_ADMIN.
   */
  remove(): void {
    keepSegment(this.id);
    if (this.#removed) return;
    try {
      shmctlRemove(this.#id);
    } catch (error) {
      if (!(error instanceof ErrnoError) || (error.code !== "EINVAL" && error.code !== "EIDRM")) {
        throw error;
      }
    }
    this.#removed = true;
  }

  /**
   * Whether the segment was removed, by anyone: gone (IPC_STAT says EINVAL),
   * or marked for deletion and waiting for its last detach.
   *
   * @throws {ErrnoError} `shmctl(IPC_STAT)` failing otherwise (EACCES).
   */
  isRemoved(): boolean {
    try {
      return this.stat().markedForDeletion;
    } catch (error) {
      if (error instanceof ErrnoError && (error.code === "EINVAL" || error.code === "EIDRM")) {
        return true;
      }
      throw error;
    }
  }

  /** `SystemVSegment(id 5, key 0x0000abcd, 4096 bytes)`. */
  toString(): string {
    return `SystemVSegment(id ${this.#id}, key ${formatKey(this.key)}, ${this.size} bytes)`;
  }
}

function checkUserKey(value: unknown): number {
  const key = checkKey(value);
  if (key === C.IPC_PRIVATE) {
    throw new RangeError(
      "Cannot use key 0: it is IPC_PRIVATE, which always makes a new segment; omit the key to create a private segment, and open one by id with SystemVSegment.openById",
    );
  }
  return key;
}

/**
 * POSIX named shared memory: {@linkcode SharedMemory}, an object in
 * /dev/shm that unrelated processes (Deno, Bun, Python, C) open by name,
 * mapped and seen through views that are detached when it is closed.
 *
 * - Created exclusively (O_EXCL), mode 0o600, with an unguessable name when
 *   none is given; space reserved up front (`posix_fallocate`), so a full
 *   /dev/shm is an ENOSPC error at create, never a SIGBUS later.
 * - Objects this process created are unlinked when it exits (normally, on an
 *   uncaught error, on SIGINT/SIGTERM) unless created with `persist: true`;
 *   objects it only opened are never unlinked by it.
 * - Names are checked before any call, against the platform's rules.
 *
 * @example Two processes, one name
 * ```ts
 * import { SharedMemory } from "@shmkit/shmkit";
 * using shm = SharedMemory.create({ name: "/demo-counter", size: 4096 });
 * shm.view(Int32Array)[0] = 42;
 * // in another process: SharedMemory.open("/demo-counter").view(Int32Array)[0] === 42
 * ```
 *
 * @module
 */
import { registerCleanup, unregisterCleanup } from "./cleanup.ts";
import { check, ErrnoError } from "../core/errors.ts";
import { errno, setErrno, unsafeLibc } from "../ffi/libc.ts";
import { cString, unsafeReadCString } from "../ffi/pointer.ts";
import { MappedMemory, roundUpToPage, setRegion } from "../core/memory.ts";
import { ClosedError } from "../core/errors.ts";
import { platform } from "../platform/mod.ts";
import { Region } from "../core/_region.ts";
import {
  encodeShmName,
  fchmod,
  fchown,
  type FdStat,
  fstat,
  ftruncate,
  posixFallocate,
  shmOpenHints,
  shmUnlink,
  statPath,
} from "./raw.ts";
import { checkBoolean, checkMode, checkOptions, checkSize } from "../core/_validate.ts";

const C = platform.constants;

/** Where glibc keeps POSIX shared memory objects (Linux). */
const SHM_DIR = "/dev/shm";

/** Owner, mode and size of a shared memory object or memfd. */
export interface MemoryStat {
  /** Size in bytes. */
  readonly size: number;
  /** Permission bits (`st_mode & 0o7777`). */
  readonly mode: number;
  /** Owner's user id. */
  readonly uid: number;
  /** Owner's group id. */
  readonly gid: number;
}

interface FdState {
  fd: number;
  closed: boolean;
}

// An owner collected without close() gives its fd back (its Region tombstones the memory).
const fds = new FinalizationRegistry<FdState>((state) => {
  if (state.closed) return;
  state.closed = true;
  unsafeLibc.close(state.fd);
});

/**
 * Maps `length` bytes of `fd` from offset 0. Read-only is private
 * copy-on-write (PROT_READ|PROT_WRITE, MAP_PRIVATE): a write through a view
 * stays in this process and can't crash it.
 */
function mapFd(
  owner: object,
  fd: number,
  length: number,
  readOnly: boolean,
  path?: string,
): Region {
  const address = unsafeLibc.mmap(
    0,
    length,
    C.PROT_READ | C.PROT_WRITE,
    readOnly ? C.MAP_PRIVATE : C.MAP_SHARED,
    fd,
    0,
  );
  if (address === -1) {
    const code = errno();
    throw new ErrnoError("mmap", code, {
      ...(path === undefined ? {} : { path }),
      fd,
      ...(code === platform.errno.ENOMEM
        ? { hint: `no room for ${length} bytes (address space or overcommit limit)` }
        : code === platform.errno.EPERM
        ? { hint: 'the object is sealed against writable shared mappings (seal "write")' }
        : code === platform.errno.EACCES
        ? { hint: "the fd is not open for reading and writing; map it readOnly" }
        : {}),
    });
  }
  return new Region(owner, address, length, roundUpToPage(length), "munmap", true);
}

/**
 * Memory backed by a file descriptor (a POSIX shared memory object or a
 * memfd), mapped whole from offset 0. The base of {@linkcode SharedMemory}
 * and {@linkcode Memfd}: views, `fd`, `stat()`, `resize()`, `close()`.
 */
export abstract class FdMemory extends MappedMemory {
  #state: FdState;
  #region: Region | undefined;
  #readOnly: boolean;
  #reserve: boolean;

  /**
   * Takes ownership of `fd` and maps `length` bytes of it.
   *
   * @param fd An open fd this object will own and close.
   * @param length Bytes to map; the object must be at least this big.
   * @param readOnly Map private copy-on-write instead of shared.
   * @param reserve Whether `resize()` reserves space when growing.
   * @param path The object's name, for error messages.
   */
  protected constructor(
    fd: number,
    length: number,
    readOnly: boolean,
    reserve: boolean,
    path?: string,
  ) {
    super();
    this.#state = { fd, closed: false };
    this.#readOnly = readOnly;
    this.#reserve = reserve;
    this.#use(mapFd(this, fd, length, readOnly, path));
    fds.register(this, this.#state, this.#state);
  }

  // Every change of region goes through here, so the base class's views follow it.
  #use(region: Region | undefined): void {
    this.#region = region;
    setRegion(this, region);
  }

  /** The name for messages: the object's name or "memfd". */
  protected abstract get label(): string;

  /** The live region, or ClosedError. */
  #live(action: string): Region {
    const region = this.#region;
    if (region === undefined || region.released || this.#state.closed) {
      throw new ClosedError(action, this.kind);
    }
    return region;
  }

  /**
   * The file descriptor (O_CLOEXEC), e.g. to hand to a child process. It
   * stays owned by this object: don't close it yourself.
   *
   * @throws {ClosedError} When the object is closed.
   */
  get fd(): number {
    if (this.#state.closed) throw new ClosedError("get the fd", this.kind);
    return this.#state.fd;
  }

  /**
   * Whether this process sees the memory read-only: a private copy-on-write
   * mapping whose writes stay in this process.
   */
  get readOnly(): boolean {
    return this.#readOnly;
  }

  /**
   * The object's size, permission bits and owner: `fstat(fd)`.
   *
   * @throws {ClosedError} When the object is closed.
   * @throws {ErrnoError} `fstat` failing.
   */
  stat(): MemoryStat {
    this.#live("fstat");
    const s = fstat(this.#state.fd);
    return { size: s.size, mode: s.mode & 0o7777, uid: s.uid, gid: s.gid };
  }

  /**
   * Changes the object's permission bits: `fchmod(fd, mode)` (not filtered
   * by the umask).
   *
   * @throws {RangeError} For a mode outside 0o0 to 0o7777.
   * @throws {ClosedError} When the object is closed.
   * @throws {ErrnoError} `fchmod` with EPERM when this user is not the owner.
   */
  chmod(mode: number): void {
    this.#live("fchmod");
    fchmod(this.#state.fd, mode);
  }

  /**
   * Changes the object's owner and group: `fchown(fd, uid, gid)`; -1 keeps one.
   *
   * @throws {RangeError} For a bad uid or gid.
   * @throws {ClosedError} When the object is closed.
   * @throws {ErrnoError} `fchown` with EPERM without the privilege.
   */
  chown(uid: number, gid: number): void {
    this.#live("fchown");
    fchown(this.#state.fd, uid, gid);
  }

  /**
   * Sets the object's size and maps it anew; every view handed out before is
   * detached (length 0), so take new ones. Growing reserves the new space
   * (`posix_fallocate`, which also sets the size; `ftruncate` for objects
   * created with `reserve: false`), so a full /dev/shm is ENOSPC here and
   * the object keeps its old size. Shrinking is `ftruncate`.
   *
   * Shrinking an object that other processes have mapped makes their next
   * touch past the new end a SIGBUS, which kills them: shrink only what no
   * one else maps (or use a {@linkcode Memfd} sealed against "shrink").
   *
   * @param newSize The new size in bytes, 1 or more.
   * @throws {RangeError} For a size that is not a positive integer.
   * @throws {TypeError} When the object is read-only here.
   * @throws {ClosedError} When the object is closed.
   * @throws {ErrnoError} `ftruncate` / `posix_fallocate` failing: ENOSPC, EPERM (sealed).
   */
  resize(newSize: number): void {
    const region = this.#live("resize");
    checkSize(newSize, "newSize");
    if (this.#readOnly) {
      throw new TypeError(
        `Cannot resize ${this.label}: it is mapped read-only in this process`,
      );
    }
    const fd = this.#state.fd;
    const oldSize = fstat(fd).size;
    if (newSize > oldSize) {
      // posix_fallocate grows the size as it reserves, and on failure leaves it as it was.
      if (this.#reserve) posixFallocate(fd, oldSize, newSize - oldSize);
      else ftruncate(fd, newSize);
      region.release();
      this.#use(undefined);
      this.#mapOr(newSize, region.length);
      return;
    }
    // Unmap before shrinking: no view of ours may ever reach past the end.
    region.release();
    this.#use(undefined);
    try {
      if (newSize < oldSize) ftruncate(fd, newSize);
    } catch (error) {
      this.#use(mapFd(this, fd, region.length, false));
      throw error;
    }
    this.#mapOr(newSize, Math.min(region.length, newSize));
  }

  /** Maps `length` bytes, or (when that fails, e.g. ENOMEM) `fallback` bytes and rethrows. */
  #mapOr(length: number, fallback: number): void {
    try {
      this.#use(mapFd(this, this.#state.fd, length, this.#readOnly));
    } catch (error) {
      this.#use(mapFd(this, this.#state.fd, fallback, this.#readOnly));
      throw error;
    }
  }

  /**
   * Unmaps and remaps with another access (for sealing); views are detached.
   * Restores the old mapping if `between` throws.
   */
  protected remap(readOnly: boolean, between: () => void): void {
    const region = this.#live("remap");
    region.release();
    this.#use(undefined);
    try {
      between();
    } catch (error) {
      this.#use(mapFd(this, this.#state.fd, region.length, this.#readOnly));
      throw error;
    }
    this.#readOnly = readOnly;
    this.#use(mapFd(this, this.#state.fd, region.length, readOnly));
  }

  /**
   * Unmaps (detaching every view) and closes the fd. The object itself stays
   * (see the subclass for what happens to it). Idempotent.
   *
   * @throws {ErrnoError} `munmap` or `close` failing (not expected).
   */
  close(): void {
    try {
      this.#region?.release();
    } finally {
      const state = this.#state;
      if (!state.closed) {
        state.closed = true;
        fds.unregister(state);
        if (unsafeLibc.close(state.fd) === -1) check(-1, "close", { fd: state.fd });
      }
    }
  }
}

/** Options of {@linkcode SharedMemory.create}. */
export interface SharedMemoryCreateOptions {
  /**
   * The name: "/" and up to NAME_MAX (255) bytes without "/" (macOS: 31 in
   * all). Default: "/shmkit-" and 16 random hex digits.
   */
  readonly name?: string;
  /** Size in bytes, 1 or more. */
  readonly size: number;
  /** Permission bits (default 0o600), applied exactly (fchmod), not filtered by the umask. */
  readonly mode?: number;
  /**
   * Keep the object when this process exits or disposes it (default false:
   * a created object is unlinked by `[Symbol.dispose]` and at exit).
   */
  readonly persist?: boolean;
  /**
   * Reserve the space now with `posix_fallocate` (default true), so a full
   * /dev/shm fails here with ENOSPC instead of a SIGBUS at first touch.
   * false makes a sparse object (pages allocated on first touch).
   */
  readonly reserve?: boolean;
}

/** Options of {@linkcode SharedMemory.open}. */
export interface SharedMemoryOpenOptions {
  /**
   * Open O_RDONLY and map private copy-on-write (default false): writes
   * through views stay in this process and never crash it. Until this
   * process writes to a page, the page shows the other processes' writes.
   */
  readonly readOnly?: boolean;
  /**
   * Map only this many bytes, and refuse (before mapping) an object smaller
   * than that. Default: the object's whole size, from `fstat`.
   */
  readonly size?: number;
}

/** A named object found by {@linkcode SharedMemory.list}. */
export interface SharedMemoryInfo {
  /** The name, with its leading "/". */
  readonly name: string;
  /** Size in bytes. */
  readonly size: number;
  /** Permission bits. */
  readonly mode: number;
  /** Owner's user id. */
  readonly uid: number;
  /** Owner's group id. */
  readonly gid: number;
}

/** Options of {@linkcode SharedMemory.list}. */
export interface SharedMemoryListOptions {
  /** Only names starting with this (with the leading "/", e.g. "/shmkit-"). */
  readonly prefix?: string;
}

function randomName(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  let hex = "";
  for (const byte of bytes) hex += byte.toString(16).padStart(2, "0");
  return `/shmkit-${hex}`;
}

/** A checked name, encoded once for every call that needs it. */
interface ShmName {
  /** The name, "/x". */
  readonly name: string;
  /** The name as a C string. */
  readonly c: Uint8Array<ArrayBuffer>;
}

const SHM_DIR_BYTES = new TextEncoder().encode(SHM_DIR);

function shmName(name: string, c: Uint8Array<ArrayBuffer> = encodeShmName(name)): ShmName {
  return { name, c };
}

// "/dev/shm" followed by room for the longest name; reused by every (synchronous) call.
const pathScratch = new Uint8Array(SHM_DIR_BYTES.length + 1 + platform.constants.NAME_MAX + 1);
pathScratch.set(SHM_DIR_BYTES);

/** "/dev/shm/x" as a C string, in a buffer reused by the next call. */
function shmPath(name: ShmName): Uint8Array {
  pathScratch.set(name.c, SHM_DIR_BYTES.length);
  return pathScratch;
}

function identityOf(name: ShmName): { dev: number; ino: number } | undefined {
  if (platform.os === "linux") return statPath(shmPath(name));
  // Elsewhere there is no path to stat: open the name read-only.
  const fd = unsafeLibc.shm_open(name.c, C.O_RDONLY, 0);
  if (fd === -1) return undefined;
  try {
    return fstat(fd);
  } finally {
    unsafeLibc.close(fd);
  }
}

/**
 * Unlinks `name` if it still names the object (dev, ino): never an object
 * someone else made under the same name after ours was removed. Returns
 * whether it unlinked.
 */
function unlinkIfSame(name: ShmName, dev: number, ino: number): boolean {
  let current: { dev: number; ino: number } | undefined;
  try {
    current = identityOf(name);
  } catch {
    current = { dev, ino }; // can't tell (EACCES on the directory): trust the name
  }
  if (current === undefined || current.dev !== dev || current.ino !== ino) return false;
  if (unsafeLibc.shm_unlink(name.c) === -1) {
    const code = errno();
    if (code === platform.errno.ENOENT) return false;
    throw new ErrnoError("shm_unlink", code, { path: name.name });
  }
  return true;
}

/**
 * A POSIX shared memory object (`shm_open`), mapped whole and shared: the
 * way unrelated processes (another Deno or Bun script, Python's
 * `multiprocessing.shared_memory`, C) share memory by name.
 *
 * Lifetime:
 * - `close()` unmaps (views detach) and closes the fd; the object stays.
 * - `unlink()` removes the name; mappings stay valid until closed.
 * - `[Symbol.dispose]` (`using`) closes, and unlinks if this process created
 *   the object without `persist: true`.
 * - At exit (normal, uncaught error, SIGINT, SIGTERM) objects this process
 *   created and didn't persist are unlinked; never ones it only opened.
 *   SIGKILL can't be caught: find leftovers with {@linkcode SharedMemory.list}.
 *
 * @example Create, and attach from elsewhere
 * ```ts
 * import { SharedMemory } from "@shmkit/shmkit";
 * using shm = SharedMemory.create({ size: 1 << 20 });
 * shm.view()[0] = 1;
 * console.log(shm.name); // "/shmkit-…": pass it to the other process
 * using peer = SharedMemory.open(shm.name);
 * console.log(peer.view()[0]); // 1
 * ```
 */
export class SharedMemory extends FdMemory {
  /** The object's name, with its leading "/". */
  readonly name: string;
  /** Whether this process created the object (rather than opened it). */
  readonly created: boolean;
  /**
   * Whether this process leaves the object in place at exit and on dispose:
   * true when it was created with `persist: true`, and for every object this
   * process only opened.
   */
  readonly persist: boolean;
  readonly #name: ShmName;
  readonly #dev: number;
  readonly #ino: number;
  #unlinked = false;

  private constructor(
    fd: number,
    name: ShmName,
    length: number,
    created: boolean,
    persist: boolean,
    readOnly: boolean,
    reserve: boolean,
    identity: FdStat,
  ) {
    super(fd, length, readOnly, reserve, name.name);
    this.#name = name;
    this.name = name.name;
    this.created = created;
    this.persist = persist;
    this.#dev = identity.dev;
    this.#ino = identity.ino;
  }

  /** "shared memory object", for error messages. */
  protected get kind(): string {
    return "shared memory object";
  }

  /** How this object is named in error messages. */
  protected get label(): string {
    return JSON.stringify(this.name);
  }

  static #cleanupKey(name: string): string {
    return `shm:${name}`;
  }

  /**
   * Creates a new object and maps it: `shm_open(name,
   * O_CREAT|O_EXCL|O_RDWR|O_CLOEXEC, mode)`, `posix_fallocate` (which sets
   * the size as it reserves the space; `ftruncate` with `reserve: false`),
   * `mmap(MAP_SHARED)`. It starts zeroed. If reserving the space fails, the
   * half-made object is unlinked before the error is thrown.
   *
   * @example
   * ```ts
   * import { SharedMemory } from "@shmkit/shmkit";
   * using shm = SharedMemory.create({ name: "/my-app-ring", size: 65536, mode: 0o600 });
   * shm.view(Uint32Array)[0] = 7;
   * ```
   *
   * @throws {TypeError} For options of the wrong type, or a name with a NUL.
   * @throws {RangeError} For a bad name (which rule it broke is in the message), a size that
   * is not a positive integer, or a mode outside 0o0 to 0o7777.
   * @throws {ErrnoError} `shm_open` with EEXIST (the message says how to attach instead),
   * EACCES, EMFILE; `posix_fallocate` with ENOSPC when /dev/shm has no room; `mmap` with ENOMEM.
   */
  static create(options: SharedMemoryCreateOptions): SharedMemory {
    const o = checkOptions(options, "options");
    const name = o.name === undefined ? undefined : shmName(o.name);
    const size = checkSize(o.size, "size");
    const mode = o.mode === undefined ? undefined : checkMode(o.mode);
    const persist = checkBoolean(o.persist, "persist", false);
    const reserve = checkBoolean(o.reserve, "reserve", true);

    const flags = C.O_CREAT | C.O_EXCL | C.O_RDWR | C.O_CLOEXEC;
    let chosen = name ?? shmName(randomName());
    let fd = unsafeLibc.shm_open(chosen.c, flags, mode ?? 0o600);
    // A random name can collide only by accident: draw another.
    for (let tries = 0; fd === -1 && name === undefined && tries < 8; tries++) {
      if (errno() !== platform.errno.EEXIST) break;
      chosen = shmName(randomName());
      fd = unsafeLibc.shm_open(chosen.c, flags, mode ?? 0o600);
    }
    if (fd === -1) check(fd, "shm_open", { path: chosen.name }, shmOpenHints(chosen.name));

    let identity: FdStat;
    try {
      if (mode !== undefined) fchmod(fd, mode); // the umask must not narrow an explicit mode
      // posix_fallocate sets the size as it reserves; ftruncate only when not reserving.
      if (reserve) posixFallocate(fd, 0, size);
      else ftruncate(fd, size);
      identity = fstat(fd);
    } catch (error) {
      unsafeLibc.close(fd);
      unsafeLibc.shm_unlink(chosen.c);
      if (error instanceof ErrnoError && error.code === "ENOSPC") {
        throw new ErrnoError(error.syscall, error.errno, {
          path: chosen.name,
          hint: `/dev/shm has no room for ${size} bytes; the object was removed again`,
        });
      }
      throw error;
    }

    let shm: SharedMemory;
    try {
      shm = new SharedMemory(fd, chosen, size, true, persist, false, reserve, identity);
    } catch (error) {
      unsafeLibc.close(fd);
      unsafeLibc.shm_unlink(chosen.c);
      throw error;
    }
    if (!persist) {
      const { dev, ino } = identity;
      // Captures the name and identity only, so the object stays collectable.
      const target = chosen;
      registerCleanup(SharedMemory.#cleanupKey(target.name), () => {
        unlinkIfSame(target, dev, ino);
      });
    }
    return shm;
  }

  /**
   * Attaches to an existing object: `shm_open(name, O_RDWR or O_RDONLY)`,
   * `fstat` for its size, then `mmap`. An object smaller than `size` (or
   * empty) is refused before mapping, since touching pages past its end
   * would be a SIGBUS. This process will never unlink it on its own.
   *
   * @example
   * ```ts
   * import { SharedMemory } from "@shmkit/shmkit";
   * using created = SharedMemory.create({ size: 4096 }); // another process, usually
   * created.view(Uint32Array)[0] = 42;
   * using shm = SharedMemory.open(created.name, { readOnly: true });
   * if (shm.view(Uint32Array)[0] !== 42) throw new Error("not the same object");
   * ```
   *
   * @throws {TypeError} For options of the wrong type, or a name with a NUL.
   * @throws {RangeError} For a bad name or size, an empty object, or an object smaller than `size`.
   * @throws {Error} When the name is not a regular file (e.g. a directory someone made in /dev/shm).
   * @throws {ErrnoError} `shm_open` with ENOENT (no such name) or EACCES; `mmap` failing.
   */
  static open(name: string, options?: SharedMemoryOpenOptions): SharedMemory {
    const encoded = shmName(name);
    const o = checkOptions(options, "options");
    const readOnly = checkBoolean(o.readOnly, "readOnly", false);
    const wanted = o.size === undefined ? undefined : checkSize(o.size, "size");
    const fd = unsafeLibc.shm_open(encoded.c, (readOnly ? C.O_RDONLY : C.O_RDWR) | C.O_CLOEXEC, 0);
    if (fd === -1) check(fd, "shm_open", { path: name }, shmOpenHints(name));
    try {
      const status = fstat(fd);
      if (!status.isFile) {
        throw new Error(
          `Cannot open ${
            JSON.stringify(name)
          }: it is not a shared memory object (not a regular file)`,
        );
      }
      if (status.size === 0) {
        throw new RangeError(
          `Cannot open ${
            JSON.stringify(name)
          }: the object is empty (0 bytes); its creator has not sized it yet`,
        );
      }
      if (wanted !== undefined && status.size < wanted) {
        throw new RangeError(
          `Cannot open ${
            JSON.stringify(name)
          } with size ${wanted}: the object has ${status.size} bytes, and touching pages past its end is SIGBUS`,
        );
      }
      return new SharedMemory(
        fd,
        encoded,
        wanted ?? status.size,
        false,
        true,
        readOnly,
        true,
        status,
      );
    } catch (error) {
      unsafeLibc.close(fd);
      throw error;
    }
  }

  /**
   * Removes an object's name without opening it: `shm_unlink(name)`.
   * Processes that have it mapped keep their memory.
   *
   * @example Remove a leftover, if there is one
   * ```ts
   * import { SharedMemory } from "@shmkit/shmkit";
   * for (const leftover of SharedMemory.list({ prefix: "/my-app-" })) {
   *   SharedMemory.unlink(leftover.name);
   * }
   * ```
   *
   * @throws {TypeError} For a name that is not a string or has a NUL.
   * @throws {RangeError} For a bad name.
   * @throws {ErrnoError} `shm_unlink` with ENOENT when no object has this name, EACCES.
   */
  static unlink(name: string): void {
    shmUnlink(name);
    // If this process created it, there's nothing left to remove at exit.
    unregisterCleanup(SharedMemory.#cleanupKey(name));
  }

  /**
   * The named objects in /dev/shm (Linux), sorted by name: leftovers of
   * killed processes show here. POSIX named semaphores live there too, as
   * "/sem.NAME".
   *
   * @example
   * ```ts
   * import { SharedMemory } from "@shmkit/shmkit";
   * for (const info of SharedMemory.list({ prefix: "/shmkit-" })) {
   *   console.log(info.name, info.size, info.mode.toString(8), info.uid);
   * }
   * ```
   *
   * @throws {TypeError} For a prefix that is not a string.
   * @throws {RangeError} For a prefix without the leading "/".
   * @throws {Error} Where there is no /dev/shm to list (macOS).
   * @throws {ErrnoError} `opendir` or `readdir` failing.
   */
  static list(options?: SharedMemoryListOptions): SharedMemoryInfo[] {
    const o = checkOptions(options, "options");
    const prefix = o.prefix ?? "/";
    if (typeof prefix !== "string") {
      throw new TypeError(`Cannot use prefix: expected a string, got ${typeof prefix}`);
    }
    if (!prefix.startsWith("/")) {
      throw new RangeError(
        `Cannot use prefix ${JSON.stringify(prefix)}: names start with "/" (e.g. ${
          JSON.stringify("/" + prefix)
        })`,
      );
    }
    if (platform.os !== "linux") {
      throw new Error(
        `Cannot list shared memory objects: ${platform.os} keeps them where no program can list them`,
      );
    }
    const names: string[] = [];
    const dir = unsafeLibc.opendir(cString(SHM_DIR, "path"));
    if (dir === 0) throw new ErrnoError("opendir", errno(), { path: SHM_DIR });
    try {
      const nameField = platform.structs.dirent.fields["d_name"]!;
      for (;;) {
        setErrno(0); // readdir reports both the end and an error as NULL
        const entry = unsafeLibc.readdir(dir);
        if (entry === 0) {
          const code = errno();
          if (code !== 0) throw new ErrnoError("readdir", code, { path: SHM_DIR });
          break;
        }
        const file = unsafeReadCString(entry + nameField.offset, nameField.size);
        if (file === "." || file === "..") continue;
        const name = "/" + file;
        if (name.startsWith(prefix)) names.push(name);
      }
    } finally {
      unsafeLibc.closedir(dir);
    }
    const found: SharedMemoryInfo[] = [];
    for (const name of names.sort()) {
      const status = statPath(SHM_DIR + name);
      if (status === undefined || !status.isFile) continue; // gone meanwhile, or not an object
      found.push({
        name,
        size: status.size,
        mode: status.mode & 0o7777,
        uid: status.uid,
        gid: status.gid,
      });
    }
    return found;
  }

  /** Whether this object's name has been removed through this object. */
  get unlinked(): boolean {
    return this.#unlinked;
  }

  /**
   * Removes the object's name: `shm_unlink`, if the name still names this
   * object (never an object someone else created under the same name after
   * this one was removed). Mappings stay valid until closed. Works after
   * `close()` too.
   *
   * Returns true when it removed the name, false when the name was already
   * gone or names another object. A second call does nothing and returns
   * false: it never removes a name twice.
   *
   * @example
   * ```ts
   * import { SharedMemory } from "@shmkit/shmkit";
   * const shm = SharedMemory.create({ size: 4096, persist: true });
   * shm.unlink(); // true
   * shm.unlink(); // false
   * shm.close();
   * ```
   *
   * @throws {ErrnoError} `shm_unlink` with EACCES.
   */
  unlink(): boolean {
    if (this.#unlinked) return false;
    this.#unlinked = true;
    unregisterCleanup(SharedMemory.#cleanupKey(this.name));
    return unlinkIfSame(this.#name, this.#dev, this.#ino);
  }

  /**
   * Closes; and unlinks too if this process created the object without
   * `persist: true`, so `using` leaks nothing.
   */
  override [Symbol.dispose](): void {
    this.close();
    if (this.created && !this.persist) this.unlink();
  }
}

/**
 * {@linkcode FdMemory}: memory backed by a file descriptor (a POSIX shared
 * memory object or a memfd), mapped whole, with views, `stat()`, `resize()`
 * and `close()`. The base of {@linkcode SharedMemory} and
 * {@linkcode Memfd}.
 *
 * @module
 */
import { check } from "../core/errors.ts";
import { unsafeLibc } from "../ffi/libc.ts";
import { MappedMemory, roundUpToPage, setRegion } from "../core/memory.ts";
import { ClosedError } from "../core/errors.ts";
import { platform } from "../platform/mod.ts";
import { type CollectableRegion, collectRegion, Region } from "../core/_region.ts";
import { checkMapped, statFd } from "../core/_io.ts";
import { fchmod, fchown, ftruncate, posixFallocate } from "./raw.ts";
import { checkSize } from "../core/_validate.ts";
import { checkBacking } from "./_backing.ts";

const C = platform.constants;

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
  /** The current region, for the finalizer (regions change on resize and remap). */
  region: CollectableRegion | undefined;
}

// One finalizer for the owner, whatever its region: an owner collected without
// close() has its memory tombstoned and gives its fd back.
const fds = new FinalizationRegistry<FdState>((state) => {
  if (state.region !== undefined) collectRegion(state.region);
  if (state.closed) return;
  state.closed = true;
  unsafeLibc.close(state.fd);
});

const MMAP_HINTS = {
  EPERM: 'the object is sealed against writable shared mappings (seal "write")',
  EACCES: "the fd is not open for reading and writing; map it readOnly",
};

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
  const address = checkMapped(
    unsafeLibc.mmap(
      0,
      length,
      C.PROT_READ | C.PROT_WRITE,
      readOnly ? C.MAP_PRIVATE : C.MAP_SHARED,
      fd,
      0,
    ),
    length,
    path === undefined ? { fd } : { path, fd },
    MMAP_HINTS,
  );
  return new Region(owner, address, length, roundUpToPage(length), "munmap", true, true);
}

/** What an {@linkcode FdMemory} is made from. */
export interface FdMemoryInit {
  /** An open fd the object will own and close. */
  readonly fd: number;
  /** Bytes to map; the object must be at least this big. */
  readonly length: number;
  /** Map private copy-on-write instead of shared. */
  readonly readOnly: boolean;
  /** Whether `resize()` reserves space when growing. */
  readonly reserve: boolean;
  /** The object's name, for error messages. */
  readonly path?: string;
  /** The filesystem it lives on, for the room check when growing (none for a memfd). */
  readonly filesystem?: string;
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
  #path: string | undefined;
  #filesystem: string | undefined;

  /**
   * Takes ownership of `init.fd` and maps `init.length` bytes of it.
   *
   * @param init The fd, the length to map, the access and the name.
   */
  protected constructor(init: FdMemoryInit) {
    super();
    this.#state = { fd: init.fd, closed: false, region: undefined };
    this.#readOnly = init.readOnly;
    this.#reserve = init.reserve;
    this.#path = init.path;
    this.#filesystem = init.filesystem;
    this.#use(mapFd(this, init.fd, init.length, init.readOnly, init.path));
    fds.register(this, this.#state, this.#state);
  }

  // Every change of region goes through here, so the base class's views follow it.
  #use(region: Region | undefined): void {
    this.#region = region;
    this.#state.region = region?.collectable;
    setRegion(this, region);
  }

  /** `FdMemory(fd 5, 4096 bytes)`; subclasses name themselves better. */
  override toString(): string {
    return `FdMemory(fd ${this.#state.fd}, ${this.byteLength} bytes${
      this.#state.closed ? ", closed" : ""
    })`;
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
    const s = statFd(this.#state.fd);
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
   * @throws {ErrnoError} `ftruncate` / `posix_fallocate` failing: ENOSPC, EPERM (sealed); growth
   * that can't be backed (ENOMEM, ENOSPC, EFBIG for RLIMIT_FSIZE) is refused up front.
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
    const oldSize = statFd(fd).size;
    if (newSize > oldSize) {
      checkBacking({
        syscall: this.#reserve ? "posix_fallocate" : "ftruncate",
        ...(this.#path === undefined ? { fd } : { path: this.#path, fd }),
        size: newSize,
        allocate: this.#reserve ? newSize - oldSize : 0,
        ...(this.#filesystem === undefined ? {} : { filesystem: this.#filesystem }),
      });
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

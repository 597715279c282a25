/**
 * Memory mappings: `mmap` of anonymous memory, files and file descriptors,
 * with `msync`, `mprotect`, `madvise` and `mlock` on top, and views that are
 * detached when the mapping goes away.
 *
 * @example Anonymous shared memory
 * ```ts
 * import { Mapping } from "@shmkit/shmkit";
 * using mapping = Mapping.anonymous(4096);
 * const bytes = mapping.view();
 * bytes[0] = 42;
 * ```
 *
 * @module
 */
import { check } from "../core/errors.ts";
import { backend, unsafeLibc } from "../ffi/libc.ts";
import { checkMapped, openFile, requireRegular, statFd } from "../core/_io.ts";
import { MappedMemory, pageSize, roundUpToPage, setRegion } from "../core/memory.ts";
import { ClosedError } from "../core/errors.ts";
import { platform } from "../platform/mod.ts";
import { Region } from "../core/_region.ts";
import {
  checkBoolean,
  checkChoice,
  checkFd,
  checkInteger,
  checkOptions,
  checkSize,
} from "../core/_validate.ts";

const C = platform.constants;

/** Options of {@linkcode Mapping.anonymous}. */
export interface AnonymousMappingOptions {
  /** MAP_SHARED (default, shared with children that inherit it) or MAP_PRIVATE. */
  readonly shared?: boolean;
  /** MAP_POPULATE: fault every page in now. */
  readonly populate?: boolean;
  /** MAP_NORESERVE: don't reserve swap; a later write may then fail with SIGBUS-free OOM. */
  readonly noReserve?: boolean;
}

/** Options of {@linkcode Mapping.file} and {@linkcode Mapping.fromFd}. */
export interface FileMappingOptions {
  /** Byte offset into the file; a multiple of the page size (default 0). */
  readonly offset?: number;
  /** Bytes to map (default: from `offset` to the end of the file). */
  readonly length?: number;
  /**
   * Map for reading only (default false). The mapping is then private and
   * copy-on-write: it shows the file, and a write through a view stays in
   * this process instead of crashing it.
   */
  readonly readOnly?: boolean;
  /** MAP_SHARED (default) or MAP_PRIVATE for a writable mapping. */
  readonly shared?: boolean;
}

/** Access a mapping allows, for {@linkcode Mapping.protect}. */
export type Access = "read-write" | "read" | "none";

/** The advice values of {@linkcode Mapping.advise}, named after MADV_*. */
export type Advice =
  | "normal"
  | "random"
  | "sequential"
  | "willneed"
  | "dontneed"
  | "free"
  | "remove"
  | "dontfork"
  | "dofork"
  | "hugepage"
  | "nohugepage"
  | "dontdump"
  | "dodump";

const ADVICE: Readonly<Record<Advice, number>> = {
  normal: C.MADV_NORMAL,
  random: C.MADV_RANDOM,
  sequential: C.MADV_SEQUENTIAL,
  willneed: C.MADV_WILLNEED,
  dontneed: C.MADV_DONTNEED,
  free: C.MADV_FREE,
  remove: C.MADV_REMOVE,
  dontfork: C.MADV_DONTFORK,
  dofork: C.MADV_DOFORK,
  hugepage: C.MADV_HUGEPAGE,
  nohugepage: C.MADV_NOHUGEPAGE,
  dontdump: C.MADV_DONTDUMP,
  dodump: C.MADV_DODUMP,
};

// The Deno and Node backends turn each 64-bit argument into a BigInt per call
// and pass a BigInt through as is: the whole-mapping range is converted once
// (bench/ffi_bench.ts).
type Wide = number | bigint;
const wholeMadvise = unsafeLibc.madvise as (address: Wide, length: Wide, advice: number) => number;
function wholeArguments(region: Region): readonly [Wide, Wide] {
  return backend.runtime !== "bun"
    ? [BigInt(region.address), BigInt(region.length)]
    : [region.address, region.length];
}

// A Map lookup needs no own-property check (advice could be "toString").
const ADVICE_VALUES: ReadonlyMap<string, number> = new Map(Object.entries(ADVICE));

const ACCESS: Readonly<Record<Access, number>> = {
  "read-write": C.PROT_READ | C.PROT_WRITE,
  read: C.PROT_READ,
  none: C.PROT_NONE,
};

/** A byte range within a mapping; the start must be page-aligned. */
export interface MappingRange {
  /** Start, a multiple of the page size (default 0). */
  readonly byteOffset?: number;
  /** Length (default: to the end). */
  readonly byteLength?: number;
}

/** Options of {@linkcode Mapping.sync}. */
export interface SyncOptions extends MappingRange {
  /** MS_ASYNC instead of MS_SYNC (default false). */
  readonly async?: boolean;
  /** MS_INVALIDATE too (default false). */
  readonly invalidate?: boolean;
}

interface MapRequest {
  readonly length: number;
  readonly prot: number;
  readonly flags: number;
  readonly fd: number;
  readonly offset: number;
  readonly shared: boolean;
  readonly readOnly: boolean;
  readonly path?: string;
}

/**
 * A range of memory mapped with `mmap(2)`: anonymous, or backed by a file or
 * a file descriptor. Close it (or `using` it) to unmap; views handed out are
 * detached then.
 *
 * A read-only mapping is private and copy-on-write, so a write through its
 * views changes only this process's copy: no view this class hands out can
 * crash the process by writing.
 */
export class Mapping extends MappedMemory {
  #region: Region;
  #access: Access = "read-write";
  readonly #shared: boolean;
  readonly #readOnly: boolean;
  readonly #source: string;

  private constructor(address: number, request: MapRequest) {
    super();
    this.#shared = request.shared && !request.readOnly;
    this.#readOnly = request.readOnly;
    this.#source = request.path !== undefined
      ? `file ${JSON.stringify(request.path)}`
      : request.fd >= 0
      ? `fd ${request.fd}`
      : "anonymous";
    this.#region = new Region(
      this,
      address,
      request.length,
      roundUpToPage(request.length),
      "munmap",
      request.fd >= 0,
    );
    setRegion(this, this.#region);
  }

  /** Whether writes reach the file or object and other processes (MAP_SHARED). */
  get shared(): boolean {
    return this.#shared;
  }

  /** Whether this mapping was made read-only (private copy-on-write). */
  get readOnly(): boolean {
    return this.#readOnly;
  }

  /** `Mapping(anonymous, 4096 bytes)`, `Mapping(file "/tmp/x", 8192 bytes, read-only)`. */
  override toString(): string {
    return `Mapping(${this.#source}, ${this.#region.length} bytes${
      this.#readOnly ? ", read-only" : ""
    }${this.closed ? ", closed" : ""})`;
  }

  /** "mapping", for error messages. */
  protected get kind(): string {
    return "mapping";
  }

  static #map(request: MapRequest): Mapping {
    const address = checkMapped(
      unsafeLibc.mmap(0, request.length, request.prot, request.flags, request.fd, request.offset),
      request.length,
      request.path === undefined
        ? (request.fd >= 0 ? { fd: request.fd } : {})
        : { path: request.path, fd: request.fd },
    );
    return new Mapping(address, request);
  }

  /**
   * Maps anonymous memory: `mmap(NULL, length, PROT_READ|PROT_WRITE,
   * MAP_SHARED|MAP_ANONYMOUS, -1, 0)`. The memory starts zeroed.
   *
   * @example
   * ```ts
   * import { Mapping } from "@shmkit/shmkit";
   * using mapping = Mapping.anonymous(1 << 20, { shared: false });
   * mapping.view(Float64Array)[0] = 1.5;
   * ```
   *
   * @param length Bytes to map, 1 or more.
   * @throws {RangeError} When `length` is not a positive integer.
   * @throws {ErrnoError} `mmap` with ENOMEM when there is no room.
   */
  static anonymous(length: number, options?: AnonymousMappingOptions): Mapping {
    checkSize(length, "length");
    const o = checkOptions(options, "options");
    const shared = checkBoolean(o.shared, "shared", true);
    let flags = (shared ? C.MAP_SHARED : C.MAP_PRIVATE) | C.MAP_ANONYMOUS;
    if (checkBoolean(o.populate, "populate", false)) flags |= C.MAP_POPULATE;
    if (checkBoolean(o.noReserve, "noReserve", false)) flags |= C.MAP_NORESERVE;
    return Mapping.#map({
      length,
      prot: C.PROT_READ | C.PROT_WRITE,
      flags,
      fd: -1,
      offset: 0,
      shared,
      readOnly: false,
    });
  }

  /**
   * Maps a file: opens it (O_RDWR, or O_RDONLY when `readOnly`; O_CLOEXEC),
   * maps it and closes the fd, which the mapping does not need.
   *
   * A mapping past the end of the file is refused: touching those pages
   * would be SIGBUS, which kills the runtime. So is anything but a regular
   * file (a FIFO, socket, device or directory), without blocking on a FIFO.
   *
   * @example
   * ```ts
   * import { Mapping } from "@shmkit/shmkit";
   * const path = Deno.makeTempFileSync();
   * Deno.writeTextFileSync(path, "hello");
   * using mapping = Mapping.file(path, { readOnly: true });
   * console.log(new TextDecoder().decode(mapping.view()));
   * Deno.removeSync(path);
   * ```
   *
   * @param path The file.
   * @throws {TypeError} When `path` is not a string or has a NUL.
   * @throws {RangeError} When the offset is not page-aligned or the range runs past the end of the file.
   * @throws {Error} When `path` is not a regular file.
   * @throws {ErrnoError} `open`, `fstat` or `mmap` failing (ENOENT, EACCES, ENXIO for a socket, ...).
   */
  static file(path: string, options?: FileMappingOptions): Mapping {
    const o = checkOptions(options, "options");
    const readOnly = checkBoolean(o.readOnly, "readOnly", false);
    if (typeof path !== "string") {
      throw new TypeError(`Cannot map a file: expected a path string, got ${typeof path}`);
    }
    // O_NONBLOCK so a FIFO can't block the open; requireRegular clears it again.
    const fd = openFile(path, (readOnly ? C.O_RDONLY : C.O_RDWR) | C.O_NONBLOCK);
    requireRegular(fd, "mappable file", path);
    try {
      return Mapping.#mapFd(fd, o, path);
    } finally {
      unsafeLibc.close(fd);
    }
  }

  /**
   * Maps an open file descriptor. The fd stays open and yours to close.
   *
   * @param fd A file descriptor open for reading (and writing unless `readOnly`).
   * @throws {RangeError} When the fd, offset or length is invalid, or the range runs past the end.
   * @throws {ErrnoError} `fstat` with EBADF for a closed fd; `mmap` with EACCES for a mode mismatch.
   */
  static fromFd(fd: number, options?: FileMappingOptions): Mapping {
    checkFd(fd);
    return Mapping.#mapFd(fd, checkOptions(options, "options"));
  }

  static #mapFd(fd: number, o: Partial<FileMappingOptions>, path?: string): Mapping {
    const readOnly = checkBoolean(o.readOnly, "readOnly", false);
    const shared = checkBoolean(o.shared, "shared", true);
    const offset = checkInteger(o.offset ?? 0, "offset", 0);
    if (offset % pageSize() !== 0) {
      throw new RangeError(
        `Cannot map at offset ${offset}: it must be a multiple of the page size (${pageSize()})`,
      );
    }
    const status = statFd(fd, path);
    const where = path === undefined ? `fd ${fd}` : JSON.stringify(path);
    let length: number;
    if (o.length === undefined) {
      length = status.size - offset;
      if (length <= 0) {
        throw new RangeError(
          `Cannot map ${where} at offset ${offset}: the file has ${status.size} bytes, nothing to map`,
        );
      }
    } else {
      length = checkSize(o.length, "length");
    }
    if (status.isFile && offset + length > status.size) {
      throw new RangeError(
        `Cannot map ${length} bytes at offset ${offset} of ${where}: the file has ${status.size} bytes, and touching pages past its end is SIGBUS; grow it first`,
      );
    }
    return Mapping.#map({
      length,
      // Read-only means private copy-on-write: writable pages that never reach the file.
      prot: C.PROT_READ | C.PROT_WRITE,
      flags: readOnly || !shared ? C.MAP_PRIVATE : C.MAP_SHARED,
      fd,
      offset,
      shared,
      readOnly,
      ...(path === undefined ? {} : { path }),
    });
  }

  /** The access `protect()` last set (initially "read-write"). */
  get access(): Access {
    return this.#access;
  }

  /** Refuses views unless the access is "read-write". */
  protected override checkViewable(): void {
    if (this.#access !== "read-write") {
      throw new TypeError(
        `Cannot create a view: the mapping's access is "${this.#access}"; views need "read-write" (call protect("read-write") first)`,
      );
    }
  }

  #whole: readonly [Wide, Wide] | undefined;

  #live(action: string): Region {
    if (this.#region.released) throw new ClosedError(action, "mapping");
    return this.#region;
  }

  #range(region: Region, range: MappingRange | undefined, action: string): [number, number] {
    if (range === undefined) return [region.address, region.length];
    const o = checkOptions(range, "range");
    const start = checkInteger(o.byteOffset ?? 0, "byteOffset", 0, region.length);
    if (start % pageSize() !== 0) {
      throw new RangeError(
        `Cannot ${action} from byteOffset ${start}: it must be a multiple of the page size (${pageSize()})`,
      );
    }
    const length = o.byteLength === undefined
      ? region.length - start
      : checkInteger(o.byteLength, "byteLength", 0, region.length - start);
    return [region.address + start, length];
  }

  /**
   * Flushes changes to the file: `msync(addr, length, MS_SYNC)`.
   *
   * @throws {ClosedError} When the mapping is closed.
   * @throws {ErrnoError} `msync` failing.
   */
  sync(options?: SyncOptions): void {
    const region = this.#live("msync");
    const o = checkOptions(options, "options");
    const [address, length] = this.#range(region, o, "msync");
    let flags = checkBoolean(o.async, "async", false) ? C.MS_ASYNC : C.MS_SYNC;
    if (checkBoolean(o.invalidate, "invalidate", false)) flags |= C.MS_INVALIDATE;
    check(unsafeLibc.msync(address, length, flags), "msync");
  }

  /**
   * Changes the access: `mprotect(addr, length, prot)`.
   *
   * Lowering access below "read-write" detaches every view first, since a
   * write (or, for "none", a read) through one would kill the process; new
   * views are refused until access is "read-write" again. It is refused if a
   * view's buffer was transferred away, because that alias can't be
   * detached.
   *
   * @throws {RangeError} For an unknown access.
   * @throws {Error} When a view escaped through `ArrayBuffer.prototype.transfer`.
   * @throws {ErrnoError} `mprotect` failing.
   */
  protect(access: Access): void {
    const region = this.#live("mprotect");
    checkChoice(access, "access", Object.keys(ACCESS) as Access[]);
    if (access !== "read-write" && !region.detachAll()) {
      throw new Error(
        `Cannot mprotect to "${access}": a view's buffer was transferred away, and a write through it would crash the process`,
      );
    }
    check(unsafeLibc.mprotect(region.address, region.mappedLength, ACCESS[access]), "mprotect");
    this.#access = access;
  }

  /**
   * Advises the kernel how the memory will be used: `madvise(addr, length,
   * MADV_*)`. "dontneed" and "remove" discard contents.
   *
   * @throws {RangeError} For unknown advice or an unaligned range.
   * @throws {ErrnoError} `madvise` failing (EINVAL when the kernel lacks that advice).
   */
  advise(advice: Advice, range?: MappingRange): void {
    const region = this.#live("madvise");
    const value = ADVICE_VALUES.get(advice);
    if (value === undefined) checkChoice(advice, "advice", Object.keys(ADVICE));
    // The whole mapping without a tuple: this call is often in a loop (measured in bench/ffi_bench.ts).
    let result: number;
    if (range === undefined) {
      const whole = this.#whole ??= wholeArguments(region);
      result = wholeMadvise(whole[0], whole[1], value!);
    } else {
      const [address, length] = this.#range(region, range, "madvise");
      result = unsafeLibc.madvise(address, length, value!);
    }
    if (result === -1) check(result, "madvise");
  }

  /**
   * Locks the pages in RAM: `mlock(addr, length)`.
   *
   * @throws {ErrnoError} `mlock` with ENOMEM or EPERM over RLIMIT_MEMLOCK.
   */
  lock(range?: MappingRange): void {
    const region = this.#live("mlock");
    const [address, length] = this.#range(region, range, "mlock");
    check(unsafeLibc.mlock(address, length), "mlock", {}, {
      ENOMEM: "over RLIMIT_MEMLOCK; raise it (ulimit -l) or lock less",
      EPERM: "locking needs CAP_IPC_LOCK or a non-zero RLIMIT_MEMLOCK",
      EAGAIN: "some pages could not be locked",
    });
  }

  /**
   * Unlocks the pages: `munlock(addr, length)`.
   *
   * @throws {ErrnoError} `munlock` failing.
   */
  unlock(range?: MappingRange): void {
    const region = this.#live("munlock");
    const [address, length] = this.#range(region, range, "munlock");
    check(unsafeLibc.munlock(address, length), "munlock");
  }

  /**
   * Unmaps: detaches every view, then `munmap`. Idempotent.
   *
   * @throws {ErrnoError} `munmap` failing (not expected).
   */
  close(): void {
    this.#region.release();
  }
}

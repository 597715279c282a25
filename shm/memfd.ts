/**
 * Anonymous, sealable shared memory (Linux `memfd_create`):
 * {@linkcode Memfd}. It has no name in /dev/shm, so it can't leak: the
 * memory goes when the last fd and mapping are gone. It is shared by
 * handing the fd to a child process, and seals make promises a peer can't
 * break: "shrink" means nobody can truncate it under a mapping (the SIGBUS
 * that would kill the runtime), "write" that nobody can change it any more.
 *
 * A process that receives such an fd checks it with {@linkcode Memfd.fromFd}
 * before mapping: seals and size, as Chromium's Mojo does.
 *
 * @example Write, then seal, then hand to a child
 * ```ts
 * import { Memfd } from "@shmkit/shmkit";
 * using memory = Memfd.create({ size: 4096, seals: ["shrink", "grow"] });
 * memory.view()[0] = 1;
 * memory.addSeals(["write", "seal"]); // read-only from now on, for everyone
 * console.log(memory.fd, memory.seals);
 * ```
 *
 * @module
 */
import { platform } from "../platform/mod.ts";
import { FdMemory, type FdMemoryInit } from "./fd_memory.ts";
import {
  addSeals,
  fdFlags,
  fstat,
  ftruncate,
  getSeals,
  memfdCreate,
  memfdUnsupportedReason,
  posixFallocate,
} from "./raw.ts";
import { ErrnoError } from "../core/errors.ts";
import { checkBacking } from "./_backing.ts";
import { unsafeLibc } from "../ffi/libc.ts";
import { typeName } from "../ffi/pointer.ts";
import { checkBoolean, checkChoice, checkFd, checkOptions, checkSize } from "../core/_validate.ts";

const C = platform.constants;

/**
 * A seal (`F_SEAL_*`):
 * - "shrink": the size can't go down (no peer can cause a SIGBUS);
 * - "grow": the size can't go up;
 * - "write": the contents can't change (needs every writable shared mapping gone);
 * - "future-write": no new writable mappings or write(2); existing mappings keep writing;
 * - "seal": no more seals can be added.
 */
export type Seal = "shrink" | "grow" | "write" | "future-write" | "seal";

const SEAL_BITS: Readonly<Record<Seal, number>> = {
  shrink: C.F_SEAL_SHRINK,
  grow: C.F_SEAL_GROW,
  write: C.F_SEAL_WRITE,
  "future-write": C.F_SEAL_FUTURE_WRITE,
  seal: C.F_SEAL_SEAL,
};
const SEALS = Object.keys(SEAL_BITS) as Seal[];

function sealBits(seals: unknown, what: string): number {
  if (!Array.isArray(seals)) {
    throw new TypeError(
      `Cannot use ${what}: expected an array of seal names, got ${typeName(seals)}`,
    );
  }
  let bits = 0;
  for (const seal of seals) bits |= SEAL_BITS[checkChoice(seal, "seal", SEALS)];
  return bits;
}

function sealNames(bits: number): Seal[] {
  return SEALS.filter((seal) => (bits & SEAL_BITS[seal]) !== 0);
}

/** Options of {@linkcode Memfd.create}. */
export interface MemfdCreateOptions {
  /** A label, shown in /proc/PID/fd as "/memfd:NAME" (default "shmkit"); at most 249 bytes. */
  readonly name?: string;
  /** Size in bytes, 1 or more. */
  readonly size: number;
  /**
   * Seals to add once the memory is sized and mapped. "write" remaps this
   * process's view read-only, so it makes a zero-filled read-only memfd:
   * usually you write first, then {@linkcode Memfd.addSeals}(["write"]).
   */
  readonly seals?: readonly Seal[];
  /**
   * Reserve the space now with `posix_fallocate` (default true), so running
   * out of memory is ENOSPC here, not a SIGBUS at first touch.
   */
  readonly reserve?: boolean;
}

/** Options of {@linkcode Memfd.fromFd}. */
export interface MemfdFromFdOptions {
  /** Refuse an fd whose object is smaller than this many bytes (default 1). */
  readonly minSize?: number;
  /**
   * Refuse an fd that lacks any of these seals (default ["shrink"]: without
   * it, the sender could truncate the memory under this process's mapping,
   * and the next touch would kill it with SIGBUS). Pass [] to accept any fd,
   * a POSIX shm fd included.
   */
  readonly requireSeals?: readonly Seal[];
  /**
   * Map private copy-on-write. Default: true when the fd is open read-only
   * or sealed against writing ("write", "future-write"), false otherwise.
   * Passing false for such an fd throws.
   */
  readonly readOnly?: boolean;
}

/**
 * An anonymous memory file (`memfd_create`, Linux), mapped whole; created
 * with MFD_CLOEXEC | MFD_ALLOW_SEALING. It is never in /dev/shm, so nothing
 * is left behind whatever way the process ends.
 *
 * Sealing "write" while this process maps it writable would fail with EBUSY
 * (the kernel refuses F_SEAL_WRITE while any writable shared mapping
 * exists), so {@linkcode Memfd.addSeals} remaps this process's memory
 * read-only first: views are detached, take new ones. A writable mapping in
 * another process still makes it fail with EBUSY.
 *
 * @example Check an fd handed over by another process before mapping it
 * ```ts
 * import { Memfd } from "@shmkit/shmkit";
 * import { unsafeLibc } from "@shmkit/shmkit/raw";
 * using sender = Memfd.create({ size: 4096, seals: ["shrink", "grow"] });
 * sender.view()[0] = 7;
 * // A child would receive the fd from spawn(); a dup stands in for it here.
 * using received = Memfd.fromFd(unsafeLibc.dup(sender.fd), {
 *   minSize: 4096,
 *   requireSeals: ["shrink", "grow"],
 * });
 * if (received.view()[0] !== 7) throw new Error("not the same memory");
 * ```
 */
export class Memfd extends FdMemory {
  readonly #name: string;

  private constructor(init: FdMemoryInit & { readonly name: string }) {
    super(init);
    this.#name = init.name;
  }

  /** The label given at creation ("" for one received with `fromFd`). */
  get name(): string {
    return this.#name;
  }

  /** `Memfd("frames", 4096 bytes)`; the fd for one received with `fromFd`. */
  override toString(): string {
    const what = this.#name === ""
      ? `fd ${this.closed ? "closed" : this.fd}`
      : JSON.stringify(this.#name);
    return `Memfd(${what}, ${this.byteLength} bytes${this.readOnly ? ", read-only" : ""}${
      this.closed ? ", closed" : ""
    })`;
  }

  /** "memfd", for error messages. */
  protected get kind(): string {
    return "memfd";
  }

  /** How this object is named in error messages. */
  protected get label(): string {
    return this.#name === "" ? `memfd (fd ${this.fd})` : `memfd ${JSON.stringify(this.#name)}`;
  }

  /** Whether this platform has memfd (Linux 3.17+, glibc 2.27+). */
  static get supported(): boolean {
    return memfdUnsupportedReason() === undefined;
  }

  /**
   * Creates a memfd of `size` bytes and maps it shared: `memfd_create(name,
   * MFD_CLOEXEC|MFD_ALLOW_SEALING)`, `ftruncate`, `posix_fallocate`, `mmap`,
   * then `fcntl(F_ADD_SEALS)` for `seals`.
   *
   * @example
   * ```ts
   * import { Memfd } from "@shmkit/shmkit";
   * using memory = Memfd.create({ name: "frames", size: 1 << 20, seals: ["shrink"] });
   * memory.view(Float32Array)[0] = 0.5;
   * ```
   *
   * @throws {Error} When this platform has no memfd ("not supported on this platform").
   * @throws {TypeError} For options of the wrong type.
   * @throws {RangeError} For a bad size, name or seal name.
   * @throws {ErrnoError} `memfd_create` (EMFILE), `posix_fallocate` (ENOSPC), `mmap` (ENOMEM),
   * `fcntl(F_ADD_SEALS)`. A size beyond the memory left (ENOMEM) or RLIMIT_FSIZE (EFBIG) is
   * refused before anything is allocated: a memfd has no filesystem limit of its own.
   */
  static create(options: MemfdCreateOptions): Memfd {
    const reason = memfdUnsupportedReason();
    if (reason !== undefined) throw new Error(`Cannot create a memfd: ${reason}`);
    const o = checkOptions(options, "options");
    const name = o.name ?? "shmkit";
    const size = checkSize(o.size, "size");
    const seals = o.seals === undefined ? 0 : sealBits(o.seals, "seals");
    const reserve = checkBoolean(o.reserve, "reserve", true);
    const fd = memfdCreate(name, C.MFD_CLOEXEC | C.MFD_ALLOW_SEALING);
    let memory: Memfd;
    try {
      checkBacking({
        syscall: reserve ? "posix_fallocate" : "ftruncate",
        fd,
        size,
        allocate: reserve ? size : 0,
      });
      if (reserve) posixFallocate(fd, 0, size); // sets the size too
      else ftruncate(fd, size);
      memory = new Memfd({ fd, name, length: size, readOnly: false, reserve: true });
    } catch (error) {
      unsafeLibc.close(fd);
      throw error;
    }
    if (seals !== 0) {
      try {
        memory.#seal(seals);
      } catch (error) {
        memory.close();
        throw error;
      }
    }
    return memory;
  }

  /**
   * Maps an fd this process received (from a parent, over a socket), after
   * checking it as an untrusted peer's: `fstat` (a regular file at least
   * `minSize` bytes), `fcntl(F_GET_SEALS)` (every seal in `requireSeals`),
   * `fcntl(F_GETFL)` (access). On success the Memfd owns the fd and closes
   * it on `close()`; on failure the fd is left open and yours.
   *
   * @example Refuse an fd a peer could shrink under us
   * ```ts
   * import { Memfd } from "@shmkit/shmkit";
   * import { unsafeLibc } from "@shmkit/shmkit/raw";
   * using unsealed = Memfd.create({ size: 65536 });
   * const fd = unsafeLibc.dup(unsealed.fd);
   * try {
   *   Memfd.fromFd(fd, { minSize: 65536 }); // requires the "shrink" seal by default
   *   throw new Error("accepted an unsealed fd");
   * } catch (error) {
   *   if (!String(error).includes("shrink")) throw error;
   * } finally {
   *   unsafeLibc.close(fd); // fromFd leaves the fd to the caller when it refuses it
   * }
   * ```
   *
   * @param fd The received file descriptor.
   * @throws {RangeError} For a bad fd number or minSize, or an object smaller than `minSize`.
   * @throws {Error} When the fd lacks a required seal, is not a memory object, or is
   * `readOnly: false` but can't be written.
   * @throws {ErrnoError} `fstat` with EBADF when the fd is not open.
   */
  static fromFd(fd: number, options?: MemfdFromFdOptions): Memfd {
    checkFd(fd);
    const o = checkOptions(options, "options");
    const minSize = checkSize(o.minSize ?? 1, "minSize");
    const required = sealBits(o.requireSeals ?? ["shrink"], "requireSeals");
    const wantReadOnly = o.readOnly === undefined
      ? undefined
      : checkBoolean(o.readOnly, "readOnly", false);

    const status = fstat(fd);
    if (!status.isFile) {
      throw new Error(`Cannot map fd ${fd}: it is not a memory object (not a regular file)`);
    }
    let seals = 0;
    try {
      seals = getSeals(fd);
    } catch (error) {
      // EINVAL: the fd can't carry seals at all; acceptable only when none is required.
      if (!(error instanceof ErrnoError && error.code === "EINVAL")) throw error;
      if (required !== 0) {
        throw new Error(
          `Cannot map fd ${fd}: it can't carry seals (not a memfd), and ${
            JSON.stringify(sealNames(required))
          } are required; pass requireSeals: [] to accept it unsealed`,
        );
      }
    }
    const missing = sealNames(required & ~seals);
    if (missing.length > 0) {
      throw new Error(
        `Cannot map fd ${fd}: it lacks the seals ${JSON.stringify(missing)} (it has ${
          JSON.stringify(sealNames(seals))
        })${
          missing.includes("shrink")
            ? '; without "shrink" the sender could truncate it and this process would die of SIGBUS'
            : ""
        }; ask the sender to addSeals(), or relax requireSeals`,
      );
    }
    if (status.size < minSize) {
      throw new RangeError(
        `Cannot map fd ${fd}: its object has ${status.size} bytes, fewer than minSize ${minSize}`,
      );
    }
    const writable = (fdFlags(fd) & C.O_ACCMODE) === C.O_RDWR &&
      (seals & (C.F_SEAL_WRITE | C.F_SEAL_FUTURE_WRITE)) === 0;
    if (wantReadOnly === false && !writable) {
      throw new Error(
        `Cannot map fd ${fd} writable: it is open read-only or sealed against writing; use readOnly: true`,
      );
    }
    return new Memfd({
      fd,
      name: "",
      length: status.size,
      readOnly: wantReadOnly ?? !writable,
      reserve: true,
    });
  }

  /**
   * The seals set on the memfd: `fcntl(F_GET_SEALS)`.
   *
   * @throws {ClosedError} When closed.
   * @throws {ErrnoError} `fcntl` failing.
   */
  get seals(): Seal[] {
    return sealNames(getSeals(this.fd));
  }

  /**
   * Adds seals: `fcntl(F_ADD_SEALS)`. Adding "write" first remaps this
   * process's memory read-only (private copy-on-write), detaching every view,
   * since the kernel refuses it (EBUSY) while a writable shared mapping
   * exists; if the seal still fails, the writable mapping is restored.
   *
   * @example
   * ```ts
   * import { Memfd } from "@shmkit/shmkit";
   * using memory = Memfd.create({ size: 4096 });
   * memory.view().set([1, 2, 3]);
   * memory.addSeals(["shrink", "grow", "write"]);
   * console.log(memory.readOnly, memory.view()[2]); // true 3
   * ```
   *
   * @throws {TypeError} When `seals` is not an array.
   * @throws {RangeError} For an unknown seal name.
   * @throws {ClosedError} When closed.
   * @throws {ErrnoError} `fcntl(F_ADD_SEALS)`: EPERM ("seal" set already), EBUSY (another
   * process maps it writable).
   */
  addSeals(seals: readonly Seal[]): void {
    const bits = sealBits(seals, "seals");
    this.#seal(bits);
  }

  #seal(bits: number): void {
    const fd = this.fd;
    if ((bits & C.F_SEAL_WRITE) !== 0 && !this.readOnly) {
      this.remap(true, () => addSeals(fd, bits));
      return;
    }
    addSeals(fd, bits);
  }
}

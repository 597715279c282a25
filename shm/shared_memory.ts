/**
 * POSIX named shared memory: {@linkcode SharedMemory}, an object in
 * /dev/shm that unrelated processes (Deno, Bun, Python, C) open by name,
 * mapped and seen through views that are detached when it is closed.
 *
 * - Created exclusively (O_EXCL), mode 0o600, with an unguessable name when
 *   none is given; space reserved up front (`posix_fallocate`), so a full
 *   /dev/shm is an ENOSPC error at create, never a SIGBUS later.
 * - Objects this process created are unlinked when it ends, however it ends
 *   (in process at a normal exit, by shmkit's cleaner process after a signal
 *   or crash; see shm/cleanup.ts), unless created with `persist: true`;
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
import { registerRemoval, unregisterCleanup } from "./cleanup.ts";
import { check, ErrnoError } from "../core/errors.ts";
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { type FdStat, requireRegular, statFd } from "../core/_io.ts";
import { fchmod, ftruncate, posixFallocate, shmOpenHints, shmUnlink } from "./raw.ts";
import { FdMemory, type FdMemoryInit } from "./fd_memory.ts";
import { roundUpToPage } from "../core/memory.ts";
import { openOrCreate, type SharedMemoryOpenOrCreateOptions } from "./_open_or_create.ts";
import { checkBacking, needsBackingCheck } from "./_backing.ts";
import {
  nameArgumentOf,
  randomShmName,
  SHM_DIR,
  type ShmName,
  shmName,
  unlinkIfSame,
} from "./_names.ts";
import { checkBoolean, checkMode, checkOptions, checkSize } from "../core/_validate.ts";
import { recordCreator } from "./_creator.ts";
import { listObjects } from "./_list.ts";
import type {
  SharedMemoryCreateOptions,
  SharedMemoryInfo,
  SharedMemoryListOptions,
  SharedMemoryOpenOptions,
} from "./_shm_types.ts";

const C = platform.constants;

export type { SharedMemoryOpenOrCreateOptions } from "./_open_or_create.ts";
export type {
  SharedMemoryCreateOptions,
  SharedMemoryInfo,
  SharedMemoryListOptions,
  SharedMemoryOpenOptions,
} from "./_shm_types.ts";

// FdMemory's init too (path and filesystem included), so it is passed on as is.
interface SharedMemoryInit extends FdMemoryInit {
  readonly name: ShmName;
  readonly path: string;
  readonly created: boolean;
  readonly persist: boolean;
  readonly identity: FdStat;
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
 * - When the process ends, however (normal exit, uncaught error, any
 *   signal, SIGKILL: the last ones through shmkit's cleaner process, on
 *   Linux), objects it created and didn't persist are unlinked; never ones
 *   it only opened. Find other leftovers with {@linkcode SharedMemory.list}.
 *
 * @example Create, and attach from elsewhere
 * ```ts
 * import { SharedMemory } from "@shmkit/shmkit";
 * using shm = SharedMemory.create({ size: 1 << 20 });
 * shm.view()[0] = 1;
 * console.log(shm.name); // e.g. "/shmkit-…": pass it to the other process
 * using peer = SharedMemory.open(shm.name);
 * console.log(peer.view()[0]); // 1
 * ```
 */
export class SharedMemory extends FdMemory {
  // Identity is private, with getters only: an assigned name must not make
  // unlink() remove another object.
  readonly #created: boolean;
  readonly #persist: boolean;
  readonly #name: ShmName;
  readonly #dev: number;
  readonly #ino: number;
  // The cleanup task's key, built once at create (none for objects never removed).
  #cleanupKey: string | undefined;
  #unlinked = false;
  #recordPending = false;

  // Creator records of objects the cleaner removes anyway (persist false) are
  // written at the end of the job, or before chmod/chown/close, whichever
  // comes first: one disposed in the job that created it never needs one.
  // An array, not a Set (no identity hash per object); a cancel pops the
  // newest, so a create/dispose loop keeps it empty.
  static #pending: SharedMemory[] = [];
  static #flushQueued = false;

  private constructor(init: SharedMemoryInit) {
    super(init);
    this.#name = init.name;
    this.#created = init.created;
    this.#persist = init.persist;
    this.#dev = init.identity.dev;
    this.#ino = init.identity.ino;
  }

  /** The object's name, with its leading "/". */
  get name(): string {
    return this.#name.name;
  }

  /** Whether this process created the object (rather than opened it). */
  get created(): boolean {
    return this.#created;
  }

  /**
   * Whether this process leaves the object in place at exit and on dispose:
   * true when it was created with `persist: true`, and for every object this
   * process only opened.
   */
  get persist(): boolean {
    return this.#persist;
  }

  /** `SharedMemory("/name", 4096 bytes)`. */
  override toString(): string {
    return `SharedMemory(${JSON.stringify(this.#name.name)}, ${this.byteLength} bytes${
      this.readOnly ? ", read-only" : ""
    }${this.closed ? ", closed" : ""})`;
  }

  /** "shared memory object", for error messages. */
  protected get kind(): string {
    return "shared memory object";
  }

  /** How this object is named in error messages. */
  protected get label(): string {
    return JSON.stringify(this.#name.name);
  }

  static #keyOf(name: string): string {
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
   * Sizes that can't be backed are refused before shm_open, the hint naming the limit: ENOMEM
   * (more than MemAvailable + SwapFree), ENOSPC (more than /dev/shm's room), EFBIG (over
   * RLIMIT_FSIZE, where growing would end the process with SIGXFSZ).
   */
  static create(options: SharedMemoryCreateOptions): SharedMemory {
    return SharedMemory.#create(options, 0);
  }

  /** create(), with `extra` bytes past the mapped ones (openOrCreate's ready page). */
  static #create(options: SharedMemoryCreateOptions, extra: number): SharedMemory {
    const o = checkOptions(options, "options");
    const name = o.name === undefined ? undefined : shmName(o.name);
    const size = checkSize(o.size, "size");
    const mode = o.mode === undefined ? undefined : checkMode(o.mode);
    const persist = checkBoolean(o.persist, "persist", false);
    const reserve = checkBoolean(o.reserve, "reserve", true);

    const total = extra === 0 ? size : roundUpToPage(size) + extra;
    // Before shm_open: a size that can't be backed leaves nothing behind.
    if (needsBackingCheck(total)) {
      checkBacking({
        syscall: reserve ? "posix_fallocate" : "ftruncate",
        ...(name === undefined ? {} : { path: name.name }),
        size: total,
        allocate: reserve ? total : 0,
        filesystem: SHM_DIR,
      });
    }
    const flags = C.O_CREAT | C.O_EXCL | C.O_RDWR | C.O_CLOEXEC;
    let chosen = name ?? randomShmName();
    let fd = unsafeLibc.shm_open(nameArgumentOf(chosen), flags, mode ?? 0o600);
    // A random name can collide only by accident: draw another.
    for (let tries = 0; fd === -1 && name === undefined && tries < 8; tries++) {
      if (errno() !== platform.errno.EEXIST) break;
      chosen = randomShmName();
      fd = unsafeLibc.shm_open(chosen.c, flags, mode ?? 0o600);
    }
    if (fd === -1) check(fd, "shm_open", { path: chosen.name }, shmOpenHints(chosen.name));

    // openOrCreate's waiters read the record at once; persist objects outlive the cleaner.
    const recordNow = persist || extra !== 0 || mode !== undefined;
    let identity: FdStat;
    try {
      if (recordNow) recordCreator(fd); // best-effort, for `shmkit gc`; before a mode without write
      if (mode !== undefined) fchmod(fd, mode); // the umask must not narrow an explicit mode
      // posix_fallocate sets the size as it reserves; ftruncate only when not reserving.
      if (reserve) posixFallocate(fd, 0, total);
      else ftruncate(fd, total);
      identity = statFd(fd);
    } catch (error) {
      unsafeLibc.close(fd);
      unsafeLibc.shm_unlink(chosen.c);
      if (error instanceof ErrnoError && error.code === "ENOSPC") {
        throw new ErrnoError(error.syscall, error.errno, {
          path: chosen.name,
          hint: `/dev/shm has no room for ${total} bytes; the object was removed again`,
        });
      }
      throw error;
    }

    let shm: SharedMemory;
    try {
      shm = new SharedMemory({
        fd,
        name: chosen,
        path: chosen.name,
        filesystem: SHM_DIR,
        length: size,
        created: true,
        persist,
        readOnly: false,
        reserve,
        identity,
      });
    } catch (error) {
      unsafeLibc.close(fd);
      unsafeLibc.shm_unlink(chosen.c);
      throw error;
    }
    if (!persist) {
      const { dev, ino } = identity;
      // Captures the name and identity only, so the object stays collectable.
      const target = chosen;
      // In process at a normal exit; by the out-of-process cleaner after any other death.
      const key = shm.#cleanupKey = SharedMemory.#keyOf(target.name);
      registerRemoval(key, () => {
        unlinkIfSame(target, dev, ino);
      }, { kind: "shm", name: target.name, dev, ino });
    }
    if (!recordNow) shm.#deferRecord();
    return shm;
  }

  #deferRecord(): void {
    this.#recordPending = true;
    SharedMemory.#pending.push(this);
    if (SharedMemory.#flushQueued) return;
    SharedMemory.#flushQueued = true;
    queueMicrotask(() => {
      SharedMemory.#flushQueued = false;
      const pending = SharedMemory.#pending;
      SharedMemory.#pending = [];
      for (const shm of pending) shm.#writeRecord();
    });
  }

  /** Writes a deferred creator record now, while the fd is open (best-effort). */
  #writeRecord(): void {
    if (!this.#recordPending) return;
    this.#cancelRecord();
    if (!this.closed) recordCreator(this.fd);
  }

  #cancelRecord(): void {
    this.#recordPending = false;
    const pending = SharedMemory.#pending;
    // Drops cancelled ones from the top, so the array holds no more than the Set did at its top.
    while (pending.length > 0 && !pending[pending.length - 1]!.#recordPending) pending.pop();
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
   * @throws {Error} When the name is not a regular file (a FIFO, socket, device or directory
   * someone made in /dev/shm); the open never blocks on a FIFO.
   * @throws {ErrnoError} `shm_open` with ENOENT (no such name) or EACCES; `mmap` failing.
   */
  static open(name: string, options?: SharedMemoryOpenOptions): SharedMemory {
    const encoded = shmName(name);
    const o = checkOptions(options, "options");
    const readOnly = checkBoolean(o.readOnly, "readOnly", false);
    const wanted = o.size === undefined ? undefined : checkSize(o.size, "size");
    // O_NONBLOCK: a FIFO planted under the name must not block the open.
    const access = (readOnly ? C.O_RDONLY : C.O_RDWR) | C.O_CLOEXEC | C.O_NONBLOCK;
    const fd = unsafeLibc.shm_open(encoded.c, access, 0);
    if (fd === -1) check(fd, "shm_open", { path: name }, shmOpenHints(name));
    const status = requireRegular(fd, "shared memory object", name);
    try {
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
      return new SharedMemory({
        fd,
        name: encoded,
        path: name,
        filesystem: SHM_DIR,
        length: wanted ?? status.size,
        created: false,
        persist: true,
        readOnly,
        reserve: true,
        identity: status,
      });
    } catch (error) {
      unsafeLibc.close(fd);
      throw error;
    }
  }

  /**
   * Opens the object named `name`, creating and initializing it if it does
   * not exist, so that any number of processes can start at once: exactly
   * one runs `init`, and every other waits until it has finished (a futex
   * on a ready word in a page after the `size` bytes). If the initializer
   * dies mid-init, the waiters find out (its pid is in the ready word) and
   * reject instead of waiting on; a timeout and an AbortSignal end the wait
   * too.
   *
   * All processes must pass the same `size`. The object has one page more
   * than `size` rounded up to pages; views cover `size` bytes.
   *
   * @example
   * ```ts
   * import { SharedMemory } from "@shmkit/shmkit";
   * using shm = await SharedMemory.openOrCreate({
   *   name: "/my-app-table",
   *   size: 4096,
   *   init: (fresh) => void fresh.view(Uint32Array).fill(7),
   * });
   * console.log(shm.created, shm.view(Uint32Array)[0]); // true 7 (in the first process)
   * ```
   *
   * @throws {TypeError} For options of the wrong type (`init` not a function).
   * @throws {RangeError} For a bad name, size, mode or timeout; or an existing object smaller
   * than `size` plus the ready page (not made by openOrCreate).
   * @throws {Error} When the initializer died mid-init (the message names its pid; unlink the
   * name and start over), or the timeout passed.
   * @throws {ErrnoError} What `create` and `open` throw.
   */
  static openOrCreate(options: SharedMemoryOpenOrCreateOptions): Promise<SharedMemory> {
    return openOrCreate(options, {
      create: (o, extra) => SharedMemory.#create(o, extra),
      open: (name, size) => SharedMemory.open(name, { size }),
    });
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
    unregisterCleanup(SharedMemory.#keyOf(name));
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
    return listObjects(options);
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
    // Any process may have created it, this one included: the key is the name's.
    unregisterCleanup(this.#cleanupKey ?? SharedMemory.#keyOf(this.#name.name));
    const removed = unlinkIfSame(this.#name, this.#dev, this.#ino);
    this.#cancelRecord(); // the name is gone (or names another object): nothing to record
    return removed;
  }

  /**
   * Changes the permission bits: `fchmod(fd, mode)` (see
   * {@linkcode FdMemory.chmod}).
   *
   * @example
   * ```ts
   * import { SharedMemory } from "@shmkit/shmkit";
   * using shm = SharedMemory.create({ size: 4096 });
   * shm.chmod(0o640);
   * ```
   *
   * @throws {RangeError} For a mode outside 0o0 to 0o7777.
   * @throws {ClosedError} When the object is closed.
   * @throws {ErrnoError} `fchmod` with EPERM when this user is not the owner.
   */
  override chmod(mode: number): void {
    this.#writeRecord(); // while the owner may still write it
    super.chmod(mode);
  }

  /**
   * Changes the owner and group: `fchown(fd, uid, gid)` (see
   * {@linkcode FdMemory.chown}).
   *
   * @example
   * ```ts
   * import { SharedMemory } from "@shmkit/shmkit";
   * using shm = SharedMemory.create({ size: 4096 });
   * shm.chown(-1, -1); // keeps both
   * ```
   *
   * @throws {RangeError} For a bad uid or gid.
   * @throws {ClosedError} When the object is closed.
   * @throws {ErrnoError} `fchown` with EPERM without the privilege.
   */
  override chown(uid: number, gid: number): void {
    this.#writeRecord();
    super.chown(uid, gid);
  }

  /**
   * Unmaps (detaching every view) and closes the fd; the object stays (see
   * {@linkcode FdMemory.close}).
   *
   * @example
   * ```ts
   * import { SharedMemory } from "@shmkit/shmkit";
   * const shm = SharedMemory.create({ size: 4096 });
   * shm.close();
   * SharedMemory.unlink(shm.name);
   * ```
   *
   * @throws {ErrnoError} `munmap` or `close` failing (not expected).
   */
  override close(): void {
    this.#writeRecord(); // the object outlives the fd
    super.close();
  }

  /**
   * Closes; and unlinks too if this process created the object without
   * `persist: true`, so `using` leaks nothing.
   */
  override [Symbol.dispose](): void {
    const removing = this.#created && !this.#persist;
    if (removing && !this.#unlinked) this.#cancelRecord(); // the object goes with the fd
    this.close();
    if (removing) this.unlink();
  }
}

/**
 * Raw POSIX shared memory calls: `shm_open`, `shm_unlink`, `ftruncate`,
 * `fstat`, `fchmod`, `fchown`, `close`, `posix_fallocate`, `memfd_create`
 * and the seal `fcntl`s, one JS function per C call.
 *
 * They check their arguments (TypeError / RangeError before any C call) and
 * throw {@linkcode ErrnoError} when the call fails, and otherwise do exactly
 * what the C call does: no mapping, no cleanup, no size checks. Most
 * programs want {@linkcode SharedMemory} or {@linkcode Memfd} instead.
 *
 * @example Create, size, inspect and remove an object by hand
 * ```ts
 * import { closeFd, fstat, ftruncate, platform, shmOpen, shmUnlink } from "@shmkit/shmkit/raw";
 * const C = platform.constants;
 * const fd = shmOpen("/raw-example", C.O_CREAT | C.O_EXCL | C.O_RDWR, 0o600);
 * ftruncate(fd, 4096);
 * console.log(fstat(fd).size); // 4096
 * closeFd(fd);
 * shmUnlink("/raw-example");
 * ```
 *
 * @module
 */
import { check, checkReturned, type Hints } from "../core/errors.ts";
import { availableSymbols, unsafeLibc } from "../ffi/libc.ts";
import { cString, typeName } from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";
import { checkFd, checkInteger, checkMode } from "../core/_validate.ts";
import { type FdStat, statFd } from "../core/_io.ts";

export { closeFd, type FdStat, statPath } from "../core/_io.ts";

const C = platform.constants;
const encoder = new TextEncoder();

/**
 * The longest shared memory name, in UTF-8 bytes after the leading "/".
 * Linux: NAME_MAX (255; glibc opens `/dev/shm/<name>`, one path component).
 * macOS: 30 (PSHMNAMLEN is 31 bytes, the "/" included).
 */
export function shmNameMaxBytes(): number {
  return platform.os === "darwin" ? 30 : C.NAME_MAX;
}

/**
 * Checks a POSIX shared memory name before any call: a string of one leading
 * "/" and a non-empty rest without "/" or NUL, not "." or "..", within the
 * platform's length limit. Returns the name.
 *
 * @example
 * ```ts
 * import { checkShmName } from "@shmkit/shmkit/raw";
 * checkShmName("/my-app-buffer"); // ok
 * try {
 *   checkShmName("my-app-buffer");
 * } catch (error) {
 *   console.log((error as RangeError).message); // 'Cannot use shared memory name "my-app-buffer": it must start with "/" (e.g. "/my-app-buffer")'
 * }
 * ```
 *
 * @param name The name to check.
 * @param what What the name is called in messages.
 * @throws {TypeError} When `name` is not a string or contains a NUL character.
 * @throws {RangeError} When it lacks the leading "/", is "/" alone, has another "/", is "/." or
 * "/..", or is too long for this platform.
 */
export function checkShmName(name: unknown, what = "shared memory name"): string {
  encodeShmName(name, what);
  return name as string;
}

/**
 * Internal: checks a name as {@linkcode checkShmName} does and returns it as
 * a NUL-terminated C string (encoded once, for every call that needs it).
 */
export function encodeShmName(
  name: unknown,
  what = "shared memory name",
): Uint8Array<ArrayBuffer> {
  if (typeof name !== "string") {
    throw new TypeError(`Cannot use ${what}: expected a string, got ${typeName(name)}`);
  }
  // The quoted name is made only for a message (a closure or string per create otherwise).
  if (name.includes("\0")) {
    throw new TypeError(`Cannot use ${what} ${JSON.stringify(name)}: it contains a NUL character`);
  }
  if (!name.startsWith("/")) {
    throw new RangeError(
      `Cannot use ${what} ${JSON.stringify(name)}: it must start with "/" (e.g. ${
        JSON.stringify("/" + name)
      })`,
    );
  }
  if (name === "/") {
    throw new RangeError(`Cannot use ${what} "/": it needs a name after the "/"`);
  }
  if (name.indexOf("/", 1) !== -1) {
    throw new RangeError(
      `Cannot use ${what} ${JSON.stringify(name)}: it may contain no "/" after the first character`,
    );
  }
  if (name === "/." || name === "/..") {
    throw new RangeError(
      `Cannot use ${what} ${JSON.stringify(name)}: "." and ".." name directories, not objects`,
    );
  }
  const bytes = cStringBytes(name);
  const length = bytes.length - 2; // without the "/" and the NUL
  const max = shmNameMaxBytes();
  if (length > max) {
    throw new RangeError(
      `Cannot use ${what} ${
        JSON.stringify(name).slice(0, 40)
      }...: it has ${length} bytes after the "/", ` +
        `and ${platform.os} allows at most ${max}`,
    );
  }
  return bytes;
}

/**
 * A NUL-terminated UTF-8 copy of `text`. ASCII (what names nearly always
 * are) is copied in JS: TextEncoder is a runtime call that costs more than
 * the copy on the create/unlink paths.
 */
function cStringBytes(text: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(text.length + 1);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x80) return encoder.encode(text + "\0");
    bytes[i] = code;
  }
  return bytes;
}

/** Hints for the errors `shm_open` reports, naming the way out. */
export function shmOpenHints(name: string): Hints {
  const quoted = JSON.stringify(name);
  return {
    EEXIST:
      `an object with this name already exists; attach to it with SharedMemory.open(${quoted}), ` +
      `or remove it first with SharedMemory.unlink(${quoted})`,
    ENOENT:
      `no shared memory object has this name; create it with SharedMemory.create({ name: ${quoted}, size })`,
    EACCES:
      "its mode does not let this user open it so (see SharedMemory.list() for owner and mode)",
    EMFILE: "this process has too many open files (ulimit -n)",
    ENFILE: "the system has too many open files",
    ENAMETOOLONG: "the name is too long for this system",
    ELOOP:
      "the name is a symbolic link, which shm_open never follows (someone may have planted it)",
    ENXIO: "the name is a socket or a device, not a shared memory object",
    EISDIR: "the name is a directory, not a shared memory object",
  };
}

/**
 * Opens or creates a POSIX shared memory object: `shm_open(name, flags,
 * mode)`. Returns the fd, which is yours to close (glibc sets O_CLOEXEC on
 * it). The mode is filtered by the process umask, as C does.
 *
 * @example
 * ```ts
 * import { closeFd, platform, shmOpen, shmUnlink } from "@shmkit/shmkit/raw";
 * const C = platform.constants;
 * const fd = shmOpen("/raw-open-example", C.O_CREAT | C.O_RDWR, 0o600);
 * closeFd(fd);
 * shmUnlink("/raw-open-example");
 * ```
 *
 * @param name A name as {@linkcode checkShmName} accepts.
 * @param flags O_RDONLY or O_RDWR, optionally O_CREAT, O_EXCL, O_TRUNC (from `platform.constants`).
 * @param mode Permission bits for a created object (default 0o600).
 * @throws {TypeError} For a bad name type or a NUL in it.
 * @throws {RangeError} For a bad name, flags or mode.
 * @throws {ErrnoError} `shm_open` failing: ENOENT, EEXIST, EACCES, EMFILE, ...
 */
export function shmOpen(name: string, flags: number, mode: number = 0o600): number {
  const bytes = encodeShmName(name);
  checkInteger(flags, "flags", 0, 0x7fffffff);
  checkMode(mode);
  const fd = unsafeLibc.shm_open(bytes, flags, mode);
  // The error's details are built only on failure: this is a hot path.
  if (fd === -1) check(fd, "shm_open", { path: name }, shmOpenHints(name));
  return fd;
}

/**
 * Removes a shared memory object's name: `shm_unlink(name)`. Processes that
 * have it open or mapped keep it; the memory goes when the last one lets go.
 *
 * @example
 * ```ts
 * import { ErrnoError } from "@shmkit/shmkit";
 * import { shmUnlink } from "@shmkit/shmkit/raw";
 * try {
 *   shmUnlink("/maybe-left-over");
 * } catch (error) {
 *   if (!(error instanceof ErrnoError && error.code === "ENOENT")) throw error;
 * }
 * ```
 *
 * @throws {TypeError} For a bad name type or a NUL in it.
 * @throws {RangeError} For a bad name.
 * @throws {ErrnoError} `shm_unlink` with ENOENT (no such name) or EACCES.
 */
export function shmUnlink(name: string): void {
  if (unsafeLibc.shm_unlink(encodeShmName(name)) === -1) {
    check(-1, "shm_unlink", { path: name }, {
      ENOENT: "no shared memory object has this name (already removed?)",
      EACCES: "this user may not remove it (it belongs to another user)",
    });
  }
}

/**
 * Sets an fd's size: `ftruncate(fd, length)`. Growing adds zero bytes
 * without reserving memory (see {@linkcode posixFallocate}).
 *
 * @example
 * ```ts
 * import { Memfd } from "@shmkit/shmkit";
 * import { closeFd, ftruncate } from "@shmkit/shmkit/raw";
 * // A raw call on an fd you own; here one from a Memfd.
 * using memory = Memfd.create({ size: 4096 });
 * ftruncate(memory.fd, 8192);
 * ```
 *
 * @throws {RangeError} For a bad fd or a negative or fractional length.
 * @throws {ErrnoError} `ftruncate` failing: EBADF, EINVAL, EPERM (sealed), EFBIG.
 */
export function ftruncate(fd: number, length: number): void {
  checkFd(fd);
  checkInteger(length, "length", 0);
  check(unsafeLibc.ftruncate(fd, length), "ftruncate", { fd }, {
    EPERM: "the object is sealed against this change (F_SEAL_SHRINK or F_SEAL_GROW)",
    EINVAL: "the fd is not open for writing, or not a file",
  });
}

/**
 * Reserves space for an fd's range: `posix_fallocate(fd, offset, length)`.
 * On tmpfs (/dev/shm, memfd) this allocates the pages now, so a full
 * filesystem fails here with ENOSPC instead of a SIGBUS at first touch. The
 * size grows to `offset + length` if smaller.
 *
 * @example
 * ```ts
 * import { Memfd } from "@shmkit/shmkit";
 * import { posixFallocate } from "@shmkit/shmkit/raw";
 * using memory = Memfd.create({ size: 4096, reserve: false });
 * posixFallocate(memory.fd, 0, 4096);
 * ```
 *
 * @throws {RangeError} For a bad fd, offset or length.
 * @throws {ErrnoError} `posix_fallocate` with ENOSPC, EBADF, EFBIG, EPERM (sealed).
 */
export function posixFallocate(fd: number, offset: number, length: number): void {
  checkFd(fd);
  checkInteger(offset, "offset", 0);
  checkInteger(length, "length", 1);
  const result = unsafeLibc.posix_fallocate(fd, offset, length);
  if (result !== 0) {
    checkReturned(result, "posix_fallocate", { fd }, {
      ENOSPC: `no room for ${length} bytes (/dev/shm or the memory limit is full)`,
      EPERM: "the object is sealed against growing (F_SEAL_GROW)",
    });
  }
}

/**
 * `fstat(fd)`: size, mode, owner and identity of an open fd.
 *
 * @example
 * ```ts
 * import { Memfd } from "@shmkit/shmkit";
 * import { fstat } from "@shmkit/shmkit/raw";
 * using memory = Memfd.create({ size: 4096 });
 * console.log(fstat(memory.fd).size); // 4096
 * ```
 *
 * @throws {RangeError} For a bad fd number.
 * @throws {ErrnoError} `fstat` with EBADF when the fd is not open.
 */
export function fstat(fd: number): FdStat {
  checkFd(fd);
  return statFd(fd);
}

/**
 * Changes an fd's permission bits: `fchmod(fd, mode)`. Not filtered by the
 * umask.
 *
 * @example
 * ```ts
 * import { Memfd } from "@shmkit/shmkit";
 * import { fchmod } from "@shmkit/shmkit/raw";
 * using memory = Memfd.create({ size: 4096 });
 * fchmod(memory.fd, 0o640);
 * ```
 *
 * @throws {RangeError} For a bad fd or a mode outside 0o0 to 0o7777.
 * @throws {ErrnoError} `fchmod` with EPERM (not the owner) or EBADF.
 */
export function fchmod(fd: number, mode: number): void {
  checkFd(fd);
  checkMode(mode);
  check(unsafeLibc.fchmod(fd, mode), "fchmod", { fd }, {
    EPERM: "only the owner (or root) may change the mode",
  });
}

function checkOwnerId(value: unknown, what: string): number {
  // -1 means "leave unchanged", as in C, where it is (uid_t)-1.
  const id = checkInteger(value, what, -1, 0xfffffffe);
  return id === -1 ? 0xffffffff : id;
}

/**
 * Changes an fd's owner and group: `fchown(fd, uid, gid)`; -1 leaves one
 * unchanged.
 *
 * @example
 * ```ts
 * import { Memfd } from "@shmkit/shmkit";
 * import { fchown } from "@shmkit/shmkit/raw";
 * using memory = Memfd.create({ size: 4096 });
 * fchown(memory.fd, -1, -1); // changes nothing, and needs no privilege
 * ```
 *
 * @throws {RangeError} For a bad fd, uid or gid.
 * @throws {ErrnoError} `fchown` with EPERM (needs CAP_CHOWN for another user) or EBADF.
 */
export function fchown(fd: number, uid: number, gid: number): void {
  checkFd(fd);
  const u = checkOwnerId(uid, "uid");
  const g = checkOwnerId(gid, "gid");
  check(unsafeLibc.fchown(fd, u, g), "fchown", { fd }, {
    EPERM: "changing the owner needs CAP_CHOWN; the group, membership in it",
  });
}

/**
 * Why memfd is unavailable given a set of bound symbols, or undefined when it
 * is available. (A function of its inputs so the refusal can be tested on a
 * machine that has memfd.)
 */
export function memfdUnsupportedReason(
  symbols: ReadonlySet<string> = availableSymbols,
  os: string = `${platform.os}-${platform.arch}`,
  flag: number = C.MFD_CLOEXEC,
): string | undefined {
  if (!symbols.has("memfd_create") || flag === -1) {
    return `memfd_create is not supported on this platform (${os}; it needs Linux 3.17+ and glibc 2.27+); use SharedMemory.create() instead`;
  }
  return undefined;
}

/**
 * Creates an anonymous memory file: `memfd_create(name, flags)`. Returns
 * the fd, yours to close. The name is only a label (it shows in
 * /proc/self/fd as "/memfd:name").
 *
 * @example
 * ```ts
 * import { closeFd, memfdCreate, platform } from "@shmkit/shmkit/raw";
 * const C = platform.constants;
 * const fd = memfdCreate("example", C.MFD_CLOEXEC | C.MFD_ALLOW_SEALING);
 * closeFd(fd);
 * ```
 *
 * @param name A label of at most 249 bytes, without NUL.
 * @param flags MFD_CLOEXEC, MFD_ALLOW_SEALING, MFD_HUGETLB (from `platform.constants`).
 * @throws {Error} When this platform has no memfd_create.
 * @throws {TypeError} For a bad name type or a NUL in it.
 * @throws {RangeError} For a name too long or bad flags.
 * @throws {ErrnoError} `memfd_create` with EMFILE, ENOMEM, EINVAL.
 */
export function memfdCreate(name: string, flags: number): number {
  const reason = memfdUnsupportedReason();
  if (reason !== undefined) throw new Error(`Cannot create a memfd: ${reason}`);
  const bytes = cString(name, "memfd name");
  const max = C.NAME_MAX - "memfd:".length;
  if (bytes.length - 1 > max) {
    throw new RangeError(
      `Cannot use memfd name ${JSON.stringify(name.slice(0, 40))}...: it has ${
        bytes.length - 1
      } bytes, at most ${max} are allowed`,
    );
  }
  checkInteger(flags, "flags", 0, 0xffffffff);
  return check(unsafeLibc.memfd_create!(bytes, flags), "memfd_create", {}, {
    EMFILE: "this process has too many open files (ulimit -n)",
    EINVAL: "unknown flags for this kernel",
  });
}

/**
 * The seals of an fd, as F_SEAL_* bits: `fcntl(fd, F_GET_SEALS)`.
 *
 * @example
 * ```ts
 * import { Memfd } from "@shmkit/shmkit";
 * import { getSeals, platform } from "@shmkit/shmkit/raw";
 * using memory = Memfd.create({ size: 4096, seals: ["shrink"] });
 * console.log((getSeals(memory.fd) & platform.constants.F_SEAL_SHRINK) !== 0); // true
 * ```
 *
 * @throws {RangeError} For a bad fd number.
 * @throws {ErrnoError} `fcntl(F_GET_SEALS)` with EINVAL when the fd can't carry seals, EBADF.
 */
export function getSeals(fd: number): number {
  checkFd(fd);
  return check(unsafeLibc.fcntl(fd, C.F_GET_SEALS, 0), "fcntl(F_GET_SEALS)", { fd }, {
    EINVAL: "this fd does not support seals (not a memfd or tmpfs file)",
  });
}

/**
 * Adds F_SEAL_* bits to an fd: `fcntl(fd, F_ADD_SEALS, seals)`.
 *
 * @example
 * ```ts
 * import { Memfd } from "@shmkit/shmkit";
 * import { addSeals, platform } from "@shmkit/shmkit/raw";
 * using memory = Memfd.create({ size: 4096 });
 * addSeals(memory.fd, platform.constants.F_SEAL_GROW);
 * ```
 *
 * @throws {RangeError} For a bad fd or seal bits.
 * @throws {ErrnoError} `fcntl(F_ADD_SEALS)` with EPERM (F_SEAL_SEAL set, or the fd is read-only),
 * EBUSY (F_SEAL_WRITE while a writable shared mapping exists), EINVAL.
 */
export function addSeals(fd: number, seals: number): void {
  checkFd(fd);
  checkInteger(seals, "seals", 0, 0x7fffffff);
  check(unsafeLibc.fcntl(fd, C.F_ADD_SEALS, seals), "fcntl(F_ADD_SEALS)", { fd }, {
    EPERM:
      "the fd is sealed against new seals (F_SEAL_SEAL), was created without MFD_ALLOW_SEALING, or is not open for writing",
    EBUSY:
      "a writable shared mapping of it exists (here or in another process); F_SEAL_WRITE needs all of them unmapped",
    EINVAL: "this fd does not support seals (not a memfd)",
  });
}

/** `fcntl(fd, F_GETFL)`: the fd's open flags (access mode in `& O_ACCMODE`). */
export function fdFlags(fd: number): number {
  checkFd(fd);
  return check(unsafeLibc.fcntl(fd, C.F_GETFL, 0), "fcntl(F_GETFL)", { fd });
}

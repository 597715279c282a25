/**
 * Small file helpers on libc, so that reading /proc needs no permission
 * beyond --allow-ffi.
 *
 * @module
 */
import { check, ErrnoError, type ErrnoErrorOptions, errnoName, type Hints } from "./errors.ts";
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { allocStruct, cString } from "../ffi/pointer.ts";
import { bufferArgument } from "../ffi/_arguments.ts";
import { platform } from "../platform/mod.ts";
import { checkFd } from "./_validate.ts";

const C = platform.constants;

/** Opens a file with O_CLOEXEC; returns the fd. */
export function openFile(path: string, flags: number, mode = 0o600): number {
  return check(
    unsafeLibc.open(cString(path, "path"), flags | C.O_CLOEXEC, mode),
    "open",
    { path },
  );
}

/** What a file's type bits (`st_mode & S_IFMT`) say it is, in words. */
export function fileKind(mode: number): string {
  switch (mode & C.S_IFMT) {
    case C.S_IFREG:
      return "a regular file";
    case C.S_IFDIR:
      return "a directory";
    case C.S_IFIFO:
      return "a FIFO (named pipe)";
    case C.S_IFSOCK:
      return "a socket";
    case C.S_IFCHR:
      return "a character device";
    case C.S_IFBLK:
      return "a block device";
    case C.S_IFLNK:
      return "a symbolic link";
    default:
      return `a file of unknown type 0o${(mode & C.S_IFMT).toString(8)}`;
  }
}

/**
 * Internal: `fd` (opened with O_NONBLOCK, so a FIFO planted under the name
 * can't block the open) if it is a regular file, with O_NONBLOCK cleared
 * again; otherwise closes it and throws. Returns its status.
 */
export function requireRegular(fd: number, what: string, path: string): FdStat {
  let status: FdStat;
  try {
    status = statFd(fd, path);
    if (!status.isFile) {
      throw new Error(
        `Cannot open ${JSON.stringify(path)}: it is ${
          fileKind(status.mode)
        }, not a ${what} (only regular files can be mapped safely)`,
      );
    }
    const flags = check(unsafeLibc.fcntl(fd, C.F_GETFL, 0), "fcntl(F_GETFL)", { fd, path });
    check(unsafeLibc.fcntl(fd, C.F_SETFL, flags & ~C.O_NONBLOCK), "fcntl(F_SETFL)", { fd, path });
  } catch (error) {
    unsafeLibc.close(fd);
    throw error;
  }
  return status;
}

/**
 * Closes an fd: `close(fd)`. Close only fds you own: closing one the runtime
 * uses breaks the runtime.
 *
 * @example
 * ```ts
 * import { closeFd, platform, shmOpen, shmUnlink } from "@shmkit/shmkit/raw";
 * const C = platform.constants;
 * const fd = shmOpen("/close-example", C.O_CREAT | C.O_RDWR);
 * closeFd(fd);
 * shmUnlink("/close-example");
 * ```
 *
 * @throws {RangeError} For a bad fd number.
 * @throws {ErrnoError} `close` with EBADF when it is not open.
 */
export function closeFd(fd: number): void {
  checkFd(fd);
  check(unsafeLibc.close(fd), "close", { fd });
}

/** Reads a whole file (e.g. under /proc) as UTF-8 text. */
export function readTextFile(path: string): string {
  const fd = openFile(path, C.O_RDONLY);
  try {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const chunk = new Uint8Array(65536);
      const n = check(unsafeLibc.read(fd, chunk, chunk.length), "read", { path, fd });
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
    }
    const all = new Uint8Array(total);
    let at = 0;
    for (const chunk of chunks) {
      all.set(chunk, at);
      at += chunk.length;
    }
    return new TextDecoder().decode(all);
  } finally {
    unsafeLibc.close(fd);
  }
}

/** What `fstat` says about an fd, all of it that shmkit reads. */
export interface FdStat {
  /** Size in bytes (st_size). */
  readonly size: number;
  /** File type and permission bits (st_mode); `mode & 0o7777` is the permissions. */
  readonly mode: number;
  /** Owner's user id (st_uid). */
  readonly uid: number;
  /** Owner's group id (st_gid). */
  readonly gid: number;
  /** Device (st_dev); with `ino`, identifies the object. */
  readonly dev: number;
  /** Inode number (st_ino). */
  readonly ino: number;
  /** Whether it is a regular file (shm objects and memfds are). */
  readonly isFile: boolean;
}

type FieldReader = (view: DataView) => number;

// Readers compiled once from the platform's layout: fstat sits on the create
// and attach paths, where a generic field lookup per read costs microseconds.
function fieldReader(name: string): FieldReader {
  const field = platform.structs.stat.fields[name];
  if (field === undefined) throw new Error(`Cannot find struct stat field ${name}`);
  const { offset, size, kind } = field;
  const signed = kind === "int";
  switch (size) {
    case 2:
      return signed ? (v) => v.getInt16(offset, true) : (v) => v.getUint16(offset, true);
    case 4:
      return signed ? (v) => v.getInt32(offset, true) : (v) => v.getUint32(offset, true);
    // Two words, no BigInt: the sum rounds once, as Number(bigint) does.
    case 8:
      return signed
        ? (v) => v.getInt32(offset + 4, true) * 2 ** 32 + v.getUint32(offset, true)
        : (v) => v.getUint32(offset + 4, true) * 2 ** 32 + v.getUint32(offset, true);
    default:
      throw new Error(`Cannot read struct stat field ${name}: size ${size}`);
  }
}

const STAT = {
  size: fieldReader("st_size"),
  mode: fieldReader("st_mode"),
  uid: fieldReader("st_uid"),
  gid: fieldReader("st_gid"),
  dev: fieldReader("st_dev"),
  ino: fieldReader("st_ino"),
};
// One buffer for every call: the calls are synchronous and read it at once.
const statBuffer = allocStruct(platform.structs.stat);
const statView = new DataView(statBuffer.buffer);
const statArgument = bufferArgument(statBuffer);

function readStat(): FdStat {
  const mode = STAT.mode(statView);
  return {
    size: STAT.size(statView),
    mode,
    uid: STAT.uid(statView),
    gid: STAT.gid(statView),
    dev: STAT.dev(statView),
    ino: STAT.ino(statView),
    isFile: (mode & C.S_IFMT) === C.S_IFREG,
  };
}

/** Internal: `fstat(fd)`; `path` only names the file in the error. */
export function statFd(fd: number, path?: string): FdStat {
  if (unsafeLibc.fstat(fd, statArgument) === -1) {
    check(-1, "fstat", path === undefined ? { fd } : { fd, path }, {
      EBADF: "the fd is not open in this process",
    });
  }
  return readStat();
}

/**
 * Internal: `stat(path)` (or `lstat`, which never follows a symbolic link);
 * undefined when the path is missing. `path` may come encoded already, and
 * `argument` is then what to pass for it (see {@linkcode bufferArgument}).
 */
export function statPath(
  path: string | Uint8Array,
  follow = true,
  argument?: Uint8Array,
): FdStat | undefined {
  const bytes = argument ?? (typeof path === "string" ? cString(path, "path") : path);
  const result = follow
    ? unsafeLibc.stat(bytes, statArgument)
    : unsafeLibc.lstat(bytes, statArgument);
  if (result === -1) {
    const code = errno();
    if (code === platform.errno.ENOENT) return undefined;
    throw new ErrnoError(follow ? "stat" : "lstat", code, {
      path: typeof path === "string" ? path : new TextDecoder().decode(path.subarray(0, -1)),
    });
  }
  return readStat();
}

/**
 * Internal: `address` from mmap, or the ErrnoError for its failure, with a
 * hint for ENOMEM (and for the codes in `hints`).
 */
export function checkMapped(
  address: number,
  length: number,
  subject: ErrnoErrorOptions,
  hints: Hints = {},
): number {
  if (address !== -1) return address;
  const code = errno();
  const hint = code === platform.errno.ENOMEM
    ? `no room for ${length} bytes (address space or overcommit limit)`
    : hints[errnoName(code)];
  throw new ErrnoError("mmap", code, hint === undefined ? subject : { ...subject, hint });
}

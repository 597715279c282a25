/**
 * Refuses sizes that can't be backed before anything is allocated: more
 * than the memory left (MemAvailable + SwapFree), more than /dev/shm has
 * room for (statfs), more than RLIMIT_FSIZE (which would end the process
 * with SIGXFSZ). posix_fallocate on a memfd has no filesystem limit of its
 * own: asked for 2^46 bytes it ran until the OOM killer took other
 * processes.
 *
 * @module
 */
import { ErrnoError } from "../core/errors.ts";
import { unsafeLibc } from "../ffi/libc.ts";
import { allocStruct, cString, readField } from "../ffi/pointer.ts";
import { readTextFile } from "../core/_io.ts";
import { bufferArgument } from "../ffi/_arguments.ts";
import { platform } from "../platform/mod.ts";

/** What is being sized, for the message and the limits that apply. */
export interface BackingRequest {
  /** The call that would reserve or set the size ("posix_fallocate", "ftruncate"). */
  readonly syscall: string;
  /** The object's name, when it has one. */
  readonly path?: string;
  /** The fd, when there is one. */
  readonly fd?: number;
  /** Bytes the object will have. */
  readonly size: number;
  /** Bytes to allocate now (0 for a sparse size change). */
  readonly allocate: number;
  /** The filesystem the object lives on (/dev/shm), or undefined for a memfd. */
  readonly filesystem?: string;
}

/** Bytes of memory that can still be had: MemAvailable + SwapFree, or undefined. */
export function availableMemory(meminfo?: string): number | undefined {
  let text = meminfo;
  try {
    text ??= readTextFile("/proc/meminfo");
  } catch {
    return undefined; // no /proc: leave it to the kernel
  }
  const field = (name: string): number | undefined => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text!);
    return m === null ? undefined : Number(m[1]) * 1024;
  };
  const available = field("MemAvailable");
  return available === undefined ? undefined : available + (field("SwapFree") ?? 0);
}

const rlimit = allocStruct(platform.structs.rlimit);
// rlim_cur read as two words: no DataView or BigInt per create.
const rlimCur = platform.structs.rlimit.fields["rlim_cur"];
const rlimWords = rlimCur !== undefined && rlimCur.size === 8 && rlimCur.offset % 4 === 0
  ? new Uint32Array(rlimit.buffer, rlimCur.offset, 2)
  : undefined;

const rlimitArgument = bufferArgument(rlimit);

/** The soft RLIMIT_FSIZE in bytes (`getrlimit`); RLIM_INFINITY reads as about 1.8e19. */
export function fileSizeLimit(): number {
  if (unsafeLibc.getrlimit(platform.constants.RLIMIT_FSIZE, rlimitArgument) === -1) return Infinity;
  if (rlimWords !== undefined) return rlimWords[0]! + rlimWords[1]! * 0x1_0000_0000;
  return readField(rlimit, platform.structs.rlimit, "rlim_cur");
}

/**
 * Below this, memory and room are left to the kernel: posix_fallocate then
 * fails cleanly with ENOSPC, and the OOM killer has nothing to see. Reading
 * /proc/meminfo and statfs on every small create would double its cost.
 */
const SMALL = 1 << 20;

/** Free and total bytes of a filesystem (`statfs`), or undefined. */
export function filesystemRoom(path: string): { free: number; total: number } | undefined {
  const layout = platform.structs.statfs;
  if (layout.size === 0) return undefined; // not known on this platform
  const buffer = allocStruct(layout);
  // Can't tell (no such path, no permission): leave it to the kernel.
  if (unsafeLibc.statfs(cString(path, "path"), buffer) === -1) return undefined;
  const block = readField(buffer, layout, "f_bsize");
  return {
    free: readField(buffer, layout, "f_bavail") * block,
    total: readField(buffer, layout, "f_blocks") * block,
  };
}

function refuse(request: BackingRequest, code: string, hint: string): never {
  const value = platform.errno[code] ?? 0;
  throw new ErrnoError(request.syscall, value, {
    ...(request.path === undefined ? {} : { path: request.path }),
    ...(request.fd === undefined ? {} : { fd: request.fd }),
    hint: `${hint}; refused before anything was allocated`,
  });
}

/**
 * Whether `size` bytes need {@linkcode checkBacking} at all: false for a small
 * size under RLIMIT_FSIZE (one getrlimit, and no request object built).
 */
export function needsBackingCheck(size: number): boolean {
  return size > SMALL || size > fileSizeLimit();
}

/**
 * Throws ENOMEM, ENOSPC or EFBIG (with a hint naming the limit) when the
 * request can't be backed; returns otherwise.
 */
export function checkBacking(request: BackingRequest): void {
  const small = request.size <= SMALL;
  // Memory first: it is the limit whose breach hurts other processes.
  const memory = small || request.allocate === 0 ? undefined : availableMemory();
  if (memory !== undefined && request.allocate > memory) {
    refuse(
      request,
      "ENOMEM",
      `${request.allocate} bytes are more than the memory left, ${memory} bytes (MemAvailable + SwapFree in /proc/meminfo)`,
    );
  }
  const limit = fileSizeLimit();
  if (request.size > limit) {
    refuse(
      request,
      "EFBIG",
      `${request.size} bytes are over this process's RLIMIT_FSIZE of ${limit} bytes (ulimit -f), and growing past it would kill the process with SIGXFSZ`,
    );
  }
  if (small || request.filesystem === undefined) return;
  const room = filesystemRoom(request.filesystem);
  if (room === undefined) return;
  if (request.allocate === 0 && request.size > room.total) {
    refuse(
      request,
      "ENOSPC",
      `${request.filesystem} holds ${room.total} bytes in all (its tmpfs size= limit), fewer than ${request.size}`,
    );
  }
  if (request.allocate > room.free) {
    refuse(
      request,
      "ENOSPC",
      `${request.filesystem} has room for ${room.free} more bytes (statfs; its tmpfs size= limit is ${room.total}), fewer than ${request.allocate}`,
    );
  }
}

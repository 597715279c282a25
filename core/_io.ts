/**
 * Small file helpers on libc, so that reading /proc needs no permission
 * beyond --allow-ffi.
 *
 * @module
 */
import { check } from "./errors.ts";
import { unsafeLibc } from "../ffi/libc.ts";
import { allocStruct, cString, readField } from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";

const C = platform.constants;

/** Opens a file with O_CLOEXEC; returns the fd. */
export function openFile(path: string, flags: number, mode = 0o600): number {
  return check(
    unsafeLibc.open(cString(path, "path"), flags | C.O_CLOEXEC, mode),
    "open",
    { path },
  );
}

/** Closes an fd, reporting failure as an ErrnoError. */
export function closeFd(fd: number): void {
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

/** What fstat says about an fd, in the fields shmkit uses. */
export interface FileStatus {
  /** Size in bytes. */
  readonly size: number;
  /** Permission bits and file type (st_mode). */
  readonly mode: number;
  /** Owner's user id. */
  readonly uid: number;
  /** Owner's group id. */
  readonly gid: number;
  /** Whether it is a regular file (shm objects and memfds are). */
  readonly isFile: boolean;
}

/** fstat(2) on an fd. */
export function fstatFd(fd: number, path?: string): FileStatus {
  const layout = platform.structs.stat;
  const buffer = allocStruct(layout);
  check(unsafeLibc.fstat(fd, buffer), "fstat", path === undefined ? { fd } : { fd, path });
  const mode = readField(buffer, layout, "st_mode");
  return {
    size: readField(buffer, layout, "st_size"),
    mode,
    uid: readField(buffer, layout, "st_uid"),
    gid: readField(buffer, layout, "st_gid"),
    isFile: (mode & C.S_IFMT) === C.S_IFREG,
  };
}

/**
 * The option and result types of SharedMemory's static methods
 * (re-exported by shm/shared_memory.ts).
 *
 * @module
 */
/** Options of `SharedMemory.create`. */
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

/** Options of `SharedMemory.open`. */
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

/** A named object found by `SharedMemory.list`. */
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

/** Options of `SharedMemory.list`. */
export interface SharedMemoryListOptions {
  /** Only names starting with this (with the leading "/", e.g. "/shmkit-"). */
  readonly prefix?: string;
}

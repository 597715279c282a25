/**
 * Internal: the option and status types of `SystemVSemaphoreSet`
 * (re-exported by ipc/sysv_semaphore.ts).
 *
 * @module
 */
import type { AbortOptions } from "../sync/_futex.ts";

/** Options of {@linkcode SystemVSemaphoreSet.create}. */
export interface SystemVSemaphoreCreateOptions {
  /** The key other processes find the set by (e.g. from `ftok`). Omitted: IPC_PRIVATE. */
  readonly key?: number;
  /** Permission bits, 0 to 0o777 (default 0o600). */
  readonly mode?: number;
  /**
   * Fail with EEXIST when a set has the key (IPC_CREAT | IPC_EXCL; default
   * true). With false an existing set with the same number of semaphores
   * is opened; `created` tells which happened.
   */
  readonly exclusive?: boolean;
  /**
   * Values to start with (SETALL, only when this call created the set): one
   * number for every semaphore, or one per semaphore (default: 0, as Linux
   * makes them).
   */
  readonly initial?: number | readonly number[];
}

/** Options of {@linkcode SystemVSemaphoreSet.open}. */
export interface SystemVSemaphoreOpenOptions {
  /** The least number of semaphores the set must have (default 0: any). */
  readonly size?: number;
}

/** Options of {@linkcode SystemVSemaphoreSet.operate}. */
export interface SemaphoreWaitOptions {
  /**
   * How long to wait, in milliseconds (default Infinity). 0 tries once
   * without waiting (IPC_NOWAIT); other finite values use `semtimedop`.
   */
  readonly timeoutMs?: number;
}

/** Options of {@linkcode SystemVSemaphoreSet.operateAsync}. */
export interface SemaphoreAsyncWaitOptions extends SemaphoreWaitOptions, AbortOptions {}

/** Options of {@linkcode SystemVSemaphoreSet.acquire} and `release`. */
export interface SemaphoreAcquireOptions extends SemaphoreWaitOptions {
  /** How much to take or give back (default 1). */
  readonly count?: number;
  /** SEM_UNDO (default true): the kernel gives back what a dead process held. */
  readonly undo?: boolean;
}

/** Options of {@linkcode SystemVSemaphoreSet.acquireAsync}. */
export interface SemaphoreAcquireAsyncOptions extends SemaphoreAcquireOptions, AbortOptions {}

/** A set's status, from `semctl(IPC_STAT)`. */
export interface SystemVSemaphoreSetStatus {
  /** The set id. */
  readonly id: number;
  /** The key, unsigned (0 for IPC_PRIVATE). */
  readonly key: number;
  /** Number of semaphores (`sem_nsems`). */
  readonly size: number;
  /** Permission bits, 0 to 0o777. */
  readonly mode: number;
  /** Owner's user id. */
  readonly uid: number;
  /** Owner's group id. */
  readonly gid: number;
  /** Creator's user id. */
  readonly cuid: number;
  /** Creator's group id. */
  readonly cgid: number;
  /** Last `semop`, or null if never. */
  readonly otime: Date | null;
  /** Creation or last IPC_SET. */
  readonly ctime: Date | null;
}

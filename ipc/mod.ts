/**
 * Inter-process synchronisation through the C library's own primitives, for
 * sharing with C, Python and other programs that use them: POSIX named
 * semaphores, process-shared robust pthread mutexes, and System V semaphore
 * sets (with SEM_UNDO).
 *
 * ```ts
 * import { NamedSemaphore } from "@shmkit/shmkit/ipc";
 * using sem = NamedSemaphore.create({ value: 1 });
 * if (sem.tryWait()) sem.post();
 * ```
 *
 * @module
 */

// --- POSIX named semaphores and pthread mutexes (w2-ipc)
export {
  NamedSemaphore,
  type NamedSemaphoreCreateOptions,
  type NamedSemaphoreWaitOptions,
  SEMAPHORE_POLL_MAX_MS,
  SEMAPHORE_SLICE_MS,
} from "./named_semaphore.ts";
export {
  type PthreadLockResult,
  PthreadMutex,
  type PthreadMutexLockOptions,
} from "./pthread_mutex.ts";
export { LockError, type LockErrorCode } from "../sync/_lock_error.ts";
// --- end POSIX named semaphores and pthread mutexes

// --- System V semaphores (ipc/sysv_semaphore.ts)
export {
  type AbortOptions,
  type SemaphoreAcquireAsyncOptions,
  type SemaphoreAcquireOptions,
  type SemaphoreAsyncWaitOptions,
  type SemaphoreOperation,
  type SemaphoreWaitOptions,
  type SystemVSemaphoreCreateOptions,
  type SystemVSemaphoreLimits,
  type SystemVSemaphoreOpenOptions,
  SystemVSemaphoreSet,
  type SystemVSemaphoreSetEntry,
  type SystemVSemaphoreSetStatus,
} from "./sysv_semaphore.ts";
// --- end System V semaphores

/**
 * Inter-process synchronisation through the C library's own primitives, for
 * sharing with C, Python and other programs that use them: POSIX named
 * semaphores and process-shared robust pthread mutexes.
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

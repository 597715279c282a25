/**
 * Interprocess primitives beyond shared memory and futex locks.
 *
 * @module
 */

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

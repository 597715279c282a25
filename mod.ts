/**
 * shmkit: shared memory and process primitives for Deno, Bun and Node, straight
 * from libc through the runtime's FFI. No native addon, no compile step.
 *
 * - {@linkcode Mapping}: `mmap` of anonymous memory, files and fds, with
 *   `msync`, `mprotect`, `madvise` and `mlock`.
 * - Zero-copy views (`Uint8Array` or any TypedArray) that are detached when
 *   their memory goes away, so a stale view never crashes the process.
 * - {@linkcode ErrnoError}: every failed call names the call, the errno code
 *   and the object involved.
 *
 * Thin C wrappers, `unsafe` calls, layout constants and the platform tables
 * are in the second entry point, `@shmkit/shmkit/raw` (npm: `shmkit/raw`).
 *
 * Deno needs `--allow-ffi` (FFI can do anything a native program can, so
 * Deno grants it whole); Bun needs nothing.
 *
 * @example Map memory and see it in /proc/self/maps
 * ```ts
 * import { Mapping, readProcMaps } from "@shmkit/shmkit";
 *
 * using mapping = Mapping.anonymous(64 * 1024);
 * const words = mapping.view(Uint32Array);
 * words[0] = 0xcafe;
 * const entry = readProcMaps().find((e) => e.contains(mapping.unsafeAddress));
 * console.log(entry?.perms); // "rw-s"
 * ```
 *
 * @module
 */
export { ClosedError, ErrnoError, errnoName } from "./core/errors.ts";
export { MappedMemory, pageSize, type TypedArrayConstructor } from "./core/memory.ts";
export { sigbusGuard, type SigbusGuardStatus } from "./core/_sigbus_guard.ts";
// Mappings (mapping/)
export {
  type Access,
  type Advice,
  type AnonymousMappingOptions,
  type FileMappingOptions,
  Mapping,
  type MappingRange,
  type SyncOptions,
} from "./mapping/mapping.ts";
export { type ProcMapsEntry, readProcMaps } from "./mapping/proc_maps.ts";
export { ReadOnlyView } from "./mapping/readonly_view.ts";
// POSIX shared memory and memfd (shm/)
export { FdMemory, type MemoryStat } from "./shm/fd_memory.ts";
export {
  SharedMemory,
  type SharedMemoryCreateOptions,
  type SharedMemoryInfo,
  type SharedMemoryListOptions,
  type SharedMemoryOpenOptions,
  type SharedMemoryOpenOrCreateOptions,
} from "./shm/shared_memory.ts";
export { Memfd, type MemfdCreateOptions, type MemfdFromFdOptions, type Seal } from "./shm/memfd.ts";
// System V shared memory (sysv/)
export {
  ftok,
  SystemVAttachment,
  type SystemVAttachOptions,
  type SystemVCreateOptions,
  type SystemVLimits,
  type SystemVOpenOptions,
  type SystemVPermissions,
  SystemVSegment,
  type SystemVSegmentEntry,
  type SystemVSegmentStatus,
} from "./sysv/segment.ts";
// Locks, wait/wake and the ring-buffer channel (sync/)
export {
  type AbortOptions,
  notify,
  wait,
  waitAsync,
  type WaitAsyncOptions,
  type WaitResult,
} from "./sync/wait.ts";
export {
  LockError,
  type LockErrorCode,
  type LockGuard,
  type LockResult,
  Mutex,
  type MutexOptions,
} from "./sync/mutex.ts";
export { Semaphore, type SemaphoreInitOptions, type SemaphoreOptions } from "./sync/semaphore.ts";
export {
  type EventInitOptions,
  type EventMode,
  type EventOptions,
  SharedEvent,
} from "./sync/event.ts";
export {
  Channel,
  ChannelError,
  type ChannelErrorCode,
  type ChannelOptions,
  type ChannelWaitOptions,
} from "./sync/channel.ts";
// Child processes with posix_spawn (spawn/)
export {
  Child,
  type ChildOutput,
  type ChildStatus,
  type FdSource,
  spawn,
  type SpawnOptions,
  type Stdio,
} from "./spawn/spawn.ts";
export { spawnScript, type SpawnScriptOptions } from "./spawn/script.ts";
export type { SignalName } from "./spawn/raw.ts";
export { inheritedFd, inheritedFds, inheritedRegion, inheritedRegions } from "./spawn/inherited.ts";

/**
 * shmkit: shared memory and process primitives for Deno and Bun, straight
 * from libc through the runtime's FFI. No native addon, no compile step.
 *
 * - {@linkcode Mapping}: `mmap` of anonymous memory, files and fds, with
 *   `msync`, `mprotect`, `madvise` and `mlock`.
 * - Zero-copy views (`Uint8Array` or any TypedArray) that are detached when
 *   their memory goes away, so a stale view never crashes the process.
 * - {@linkcode ErrnoError}: every failed call names the call, the errno code
 *   and the object involved.
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
export { ErrnoError, type ErrnoErrorOptions, errnoName } from "./errors.ts";
export {
  type Access,
  type Advice,
  type AnonymousMappingOptions,
  type FileMappingOptions,
  Mapping,
  type MappingRange,
  type SyncOptions,
} from "./mapping.ts";
export { ClosedError, MappedMemory, pageSize, type TypedArrayConstructor } from "./memory.ts";
export { type ProcMapsEntry, readProcMaps } from "./proc_maps.ts";
// POSIX shared memory, memfd and exit cleanup (shm.ts, memfd.ts, shm_raw.ts, cleanup.ts)
export {
  FdMemory,
  type MemoryStat,
  SharedMemory,
  type SharedMemoryCreateOptions,
  type SharedMemoryInfo,
  type SharedMemoryListOptions,
  type SharedMemoryOpenOptions,
} from "./shm.ts";
export { Memfd, type MemfdCreateOptions, type MemfdFromFdOptions, type Seal } from "./memfd.ts";
export {
  addSeals,
  checkShmName,
  closeFd,
  fchmod,
  fchown,
  type FdStat,
  fstat,
  ftruncate,
  getSeals,
  memfdCreate,
  posixFallocate,
  shmOpen,
  shmUnlink,
} from "./shm_raw.ts";
export {
  type CleanupKey,
  pendingCleanups,
  registerCleanup,
  runCleanups,
  setSignalCleanup,
  unregisterCleanup,
} from "./cleanup.ts";
export { platform } from "./platform/mod.ts";
export type { Platform } from "./platform/types.ts";
export { availableSymbols, unsafeLibc } from "./ffi/libc.ts";
export { unsafeAddressOf, unsafeView } from "./ffi/pointer.ts";
export { CONSTANT_NAMES, STRUCT_NAMES } from "./platform/types.ts";
export type {
  ConstantName,
  FieldKind,
  FieldLayout,
  StructLayout,
  StructName,
} from "./platform/types.ts";
export type {
  JsArg,
  JsArgs,
  JsFunction,
  JsFunctions,
  JsResult,
  NativeType,
  SymbolDefinition,
  SymbolTable,
} from "./ffi/types.ts";
export { SYMBOLS, type Symbols } from "./ffi/symbols.ts";
// System V shared memory (sysv.ts, sysv_raw.ts) and the read-only accessor (readonly_view.ts)
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
} from "./sysv.ts";
export {
  decodeShmidDs,
  explainShmgetFailure,
  shmctlLock,
  shmctlRemove,
  shmctlSet,
  type ShmctlSetOptions,
  shmctlStat,
  shmctlUnlock,
  shmget,
  type ShmgetFacts,
  type ShmgetRequest,
  type ShmidDs,
  unsafeShmat,
  unsafeShmdt,
} from "./sysv_raw.ts";
export { ReadOnlyView } from "./readonly_view.ts";
// Locks, wait/wake and the ring-buffer channel (atomics.ts, mutex.ts, semaphore.ts, event.ts, channel.ts)
export {
  DEFAULT_POLL_MS,
  notify,
  wait,
  waitAsync,
  type WaitAsyncOptions,
  type WaitResult,
} from "./atomics.ts";
export {
  LockError,
  type LockErrorCode,
  type LockResult,
  Mutex,
  MUTEX_MAGIC,
  MUTEX_NOT_RECOVERABLE,
  MUTEX_OWNER_DIED,
  MUTEX_PID_MASK,
  MUTEX_TAG_SHIFT,
  MUTEX_WAITERS,
  type MutexOptions,
} from "./mutex.ts";
export {
  Semaphore,
  SEMAPHORE_MAGIC,
  type SemaphoreInitOptions,
  type SemaphoreOptions,
} from "./semaphore.ts";
export {
  EVENT_MAGIC,
  type EventInitOptions,
  type EventMode,
  type EventOptions,
  SharedEvent,
} from "./event.ts";
export { Channel, CHANNEL_HEADER_BYTES, CHANNEL_MAGIC, type ChannelOptions } from "./channel.ts";
// Child processes with posix_spawn (spawn.ts, spawn_raw.ts, child.ts)
export {
  Child,
  type ChildOutput,
  type ChildStatus,
  type ExitStrategy,
  type FdSource,
  INHERITED_FDS_VARIABLE,
  spawn,
  type SpawnOptions,
  spawnScript,
  type SpawnScriptOptions,
  type Stdio,
} from "./spawn.ts";
export {
  CStringArray,
  type DecodedWaitStatus,
  decodeWaitStatus,
  kill,
  posixSpawn,
  PosixSpawnAttributes,
  PosixSpawnFileActions,
  posixSpawnp,
  type SignalName,
  signalName,
  signalNumber,
  SignalSet,
  type SpawnFlag,
  SpawnFlags,
  waitpid,
  type WaitpidResult,
} from "./spawn_raw.ts";
export {
  inheritedFd,
  inheritedFds,
  inheritedRegion,
  inheritedRegions,
  parseInheritedFds,
} from "./child.ts";

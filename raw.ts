/**
 * shmkit's raw layer: the thin C wrappers under the safe classes of
 * `@shmkit/shmkit`, the `unsafe` calls that hand out addresses, the layout
 * constants that C peers follow, the libc symbol table and the per-platform
 * tables generated from the C compiler.
 *
 * Everything here checks its arguments and throws {@linkcode ErrnoError}
 * from the return value, as the safe layer does, but owns nothing: an fd or an
 * address you get from it is yours to close or unmap, and a name marked
 * `unsafe` can crash the process when misused.
 *
 * @example Open a POSIX object with the raw calls and close the fd yourself
 * ```ts
 * import { closeFd, fstat, platform, shmOpen, shmUnlink } from "@shmkit/shmkit/raw";
 *
 * const C = platform.constants;
 * const name = `/raw-example-${crypto.randomUUID()}`;
 * const fd = shmOpen(name, C.O_CREAT | C.O_EXCL | C.O_RDWR, 0o600);
 * try {
 *   console.log(fstat(fd).size); // 0
 * } finally {
 *   closeFd(fd);
 *   shmUnlink(name);
 * }
 * ```
 *
 * @module
 */
export { ErrnoError, type ErrnoErrorOptions } from "./core/errors.ts";
// The libc binding (ffi/)
export { availableSymbols, unsafeLibc } from "./ffi/libc.ts";
export { unsafeAddressOf, unsafeView } from "./ffi/pointer.ts";
export { SYMBOLS, type Symbols } from "./ffi/symbols.ts";
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
// Per-OS/arch constants and struct layouts (platform/)
export { platform } from "./platform/mod.ts";
export type { Platform } from "./platform/types.ts";
export { CONSTANT_NAMES, STRUCT_NAMES } from "./platform/types.ts";
export type {
  ConstantName,
  FieldKind,
  FieldLayout,
  StructLayout,
  StructName,
} from "./platform/types.ts";
// POSIX shared memory and memfd (shm/raw.ts)
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
} from "./shm/raw.ts";
// Exit cleanup hooks (shm/cleanup.ts)
export {
  type CleanupKey,
  pendingCleanups,
  registerCleanup,
  runCleanups,
  setSignalCleanup,
  unregisterCleanup,
} from "./shm/cleanup.ts";
// System V shared memory (sysv/raw.ts)
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
} from "./sysv/raw.ts";
// Layout constants of the sync primitives (docs/locks.md)
export { DEFAULT_POLL_MS } from "./sync/wait.ts";
export {
  MUTEX_MAGIC,
  MUTEX_NOT_RECOVERABLE,
  MUTEX_OWNER_DIED,
  MUTEX_PID_MASK,
  MUTEX_TAG_SHIFT,
  MUTEX_WAITERS,
} from "./sync/mutex.ts";
export { SEMAPHORE_HOLDER_SLOTS, SEMAPHORE_MAGIC } from "./sync/semaphore.ts";
export { EVENT_MAGIC } from "./sync/event.ts";
export { CHANNEL_HEADER_BYTES, CHANNEL_MAGIC } from "./sync/channel.ts";
// posix_spawn and friends (spawn/raw.ts)
export { type ExitStrategy } from "./spawn/spawn.ts";
export {
  CStringArray,
  type DecodedWaitStatus,
  decodeWaitStatus,
  kill,
  posixSpawn,
  PosixSpawnAttributes,
  PosixSpawnFileActions,
  posixSpawnp,
  signalName,
  signalNumber,
  SignalSet,
  type SpawnFlag,
  SpawnFlags,
  waitpid,
  type WaitpidResult,
} from "./spawn/raw.ts";
export { parseInheritedFds } from "./spawn/inherited.ts";
export { INHERITED_FDS_VARIABLE } from "./spawn/script.ts";

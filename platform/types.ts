/**
 * The shape of a platform table: constants, errno and signal numbers, and
 * struct layouts for one OS/arch/libc. The Linux tables are generated from a
 * C probe (`scripts/probe_platform.c`, see `scripts/gen_platform.ts`); never
 * edit numbers by hand.
 *
 * @module
 */

/** Names of every constant a platform table carries, as spelled in C. */
export const CONSTANT_NAMES = [
  // sysconf
  "_SC_PAGESIZE",
  "_SC_OPEN_MAX",
  "_SC_NPROCESSORS_ONLN",
  // mmap and friends
  "PROT_NONE",
  "PROT_READ",
  "PROT_WRITE",
  "PROT_EXEC",
  "MAP_SHARED",
  "MAP_PRIVATE",
  "MAP_SHARED_VALIDATE",
  "MAP_ANONYMOUS",
  "MAP_FIXED",
  "MAP_FIXED_NOREPLACE",
  "MAP_NORESERVE",
  "MAP_POPULATE",
  "MAP_LOCKED",
  "MS_ASYNC",
  "MS_SYNC",
  "MS_INVALIDATE",
  "MADV_NORMAL",
  "MADV_RANDOM",
  "MADV_SEQUENTIAL",
  "MADV_WILLNEED",
  "MADV_DONTNEED",
  "MADV_FREE",
  "MADV_REMOVE",
  "MADV_DONTFORK",
  "MADV_DOFORK",
  "MADV_HUGEPAGE",
  "MADV_NOHUGEPAGE",
  "MADV_DONTDUMP",
  "MADV_DODUMP",
  "MCL_CURRENT",
  "MCL_FUTURE",
  "MCL_ONFAULT",
  // open / fcntl
  "O_RDONLY",
  "O_WRONLY",
  "O_RDWR",
  "O_CREAT",
  "O_EXCL",
  "O_TRUNC",
  "O_APPEND",
  "O_NONBLOCK",
  "O_CLOEXEC",
  "O_NOFOLLOW",
  "O_DIRECTORY",
  "O_ACCMODE",
  "F_DUPFD_CLOEXEC",
  "F_GETFD",
  "F_SETFD",
  "F_GETFL",
  "F_SETFL",
  "FD_CLOEXEC",
  "F_ADD_SEALS",
  "F_GET_SEALS",
  "F_SEAL_SEAL",
  "F_SEAL_SHRINK",
  "F_SEAL_GROW",
  "F_SEAL_WRITE",
  "F_SEAL_FUTURE_WRITE",
  "MFD_CLOEXEC",
  "MFD_ALLOW_SEALING",
  "MFD_HUGETLB",
  "S_IFMT",
  "S_IFREG",
  "S_IFDIR",
  "S_IFIFO",
  "S_IFSOCK",
  "S_IFCHR",
  "S_IFBLK",
  "S_IFLNK",
  "RLIMIT_FSIZE",
  "NAME_MAX",
  "PATH_MAX",
  // System V IPC
  "IPC_PRIVATE",
  "IPC_CREAT",
  "IPC_EXCL",
  "IPC_NOWAIT",
  "IPC_RMID",
  "IPC_SET",
  "IPC_STAT",
  "IPC_INFO",
  "SHM_RDONLY",
  "SHM_RND",
  "SHM_REMAP",
  "SHM_EXEC",
  "SHM_LOCK",
  "SHM_UNLOCK",
  "SHM_STAT",
  "SHM_INFO",
  "SHM_DEST",
  "SHM_LOCKED",
  "SHMLBA",
  // posix_spawn and wait
  "POSIX_SPAWN_RESETIDS",
  "POSIX_SPAWN_SETPGROUP",
  "POSIX_SPAWN_SETSIGDEF",
  "POSIX_SPAWN_SETSIGMASK",
  "POSIX_SPAWN_SETSCHEDPARAM",
  "POSIX_SPAWN_SETSCHEDULER",
  "POSIX_SPAWN_USEVFORK",
  "POSIX_SPAWN_SETSID",
  "WNOHANG",
  "WUNTRACED",
  "WCONTINUED",
  "SIG_BLOCK",
  "SIG_UNBLOCK",
  "SIG_SETMASK",
  "_NSIG",
  // dlopen (to find the C `environ` for posix_spawn)
  "RTLD_LAZY",
  // poll
  "POLLIN",
  "POLLOUT",
  "POLLERR",
  "POLLHUP",
  "POLLNVAL",
  // futex and raw syscalls
  "SYS_futex",
  "SYS_pidfd_open",
  "SYS_close_range",
  "SYS_gettid",
  "SYS_memfd_create",
  "FUTEX_WAIT",
  "FUTEX_WAKE",
  "FUTEX_WAIT_BITSET",
  "FUTEX_PRIVATE_FLAG",
  "FUTEX_CLOCK_REALTIME",
  "FUTEX_BITSET_MATCH_ANY",
  "CLOCK_REALTIME",
  "CLOCK_MONOTONIC",
  // pthread (process-shared robust mutexes)
  "PTHREAD_PROCESS_SHARED",
  "PTHREAD_MUTEX_ROBUST",
  // the SIGBUS guard: sigaction flags, si_code values, its handler's syscalls
  "SA_SIGINFO",
  "SA_ONSTACK",
  "SA_RESTART",
  "SA_NODEFER",
  "BUS_ADRERR",
  "BUS_MCEERR_AR",
  "SYS_mmap",
  "SYS_rt_sigaction",
  "SYS_tgkill",
  "SYS_getpid",
  "SYS_sched_yield",
  // the CLI (cli/)
  "_SC_CLK_TCK",
  // --- ipc: POSIX named semaphores and pthread mutexes (ipc/)
  "PTHREAD_MUTEX_ERRORCHECK",
  "SEM_VALUE_MAX",
  "FUTEX_WAITERS",
  "FUTEX_OWNER_DIED",
  "FUTEX_TID_MASK",
  // --- end ipc
  // --- System V semaphores (ipc/sysv_semaphore.ts)
  "SEM_UNDO",
  "GETPID",
  "GETVAL",
  "GETALL",
  "GETNCNT",
  "GETZCNT",
  "SETVAL",
  "SETALL",
  // --- end System V semaphores
  // --- spawn: epoll, for the Bun/Node reactor Worker (spawn/_poll_reactor.ts)
  "EPOLLIN",
  "EPOLLOUT",
  "EPOLLERR",
  "EPOLLHUP",
  "EPOLLONESHOT",
  "EPOLL_CTL_ADD",
  "EPOLL_CTL_MOD",
  "EPOLL_CTL_DEL",
  "EPOLL_CLOEXEC",
  // --- end spawn epoll
] as const;

/** A constant's name, as spelled in C. */
export type ConstantName = typeof CONSTANT_NAMES[number];

/** Names of the structs (and opaque types) whose layout a platform carries. */
export const STRUCT_NAMES = [
  "timespec",
  "stat",
  "dirent",
  "statfs",
  "rlimit",
  "ipc_perm",
  "shmid_ds",
  "shminfo",
  "pollfd",
  "sigset_t",
  "posix_spawnattr_t",
  "posix_spawn_file_actions_t",
  "pthread_mutex_t",
  "pthread_mutexattr_t",
  "sigaction",
  "siginfo_t",
  // --- ipc: sem_t, and glibc's pthread_mutex_t fields (__data.__lock) where known
  "sem_t",
  "pthread_mutex_internals",
  // --- end ipc
  // --- System V semaphores (ipc/sysv_semaphore.ts)
  "sembuf",
  "semid_ds",
  // --- end System V semaphores
  // --- spawn: epoll (spawn/_poll_reactor.ts)
  "epoll_event",
  // --- end spawn epoll
] as const;

/** A struct's name, as spelled in C. */
export type StructName = typeof STRUCT_NAMES[number];

/** How a field is stored: a signed or unsigned integer, or raw bytes. */
export type FieldKind = "int" | "uint" | "bytes";

/** Where one field of a struct lives. Nested fields use dotted names (`shm_perm.mode`). */
export interface FieldLayout {
  /** Byte offset from the start of the struct. */
  readonly offset: number;
  /** Size in bytes. */
  readonly size: number;
  /** Integer signedness, or raw bytes for arrays and opaque members. */
  readonly kind: FieldKind;
}

/** The size, alignment and fields of one struct, as the C compiler lays it out. */
export interface StructLayout {
  /** `sizeof` */
  readonly size: number;
  /** `_Alignof` */
  readonly align: number;
  /** Fields by C name; nested members flattened with dots. Empty for opaque types. */
  readonly fields: Readonly<Record<string, FieldLayout>>;
}

/** Everything shmkit needs to know about one OS/arch/libc. */
export interface Platform {
  /** Operating system, as `Deno.build.os` spells it. */
  readonly os: "linux" | "darwin";
  /** CPU architecture, as `Deno.build.arch` spells it. */
  readonly arch: "x86_64" | "aarch64";
  /** The C library. */
  readonly libc: "gnu" | "darwin";
  /** Whether the suite runs on this platform; false means written from headers only. */
  readonly tested: boolean;
  /** Libraries to open, in order; a symbol missing from the first is looked up in the next. */
  readonly libraries: readonly string[];
  /** The symbol returning the address of the calling thread's errno. */
  readonly errnoLocation: "__errno_location" | "__error";
  /** Constant values; -1 marks a constant this platform lacks. */
  readonly constants: Readonly<Record<ConstantName, number>>;
  /** errno numbers by name (`EEXIST` → 17). */
  readonly errno: Readonly<Record<string, number>>;
  /** Signal numbers by name (`SIGTERM` → 15). */
  readonly signals: Readonly<Record<string, number>>;
  /** Struct layouts by C name. */
  readonly structs: Readonly<Record<StructName, StructLayout>>;
}

/**
 * The raw libc symbol table: every C function shmkit calls, once, with its C
 * prototype beside it. Nothing here checks arguments or errno; the safe
 * modules do.
 *
 * @module
 */
import type { SymbolTable } from "./types.ts";

/** Every libc function shmkit binds, keyed by the name the safe layer calls. */
export const SYMBOLS = {
  // --- errors and system information
  /** int *__errno_location(void);  (Apple: int *__error(void)) — name set per platform */
  errno_location: { args: [], result: "pointer", name: "__errno_location" },
  /** char *strerror(int errnum); */
  strerror: { args: ["i32"], result: "pointer" },
  /** long sysconf(int name); */
  sysconf: { args: ["i32"], result: "i64" },
  /** pid_t getpid(void); */
  getpid: { args: [], result: "i32" },
  /** uid_t geteuid(void); */
  geteuid: { args: [], result: "u32" },
  /** long syscall(long number, ...);  all six arguments passed as registers */
  syscall: {
    args: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"],
    result: "i64",
  },
  /**
   * long syscall(SYS_futex, uint32_t *uaddr, int futex_op, uint32_t val, const struct timespec *timeout, uint32_t *uaddr2, uint32_t val3);
   * futex(2) alone: the word and the timeout as buffers and the ints as i32, so that only the
   * syscall number is a 64-bit parameter (Deno takes those fastest as BigInt); futex returns an int.
   */
  syscall_futex: {
    name: "syscall",
    args: ["i64", "buffer", "i32", "i32", "buffer", "buffer", "i32"],
    result: "i32",
  },
  /** the same, on a worker thread (Deno), for waits that must not block the event loop */
  syscall_nonblocking: {
    name: "syscall",
    args: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"],
    result: "i64",
    nonblocking: true,
  },

  // --- memory mappings
  /** void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);  MAP_FAILED is -1 */
  mmap: {
    args: ["pointer", "usize", "i32", "i32", "i32", "i64"],
    result: "isize",
  },
  /** int munmap(void *addr, size_t length); */
  munmap: { args: ["pointer", "usize"], result: "i32" },
  /** int msync(void *addr, size_t length, int flags); */
  msync: { args: ["pointer", "usize", "i32"], result: "i32" },
  /** int mprotect(void *addr, size_t len, int prot); */
  mprotect: { args: ["pointer", "usize", "i32"], result: "i32" },
  /** int madvise(void *addr, size_t length, int advice); */
  madvise: { args: ["pointer", "usize", "i32"], result: "i32" },
  /** int mlock(const void *addr, size_t len); */
  mlock: { args: ["pointer", "usize"], result: "i32" },
  /** int munlock(const void *addr, size_t len); */
  munlock: { args: ["pointer", "usize"], result: "i32" },
  /** int mincore(void *addr, size_t length, unsigned char *vec); */
  mincore: { args: ["pointer", "usize", "buffer"], result: "i32" },

  // --- file descriptors
  /** int open(const char *pathname, int flags, mode_t mode); */
  open: { args: ["buffer", "i32", "u32"], result: "i32" },
  /** int close(int fd); */
  close: { args: ["i32"], result: "i32" },
  /** ssize_t read(int fd, void *buf, size_t count); */
  read: { args: ["i32", "buffer", "usize"], result: "isize" },
  /** ssize_t write(int fd, const void *buf, size_t count); */
  write: { args: ["i32", "buffer", "usize"], result: "isize" },
  /** ssize_t pread(int fd, void *buf, size_t count, off_t offset); */
  pread: { args: ["i32", "buffer", "usize", "i64"], result: "isize" },
  /** int ftruncate(int fd, off_t length); */
  ftruncate: { args: ["i32", "i64"], result: "i32" },
  /** int fstat(int fd, struct stat *statbuf); */
  fstat: { args: ["i32", "buffer"], result: "i32" },
  /** int stat(const char *pathname, struct stat *statbuf); */
  stat: { args: ["buffer", "buffer"], result: "i32" },
  /** int lstat(const char *pathname, struct stat *statbuf); */
  lstat: { args: ["buffer", "buffer"], result: "i32" },
  /** int statfs(const char *path, struct statfs *buf); */
  statfs: { args: ["buffer", "buffer"], result: "i32" },
  /** int getrlimit(int resource, struct rlimit *rlim); */
  getrlimit: { args: ["i32", "buffer"], result: "i32" },
  /** int fchmod(int fd, mode_t mode); */
  fchmod: { args: ["i32", "u32"], result: "i32" },
  /** int fchown(int fd, uid_t owner, gid_t group); */
  fchown: { args: ["i32", "u32", "u32"], result: "i32" },
  /** int fcntl(int fd, int cmd, ... (int or pointer, passed as a long)); */
  fcntl: { args: ["i32", "i32", "i64"], result: "i32" },
  /** int posix_fallocate(int fd, off_t offset, off_t len);  returns the error number */
  posix_fallocate: { args: ["i32", "i64", "i64"], result: "i32" },
  /** int dup(int oldfd); */
  dup: { args: ["i32"], result: "i32" },
  /** DIR *opendir(const char *name); */
  opendir: { args: ["buffer"], result: "pointer" },
  /** struct dirent *readdir(DIR *dirp);  NULL at the end (errno unchanged) or on error */
  readdir: { args: ["pointer"], result: "pointer" },
  /** int closedir(DIR *dirp); */
  closedir: { args: ["pointer"], result: "i32" },
  /** int pipe2(int pipefd[2], int flags); */
  pipe2: { args: ["buffer", "i32"], result: "i32" },
  /** int poll(struct pollfd *fds, nfds_t nfds, int timeout); */
  poll: { args: ["buffer", "u64", "i32"], result: "i32" },
  /** the same, on a worker thread (Deno) */
  poll_nonblocking: {
    name: "poll",
    args: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },

  // --- POSIX shared memory and memfd
  /** int shm_open(const char *name, int oflag, mode_t mode);  librt before glibc 2.34 */
  shm_open: { args: ["buffer", "i32", "u32"], result: "i32" },
  /** int shm_unlink(const char *name); */
  shm_unlink: { args: ["buffer"], result: "i32" },
  /** int memfd_create(const char *name, unsigned int flags);  glibc 2.27+, Linux */
  memfd_create: { args: ["buffer", "u32"], result: "i32", optional: true },

  // --- System V shared memory
  /** key_t ftok(const char *pathname, int proj_id); */
  ftok: { args: ["buffer", "i32"], result: "i32" },
  /** int shmget(key_t key, size_t size, int shmflg); */
  shmget: { args: ["i32", "usize", "i32"], result: "i32" },
  /** void *shmat(int shmid, const void *shmaddr, int shmflg);  (void *)-1 on error */
  shmat: { args: ["i32", "pointer", "i32"], result: "isize" },
  /** int shmdt(const void *shmaddr); */
  shmdt: { args: ["pointer"], result: "i32" },
  /** int shmctl(int shmid, int cmd, struct shmid_ds *buf); */
  shmctl: { args: ["i32", "i32", "buffer"], result: "i32" },

  // --- processes
  /** int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr, char *const argv[], char *const envp[]);  returns the error number */
  posix_spawn: {
    args: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  /** int posix_spawnp(pid_t *pid, const char *file, ...same as posix_spawn);  searches PATH */
  posix_spawnp: {
    args: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  /** int posix_spawn_file_actions_init(posix_spawn_file_actions_t *fa); */
  posix_spawn_file_actions_init: { args: ["buffer"], result: "i32" },
  /** int posix_spawn_file_actions_destroy(posix_spawn_file_actions_t *fa); */
  posix_spawn_file_actions_destroy: { args: ["buffer"], result: "i32" },
  /** int posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *fa, int fd, int newfd); */
  posix_spawn_file_actions_adddup2: {
    args: ["buffer", "i32", "i32"],
    result: "i32",
  },
  /** int posix_spawn_file_actions_addclose(posix_spawn_file_actions_t *fa, int fd); */
  posix_spawn_file_actions_addclose: { args: ["buffer", "i32"], result: "i32" },
  /** int posix_spawn_file_actions_addopen(posix_spawn_file_actions_t *fa, int fd, const char *path, int oflag, mode_t mode); */
  posix_spawn_file_actions_addopen: {
    args: ["buffer", "i32", "buffer", "i32", "u32"],
    result: "i32",
  },
  /** int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *fa, const char *path);  glibc 2.29+ */
  posix_spawn_file_actions_addchdir_np: {
    args: ["buffer", "buffer"],
    result: "i32",
    optional: true,
  },
  /** int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *fa, int from);  glibc 2.34+ */
  posix_spawn_file_actions_addclosefrom_np: {
    args: ["buffer", "i32"],
    result: "i32",
    optional: true,
  },
  /** int posix_spawnattr_init(posix_spawnattr_t *attr); */
  posix_spawnattr_init: { args: ["buffer"], result: "i32" },
  /** int posix_spawnattr_destroy(posix_spawnattr_t *attr); */
  posix_spawnattr_destroy: { args: ["buffer"], result: "i32" },
  /** int posix_spawnattr_setflags(posix_spawnattr_t *attr, short flags); */
  posix_spawnattr_setflags: { args: ["buffer", "i16"], result: "i32" },
  /** int posix_spawnattr_setsigmask(posix_spawnattr_t *attr, const sigset_t *sigmask); */
  posix_spawnattr_setsigmask: { args: ["buffer", "buffer"], result: "i32" },
  /** int posix_spawnattr_setsigdefault(posix_spawnattr_t *attr, const sigset_t *sigdefault); */
  posix_spawnattr_setsigdefault: { args: ["buffer", "buffer"], result: "i32" },
  /** int posix_spawnattr_setpgroup(posix_spawnattr_t *attr, pid_t pgroup); */
  posix_spawnattr_setpgroup: { args: ["buffer", "i32"], result: "i32" },
  /** int sigemptyset(sigset_t *set); */
  sigemptyset: { args: ["buffer"], result: "i32" },
  /** int sigfillset(sigset_t *set); */
  sigfillset: { args: ["buffer"], result: "i32" },
  /** int sigaddset(sigset_t *set, int signum); */
  sigaddset: { args: ["buffer", "i32"], result: "i32" },
  /** pid_t waitpid(pid_t pid, int *wstatus, int options); */
  waitpid: { args: ["i32", "buffer", "i32"], result: "i32" },
  /** the same, on a worker thread (Deno) */
  waitpid_nonblocking: {
    name: "waitpid",
    args: ["i32", "buffer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  /** int kill(pid_t pid, int sig); */
  kill: { args: ["i32", "i32"], result: "i32" },
  /** int sigaction(int signum, const struct sigaction *act, struct sigaction *oldact);  libc's struct (it sets SA_RESTORER) */
  sigaction: { args: ["i32", "buffer", "buffer"], result: "i32" },
  /** the posix_spawn twin with envp as a raw address (the C `environ` array, passed without copying) */
  posix_spawn_environ: {
    name: "posix_spawn",
    args: ["buffer", "buffer", "buffer", "buffer", "buffer", "pointer"],
    result: "i32",
  },
  /** the posix_spawnp twin with envp as a raw address */
  posix_spawnp_environ: {
    name: "posix_spawnp",
    args: ["buffer", "buffer", "buffer", "buffer", "buffer", "pointer"],
    result: "i32",
  },
  /** void *dlopen(const char *filename, int flags);  NULL filename: the program's global scope, to find `environ`; libdl before glibc 2.34 */
  dlopen: { args: ["buffer", "i32"], result: "pointer", optional: true },
  /** void *dlsym(void *handle, const char *symbol);  here for the data symbol `environ` */
  dlsym: { args: ["pointer", "buffer"], result: "pointer", optional: true },
  /** size_t strlen(const char *s); */
  strlen: { args: ["pointer"], result: "usize" },
  /** char *getenv(const char *name);  NULL when unset; reads the C environment (no Deno --allow-env) */
  getenv: { args: ["buffer"], result: "pointer" },
  /** int unsetenv(const char *name);  takes SHMKIT_FDS out of a child's C environment */
  unsetenv: { args: ["buffer"], result: "i32" },

  // --- process-shared pthread mutexes (for C peers that use them)
  /** int pthread_mutexattr_init(pthread_mutexattr_t *attr); */
  pthread_mutexattr_init: { args: ["buffer"], result: "i32" },
  /** int pthread_mutexattr_setpshared(pthread_mutexattr_t *attr, int pshared); */
  pthread_mutexattr_setpshared: { args: ["buffer", "i32"], result: "i32" },
  /** int pthread_mutexattr_setrobust(pthread_mutexattr_t *attr, int robustness); */
  pthread_mutexattr_setrobust: {
    args: ["buffer", "i32"],
    result: "i32",
    optional: true,
  },
  /** int pthread_mutexattr_destroy(pthread_mutexattr_t *attr); */
  pthread_mutexattr_destroy: { args: ["buffer"], result: "i32" },
  /** int pthread_mutex_init(pthread_mutex_t *mutex, const pthread_mutexattr_t *attr); */
  pthread_mutex_init: { args: ["pointer", "buffer"], result: "i32" },
  /** int pthread_mutex_lock(pthread_mutex_t *mutex); */
  pthread_mutex_lock: { args: ["pointer"], result: "i32" },
  /** int pthread_mutex_trylock(pthread_mutex_t *mutex); */
  pthread_mutex_trylock: { args: ["pointer"], result: "i32" },
  /** int pthread_mutex_unlock(pthread_mutex_t *mutex); */
  pthread_mutex_unlock: { args: ["pointer"], result: "i32" },
  /** int pthread_mutex_consistent(pthread_mutex_t *mutex); */
  pthread_mutex_consistent: {
    args: ["pointer"],
    result: "i32",
    optional: true,
  },
  /** int pthread_mutex_destroy(pthread_mutex_t *mutex); */
  pthread_mutex_destroy: { args: ["pointer"], result: "i32" },

  // --- the creator record and the CLI (shm/_creator.ts, cli/): user xattrs on /dev/shm objects
  /** int fsetxattr(int fd, const char *name, const void *value, size_t size, int flags); */
  fsetxattr: { args: ["i32", "buffer", "buffer", "usize", "i32"], result: "i32", optional: true },
  /** ssize_t lgetxattr(const char *path, const char *name, void *value, size_t size);  never follows a link */
  lgetxattr: { args: ["buffer", "buffer", "buffer", "usize"], result: "isize", optional: true },
  // --- ipc: POSIX named semaphores and pthread mutex extras (ipc/)
  /** int clock_gettime(clockid_t clockid, struct timespec *tp); */
  clock_gettime: { args: ["i32", "buffer"], result: "i32" },
  /** sem_t *sem_open(const char *name, int oflag, mode_t mode, unsigned int value);  variadic, fixed here; SEM_FAILED on error (glibc NULL, Darwin -1) */
  sem_open: { args: ["buffer", "i32", "u32", "u32"], result: "pointer" },
  /** int sem_close(sem_t *sem); */
  sem_close: { args: ["pointer"], result: "i32" },
  /** int sem_unlink(const char *name); */
  sem_unlink: { args: ["buffer"], result: "i32" },
  /** int sem_wait(sem_t *sem); */
  sem_wait: { args: ["pointer"], result: "i32" },
  /** int sem_trywait(sem_t *sem); */
  sem_trywait: { args: ["pointer"], result: "i32" },
  /** int sem_timedwait(sem_t *sem, const struct timespec *abstime);  CLOCK_REALTIME; not on Darwin */
  sem_timedwait: { args: ["pointer", "buffer"], result: "i32", optional: true },
  /** int sem_clockwait(sem_t *sem, clockid_t clock, const struct timespec *abstime);  glibc 2.30+ */
  sem_clockwait: { args: ["pointer", "i32", "buffer"], result: "i32", optional: true },
  /** the same, on a worker thread (Deno); the timespec as an address */
  sem_clockwait_nonblocking: {
    name: "sem_clockwait",
    args: ["pointer", "i32", "pointer"],
    result: "i32",
    optional: true,
    nonblocking: true,
  },
  /** int sem_post(sem_t *sem); */
  sem_post: { args: ["pointer"], result: "i32" },
  /** int sem_getvalue(sem_t *sem, int *sval); */
  sem_getvalue: { args: ["pointer", "buffer"], result: "i32" },
  /** int pthread_mutexattr_settype(pthread_mutexattr_t *attr, int type); */
  pthread_mutexattr_settype: { args: ["buffer", "i32"], result: "i32" },
  /** int pthread_mutex_timedlock(pthread_mutex_t *mutex, const struct timespec *abstime);  CLOCK_REALTIME */
  pthread_mutex_timedlock: { args: ["pointer", "buffer"], result: "i32", optional: true },
  // --- end ipc
  // --- System V semaphores (ipc/sysv_semaphore.ts)
  /** int semget(key_t key, int nsems, int semflg); */
  semget: { args: ["i32", "i32", "i32"], result: "i32" },
  /** int semop(int semid, struct sembuf *sops, size_t nsops); */
  semop: { args: ["i32", "buffer", "usize"], result: "i32" },
  /** int semtimedop(int semid, struct sembuf *sops, size_t nsops, const struct timespec *timeout);  Linux */
  semtimedop: { args: ["i32", "buffer", "usize", "buffer"], result: "i32", optional: true },
  /** the same, on a worker thread (Deno), with the buffers as addresses; errno is that thread's */
  semtimedop_nonblocking: {
    name: "semtimedop",
    args: ["i32", "pointer", "usize", "pointer"],
    result: "i32",
    nonblocking: true,
    optional: true,
  },
  /**
   * int semctl(int semid, int semnum, int cmd, ...);  the variadic `union semun` is one
   * pointer-sized register on x86_64 and aarch64 Linux, so a fixed fourth argument matches it
   * (not on Apple arm64, where variadic arguments go on the stack). This twin passes a pointer
   * (IPC_STAT, IPC_SET, GETALL, SETALL; NULL for the others).
   */
  semctl: { args: ["i32", "i32", "i32", "buffer"], result: "i32" },
  /** the same with `union semun` holding `int val` (SETVAL) */
  semctl_val: { name: "semctl", args: ["i32", "i32", "i32", "i64"], result: "i32" },
  // --- end System V semaphores
  // --- spawn: epoll (spawn/_poll_reactor.ts; Linux only)
  /** int epoll_create1(int flags); */
  epoll_create1: { args: ["i32"], result: "i32", optional: true },
  /** int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event); */
  epoll_ctl: { args: ["i32", "i32", "i32", "buffer"], result: "i32", optional: true },
  /** int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout);  blocks */
  epoll_wait: { args: ["i32", "buffer", "i32", "i32"], result: "i32", optional: true },
  // --- end spawn epoll
} as const satisfies SymbolTable;

/** The libc symbol table's type. */
export type Symbols = typeof SYMBOLS;

/** The loader's own symbols, bound first to look the others up. */
export const LOADER_SYMBOLS = {
  /** void *dlopen(const char *filename, int flags); */
  dlopen: { args: ["buffer", "i32"], result: "pointer" },
  /** void *dlsym(void *handle, const char *symbol); */
  dlsym: { args: ["pointer", "buffer"], result: "pointer" },
} as const satisfies SymbolTable;

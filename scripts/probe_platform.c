/*
 * Probe the C library for the numbers shmkit needs: constants, errno and
 * signal numbers, and struct layouts, exactly as this compiler and these
 * headers see them. Prints one JSON object on stdout; scripts/gen_platform.ts
 * turns it into platform/linux_<arch>.ts and tests/platform_test.ts checks the
 * tables against it.
 *
 * Build: gcc -D_GNU_SOURCE -std=gnu11 -Wall -Werror -o probe probe_platform.c
 * (also builds with aarch64-linux-gnu-gcc; run that one under qemu-aarch64).
 *
 * A constant the headers lack prints as -1 (the tables' "absent" marker).
 * errno and signal names the headers lack are left out.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <spawn.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/resource.h>
/* System V semaphores (ipc/sysv_semaphore.ts) */
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
/* --- spawn: epoll (spawn/_poll_reactor.ts) */
#include <sys/epoll.h>
/* --- end spawn epoll */

/* Comma handling: every emitter prints "," before all but the first entry. */
static int first;

static void open_object(const char *key) {
  printf("%s\"%s\":{", first ? "" : ",", key);
  first = 1;
}

static void close_object(void) {
  printf("}");
  first = 0;
}

static void emit_int(const char *name, int is_signed, long long s,
                     unsigned long long u) {
  if (is_signed) {
    printf("%s\"%s\":%lld", first ? "" : ",", name, s);
  } else {
    printf("%s\"%s\":%llu", first ? "" : ",", name, u);
  }
  first = 0;
}

/* True when the expression's type is signed; works for any integer type.
 * For unsigned types the comparison is always false, which is the point. */
#pragma GCC diagnostic ignored "-Wtype-limits"
#define IS_SIGNED(x) ((__typeof__(x))-1 < 0)

/* Print an integer expression in its own signedness (so 0xffffffffu stays
 * 4294967295 rather than -1). */
#define VALUE(name, x) \
  emit_int(name, IS_SIGNED(x), (long long)(x), (unsigned long long)(x))

/* A macro constant: -1 when this platform's headers lack it. */
#define CONST(c) VALUE(#c, c)
#define ABSENT(c) emit_int(#c, 1, -1, 0)

static void emit_field(const char *name, size_t offset, size_t size,
                       const char *kind) {
  printf("%s\"%s\":{\"offset\":%zu,\"size\":%zu,\"kind\":\"%s\"}",
         first ? "" : ",", name, offset, size, kind);
  first = 0;
}

#define MEMBER(T, f) (((T *)0)->f)
/* An integer field (nested members allowed: FIELD(struct stat, st_atim.tv_sec)). */
#define FIELD(T, f)                                              \
  emit_field(#f, offsetof(T, f), sizeof(MEMBER(T, f)),           \
             IS_SIGNED(MEMBER(T, f)) ? "int" : "uint")
/* An array or opaque member: raw bytes. */
#define BYTES(T, f) emit_field(#f, offsetof(T, f), sizeof(MEMBER(T, f)), "bytes")

#define STRUCT_BEGIN(name, T)                                      \
  open_object(name);                                               \
  printf("\"size\":%zu,\"align\":%zu,\"fields\":{", sizeof(T),     \
         (size_t)alignof(T));                                      \
  first = 1
#define STRUCT_END() \
  printf("}");       \
  close_object()

#define OPAQUE(name, T) \
  STRUCT_BEGIN(name, T); \
  STRUCT_END()

static void constants(void) {
  open_object("constants");

  /* sysconf names (enumerators that glibc also #defines) */
  CONST(_SC_PAGESIZE);
  CONST(_SC_OPEN_MAX);
  CONST(_SC_NPROCESSORS_ONLN);

  /* mmap and friends */
  CONST(PROT_NONE);
  CONST(PROT_READ);
  CONST(PROT_WRITE);
  CONST(PROT_EXEC);
  CONST(MAP_SHARED);
  CONST(MAP_PRIVATE);
#ifdef MAP_SHARED_VALIDATE
  CONST(MAP_SHARED_VALIDATE);
#else
  ABSENT(MAP_SHARED_VALIDATE);
#endif
  CONST(MAP_ANONYMOUS);
  CONST(MAP_FIXED);
#ifdef MAP_FIXED_NOREPLACE
  CONST(MAP_FIXED_NOREPLACE);
#else
  ABSENT(MAP_FIXED_NOREPLACE);
#endif
  CONST(MAP_NORESERVE);
  CONST(MAP_POPULATE);
  CONST(MAP_LOCKED);
  CONST(MS_ASYNC);
  CONST(MS_SYNC);
  CONST(MS_INVALIDATE);
  CONST(MADV_NORMAL);
  CONST(MADV_RANDOM);
  CONST(MADV_SEQUENTIAL);
  CONST(MADV_WILLNEED);
  CONST(MADV_DONTNEED);
#ifdef MADV_FREE
  CONST(MADV_FREE);
#else
  ABSENT(MADV_FREE);
#endif
  CONST(MADV_REMOVE);
  CONST(MADV_DONTFORK);
  CONST(MADV_DOFORK);
  CONST(MADV_HUGEPAGE);
  CONST(MADV_NOHUGEPAGE);
  CONST(MADV_DONTDUMP);
  CONST(MADV_DODUMP);
  CONST(MCL_CURRENT);
  CONST(MCL_FUTURE);
#ifdef MCL_ONFAULT
  CONST(MCL_ONFAULT);
#else
  ABSENT(MCL_ONFAULT);
#endif

  /* open / fcntl */
  CONST(O_RDONLY);
  CONST(O_WRONLY);
  CONST(O_RDWR);
  CONST(O_CREAT);
  CONST(O_EXCL);
  CONST(O_TRUNC);
  CONST(O_APPEND);
  CONST(O_NONBLOCK);
  CONST(O_CLOEXEC);
  CONST(O_NOFOLLOW);
  CONST(O_DIRECTORY);
  CONST(O_ACCMODE);
  CONST(F_DUPFD_CLOEXEC);
  CONST(F_GETFD);
  CONST(F_SETFD);
  CONST(F_GETFL);
  CONST(F_SETFL);
  CONST(FD_CLOEXEC);
#ifdef F_ADD_SEALS
  CONST(F_ADD_SEALS);
  CONST(F_GET_SEALS);
  CONST(F_SEAL_SEAL);
  CONST(F_SEAL_SHRINK);
  CONST(F_SEAL_GROW);
  CONST(F_SEAL_WRITE);
#else
  ABSENT(F_ADD_SEALS);
  ABSENT(F_GET_SEALS);
  ABSENT(F_SEAL_SEAL);
  ABSENT(F_SEAL_SHRINK);
  ABSENT(F_SEAL_GROW);
  ABSENT(F_SEAL_WRITE);
#endif
#ifdef F_SEAL_FUTURE_WRITE
  CONST(F_SEAL_FUTURE_WRITE);
#else
  ABSENT(F_SEAL_FUTURE_WRITE);
#endif
#ifdef MFD_CLOEXEC
  CONST(MFD_CLOEXEC);
  CONST(MFD_ALLOW_SEALING);
  CONST(MFD_HUGETLB);
#else
  ABSENT(MFD_CLOEXEC);
  ABSENT(MFD_ALLOW_SEALING);
  ABSENT(MFD_HUGETLB);
#endif
  CONST(S_IFMT);
  CONST(S_IFREG);
  CONST(S_IFDIR);
  CONST(S_IFIFO);
  CONST(S_IFSOCK);
  CONST(S_IFCHR);
  CONST(S_IFBLK);
  CONST(S_IFLNK);
  CONST(RLIMIT_FSIZE);
  CONST(NAME_MAX);
  CONST(PATH_MAX);

  /* System V IPC */
  CONST(IPC_PRIVATE);
  CONST(IPC_CREAT);
  CONST(IPC_EXCL);
  CONST(IPC_NOWAIT);
  CONST(IPC_RMID);
  CONST(IPC_SET);
  CONST(IPC_STAT);
#ifdef IPC_INFO
  CONST(IPC_INFO);
#else
  ABSENT(IPC_INFO);
#endif
  CONST(SHM_RDONLY);
  CONST(SHM_RND);
#ifdef SHM_REMAP
  CONST(SHM_REMAP);
#else
  ABSENT(SHM_REMAP);
#endif
#ifdef SHM_EXEC
  CONST(SHM_EXEC);
#else
  ABSENT(SHM_EXEC);
#endif
#ifdef SHM_LOCK
  CONST(SHM_LOCK);
  CONST(SHM_UNLOCK);
#else
  ABSENT(SHM_LOCK);
  ABSENT(SHM_UNLOCK);
#endif
#ifdef SHM_STAT
  CONST(SHM_STAT);
  CONST(SHM_INFO);
#else
  ABSENT(SHM_STAT);
  ABSENT(SHM_INFO);
#endif
#ifdef SHM_DEST
  CONST(SHM_DEST);
  CONST(SHM_LOCKED);
#else
  ABSENT(SHM_DEST);
  ABSENT(SHM_LOCKED);
#endif
  /* glibc: SHMLBA is (__getpagesize ()), a run-time value. */
  CONST(SHMLBA);

  /* posix_spawn and wait */
  CONST(POSIX_SPAWN_RESETIDS);
  CONST(POSIX_SPAWN_SETPGROUP);
  CONST(POSIX_SPAWN_SETSIGDEF);
  CONST(POSIX_SPAWN_SETSIGMASK);
  CONST(POSIX_SPAWN_SETSCHEDPARAM);
  CONST(POSIX_SPAWN_SETSCHEDULER);
#ifdef POSIX_SPAWN_USEVFORK
  CONST(POSIX_SPAWN_USEVFORK);
#else
  ABSENT(POSIX_SPAWN_USEVFORK);
#endif
#ifdef POSIX_SPAWN_SETSID
  CONST(POSIX_SPAWN_SETSID);
#else
  ABSENT(POSIX_SPAWN_SETSID);
#endif
  CONST(WNOHANG);
  CONST(WUNTRACED);
  CONST(WCONTINUED);
  CONST(SIG_BLOCK);
  CONST(SIG_UNBLOCK);
  CONST(SIG_SETMASK);
  CONST(_NSIG);
  CONST(RTLD_LAZY);

  /* poll */
  CONST(POLLIN);
  CONST(POLLOUT);
  CONST(POLLERR);
  CONST(POLLHUP);
  CONST(POLLNVAL);

  /* futex and raw syscalls */
  CONST(SYS_futex);
#ifdef SYS_pidfd_open
  CONST(SYS_pidfd_open);
#else
  ABSENT(SYS_pidfd_open);
#endif
#ifdef SYS_close_range
  CONST(SYS_close_range);
#else
  ABSENT(SYS_close_range);
#endif
  CONST(SYS_gettid);
#ifdef SYS_memfd_create
  CONST(SYS_memfd_create);
#else
  ABSENT(SYS_memfd_create);
#endif
  CONST(FUTEX_WAIT);
  CONST(FUTEX_WAKE);
  CONST(FUTEX_WAIT_BITSET);
  CONST(FUTEX_PRIVATE_FLAG);
  CONST(FUTEX_CLOCK_REALTIME);
  CONST(FUTEX_BITSET_MATCH_ANY);
  CONST(CLOCK_REALTIME);
  CONST(CLOCK_MONOTONIC);

  /* pthread: PTHREAD_MUTEX_ROBUST is an enumerator with no #define, so it
   * cannot be guarded; every glibc since 2.12 has it. */
  CONST(PTHREAD_PROCESS_SHARED);
  CONST(PTHREAD_MUTEX_ROBUST);

  /* the SIGBUS guard (core/_sigbus_guard.ts): sigaction flags, si_code
   * values, and the raw syscalls its handler makes */
  CONST(SA_SIGINFO);
  CONST(SA_ONSTACK);
  CONST(SA_RESTART);
  CONST(SA_NODEFER);
  CONST(BUS_ADRERR);
#ifdef BUS_MCEERR_AR
  CONST(BUS_MCEERR_AR);
#else
  ABSENT(BUS_MCEERR_AR);
#endif
  CONST(SYS_mmap);
  CONST(SYS_rt_sigaction);
  CONST(SYS_tgkill);
  CONST(SYS_getpid);
  CONST(SYS_sched_yield);

  /* the CLI (cli/): clock ticks, to turn /proc/<pid>/stat start times into dates */
  CONST(_SC_CLK_TCK);
  /* --- ipc: POSIX named semaphores and pthread mutexes (ipc/) */
  CONST(PTHREAD_MUTEX_ERRORCHECK);
  CONST(SEM_VALUE_MAX);
  CONST(FUTEX_WAITERS);
  CONST(FUTEX_OWNER_DIED);
  CONST(FUTEX_TID_MASK);
  /* --- end ipc */
  /* --- System V semaphores (ipc/sysv_semaphore.ts) */
  CONST(SEM_UNDO);
  CONST(GETPID);
  CONST(GETVAL);
  CONST(GETALL);
  CONST(GETNCNT);
  CONST(GETZCNT);
  CONST(SETVAL);
  CONST(SETALL);
  /* --- end System V semaphores */
  /* --- spawn: epoll (spawn/_poll_reactor.ts) */
  CONST(EPOLLIN);
  CONST(EPOLLOUT);
  CONST(EPOLLERR);
  CONST(EPOLLHUP);
  CONST(EPOLLONESHOT);
  CONST(EPOLL_CTL_ADD);
  CONST(EPOLL_CTL_MOD);
  CONST(EPOLL_CTL_DEL);
  CONST(EPOLL_CLOEXEC);
  /* --- end spawn epoll */

  close_object();
}

static void errnos(void) {
  open_object("errno");
  /* Every name glibc's <errno.h> defines on Linux, in asm-generic order;
   * guarded because a few are arch-specific. */
#define E(e) VALUE(#e, e)
#ifdef EPERM
  E(EPERM);
#endif
#ifdef ENOENT
  E(ENOENT);
#endif
#ifdef ESRCH
  E(ESRCH);
#endif
#ifdef EINTR
  E(EINTR);
#endif
#ifdef EIO
  E(EIO);
#endif
#ifdef ENXIO
  E(ENXIO);
#endif
#ifdef E2BIG
  E(E2BIG);
#endif
#ifdef ENOEXEC
  E(ENOEXEC);
#endif
#ifdef EBADF
  E(EBADF);
#endif
#ifdef ECHILD
  E(ECHILD);
#endif
#ifdef EAGAIN
  E(EAGAIN);
#endif
#ifdef ENOMEM
  E(ENOMEM);
#endif
#ifdef EACCES
  E(EACCES);
#endif
#ifdef EFAULT
  E(EFAULT);
#endif
#ifdef ENOTBLK
  E(ENOTBLK);
#endif
#ifdef EBUSY
  E(EBUSY);
#endif
#ifdef EEXIST
  E(EEXIST);
#endif
#ifdef EXDEV
  E(EXDEV);
#endif
#ifdef ENODEV
  E(ENODEV);
#endif
#ifdef ENOTDIR
  E(ENOTDIR);
#endif
#ifdef EISDIR
  E(EISDIR);
#endif
#ifdef EINVAL
  E(EINVAL);
#endif
#ifdef ENFILE
  E(ENFILE);
#endif
#ifdef EMFILE
  E(EMFILE);
#endif
#ifdef ENOTTY
  E(ENOTTY);
#endif
#ifdef ETXTBSY
  E(ETXTBSY);
#endif
#ifdef EFBIG
  E(EFBIG);
#endif
#ifdef ENOSPC
  E(ENOSPC);
#endif
#ifdef ESPIPE
  E(ESPIPE);
#endif
#ifdef EROFS
  E(EROFS);
#endif
#ifdef EMLINK
  E(EMLINK);
#endif
#ifdef EPIPE
  E(EPIPE);
#endif
#ifdef EDOM
  E(EDOM);
#endif
#ifdef ERANGE
  E(ERANGE);
#endif
#ifdef EDEADLK
  E(EDEADLK);
#endif
#ifdef ENAMETOOLONG
  E(ENAMETOOLONG);
#endif
#ifdef ENOLCK
  E(ENOLCK);
#endif
#ifdef ENOSYS
  E(ENOSYS);
#endif
#ifdef ENOTEMPTY
  E(ENOTEMPTY);
#endif
#ifdef ELOOP
  E(ELOOP);
#endif
#ifdef EWOULDBLOCK
  E(EWOULDBLOCK);
#endif
#ifdef ENOMSG
  E(ENOMSG);
#endif
#ifdef EIDRM
  E(EIDRM);
#endif
#ifdef ECHRNG
  E(ECHRNG);
#endif
#ifdef EL2NSYNC
  E(EL2NSYNC);
#endif
#ifdef EL3HLT
  E(EL3HLT);
#endif
#ifdef EL3RST
  E(EL3RST);
#endif
#ifdef ELNRNG
  E(ELNRNG);
#endif
#ifdef EUNATCH
  E(EUNATCH);
#endif
#ifdef ENOCSI
  E(ENOCSI);
#endif
#ifdef EL2HLT
  E(EL2HLT);
#endif
#ifdef EBADE
  E(EBADE);
#endif
#ifdef EBADR
  E(EBADR);
#endif
#ifdef EXFULL
  E(EXFULL);
#endif
#ifdef ENOANO
  E(ENOANO);
#endif
#ifdef EBADRQC
  E(EBADRQC);
#endif
#ifdef EBADSLT
  E(EBADSLT);
#endif
#ifdef EDEADLOCK
  E(EDEADLOCK);
#endif
#ifdef EBFONT
  E(EBFONT);
#endif
#ifdef ENOSTR
  E(ENOSTR);
#endif
#ifdef ENODATA
  E(ENODATA);
#endif
#ifdef ETIME
  E(ETIME);
#endif
#ifdef ENOSR
  E(ENOSR);
#endif
#ifdef ENONET
  E(ENONET);
#endif
#ifdef ENOPKG
  E(ENOPKG);
#endif
#ifdef EREMOTE
  E(EREMOTE);
#endif
#ifdef ENOLINK
  E(ENOLINK);
#endif
#ifdef EADV
  E(EADV);
#endif
#ifdef ESRMNT
  E(ESRMNT);
#endif
#ifdef ECOMM
  E(ECOMM);
#endif
#ifdef EPROTO
  E(EPROTO);
#endif
#ifdef EMULTIHOP
  E(EMULTIHOP);
#endif
#ifdef EDOTDOT
  E(EDOTDOT);
#endif
#ifdef EBADMSG
  E(EBADMSG);
#endif
#ifdef EOVERFLOW
  E(EOVERFLOW);
#endif
#ifdef ENOTUNIQ
  E(ENOTUNIQ);
#endif
#ifdef EBADFD
  E(EBADFD);
#endif
#ifdef EREMCHG
  E(EREMCHG);
#endif
#ifdef ELIBACC
  E(ELIBACC);
#endif
#ifdef ELIBBAD
  E(ELIBBAD);
#endif
#ifdef ELIBSCN
  E(ELIBSCN);
#endif
#ifdef ELIBMAX
  E(ELIBMAX);
#endif
#ifdef ELIBEXEC
  E(ELIBEXEC);
#endif
#ifdef EILSEQ
  E(EILSEQ);
#endif
#ifdef ERESTART
  E(ERESTART);
#endif
#ifdef ESTRPIPE
  E(ESTRPIPE);
#endif
#ifdef EUSERS
  E(EUSERS);
#endif
#ifdef ENOTSOCK
  E(ENOTSOCK);
#endif
#ifdef EDESTADDRREQ
  E(EDESTADDRREQ);
#endif
#ifdef EMSGSIZE
  E(EMSGSIZE);
#endif
#ifdef EPROTOTYPE
  E(EPROTOTYPE);
#endif
#ifdef ENOPROTOOPT
  E(ENOPROTOOPT);
#endif
#ifdef EPROTONOSUPPORT
  E(EPROTONOSUPPORT);
#endif
#ifdef ESOCKTNOSUPPORT
  E(ESOCKTNOSUPPORT);
#endif
#ifdef EOPNOTSUPP
  E(EOPNOTSUPP);
#endif
#ifdef ENOTSUP
  E(ENOTSUP);
#endif
#ifdef EPFNOSUPPORT
  E(EPFNOSUPPORT);
#endif
#ifdef EAFNOSUPPORT
  E(EAFNOSUPPORT);
#endif
#ifdef EADDRINUSE
  E(EADDRINUSE);
#endif
#ifdef EADDRNOTAVAIL
  E(EADDRNOTAVAIL);
#endif
#ifdef ENETDOWN
  E(ENETDOWN);
#endif
#ifdef ENETUNREACH
  E(ENETUNREACH);
#endif
#ifdef ENETRESET
  E(ENETRESET);
#endif
#ifdef ECONNABORTED
  E(ECONNABORTED);
#endif
#ifdef ECONNRESET
  E(ECONNRESET);
#endif
#ifdef ENOBUFS
  E(ENOBUFS);
#endif
#ifdef EISCONN
  E(EISCONN);
#endif
#ifdef ENOTCONN
  E(ENOTCONN);
#endif
#ifdef ESHUTDOWN
  E(ESHUTDOWN);
#endif
#ifdef ETOOMANYREFS
  E(ETOOMANYREFS);
#endif
#ifdef ETIMEDOUT
  E(ETIMEDOUT);
#endif
#ifdef ECONNREFUSED
  E(ECONNREFUSED);
#endif
#ifdef EHOSTDOWN
  E(EHOSTDOWN);
#endif
#ifdef EHOSTUNREACH
  E(EHOSTUNREACH);
#endif
#ifdef EALREADY
  E(EALREADY);
#endif
#ifdef EINPROGRESS
  E(EINPROGRESS);
#endif
#ifdef ESTALE
  E(ESTALE);
#endif
#ifdef EUCLEAN
  E(EUCLEAN);
#endif
#ifdef ENOTNAM
  E(ENOTNAM);
#endif
#ifdef ENAVAIL
  E(ENAVAIL);
#endif
#ifdef EISNAM
  E(EISNAM);
#endif
#ifdef EREMOTEIO
  E(EREMOTEIO);
#endif
#ifdef EDQUOT
  E(EDQUOT);
#endif
#ifdef ENOMEDIUM
  E(ENOMEDIUM);
#endif
#ifdef EMEDIUMTYPE
  E(EMEDIUMTYPE);
#endif
#ifdef ECANCELED
  E(ECANCELED);
#endif
#ifdef ENOKEY
  E(ENOKEY);
#endif
#ifdef EKEYEXPIRED
  E(EKEYEXPIRED);
#endif
#ifdef EKEYREVOKED
  E(EKEYREVOKED);
#endif
#ifdef EKEYREJECTED
  E(EKEYREJECTED);
#endif
#ifdef EOWNERDEAD
  E(EOWNERDEAD);
#endif
#ifdef ENOTRECOVERABLE
  E(ENOTRECOVERABLE);
#endif
#ifdef ERFKILL
  E(ERFKILL);
#endif
#ifdef EHWPOISON
  E(EHWPOISON);
#endif
#undef E
  close_object();
}

static void signals(void) {
  open_object("signals");
  /* Standard signals only: SIGRTMIN/SIGRTMAX are function calls in glibc
   * (it reserves a few real-time signals for itself), so they are not
   * constants. SIGUNUSED left glibc in 2.26. */
#define S(s) VALUE(#s, s)
  S(SIGHUP);
  S(SIGINT);
  S(SIGQUIT);
  S(SIGILL);
  S(SIGTRAP);
  S(SIGABRT);
  S(SIGIOT);
  S(SIGBUS);
  S(SIGFPE);
  S(SIGKILL);
  S(SIGUSR1);
  S(SIGSEGV);
  S(SIGUSR2);
  S(SIGPIPE);
  S(SIGALRM);
  S(SIGTERM);
#ifdef SIGSTKFLT
  S(SIGSTKFLT);
#endif
  S(SIGCHLD);
#ifdef SIGCLD
  S(SIGCLD);
#endif
  S(SIGCONT);
  S(SIGSTOP);
  S(SIGTSTP);
  S(SIGTTIN);
  S(SIGTTOU);
  S(SIGURG);
  S(SIGXCPU);
  S(SIGXFSZ);
  S(SIGVTALRM);
  S(SIGPROF);
  S(SIGWINCH);
#ifdef SIGIO
  S(SIGIO);
#endif
#ifdef SIGPOLL
  S(SIGPOLL);
#endif
#ifdef SIGPWR
  S(SIGPWR);
#endif
  S(SIGSYS);
#undef S
  close_object();
}

static void structs(void) {
  open_object("structs");

  STRUCT_BEGIN("timespec", struct timespec);
  FIELD(struct timespec, tv_sec);
  FIELD(struct timespec, tv_nsec);
  STRUCT_END();

  STRUCT_BEGIN("stat", struct stat);
  FIELD(struct stat, st_dev);
  FIELD(struct stat, st_ino);
  FIELD(struct stat, st_mode);
  FIELD(struct stat, st_nlink);
  FIELD(struct stat, st_uid);
  FIELD(struct stat, st_gid);
  FIELD(struct stat, st_rdev);
  FIELD(struct stat, st_size);
  FIELD(struct stat, st_blksize);
  FIELD(struct stat, st_blocks);
  FIELD(struct stat, st_atim.tv_sec);
  FIELD(struct stat, st_atim.tv_nsec);
  FIELD(struct stat, st_mtim.tv_sec);
  FIELD(struct stat, st_mtim.tv_nsec);
  FIELD(struct stat, st_ctim.tv_sec);
  FIELD(struct stat, st_ctim.tv_nsec);
  STRUCT_END();

  /* What readdir(3) returns; shmkit reads d_name to list /dev/shm. */
  STRUCT_BEGIN("dirent", struct dirent);
  FIELD(struct dirent, d_ino);
  FIELD(struct dirent, d_reclen);
  FIELD(struct dirent, d_type);
  BYTES(struct dirent, d_name);
  STRUCT_END();

  /* What statfs(2) says of a filesystem; shmkit reads the room left in /dev/shm. */
  STRUCT_BEGIN("statfs", struct statfs);
  FIELD(struct statfs, f_bsize);
  FIELD(struct statfs, f_blocks);
  FIELD(struct statfs, f_bfree);
  FIELD(struct statfs, f_bavail);
  STRUCT_END();

  STRUCT_BEGIN("rlimit", struct rlimit);
  FIELD(struct rlimit, rlim_cur);
  FIELD(struct rlimit, rlim_max);
  STRUCT_END();

  STRUCT_BEGIN("ipc_perm", struct ipc_perm);
  FIELD(struct ipc_perm, __key);
  FIELD(struct ipc_perm, uid);
  FIELD(struct ipc_perm, gid);
  FIELD(struct ipc_perm, cuid);
  FIELD(struct ipc_perm, cgid);
  FIELD(struct ipc_perm, mode);
  FIELD(struct ipc_perm, __seq);
  STRUCT_END();

  /* The embedded ipc_perm, flattened with dotted names. */
  STRUCT_BEGIN("shmid_ds", struct shmid_ds);
  FIELD(struct shmid_ds, shm_perm.__key);
  FIELD(struct shmid_ds, shm_perm.uid);
  FIELD(struct shmid_ds, shm_perm.gid);
  FIELD(struct shmid_ds, shm_perm.cuid);
  FIELD(struct shmid_ds, shm_perm.cgid);
  FIELD(struct shmid_ds, shm_perm.mode);
  FIELD(struct shmid_ds, shm_perm.__seq);
  FIELD(struct shmid_ds, shm_segsz);
  FIELD(struct shmid_ds, shm_atime);
  FIELD(struct shmid_ds, shm_dtime);
  FIELD(struct shmid_ds, shm_ctime);
  FIELD(struct shmid_ds, shm_cpid);
  FIELD(struct shmid_ds, shm_lpid);
  FIELD(struct shmid_ds, shm_nattch);
  STRUCT_END();

  STRUCT_BEGIN("shminfo", struct shminfo);
  FIELD(struct shminfo, shmmax);
  FIELD(struct shminfo, shmmin);
  FIELD(struct shminfo, shmmni);
  FIELD(struct shminfo, shmseg);
  FIELD(struct shminfo, shmall);
  STRUCT_END();

  STRUCT_BEGIN("pollfd", struct pollfd);
  FIELD(struct pollfd, fd);
  FIELD(struct pollfd, events);
  FIELD(struct pollfd, revents);
  STRUCT_END();

  /* Opaque: shmkit only allocates them and hands them to libc. */
  OPAQUE("sigset_t", sigset_t);
  OPAQUE("posix_spawnattr_t", posix_spawnattr_t);
  OPAQUE("posix_spawn_file_actions_t", posix_spawn_file_actions_t);
  OPAQUE("pthread_mutex_t", pthread_mutex_t);
  OPAQUE("pthread_mutexattr_t", pthread_mutexattr_t);

  /* libc's struct sigaction (what sigaction(3) takes, not the kernel's);
   * pointers and the mask as raw bytes. */
  STRUCT_BEGIN("sigaction", struct sigaction);
  BYTES(struct sigaction, sa_handler);
  BYTES(struct sigaction, sa_mask);
  FIELD(struct sigaction, sa_flags);
  BYTES(struct sigaction, sa_restorer);
  STRUCT_END();

  STRUCT_BEGIN("siginfo_t", siginfo_t);
  FIELD(siginfo_t, si_signo);
  FIELD(siginfo_t, si_code);
  BYTES(siginfo_t, si_addr);
  STRUCT_END();

  /* --- ipc: the sem_t sem_open maps, and glibc's mutex lock word (ipc/) */
  OPAQUE("sem_t", sem_t);
  STRUCT_BEGIN("pthread_mutex_internals", pthread_mutex_t);
  FIELD(pthread_mutex_t, __data.__lock);
  FIELD(pthread_mutex_t, __data.__owner);
  STRUCT_END();
  /* --- end ipc */
  /* --- System V semaphores (ipc/sysv_semaphore.ts) */
  STRUCT_BEGIN("sembuf", struct sembuf);
  FIELD(struct sembuf, sem_num);
  FIELD(struct sembuf, sem_op);
  FIELD(struct sembuf, sem_flg);
  STRUCT_END();

  STRUCT_BEGIN("semid_ds", struct semid_ds);
  FIELD(struct semid_ds, sem_perm.__key);
  FIELD(struct semid_ds, sem_perm.uid);
  FIELD(struct semid_ds, sem_perm.gid);
  FIELD(struct semid_ds, sem_perm.cuid);
  FIELD(struct semid_ds, sem_perm.cgid);
  FIELD(struct semid_ds, sem_perm.mode);
  FIELD(struct semid_ds, sem_otime);
  FIELD(struct semid_ds, sem_ctime);
  FIELD(struct semid_ds, sem_nsems);
  STRUCT_END();
  /* --- end System V semaphores */
  /* --- spawn: epoll (spawn/_poll_reactor.ts); packed on x86_64 */
  STRUCT_BEGIN("epoll_event", struct epoll_event);
  FIELD(struct epoll_event, events);
  FIELD(struct epoll_event, data.u64);
  STRUCT_END();
  /* --- end spawn epoll */

  close_object();
}

#define STR2(x) #x
#define STR(x) STR2(x)

int main(void) {
  printf("{");
  first = 1;
  /* Provenance for the generated file's header; not part of a table. */
  open_object("toolchain");
  printf("\"gcc\":\"%d.%d.%d\",\"glibc\":\"%s\"", __GNUC__, __GNUC_MINOR__,
         __GNUC_PATCHLEVEL__, STR(__GLIBC__) "." STR(__GLIBC_MINOR__));
  close_object();
  constants();
  errnos();
  signals();
  structs();
  printf("}\n");
  return ferror(stdout) ? 1 : 0;
}

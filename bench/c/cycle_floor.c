/*
 * The floor of shmkit's safe create/destroy cycles, in C: the bare cycles of
 * bench/c/shm_cycle.c and bench/c/sysv_cycle.c, then the same cycles with
 * the system calls the safe layer adds, one at a time and all together, in
 * alternating rounds (medians). What no JavaScript can go below while
 * keeping those checks. Used by bench/cycle_parts.ts.
 *
 * POSIX additions: getrlimit(RLIMIT_FSIZE) (SIGXFSZ check), fsetxattr (the
 * creator record `shmkit gc` reads), fstat (identity at create), stat of
 * /dev/shm/NAME (identity before unlink), and the close quarantine: munmap
 * replaced by an anonymous MAP_FIXED zero page, the zero pages unmapped 64
 * at a time (touching ones in one call). System V: shmdt replaced by the same quarantine.
 *
 * SharedMemory.create defers the creator record of an object the cleaner
 * removes anyway to the end of the job, so a cycle within one job makes
 * all but the fsetxattr ("safe").
 *
 * Usage: cycle_floor [rounds] [iterations per round] [all|safe|sysv-quarantine]
 * Prints one line per variant: name, median ns, difference, ratio. With a
 * third argument, only that variant's median ns (for the bench rows).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include "clock.h"

enum { BARE, RLIMIT, XATTR, FSTAT, STATPATH, QUARANTINE, ALL, SAFE, SYSV, SYSV_QUARANTINE, VARIANTS };
static const char *labels[VARIANTS] = {
  "POSIX bare (shm_cycle.c)",
  "POSIX + getrlimit",
  "POSIX + fsetxattr (creator record)",
  "POSIX + fstat (identity at create)",
  "POSIX + stat /dev/shm/NAME (identity at unlink)",
  "POSIX, munmap -> quarantine",
  "POSIX, all of the above",
  "POSIX, all but fsetxattr (deferred: a cycle in one job)",
  "System V bare (sysv_cycle.c)",
  "System V, shmdt -> quarantine",
};

static char name[64], path[96];
static void *held[64];
static int count;

static int compare(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int compare_pointers(const void *a, const void *b) {
  char *x = *(char *const *)a, *y = *(char *const *)b;
  return (x > y) - (x < y);
}

static int quarantine(void *p) {
  if (mmap(p, 4096, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED)
    return -1;
  held[count++] = p;
  if (count == 64) {
    /* Touching ranges in one call, as core/_quarantine.ts does. */
    qsort(held, 64, sizeof held[0], compare_pointers);
    char *start = held[0], *end = start + 4096;
    for (int i = 1; i < 64; i++) {
      if ((char *)held[i] == end) { end += 4096; continue; }
      munmap(start, end - start);
      start = held[i];
      end = start + 4096;
    }
    munmap(start, end - start);
    count = 0;
  }
  return 0;
}

static int cycle(int v) {
  struct rlimit limit;
  struct stat st;
  if (v == SYSV || v == SYSV_QUARANTINE) {
    int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | IPC_EXCL | 0600);
    if (id == -1) return -1;
    unsigned char *p = shmat(id, NULL, 0);
    if (p == (void *)-1) return -1;
    ((volatile unsigned char *)p)[0] = 1;
    if (v == SYSV ? shmdt(p) : quarantine(p)) return -1;
    return shmctl(id, IPC_RMID, NULL);
  }
  if ((v == RLIMIT || v == ALL || v == SAFE) && getrlimit(RLIMIT_FSIZE, &limit)) return -1;
  int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd == -1) return -1;
  /* Best-effort in shmkit too (tmpfs takes user xattrs from Linux 6.6). */
  if (v == XATTR || v == ALL) fsetxattr(fd, "user.shmkit.creator", "1234567:123456789:4026531836", 28, 0);
  if (posix_fallocate(fd, 0, 4096)) return -1;
  if ((v == FSTAT || v == ALL || v == SAFE) && fstat(fd, &st)) return -1;
  unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return -1;
  memset(p, 1, 4096);
  if (v == QUARANTINE || v == ALL || v == SAFE ? quarantine(p) : munmap(p, 4096)) return -1;
  if (close(fd)) return -1;
  if ((v == STATPATH || v == ALL || v == SAFE) && stat(path, &st)) return -1;
  return shm_unlink(name);
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 9;
  int iterations = argc > 2 ? atoi(argv[2]) : 2000;
  if (rounds < 1 || rounds > 99 || iterations < 1) return 2;
  snprintf(name, sizeof name, "/shmkit-bench-floor-%d", (int)getpid());
  snprintf(path, sizeof path, "/dev/shm%s", name);
  if (argc > 3) {
    int only = !strcmp(argv[3], "all") ? ALL
             : !strcmp(argv[3], "safe") ? SAFE
             : !strcmp(argv[3], "sysv-quarantine") ? SYSV_QUARANTINE : -1;
    if (only == -1) return 2;
    double one[99];
    for (int r = -1; r < rounds; r++) {
      double start = now_ns();
      for (int i = 0; i < iterations; i++) {
        if (cycle(only) == -1) { perror(labels[only]); shm_unlink(name); return 1; }
      }
      if (r >= 0) one[r] = (now_ns() - start) / iterations;
    }
    qsort(one, rounds, sizeof(double), compare);
    printf("%.1f\n", one[rounds / 2]);
    return 0;
  }
  static double samples[VARIANTS][99];
  for (int r = 0; r < rounds; r++) {
    for (int v = 0; v < VARIANTS; v++) {
      double start = now_ns();
      for (int i = 0; i < iterations; i++) {
        if (cycle(v) == -1) { perror(labels[v]); shm_unlink(name); return 1; }
      }
      samples[v][r] = (now_ns() - start) / iterations;
    }
  }
  for (int v = 0; v < VARIANTS; v++) qsort(samples[v], rounds, sizeof(double), compare);
  for (int v = 0; v < VARIANTS; v++) {
    double base = samples[v >= SYSV ? SYSV : BARE][rounds / 2];
    double median = samples[v][rounds / 2];
    printf("%-50s %8.0f ns %+7.0f ns %5.2fx\n", labels[v], median, median - base, median / base);
  }
  return 0;
}

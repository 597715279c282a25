// Wake-up round trips for bench/ipc_bench.ts and bench/sysvsem_bench.ts.
//
// Peers (the other side of a shmkit async wait), each doing N round trips:
//   sem-peer NAME_A NAME_B N   sem_wait(A); sem_post(B)
//   sysv-peer ID N             semop(sem 0, -1); semop(sem 1, +1)
//   mutex-peer PATH N          3-mutex relay over the file's first 192 bytes
//                              (mutexes at 0, 64, 128, initialised by the
//                              caller, who holds mutex 1): locks 0 and 2,
//                              prints "ready", then for t < N unlocks
//                              m[2t % 3] and locks m[(2t + 1) % 3]
// Baselines (the same protocol with a C waiter blocked in sem_wait, semop,
// pthread_mutex_lock), ns per round trip, median of 7 rounds of N:
//   sem-base N | sysv-base N | mutex-base N
//
// Before each post / +1 / unlock the peer waits until the other side is
// registered as a waiter (glibc's sem waiter count, GETNCNT, the mutex's
// FUTEX_WAITERS bit), so every round trip wakes a blocked waiter instead of
// letting it find the count already there. It gives up after WAITER_SPINS
// looks (a waiter that polls instead of blocking never registers).
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/sem.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#define ROUNDS 7
#define STRIDE 64
#define WAITER_SPINS 200000

static void die(const char *what) {
  perror(what);
  exit(1);
}

static pthread_mutex_t *mutex_at(char *base, long i) {
  return (pthread_mutex_t *)(base + STRIDE * (i % 3));
}

static void lock(pthread_mutex_t *m) {
  int rc = pthread_mutex_lock(m);
  if (rc != 0) {
    fprintf(stderr, "pthread_mutex_lock: %s\n", strerror(rc));
    exit(1);
  }
}

static void unlock(pthread_mutex_t *m) {
  int rc = pthread_mutex_unlock(m);
  if (rc != 0) {
    fprintf(stderr, "pthread_mutex_unlock: %s\n", strerror(rc));
    exit(1);
  }
}

// glibc's 64-bit sem_t keeps the value in the low and the number of
// waiters in the high half of its first 64-bit word (nptl's struct new_sem).
static void await_sem_waiter(sem_t *sem) {
#if defined(__GLIBC__) && __WORDSIZE == 64
  _Atomic unsigned long *data = (_Atomic unsigned long *)sem;
  for (long i = 0; i < WAITER_SPINS && (atomic_load(data) >> 32) == 0; i++) sched_yield();
#else
  (void)sem;
#endif
}

static void sem_peer(sem_t *a, sem_t *b, long n) {
  for (long i = 0; i < n; i++) {
    while (sem_wait(a) != 0) {}
    await_sem_waiter(b);
    if (sem_post(b) != 0) die("sem_post");
  }
}

static void semop1(int id, unsigned short index, short delta) {
  struct sembuf op = {index, delta, 0};
  while (semop(id, &op, 1) != 0) {}
}

static void sysv_peer(int id, long n) {
  for (long i = 0; i < n; i++) {
    semop1(id, 0, -1);
    for (long k = 0; k < WAITER_SPINS && semctl(id, 1, GETNCNT) == 0; k++) sched_yield();
    semop1(id, 1, 1);
  }
}

static void await_mutex_waiter(pthread_mutex_t *m) {
  _Atomic int *word = (_Atomic int *)&m->__data.__lock;
  for (long i = 0; i < WAITER_SPINS && (atomic_load(word) & FUTEX_WAITERS) == 0; i++) {
    sched_yield();
  }
}

// Holds m0 and m2 on entry (the other side holds m1).
static void mutex_peer(char *base, long n) {
  for (long t = 0; t < n; t++) {
    await_mutex_waiter(mutex_at(base, 2 * t));
    unlock(mutex_at(base, 2 * t));
    lock(mutex_at(base, 2 * t + 1));
  }
}

static void init_mutexes(char *base) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
  for (int i = 0; i < 3; i++) pthread_mutex_init(mutex_at(base, i), &attr);
  pthread_mutexattr_destroy(&attr);
}

static void report(double *samples) {
  qsort(samples, ROUNDS, sizeof samples[0], compare_doubles);
  printf("%.1f\n", samples[ROUNDS / 2]);
}

static int baseline(const char *kind, long n) {
  long total = n * (ROUNDS + 1);
  double samples[ROUNDS];
  if (strcmp(kind, "sem-base") == 0) {
    sem_t *pair = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (pair == MAP_FAILED) die("mmap");
    sem_init(&pair[0], 1, 0);
    sem_init(&pair[1], 1, 0);
    pid_t child = fork();
    if (child == 0) {
      sem_peer(&pair[0], &pair[1], total);
      _exit(0);
    }
    for (int r = -1; r < ROUNDS; r++) {
      double t = now_ns();
      for (long i = 0; i < n; i++) {
        sem_post(&pair[0]);
        while (sem_wait(&pair[1]) != 0) {}
      }
      if (r >= 0) samples[r] = (now_ns() - t) / n;
    }
    waitpid(child, NULL, 0);
  } else if (strcmp(kind, "sysv-base") == 0) {
    int id = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
    if (id == -1) die("semget");
    pid_t child = fork();
    if (child == 0) {
      sysv_peer(id, total);
      _exit(0);
    }
    for (int r = -1; r < ROUNDS; r++) {
      double t = now_ns();
      for (long i = 0; i < n; i++) {
        semop1(id, 0, 1);
        semop1(id, 1, -1);
      }
      if (r >= 0) samples[r] = (now_ns() - t) / n;
    }
    waitpid(child, NULL, 0);
    semctl(id, 0, IPC_RMID);
  } else if (strcmp(kind, "mutex-base") == 0) {
    char *base = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) die("mmap");
    init_mutexes(base);
    lock(mutex_at(base, 1));
    int ready[2];
    if (pipe(ready) != 0) die("pipe");
    pid_t child = fork();
    if (child == 0) {
      lock(mutex_at(base, 0));
      lock(mutex_at(base, 2));
      if (write(ready[1], "r", 1) != 1) _exit(1);
      mutex_peer(base, total);
      _exit(0);
    }
    char byte;
    if (read(ready[0], &byte, 1) != 1) die("read");
    long t = 0;
    for (int r = -1; r < ROUNDS; r++) {
      double start = now_ns();
      for (long i = 0; i < n; i++, t++) {
        lock(mutex_at(base, 2 * t));
        unlock(mutex_at(base, 2 * t + 1));
      }
      if (r >= 0) samples[r] = (now_ns() - start) / n;
    }
    waitpid(child, NULL, 0);
  } else {
    return 2;
  }
  report(samples);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  const char *kind = argv[1];
  if (strcmp(kind, "sem-peer") == 0 && argc == 5) {
    sem_t *a = sem_open(argv[2], 0);
    sem_t *b = sem_open(argv[3], 0);
    if (a == SEM_FAILED || b == SEM_FAILED) die("sem_open");
    sem_peer(a, b, atol(argv[4]));
    return 0;
  }
  if (strcmp(kind, "sysv-peer") == 0 && argc == 4) {
    sysv_peer(atoi(argv[2]), atol(argv[3]));
    return 0;
  }
  if (strcmp(kind, "mutex-peer") == 0 && argc == 4) {
    int fd = open(argv[2], O_RDWR);
    if (fd == -1) die("open");
    char *base = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) die("mmap");
    lock(mutex_at(base, 0));
    lock(mutex_at(base, 2));
    printf("ready\n");
    fflush(stdout);
    mutex_peer(base, atol(argv[3]));
    return 0;
  }
  return baseline(kind, atol(argv[2]));
}

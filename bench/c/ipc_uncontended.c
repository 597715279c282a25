// Baseline for bench/ipc_bench.ts: uncontended pairs in ns per pair, median
// of 7 rounds of N pairs (default 10000000).
//   sem      sem_wait + sem_post on a POSIX named semaphore (sem_open)
//   pthread  pthread_mutex_lock + unlock on a process-shared, robust,
//            error-checking mutex in shared memory (as ipc/PthreadMutex)
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

int main(int argc, char **argv) {
  int sem_mode = argc > 1 && strcmp(argv[1], "sem") == 0;
  long n = argc > 2 ? atol(argv[2]) : 10000000;
  sem_t *sem = NULL;
  pthread_mutex_t *mutex = NULL;
  if (sem_mode) {
    char name[64];
    snprintf(name, sizeof name, "/shmkit-bench-sem-%d", (int)getpid());
    sem = sem_open(name, O_CREAT | O_EXCL, 0600, 1);
    if (sem == SEM_FAILED) return 1;
    sem_unlink(name);
  } else {
    mutex = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mutex == MAP_FAILED) return 1;
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(mutex, &attr);
  }
  volatile long counter = 0;
  double samples[7];
  for (int r = -1; r < 7; r++) {
    double t = now_ns();
    if (sem_mode) {
      for (long i = 0; i < n; i++) {
        sem_wait(sem);
        counter++;
        sem_post(sem);
      }
    } else {
      for (long i = 0; i < n; i++) {
        pthread_mutex_lock(mutex);
        counter++;
        pthread_mutex_unlock(mutex);
      }
    }
    if (r >= 0) samples[r] = (now_ns() - t) / n;
  }
  qsort(samples, 7, sizeof samples[0], compare_doubles);
  printf("%.2f\n", samples[3]);
  return counter == 8 * n ? 0 : 2;
}

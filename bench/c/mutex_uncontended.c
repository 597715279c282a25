// Baseline: uncontended pthread_mutex_lock + pthread_mutex_unlock in ns per
// pair, median of 7 rounds of N pairs (default 10000000). With "robust", the
// mutex is process-shared and robust (PTHREAD_PROCESS_SHARED,
// PTHREAD_MUTEX_ROBUST) in shared memory, as shmkit's Mutex is; without, a
// default mutex.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include "clock.h"

int main(int argc, char **argv) {
  int robust = argc > 1 && strcmp(argv[1], "robust") == 0;
  long n = argc > 2 ? atol(argv[2]) : 10000000;
  pthread_mutex_t *mutex = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mutex == MAP_FAILED) return 1;
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  if (robust) {
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  }
  pthread_mutex_init(mutex, &attr);
  volatile long counter = 0;
  double samples[7];
  for (int r = -1; r < 7; r++) {
    double t = now_ns();
    for (long i = 0; i < n; i++) {
      pthread_mutex_lock(mutex);
      counter++;
      pthread_mutex_unlock(mutex);
    }
    if (r >= 0) samples[r] = (now_ns() - t) / n;
  }
  qsort(samples, 7, sizeof samples[0], compare_doubles);
  printf("%.2f\n", samples[3]);
  return counter == 8 * n ? 0 : 2;
}

/* The baselines' one clock: CLOCK_MONOTONIC, as the runtimes' performance.now(). */
#ifndef SHMKIT_BENCH_CLOCK_H
#define SHMKIT_BENCH_CLOCK_H
#include <time.h>

static inline double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}
#endif

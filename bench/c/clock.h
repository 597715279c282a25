/*
 * The baselines' one clock, CLOCK_MONOTONIC as the runtimes' performance.now(),
 * and the one order their samples are sorted in for medians.
 */
#ifndef SHMKIT_BENCH_CLOCK_H
#define SHMKIT_BENCH_CLOCK_H
#include <time.h>

static inline double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* qsort's comparison for doubles, ascending. */
static inline int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
#endif

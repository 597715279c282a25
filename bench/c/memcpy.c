// Baseline: memcpy bandwidth in GB/s for a given size (default 256 MiB),
// median of 7 rounds, into a buffer already faulted in (as a mapping view is).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "clock.h"

static double now(void) { return now_ns() * 1e-9; }

int main(int argc, char **argv) {
  size_t size = argc > 1 ? strtoull(argv[1], NULL, 10) : (size_t)256 << 20;
  char *src = malloc(size), *dst = malloc(size);
  if (!src || !dst) return 1;
  memset(src, 1, size);
  memset(dst, 0, size);
  double rates[7];
  for (int r = 0; r < 7; r++) {
    double t = now();
    memcpy(dst, src, size);
    rates[r] = size / (now() - t) / 1e9;
    // Keep the copy from being optimised away.
    if (dst[size / 2] != 1) return 2;
  }
  qsort(rates, 7, sizeof rates[0], compare_doubles);
  printf("%.3f\n", rates[3]);
  return 0;
}

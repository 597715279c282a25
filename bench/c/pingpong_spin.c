// Baseline: round trip between two processes that spin on words in shared
// memory (fork + MAP_SHARED|MAP_ANONYMOUS), in ns per round trip, median of
// 7 rounds of N round trips (default 200000).
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "clock.h"

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 200000;
  const int rounds = 7;
  // ping and pong on separate cache lines, as the channel's head and tail.
  _Atomic int *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) return 1;
  _Atomic int *ping = &shared[0], *pong = &shared[32];
  pid_t child = fork();
  if (child == 0) {
    for (long i = 1; i <= n * (rounds + 1); i++) {
      while (atomic_load(ping) != (int)i) {}
      atomic_store(pong, (int)i);
    }
    _exit(0);
  }
  double samples[7];
  long i = 1;
  for (int r = -1; r < rounds; r++) {
    double t = now_ns();
    for (long k = 0; k < n; k++, i++) {
      atomic_store(ping, (int)i);
      while (atomic_load(pong) != (int)i) {}
    }
    if (r >= 0) samples[r] = (now_ns() - t) / n;
  }
  waitpid(child, NULL, 0);
  qsort(samples, rounds, sizeof samples[0], compare_doubles);
  printf("%.1f\n", samples[rounds / 2]);
  return 0;
}

// Baseline: round trip between two processes that sleep in futex
// (FUTEX_WAIT/FUTEX_WAKE, no private flag) on words in shared memory, in ns
// per round trip, median of 7 rounds of N round trips (default 20000).
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "clock.h"

static void await_value(_Atomic int *word, int value) {
  int seen;
  while ((seen = atomic_load(word)) != value) {
    syscall(SYS_futex, word, FUTEX_WAIT, seen, NULL, NULL, 0);
  }
}

static void publish(_Atomic int *word, int value) {
  atomic_store(word, value);
  syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 20000;
  const int rounds = 7;
  _Atomic int *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) return 1;
  _Atomic int *ping = &shared[0], *pong = &shared[32];
  pid_t child = fork();
  if (child == 0) {
    for (long i = 1; i <= n * (rounds + 1); i++) {
      await_value(ping, (int)i);
      publish(pong, (int)i);
    }
    _exit(0);
  }
  double samples[7];
  long i = 1;
  for (int r = -1; r < rounds; r++) {
    double t = now_ns();
    for (long k = 0; k < n; k++, i++) {
      publish(ping, (int)i);
      await_value(pong, (int)i);
    }
    if (r >= 0) samples[r] = (now_ns() - t) / n;
  }
  waitpid(child, NULL, 0);
  qsort(samples, rounds, sizeof samples[0], compare_doubles);
  printf("%.1f\n", samples[rounds / 2]);
  return 0;
}

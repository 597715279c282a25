/*
 * Baseline for bench/sysv_bench.ts: one System V segment's whole life per
 * iteration, as a C program lives it: shmget(IPC_PRIVATE, SIZE,
 * IPC_CREAT|IPC_EXCL|0600), shmat, write one word, shmdt, shmctl(IPC_RMID).
 * Prints the median nanoseconds per cycle over several rounds, last on its
 * line.
 *
 * Usage: sysv_cycle [size] [iterations per round] [rounds]
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <time.h>

#include "clock.h"

static int cycle(size_t size, unsigned value) {
  int id = shmget(IPC_PRIVATE, size, IPC_CREAT | IPC_EXCL | 0600);
  if (id == -1) return -1;
  volatile unsigned *p = shmat(id, NULL, 0);
  if (p == (void *)-1) return -1;
  p[0] = value;
  if (shmdt((const void *)p) == -1) return -1;
  return shmctl(id, IPC_RMID, NULL);
}

int main(int argc, char **argv) {
  size_t size = argc > 1 ? strtoul(argv[1], NULL, 10) : 4096;
  int iterations = argc > 2 ? atoi(argv[2]) : 20000;
  int rounds = argc > 3 ? atoi(argv[3]) : 7;
  if (size < 1 || iterations < 1 || rounds < 1 || rounds > 99) return 2;
  double samples[99];
  for (int i = 0; i < iterations; i++) {
    if (cycle(size, i) == -1) { perror("cycle"); return 1; }
  }
  for (int r = 0; r < rounds; r++) {
    double start = now_ns();
    for (int i = 0; i < iterations; i++) {
      if (cycle(size, i) == -1) { perror("cycle"); return 1; }
    }
    samples[r] = (now_ns() - start) / iterations;
  }
  qsort(samples, rounds, sizeof samples[0], compare_doubles);
  printf("%.1f\n", samples[rounds / 2]);
  return 0;
}

/*
 * Baseline for bench/shm_bench.ts: one POSIX shared memory object's whole
 * life per iteration, doing what SharedMemory.create + using does:
 * shm_open(O_CREAT|O_EXCL|O_RDWR|O_CLOEXEC, 0600), posix_fallocate (space
 * reserved up front; it sets the size too, as ftruncate would),
 * mmap(MAP_SHARED), write one page, munmap, close, shm_unlink. Prints the median nanoseconds per cycle
 * over several rounds, last on its line.
 *
 * Usage: shm_cycle [size] [iterations per round] [rounds]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include "clock.h"

static int compare(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static char name[64];

static int cycle(size_t size, int value) {
  int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd == -1) return -1;
  if (posix_fallocate(fd, 0, (off_t)size) != 0) return -1;
  unsigned char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return -1;
  memset(p, value, size);
  /* Keep the writes from being optimised away. */
  if (((volatile unsigned char *)p)[size - 1] != (unsigned char)value) return -1;
  if (munmap(p, size) == -1) return -1;
  if (close(fd) == -1) return -1;
  return shm_unlink(name);
}

int main(int argc, char **argv) {
  size_t size = argc > 1 ? strtoul(argv[1], NULL, 10) : 4096;
  int iterations = argc > 2 ? atoi(argv[2]) : 20000;
  int rounds = argc > 3 ? atoi(argv[3]) : 7;
  if (size < 1 || iterations < 1 || rounds < 1 || rounds > 99) return 2;
  snprintf(name, sizeof name, "/shmkit-bench-c-%d", (int)getpid());
  double samples[99];
  for (int i = 0; i < iterations; i++) {
    if (cycle(size, i) == -1) { perror("cycle"); shm_unlink(name); return 1; }
  }
  for (int r = 0; r < rounds; r++) {
    double start = now_ns();
    for (int i = 0; i < iterations; i++) {
      if (cycle(size, i) == -1) { perror("cycle"); shm_unlink(name); return 1; }
    }
    samples[r] = (now_ns() - start) / iterations;
  }
  qsort(samples, rounds, sizeof samples[0], compare);
  printf("%.1f\n", samples[rounds / 2]);
  return 0;
}

// Baseline: an uncontended System V semaphore lock + unlock (semop -1 then
// +1, both with SEM_UNDO) in ns per pair, median of `rounds` rounds of N
// pairs (default 7 rounds of 1000000), on an IPC_PRIVATE set removed at the end.
#include <stdio.h>
#include <stdlib.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <time.h>
#include "clock.h"

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  int rounds = argc > 2 ? atoi(argv[2]) : 7;
  if (rounds < 1 || rounds > 99) return 64;
  int id = semget(IPC_PRIVATE, 1, IPC_CREAT | IPC_EXCL | 0600);
  if (id < 0) return 1;
  struct sembuf up = {0, 1, SEM_UNDO}, down = {0, -1, SEM_UNDO};
  int status = semop(id, &up, 1) == 0 ? 0 : 2;
  double samples[99];
  for (int r = -1; r < rounds && status == 0; r++) {
    double t = now_ns();
    for (long i = 0; i < n; i++) {
      if (semop(id, &down, 1) != 0 || semop(id, &up, 1) != 0) {
        status = 3;
        break;
      }
    }
    if (r >= 0) samples[r] = (now_ns() - t) / n;
  }
  semctl(id, 0, IPC_RMID);
  if (status != 0) return status;
  qsort(samples, rounds, sizeof samples[0], compare_doubles);
  printf("%.2f\n", samples[rounds / 2]);
  return 0;
}

/*
 * Baseline for bench/spawn_bench.ts: posix_spawn + waitpid of /bin/true from
 * C, with the same hygiene shmkit's spawn() applies (every catchable signal
 * reset to SIG_DFL, an empty signal mask, fds from 3 up closed), so both sides
 * do the same work. Prints the median microseconds per spawn+wait over
 * several rounds, last on its line.
 *
 * Usage: spawn_true [iterations per round] [rounds] [idle threads] [how]
 *
 * For bench/spawn_parts.ts, the last two show what a runtime's shape costs:
 * `idle threads` (default 0) sleeping threads that have run once, as a
 * runtime has; `how` the wait: "waitpid" (default, blocking), "pidfd" (poll
 * the child's pidfd, then reap: one wake-up, as Bun.spawn), or "thread" (a
 * second thread polls the pidfd and wakes this one through an eventfd, then
 * it reaps: the two wake-ups of a runtime whose loop can't watch an fd).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <unistd.h>
#include "clock.h"

extern char **environ;

static double now_us(void) { return now_ns() / 1e3; }

static int compare(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void *idle_thread(void *unused) {
  (void)unused;
  volatile double x = 0;
  for (int i = 0; i < 100000; i++) x += i; /* run once, as a runtime's threads do */
  for (;;) pause();
  return NULL;
}

/* The waiter thread of "thread": polls the pidfd it is handed, then signals. */
static int handoff, done;

/* "signal": the self-pipe a SIGCHLD handler writes to. */
static int signal_pipe[2];

static void on_child(int sig) {
  (void)sig;
  char byte = 1;
  if (write(signal_pipe[1], &byte, 1) < 0) {
  }
}

static void *waiter_thread(void *unused) {
  (void)unused;
  for (;;) {
    uint64_t fd;
    if (read(handoff, &fd, 8) != 8) return NULL;
    struct pollfd p = {.fd = (int)fd - 1, .events = POLLIN};
    while (poll(&p, 1, -1) != 1) {
    }
    uint64_t one = 1;
    if (write(done, &one, 8) != 8) return NULL;
  }
}

int main(int argc, char **argv) {
  int iterations = argc > 1 ? atoi(argv[1]) : 200;
  int rounds = argc > 2 ? atoi(argv[2]) : 7;
  int threads = argc > 3 ? atoi(argv[3]) : 0;
  const char *how = argc > 4 ? argv[4] : "waitpid";
  int by_pidfd = strcmp(how, "pidfd") == 0, by_thread = strcmp(how, "thread") == 0;
  int by_signal = strcmp(how, "signal") == 0;
  if (iterations < 1 || rounds < 1 || rounds > 99 || threads < 0) return 2;
  if (!by_pidfd && !by_thread && !by_signal && strcmp(how, "waitpid") != 0) return 2;
  if (by_signal) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_child;
    sa.sa_flags = SA_RESTART;
    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0 || sigaction(SIGCHLD, &sa, NULL) != 0) {
      return 1;
    }
  }
  for (int i = 0; i < threads; i++) {
    pthread_t t;
    if (pthread_create(&t, NULL, idle_thread, NULL) != 0) return 1;
  }
  if (by_thread) {
    pthread_t t;
    handoff = eventfd(0, EFD_CLOEXEC);
    done = eventfd(0, EFD_CLOEXEC);
    if (handoff < 0 || done < 0 || pthread_create(&t, NULL, waiter_thread, NULL) != 0) return 1;
  }

  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  sigset_t all, none;
  sigfillset(&all);
  /* glibc leaves its two reserved signals (32, 33) out of sigfillset and
   * ignores them in posix_spawn children unless they are in this set. */
  memset(&all, 0xff, (_NSIG - 1 + 7) / 8);
  sigemptyset(&none);
  posix_spawnattr_init(&attr);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  posix_spawn_file_actions_init(&actions);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
#endif
  char *child_argv[] = {"true", NULL};

  double samples[100];
  for (int r = -1; r < rounds; r++) { /* round -1 warms up */
    double start = now_us();
    for (int i = 0; i < iterations; i++) {
      pid_t pid;
      int err = posix_spawn(&pid, "/bin/true", &actions, &attr, child_argv, environ);
      if (err != 0) {
        fprintf(stderr, "posix_spawn: %d\n", err);
        return 1;
      }
      if (by_pidfd || by_thread) {
        int fd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (fd < 0) return 1;
        uint64_t value = (uint64_t)fd + 1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (by_pidfd) {
          while (poll(&p, 1, -1) != 1) {
          }
        } else if (write(handoff, &value, 8) != 8 || read(done, &value, 8) != 8) {
          return 1;
        }
        close(fd);
      }
      if (by_signal) {
        /* The event loop: sleep in poll on the self-pipe until the handler writes. */
        struct pollfd p = {.fd = signal_pipe[0], .events = POLLIN};
        char bytes[16];
        for (;;) {
          if (poll(&p, 1, -1) == 1) {
            while (read(signal_pipe[0], bytes, sizeof bytes) > 0) {
            }
            break;
          }
        }
      }
      int status;
      if (waitpid(pid, &status, 0) != pid || status != 0) {
        fprintf(stderr, "waitpid failed\n");
        return 1;
      }
    }
    if (r >= 0) samples[r] = (now_us() - start) / iterations;
  }
  qsort(samples, rounds, sizeof samples[0], compare);
  printf("spawn+wait /bin/true us/op %.1f\n", samples[rounds / 2]);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return 0;
}

/*
 * C baselines of the messaging benchmarks, on the layouts and protocols of
 * docs/messaging.md, measured as bench/messaging_bench.ts measures the
 * runtimes: processes (fork) over one shared mapping; every process is
 * started and ready before the clock starts; the clock stops when the
 * last receiver has counted its messages. One round per run.
 *
 *   messaging_mpmc queue <per producer>      2 producer, 2 consumer processes,
 *       64-byte messages, 1024 slots; prints messages per second.
 *   messaging_mpmc pipe <per producer>       the same over one pipe: 2 writer
 *       and 2 reader processes, one 64-byte write and read per message.
 *   messaging_mpmc broadcast <messages>      1 publisher, 4 subscriber processes,
 *       64-byte messages, a ring of at least <messages> slots (nothing is
 *       overwritten: each subscriber must receive every message); prints
 *       messages received per second per subscriber.
 *
 * Also prints, to stderr, the CPU time per message of the child processes
 * (summed), as the runtimes' bench reports theirs.
 *
 * Waits are the runtimes': poll for 50 us, then raise the sleepers' flag,
 * look again, and sleep in futex (at most 50 ms); wakers bump the futex
 * word and wake only when the flag was up.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

/* Queue header words (docs/messaging.md). */
enum { CLOSED = 4, TAIL = 16, PUBLISHED = 17, CONSUMERS_SLEEPING = 18,
       HEAD = 32, FREED = 33, PRODUCERS_SLEEPING = 34 };
/* Broadcast header words. */
enum { B_CLOSED = 5, B_HEAD = 16, B_SLEEPING = 17 };
/* Bench control words, in a page of their own after the object. */
enum { READY = 0, GO = 1, DONE = 2, RECEIVED = 4 /* 8 longs */ };
#define SLOTS 1024u
#define SLOT_BYTES 128u
#define MSG 64u
#ifndef SPIN_NS
#define SPIN_NS 50000
#endif

static int32_t *h;     /* the object's words */
static int32_t *ctl;   /* control words */
static int32_t me_id;

static int32_t load(int32_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static void store(int32_t *p, int32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static int32_t cas(int32_t *p, int32_t e, int32_t d) {
  __atomic_compare_exchange_n(p, &e, d, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return e; /* the value found */
}
static void futex_wait(int32_t *p, int32_t seen, long ns) {
  struct timespec t = {ns / 1000000000L, ns % 1000000000L};
  syscall(SYS_futex, p, FUTEX_WAIT, seen, &t, NULL, 0);
}
static void futex_wake(int32_t *p) { syscall(SYS_futex, p, FUTEX_WAKE, INT_MAX, NULL, NULL, 0); }

/* After bumping a futex word: wakes its sleepers if their flag is up. */
static void wake(int word, int flag) {
  if (h[flag] != 0 && __atomic_exchange_n(&h[flag], 0, __ATOMIC_SEQ_CST) != 0) futex_wake(&h[word]);
}

/* The runtimes' runSync: try, poll for SPIN_NS, then flag + futex. Returns op's result. */
#define RUN_SYNC(result, op, word, flag)                               \
  do {                                                                  \
    double start_ = 0;                                                  \
    for (;;) {                                                          \
      int32_t seen_ = load(&h[word]);                                   \
      result = (op);                                                    \
      if (result != 0) break;                                           \
      double t_ = now_ns();                                             \
      if (start_ == 0) start_ = t_;                                     \
      if (t_ - start_ < SPIN_NS) continue;                              \
      store(&h[flag], 1);                                               \
      if (load(&h[word]) != seen_) continue;                            \
      futex_wait(&h[word], seen_, 50000000L);                           \
    }                                                                   \
  } while (0)

static void bump_ctl(int index, int by) {
  __atomic_add_fetch(&ctl[index], by, __ATOMIC_SEQ_CST);
}
static void wait_ctl(int index, int value) {
  while (load(&ctl[index]) < value) futex_wait(&ctl[index], load(&ctl[index]), 1000000L);
}
static void wake_ctl(int index) { syscall(SYS_futex, &ctl[index], FUTEX_WAKE, INT_MAX, NULL, NULL, 0); }

static pid_t start_process(void (*fn)(intptr_t), intptr_t arg) {
  pid_t pid = fork();
  if (pid == 0) {
    me_id = getpid();
    fn(arg);
    _exit(0);
  }
  return pid;
}

static void *shared(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) exit(1);
  return p;
}

/* ---- MPMC queue ---- */

static long per_producer;

static int32_t *qslot(uint32_t pos) {
  return (int32_t *)((char *)h + 256 + (size_t)(pos & (SLOTS - 1)) * SLOT_BYTES);
}

/* trySend as messaging/_queue_ring.ts does it: 1 sent, 0 full or busy. */
static int try_send(const unsigned char *message) {
  for (int tries = 0; tries < 64; tries++) {
    uint32_t pos = (uint32_t)*(volatile int32_t *)&h[TAIL];
    int32_t *s = qslot(pos);
    int32_t seq = load(&s[0]);
    if (seq == (int32_t)pos) {
      if (*(volatile int32_t *)&s[1] != 0 || cas(&s[1], 0, me_id) != 0) {
        if (load(&h[TAIL]) != (int32_t)pos) continue;
        return 0;
      }
      if (cas(&h[TAIL], (int32_t)pos, (int32_t)(pos + 1)) != (int32_t)pos) {
        store(&s[1], 0);
        continue;
      }
      s[2] = MSG;
      memcpy(s + 4, message, MSG);
      store(&s[0], (int32_t)(pos + 1));
      store(&s[1], 0);
      __atomic_add_fetch(&h[PUBLISHED], 1, __ATOMIC_SEQ_CST);
      wake(PUBLISHED, CONSUMERS_SLEEPING);
      return 1;
    }
    if (load(&h[TAIL]) != (int32_t)pos) continue;
    return 0;
  }
  return 0;
}

/* tryReceive: 1 received, 0 empty or busy, -1 empty and ended. */
static int try_receive(unsigned char *copy) {
  for (int tries = 0; tries < 64; tries++) {
    uint32_t pos = (uint32_t)*(volatile int32_t *)&h[HEAD];
    int32_t *s = qslot(pos);
    int32_t seq = load(&s[0]);
    if (seq == (int32_t)(pos + 1)) {
      if (*(volatile int32_t *)&s[1] != 0 || cas(&s[1], 0, me_id) != 0) {
        if (load(&h[HEAD]) != (int32_t)pos) continue;
        return 0;
      }
      if (cas(&h[HEAD], (int32_t)pos, (int32_t)(pos + 1)) != (int32_t)pos) {
        store(&s[1], 0);
        continue;
      }
      int32_t length = s[2];
      if (length < 0 || length > (int32_t)(SLOT_BYTES - 16)) exit(3);
      memcpy(copy, s + 4, (size_t)length);
      store(&s[0], (int32_t)(pos + SLOTS));
      store(&s[1], 0);
      __atomic_add_fetch(&h[FREED], 1, __ATOMIC_SEQ_CST);
      wake(FREED, PRODUCERS_SLEEPING);
      return 1;
    }
    if (load(&h[HEAD]) != (int32_t)pos) continue;
    if (seq == (int32_t)pos && load(&h[TAIL]) == (int32_t)pos) {
      if (!load(&h[CLOSED])) return 0;
      /* Tail again: read before the end, it may have missed the last sends. */
      if (load(&h[TAIL]) == (int32_t)pos) return -1;
      continue;
    }
    return 0;
  }
  return 0;
}

static void producer(intptr_t k) {
  unsigned char message[MSG];
  memset(message, (int)k, MSG);
  bump_ctl(READY, 1);
  wait_ctl(GO, 1);
  for (long i = 0; i < per_producer; i++) {
    int sent;
    if (try_send(message)) continue;
    RUN_SYNC(sent, try_send(message), FREED, PRODUCERS_SLEEPING);
  }
}

static void consumer(intptr_t k) {
  unsigned char copy[MSG];
  long n = 0;
  bump_ctl(READY, 1);
  for (;;) {
    int got = try_receive(copy);
    if (got == 0) RUN_SYNC(got, try_receive(copy), PUBLISHED, CONSUMERS_SLEEPING);
    if (got < 0) break;
    n++;
  }
  ((long *)&ctl[RECEIVED])[k] = n;
  bump_ctl(DONE, 1);
  wake_ctl(DONE);
}

static double run_queue(long count) {
  per_producer = count;
  h = shared(256 + SLOTS * SLOT_BYTES);
  ctl = shared(4096);
  for (uint32_t i = 0; i < SLOTS; i++) qslot(i)[0] = (int32_t)i;
  pid_t kids[4];
  kids[0] = start_process(consumer, 0);
  kids[1] = start_process(consumer, 1);
  kids[2] = start_process(producer, 0);
  kids[3] = start_process(producer, 1);
  wait_ctl(READY, 4);
  double start = now_ns();
  store(&ctl[GO], 1);
  wake_ctl(GO);
  waitpid(kids[2], NULL, 0);
  waitpid(kids[3], NULL, 0);
  /* end(): closed, then bump and wake both sides. */
  __atomic_or_fetch(&h[CLOSED], 1, __ATOMIC_SEQ_CST);
  __atomic_add_fetch(&h[PUBLISHED], 1, __ATOMIC_SEQ_CST);
  wake(PUBLISHED, CONSUMERS_SLEEPING);
  wait_ctl(DONE, 2);
  double elapsed = (now_ns() - start) * 1e-9;
  waitpid(kids[0], NULL, 0);
  waitpid(kids[1], NULL, 0);
  long *received = (long *)&ctl[RECEIVED];
  if (received[0] + received[1] != 2 * count) {
    fprintf(stderr, "lost messages: %ld of %ld\n", received[0] + received[1], 2 * count);
    exit(1);
  }
  return 2.0 * count / elapsed;
}

/* ---- pipe ---- */

static int fds[2];

static void writer(intptr_t k) {
  unsigned char message[MSG];
  memset(message, (int)k, MSG);
  close(fds[0]);
  bump_ctl(READY, 1);
  wait_ctl(GO, 1);
  for (long i = 0; i < per_producer; i++) {
    if (write(fds[1], message, MSG) != MSG) _exit(1);
  }
}

static void reader(intptr_t k) {
  unsigned char message[MSG];
  long n = 0;
  close(fds[1]);
  bump_ctl(READY, 1);
  while (read(fds[0], message, MSG) == MSG) n++;
  ((long *)&ctl[RECEIVED])[k] = n;
  bump_ctl(DONE, 1);
  wake_ctl(DONE);
}

static double run_pipe(long count) {
  per_producer = count;
  ctl = shared(4096);
  if (pipe(fds) != 0) exit(1);
  pid_t kids[4];
  kids[0] = start_process(reader, 0);
  kids[1] = start_process(reader, 1);
  kids[2] = start_process(writer, 0);
  kids[3] = start_process(writer, 1);
  close(fds[0]);
  close(fds[1]);
  wait_ctl(READY, 4);
  double start = now_ns();
  store(&ctl[GO], 1);
  wake_ctl(GO);
  wait_ctl(DONE, 2);
  double elapsed = (now_ns() - start) * 1e-9;
  for (int k = 0; k < 4; k++) waitpid(kids[k], NULL, 0);
  long *received = (long *)&ctl[RECEIVED];
  if (received[0] + received[1] != 2 * count) {
    fprintf(stderr, "pipe lost messages: %ld of %ld\n", received[0] + received[1], 2 * count);
    exit(1);
  }
  return 2.0 * count / elapsed;
}

/* ---- broadcast: header 128 bytes, slot = stamp, length, payload ---- */

static uint32_t bslots;

static int32_t *bslot(uint32_t m) {
  return (int32_t *)((char *)h + 128 + (size_t)(m & (bslots - 1)) * SLOT_BYTES);
}

static uint32_t cursor, seen_head;
static long lost;

/* Subscriber.#read: 1 received, 0 nothing new, -1 ended. Reads head only
 * once it caught up with the head last read, as messaging/broadcast.ts. */
static int bread(unsigned char *copy) {
  for (int tries = 0; tries < 64; tries++) {
    if (seen_head == cursor) seen_head = (uint32_t)load(&h[B_HEAD]);
    uint32_t head = seen_head;
    uint32_t ahead = head - cursor;
    if (ahead == 0) {
      if (!load(&h[B_CLOSED])) return 0;
      /* Head again: read before the end, it may have missed the last messages. */
      seen_head = (uint32_t)load(&h[B_HEAD]);
      if (seen_head == cursor) return -1;
      continue;
    }
    if (ahead > bslots) {
      lost += ahead - bslots;
      cursor = head - bslots;
      continue;
    }
    int32_t *s = bslot(cursor);
    int32_t first = load(&s[0]);
    if (first != (int32_t)(cursor * 2 + 2)) {
      lost++;
      cursor++;
      seen_head = (uint32_t)load(&h[B_HEAD]);
      continue;
    }
    int32_t length = s[1];
    if (length < 0 || length > (int32_t)(SLOT_BYTES - 8)) exit(3);
    memcpy(copy, s + 2, (size_t)length);
    if (load(&s[0]) != first) {
      lost++;
      cursor++;
      seen_head = (uint32_t)load(&h[B_HEAD]);
      continue;
    }
    cursor++;
    return 1;
  }
  return 0;
}

static void subscriber(intptr_t k) {
  unsigned char copy[MSG];
  long n = 0;
  cursor = seen_head = (uint32_t)load(&h[B_HEAD]);
  bump_ctl(READY, 1);
  for (;;) {
    int got = bread(copy);
    if (got == 0) RUN_SYNC(got, bread(copy), B_HEAD, B_SLEEPING);
    if (got < 0) break;
    n++;
  }
  ((long *)&ctl[RECEIVED])[k] = lost != 0 ? -lost : n;
  bump_ctl(DONE, 1);
  wake_ctl(DONE);
}

static double run_broadcast(long count) {
  bslots = 2;
  while (bslots < (uint32_t)count) bslots <<= 1;
  h = shared(128 + (size_t)bslots * SLOT_BYTES);
  /* Fault the pages in before the clock starts, as Broadcast.init does. */
  memset(h, 0, 128 + (size_t)bslots * SLOT_BYTES);
  ctl = shared(4096);
  pid_t kids[4];
  for (intptr_t k = 0; k < 4; k++) kids[k] = start_process(subscriber, k);
  wait_ctl(READY, 4);
  unsigned char message[MSG];
  memset(message, 1, MSG);
  double start = now_ns();
  for (uint32_t m = 0; m < (uint32_t)count; m++) {
    int32_t *s = bslot(m);
    store(&s[0], (int32_t)(m * 2 + 1));
    s[1] = MSG;
    memcpy(s + 2, message, MSG);
    store(&s[0], (int32_t)(m * 2 + 2));
    store(&h[B_HEAD], (int32_t)(m + 1));
    wake(B_HEAD, B_SLEEPING);
  }
  __atomic_or_fetch(&h[B_CLOSED], 1, __ATOMIC_SEQ_CST);
  __atomic_add_fetch(&h[B_HEAD], 0, __ATOMIC_SEQ_CST);
  store(&h[B_SLEEPING], 1);
  wake(B_HEAD, B_SLEEPING);
  wait_ctl(DONE, 4);
  double elapsed = (now_ns() - start) * 1e-9;
  for (int k = 0; k < 4; k++) waitpid(kids[k], NULL, 0);
  long *received = (long *)&ctl[RECEIVED];
  for (int k = 0; k < 4; k++) {
    if (received[k] != count) {
      fprintf(stderr, "subscriber %d received %ld of %ld\n", k, received[k], count);
      exit(1);
    }
  }
  return count / elapsed;
}

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  long count = atol(argv[2]);
  if (count <= 0 || count > (1L << 24)) return 2;
  me_id = getpid();
  double rate;
  if (strcmp(argv[1], "queue") == 0) rate = run_queue(count);
  else if (strcmp(argv[1], "pipe") == 0) rate = run_pipe(count);
  else if (strcmp(argv[1], "broadcast") == 0) rate = run_broadcast(count);
  else return 2;
  struct rusage u;
  getrusage(RUSAGE_CHILDREN, &u);
  double cpu = (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e9 +
               (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e3;
  long messages = strcmp(argv[1], "broadcast") == 0 ? 4 * count : 2 * count;
  fprintf(stderr, "cpu ns/msg %.1f\n", cpu / messages);
  printf("%.0f\n", rate);
  return 0;
}

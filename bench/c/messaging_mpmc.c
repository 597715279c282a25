/*
 * C baselines of the messaging benchmarks, on the layouts of
 * docs/messaging.md: processes (fork) over one shared anonymous mapping,
 * as the runtimes' peers are processes.
 *
 *   messaging_mpmc queue <per producer>      2 producer, 2 consumer processes,
 *       64-byte messages; prints messages per second.
 *   messaging_mpmc pipe <per producer>       the same over one pipe: 2 writer
 *       and 2 reader processes, one 64-byte write and read per message.
 *   messaging_mpmc broadcast <messages>      1 publisher, 4 subscriber processes;
 *       prints messages received per second per subscriber.
 *
 * Waits spin with sched_yield (no futex).
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { TAIL = 16, PUBLISHED = 17, HEAD = 32, FREED = 33, CLOSED = 4 };
#define SLOTS 1024u
#define SLOT_BYTES 128u
#define MSG 64u

static int32_t *h;
static int32_t me_id;

static int32_t load(int32_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static void store(int32_t *p, int32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static int cas(int32_t *p, int32_t e, int32_t d) {
  return __atomic_compare_exchange_n(p, &e, d, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
/* Runs fn(arg) in a child process. */
static pid_t start_process(void *(*fn)(void *), intptr_t arg) {
  pid_t pid = fork();
  if (pid == 0) {
    me_id = getpid();
    fn((void *)arg);
    _exit(0);
  }
  return pid;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}
static int32_t *qslot(uint32_t pos) {
  return (int32_t *)((char *)h + 256 + (size_t)(pos & (SLOTS - 1)) * SLOT_BYTES);
}

static long per_producer;

static void *producer(void *arg) {
  unsigned char message[MSG];
  memset(message, (int)(intptr_t)arg, MSG);
  for (long i = 0; i < per_producer; i++) {
    for (;;) {
      uint32_t pos = (uint32_t)load(&h[TAIL]);
      int32_t *s = qslot(pos);
      int32_t seq = load(&s[0]);
      if (seq != (int32_t)pos || load(&s[1]) != 0) {
        if ((int32_t)(seq - pos) < 0) sched_yield();
        continue;
      }
      if (!cas(&s[1], 0, me_id)) continue;
      if (load(&s[0]) != (int32_t)pos || !cas(&h[TAIL], (int32_t)pos, (int32_t)(pos + 1))) {
        store(&s[1], 0);
        continue;
      }
      s[2] = MSG;
      memcpy(s + 4, message, MSG);
      store(&s[0], (int32_t)(pos + 1));
      store(&s[1], 0);
      __atomic_add_fetch(&h[PUBLISHED], 1, __ATOMIC_SEQ_CST);
      break;
    }
  }
  return NULL;
}

static long *consumed; /* in shared memory */

static void *consumer(void *arg) {
  long n = 0;
  unsigned char copy[MSG];
  for (;;) {
    uint32_t pos = (uint32_t)load(&h[HEAD]);
    int32_t *s = qslot(pos);
    int32_t seq = load(&s[0]);
    if (seq != (int32_t)(pos + 1) || load(&s[1]) != 0) {
      if (seq == (int32_t)pos && load(&h[TAIL]) == (int32_t)pos) {
        if (load(&h[CLOSED])) break;
        sched_yield();
      }
      continue;
    }
    if (!cas(&s[1], 0, me_id)) continue;
    if (load(&s[0]) != (int32_t)(pos + 1) || !cas(&h[HEAD], (int32_t)pos, (int32_t)(pos + 1))) {
      store(&s[1], 0);
      continue;
    }
    memcpy(copy, s + 4, (size_t)s[2]);
    store(&s[0], (int32_t)(pos + SLOTS));
    store(&s[1], 0);
    __atomic_add_fetch(&h[FREED], 1, __ATOMIC_SEQ_CST);
    n++;
  }
  consumed[(intptr_t)arg] = n;
  return NULL;
}

static double run_queue(long count) {
  per_producer = count;
  size_t bytes = 256 + SLOTS * SLOT_BYTES;
  h = mmap(NULL, bytes + 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  consumed = (long *)((char *)h + bytes);
  for (uint32_t i = 0; i < SLOTS; i++) qslot(i)[0] = (int32_t)i;
  pid_t p[2], c[2];
  double start = now();
  for (intptr_t i = 0; i < 2; i++) c[i] = start_process(consumer, i);
  for (intptr_t i = 0; i < 2; i++) p[i] = start_process(producer, i);
  for (int i = 0; i < 2; i++) waitpid(p[i], NULL, 0);
  store(&h[CLOSED], 1);
  for (int i = 0; i < 2; i++) waitpid(c[i], NULL, 0);
  double elapsed = now() - start;
  if (consumed[0] + consumed[1] != 2 * count) {
    fprintf(stderr, "lost messages: %ld\n", consumed[0] + consumed[1]);
    exit(1);
  }
  return 2.0 * count / elapsed;
}

static double run_pipe(long count) {
  int fds[2];
  if (pipe(fds) != 0) exit(1);
  double start = now();
  pid_t kids[4];
  for (int k = 0; k < 4; k++) {
    kids[k] = fork();
    if (kids[k] != 0) continue;
    unsigned char message[MSG];
    memset(message, k, MSG);
    if (k < 2) {
      close(fds[0]);
      for (long i = 0; i < count; i++) {
        if (write(fds[1], message, MSG) != MSG) _exit(1);
      }
    } else {
      close(fds[1]);
      while (read(fds[0], message, MSG) == MSG) {
      }
    }
    _exit(0);
  }
  close(fds[0]);
  close(fds[1]);
  for (int k = 0; k < 4; k++) waitpid(kids[k], NULL, 0);
  return 2.0 * count / (now() - start);
}

/* Broadcast: header 128, slot = stamp, length, payload (128 bytes). */
static long bmessages;
static double *bseen; /* in shared memory */

static int32_t *bslot(uint32_t m) {
  return (int32_t *)((char *)h + 128 + (size_t)(m & (SLOTS - 1)) * SLOT_BYTES);
}

static void *subscriber(void *arg) {
  uint32_t c = 0;
  long received = 0;
  unsigned char copy[MSG];
  for (;;) {
    uint32_t head = (uint32_t)load(&h[16]);
    if (head == c) {
      if (load(&h[5])) break;
      sched_yield();
      continue;
    }
    if (head - c > SLOTS) c = head - SLOTS;
    int32_t *s = bslot(c);
    int32_t first = load(&s[0]);
    if (first != (int32_t)(c * 2 + 2)) {
      c++;
      continue;
    }
    memcpy(copy, s + 2, (size_t)s[1]);
    if (load(&s[0]) == first) received++;
    c++;
  }
  bseen[(intptr_t)arg] = (double)received;
  return NULL;
}

static double run_broadcast(long count) {
  bmessages = count;
  size_t bytes = 128 + SLOTS * SLOT_BYTES;
  h = mmap(NULL, bytes + 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  bseen = (double *)((char *)h + bytes);
  pid_t t[4];
  for (intptr_t i = 0; i < 4; i++) t[i] = start_process(subscriber, i);
  usleep(10000);
  unsigned char message[MSG];
  memset(message, 1, MSG);
  double start = now();
  for (uint32_t m = 0; m < (uint32_t)count; m++) {
    int32_t *s = bslot(m);
    store(&s[0], (int32_t)(m * 2 + 1));
    s[1] = MSG;
    memcpy(s + 2, message, MSG);
    store(&s[0], (int32_t)(m * 2 + 2));
    store(&h[16], (int32_t)(m + 1));
  }
  store(&h[5], 1);
  for (int i = 0; i < 4; i++) waitpid(t[i], NULL, 0);
  double elapsed = now() - start;
  double total = 0;
  for (int i = 0; i < 4; i++) total += bseen[i];
  return total / 4 / elapsed;
}

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  long count = atol(argv[2]);
  me_id = getpid();
  double rate;
  if (strcmp(argv[1], "queue") == 0) rate = run_queue(count);
  else if (strcmp(argv[1], "pipe") == 0) rate = run_pipe(count);
  else if (strcmp(argv[1], "broadcast") == 0) rate = run_broadcast(count);
  else return 2;
  printf("%.0f\n", rate);
  return 0;
}

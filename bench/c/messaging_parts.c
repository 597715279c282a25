/*
 * The C lower bound of bench/messaging_parts.ts: one process, no waiting,
 * the same protocols as messaging/ (the queue's send + receive of a 64-byte
 * message, the broadcast ring's publish + receive, and publish alone), median ns per message
 * of 7 rounds of 200000.
 *
 *   messaging_parts    prints "queue <ns>", "broadcast <ns>" and "publish <ns>"
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"

#define SLOTS 1024u
#define SLOT_BYTES 128u
#define MSG 64u
#define N 200000
enum { TAIL = 16, PUBLISHED = 17, CONSUMERS_SLEEPING = 18, HEAD = 32, FREED = 33,
       PRODUCERS_SLEEPING = 34, B_HEAD = 16, B_SLEEPING = 17 };

static int32_t ring[(256 + SLOTS * SLOT_BYTES) / 4] __attribute__((aligned(64)));
static const int32_t me = 12345;

static int32_t load(int32_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static void store(int32_t *p, int32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static int32_t cas(int32_t *p, int32_t e, int32_t d) {
  __atomic_compare_exchange_n(p, &e, d, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return e;
}
static int32_t *qslot(uint32_t pos) { return ring + 64 + (pos & (SLOTS - 1)) * (SLOT_BYTES / 4); }
static int32_t *bslot(uint32_t m) { return ring + 32 + (m & (SLOTS - 1)) * (SLOT_BYTES / 4); }

static int send(const unsigned char *message) {
  int32_t *h = ring;
  uint32_t pos = (uint32_t)*(volatile int32_t *)&h[TAIL];
  int32_t *s = qslot(pos);
  if (load(&s[0]) != (int32_t)pos || s[1] != 0 || cas(&s[1], 0, me) != 0) return 0;
  if (cas(&h[TAIL], (int32_t)pos, (int32_t)(pos + 1)) != (int32_t)pos) {
    store(&s[1], 0);
    return 0;
  }
  s[2] = MSG;
  memcpy(s + 4, message, MSG);
  store(&s[0], (int32_t)(pos + 1));
  store(&s[1], 0);
  __atomic_add_fetch(&h[PUBLISHED], 1, __ATOMIC_SEQ_CST);
  if (*(volatile int32_t *)&h[CONSUMERS_SLEEPING] != 0) abort();
  return 1;
}

static int receive(unsigned char *copy) {
  int32_t *h = ring;
  uint32_t pos = (uint32_t)*(volatile int32_t *)&h[HEAD];
  int32_t *s = qslot(pos);
  if (load(&s[0]) != (int32_t)(pos + 1) || s[1] != 0 || cas(&s[1], 0, me) != 0) return 0;
  if (cas(&h[HEAD], (int32_t)pos, (int32_t)(pos + 1)) != (int32_t)pos) {
    store(&s[1], 0);
    return 0;
  }
  int32_t length = s[2];
  if (length < 0 || length > (int32_t)(SLOT_BYTES - 16)) abort();
  memcpy(copy, s + 4, (size_t)length);
  store(&s[0], (int32_t)(pos + SLOTS));
  store(&s[1], 0);
  __atomic_add_fetch(&h[FREED], 1, __ATOMIC_SEQ_CST);
  if (*(volatile int32_t *)&h[PRODUCERS_SLEEPING] != 0) abort();
  return length;
}

static uint32_t published, cursor, seen_head;

static void publish(const unsigned char *message) {
  int32_t *h = ring;
  uint32_t m = published++;
  int32_t *s = bslot(m);
  store(&s[0], (int32_t)(m * 2 + 1));
  s[1] = MSG;
  memcpy(s + 2, message, MSG);
  store(&s[0], (int32_t)(m * 2 + 2));
  store(&h[B_HEAD], (int32_t)(m + 1));
  if (*(volatile int32_t *)&h[B_SLEEPING] != 0) abort();
}

static int subscribe_read(unsigned char *copy) {
  int32_t *h = ring;
  if (seen_head == cursor) seen_head = (uint32_t)load(&h[B_HEAD]);
  if (seen_head == cursor) return 0;
  int32_t *s = bslot(cursor);
  int32_t first = *(volatile int32_t *)&s[0];
  if (first != (int32_t)(cursor * 2 + 2)) abort();
  int32_t length = s[1];
  if (length < 0 || length > (int32_t)(SLOT_BYTES - 8)) abort();
  memcpy(copy, s + 2, (size_t)length);
  if (load(&s[0]) != first) abort();
  cursor++;
  return length;
}

int main(void) {
  static unsigned char message[MSG], copy[256];
  memset(message, 1, MSG);
  double samples[7];
  for (uint32_t i = 0; i < SLOTS; i++) qslot(i)[0] = (int32_t)i;
  for (int r = 0; r < 7; r++) {
    double t = now_ns();
    for (int i = 0; i < N; i++) {
      if (!send(message) || receive(copy) != MSG) abort();
    }
    samples[r] = (now_ns() - t) / N;
  }
  qsort(samples, 7, sizeof samples[0], compare_doubles);
  printf("queue %.1f\n", samples[3]);
  memset(ring, 0, sizeof ring);
  for (int r = 0; r < 7; r++) {
    double t = now_ns();
    for (int i = 0; i < N; i++) {
      publish(message);
      if (subscribe_read(copy) != MSG) abort();
    }
    samples[r] = (now_ns() - t) / N;
  }
  qsort(samples, 7, sizeof samples[0], compare_doubles);
  printf("broadcast %.1f\n", samples[3]);
  for (int r = 0; r < 7; r++) {
    double t = now_ns();
    for (int i = 0; i < N; i++) publish(message);
    samples[r] = (now_ns() - t) / N;
  }
  qsort(samples, 7, sizeof samples[0], compare_doubles);
  printf("publish %.1f\n", samples[3]);
  return 0;
}

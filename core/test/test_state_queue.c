/* State store timeouts (state_queue.c): one current queue entry per live
 * key, its live bit set and no other; markers per batch time; expiry in
 * order of last update, each key once; compaction keeps all of that; a
 * failed reservation changes nothing; a store without a timeout has no
 * queue at all. */
#include "dstream/alloc.h"
#include "dstream/error.h"
#include "dstream/state.h"
#include "harness.h"
#include "state_internal.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* The invariants of the queue; returns the number that do not hold. */
static int queue_sound(const ds_state_t *s) {
  uint64_t seq, bits = 0;
  int slot, bad = 0;
  for (seq = s->head_seq; seq < s->tail_seq; seq++) {
    if (*live_word(s, seq) >> (seq & 63) & 1)
      bits++;
  }
  if (bits != s->count)
    bad++;
  for (slot = ds_state_next(s, -1); slot >= 0; slot = ds_state_next(s, slot)) {
    uint64_t cur = slot_seq(s, (uint32_t)slot);
    if (cur < s->head_seq || cur >= s->tail_seq ||
        !(*live_word(s, cur) >> (cur & 63) & 1))
      bad++;
  }
  if (s->tail_seq - s->head_seq > (uint64_t)s->count + s->count / 4 + QCHUNK)
    bad++;
  return bad;
}

/* Keys updated at random over batches: the invariants hold throughout, and
 * expiry hands back each key once, in the first batch it has been idle for
 * the timeout, oldest first. */
static void test_updates_and_expiry(void) {
  enum { KEYS = 20000, TIMEOUT = 5000 };
  static int64_t last[KEYS];
  static char live[KEYS];
  ds_state_t *s = ds_state_new(TIMEOUT);
  ds_state_item_t k, v;
  int64_t t, prev = INT64_MIN;
  uint32_t i;
  long got = 0;
  for (t = 1000; t <= 20000; t += 1000) {
    for (i = 0; i < 3000; i++) {
      uint32_t key = (uint32_t)(rnd() % KEYS);
      CHECK(ds_state_put_num_num(s, key, (double)t, t) >= 0);
      live[key] = 1;
      last[key] = t;
    }
    CHECK_EQ_INT(queue_sound(s), 0);
    while (ds_state_expire(s, t + 1000, &k, &v) == 1) {
      uint32_t key = (uint32_t)k.num;
      CHECK(live[key]);
      CHECK(last[key] <= t + 1000 - TIMEOUT);
      CHECK(last[key] >= prev);
      CHECK_EQ_INT((int64_t)v.num, last[key]);
      prev = last[key];
      live[key] = 0;
      got++;
    }
    CHECK_EQ_INT(queue_sound(s), 0);
  }
  CHECK(got > 0);
  for (i = 0; i < KEYS; i++) {
    int64_t when;
    int slot = ds_state_get_num(s, i, NULL);
    CHECK_EQ_INT(slot >= 0, live[i]);
    if (slot >= 0 && ds_state_time(s, slot, &when) == 0)
      CHECK_EQ_INT(when, last[i]);
  }
  ds_state_free(s);
}

/* The same keys updated batch after batch leave stale entries behind until
 * a compaction drops them: the invariants hold across it, and expiry still
 * finds each key at its last update. */
static void test_compaction(void) {
  ds_state_t *s = ds_state_new(1000000);
  ds_state_item_t k, v;
  int64_t t;
  int i, n = 0;
  for (t = 1; t <= 200; t++) {
    for (i = 0; i < 100; i++)
      CHECK(ds_state_put_num_num(s, i, (double)t, t * 1000) >= 0);
    CHECK_EQ_INT(queue_sound(s), 0);
  }
  CHECK(s->compactions > 0);
  while (ds_state_expire(s, 200 * 1000 + 1000000 + 1, &k, &v) == 1) {
    CHECK_EQ_INT(v.num, 200);
    n++;
  }
  CHECK_EQ_INT(n, 100);
  CHECK_EQ_INT(s->count, 0);
  ds_state_free(s);
}

/* An update in the batch of the key's last one adds no entry; a later one
 * makes the old entry stale (its bit cleared) and adds one. */
static void test_one_entry_per_batch(void) {
  ds_state_t *s = ds_state_new(1000);
  int slot = ds_state_put_num_num(s, 1, 1, 10);
  uint64_t first;
  CHECK(slot >= 0);
  first = slot_seq(s, (uint32_t)slot);
  CHECK_EQ_INT(ds_state_put_num_num(s, 1, 2, 10), slot);
  CHECK_EQ_INT(ds_state_touch(s, slot, 10), 0);
  CHECK_EQ_INT(s->tail_seq - s->head_seq, 1);
  CHECK_EQ_INT(ds_state_touch(s, slot, 20), 0);
  CHECK_EQ_INT(s->tail_seq - s->head_seq, 2);
  CHECK_EQ_INT(*live_word(s, first) >> (first & 63) & 1, 0);
  CHECK_EQ_INT(s->mlen, 2);
  CHECK_EQ_INT(queue_sound(s), 0);
  /* times go forward only */
  CHECK_EQ_INT(ds_state_touch(s, slot, 19), DS_EINVAL);
  ds_state_free(s);
}

/* A reservation that cannot be had changes nothing. */
static void test_out_of_memory(void) {
  ds_state_t *s = ds_state_new(1000);
  long n;
  int i;
  for (i = 0; i < 1100; i++)
    CHECK(ds_state_put_num_num(s, i, i, i) >= 0); /* 1100 markers, 1100 bits */
  for (n = 1; n <= 3; n++) {
    uint64_t tail = s->tail_seq;
    uint32_t mlen = s->mlen, count = s->count;
    int rc;
    ds_test_fail_after(n);
    rc = ds_state_put_num_num(s, 5000 + (double)n, 1, 5000 + n);
    ds_test_fail_after(0);
    if (rc == DS_ENOMEM) {
      CHECK_EQ_INT(s->tail_seq, tail);
      CHECK_EQ_INT(s->mlen, mlen);
      CHECK_EQ_INT(s->count, count);
    }
    CHECK_EQ_INT(queue_sound(s), 0);
  }
  ds_state_free(s);
}

/* Without a timeout nothing is queued and nothing expires. */
static void test_no_timeout(void) {
  ds_state_t *s = ds_state_new(0);
  ds_state_item_t k, v;
  int64_t when;
  int slot = ds_state_put_num_num(s, 1, 1, 10);
  CHECK(s->qhead == NULL && s->live == NULL && s->marks == NULL);
  CHECK_EQ_INT(ds_state_expire(s, INT64_MAX, &k, &v), 0);
  CHECK_EQ_INT(ds_state_time(s, slot, &when), DS_ESTATE);
  ds_state_free(s);
}

int main(void) {
  ds_test_begin();
  test_updates_and_expiry();
  test_compaction();
  test_one_entry_per_batch();
  test_out_of_memory();
  test_no_timeout();
  return ds_test_end("test_state_queue");
}

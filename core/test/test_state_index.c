/* State store index (state_index.c): Robin Hood order and exact distances
 * after inserts, removals and growth; every live key found, no tombstones
 * left; growth by half at load 0.8; a failed growth keeps the old index. */
#include "dstream/alloc.h"
#include "dstream/error.h"
#include "dstream/state.h"
#include "harness.h"
#include "state_internal.h"

static uint64_t rng_state = 0x2545F4914F6CDD1Du;

static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Check every word: its distance field is its exact distance from home
 * (saturated at DIST_SAT), a word is at most one further from its home
 * than the word before it (Robin Hood order), and live words number
 * count. Returns the number of checks that failed. */
static int index_sound(const ds_state_t *s) {
  uint32_t i, words = 0, bad = 0;
  for (i = 0; i < s->cap; i++) {
    uint32_t w = s->index[i], prev, home, d;
    if (w == 0)
      continue;
    words++;
    home = idx_home(slot_hash(s, (w & IDX_MASK) - 1), s->cap);
    d = i >= home ? i - home : i + s->cap - home;
    if (idx_dfield(w) != (d < DIST_SAT ? d : DIST_SAT))
      bad++;
    if (d > 0) {
      prev = s->index[i == 0 ? s->cap - 1 : i - 1];
      if (prev == 0)
        bad++; /* a gap inside a cluster: its home is unreachable */
    }
  }
  if (words != s->count)
    bad++;
  return (int)bad;
}

static int find_num(const ds_state_t *s, double key) {
  probe_t k;
  if (probe_num(&k, key) != 0)
    return -2;
  return index_find(s, &k, NULL);
}

/* Keys go in and out at random: the index stays sound, finds the live keys
 * only, and grows by half, keeping the load at most 0.8. */
static void test_churn(void) {
  enum { KEYS = 3000 };
  static char live[KEYS];
  ds_state_t *s = ds_state_new(0);
  uint32_t caps[8] = {0}, ncaps = 0, i;
  long op;
  for (op = 0; op < 40000; op++) {
    uint32_t k = (uint32_t)(rnd() % KEYS);
    if (rnd() % 3 != 0) {
      CHECK(ds_state_put_num_num(s, k, k, 0) >= 0);
      live[k] = 1;
    } else {
      CHECK_EQ_INT(ds_state_remove_num(s, k), live[k]);
      live[k] = 0;
    }
    if (s->cap > 0 && (ncaps == 0 || caps[ncaps - 1] != s->cap)) {
      if (ncaps < 8)
        caps[ncaps++] = s->cap;
    }
    CHECK((uint64_t)s->count * 5 <= (uint64_t)s->cap * 4);
    if (op % 5000 == 0)
      CHECK_EQ_INT(index_sound(s), 0);
  }
  CHECK_EQ_INT(index_sound(s), 0);
  for (i = 0; i < KEYS; i++)
    CHECK_EQ_INT(find_num(s, i) >= 0, live[i]);
  CHECK_EQ_INT(caps[0], 16);
  for (i = 1; i < ncaps; i++)
    CHECK_EQ_INT(caps[i], caps[i - 1] + caps[i - 1] / 2);
  ds_state_free(s);
}

/* Removing every key leaves every word empty: no tombstones. */
static void test_no_tombstones(void) {
  ds_state_t *s = ds_state_new(0);
  uint32_t i;
  for (i = 0; i < 500; i++)
    CHECK(ds_state_put_num_num(s, i * 7.5, 1, 0) >= 0);
  for (i = 0; i < 500; i += 2)
    CHECK_EQ_INT(ds_state_remove_num(s, i * 7.5), 1);
  CHECK_EQ_INT(index_sound(s), 0);
  for (i = 1; i < 500; i += 2)
    CHECK_EQ_INT(ds_state_remove_slot(s, find_num(s, i * 7.5)), 0);
  for (i = 0; i < s->cap; i++)
    CHECK_EQ_INT(s->index[i], 0);
  ds_state_free(s);
}

/* Words 15 or more from home (their distance then read from their entry's
 * hash) keep the order through inserts and removals: 40 keys with one home
 * in an index of 64 words. */
static void test_saturated_distances(void) {
  enum { CAP = 64, N = 40 };
  ds_state_t *s = ds_state_new(0);
  uint32_t *index, slot, n = 0, i;
  double keys[N];
  probe_t k;
  for (i = 1; n < N; i++) {
    if (probe_num(&k, i) == 0 && idx_home(k.hash, CAP) == 0)
      keys[n++] = i;
  }
  for (i = 0; i < N; i++)
    CHECK(ds_state_put_num_num(s, keys[i], i, 0) >= 0);
  /* the same keys, put one by one into an index of CAP words */
  index = ds__state_alloc(s, CAP * sizeof *index);
  memset(index, 0, CAP * sizeof *index);
  for (slot = 0; slot < s->used; slot++)
    ds__index_put(s, index, CAP, slot_hash(s, slot), slot);
  ds__state_dealloc(s, s->index, (size_t)s->cap * sizeof *index);
  s->index = index;
  s->cap = CAP;
  CHECK_EQ_INT(idx_dfield(s->index[N - 1]), DIST_SAT);
  CHECK_EQ_INT(index_sound(s), 0);
  for (i = 0; i < N; i++)
    CHECK_EQ_INT(find_num(s, keys[i]), (int)i);
  for (i = 0; i < N; i += 3)
    CHECK_EQ_INT(ds_state_remove_num(s, keys[i]), 1);
  CHECK_EQ_INT(index_sound(s), 0);
  for (i = 0; i < N; i++)
    CHECK_EQ_INT(find_num(s, keys[i]) >= 0, i % 3 != 0);
  ds_state_free(s);
}

int main(void) {
  ds_test_begin();
  test_churn();
  test_no_tombstones();
  test_saturated_distances();
  return ds_test_end("test_state_index");
}

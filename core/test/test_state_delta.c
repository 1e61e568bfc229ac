/* State store deltas (state_track.c, state_snapshot.c): a store rebuilt from
 * a snapshot and the deltas after it holds exactly what the store written
 * held at the last of them - keys, values, and each key's last-update time
 * in a store with a timeout - whatever happened in between: removals,
 * expiry, keys removed and put again, slots reused, the store cleared, the
 * record lost to out of memory. Checked against random workloads. */
#include <stdio.h>
#include <stdlib.h>

#include "dstream/alloc.h"
#include "dstream/codec.h"
#include "dstream/error.h"
#include "dstream/state.h"
#include "harness.h"
#include "state_internal.h"

static uint32_t rng_state = 1;

static uint32_t draw(uint32_t n) {
  rng_state = rng_state * 1103515245u + 12345u;
  return (rng_state >> 8) % n;
}

/* Key id as one of three kinds: a number, a string (some too long to be
 * inline) or an ENC array. */
static int key_put(ds_state_t *s, uint32_t id, double v, int64_t now) {
  char buf[64];
  int len;
  switch (id % 3) {
  case 0:
    return ds_state_put_num_num(s, id * 0.5, v, now);
  case 1:
    len = snprintf(buf, sizeof buf, "key-%u%s", id, id % 2 ? "-long-padding" : "");
    return ds_state_put_bytes_num(s, DS_STATE_STR, buf, (uint32_t)len, v, now);
  default:
    buf[0] = DS_CODEC_ARRAY;
    buf[1] = 1;
    buf[2] = DS_CODEC_STR;
    len = snprintf(buf + 4, sizeof buf - 4, "%u", id);
    buf[3] = (char)len;
    return ds_state_put_bytes_num(s, DS_STATE_ENC, buf, (uint32_t)len + 4, v,
                                  now);
  }
}

/* An ENC value for some keys: a codec string of the value's digits. */
static int key_put_value(ds_state_t *s, uint32_t id, uint32_t v, int64_t now) {
  char enc[64];
  int len, slot;
  if (v % 4 != 0)
    return key_put(s, id, v, now);
  slot = key_put(s, id, 0, now);
  if (slot < 0)
    return slot;
  len = snprintf(enc + 2, sizeof enc - 2, "%u-%s", v, v % 8 ? "x" : "a long value past a cell");
  enc[0] = DS_CODEC_STR;
  enc[1] = (char)len;
  return ds_state_set_enc(s, slot, enc, (uint32_t)len + 2, now);
}

static int key_remove(ds_state_t *s, uint32_t id) {
  char buf[64];
  int len;
  if (id % 3 == 0)
    return ds_state_remove_num(s, id * 0.5);
  if (id % 3 == 1) {
    len = snprintf(buf, sizeof buf, "key-%u%s", id, id % 2 ? "-long-padding" : "");
    return ds_state_remove_bytes(s, DS_STATE_STR, buf, (uint32_t)len);
  }
  buf[0] = DS_CODEC_ARRAY;
  buf[1] = 1;
  buf[2] = DS_CODEC_STR;
  len = snprintf(buf + 4, sizeof buf - 4, "%u", id);
  buf[3] = (char)len;
  return ds_state_remove_bytes(s, DS_STATE_ENC, buf, (uint32_t)len + 4);
}

/* Whether b holds exactly a's keys, values and (with a timeout) times. */
static int same_state(const ds_state_t *a, const ds_state_t *b) {
  int slot;
  if (ds_state_count(a) != ds_state_count(b))
    return 0;
  for (slot = ds_state_next(a, -1); slot >= 0; slot = ds_state_next(a, slot)) {
    ds_state_item_t k, va, vb;
    int other;
    ds_state_key(a, slot, &k);
    ds_state_value(a, slot, &va);
    other = k.kind == DS_STATE_NUM ? ds_state_get_num(b, k.num, &vb)
                                   : ds_state_get_bytes(b, k.kind, k.ptr, k.len, &vb);
    if (other < 0 || va.kind != vb.kind)
      return 0;
    if (va.kind == DS_STATE_NUM ? va.num != vb.num
                                : va.len != vb.len || memcmp(va.ptr, vb.ptr, va.len) != 0)
      return 0;
    if (ds_state_timeout(a) > 0) {
      int64_t ta, tb;
      ds_state_time(a, slot, &ta);
      ds_state_time(b, other, &tb);
      if (ta != tb)
        return 0;
    }
  }
  return 1;
}

/* The chain so far: each checkpoint's bytes, one after the other, and
 * where each starts. */
typedef struct {
  ds_buf_t bytes;
  size_t start[64];
  int n;
} chain_t;

static void chain_add(chain_t *c, ds_state_t *s, int full, int64_t now) {
  const char *data;
  size_t len;
  if (full) {
    ds_buf_truncate(&c->bytes, 0);
    c->n = 0;
  }
  CHECK_EQ_INT(ds_state_checkpoint(s, full, now, &data, &len), 0);
  c->start[c->n++] = c->bytes.len;
  CHECK_EQ_INT(ds_buf_append(&c->bytes, data, len), 0);
}

static ds_state_t *chain_rebuild(const chain_t *c, int64_t timeout) {
  ds_state_t *b = ds_state_new(timeout);
  char errbuf[300];
  int i;
  for (i = 0; i < c->n; i++) {
    size_t end = i + 1 < c->n ? c->start[i + 1] : c->bytes.len;
    int rc = ds_state_apply(b, c->bytes.data + c->start[i], end - c->start[i],
                            errbuf, sizeof errbuf);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0)
      fprintf(stderr, "checkpoint %d: %s\n", i, errbuf);
  }
  return b;
}

/* Random batches of puts, ENC values, removals and expiry (a timeout of 3
 * batches), a delta after every one to three batches, a full checkpoint
 * once the chain holds 12 (compaction),
 * the store cleared now and then; after each checkpoint the chain rebuilds
 * the store exactly. */
static void random_run(int64_t timeout, uint32_t seed, int batches) {
  ds_state_t *a = ds_state_new(timeout);
  chain_t c;
  int b, i, mismatches = 0;
  rng_state = seed;
  ds_buf_init(&c.bytes);
  c.n = 0;
  CHECK_EQ_INT(ds_state_track(a), 0);
  chain_add(&c, a, 1, 0);
  for (b = 1; b <= batches; b++) {
    int64_t now = b * 1000;
    int ops = (int)draw(400);
    for (i = 0; i < ops; i++) {
      uint32_t id = draw(1500), r = draw(10);
      if (r < 3)
        key_remove(a, id);
      else if (r == 3 && ds_state_count(a) > 0)
        CHECK_EQ_INT(ds_state_touch(a, ds_state_next(a, -1), now), 0);
      else
        CHECK(key_put_value(a, id, draw(100000), now) >= 0);
    }
    if (timeout > 0) {
      ds_state_item_t k, v;
      while (ds_state_expire(a, now, &k, &v) == 1) {
      }
    }
    if (draw(40) == 0) {
      ds_state_clear(a);
      for (i = 0; i < 50; i++)
        CHECK(key_put(a, draw(1500), i, now) >= 0);
    }
    /* a checkpoint every 1 to 3 batches: a delta spans several times */
    if (draw(3) != 0 && b != batches)
      continue;
    chain_add(&c, a, c.n >= 12, now);
    {
      ds_state_t *r = chain_rebuild(&c, timeout);
      if (!same_state(a, r) || !same_state(r, a))
        mismatches++;
      ds_state_free(r);
    }
  }
  CHECK_EQ_INT(mismatches, 0);
  ds_buf_close(&c.bytes);
  ds_state_free(a);
}

static void test_random_without_timeout(void) {
  random_run(0, 11, 200);
  random_run(0, 12, 200);
}

static void test_random_with_timeout(void) {
  random_run(3000, 21, 200);
  random_run(3000, 22, 200);
}

/* A delta holds what changed, not what the store holds. */
static void test_delta_follows_changes(void) {
  ds_state_t *a = ds_state_new(0);
  const char *data;
  size_t full, delta;
  int i;
  CHECK_EQ_INT(ds_state_track(a), 0);
  for (i = 0; i < 100000; i++)
    CHECK(ds_state_put_num_num(a, i, i, 1000) >= 0);
  CHECK_EQ_INT(ds_state_checkpoint(a, 1, 1000, &data, &full), 0);
  for (i = 0; i < 100; i++)
    CHECK(ds_state_put_num_num(a, i * 7, -i, 2000) >= 0);
  CHECK_EQ_INT(ds_state_checkpoint(a, 0, 2000, &data, &delta), 0);
  CHECK(delta < 2000);
  CHECK(full > 500000);
  /* nothing since: the header only */
  CHECK_EQ_INT(ds_state_checkpoint(a, 0, 3000, &data, &delta), 0);
  CHECK(delta < 100);
  ds_state_checkpoint_free(a);
  ds_state_free(a);
}

/* A delta of a store not tracking is refused; tracking is idempotent and
 * starts from the state it finds. */
static void test_tracking_starts_where_it_is(void) {
  ds_state_t *a = ds_state_new(0), *b = ds_state_new(0);
  const char *data;
  size_t len;
  char errbuf[200];
  CHECK(ds_state_put_num_num(a, 1, 1, 1000) >= 0);
  CHECK_EQ_INT(ds_state_checkpoint(a, 0, 1000, &data, &len), DS_ESTATE);
  CHECK_EQ_INT(ds_state_checkpoint(a, 1, 1000, &data, &len), 0);
  CHECK_EQ_INT(ds_state_apply(b, data, len, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(ds_state_track(a), 0);
  CHECK_EQ_INT(ds_state_track(a), 0);
  CHECK(ds_state_put_num_num(a, 2, 2, 2000) >= 0);
  CHECK_EQ_INT(ds_state_checkpoint(a, 0, 2000, &data, &len), 0);
  CHECK_EQ_INT(ds_state_apply(b, data, len, errbuf, sizeof errbuf), 0);
  CHECK(same_state(a, b));
  ds_state_free(a);
  ds_state_free(b);
}

/* A bad delta is refused with what and where, and changes nothing. */
static void test_bad_delta_changes_nothing(void) {
  ds_state_t *a = ds_state_new(5000), *b = ds_state_new(5000);
  const char *data;
  size_t len, cut;
  char errbuf[300], *copy;
  int i;
  CHECK_EQ_INT(ds_state_track(a), 0);
  for (i = 0; i < 1000; i++)
    CHECK(ds_state_put_num_num(a, i, i, 1000) >= 0);
  CHECK_EQ_INT(ds_state_checkpoint(a, 1, 1000, &data, &len), 0);
  CHECK_EQ_INT(ds_state_apply(b, data, len, errbuf, sizeof errbuf), 0);
  for (i = 0; i < 1000; i += 3)
    ds_state_remove_num(a, i);
  for (i = 0; i < 1000; i += 5)
    CHECK(ds_state_put_num_num(a, i + 5000, i, 2000) >= 0);
  CHECK_EQ_INT(ds_state_checkpoint(a, 0, 2000, &data, &len), 0);
  copy = ds_malloc(len);
  /* cut at every byte: refused, b as it was */
  for (cut = 0; cut < len; cut++) {
    memcpy(copy, data, len);
    errbuf[0] = 0;
    CHECK(ds_state_apply(b, copy, cut, errbuf, sizeof errbuf) < 0);
    CHECK_EQ_INT(ds_state_count(b), 1000);
    CHECK(strstr(errbuf, "offset") != NULL);
  }
  /* a bit flipped in every byte: refused (CRC), b as it was */
  for (cut = 0; cut < len; cut += 7) {
    memcpy(copy, data, len);
    copy[cut] ^= 0x10;
    CHECK(ds_state_apply(b, copy, len, errbuf, sizeof errbuf) < 0);
    CHECK_EQ_INT(ds_state_count(b), 1000);
  }
  memcpy(copy, data, len);
  CHECK_EQ_INT(ds_state_apply(b, copy, len, errbuf, sizeof errbuf), 0);
  CHECK(same_state(a, b));
  /* a delta going back before the store's times */
  {
    ds_state_t *c = ds_state_new(5000), *d = ds_state_new(5000);
    const char *cd;
    size_t clen;
    CHECK_EQ_INT(ds_state_track(c), 0);
    CHECK(ds_state_put_num_num(c, 1, 1, 500) >= 0);
    CHECK_EQ_INT(ds_state_checkpoint(c, 0, 500, &cd, &clen), 0);
    CHECK(ds_state_put_num_num(d, 2, 2, 900) >= 0);
    CHECK_EQ_INT(ds_state_apply(d, cd, clen, errbuf, sizeof errbuf), DS_ECORRUPT);
    CHECK(strstr(errbuf, "go back in time") != NULL);
    CHECK_EQ_INT(ds_state_count(d), 1);
    ds_state_free(c);
    ds_state_free(d);
  }
  ds_free(copy);
  ds_state_free(a);
  ds_state_free(b);
}

/* Out of memory while recording a removal: the next delta writes every
 * key (and says the reader must clear first), so nothing is lost. Out of
 * memory in a put: nothing changed, nothing recorded wrongly. */
static void test_out_of_memory_keeps_deltas_right(void) {
  ds_state_t *a = ds_state_new(0);
  chain_t c;
  long n;
  int i, rc;
  ds_buf_init(&c.bytes);
  c.n = 0;
  CHECK_EQ_INT(ds_state_track(a), 0);
  for (i = 0; i < 5000; i++)
    CHECK(ds_state_put_num_num(a, i, i, 1000) >= 0);
  chain_add(&c, a, 1, 1000);
  /* removals recorded until memory runs out */
  ds_test_fail_after(1);
  for (i = 0; i < 2000; i++)
    CHECK_EQ_INT(ds_state_remove_num(a, i), 1);
  ds_test_fail_after(0);
  CHECK_EQ_INT(a->cleared, 1);
  chain_add(&c, a, 0, 2000);
  {
    ds_state_t *r = chain_rebuild(&c, 0);
    CHECK(same_state(a, r) && same_state(r, a));
    ds_state_free(r);
  }
  /* puts failing at every allocation: the delta stays right */
  for (n = 1; n < 40; n++) {
    ds_test_fail_after(n);
    for (i = 0; i < 300; i++) {
      rc = ds_state_put_num_num(a, 100000 + n * 1000 + i, i, 3000 + n);
      CHECK(rc >= 0 || rc == DS_ENOMEM);
    }
    ds_test_fail_after(0);
    chain_add(&c, a, 0, 3000 + n);
  }
  {
    ds_state_t *r = chain_rebuild(&c, 0);
    CHECK(same_state(a, r) && same_state(r, a));
    ds_state_free(r);
  }
  ds_buf_close(&c.bytes);
  ds_state_free(a);
}

/* A snapshot of many keys (its index built in bulk, state_snapshot.c)
 * restores them all, each found by its key, with its time. */
static void test_many_keys_round_trip(void) {
  ds_state_t *a = ds_state_new(60000), *b = ds_state_new(60000);
  const char *data;
  size_t len;
  char errbuf[200];
  uint32_t i;
  for (i = 0; i < 120000; i++)
    CHECK(key_put_value(a, i, i, 1000 * (int64_t)(1 + i / 10000)) >= 0);
  for (i = 0; i < 120000; i += 7)
    key_remove(a, i);
  CHECK_EQ_INT(ds_state_checkpoint(a, 1, 13000, &data, &len), 0);
  CHECK_EQ_INT(ds_state_apply(b, data, len, errbuf, sizeof errbuf), 0);
  CHECK(same_state(a, b) && same_state(b, a));
  ds_state_free(a);
  ds_state_free(b);
}

int main(void) {
  ds_test_begin();
  test_random_without_timeout();
  test_random_with_timeout();
  test_delta_follows_changes();
  test_tracking_starts_where_it_is();
  test_bad_delta_changes_nothing();
  test_out_of_memory_keeps_deltas_right();
  test_many_keys_round_trip();
  return ds_test_end("test_state_delta");
}

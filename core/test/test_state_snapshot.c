/* State store snapshots (state_snapshot.c): a store with a timeout comes
 * back with each key's last-update time, so keys time out in the batch they
 * would have; a failed restore leaves the store empty and says what and
 * where in the caller's buffer (or in none); out of memory likewise. */
#include <stdio.h>

#include "dstream/alloc.h"
#include "dstream/codec.h"
#include "dstream/error.h"
#include "dstream/state.h"
#include "harness.h"
#include "state_internal.h"

/* A store with a timeout of 10 s: key i (0..n-1) last updated at
 * 1000 * (i % 5 + 1), with the value i, string keys for odd i. */
static ds_state_t *filled(int n) {
  ds_state_t *s = ds_state_new(10000);
  int64_t t;
  int i;
  for (t = 1000; t <= 5000; t += 1000) {
    for (i = 0; i < n; i++) {
      char key[16];
      int len = snprintf(key, sizeof key, "key-%d", i);
      if ((i % 5 + 1) * 1000 != t)
        continue;
      if (i % 2)
        CHECK(ds_state_put_bytes_num(s, DS_STATE_STR, key, (uint32_t)len, i, t) >= 0);
      else
        CHECK(ds_state_put_num_num(s, i, i, t) >= 0);
    }
  }
  return s;
}

/* Expire everything, checking times never go back; the number expired. */
static int expire_all(ds_state_t *s, int64_t *times, int max) {
  ds_state_item_t k, v;
  int n = 0;
  int64_t now;
  for (now = 10000; now <= 16000; now += 1000) {
    while (ds_state_expire(s, now, &k, &v) == 1) {
      if (n < max)
        times[n] = now;
      n++;
    }
  }
  return n;
}

static void test_round_trip_keeps_times(void) {
  enum { N = 500 };
  ds_state_t *a = filled(N), *b = ds_state_new(10000);
  static int64_t ta[N], tb[N];
  char errbuf[200];
  ds_buf_t buf;
  int i, slot;
  ds_buf_init(&buf);
  CHECK_EQ_INT(ds_state_snapshot(a, 5000, &buf), 0);
  CHECK_EQ_INT(ds_state_restore(b, buf.data, buf.len, errbuf, sizeof errbuf),
               (int64_t)buf.len);
  CHECK_EQ_INT(ds_state_count(b), N);
  for (i = 0; i < N; i += 2) {
    int64_t when;
    slot = ds_state_get_num(b, i, NULL);
    CHECK(slot >= 0);
    CHECK_EQ_INT(ds_state_time(b, slot, &when), 0);
    CHECK_EQ_INT(when, (i % 5 + 1) * 1000);
  }
  CHECK_EQ_INT(expire_all(a, ta, N), N);
  CHECK_EQ_INT(expire_all(b, tb, N), N);
  CHECK(memcmp(ta, tb, sizeof ta) == 0);
  ds_buf_close(&buf);
  ds_state_free(a);
  ds_state_free(b);
}

/* Each failure: its code, the store left empty, and the message. */
static void expect_failure(const char *data, size_t len, int code,
                           const char *prefix) {
  ds_state_t *s = ds_state_new(10000);
  char errbuf[300];
  errbuf[0] = 0;
  CHECK_EQ_INT(ds_state_restore(s, data, len, errbuf, sizeof errbuf), code);
  CHECK_EQ_INT(ds_state_count(s), 0);
  if (strncmp(errbuf, prefix, strlen(prefix)) != 0) {
    fprintf(stderr, "got \"%s\", expected it to start \"%s\"\n", errbuf, prefix);
    CHECK(0);
  }
  /* no buffer: the same code */
  CHECK_EQ_INT(ds_state_restore(s, data, len, NULL, 0), code);
  ds_state_free(s);
}

static void test_failures_say_what_and_where(void) {
  ds_state_t *a = filled(20), *full = filled(1);
  ds_buf_t buf;
  char errbuf[200], *copy;
  ds_buf_init(&buf);
  CHECK_EQ_INT(ds_state_snapshot(a, 5000, &buf), 0);
  copy = ds_malloc(buf.len);
  memcpy(copy, buf.data, buf.len);
  expect_failure(copy, 10, DS_ETRUNCATED, "state snapshot: frame at offset 0: ");
  copy[buf.len - 1] ^= 1; /* the last frame's payload */
  expect_failure(copy, buf.len, DS_ECHECKSUM, "state snapshot: frame at offset ");
  expect_failure(copy, 0, DS_ETRUNCATED, "state snapshot: frame at offset 0");
  /* a store that holds keys is not restored into */
  CHECK_EQ_INT(ds_state_restore(full, buf.data, buf.len, errbuf, sizeof errbuf), DS_ESTATE);
  CHECK_EQ_STR(errbuf, "state snapshot: the store to restore into holds 1 keys");
  CHECK_EQ_INT(ds_state_count(full), 1);
  ds_free(copy);
  ds_buf_close(&buf);
  ds_state_free(a);
  ds_state_free(full);
}

/* Out of memory at any allocation of a restore: DS_ENOMEM, the store
 * empty, nothing leaked. */
static void test_out_of_memory(void) {
  ds_state_t *a = filled(300);
  ds_buf_t buf;
  long n;
  int64_t rc = DS_ENOMEM;
  ds_buf_init(&buf);
  CHECK_EQ_INT(ds_state_snapshot(a, 5000, &buf), 0);
  for (n = 1; rc == DS_ENOMEM && n < 1000; n++) {
    ds_state_t *b = ds_state_new(10000);
    char errbuf[200];
    ds_test_fail_after(n);
    rc = ds_state_restore(b, buf.data, buf.len, errbuf, sizeof errbuf);
    ds_test_fail_after(0);
    if (rc == DS_ENOMEM) {
      CHECK_EQ_INT(ds_state_count(b), 0);
      CHECK(strstr(errbuf, "out of memory") != NULL);
    }
    ds_state_free(b);
  }
  CHECK_EQ_INT(rc, (int64_t)buf.len);
  ds_buf_close(&buf);
  ds_state_free(a);
}

/* A snapshot naming a key twice (here the 3rd and the 5th of 6, a long
 * string kept in a blob; written by hand, CRCs right) is refused, the
 * store left empty. */
static void test_a_key_twice_is_refused(void) {
  static const char *const keys[6] = {"a", "b", "a key long enough for a blob",
                                      "c", "a key long enough for a blob", "d"};
  ds_state_t *s = ds_state_new(0);
  ds_buf_t buf;
  size_t start;
  char errbuf[200];
  int i;
  ds_buf_init(&buf);
  CHECK_EQ_INT(ds_frame_begin(&buf, 0, &start), 0);
  ds_codec_put_array(&buf, 5);
  ds_codec_put_str(&buf, "dstream.state", 13);
  ds_codec_put_int(&buf, 1);
  ds_codec_put_int(&buf, 6);
  ds_codec_put_int(&buf, 0);
  ds_codec_put_int(&buf, 1000);
  CHECK_EQ_INT(ds_frame_end(&buf, start, 1), 0);
  CHECK_EQ_INT(ds_frame_begin(&buf, DS_FRAME_PAIRS, &start), 0);
  for (i = 0; i < 6; i++) {
    ds_codec_put_str(&buf, keys[i], strlen(keys[i]));
    ds_codec_put_int(&buf, i);
  }
  CHECK_EQ_INT(ds_frame_end(&buf, start, 6), 0);
  CHECK_EQ_INT(ds_state_restore(s, buf.data, buf.len, errbuf, sizeof errbuf),
               DS_ECORRUPT);
  CHECK_EQ_STR(errbuf, "state snapshot: key number 5 appears twice (first as key number 3)");
  CHECK_EQ_INT(ds_state_count(s), 0);
  ds_buf_close(&buf);
  ds_state_free(s);
}

int main(void) {
  ds_test_begin();
  test_round_trip_keeps_times();
  test_failures_say_what_and_where();
  test_out_of_memory();
  test_a_key_twice_is_refused();
  return ds_test_end("test_state_snapshot");
}

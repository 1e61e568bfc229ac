/* Window buffers hold exactly the batches a window can still read, byte for
 * byte, account for their bytes, and survive a failed allocation. */
#include <stdio.h>

#include "dstream/codec.h"
#include "dstream/error.h"
#include "dstream/window.h"
#include "harness.h"

/* 1 if the batch at t is held with exactly the bytes of s. */
static int holds(const ds_window_t *w, int64_t t, const char *s) {
  const char *data;
  size_t len;
  if (!ds_window_get(w, t, &data, &len))
    return 0;
  return len == strlen(s) && (len == 0 || memcmp(data, s, len) == 0);
}

static int held(const ds_window_t *w, int64_t t) {
  const char *data;
  size_t len;
  return ds_window_get(w, t, &data, &len);
}

static void test_init_checks_durations(void) {
  ds_window_t w;
  CHECK_EQ_INT(ds_window_init(&w, 0, 1000), DS_EINVAL);
  CHECK_EQ_INT(ds_window_init(&w, 1000, 0), DS_EINVAL);
  CHECK_EQ_INT(ds_window_init(&w, 1000, 2500), DS_EINVAL);
  CHECK_EQ_INT(ds_window_init(&w, -1000, -3000), DS_EINVAL);
  CHECK_EQ_INT(ds_window_init(&w, 1000, 3000), 0);
  CHECK_EQ_INT(w.max_count, 3);
  CHECK_EQ_INT(w.count, 0);
  CHECK(w.slots == NULL);
  ds_window_close(&w);
}

static void test_keeps_the_window_and_drops_the_rest(void) {
  ds_window_t w;
  ds_window_init(&w, 1000, 3000);
  CHECK_EQ_INT(ds_window_push(&w, 1000, "a", 1), 0);
  CHECK_EQ_INT(ds_window_push(&w, 2000, "bb", 2), 0);
  CHECK_EQ_INT(ds_window_push(&w, 3000, "ccc", 3), 0);
  CHECK(holds(&w, 1000, "a") && holds(&w, 2000, "bb") && holds(&w, 3000, "ccc"));
  CHECK_EQ_INT(w.bytes, 6);
  /* The window at 4000 covers (1000, 4000]: the batch at 1000 goes. */
  CHECK_EQ_INT(ds_window_push(&w, 4000, "dddd", 4), 0);
  CHECK(!held(&w, 1000));
  CHECK(holds(&w, 2000, "bb") && holds(&w, 4000, "dddd"));
  CHECK_EQ_INT(w.count, 3);
  CHECK_EQ_INT(w.bytes, 9);
  CHECK(!held(&w, 5000));
  CHECK(!held(&w, 2500));
  CHECK(!held(&w, 0));
  ds_window_close(&w);
  CHECK_EQ_INT(w.count, 0);
  CHECK_EQ_INT(w.bytes, 0);
}

static void test_empty_batches_hold_nothing_but_a_slot(void) {
  ds_window_t w;
  const char *data = "x";
  size_t len = 99;
  ds_window_init(&w, 1000, 2000);
  CHECK_EQ_INT(ds_window_push(&w, 1000, NULL, 0), 0);
  CHECK(ds_window_get(&w, 1000, &data, &len) == 1 && len == 0 && data == NULL);
  CHECK_EQ_INT(w.bytes, 0);
  CHECK_EQ_INT(ds_test_live(), 1); /* the ring, no bytes */
  ds_window_close(&w);
}

static void test_skipped_times_inside_the_window_are_empty(void) {
  ds_window_t w;
  ds_window_init(&w, 1000, 4000);
  ds_window_push(&w, 1000, "a", 1);
  ds_window_push(&w, 2000, "b", 1);
  /* 3000 and 4000 are skipped: they are inside (1000, 5000], so empty. */
  CHECK_EQ_INT(ds_window_push(&w, 5000, "e", 1), 0);
  CHECK(!held(&w, 1000));
  CHECK(holds(&w, 2000, "b") && holds(&w, 3000, "") && holds(&w, 4000, "") && holds(&w, 5000, "e"));
  CHECK_EQ_INT(w.count, 4);
  /* A jump past the whole window leaves only the new batch and the empty
   * times before it that the new window covers. */
  CHECK_EQ_INT(ds_window_push(&w, 20000, "z", 1), 0);
  CHECK_EQ_INT(w.count, 4);
  CHECK(holds(&w, 17000, "") && holds(&w, 20000, "z") && !held(&w, 16000) && !held(&w, 5000));
  CHECK_EQ_INT(w.bytes, 1);
  ds_window_close(&w);
}

static void test_push_refuses_bad_times(void) {
  ds_window_t w;
  ds_window_init(&w, 1000, 3000);
  CHECK_EQ_INT(ds_window_push(&w, 1500, "x", 1), DS_EINVAL);
  CHECK_EQ_INT(ds_window_push(&w, 2000, "x", 1), 0);
  CHECK_EQ_INT(ds_window_push(&w, 2000, "y", 1), DS_ERANGE);
  CHECK_EQ_INT(ds_window_push(&w, 1000, "y", 1), DS_ERANGE);
  CHECK(holds(&w, 2000, "x"));
  CHECK_EQ_INT(w.count, 1);
  CHECK_EQ_INT(w.bytes, 1);
  ds_window_close(&w);
}

static void test_evict_drops_what_no_later_window_reads(void) {
  ds_window_t w;
  ds_window_init(&w, 1000, 3000);
  ds_window_push(&w, 1000, "a", 1);
  ds_window_push(&w, 2000, "b", 1);
  ds_window_push(&w, 3000, "c", 1);
  CHECK_EQ_INT(ds_window_evict(&w, 3000), 0);
  CHECK_EQ_INT(ds_window_evict(&w, 5000), 2);
  CHECK(!held(&w, 2000) && holds(&w, 3000, "c"));
  CHECK_EQ_INT(w.bytes, 1);
  CHECK_EQ_INT(ds_window_evict(&w, 100000), 1);
  CHECK_EQ_INT(w.count, 0);
  /* Times still move forward after the buffer emptied. */
  CHECK_EQ_INT(ds_window_push(&w, 3000, "c", 1), DS_ERANGE);
  CHECK_EQ_INT(ds_window_push(&w, 6000, "f", 1), 0);
  CHECK(holds(&w, 4000, "") && holds(&w, 5000, "") && holds(&w, 6000, "f"));
  ds_window_close(&w);
}

/* A long window over many batches: the ring grows, wraps, and every batch
 * of the window reads back as it was pushed. */
static void test_long_windows_wrap_the_ring(void) {
  ds_window_t w;
  char buf[32];
  int ok = 1;
  size_t bytes = 0;
  ds_window_init(&w, 10, 1000);
  for (int i = 1; i <= 1000; i++) {
    int n = snprintf(buf, sizeof buf, "batch %d", i);
    if (ds_window_push(&w, i * 10, buf, (size_t)n) != 0)
      ok = 0;
  }
  CHECK(ok);
  CHECK_EQ_INT(w.count, 100);
  CHECK_EQ_INT(w.cap, 100);
  for (int i = 901; i <= 1000; i++) {
    snprintf(buf, sizeof buf, "batch %d", i);
    if (!holds(&w, i * 10, buf))
      ok = 0;
    bytes += strlen(buf);
  }
  CHECK(ok);
  CHECK(!held(&w, 9000));
  CHECK_EQ_INT(w.bytes, bytes);
  ds_window_close(&w);
}

/* Pushes that fail for want of memory (the copy, then the ring's growth)
 * leave the buffer exactly as it was; retried, they succeed. */
static void test_out_of_memory_changes_nothing(void) {
  ds_window_t w;
  char buf[8];
  int ok = 1;
  ds_window_init(&w, 1, 40);
  for (int i = 1; i <= 16; i++)
    ds_window_push(&w, i, "abc", 3);
  CHECK_EQ_INT(w.cap, 16);
  /* The next push copies its bytes (allocation 1) and grows the ring
   * (allocation 2). */
  for (long n = 1; n <= 2; n++) {
    ds_test_fail_after(n);
    CHECK_EQ_INT(ds_window_push(&w, 17, "defg", 4), DS_ENOMEM);
    ds_test_fail_after(0);
    CHECK_EQ_INT(w.count, 16);
    CHECK_EQ_INT(w.cap, 16);
    CHECK_EQ_INT(w.bytes, 48);
    CHECK_EQ_INT(w.newest, 16);
    for (int i = 1; i <= 16; i++)
      if (!holds(&w, i, "abc"))
        ok = 0;
    CHECK(!held(&w, 17));
  }
  CHECK(ok);
  CHECK_EQ_INT(ds_window_push(&w, 17, "defg", 4), 0);
  CHECK(holds(&w, 17, "defg") && holds(&w, 1, "abc"));
  /* An empty batch needs no copy: only the ring can fail. */
  ds_window_close(&w);
  ds_window_init(&w, 1, 40);
  ds_test_fail_after(1);
  CHECK_EQ_INT(ds_window_push(&w, 1, NULL, 0), DS_ENOMEM);
  ds_test_fail_after(0);
  CHECK_EQ_INT(w.count, 0);
  CHECK(w.slots == NULL);
  /* Every allocation of a run of pushes failing in turn. */
  for (long n = 1; n <= 60; n++) {
    int i;
    ds_window_close(&w);
    ds_window_init(&w, 1, 40);
    ds_test_fail_after(n);
    for (i = 1; i <= 30; i++) {
      snprintf(buf, sizeof buf, "r%d", i);
      if (ds_window_push(&w, i, buf, strlen(buf)) != 0)
        break;
    }
    ds_test_fail_after(0);
    if (w.count != (size_t)(i - 1))
      ok = 0;
    for (int j = 1; j < i; j++) {
      snprintf(buf, sizeof buf, "r%d", j);
      if (!holds(&w, j, buf))
        ok = 0;
    }
  }
  CHECK(ok);
  ds_window_close(&w);
}

/* Whether b holds exactly what a holds: the same times, bytes, newest. */
static int same_buffer(const ds_window_t *a, const ds_window_t *b) {
  size_t i;
  if (a->count != b->count || a->bytes != b->bytes ||
      (a->count > 0 && a->newest != b->newest))
    return 0;
  for (i = 0; i < a->count; i++) {
    int64_t t = a->newest - (int64_t)i * a->step_ms;
    const char *pa, *pb;
    size_t la, lb;
    if (!ds_window_get(a, t, &pa, &la) || !ds_window_get(b, t, &pb, &lb) ||
        la != lb || (la > 0 && memcmp(pa, pb, la) != 0))
      return 0;
  }
  return 1;
}

static uint32_t wrng = 5;

static uint32_t wdraw(uint32_t n) {
  wrng = wrng * 1103515245u + 12345u;
  return (wrng >> 8) % n;
}

/* Random pushes (with skipped times), evictions, and a checkpoint of what
 * entered since the previous one every 1 to 4 pushes, a full one now and
 * then: a buffer rebuilt from the full one and the later ones holds what
 * the buffer written holds, whatever left the window meanwhile. */
static void test_checkpoints_rebuild_the_buffer(void) {
  int round, mismatches = 0;
  for (round = 0; round < 20; round++) {
    ds_window_t w, r;
    ds_buf_t cp;
    int64_t t = 1000, since = INT64_MIN;
    int i;
    char errbuf[200];
    ds_buf_init(&cp);
    ds_window_init(&w, 1000, 1000 * (int64_t)(1 + wdraw(6)));
    ds_window_init(&r, w.step_ms, w.len_ms);
    for (i = 0; i < 200; i++) {
      char bytes[64];
      int len = wdraw(5) == 0 ? 0 : snprintf(bytes, sizeof bytes, "batch %d %u", i, wdraw(1000));
      t += 1000 * (int64_t)(1 + (wdraw(4) == 0 ? wdraw(8) : 0));
      CHECK_EQ_INT(ds_window_push(&w, t, bytes, (size_t)len), 0);
      if (wdraw(6) == 0)
        ds_window_evict(&w, t + 1000 * (int64_t)wdraw(4));
      if (wdraw(3) != 0)
        continue;
      ds_buf_truncate(&cp, 0);
      if (wdraw(10) == 0) { /* compaction: a full one into a new buffer */
        since = INT64_MIN;
        ds_window_close(&r);
      }
      CHECK_EQ_INT(ds_window_checkpoint(&w, since, &cp), 0);
      since = w.newest;
      CHECK_EQ_INT(ds_window_restore(&r, cp.data, cp.len, errbuf, sizeof errbuf), 0);
      if (!same_buffer(&w, &r) || r.newest != w.newest)
        mismatches++;
      /* the next push follows on the rebuilt buffer as on the other */
    }
    ds_buf_close(&cp);
    ds_window_close(&w);
    ds_window_close(&r);
  }
  CHECK_EQ_INT(mismatches, 0);
}

/* A checkpoint of a buffer that evicted everything keeps its newest time,
 * so the next push there is refused on both, and one after it accepted. */
static void test_checkpoint_of_an_emptied_buffer(void) {
  ds_window_t w, r;
  ds_buf_t cp;
  char errbuf[200];
  ds_buf_init(&cp);
  ds_window_init(&w, 1000, 2000);
  ds_window_init(&r, 1000, 2000);
  CHECK_EQ_INT(ds_window_push(&w, 5000, "x", 1), 0);
  ds_window_evict(&w, 9000);
  CHECK_EQ_INT(w.count, 0);
  CHECK_EQ_INT(ds_window_checkpoint(&w, INT64_MIN, &cp), 0);
  CHECK_EQ_INT(ds_window_restore(&r, cp.data, cp.len, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(r.count, 0);
  CHECK_EQ_INT(ds_window_push(&r, 5000, "y", 1), DS_ERANGE);
  CHECK_EQ_INT(ds_window_push(&r, 6000, "y", 1), 0);
  /* nothing pushed ever: restores into nothing pushed */
  ds_window_close(&w);
  ds_window_close(&r);
  ds_window_init(&w, 1000, 2000);
  ds_buf_truncate(&cp, 0);
  CHECK_EQ_INT(ds_window_checkpoint(&w, INT64_MIN, &cp), 0);
  CHECK_EQ_INT(ds_window_restore(&r, cp.data, cp.len, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(ds_window_push(&r, 0, "z", 1), 0);
  ds_buf_close(&cp);
  ds_window_close(&w);
  ds_window_close(&r);
}

/* A damaged or misplaced checkpoint is refused, saying what and where, and
 * the buffer is unchanged. */
static void test_bad_checkpoints_change_nothing(void) {
  ds_window_t w, r, other;
  ds_buf_t cp, later;
  char errbuf[200];
  size_t cut;
  ds_buf_init(&cp);
  ds_buf_init(&later);
  ds_window_init(&w, 1000, 3000);
  ds_window_init(&r, 1000, 3000);
  ds_window_init(&other, 1000, 4000);
  CHECK_EQ_INT(ds_window_push(&w, 1000, "a", 1), 0);
  CHECK_EQ_INT(ds_window_push(&w, 2000, "bb", 2), 0);
  CHECK_EQ_INT(ds_window_checkpoint(&w, INT64_MIN, &cp), 0);
  CHECK_EQ_INT(ds_window_push(&w, 3000, "ccc", 3), 0);
  CHECK_EQ_INT(ds_window_push(&w, 4000, "dddd", 4), 0);
  CHECK_EQ_INT(ds_window_checkpoint(&w, 2000, &later), 0);
  /* the later one alone does not follow */
  CHECK_EQ_INT(ds_window_restore(&r, later.data, later.len, errbuf, sizeof errbuf), DS_EINVAL);
  CHECK(strstr(errbuf, "held 3 batches up to 4000, this one would hold fewer") != NULL);
  CHECK_EQ_INT(r.count, 0);
  CHECK_EQ_INT(ds_window_restore(&r, cp.data, cp.len, errbuf, sizeof errbuf), 0);
  for (cut = 0; cut < later.len; cut++) {
    errbuf[0] = 0;
    CHECK(ds_window_restore(&r, later.data, cut, errbuf, sizeof errbuf) < 0);
    CHECK(strstr(errbuf, "window checkpoint: ") == errbuf);
    CHECK_EQ_INT(r.count, 2);
  }
  CHECK_EQ_INT(ds_window_restore(&other, cp.data, cp.len, errbuf, sizeof errbuf), DS_EINVAL);
  CHECK(strstr(errbuf, "written by a buffer of a 3000 ms window every 1000 ms") != NULL);
  CHECK_EQ_INT(ds_window_restore(&r, later.data, later.len, errbuf, sizeof errbuf), 0);
  CHECK(same_buffer(&w, &r));
  /* again: the same batches no longer follow the newest held */
  CHECK_EQ_INT(ds_window_restore(&r, later.data, later.len, errbuf, sizeof errbuf), DS_EINVAL);
  CHECK(strstr(errbuf, "does not follow the newest held (4000)") != NULL);
  CHECK(same_buffer(&w, &r));
  ds_buf_close(&cp);
  ds_buf_close(&later);
  ds_window_close(&w);
  ds_window_close(&r);
  ds_window_close(&other);
}

int main(void) {
  ds_test_begin();
  test_init_checks_durations();
  test_keeps_the_window_and_drops_the_rest();
  test_empty_batches_hold_nothing_but_a_slot();
  test_skipped_times_inside_the_window_are_empty();
  test_push_refuses_bad_times();
  test_evict_drops_what_no_later_window_reads();
  test_long_windows_wrap_the_ring();
  test_out_of_memory_changes_nothing();
  test_checkpoints_rebuild_the_buffer();
  test_checkpoint_of_an_emptied_buffer();
  test_bad_checkpoints_change_nothing();
  return ds_test_end("test_window");
}

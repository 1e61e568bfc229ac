/* The line splitter cuts lines exactly, wherever the feeds are cut, skips
 * oversize lines without buffering them, and survives a failed allocation. */
#include <stdlib.h>

#include "dstream/error.h"
#include "dstream/lines.h"
#include "harness.h"

/* Check blk holds exactly the records of want (n strings of given lengths). */
static void check_records(const ds_block_t *blk, const char *const *want,
                          const size_t *wlen, size_t n) {
  const char *rec;
  size_t len, off = 0, i = 0;
  while (ds_block_next(blk, &off, &rec, &len)) {
    CHECK(i < n);
    if (i < n)
      CHECK(len == wlen[i] && memcmp(rec, want[i], len) == 0);
    i++;
  }
  CHECK_EQ_INT(i, n);
}

/* Split text (NUL-terminated, for readability) in one feed plus a finish. */
static ds_block_t *split_all(const char *text, size_t n, size_t max, uint64_t *skipped) {
  ds_lines_t ls;
  ds_block_t *blk = ds_block_new(16);
  ds_lines_init(&ls, max);
  CHECK_EQ_INT(ds_lines_feed(&ls, text, n, blk), 0);
  CHECK_EQ_INT(ds_lines_finish(&ls, blk), 0);
  if (skipped != NULL)
    *skipped = ls.skipped;
  ds_lines_close(&ls);
  return blk;
}

static void test_terminators_and_bytes_kept(void) {
  static const char text[] = "a\nbb\r\n\nc\rd\ne\0f\n\r\n";
  const char *want[] = {"a", "bb", "", "c\rd", "e\0f", ""};
  size_t wlen[] = {1, 2, 0, 3, 3, 0};
  ds_block_t *blk = split_all(text, sizeof(text) - 1, 100, NULL);
  check_records(blk, want, wlen, 6);
  ds_block_free(blk);
}

static void test_final_partial_line_is_a_record(void) {
  const char *want[] = {"x", "tail\r"};
  size_t wlen[] = {1, 5};
  ds_block_t *blk = split_all("x\ntail\r", 7, 100, NULL);
  check_records(blk, want, wlen, 2);
  ds_block_free(blk);
  blk = split_all("", 0, 100, NULL);
  CHECK_EQ_INT(blk->count, 0);
  ds_block_free(blk);
}

static void test_lines_across_feeds(void) {
  ds_lines_t ls;
  ds_block_t *blk = ds_block_new(16);
  const char *want[] = {"abcd", "ef", "", "gh"};
  size_t wlen[] = {4, 2, 0, 2};
  ds_lines_init(&ls, 100);
  CHECK_EQ_INT(ds_lines_feed(&ls, "ab", 2, blk), 0);
  CHECK_EQ_INT(ds_lines_feed(&ls, "cd\r", 3, blk), 0);
  CHECK_EQ_INT(blk->count, 0);
  CHECK_EQ_INT(ds_lines_feed(&ls, "\nef", 3, blk), 0);
  CHECK_EQ_INT(ds_lines_feed(&ls, "\r", 1, blk), 0);
  CHECK_EQ_INT(ds_lines_feed(&ls, "", 0, blk), 0);
  CHECK_EQ_INT(ds_lines_feed(&ls, "\n\ngh", 4, blk), 0);
  CHECK_EQ_INT(ds_lines_finish(&ls, blk), 0);
  check_records(blk, want, wlen, 4);
  ds_lines_close(&ls);
  ds_block_free(blk);
}

static void test_oversize_line_is_skipped(void) {
  static const char text[] = "abcd\nabcde\nxy\nabcd\r\nabcdef\r\n";
  const char *want[] = {"abcd", "xy", "abcd"};
  size_t wlen[] = {4, 2, 4};
  uint64_t skipped;
  ds_block_t *blk = split_all(text, sizeof(text) - 1, 4, &skipped);
  check_records(blk, want, wlen, 3);
  CHECK_EQ_INT(skipped, 2);
  ds_block_free(blk);
}

static void test_oversize_line_spanning_feeds_is_never_buffered(void) {
  ds_lines_t ls;
  ds_block_t *blk = ds_block_new(16);
  const char *want[] = {"ok", "abcd", "fine"};
  size_t wlen[] = {2, 4, 4};
  ds_lines_init(&ls, 4);
  CHECK_EQ_INT(ds_lines_feed(&ls, "ok\nab", 5, blk), 0);
  CHECK_EQ_INT(ds_lines_feed(&ls, "cde", 3, blk), 0);
  CHECK_EQ_INT(ls.skipped, 1);
  CHECK_EQ_INT(ls.last_skip_len, 5);
  CHECK(ls.skipping);
  CHECK_EQ_INT(ds_lines_feed(&ls, "fghijklmnopqrstuvwxyz", 21, blk), 0);
  CHECK_EQ_INT(ds_lines_feed(&ls, "still going\r", 12, blk), 0);
  CHECK_EQ_INT(ls.skipped, 1);
  CHECK(ls.cap <= 5);
  /* A line of exactly max bytes whose "\r\n" is cut between feeds. */
  CHECK_EQ_INT(ds_lines_feed(&ls, "\nabcd\r", 6, blk), 0);
  CHECK_EQ_INT(ds_lines_feed(&ls, "\nfine", 5, blk), 0);
  CHECK(ls.cap <= 5);
  CHECK_EQ_INT(ds_lines_finish(&ls, blk), 0);
  check_records(blk, want, wlen, 3);
  CHECK_EQ_INT(ls.skipped, 1);
  ds_lines_close(&ls);
  ds_block_free(blk);
}

static void test_oversize_final_line_is_skipped(void) {
  ds_lines_t ls;
  ds_block_t *blk = ds_block_new(16);
  ds_lines_init(&ls, 4);
  CHECK_EQ_INT(ds_lines_feed(&ls, "abcd\r", 5, blk), 0);
  CHECK_EQ_INT(ls.skipped, 0);
  CHECK_EQ_INT(ds_lines_finish(&ls, blk), 0);
  CHECK_EQ_INT(ls.skipped, 1);
  CHECK_EQ_INT(blk->count, 0);
  /* The splitter resyncs: the next input starts a fresh line. */
  CHECK_EQ_INT(ds_lines_feed(&ls, "abcdefgh", 8, blk), 0);
  CHECK_EQ_INT(ds_lines_finish(&ls, blk), 0);
  CHECK_EQ_INT(ds_lines_feed(&ls, "z\n", 2, blk), 0);
  CHECK_EQ_INT(ls.skipped, 2);
  CHECK_EQ_INT(blk->count, 1);
  ds_lines_close(&ls);
  ds_block_free(blk);
}

static void test_reset_forgets_the_partial_line(void) {
  ds_lines_t ls;
  ds_block_t *blk = ds_block_new(16);
  const char *want[] = {"new"};
  size_t wlen[] = {3};
  ds_lines_init(&ls, 4);
  CHECK_EQ_INT(ds_lines_feed(&ls, "lost", 4, blk), 0);
  ds_lines_reset(&ls);
  CHECK_EQ_INT(ds_lines_feed(&ls, "new\n", 4, blk), 0);
  check_records(blk, want, wlen, 1);
  ds_lines_close(&ls);
  ds_block_free(blk);
}

/* The reference: split a whole buffer the slow, obvious way. */
static ds_block_t *reference_split(const char *text, size_t n, size_t max, uint64_t *skipped) {
  ds_block_t *blk = ds_block_new(16);
  size_t start = 0, i;
  *skipped = 0;
  for (i = 0; i <= n; i++) {
    size_t len;
    if (i < n && text[i] != '\n')
      continue;
    if (i == n && start == n)
      break;
    len = i - start;
    if (i < n && len > 0 && text[i - 1] == '\r')
      len--;
    if (len > max)
      (*skipped)++;
    else
      ds_block_append(blk, text + start, len);
    start = i + 1;
  }
  return blk;
}

static int same_block(const ds_block_t *a, const ds_block_t *b) {
  return a->count == b->count && a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static void test_random_cuts_match_the_reference(void) {
  static const char alphabet[] = "ab\r\n\n\0";
  char text[200];
  int round;
  srand(42);
  for (round = 0; round < 2000; round++) {
    size_t n = (size_t)(rand() % (int)sizeof(text)), max = 1 + (size_t)(rand() % 8), i = 0;
    uint64_t want_skipped;
    ds_block_t *want, *got = ds_block_new(1);
    ds_lines_t ls;
    for (i = 0; i < n; i++)
      text[i] = alphabet[rand() % 6];
    want = reference_split(text, n, max, &want_skipped);
    ds_lines_init(&ls, max);
    for (i = 0; i < n;) {
      size_t k = 1 + (size_t)(rand() % 12);
      if (k > n - i)
        k = n - i;
      CHECK_EQ_INT(ds_lines_feed(&ls, text + i, k, got), 0);
      CHECK(ls.len <= max + 1);
      i += k;
    }
    CHECK_EQ_INT(ds_lines_finish(&ls, got), 0);
    CHECK(same_block(want, got));
    CHECK_EQ_INT(ls.skipped, want_skipped);
    ds_lines_close(&ls);
    ds_block_free(want);
    ds_block_free(got);
  }
}

/* Feed; if that fails, check it changed nothing, stop failing and feed again.
 * Returns 1 if the first feed failed. */
static int feed_or_retry(ds_lines_t *ls, const char *text, size_t n, ds_block_t *blk) {
  size_t carried = ls->len, len = blk->len;
  uint32_t count = blk->count;
  int rc = ds_lines_feed(ls, text, n, blk);
  if (rc == 0)
    return 0;
  CHECK_EQ_INT(rc, DS_ENOMEM);
  CHECK_EQ_INT(ls->len, carried);
  CHECK_EQ_INT(blk->len, len);
  CHECK_EQ_INT(blk->count, count);
  ds_test_fail_after(0);
  CHECK_EQ_INT(ds_lines_feed(ls, text, n, blk), 0);
  return 1;
}

/* Feed the same text with the nth allocation failing, retrying each failed
 * feed after failing is turned off: the result must equal the reference. */
static void test_failed_feed_changes_nothing(void) {
  static const char text[] = "first line\nsecond\r\nan unfinished one that goes on";
  static const char more[] = " and on\nshort\nlast";
  long nth;
  uint64_t want_skipped;
  char all[sizeof(text) + sizeof(more)];
  ds_block_t *want;
  memcpy(all, text, sizeof(text) - 1);
  memcpy(all + sizeof(text) - 1, more, sizeof(more) - 1);
  want = reference_split(all, sizeof(text) + sizeof(more) - 2, 30, &want_skipped);
  for (nth = 1; nth <= 8; nth++) {
    ds_lines_t ls;
    ds_block_t *blk = ds_block_new(4);
    int failures = 0;
    ds_lines_init(&ls, 30);
    ds_test_fail_after(nth);
    failures += feed_or_retry(&ls, text, sizeof(text) - 1, blk);
    failures += feed_or_retry(&ls, more, sizeof(more) - 1, blk);
    ds_test_fail_after(0);
    CHECK_EQ_INT(ds_lines_finish(&ls, blk), 0);
    CHECK(same_block(want, blk));
    CHECK(nth > 1 || failures > 0);
    ds_lines_close(&ls);
    ds_block_free(blk);
  }
  ds_block_free(want);
}

static void test_failed_finish_keeps_the_line(void) {
  ds_lines_t ls;
  ds_block_t *blk = ds_block_new(1);
  const char *want[] = {"kept"};
  size_t wlen[] = {4};
  ds_lines_init(&ls, 30);
  CHECK_EQ_INT(ds_lines_feed(&ls, "kept", 4, blk), 0);
  ds_test_fail_after(1);
  CHECK_EQ_INT(ds_lines_finish(&ls, blk), DS_ENOMEM);
  ds_test_fail_after(0);
  CHECK_EQ_INT(ls.len, 4);
  CHECK_EQ_INT(ds_lines_finish(&ls, blk), 0);
  check_records(blk, want, wlen, 1);
  ds_lines_close(&ls);
  ds_block_free(blk);
}

static void test_large_feed(void) {
  size_t n = 50u << 20, i, lines = 0;
  char *text = malloc(n);
  ds_lines_t ls;
  ds_block_t *blk = ds_block_new(1 << 20);
  CHECK(text != NULL);
  for (i = 0; i < n; i++) {
    text[i] = (i % 61 == 60) ? '\n' : (char)('a' + i % 26);
    lines += text[i] == '\n';
  }
  ds_lines_init(&ls, 1 << 20);
  CHECK_EQ_INT(ds_lines_feed(&ls, text, n, blk), 0);
  CHECK_EQ_INT(ds_lines_finish(&ls, blk), 0);
  CHECK_EQ_INT(blk->count, lines + (text[n - 1] != '\n'));
  CHECK_EQ_INT(ls.skipped, 0);
  ds_lines_close(&ls);
  ds_block_free(blk);
  free(text);
}

int main(void) {
  ds_test_begin();
  test_terminators_and_bytes_kept();
  test_final_partial_line_is_a_record();
  test_lines_across_feeds();
  test_oversize_line_is_skipped();
  test_oversize_line_spanning_feeds_is_never_buffered();
  test_oversize_final_line_is_skipped();
  test_reset_forgets_the_partial_line();
  test_random_cuts_match_the_reference();
  test_failed_feed_changes_nothing();
  test_failed_finish_keeps_the_line();
  test_large_feed();
  return ds_test_end("test_lines");
}

/* The word split finds exactly the words of gmatch("%S+") (NUL bytes, "\r\n",
 * runs of whitespace, empty lines, long words, bytes >= 0x80 all as Lua
 * sees them), the table counts them over strings and blocks, and a count
 * that runs out of memory leaves the table exactly as it was. */
#include <stdlib.h>

#include "dstream/alloc.h"
#include "dstream/error.h"
#include "dstream/words.h"
#include "harness.h"

/* Check the words of s[0, len) are want[0..n) (lengths wlen). */
static void check_split(const char *s, size_t len, const char *const *want, const size_t *wlen,
                        size_t n) {
  size_t off = 0, start, l, i = 0;
  while (ds_words_next(s, len, &off, &start, &l)) {
    CHECK(i < n);
    if (i < n)
      CHECK(l == wlen[i] && memcmp(s + start, want[i], l) == 0);
    i++;
  }
  CHECK_EQ_INT(i, n);
}

static void test_split_edge_cases(void) {
  static const char nul[] = "a\0b \0 c";
  const char *w1[] = {"a\0b", "\0", "c"};
  size_t l1[] = {3, 1, 1};
  static const char crlf[] = "one\r\ntwo\r\n\r\n";
  const char *w2[] = {"one", "two"};
  size_t l2[] = {3, 3};
  static const char runs[] = " \t\n\v\f\r  x \t\t y\v\fz\r";
  const char *w3[] = {"x", "y", "z"};
  size_t l3[] = {1, 1, 1};
  static const char high[] = "caf\xc3\xa9 \xa0nbsp\x85 \xff";
  const char *w4[] = {"caf\xc3\xa9", "\xa0nbsp\x85", "\xff"};
  size_t l4[] = {5, 6, 1};
  static const char other[] = "a\x1f" "b\x7f" "c\x08" "d";
  const char *w5[] = {"a\x1f" "b\x7f" "c\x08" "d"};
  size_t l5[] = {7};
  check_split(nul, sizeof(nul) - 1, w1, l1, 3);
  check_split(crlf, sizeof(crlf) - 1, w2, l2, 2);
  check_split(runs, sizeof(runs) - 1, w3, l3, 3);
  check_split(high, sizeof(high) - 1, w4, l4, 3);
  check_split(other, sizeof(other) - 1, w5, l5, 1);
  check_split("", 0, NULL, NULL, 0);
  check_split("   \n\t ", 6, NULL, NULL, 0);
  check_split("solo", 4, (const char *const[]){"solo"}, (size_t[]){4}, 1);
  for (int c = 0; c < 256; c++)
    CHECK_EQ_INT(ds_words_is_space((unsigned char)c),
                 c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r');
}

static void test_long_word(void) {
  size_t n = 3 * 1024 * 1024;
  char *s = malloc(n + 2);
  ds_words_t w;
  const char *word;
  size_t len;
  uint64_t count;
  memset(s + 1, 'q', n);
  s[0] = ' ';
  s[n + 1] = '\n';
  check_split(s, n + 2, (const char *const[]){s + 1}, (size_t[]){n}, 1);
  ds_words_init(&w);
  CHECK_EQ_INT(ds_words_add(&w, s, n + 2), 0);
  CHECK_EQ_INT(ds_words_add(&w, s + 1, n), 0);
  CHECK_EQ_INT(ds_words_distinct(&w), 1);
  ds_words_get(&w, 0, &word, &len, &count);
  CHECK(len == n && memcmp(word, s + 1, n) == 0);
  CHECK_EQ_INT(count, 2);
  ds_words_close(&w);
  free(s);
}

/* The count of word in w (0 if absent). */
static uint64_t count_of(const ds_words_t *w, const char *word, size_t wlen) {
  for (size_t i = 0; i < ds_words_distinct(w); i++) {
    const char *s;
    size_t len;
    uint64_t c;
    ds_words_get(w, i, &s, &len, &c);
    if (len == wlen && memcmp(s, word, len) == 0)
      return c;
  }
  return 0;
}

static void test_counts_strings_and_blocks(void) {
  ds_words_t w;
  ds_block_t *blk = ds_block_new(8);
  ds_words_init(&w);
  CHECK_EQ_INT(ds_words_add(&w, "a b a", 5), 0);
  CHECK_EQ_INT(ds_block_append(blk, "b\0c a", 5), 0);
  CHECK_EQ_INT(ds_block_append(blk, "", 0), 0);
  CHECK_EQ_INT(ds_block_append(blk, "a\r\n", 3), 0);
  CHECK_EQ_INT(ds_words_add_block(&w, blk), 0);
  CHECK_EQ_INT(ds_words_distinct(&w), 3);
  CHECK_EQ_INT(w.total, 6);
  CHECK_EQ_INT(count_of(&w, "a", 1), 4);
  CHECK_EQ_INT(count_of(&w, "b", 1), 1);
  CHECK_EQ_INT(count_of(&w, "b\0c", 3), 1);
  ds_words_clear(&w);
  CHECK_EQ_INT(ds_words_distinct(&w), 0);
  CHECK_EQ_INT(count_of(&w, "a", 1), 0);
  CHECK_EQ_INT(ds_words_add(&w, "a", 1), 0);
  CHECK_EQ_INT(count_of(&w, "a", 1), 1);
  ds_words_close(&w);
  ds_block_free(blk);
}

/* Many distinct words: the index grows, every count stays right, and a
 * clear after such a burst gives the memory back. */
static void test_many_words_and_clear(void) {
  ds_words_t w;
  char buf[32];
  ds_words_init(&w);
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 50000; i++) {
      int n = snprintf(buf, sizeof(buf), "w%d x%d", i, i % 7);
      CHECK_EQ_INT(ds_words_add(&w, buf, (size_t)n), 0);
    }
  }
  CHECK_EQ_INT(ds_words_distinct(&w), 50007);
  CHECK_EQ_INT(w.total, 300000);
  CHECK_EQ_INT(count_of(&w, "w49999", 6), 3);
  CHECK_EQ_INT(count_of(&w, "x3", 2), 3 * (50000 / 7 + (3 < 50000 % 7)));
  ds_words_clear(&w);
  CHECK_EQ_INT(ds_words_add(&w, "tiny", 4), 0);
  ds_words_clear(&w);
  CHECK(w.index == NULL || w.mask + 1 <= 1024 * 64);
  ds_words_close(&w);
}

/* A snapshot of the table's words and counts as one comparable string. */
static char *snapshot(const ds_words_t *w) {
  size_t cap = 64, used = 0;
  char *out = malloc(cap);
  for (size_t i = 0; i < ds_words_distinct(w); i++) {
    const char *s;
    size_t len;
    uint64_t c;
    ds_words_get(w, i, &s, &len, &c);
    while (used + len + 32 > cap)
      out = realloc(out, cap *= 2);
    memcpy(out + used, s, len);
    used += len;
    used += (size_t)snprintf(out + used, 32, "=%llu;", (unsigned long long)c);
  }
  out[used] = '\0';
  return out;
}

/* Each add, failing at every possible allocation, leaves the table as it
 * was and still counts right once memory comes back. */
static void test_failed_add_changes_nothing(void) {
  char line[4096];
  size_t n = 0;
  ds_block_t *blk = ds_block_new(64);
  for (int i = 0; i < 400; i++)
    n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%d ", i % 3 ? "new" : "old", i);
  for (int i = 0; i < 40; i++)
    CHECK_EQ_INT(ds_block_append(blk, line + i * 90, 90), 0);
  for (int which = 0; which < 2; which++) {
    ds_words_t ref;
    char *expected;
    ds_words_init(&ref);
    CHECK_EQ_INT(ds_words_add(&ref, "old0 old3 keep keep", 19), 0);
    CHECK_EQ_INT(which == 0 ? ds_words_add(&ref, line, n) : ds_words_add_block(&ref, blk), 0);
    expected = snapshot(&ref);
    ds_words_close(&ref);
    for (long fail = 1; fail < 40; fail++) {
      ds_words_t w;
      char *before, *after;
      uint64_t total;
      int rc;
      ds_words_init(&w);
      CHECK_EQ_INT(ds_words_add(&w, "old0 old3 keep keep", 19), 0);
      before = snapshot(&w);
      total = w.total;
      ds_test_fail_after(fail);
      rc = which == 0 ? ds_words_add(&w, line, n) : ds_words_add_block(&w, blk);
      ds_test_fail_after(0);
      if (rc != 0) {
        CHECK_EQ_INT(rc, DS_ENOMEM);
        after = snapshot(&w);
        CHECK_EQ_STR(after, before);
        CHECK_EQ_INT(w.total, total);
        free(after);
        CHECK_EQ_INT(which == 0 ? ds_words_add(&w, line, n) : ds_words_add_block(&w, blk), 0);
      }
      after = snapshot(&w);
      CHECK_EQ_STR(after, expected);
      free(after);
      CHECK_EQ_INT(count_of(&w, "keep", 4), 2);
      CHECK_EQ_INT(count_of(&w, "old0", 4), 2);
      free(before);
      ds_words_close(&w);
    }
    free(expected);
  }
  ds_block_free(blk);
}

int main(void) {
  ds_test_begin();
  test_split_edge_cases();
  test_long_word();
  test_counts_strings_and_blocks();
  test_many_words_and_clear();
  test_failed_add_changes_nothing();
  return ds_test_end("test_words");
}

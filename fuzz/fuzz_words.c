/* Fuzz target: the word split and the counting table (dstream/words.h) on
 * any bytes.
 *
 * The input is split three ways that must agree: ds_words_next against a
 * naive reference (a word is a maximal run of bytes other than
 * " \t\n\v\f\r"), ds_words_add of the whole input, whose counts must equal
 * the reference's word by word, and ds_words_add_block of the input cut
 * into records of k bytes (k from the first input byte, so records end
 * inside words too), whose total must be the records' words. A violation
 * aborts with the input; a crash or an out-of-bounds read is caught by
 * ASan and UBSan.
 *
 * Built by CMake with -DDS_FUZZ=ON under clang (-fsanitize=fuzzer); run by
 * scripts/test.sh for a bounded number of inputs:
 *     build-fuzz/fuzz_words -runs=N
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dstream/words.h"

/* Compiled here so that libFuzzer sees the split's branches (see fuzz_checkpoint.c). */
#include "../core/src/words.c"

static void fail(const char *why) {
  fprintf(stderr, "fuzz_words: %s\n", why);
  abort();
}

static int ref_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* How many times word occurs among the reference words of s[0, len). */
static uint64_t ref_count(const unsigned char *s, size_t len, const char *word, size_t wlen) {
  uint64_t n = 0;
  size_t i = 0;
  while (i < len) {
    size_t j;
    if (ref_space(s[i])) {
      i++;
      continue;
    }
    for (j = i; j < len && !ref_space(s[j]); j++)
      ;
    if (j - i == wlen && memcmp(s + i, word, wlen) == 0)
      n++;
    i = j;
  }
  return n;
}

/* The counts against the reference's (word by word: quadratic, so only for
 * short inputs; longer ones check the total). */
static void check_table(const ds_words_t *w, const unsigned char *s, size_t len, uint64_t total) {
  uint64_t sum = 0;
  for (size_t i = 0; i < ds_words_distinct(w) && len <= 512; i++) {
    const char *word;
    size_t wlen;
    uint64_t count;
    ds_words_get(w, i, &word, &wlen, &count);
    if (count != ref_count(s, len, word, wlen))
      fail("a count differs from the reference");
    sum += count;
  }
  if ((len <= 512 && sum != total) || w->total != total)
    fail("the total differs from the reference");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const unsigned char *s;
  size_t len, off = 0, start, wlen, i = 0, nwords = 0, cut_every;
  ds_words_t w;
  ds_block_t *blk;
  if (size == 0)
    return 0;
  cut_every = 1 + data[0] % 16;
  s = data + 1;
  len = size - 1;
  /* ds_words_next against the reference, word by word. */
  while (ds_words_next((const char *)s, len, &off, &start, &wlen)) {
    while (i < len && ref_space(s[i]))
      i++;
    if (start != i)
      fail("a word starts where the reference's does not");
    while (i < len && !ref_space(s[i]))
      i++;
    if (start + wlen != i)
      fail("a word ends where the reference's does not");
    nwords++;
  }
  while (i < len && ref_space(s[i]))
    i++;
  if (i != len)
    fail("the split stopped before the reference");
  ds_words_init(&w);
  if (ds_words_add(&w, (const char *)s, len) != 0)
    fail("ds_words_add failed");
  check_table(&w, s, len, nwords);
  ds_words_clear(&w);
  /* The same bytes as records cut every cut_every bytes: each record's
   * words are counted on their own, so compare record by record totals. */
  blk = ds_block_new(16);
  if (blk == NULL)
    fail("out of memory");
  nwords = 0;
  for (size_t at = 0; at < len; at += cut_every) {
    size_t n = len - at < cut_every ? len - at : cut_every;
    size_t o = 0;
    if (ds_block_append(blk, s + at, n) != 0)
      fail("out of memory");
    while (ds_words_next((const char *)s + at, n, &o, &start, &wlen))
      nwords++;
  }
  if (ds_words_add_block(&w, blk) != 0)
    fail("ds_words_add_block failed");
  if (w.total != nwords)
    fail("the block's total differs from its records' words");
  ds_block_free(blk);
  ds_words_close(&w);
  return 0;
}

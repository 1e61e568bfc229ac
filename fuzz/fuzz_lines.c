/* Fuzz target: the line splitter (core/src/lines.c) against a plain
 * reference on any bytes, cut into feeds anywhere.
 *
 * The input's first byte sets max_line_bytes (1..64, small so that oversize
 * lines are common), its second seeds the feed sizes (1..17 bytes, so lines,
 * "\r\n" pairs and oversize lines are cut at every place); the rest is the
 * stream. The reference splits the whole stream at each "\n", drops one "\r"
 * before it, skips (and counts) a line longer than max_line_bytes, and keeps
 * an unfinished last line as it is. The splitter must give exactly the same
 * records and skip count, fed in pieces and fed whole; a difference or a
 * crash (ASan, UBSan) aborts the run with the input.
 *
 * Built by CMake with -DDS_FUZZ=ON under clang (-fsanitize=fuzzer); run by
 * scripts/test.sh for a bounded number of inputs:
 *     build-fuzz/fuzz_lines -runs=N fuzz/corpus/lines
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dstream/block.h"
#include "dstream/lines.h"
/* The reader's own source, compiled into this target: CMake gives libFuzzer's
 * coverage instrumentation only to the target's sources, and without it
 * the fuzzer would be blind inside the code it is meant to explore. Its
 * definitions take the place of the library's copy at link time. */
#include "../core/src/lines.c"

static void fail(const char *what) {
  fprintf(stderr, "fuzz_lines: %s\n", what);
  abort();
}

/* The reference: the records of p[0..n) into blk; returns the skip count. */
static uint64_t reference(const char *p, size_t n, size_t max, ds_block_t *blk) {
  const char *end = p + n, *nl;
  uint64_t skipped = 0;
  while (p < end) {
    size_t len;
    nl = memchr(p, '\n', (size_t)(end - p));
    len = (size_t)((nl != NULL ? nl : end) - p);
    if (nl != NULL && len > 0 && p[len - 1] == '\r')
      len--;
    if (len > max)
      skipped++;
    else if (ds_block_append(blk, p, len) != 0)
      fail("out of memory in the reference");
    if (nl == NULL)
      break;
    p = nl + 1;
  }
  return skipped;
}

/* Split p[0..n) in feeds of the sizes the seed gives (0: one feed). */
static uint64_t split(const char *p, size_t n, size_t max, unsigned seed, ds_block_t *blk) {
  ds_lines_t ls;
  size_t off = 0;
  uint64_t skipped;
  ds_lines_init(&ls, max);
  while (off < n) {
    size_t step = n - off;
    if (seed != 0) {
      seed = seed * 1103515245u + 12345u;
      step = 1 + (seed >> 16) % 17;
      if (step > n - off)
        step = n - off;
    }
    if (ds_lines_feed(&ls, p + off, step, blk) != 0)
      fail("a feed failed");
    off += step;
  }
  if (ds_lines_finish(&ls, blk) != 0)
    fail("finish failed");
  skipped = ls.skipped;
  ds_lines_close(&ls);
  return skipped;
}

static void same(const ds_block_t *a, const ds_block_t *b, const char *what) {
  if (a->count != b->count || a->len != b->len || memcmp(a->data, b->data, a->len) != 0)
    fail(what);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  ds_block_t *want, *cut, *whole;
  const char *p = (const char *)in + 2;
  size_t n, max;
  uint64_t skip_want, skip_cut, skip_whole;
  if (size < 2)
    return 0;
  n = size - 2;
  max = 1 + in[0] % 64;
  want = ds_block_new(64);
  cut = ds_block_new(64);
  whole = ds_block_new(64);
  if (want == NULL || cut == NULL || whole == NULL)
    fail("out of memory");
  skip_want = reference(p, n, max, want);
  skip_cut = split(p, n, max, in[1] | 1u, cut);
  skip_whole = split(p, n, max, 0, whole);
  same(want, cut, "records differ from the reference when fed in pieces");
  same(want, whole, "records differ from the reference when fed whole");
  if (skip_want != skip_cut || skip_want != skip_whole)
    fail("skip counts differ from the reference");
  ds_block_free(want);
  ds_block_free(cut);
  ds_block_free(whole);
  return 0;
}

/* Fuzz target: the WAL's segment reader (ds_wal_reader_next, core/src/wal.c)
 * on any bytes.
 *
 * The reader must account for every byte - each in exactly one good block or
 * one damage, in order, reading to the end - and every block it calls good
 * must be good: inside the input, seqs rising within the bounds given, the
 * bytes well formed for their kind (a lines block's lengths add up to its
 * size, a codec block is one frame that opens). A broken promise aborts the
 * run with the input, as does a crash (ASan, UBSan).
 *
 * Random bytes almost never carry a right CRC, so when the first byte is odd
 * the rest is first "sealed": every frame header found, from the last to the
 * first (inner frames before the frames holding them), gets the CRC of what
 * follows it. The fuzzer then reaches the checks behind the CRC.
 *
 * Built by CMake with -DDS_FUZZ=ON under clang (-fsanitize=fuzzer); run by
 * scripts/test.sh for a bounded number of inputs:
 *     build-fuzz/fuzz_wal -runs=N fuzz/corpus/wal
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dstream/codec.h"
#include "dstream/crc32c.h"
#include "dstream/wal.h"
/* The reader's own source, compiled into this target: CMake gives libFuzzer's
 * coverage instrumentation only to the target's sources, and without it
 * the fuzzer would be blind inside the code it is meant to explore. Its
 * definitions take the place of the library's copy at link time. */
#include "../core/src/wal.c" /* defines le32() too */

static void fail(const char *what) {
  fprintf(stderr, "fuzz_wal: %s\n", what);
  abort();
}

static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Give every frame header in p[0..n) the CRC of its header and payload. */
static void seal_frames(unsigned char *p, size_t n) {
  size_t i = n;
  while (i-- > 0) {
    uint32_t payload, crc;
    if (n - i < DS_FRAME_HEADER_LEN || p[i] != 'D' || p[i + 1] != 'S' ||
        p[i + 2] != DS_FRAME_VERSION)
      continue;
    payload = get32(p + i + 8);
    if (payload > n - i - DS_FRAME_HEADER_LEN)
      continue;
    crc = ds_crc32c(ds_crc32c(0, p + i, 12), p + i + DS_FRAME_HEADER_LEN, payload);
    p[i + 12] = (unsigned char)crc;
    p[i + 13] = (unsigned char)(crc >> 8);
    p[i + 14] = (unsigned char)(crc >> 16);
    p[i + 15] = (unsigned char)(crc >> 24);
  }
}

static void check_block(const ds_wal_block_t *b, const unsigned char *data, size_t len) {
  const unsigned char *p = (const unsigned char *)b->data;
  ds_frame_t f;
  size_t off = 0;
  uint32_t count = 0;
  if (p < data || p + b->len > data + len || b->offset >= len)
    fail("a block's bytes lie outside the input");
  if (b->kind == DS_WAL_LINES) {
    while (off < b->len) {
      if (b->len - off < 4 || get32(p + off) > b->len - off - 4)
        fail("a lines block's lengths overrun it");
      off += 4 + get32(p + off);
      count++;
    }
    if (count != b->count)
      fail("a lines block's count is wrong");
  } else if (b->kind == DS_WAL_CODEC) {
    if (ds_frame_open(&f, p, b->len, NULL, 0) != 0 || f.size != b->len || f.flags != 0 ||
        f.count != b->count)
      fail("a codec block is not one frame");
  } else {
    fail("a block of an unknown kind");
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  ds_wal_reader_t r;
  ds_wal_block_t blk;
  unsigned char *data;
  size_t len, covered = 0;
  uint64_t prev = 0;
  int what;
  if (size == 0)
    return 0;
  len = size - 1;
  data = malloc(len > 0 ? len : 1);
  memcpy(data, in + 1, len);
  if (in[0] & 1)
    seal_frames(data, len);
  /* Seqs must lie in (in[0] >> 4, 2^63): bounds other than the defaults too. */
  ds_wal_reader_init(&r, data, len, in[0] >> 4, INT64_MAX);
  prev = in[0] >> 4;
  while ((what = ds_wal_reader_next(&r, &blk)) != DS_WAL_END) {
    if (what == DS_WAL_BLOCK) {
      if (blk.offset != covered)
        fail("a block does not start where the last read ended");
      if (blk.seq <= prev || blk.seq > INT64_MAX)
        fail("a block's seq is out of bounds");
      prev = blk.seq;
      check_block(&blk, data, len);
    } else if (what == DS_WAL_DAMAGE) {
      if (r.damage_off != covered || r.damage_len == 0 || r.why[0] == '\0')
        fail("damage does not start where the last read ended, or says nothing");
    } else {
      fail("an unknown result");
    }
    if (r.pos <= covered || r.pos > len)
      fail("the reader did not move forward within the input");
    covered = r.pos;
  }
  if (covered != len)
    fail("the reader stopped before the end");
  free(data);
  return 0;
}

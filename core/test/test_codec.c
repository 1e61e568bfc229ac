/* The record codec: exact bytes of every tag, round trips, canonical maps,
 * integer exactness, frames, every corruption error, hostile input (random,
 * truncated, bit-flipped) and out-of-memory paths. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "dstream/alloc.h"
#include "dstream/codec.h"
#include "dstream/crc32c.h"
#include "dstream/error.h"
#include "harness.h"

/* --- helpers ----------------------------------------------------------- */

/* Whether len bytes at p are the bytes spelled in hex ("03 7e"). */
static int bytes_are(const char *p, size_t len, const char *hex) {
  size_t n = 0;
  unsigned byte;
  int used;
  while (sscanf(hex, " %2x%n", &byte, &used) == 1) {
    if (n >= len || (unsigned char)p[n] != byte)
      return 0;
    n++;
    hex += used;
  }
  return n == len;
}

#define CHECK_BYTES(buf, hex)                                                \
  do {                                                                       \
    ds_test_checks++;                                                        \
    if (!bytes_are((buf)->data, (buf)->len, hex)) {                          \
      size_t i_;                                                             \
      ds_test_failures++;                                                    \
      fprintf(stderr, "%s:%d: bytes differ, expected %s, got", __FILE__,     \
              __LINE__, hex);                                                \
      for (i_ = 0; i_ < (buf)->len; i_++)                                    \
        fprintf(stderr, " %02x", (unsigned char)(buf)->data[i_]);           \
      fprintf(stderr, "\n");                                                 \
    }                                                                        \
  } while (0)

#define CHECK_HAS(str, part) CHECK(strstr((str), (part)) != NULL)

static uint64_t rng_state = 0x2545F4914F6CDD1Du;

static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Encode v alone into a fresh buffer b. */
static void encode_number(ds_buf_t *b, double v) {
  ds_buf_truncate(b, 0);
  CHECK_EQ_INT(ds_codec_put_number(b, v), 0);
}

/* Read one item from len bytes at p, expecting the whole input used. */
static ds_codec_value_t read_one(const char *p, size_t len) {
  ds_codec_value_t v;
  ds_cursor_t c;
  memset(&v, 0, sizeof v);
  ds_cursor_init(&c, p, len);
  CHECK_EQ_INT(ds_codec_read(&c, &v, NULL, 0), 0);
  CHECK_EQ_INT(c.pos, len);
  return v;
}

/* Rewrite the CRC of the frame at p after a test has edited it. */
static void reseal(char *p) {
  unsigned char *u = (unsigned char *)p;
  size_t payload = (size_t)u[8] | (size_t)u[9] << 8 | (size_t)u[10] << 16 |
                   (size_t)u[11] << 24;
  uint32_t crc = ds_crc32c(ds_crc32c(0, u, 12), u + 16, payload);
  u[12] = (unsigned char)crc;
  u[13] = (unsigned char)(crc >> 8);
  u[14] = (unsigned char)(crc >> 16);
  u[15] = (unsigned char)(crc >> 24);
}

/* A frame of the given payload bytes and count, sealed. */
static void frame_of(ds_buf_t *b, unsigned flags, size_t count,
                     const char *payload, size_t len) {
  size_t start;
  ds_buf_truncate(b, 0);
  CHECK_EQ_INT(ds_frame_begin(b, flags, &start), 0);
  CHECK_EQ_INT(ds_buf_append(b, payload, len), 0);
  CHECK_EQ_INT(ds_frame_end(b, start, count), 0);
}

/* --- buffers ----------------------------------------------------------- */

static void test_buf(void) {
  ds_buf_t b;
  int i;
  ds_buf_init(&b);
  CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
  for (i = 0; i < 1000; i++)
    CHECK_EQ_INT(ds_buf_append(&b, "abc", 3), 0);
  CHECK_EQ_INT(b.len, 3000);
  CHECK(b.cap >= 3000);
  CHECK(memcmp(b.data + 2997, "abc", 3) == 0);
  CHECK_EQ_INT(ds_buf_reserve(&b, b.cap - b.len), 0);
  CHECK_EQ_INT(ds_buf_reserve(&b, SIZE_MAX), DS_ENOMEM);
  CHECK_EQ_INT(b.len, 3000);
  ds_buf_truncate(&b, 10);
  CHECK_EQ_INT(b.len, 10);
  ds_buf_truncate(&b, 20);
  CHECK_EQ_INT(b.len, 10);
  CHECK_EQ_INT(ds_buf_append(&b, NULL, 0), 0);
  ds_buf_close(&b);
  CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
  ds_buf_close(&b);
}

/* --- every tag, byte for byte ------------------------------------------ */

static void test_scalar_bytes(void) {
  ds_buf_t b;
  ds_buf_init(&b);
#define PUT(call, hex)                                                       \
  ds_buf_truncate(&b, 0);                                                    \
  CHECK_EQ_INT(call, 0);                                                     \
  CHECK_BYTES(&b, hex)
  PUT(ds_codec_put_bool(&b, 0), "01");
  PUT(ds_codec_put_bool(&b, 7), "02");
  PUT(ds_codec_put_int(&b, 0), "03 00");
  PUT(ds_codec_put_int(&b, -1), "03 01");
  PUT(ds_codec_put_int(&b, 1), "03 02");
  PUT(ds_codec_put_int(&b, 63), "03 7e");
  PUT(ds_codec_put_int(&b, -64), "03 7f");
  PUT(ds_codec_put_int(&b, 64), "03 80 01");
  PUT(ds_codec_put_int(&b, 300), "03 d8 04");
  PUT(ds_codec_put_int(&b, INT64_MAX), "03 fe ff ff ff ff ff ff ff ff 01");
  PUT(ds_codec_put_int(&b, INT64_MIN), "03 ff ff ff ff ff ff ff ff ff 01");
  PUT(ds_codec_put_double(&b, 1.5), "04 00 00 00 00 00 00 f8 3f");
  PUT(ds_codec_put_double(&b, 3.0), "04 00 00 00 00 00 00 08 40");
  PUT(ds_codec_put_double(&b, -0.0), "04 00 00 00 00 00 00 00 80");
  PUT(ds_codec_put_str(&b, "", 0), "05 00");
  PUT(ds_codec_put_str(&b, "a\0b", 3), "05 03 61 00 62");
  PUT(ds_codec_put_array(&b, 0), "06 00");
  PUT(ds_codec_put_array(&b, 200), "06 c8 01");
  PUT(ds_codec_put_map(&b, 2), "07 02");
#undef PUT
  ds_buf_truncate(&b, 0);
  CHECK_EQ_INT(ds_codec_put_str(&b, NULL, 0), 0);
  CHECK_BYTES(&b, "05 00");
  ds_buf_close(&b);
}

static void test_scalar_round_trips(void) {
  static const int64_t ints[] = {0, 1, -1, 127, 128, -129, 1 << 20,
                                 INT64_MAX, INT64_MIN, INT64_MIN + 1,
                                 9007199254740993LL};
  static const double doubles[] = {0.5, -0.0, 1e300, -1e-300, INFINITY,
                                   -INFINITY, 3.0, 5e-324};
  ds_codec_value_t v;
  ds_buf_t b;
  size_t i;
  ds_buf_init(&b);
  for (i = 0; i < sizeof ints / sizeof ints[0]; i++) {
    ds_buf_truncate(&b, 0);
    CHECK_EQ_INT(ds_codec_put_int(&b, ints[i]), 0);
    v = read_one(b.data, b.len);
    CHECK_EQ_INT(v.tag, DS_CODEC_INT);
    CHECK(v.u.i == ints[i]);
  }
  for (i = 0; i < sizeof doubles / sizeof doubles[0]; i++) {
    ds_buf_truncate(&b, 0);
    CHECK_EQ_INT(ds_codec_put_double(&b, doubles[i]), 0);
    v = read_one(b.data, b.len);
    CHECK_EQ_INT(v.tag, DS_CODEC_DOUBLE);
    CHECK(memcmp(&v.u.d, &doubles[i], sizeof(double)) == 0);
  }
  ds_buf_truncate(&b, 0);
  CHECK_EQ_INT(ds_codec_put_double(&b, NAN), 0);
  v = read_one(b.data, b.len);
  CHECK(v.tag == DS_CODEC_DOUBLE && isnan(v.u.d));
  ds_buf_truncate(&b, 0);
  CHECK_EQ_INT(ds_codec_put_bool(&b, 1), 0);
  CHECK_EQ_INT(read_one(b.data, b.len).tag, DS_CODEC_TRUE);
  ds_buf_truncate(&b, 0);
  CHECK_EQ_INT(ds_codec_put_bool(&b, 0), 0);
  CHECK_EQ_INT(read_one(b.data, b.len).tag, DS_CODEC_FALSE);
  ds_buf_truncate(&b, 0);
  CHECK_EQ_INT(ds_codec_put_str(&b, "x\0y\xff", 4), 0);
  v = read_one(b.data, b.len);
  CHECK_EQ_INT(v.tag, DS_CODEC_STR);
  CHECK(v.u.str.len == 4 && memcmp(v.u.str.ptr, "x\0y\xff", 4) == 0);
  CHECK(v.u.str.ptr == b.data + 2); /* borrowed, not copied */
  ds_buf_close(&b);
}

/* Numbers that are integral and fit an int64 become INT, exactly. */
static void test_number_exactness(void) {
  ds_codec_value_t v;
  ds_buf_t b;
  ds_buf_init(&b);
  encode_number(&b, 3.0);
  CHECK_BYTES(&b, "03 06");
  encode_number(&b, -2.0);
  CHECK_BYTES(&b, "03 03");
  encode_number(&b, 9007199254740992.0); /* 2^53 */
  v = read_one(b.data, b.len);
  CHECK(v.tag == DS_CODEC_INT && v.u.i == 9007199254740992LL);
  encode_number(&b, 9007199254740994.0); /* 2^53 + 2 */
  v = read_one(b.data, b.len);
  CHECK(v.tag == DS_CODEC_INT && v.u.i == 9007199254740994LL);
  encode_number(&b, -9223372036854775808.0); /* -2^63 fits */
  CHECK_BYTES(&b, "03 ff ff ff ff ff ff ff ff ff 01");
  encode_number(&b, 9223372036854775808.0); /* 2^63 does not */
  CHECK_EQ_INT(read_one(b.data, b.len).tag, DS_CODEC_DOUBLE);
  encode_number(&b, 9223372036854774784.0); /* largest double below 2^63 */
  v = read_one(b.data, b.len);
  CHECK(v.tag == DS_CODEC_INT && v.u.i == 9223372036854774784LL);
  encode_number(&b, -0.0);
  v = read_one(b.data, b.len);
  CHECK(v.tag == DS_CODEC_DOUBLE && v.u.d == 0 && signbit(v.u.d));
  encode_number(&b, 0.0);
  CHECK_BYTES(&b, "03 00");
  encode_number(&b, 0.1);
  v = read_one(b.data, b.len);
  CHECK(v.tag == DS_CODEC_DOUBLE && v.u.d == 0.1);
  encode_number(&b, NAN);
  CHECK_EQ_INT(read_one(b.data, b.len).tag, DS_CODEC_DOUBLE);
  encode_number(&b, INFINITY);
  CHECK_EQ_INT(read_one(b.data, b.len).tag, DS_CODEC_DOUBLE);
  encode_number(&b, -1e19);
  CHECK_EQ_INT(read_one(b.data, b.len).tag, DS_CODEC_DOUBLE);
  ds_buf_close(&b);
}

/* --- containers, spans, canonical maps --------------------------------- */

static void test_containers_and_span(void) {
  ds_codec_value_t v;
  const char *p;
  ds_cursor_t c;
  ds_buf_t b;
  size_t len, inner;
  ds_buf_init(&b);
  /* [1, {"k": [true]}, "s"] */
  CHECK_EQ_INT(ds_codec_put_array(&b, 3), 0);
  CHECK_EQ_INT(ds_codec_put_int(&b, 1), 0);
  inner = b.len;
  CHECK_EQ_INT(ds_codec_put_map(&b, 1), 0);
  CHECK_EQ_INT(ds_codec_put_str(&b, "k", 1), 0);
  CHECK_EQ_INT(ds_codec_put_array(&b, 1), 0);
  CHECK_EQ_INT(ds_codec_put_bool(&b, 1), 0);
  CHECK_EQ_INT(ds_codec_put_str(&b, "s", 1), 0);
  CHECK_BYTES(&b, "06 03 03 02 07 01 05 01 6b 06 01 02 05 01 73");
  CHECK_EQ_INT(ds_codec_check(b.data, b.len, NULL, 0), 0);

  ds_cursor_init(&c, b.data, b.len);
  CHECK_EQ_INT(ds_codec_read(&c, &v, NULL, 0), 0);
  CHECK(v.tag == DS_CODEC_ARRAY && v.u.count == 3);
  CHECK_EQ_INT(ds_codec_read(&c, &v, NULL, 0), 0);
  CHECK(v.tag == DS_CODEC_INT && v.u.i == 1);
  CHECK_EQ_INT(ds_codec_span(&c, &p, &len, NULL, 0), 0);
  CHECK(p == b.data + inner && len == 8);
  CHECK_EQ_INT(ds_codec_read(&c, &v, NULL, 0), 0);
  CHECK(v.tag == DS_CODEC_STR && v.u.str.len == 1 && v.u.str.ptr[0] == 's');
  CHECK_EQ_INT(c.pos, b.len);

  ds_cursor_init(&c, b.data, b.len);
  CHECK_EQ_INT(ds_codec_skip(&c, NULL, 0), 0);
  CHECK_EQ_INT(c.pos, b.len);
  CHECK_EQ_INT(ds_codec_skip(&c, NULL, 0), DS_ETRUNCATED);
  CHECK_EQ_INT(c.pos, b.len);
  ds_buf_close(&b);
}

/* Write the map {keys[i] = i} in the order given by `order`, then sort. */
static void map_in_order(ds_buf_t *b, const char *const *keys, size_t n,
                         const size_t *order) {
  size_t i, off;
  ds_buf_truncate(b, 0);
  CHECK_EQ_INT(ds_codec_put_array(b, 1), 0); /* sorting works inside */
  off = b->len;
  CHECK_EQ_INT(ds_codec_put_map(b, n), 0);
  for (i = 0; i < n; i++) {
    const char *k = keys[order[i]];
    if (k[0] == '#')
      CHECK_EQ_INT(ds_codec_put_int(b, atoi(k + 1)), 0);
    else if (k[0] == '?')
      CHECK_EQ_INT(ds_codec_put_bool(b, k[1] == 't'), 0);
    else
      CHECK_EQ_INT(ds_codec_put_str(b, k, strlen(k)), 0);
    CHECK_EQ_INT(ds_codec_put_int(b, (int64_t)order[i]), 0);
  }
  CHECK_EQ_INT(ds_codec_sort_map(b, off), 0);
}

static void test_canonical_maps(void) {
  static const char *const keys[] = {"b", "a", "ab", "", "#5", "#-1", "?t",
                                     "?f", "zz", "#300"};
  static const size_t fwd[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  static const size_t rev[] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
  static const size_t mix[] = {4, 0, 9, 2, 7, 1, 3, 8, 5, 6};
  const char *prev_key = NULL, *key;
  size_t prev_len = 0, key_len, i;
  ds_codec_value_t v;
  ds_buf_t a, b;
  ds_cursor_t c;
  ds_buf_init(&a);
  ds_buf_init(&b);
  map_in_order(&a, keys, 10, fwd);
  map_in_order(&b, keys, 10, rev);
  CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
  map_in_order(&b, keys, 10, mix);
  CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
  /* keys ascend by encoded bytes: false, true, ints, then strings by bytes */
  ds_cursor_init(&c, a.data, a.len);
  CHECK_EQ_INT(ds_codec_read(&c, &v, NULL, 0), 0);
  CHECK_EQ_INT(ds_codec_read(&c, &v, NULL, 0), 0);
  CHECK(v.tag == DS_CODEC_MAP && v.u.count == 10);
  for (i = 0; i < 10; i++) {
    CHECK_EQ_INT(ds_codec_span(&c, &key, &key_len, NULL, 0), 0);
    if (prev_key != NULL) {
      size_t n = prev_len < key_len ? prev_len : key_len;
      int cmp = memcmp(prev_key, key, n);
      CHECK(cmp < 0 || (cmp == 0 && prev_len < key_len));
    }
    prev_key = key;
    prev_len = key_len;
    CHECK_EQ_INT(ds_codec_skip(&c, NULL, 0), 0);
  }
  CHECK_EQ_INT(c.pos, a.len);
  CHECK_EQ_INT((unsigned char)a.data[4], DS_CODEC_FALSE); /* first key */

  /* empty and one-entry maps are already canonical */
  ds_buf_truncate(&b, 0);
  CHECK_EQ_INT(ds_codec_put_map(&b, 0), 0);
  CHECK_EQ_INT(ds_codec_sort_map(&b, 0), 0);
  CHECK_BYTES(&b, "07 00");
  /* not a map there, or not ending at the buffer's end */
  CHECK_EQ_INT(ds_codec_sort_map(&b, 1), DS_ECORRUPT);
  CHECK_EQ_INT(ds_codec_sort_map(&b, 5), DS_ECORRUPT);
  CHECK_EQ_INT(ds_codec_put_bool(&b, 1), 0);
  CHECK_EQ_INT(ds_codec_sort_map(&b, 0), DS_ECORRUPT);
  CHECK_BYTES(&b, "07 00 02");
  ds_buf_close(&a);
  ds_buf_close(&b);
}

/* A map of more entries than the inline index, with nested values. */
static void big_map(ds_buf_t *b, size_t n, size_t *off) {
  size_t i;
  char key[16];
  ds_buf_truncate(b, 0);
  *off = b->len;
  CHECK_EQ_INT(ds_codec_put_map(b, n), 0);
  for (i = 0; i < n; i++) {
    int len = snprintf(key, sizeof key, "k%zu", (i * 7919) % n);
    CHECK_EQ_INT(ds_codec_put_str(b, key, (size_t)len), 0);
    CHECK_EQ_INT(ds_codec_put_array(b, 2), 0);
    CHECK_EQ_INT(ds_codec_put_int(b, (int64_t)i), 0);
    CHECK_EQ_INT(ds_codec_put_str(b, "v", 1), 0);
  }
}

static void test_big_map_sort(void) {
  ds_buf_t b;
  ds_cursor_t c;
  size_t off, i, len;
  const char *key, *prev = NULL;
  size_t prev_len = 0;
  int ordered = 1;
  ds_buf_init(&b);
  big_map(&b, 1000, &off);
  CHECK_EQ_INT(ds_codec_sort_map(&b, off), 0);
  CHECK_EQ_INT(ds_codec_check(b.data, b.len, NULL, 0), 0);
  ds_cursor_init(&c, b.data, b.len);
  c.pos = 3; /* tag and 2-byte count */
  for (i = 0; i < 1000; i++) {
    CHECK_EQ_INT(ds_codec_span(&c, &key, &len, NULL, 0), 0);
    if (prev != NULL) {
      int cmp = memcmp(prev, key, prev_len < len ? prev_len : len);
      if (cmp > 0 || (cmp == 0 && prev_len >= len))
        ordered = 0;
    }
    prev = key;
    prev_len = len;
    CHECK_EQ_INT(ds_codec_skip(&c, NULL, 0), 0);
  }
  CHECK(ordered);
  ds_buf_close(&b);
}

/* --- frames ------------------------------------------------------------ */

static void test_frame_round_trip(void) {
  ds_codec_value_t v;
  ds_frame_t f, g;
  ds_cursor_t c;
  ds_buf_t b;
  size_t start, second;
  ds_buf_init(&b);
  /* two frames back to back: 3 records, then 2 pairs */
  CHECK_EQ_INT(ds_frame_begin(&b, 0, &start), 0);
  CHECK_EQ_INT(start, 0);
  CHECK_EQ_INT(ds_codec_put_str(&b, "a", 1), 0);
  CHECK_EQ_INT(ds_codec_put_int(&b, 42), 0);
  CHECK_EQ_INT(ds_codec_put_array(&b, 0), 0);
  CHECK_EQ_INT(ds_frame_end(&b, start, 3), 0);
  CHECK(bytes_are(b.data, 16, "44 53 01 00 03 00 00 00 07 00 00 00 "
                              "00 00 00 00") == 0); /* the CRC is filled */
  CHECK(bytes_are(b.data, 12, "44 53 01 00 03 00 00 00 07 00 00 00"));
  second = b.len;
  CHECK_EQ_INT(ds_frame_begin(&b, DS_FRAME_PAIRS, &start), 0);
  CHECK_EQ_INT(start, second);
  CHECK_EQ_INT(ds_codec_put_str(&b, "k", 1), 0);
  CHECK_EQ_INT(ds_codec_put_number(&b, 1.5), 0);
  CHECK_EQ_INT(ds_codec_put_str(&b, "k", 1), 0);
  CHECK_EQ_INT(ds_codec_put_bool(&b, 0), 0);
  CHECK_EQ_INT(ds_frame_end(&b, start, 2), 0);

  CHECK_EQ_INT(ds_frame_open(&f, b.data, b.len, NULL, 0), 0);
  CHECK(f.version == 1 && f.flags == 0 && f.count == 3);
  CHECK(f.payload == b.data + 16 && f.payload_len == 7 && f.size == 23);
  ds_cursor_init_frame(&c, &f);
  CHECK_EQ_INT(c.base, 16);
  CHECK_EQ_INT(ds_codec_read(&c, &v, NULL, 0), 0);
  CHECK(v.tag == DS_CODEC_STR && v.u.str.ptr[0] == 'a');
  CHECK_EQ_INT(ds_codec_read(&c, &v, NULL, 0), 0);
  CHECK(v.tag == DS_CODEC_INT && v.u.i == 42);
  CHECK_EQ_INT(ds_codec_read(&c, &v, NULL, 0), 0);
  CHECK(v.tag == DS_CODEC_ARRAY && v.u.count == 0);
  CHECK_EQ_INT(c.pos, c.len);

  CHECK_EQ_INT(ds_frame_open(&g, b.data + f.size, b.len - f.size, NULL, 0), 0);
  CHECK(g.flags == DS_FRAME_PAIRS && g.count == 2 && g.payload_len == 16);
  CHECK_EQ_INT(f.size + g.size, b.len);

  /* the header alone tells the size before the payload is there */
  CHECK_EQ_INT(ds_frame_header(&g, b.data, 16, NULL, 0), 0);
  CHECK(g.size == 23 && g.count == 3 && g.payload == NULL);

  /* an empty frame */
  ds_buf_truncate(&b, 0);
  CHECK_EQ_INT(ds_frame_begin(&b, 0, &start), 0);
  CHECK_EQ_INT(ds_frame_end(&b, start, 0), 0);
  CHECK_EQ_INT(ds_frame_open(&f, b.data, b.len, NULL, 0), 0);
  CHECK(f.count == 0 && f.payload_len == 0 && f.size == 16);

  CHECK_EQ_INT(ds_frame_begin(&b, 0x80, &start), DS_EINVAL);
  CHECK_EQ_INT(b.len, 16);
  CHECK_EQ_INT(ds_frame_end(&b, 0, (size_t)UINT32_MAX + 1), DS_ERANGE);
  ds_buf_close(&b);
}

/* Open must fail with err and an errbuf containing `says`, leaving f. */
static void expect_open_error(const ds_buf_t *b, size_t len, int err,
                              const char *says) {
  char errbuf[160] = "";
  ds_frame_t f;
  memset(&f, 0x5a, sizeof f);
  CHECK_EQ_INT(ds_frame_open(&f, b->data, len, errbuf, sizeof errbuf), err);
  CHECK_HAS(errbuf, says);
  CHECK(((unsigned char *)&f)[0] == 0x5a && f.count == 0x5a5a5a5a);
}

static void test_frame_errors(void) {
  ds_buf_t b, p;
  ds_frame_t f;
  ds_buf_init(&b);
  ds_buf_init(&p);
  CHECK_EQ_INT(ds_codec_put_str(&p, "hello", 5), 0);
  CHECK_EQ_INT(ds_codec_put_int(&p, 7), 0);
  frame_of(&b, 0, 2, p.data, p.len); /* 16 + 9 bytes */
  CHECK_EQ_INT(b.len, 25);

  expect_open_error(&b, 0, DS_ETRUNCATED, "the data has 0");
  expect_open_error(&b, 15, DS_ETRUNCATED, "takes 16 bytes, the data has 15");
  expect_open_error(&b, 24, DS_ETRUNCATED, "the frame takes 25 bytes, the "
                                           "data has 24");

  b.data[0] = 'X';
  expect_open_error(&b, b.len, DS_ECORRUPT, "no frame magic");
  expect_open_error(&b, 1, DS_ECORRUPT, "at offset 0");
  b.data[0] = 'D';
  b.data[2] = 2;
  expect_open_error(&b, b.len, DS_EVERSION, "frame version 2 at offset 2");
  b.data[2] = 1;
  b.data[3] = 0x04;
  expect_open_error(&b, b.len, DS_ECORRUPT, "unknown frame flags 0x04");
  b.data[3] = 0;

  b.data[20] ^= 0x01; /* a payload bit */
  expect_open_error(&b, b.len, DS_ECHECKSUM, "stored CRC-32C 0x");
  b.data[20] ^= 0x01;
  b.data[4] = 1; /* the count is covered too */
  expect_open_error(&b, b.len, DS_ECHECKSUM, "computed 0x");
  b.data[4] = 2;
  CHECK_EQ_INT(ds_frame_open(&f, b.data, b.len, NULL, 0), 0); /* restored */

  /* structure errors in a well-sealed payload */
  b.data[4] = 1;
  reseal(b.data);
  expect_open_error(&b, b.len, DS_ECORRUPT, "2 byte(s) follow the last record, "
                                            "from offset 23");
  b.data[4] = 3;
  reseal(b.data);
  expect_open_error(&b, b.len, DS_ECORRUPT, "at offset 25");
  b.data[4] = 10;
  reseal(b.data);
  expect_open_error(&b, b.len, DS_ECORRUPT, "10 records cannot fit");
  b.data[4] = 2;
  b.data[16] = 0x2a;
  reseal(b.data);
  expect_open_error(&b, b.len, DS_ECORRUPT, "unknown tag 0x2a at offset 16");
  b.data[16] = 0x00;
  reseal(b.data);
  expect_open_error(&b, b.len, DS_ECORRUPT, "unknown tag 0x00 at offset 16");
  b.data[16] = DS_CODEC_STR;
  b.data[17] = 50; /* string longer than the payload */
  reseal(b.data);
  expect_open_error(&b, b.len, DS_ECORRUPT, "string at offset 16 of 50 bytes");

  /* pairs: an odd number of values */
  frame_of(&b, DS_FRAME_PAIRS, 1, "\x01\x02\x01", 3);
  expect_open_error(&b, b.len, DS_ECORRUPT, "1 byte(s) follow the last record");
  frame_of(&b, DS_FRAME_PAIRS, 1, "\x01", 1);
  expect_open_error(&b, b.len, DS_ECORRUPT, "cannot fit");

  ds_buf_close(&b);
  ds_buf_close(&p);
}

/* Check that a single value in hex fails with err and a message part. */
static void expect_value_error(const char *bytes, size_t len, int err,
                               const char *says) {
  char errbuf[160] = "";
  CHECK_EQ_INT(ds_codec_check(bytes, len, errbuf, sizeof errbuf), err);
  CHECK_HAS(errbuf, says);
}

static void test_value_errors(void) {
  char deep[2 * (DS_CODEC_MAX_DEPTH + 1) + 1];
  ds_codec_value_t v;
  ds_cursor_t c;
  int i;
  expect_value_error("", 0, DS_ETRUNCATED, "expected at offset 0");
  expect_value_error("\x03", 1, DS_ETRUNCATED, "integer at offset 0");
  expect_value_error("\x03\x80\x00", 3, DS_ECORRUPT, "not minimal");
  expect_value_error("\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 11,
                     DS_ECORRUPT, "over 64 bits");
  expect_value_error("\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\x81\x00", 12,
                     DS_ECORRUPT, "over 64 bits");
  expect_value_error("\x04\x00\x00", 3, DS_ETRUNCATED, "needs 8 bytes, 2 left");
  expect_value_error("\x05\x05hell", 6, DS_ETRUNCATED, "4 bytes left");
  expect_value_error("\x06\x03\x02\x02", 4, DS_ETRUNCATED,
                     "array at offset 0 of 3 elements cannot fit");
  expect_value_error("\x07\x02\x02\x02\x02", 5, DS_ETRUNCATED,
                     "map at offset 0 of 2 entries");
  expect_value_error("\x06\x02\x02\x02\x02", 5, DS_ECORRUPT,
                     "1 byte(s) follow the value, from offset 4");
  expect_value_error("\x07\x01\x06\x00\x02", 5, DS_ECORRUPT,
                     "map key at offset 2 is an array");
  expect_value_error("\x07\x01\x07\x00\x02", 5, DS_ECORRUPT,
                     "map key at offset 2 is a map");
  expect_value_error("\x07\x01\x04\x00\x00\x00\x00\x00\x00\xf8\x7f\x02", 12,
                     DS_ECORRUPT, "map key at offset 2 is NaN");
  expect_value_error("\x06\x01\x08", 3, DS_ECORRUPT, "unknown tag 0x08 at "
                                                     "offset 2");

  /* 64 nested arrays are fine, 65 are not */
  for (i = 0; i <= DS_CODEC_MAX_DEPTH; i++) {
    deep[2 * i] = DS_CODEC_ARRAY;
    deep[2 * i + 1] = 1;
  }
  deep[2 * DS_CODEC_MAX_DEPTH + 1] = 0; /* innermost of 65 is empty */
  deep[2 * DS_CODEC_MAX_DEPTH + 2] = 0;
  CHECK_EQ_INT(ds_codec_check(deep + 2, 2 * DS_CODEC_MAX_DEPTH, NULL, 0), 0);
  expect_value_error(deep, 2 * (DS_CODEC_MAX_DEPTH + 1), DS_ECORRUPT,
                     "array at offset 128 is nested deeper than 64");

  /* a failed read leaves the cursor where it was */
  ds_cursor_init(&c, "\x02\x05\x09", 3);
  CHECK_EQ_INT(ds_codec_read(&c, &v, NULL, 0), 0);
  CHECK_EQ_INT(ds_codec_read(&c, &v, NULL, 0), DS_ETRUNCATED);
  CHECK_EQ_INT(c.pos, 1);
  CHECK_EQ_INT(ds_codec_skip(&c, NULL, 0), DS_ETRUNCATED);
  CHECK_EQ_INT(c.pos, 1);
  ds_cursor_init(&c, "\x06\x02\x02\x09", 4);
  CHECK_EQ_INT(ds_codec_skip(&c, NULL, 0), DS_ECORRUPT);
  CHECK_EQ_INT(c.pos, 0);
}

/* --- hostile input ----------------------------------------------------- */

/* A random value, nesting at most `depth` more containers. */
static void random_value(ds_buf_t *b, int depth) {
  size_t n, i, off;
  char s[12];
  switch (rnd() % (depth > 0 ? 8 : 5)) {
  case 0:
    CHECK_EQ_INT(ds_codec_put_bool(b, (int)(rnd() & 1)), 0);
    break;
  case 1:
    CHECK_EQ_INT(ds_codec_put_int(b, (int64_t)rnd() >> (rnd() % 64)), 0);
    break;
  case 2:
    CHECK_EQ_INT(ds_codec_put_number(b, (double)(int64_t)rnd() / 1024), 0);
    break;
  case 3:
  case 4:
    n = rnd() % sizeof s;
    for (i = 0; i < n; i++)
      s[i] = (char)rnd();
    CHECK_EQ_INT(ds_codec_put_str(b, s, n), 0);
    break;
  case 5:
  case 6:
    n = rnd() % 5;
    CHECK_EQ_INT(ds_codec_put_array(b, n), 0);
    for (i = 0; i < n; i++)
      random_value(b, depth - 1);
    break;
  default:
    n = rnd() % 5;
    off = b->len;
    CHECK_EQ_INT(ds_codec_put_map(b, n), 0);
    for (i = 0; i < n; i++) {
      CHECK_EQ_INT(ds_codec_put_int(b, (int64_t)(rnd() % 1000)), 0);
      random_value(b, depth - 1);
    }
    CHECK_EQ_INT(ds_codec_sort_map(b, off), 0);
    break;
  }
}

/* Read every item of a checked frame with ds_codec_read, as a decoder
 * would; returns the number of items. */
static size_t walk_frame(const ds_frame_t *f) {
  size_t items = 0, pending;
  ds_codec_value_t v;
  ds_cursor_t c;
  ds_cursor_init_frame(&c, f);
  pending = (size_t)f->count * (f->flags & DS_FRAME_PAIRS ? 2 : 1);
  while (pending > 0) {
    if (ds_codec_read(&c, &v, NULL, 0) != 0)
      return 0;
    items++;
    pending--;
    if (v.tag == DS_CODEC_ARRAY)
      pending += v.u.count;
    else if (v.tag == DS_CODEC_MAP)
      pending += 2 * v.u.count;
  }
  return c.pos == c.len ? items : 0;
}

static void test_hostile_input(void) {
  int round, truncated_ok = 1, flips_caught = 1, walks_ok = 1;
  char errbuf[160];
  ds_frame_t f;
  ds_buf_t b, g;
  size_t start, len, i, bit;
  ds_buf_init(&b);
  ds_buf_init(&g);
  for (round = 0; round < 200; round++) {
    size_t n = rnd() % 6;
    unsigned flags = rnd() & 1 ? DS_FRAME_PAIRS : 0;
    ds_buf_truncate(&b, 0);
    CHECK_EQ_INT(ds_frame_begin(&b, flags, &start), 0);
    for (i = 0; i < n * (flags ? 2 : 1); i++)
      random_value(&b, 4);
    CHECK_EQ_INT(ds_frame_end(&b, start, n), 0);
    CHECK_EQ_INT(ds_frame_open(&f, b.data, b.len, errbuf, sizeof errbuf), 0);
    if (walk_frame(&f) == 0 && n > 0)
      walks_ok = 0;

    /* every proper prefix is cut short */
    for (len = 0; len < b.len; len++)
      if (ds_frame_open(&f, b.data, len, errbuf, sizeof errbuf) !=
          DS_ETRUNCATED)
        truncated_ok = 0;
    /* every single-bit flip is caught (bits of small frames, some of big) */
    for (bit = 0; bit < 8 * b.len; bit += b.len < 64 ? 1 : 1 + rnd() % 13) {
      b.data[bit / 8] ^= (char)(1 << (bit % 8));
      if (ds_frame_open(&f, b.data, b.len, errbuf, sizeof errbuf) == 0)
        flips_caught = 0;
      b.data[bit / 8] ^= (char)(1 << (bit % 8));
    }
    /* random bytes in a resealed payload: anything but a crash, and
     * whatever opens must be walkable */
    ds_buf_truncate(&g, 0);
    CHECK_EQ_INT(ds_buf_append(&g, b.data, b.len), 0);
    for (i = 0; i < 1 + rnd() % 4 && g.len > 16; i++)
      g.data[16 + rnd() % (g.len - 16)] = (char)rnd();
    reseal(g.data);
    if (ds_frame_open(&f, g.data, g.len, errbuf, sizeof errbuf) == 0 &&
        walk_frame(&f) == 0 && f.count > 0)
      walks_ok = 0;
  }
  CHECK(truncated_ok);
  CHECK(flips_caught);
  CHECK(walks_ok);

  /* pure garbage as values, in buffers of exact size so ASan sees overreads */
  for (round = 0; round < 20000; round++) {
    char *raw;
    len = rnd() % 24;
    raw = malloc(len + 1);
    for (i = 0; i < len; i++)
      raw[i] = (char)(rnd() % 4 == 0 ? rnd() % 9 : rnd());
    (void)ds_codec_check(raw, len, errbuf, sizeof errbuf);
    (void)ds_frame_open(&f, raw, len, errbuf, sizeof errbuf);
    free(raw);
  }
  ds_buf_close(&b);
  ds_buf_close(&g);
}

/* --- out of memory ----------------------------------------------------- */

/* Each writer, failing, leaves the buffer as it was. */
static void test_oom_writers(void) {
  ds_buf_t b;
  size_t start;
  char big[100];
  memset(big, 'x', sizeof big);
  ds_buf_init(&b);
  ds_test_fail_after(1);
  CHECK_EQ_INT(ds_codec_put_bool(&b, 1), DS_ENOMEM);
  CHECK_EQ_INT(ds_codec_put_int(&b, 1), DS_ENOMEM);
  CHECK_EQ_INT(ds_codec_put_double(&b, 1), DS_ENOMEM);
  CHECK_EQ_INT(ds_codec_put_number(&b, 1), DS_ENOMEM);
  CHECK_EQ_INT(ds_codec_put_str(&b, "a", 1), DS_ENOMEM);
  CHECK_EQ_INT(ds_codec_put_array(&b, 1), DS_ENOMEM);
  CHECK_EQ_INT(ds_codec_put_map(&b, 1), DS_ENOMEM);
  CHECK_EQ_INT(ds_buf_append(&b, "a", 1), DS_ENOMEM);
  CHECK_EQ_INT(ds_frame_begin(&b, 0, &start), DS_ENOMEM);
  CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
  ds_test_fail_after(0);

  CHECK_EQ_INT(ds_codec_put_str(&b, "abc", 3), 0);
  ds_test_fail_after(1);
  CHECK_EQ_INT(ds_codec_put_str(&b, big, sizeof big), DS_ENOMEM);
  CHECK_BYTES(&b, "05 03 61 62 63");
  CHECK_EQ_INT(ds_codec_put_str(&b, "d", 1), 0); /* fits without growth */
  CHECK_BYTES(&b, "05 03 61 62 63 05 01 64");
  ds_test_fail_after(0);
  ds_buf_close(&b);
}

/* Sorting a big map with the Nth allocation failing: either it works, or
 * it fails with DS_ENOMEM and the bytes are as they were. */
static void test_oom_sort(void) {
  ds_buf_t b, want;
  size_t off, copy_len;
  char *copy;
  long n;
  int err = DS_ENOMEM, failures = 0;
  ds_buf_init(&b);
  ds_buf_init(&want);
  big_map(&want, 40, &off);
  CHECK_EQ_INT(ds_codec_sort_map(&want, off), 0);
  for (n = 1; err == DS_ENOMEM && n < 10; n++) {
    big_map(&b, 40, &off);
    copy_len = b.len;
    copy = malloc(copy_len);
    memcpy(copy, b.data, copy_len);
    ds_test_fail_after(n);
    err = ds_codec_sort_map(&b, off);
    ds_test_fail_after(0);
    if (err == DS_ENOMEM) {
      failures++;
      CHECK(b.len == copy_len && memcmp(b.data, copy, copy_len) == 0);
    }
    free(copy);
    ds_buf_close(&b); /* so that the next round's buffer grows again */
  }
  CHECK_EQ_INT(err, 0);
  CHECK(failures >= 1); /* the index allocation, at least, was refused */
  big_map(&b, 40, &off);
  CHECK_EQ_INT(ds_codec_sort_map(&b, off), 0);
  CHECK(b.len == want.len && memcmp(b.data, want.data, b.len) == 0);
  ds_buf_close(&b);
  ds_buf_close(&want);
}

int main(void) {
  ds_test_begin();
  test_buf();
  test_scalar_bytes();
  test_scalar_round_trips();
  test_number_exactness();
  test_containers_and_span();
  test_canonical_maps();
  test_big_map_sort();
  test_frame_round_trip();
  test_frame_errors();
  test_value_errors();
  test_hostile_input();
  test_oom_writers();
  test_oom_sort();
  return ds_test_end("test_codec");
}

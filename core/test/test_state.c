/* Keyed state stores: numbers and bytes, kinds kept apart, growth, one long
 * cluster, churn against a reference model (backshift deletion), iteration,
 * snapshots and every corruption error, exact timeouts and their cost,
 * out-of-memory paths, bytes per key. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "dstream/alloc.h"
#include "dstream/codec.h"
#include "dstream/crc32c.h"
#include "dstream/error.h"
#include "dstream/state.h"
#include "harness.h"

#define QCHUNK 4094 /* state_internal.h's queue chunk, for the queue length bound */

/* --- helpers ------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static uint64_t bits(double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  return u;
}

/* The number stored under a number key, checking it is a number. */
static double num_at(ds_state_t *s, double key) {
  ds_state_item_t v;
  int slot = ds_state_get_num(s, key, &v);
  CHECK(slot >= 0);
  if (slot < 0)
    return -12345;
  CHECK_EQ_INT(v.kind, DS_STATE_NUM);
  return v.num;
}

/* Whether the item holds exactly len bytes p. */
static int item_is(const ds_state_item_t *it, int kind, const void *p,
                   size_t len) {
  return it->kind == kind && it->len == len &&
         (len == 0 || memcmp(it->ptr, p, len) == 0);
}

/* A codec STR value of n bytes of c, as ENC value bytes. */
static void enc_str(ds_buf_t *b, char c, size_t n) {
  char *tmp = malloc(n + 1);
  memset(tmp, c, n);
  ds_buf_truncate(b, 0);
  CHECK_EQ_INT(ds_codec_put_str(b, tmp, n), 0);
  free(tmp);
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

/* --- numbers ------------------------------------------------------------- */

static void test_numbers(void) {
  ds_state_t *s = ds_state_new(0);
  ds_state_item_t v;
  double keys[] = {1, -1, 0.5, 1e-300, -1e300, INFINITY, -INFINITY,
                   1152921504606846976.0, 9007199254740993.0};
  size_t i, n = sizeof keys / sizeof keys[0];
  int slot;

  slot = ds_state_put_num_num(s, 1, 10, 0);
  CHECK(slot >= 0);
  CHECK_EQ_INT(ds_state_get_num(s, 1, &v), slot);
  CHECK_EQ_INT(v.kind, DS_STATE_NUM);
  CHECK(v.num == 10);
  CHECK_EQ_INT(ds_state_put_num_num(s, 1, 11, 0), slot); /* an update */
  CHECK(num_at(s, 1) == 11);
  CHECK_EQ_INT(ds_state_count(s), 1);

  /* Every double but NaN is a key of its own, -inf (the cell tag's edge)
   * included; values keep -0 and every NaN reads back as NaN. */
  for (i = 0; i < n; i++)
    CHECK(ds_state_put_num_num(s, keys[i], (double)i, 0) >= 0);
  CHECK_EQ_INT(ds_state_count(s), n);
  for (i = 0; i < n; i++)
    CHECK(num_at(s, keys[i]) == (double)i);
  CHECK(ds_state_put_num_num(s, 2, -0.0, 0) >= 0);
  CHECK(signbit(num_at(s, 2)));
  CHECK(ds_state_put_num_num(s, 3, -NAN, 0) >= 0);
  CHECK(isnan(num_at(s, 3)));

  /* 0 and -0 are one key. */
  slot = ds_state_put_num_num(s, -0.0, 5, 0);
  CHECK_EQ_INT(ds_state_get_num(s, 0.0, NULL), slot);
  CHECK_EQ_INT(ds_state_put_num_num(s, 0.0, 6, 0), slot);
  CHECK_EQ_INT(ds_state_key(s, slot, &v), DS_STATE_NUM);
  CHECK(v.num == 0 && !signbit(v.num));

  /* NaN is no key. */
  CHECK_EQ_INT(ds_state_put_num_num(s, NAN, 1, 0), DS_EINVAL);
  CHECK_EQ_INT(ds_state_put_num_enc(s, NAN, "\x02", 1, 0), DS_EINVAL);
  CHECK_EQ_INT(ds_state_get_num(s, NAN, &v), -1);
  CHECK_EQ_INT(ds_state_remove_num(s, NAN), 0);

  /* By slot. */
  slot = ds_state_get_num(s, 1, NULL);
  CHECK_EQ_INT(ds_state_set_num(s, slot, 42, 0), 0);
  CHECK(num_at(s, 1) == 42);
  CHECK_EQ_INT(ds_state_value(s, slot, &v), DS_STATE_NUM);
  CHECK(v.num == 42);
  CHECK_EQ_INT(ds_state_set_num(s, 100000, 1, 0), DS_EINVAL);
  CHECK_EQ_INT(ds_state_set_num(s, -1, 1, 0), DS_EINVAL);
  CHECK_EQ_INT(ds_state_key(s, -5, &v), DS_EINVAL);

  /* Removal. */
  CHECK_EQ_INT(ds_state_remove_num(s, 1), 1);
  CHECK_EQ_INT(ds_state_remove_num(s, 1), 0);
  CHECK_EQ_INT(ds_state_get_num(s, 1, NULL), -1);
  CHECK_EQ_INT(ds_state_set_num(s, slot, 1, 0), DS_EINVAL);
  CHECK_EQ_INT(ds_state_remove_slot(s, slot), DS_EINVAL);
  CHECK_EQ_INT(ds_state_value(s, slot, &v), DS_EINVAL);
  slot = ds_state_get_num(s, -1, NULL);
  CHECK_EQ_INT(ds_state_remove_slot(s, slot), 0);
  CHECK_EQ_INT(ds_state_get_num(s, -1, NULL), -1);
  CHECK_EQ_INT(ds_state_count(s), n + 1);

  CHECK(ds_state_new(-1) == NULL);
  ds_state_free(s);
  ds_state_free(NULL);
}

/* --- bytes --------------------------------------------------------------- */

static void test_bytes(void) {
  ds_state_t *s = ds_state_new(0);
  ds_state_item_t v, k;
  ds_buf_t val;
  char key[64];
  size_t len;
  int slot, slots[41];
  const char *p;

  ds_buf_init(&val);
  /* String keys of 0 to 40 bytes (inline up to 6), ENC values of every
   * size: inline, slab classes, big. */
  for (len = 0; len <= 40; len++) {
    memset(key, 'a' + (int)(len % 26), len);
    enc_str(&val, 'v', len * 53);
    slots[len] = ds_state_put_bytes_enc(s, DS_STATE_STR, key, (uint32_t)len,
                                        val.data, (uint32_t)val.len, 0);
    CHECK(slots[len] >= 0);
  }
  CHECK_EQ_INT(ds_state_count(s), 41);
  for (len = 0; len <= 40; len++) {
    memset(key, 'a' + (int)(len % 26), len);
    enc_str(&val, 'v', len * 53);
    slot = ds_state_get_bytes(s, DS_STATE_STR, key, (uint32_t)len, &v);
    CHECK_EQ_INT(slot, slots[len]);
    CHECK(item_is(&v, DS_STATE_ENC, val.data, val.len));
    CHECK_EQ_INT(ds_state_key(s, slot, &k), DS_STATE_STR);
    CHECK(item_is(&k, DS_STATE_STR, key, len));
  }

  /* NUL bytes are bytes; prefixes are other keys. */
  CHECK(ds_state_put_bytes_num(s, DS_STATE_STR, "a\0b", 3, 1, 0) >= 0);
  CHECK(ds_state_put_bytes_num(s, DS_STATE_STR, "a\0c", 3, 2, 0) >= 0);
  CHECK(ds_state_put_bytes_num(s, DS_STATE_STR, "a\0b-longer", 10, 3, 0) >= 0);
  CHECK(ds_state_put_bytes_num(s, DS_STATE_STR, "a\0b-longeR", 10, 4, 0) >= 0);
  CHECK(ds_state_get_bytes(s, DS_STATE_STR, "a\0b", 3, &v) >= 0 && v.num == 1);
  CHECK(ds_state_get_bytes(s, DS_STATE_STR, "a\0c", 3, &v) >= 0 && v.num == 2);
  CHECK(ds_state_get_bytes(s, DS_STATE_STR, "a\0b-longer", 10, &v) >= 0 &&
        v.num == 3);
  CHECK(ds_state_get_bytes(s, DS_STATE_STR, "a\0b-longeR", 10, &v) >= 0 &&
        v.num == 4);
  CHECK_EQ_INT(ds_state_get_bytes(s, DS_STATE_STR, "a\0b-long", 8, &v), -1);

  /* Values change size: inline, slab, big, back; the same size class is
   * rewritten in place; a value set from its own borrowed bytes survives. */
  slot = ds_state_get_bytes(s, DS_STATE_STR, "a\0b", 3, NULL);
  enc_str(&val, 'x', 3000);
  CHECK_EQ_INT(ds_state_set_enc(s, slot, val.data, (uint32_t)val.len, 0), 0);
  CHECK(ds_state_value(s, slot, &v) == DS_STATE_ENC &&
        item_is(&v, DS_STATE_ENC, val.data, val.len));
  CHECK_EQ_INT(ds_state_set_enc(s, slot, v.ptr, v.len, 0), 0);
  CHECK(ds_state_value(s, slot, &v) == DS_STATE_ENC &&
        item_is(&v, DS_STATE_ENC, val.data, val.len));
  enc_str(&val, 'y', 18); /* 20 bytes, + 1 of length: class 24 */
  CHECK_EQ_INT(ds_state_set_enc(s, slot, val.data, (uint32_t)val.len, 0), 0);
  ds_state_value(s, slot, &v);
  p = v.ptr;
  enc_str(&val, 'z', 20); /* 22 bytes: still class 24 */
  CHECK_EQ_INT(ds_state_set_enc(s, slot, val.data, (uint32_t)val.len, 0), 0);
  ds_state_value(s, slot, &v);
  CHECK(v.ptr == p && item_is(&v, DS_STATE_ENC, val.data, val.len));
  CHECK_EQ_INT(ds_state_set_enc(s, slot, v.ptr, v.len, 0), 0);
  ds_state_value(s, slot, &v);
  CHECK(item_is(&v, DS_STATE_ENC, val.data, val.len));
  CHECK_EQ_INT(ds_state_set_enc(s, slot, v.ptr + 1, v.len - 1, 0), 0);
  ds_state_value(s, slot, &v);
  CHECK(v.ptr == p && item_is(&v, DS_STATE_ENC, val.data + 1, val.len - 1));
  CHECK_EQ_INT(ds_state_set_enc(s, slot, v.ptr + 2, 5, 0), 0); /* inline */
  ds_state_value(s, slot, &v);
  CHECK(item_is(&v, DS_STATE_ENC, "zzzzz", 5));
  CHECK_EQ_INT(ds_state_set_num(s, slot, 7, 0), 0);
  CHECK(ds_state_value(s, slot, &v) == DS_STATE_NUM && v.num == 7);

  /* Bad kinds, empty values, ENC keys that are numbers or strings. */
  CHECK_EQ_INT(ds_state_put_bytes_num(s, 7, "a", 1, 1, 0), DS_EINVAL);
  CHECK_EQ_INT(ds_state_put_bytes_num(s, DS_STATE_NUM, "a", 1, 1, 0),
               DS_EINVAL);
  CHECK_EQ_INT(ds_state_get_bytes(s, 7, "a", 1, &v), -1);
  CHECK_EQ_INT(ds_state_put_bytes_num(s, DS_STATE_ENC, "\x05\x01" "a", 3, 1,
                                      0), DS_EINVAL);
  CHECK_EQ_INT(ds_state_put_bytes_num(s, DS_STATE_ENC, "\x03\x02", 2, 1, 0),
               DS_EINVAL);
  CHECK_EQ_INT(ds_state_put_bytes_num(s, DS_STATE_ENC, "", 0, 1, 0),
               DS_EINVAL);
  CHECK_EQ_INT(ds_state_put_bytes_num(s, DS_STATE_ENC, "\x00", 1, 1, 0),
               DS_EINVAL);
  CHECK_EQ_INT(ds_state_put_bytes_num(s, DS_STATE_ENC, "\x08", 1, 1, 0),
               DS_EINVAL);
  CHECK_EQ_INT(ds_state_put_num_enc(s, 5, "", 0, 0), DS_EINVAL);
  CHECK_EQ_INT(ds_state_put_bytes_enc(s, DS_STATE_STR, "k", 1, NULL, 0, 0),
               DS_EINVAL);
  CHECK_EQ_INT(ds_state_set_enc(s, slot, "", 0, 0), DS_EINVAL);
  CHECK_EQ_INT(ds_state_remove_bytes(s, 9, "a", 1), 0);

  /* Kinds never collide: "a" and {"a"}, "true" and true, 1 and "1" and
   * {1}, a 6-byte string and a 6-byte ENC key with the same bytes. */
  {
    int sa, ca, st, bt, n1, s1, c1, s6, e6;
    sa = ds_state_put_bytes_num(s, DS_STATE_STR, "a", 1, 1, 0);
    ca = ds_state_put_bytes_num(s, DS_STATE_ENC, "\x06\x01\x05\x01" "a", 5, 2,
                                0);
    st = ds_state_put_bytes_num(s, DS_STATE_STR, "true", 4, 3, 0);
    bt = ds_state_put_bytes_num(s, DS_STATE_ENC, "\x02", 1, 4, 0);
    n1 = ds_state_put_num_num(s, 1, 5, 0);
    s1 = ds_state_put_bytes_num(s, DS_STATE_STR, "1", 1, 6, 0);
    c1 = ds_state_put_bytes_num(s, DS_STATE_ENC, "\x06\x01\x03\x02", 4, 7, 0);
    s6 = ds_state_put_bytes_num(s, DS_STATE_STR, "\x06\x01\x03\x02zz", 6, 8,
                                0);
    e6 = ds_state_put_bytes_num(s, DS_STATE_ENC, "\x06\x01\x03\x02zz", 6, 9,
                                0);
    CHECK(sa >= 0 && ca >= 0 && st >= 0 && bt >= 0 && n1 >= 0 && s1 >= 0 &&
          c1 >= 0 && s6 >= 0 && e6 >= 0);
    CHECK(sa != ca && st != bt && n1 != s1 && s1 != c1 && n1 != c1 &&
          s6 != e6);
    CHECK(ds_state_get_bytes(s, DS_STATE_ENC, "\x06\x01\x05\x01" "a", 5, &v) ==
              ca && v.num == 2);
    CHECK(ds_state_get_bytes(s, DS_STATE_STR, "a", 1, &v) == sa && v.num == 1);
    CHECK(ds_state_get_bytes(s, DS_STATE_ENC, "\x02", 1, &v) == bt &&
          v.num == 4);
    CHECK(ds_state_get_bytes(s, DS_STATE_ENC, "\x01", 1, &v) == -1);
    CHECK(ds_state_get_bytes(s, DS_STATE_ENC, "\x06\x01\x03\x02zz", 6, &v) ==
              e6 && v.num == 9);
    CHECK_EQ_INT(ds_state_key(s, ca, &k), DS_STATE_ENC);
    CHECK(item_is(&k, DS_STATE_ENC, "\x06\x01\x05\x01" "a", 5));
    CHECK_EQ_INT(ds_state_remove_bytes(s, DS_STATE_ENC, "\x02", 1), 1);
    CHECK_EQ_INT(ds_state_get_bytes(s, DS_STATE_STR, "true", 4, &v), st);
  }
  ds_buf_close(&val);
  ds_state_free(s);
}

/* --- growth -------------------------------------------------------------- */

static void test_growth(void) {
  ds_state_t *s = ds_state_new(0);
  ds_state_stats_t st;
  int i, n = 100000, ok = 1;
  for (i = 0; i < n; i++)
    ok &= ds_state_put_num_num(s, i * 3.0, i, 0) >= 0;
  CHECK(ok);
  ds_state_stats(s, &st);
  CHECK_EQ_INT(st.count, n);
  CHECK((double)st.count <= 0.8 * st.index_cap);
  CHECK((double)st.count > 0.5 * st.index_cap);
  for (i = 0; i < n; i++)
    ok &= ds_state_get_num(s, i * 3.0, NULL) >= 0 && num_at(s, i * 3.0) == i &&
          ds_state_get_num(s, i * 3.0 + 1, NULL) == -1;
  CHECK(ok);
  for (i = 0; i < n; i += 2)
    ok &= ds_state_remove_num(s, i * 3.0) == 1;
  CHECK(ok);
  CHECK_EQ_INT(ds_state_count(s), n / 2);
  for (i = 0; i < n; i++)
    ok &= (ds_state_get_num(s, i * 3.0, NULL) >= 0) == (i % 2 == 1);
  CHECK(ok);
  /* Freed slots are reused before new ones. */
  for (i = 0; i < n; i += 2)
    ok &= ds_state_put_num_num(s, -i - 1.0, i, 0) >= 0;
  CHECK(ok);
  ds_state_stats(s, &st);
  CHECK_EQ_INT(st.slots, n);
  CHECK_EQ_INT(st.count, n);
  ds_state_free(s);
}

/* --- one long cluster ---------------------------------------------------- */

/* state_internal.h's hash of a number key and home in an index of cap positions,
 * copied, to pick keys that share their home. */
static uint64_t mix(uint64_t x) {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93u;
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93u;
  x ^= x >> 32;
  return x;
}

static uint32_t home_of(double key, uint32_t cap) {
  uint64_t h = mix(bits(key) ^ 0x9e3779b97f4a7c15u);
  return (uint32_t)(((h >> 32) * (uint64_t)cap) >> 32);
}

/* Whether exactly the first n of keys[] are present, each with its index as
 * its value. */
static int holds_first(ds_state_t *s, const double *keys, int n, int all) {
  ds_state_item_t v;
  int i, ok = ds_state_count(s) == (uint32_t)n;
  for (i = 0; i < all; i++) {
    int slot = ds_state_get_num(s, keys[i], &v);
    ok &= i < n ? slot >= 0 && v.num == i : slot == -1;
  }
  return ok;
}

/* 70 keys whose homes are the last two positions of a 121-word index: one
 * cluster that wraps around and runs 70 words, far past the 15 distances an
 * index word spells out. Lookups, misses with the same home, expiry from
 * the middle of the cluster and removals in random order stay exact. */
static void test_long_cluster(void) {
  enum { N = 70, ABSENT = 10, CAP = 121 };
  double keys[N + ABSENT], key = 1;
  ds_state_t *s = ds_state_new(1000);
  ds_state_stats_t st;
  ds_state_item_t k, v;
  int i, n = 0, ok = 1, expired = 0;
  while (n < N + ABSENT) {
    if (home_of(key, CAP) >= CAP - 2)
      keys[n++] = key;
    key++;
  }
  for (i = 0; i < N; i++)
    ok &= ds_state_put_num_num(s, keys[i], i, i) >= 0;
  CHECK(ok);
  ds_state_stats(s, &st);
  CHECK_EQ_INT(st.index_cap, CAP);
  /* keys[N..] share the home but are absent: the search runs the cluster. */
  CHECK(holds_first(s, keys, N, N + ABSENT));
  /* Keys 0..29 (put at times 0..29) time out, oldest first. */
  while (ds_state_expire(s, 1029, &k, &v) == 1) {
    ok &= k.kind == DS_STATE_NUM && k.num == keys[expired] &&
          v.num == expired;
    expired++;
  }
  CHECK(ok);
  CHECK_EQ_INT(expired, 30);
  for (i = 0; i < N; i++)
    ok &= (ds_state_get_num(s, keys[i], NULL) >= 0) == (i >= 30);
  CHECK(ok);
  /* Put them back, then remove all in random order, by key or by slot. */
  for (i = 0; i < 30; i++)
    ok &= ds_state_put_num_num(s, keys[i], i, 2000) >= 0;
  CHECK(holds_first(s, keys, N, N + ABSENT));
  for (n = N; n > 0; n--) {
    int j = (int)(rnd() % (uint64_t)n);
    double t = keys[j];
    keys[j] = keys[n - 1];
    keys[n - 1] = t;
    if (n % 2 == 0) {
      ok &= ds_state_remove_num(s, t) == 1;
    } else {
      ok &= ds_state_remove_slot(s, ds_state_get_num(s, t, NULL)) == 0;
    }
    ok &= ds_state_count(s) == (uint32_t)n - 1;
    for (i = 0; i < N + ABSENT; i++)
      ok &= (ds_state_get_num(s, keys[i], NULL) >= 0) == (i < n - 1);
  }
  CHECK(ok);
  ds_state_free(s);
}

/* --- churn against a reference model ------------------------------------- */

#define U 3000

typedef struct {
  int kind;
  double num;
  char bytes[64];
  uint32_t len;
} ukey_t;

typedef struct {
  int present;
  int is_num;
  double num;
  char *bytes;
  uint32_t len;
  int64_t time;
} ref_t;

/* Key i of the universe: numbers (specials among them), short and long
 * strings, the empty string, booleans, short and long composite keys. */
static void key_of(int i, ukey_t *k) {
  static const char pad[] = "::::::::::::::::::::::::::::::::::::::::";
  ds_buf_t b;
  k->num = 0;
  k->len = 0;
  switch (i % 4) {
  case 0:
    k->kind = DS_STATE_NUM;
    k->num = (i - U / 2) * 0.75 + 0.25;
    if (i == 4)
      k->num = INFINITY;
    if (i == 8)
      k->num = -INFINITY;
    if (i == 12)
      k->num = 1152921504606846976.0;
    if (i == 16)
      k->num = -0.0;
    return;
  case 1:
    k->kind = DS_STATE_STR;
    k->len = (uint32_t)snprintf(k->bytes, sizeof k->bytes, "%d", i);
    if (i == 1)
      k->len = 0;
    return;
  case 2:
    k->kind = DS_STATE_STR;
    k->len = (uint32_t)snprintf(k->bytes, sizeof k->bytes, "long-%d-%.*s", i,
                                i % 40, pad);
    return;
  default:
    break;
  }
  k->kind = DS_STATE_ENC;
  if (i == 3 || i == 7) {
    k->bytes[0] = i == 3 ? DS_CODEC_FALSE : DS_CODEC_TRUE;
    k->len = 1;
    return;
  }
  ds_buf_init(&b);
  if (i % 8 == 7) {
    CHECK_EQ_INT(ds_codec_put_array(&b, 1), 0);
    CHECK_EQ_INT(ds_codec_put_int(&b, i), 0);
  } else {
    CHECK_EQ_INT(ds_codec_put_array(&b, 2), 0);
    CHECK_EQ_INT(ds_codec_put_str(&b, "c", 1), 0);
    CHECK_EQ_INT(ds_codec_put_int(&b, i), 0);
  }
  memcpy(k->bytes, b.data, b.len);
  k->len = (uint32_t)b.len;
  ds_buf_close(&b);
}

static int key_get(ds_state_t *s, const ukey_t *k, ds_state_item_t *v) {
  if (k->kind == DS_STATE_NUM)
    return ds_state_get_num(s, k->num, v);
  return ds_state_get_bytes(s, k->kind, k->bytes, k->len, v);
}

static int key_remove(ds_state_t *s, const ukey_t *k) {
  if (k->kind == DS_STATE_NUM)
    return ds_state_remove_num(s, k->num);
  return ds_state_remove_bytes(s, k->kind, k->bytes, k->len);
}

static int key_put(ds_state_t *s, const ukey_t *k, const ref_t *v, int64_t t) {
  if (k->kind == DS_STATE_NUM)
    return v->is_num ? ds_state_put_num_num(s, k->num, v->num, t)
                     : ds_state_put_num_enc(s, k->num, v->bytes, v->len, t);
  return v->is_num
             ? ds_state_put_bytes_num(s, k->kind, k->bytes, k->len, v->num, t)
             : ds_state_put_bytes_enc(s, k->kind, k->bytes, k->len, v->bytes,
                                      v->len, t);
}

static int key_is(const ukey_t *k, const ds_state_item_t *it) {
  if (k->kind == DS_STATE_NUM)
    return it->kind == DS_STATE_NUM && it->num == k->num;
  return item_is(it, k->kind, k->bytes, k->len);
}

static int value_is(const ref_t *r, const ds_state_item_t *it) {
  if (r->is_num)
    return it->kind == DS_STATE_NUM &&
           (bits(it->num) == bits(r->num) || (isnan(r->num) && isnan(it->num)));
  return item_is(it, DS_STATE_ENC, r->bytes, r->len);
}

static void random_value(ref_t *r) {
  uint64_t x = rnd();
  free(r->bytes);
  r->bytes = NULL;
  r->len = 0;
  r->is_num = x % 5 < 2;
  if (r->is_num) {
    r->num = x % 50 == 0   ? NAN
             : x % 50 == 1 ? -0.0
                           : (double)(int64_t)(x >> 20) / 7;
  } else {
    size_t n = x % 4 == 0 ? (x >> 8) % 5 : x % 4 == 3 ? 900 + (x >> 8) % 600
                                                       : (x >> 8) % 100;
    ds_buf_t b;
    ds_buf_init(&b);
    enc_str(&b, (char)('a' + (x >> 40) % 26), n);
    r->bytes = malloc(b.len);
    memcpy(r->bytes, b.data, b.len);
    r->len = (uint32_t)b.len;
    ds_buf_close(&b);
  }
}

/* Check the whole store against the model: same keys and values, and
 * iteration sees each key once. */
static void verify(ds_state_t *s, const ref_t *ref, const ukey_t *keys) {
  ds_state_item_t v, k;
  int i, slot, present = 0, seen = 0, ok = 1, last = -1;
  for (i = 0; i < U; i++) {
    slot = key_get(s, &keys[i], &v);
    if (ref[i].present) {
      present++;
      ok &= slot >= 0 && value_is(&ref[i], &v);
    } else {
      ok &= slot == -1;
    }
  }
  CHECK(ok);
  CHECK_EQ_INT(ds_state_count(s), present);
  for (slot = ds_state_next(s, -1); slot >= 0; slot = ds_state_next(s, slot)) {
    ds_state_key(s, slot, &k);
    ok &= slot > last;
    last = slot;
    if (k.kind == DS_STATE_NUM)
      ok &= ds_state_get_num(s, k.num, NULL) == slot;
    else
      ok &= ds_state_get_bytes(s, k.kind, k.ptr, k.len, NULL) == slot;
    seen++;
  }
  CHECK(ok);
  CHECK_EQ_INT(seen, present);
}

/* Random puts, updates, removals and lookups; with a timeout, batches whose
 * expiry must hand back exactly the keys the model says are idle long
 * enough, each once. */
static void churn(int64_t timeout, long ops) {
  ds_state_t *s = ds_state_new(timeout);
  ref_t *ref = calloc(U, sizeof *ref);
  ukey_t *keys = malloc(U * sizeof *keys);
  ds_state_stats_t st;
  int64_t now = 0;
  long op, expired = 0;
  int i, ok = 1;
  for (i = 0; i < U; i++)
    key_of(i, &keys[i]);
  for (op = 0; op < ops; op++) {
    uint64_t x = rnd();
    int i = (int)((x >> 16) % U), slot;
    ds_state_item_t v;
    if (x % 8 < 4) {
      random_value(&ref[i]);
      slot = key_put(s, &keys[i], &ref[i], now);
      ok &= slot >= 0;
      ref[i].time = now;
      ref[i].present = 1;
    } else if (x % 8 < 6) {
      ok &= key_remove(s, &keys[i]) == ref[i].present;
      ref[i].present = 0;
    } else if (x % 8 < 7 && ref[i].present) {
      /* Update by slot, as mapWithState does after a lookup. */
      slot = key_get(s, &keys[i], &v);
      random_value(&ref[i]);
      ok &= (ref[i].is_num
                 ? ds_state_set_num(s, slot, ref[i].num, now)
                 : ds_state_set_enc(s, slot, ref[i].bytes, ref[i].len, now)) ==
            0;
      ref[i].time = now;
    } else {
      slot = key_get(s, &keys[i], &v);
      ok &= ref[i].present ? slot >= 0 && value_is(&ref[i], &v) : slot == -1;
    }
    if (op % 97 == 96)
      now += 250;
    if (timeout > 0 && op % 97 == 96) {
      ds_state_item_t k;
      int j;
      while (ds_state_expire(s, now, &k, &v) == 1) {
        for (j = 0; j < U && !(ref[j].present && key_is(&keys[j], &k)); j++)
          ;
        ok &= j < U && ref[j].time <= now - timeout && value_is(&ref[j], &v);
        if (j < U)
          ref[j].present = 0;
        expired++;
      }
      for (j = 0; j < U; j++)
        ok &= !ref[j].present || ref[j].time > now - timeout;
      ds_state_stats(s, &st);
      ok &= st.queue_len <= (uint64_t)st.count + st.count / 4 + QCHUNK;
    }
    if (op % 20000 == 19999) {
      CHECK(ok);
      verify(s, ref, keys);
    }
  }
  CHECK(ok);
  verify(s, ref, keys);
  if (timeout > 0) {
    int64_t t;
    for (i = 0; i < U; i++) {
      if (ref[i].present) {
        ok &= ds_state_time(s, key_get(s, &keys[i], NULL), &t) == 0 &&
              t == ref[i].time;
      }
    }
    CHECK(ok);
    CHECK(expired > 100);
  }
  for (i = 0; i < U; i++)
    free(ref[i].bytes);
  free(ref);
  free(keys);
  ds_state_free(s);
}

static void test_churn(void) {
  churn(0, 200000);
  churn(3000, 200000);
}

/* --- iteration ----------------------------------------------------------- */

static void test_iteration(void) {
  ds_state_t *s = ds_state_new(0);
  ds_state_item_t k;
  char seen[2000];
  int i, slot, ok = 1, n = 0;
  for (i = 0; i < 2000; i++)
    ok &= ds_state_put_num_num(s, i, i, 0) >= 0;
  for (i = 0; i < 2000; i += 3)
    ok &= ds_state_remove_num(s, i) == 1;
  CHECK(ok);
  CHECK_EQ_INT(ds_state_next(s, 1 << 30), -1);
  memset(seen, 0, sizeof seen);
  for (slot = ds_state_next(s, -1); slot >= 0; slot = ds_state_next(s, slot)) {
    CHECK_EQ_INT(ds_state_key(s, slot, &k), DS_STATE_NUM);
    ok &= k.num >= 0 && k.num < 2000 && (int)k.num % 3 != 0 &&
          !seen[(int)k.num];
    seen[(int)k.num] = 1;
    n++;
  }
  CHECK(ok);
  CHECK_EQ_INT(n, ds_state_count(s));
  /* Removing while iterating, the current key included. */
  for (slot = ds_state_next(s, -1); slot >= 0; slot = ds_state_next(s, slot)) {
    ds_state_key(s, slot, &k);
    if ((int)k.num % 2 == 0)
      ok &= ds_state_remove_slot(s, slot) == 0;
  }
  CHECK(ok);
  for (i = 0; i < 2000; i++)
    ok &= (ds_state_get_num(s, i, NULL) >= 0) == (i % 3 != 0 && i % 2 != 0);
  CHECK(ok);
  ds_state_free(s);
  s = ds_state_new(0);
  CHECK_EQ_INT(ds_state_next(s, -1), -1);
  ds_state_free(s);
}

/* --- snapshots ----------------------------------------------------------- */

/* Whether two stores hold the same keys with the same values. */
static int same_contents(ds_state_t *a, ds_state_t *b) {
  ds_state_item_t k, va, vb;
  int slot, ok = ds_state_count(a) == ds_state_count(b);
  for (slot = ds_state_next(a, -1); slot >= 0 && ok;
       slot = ds_state_next(a, slot)) {
    ds_state_key(a, slot, &k);
    ds_state_value(a, slot, &va);
    ok = (k.kind == DS_STATE_NUM ? ds_state_get_num(b, k.num, &vb)
                                 : ds_state_get_bytes(b, k.kind, k.ptr, k.len,
                                                      &vb)) >= 0;
    if (ok && va.kind == DS_STATE_NUM)
      ok = vb.kind == DS_STATE_NUM &&
           (bits(va.num) == bits(vb.num) || (isnan(va.num) && isnan(vb.num)));
    else if (ok)
      ok = item_is(&vb, DS_STATE_ENC, va.ptr, va.len);
  }
  return ok;
}

/* A store of every kind of key and value, n keys. */
static void fill_mixed(ds_state_t *s, int n, int64_t t) {
  ds_buf_t val;
  ukey_t k;
  ref_t r;
  int i;
  ds_buf_init(&val);
  memset(&r, 0, sizeof r);
  for (i = 0; i < n; i++) {
    key_of(i % U, &k);
    if (i >= U) {
      k.kind = DS_STATE_NUM;
      k.num = -i;
    }
    random_value(&r);
    CHECK(key_put(s, &k, &r, t) >= 0);
  }
  free(r.bytes);
  ds_buf_close(&val);
}

static int count_frames(const ds_buf_t *b) {
  size_t pos = 0;
  int n = 0;
  ds_frame_t f;
  while (pos < b->len && ds_frame_header(&f, b->data + pos, b->len - pos,
                                         NULL, 0) == 0) {
    pos += f.size;
    n++;
  }
  return n;
}

static void test_snapshot_round_trip(void) {
  ds_state_t *a = ds_state_new(0), *b = ds_state_new(0), *c;
  ds_buf_t snap;
  char err[200];
  int64_t n, t;
  int slot, ok = 1;

  ds_buf_init(&snap);
  /* Empty. */
  CHECK_EQ_INT(ds_state_snapshot(a, 0, &snap), 0);
  CHECK_EQ_INT(count_frames(&snap), 1);
  CHECK_EQ_INT(ds_state_restore(b, snap.data, snap.len, err, sizeof err),
               (int64_t)snap.len);
  CHECK_EQ_INT(ds_state_count(b), 0);

  /* Every kind of key and value, over several frames. */
  fill_mixed(a, 20000, 0);
  CHECK(ds_state_put_num_num(a, 99999.5, NAN, 0) >= 0);
  CHECK(ds_state_put_num_num(a, 99998.5, -0.0, 0) >= 0);
  ds_buf_truncate(&snap, 0);
  CHECK_EQ_INT(ds_state_snapshot(a, 500, &snap), 0);
  CHECK(count_frames(&snap) > 2);
  /* Whatever follows the snapshot is not read. */
  CHECK_EQ_INT(ds_buf_append(&snap, "trailing", 8), 0);
  n = ds_state_restore(b, snap.data, snap.len, err, sizeof err);
  CHECK_EQ_INT(n, (int64_t)snap.len - 8);
  CHECK(same_contents(a, b));
  CHECK(same_contents(b, a));

  /* Into a store that is not empty. */
  CHECK_EQ_INT(ds_state_restore(b, snap.data, snap.len, err, sizeof err),
               DS_ESTATE);
  CHECK(same_contents(a, b));

  /* Into a store with a timeout: every key gets the snapshot's time. */
  c = ds_state_new(1000);
  CHECK_EQ_INT(ds_state_restore(c, snap.data, snap.len, err, sizeof err), n);
  CHECK(same_contents(a, c));
  for (slot = ds_state_next(c, -1); slot >= 0; slot = ds_state_next(c, slot))
    ok &= ds_state_time(c, slot, &t) == 0 && t == 500;
  CHECK(ok);
  ds_state_free(a);
  ds_state_free(b);
  ds_state_free(c);

  /* A store with a timeout keeps its keys' times, and expiry goes on as it
   * would have. */
  a = ds_state_new(3000);
  b = ds_state_new(3000);
  fill_mixed(a, 3000, 1000);
  CHECK(ds_state_put_num_num(a, 1, 1, 2000) >= 0);
  CHECK(ds_state_put_num_num(a, -1124.75, 2, 2000) >= 0); /* key 0, again */
  CHECK(ds_state_put_bytes_num(a, DS_STATE_STR, "late", 4, 3, 3500) >= 0);
  ds_buf_truncate(&snap, 0);
  CHECK_EQ_INT(ds_state_snapshot(a, 3500, &snap), 0);
  CHECK_EQ_INT(ds_state_restore(b, snap.data, snap.len, err, sizeof err),
               (int64_t)snap.len);
  CHECK(same_contents(a, b));
  for (slot = ds_state_next(b, -1); slot >= 0; slot = ds_state_next(b, slot)) {
    ds_state_item_t k;
    int64_t ta;
    ds_state_key(b, slot, &k);
    ok &= ds_state_time(b, slot, &t) == 0;
    ok &= ds_state_time(a, k.kind == DS_STATE_NUM
                               ? ds_state_get_num(a, k.num, NULL)
                               : ds_state_get_bytes(a, k.kind, k.ptr, k.len,
                                                    NULL),
                        &ta) == 0 &&
          t == ta;
  }
  CHECK(ok);
  {
    ds_state_item_t ka, va, kb, vb;
    int ra, rb, expired = 0;
    for (t = 3999; t <= 7000; t += 500) {
      do {
        ra = ds_state_expire(a, t, &ka, &va);
        rb = ds_state_expire(b, t, &kb, &vb);
        ok &= ra == rb;
        if (ra == 1) {
          expired++;
          ok &= ka.kind == kb.kind && va.kind == vb.kind;
        }
      } while (ra == 1 && rb == 1);
      ok &= ds_state_count(a) == ds_state_count(b);
      if (t == 3999)
        ok &= expired == 0;
      if (t == 4499)
        ok &= ds_state_count(b) == 2 + 1;
    }
    CHECK(ok);
    CHECK_EQ_INT(ds_state_count(b), 0);
    CHECK_EQ_INT(expired, 3002);
  }
  ds_state_free(a);
  ds_state_free(b);
  ds_buf_close(&snap);
}

/* Frames written by hand, for snapshots the store would never write. */
static void hand_header(ds_buf_t *b, int64_t version, int64_t keys,
                        int64_t timeout, int64_t t) {
  size_t start;
  CHECK_EQ_INT(ds_frame_begin(b, 0, &start), 0);
  ds_codec_put_array(b, 5);
  ds_codec_put_str(b, "dstream.state", 13);
  ds_codec_put_int(b, version);
  ds_codec_put_int(b, keys);
  ds_codec_put_int(b, timeout);
  ds_codec_put_int(b, t);
  CHECK_EQ_INT(ds_frame_end(b, start, 1), 0);
}

static void hand_time(ds_buf_t *b, int64_t t) {
  size_t start;
  ds_frame_begin(b, 0, &start);
  ds_codec_put_int(b, t);
  ds_frame_end(b, start, 1);
}

/* A pairs frame of number keys (with number values). */
static void hand_pairs(ds_buf_t *b, const double *keys, int n) {
  size_t start;
  int i;
  ds_frame_begin(b, DS_FRAME_PAIRS, &start);
  for (i = 0; i < n; i++) {
    ds_codec_put_number(b, keys[i]);
    ds_codec_put_int(b, i);
  }
  ds_frame_end(b, start, (size_t)n);
}

/* Restoring b fails with err, the message names `part`, and the store is
 * left empty. */
static void expect_restore_error(ds_state_t *s, const ds_buf_t *b, size_t len,
                                 int err, const char *part) {
  char msg[256];
  msg[0] = '\0';
  CHECK_EQ_INT(ds_state_restore(s, b->data, len, msg, sizeof msg), err);
  CHECK(strstr(msg, part) != NULL);
  if (strstr(msg, part) == NULL)
    fprintf(stderr, "  message: %s (expected \"%s\")\n", msg, part);
  CHECK_EQ_INT(ds_state_count(s), 0);
  CHECK_EQ_INT(ds_state_memory(s), ds_state_memory(s)); /* no crash */
}

static void test_snapshot_errors(void) {
  ds_state_t *a = ds_state_new(1000), *s = ds_state_new(1000);
  ds_buf_t snap, b;
  double k2[] = {1, 2}, k1[] = {1}, knan[] = {NAN};
  size_t len, base_memory = ds_state_memory(s);
  int ok = 1;

  ds_buf_init(&snap);
  ds_buf_init(&b);
  fill_mixed(a, 3000, 100);
  CHECK(ds_state_put_num_num(a, 0.5, 1, 200) >= 0);
  CHECK_EQ_INT(ds_state_snapshot(a, 300, &snap), 0);

  /* A flipped byte anywhere: a checksum error, nothing restored. */
  snap.data[snap.len / 2] ^= 0x10;
  expect_restore_error(s, &snap, snap.len, DS_ECHECKSUM, "CRC");
  snap.data[snap.len / 2] ^= 0x10;
  /* Every truncation fails, and leaves the store empty. */
  for (len = 0; len < snap.len; len += 1 + len / 3) {
    int64_t r = ds_state_restore(s, snap.data, len, NULL, 0);
    ok &= r == DS_ETRUNCATED && ds_state_count(s) == 0;
  }
  CHECK(ok);
  CHECK_EQ_INT(ds_state_memory(s), base_memory);
  CHECK_EQ_INT(ds_state_restore(s, snap.data, snap.len, NULL, 0),
               (int64_t)snap.len);
  ds_state_clear(s);

  /* Headers. */
  hand_header(&b, 2, 0, 0, 0);
  expect_restore_error(s, &b, b.len, DS_EVERSION, "version 2");
  ds_buf_truncate(&b, 0);
  hand_header(&b, 1, 0, 0, 0);
  b.data[16 + 4] = 'D'; /* "Dstream.state" */
  reseal(b.data);
  expect_restore_error(s, &b, b.len, DS_ECORRUPT, "not a state snapshot");
  ds_buf_truncate(&b, 0);
  hand_header(&b, 1, -1, 0, 0);
  expect_restore_error(s, &b, b.len, DS_ECORRUPT, "-1 keys");
  ds_buf_truncate(&b, 0);
  hand_pairs(&b, k1, 1);
  expect_restore_error(s, &b, b.len, DS_ECORRUPT, "not a state snapshot");

  /* More keys than the header says; fewer (the data ends). */
  ds_buf_truncate(&b, 0);
  hand_header(&b, 1, 1, 0, 0);
  hand_pairs(&b, k2, 2);
  expect_restore_error(s, &b, b.len, DS_ECORRUPT, "more keys");
  ds_buf_truncate(&b, 0);
  hand_header(&b, 1, 3, 0, 0);
  hand_pairs(&b, k2, 2);
  expect_restore_error(s, &b, b.len, DS_ETRUNCATED, "offset");

  /* A key twice, a NaN key, time going back, a frame that is neither. */
  ds_buf_truncate(&b, 0);
  hand_header(&b, 1, 2, 0, 0);
  hand_pairs(&b, k1, 1);
  hand_pairs(&b, k1, 1);
  expect_restore_error(s, &b, b.len, DS_ECORRUPT, "twice");
  ds_buf_truncate(&b, 0);
  hand_header(&b, 1, 1, 0, 0);
  hand_pairs(&b, knan, 1);
  expect_restore_error(s, &b, b.len, DS_ECORRUPT, "NaN");
  ds_buf_truncate(&b, 0);
  hand_header(&b, 1, 2, 1000, 0);
  hand_time(&b, 50);
  hand_pairs(&b, k1, 1);
  hand_time(&b, 40);
  hand_pairs(&b, k2 + 1, 1);
  expect_restore_error(s, &b, b.len, DS_ECORRUPT, "back in time");
  ds_buf_truncate(&b, 0);
  hand_header(&b, 1, 2, 1000, 100); /* pairs at the snapshot's time, 100 */
  hand_pairs(&b, k1, 1);
  hand_time(&b, 50);
  hand_pairs(&b, k2 + 1, 1);
  expect_restore_error(s, &b, b.len, DS_ECORRUPT, "back in time");
  ds_buf_truncate(&b, 0);
  hand_header(&b, 1, 1, 0, 0);
  hand_header(&b, 1, 1, 0, 0);
  expect_restore_error(s, &b, b.len, DS_ECORRUPT, "not an integer");
  {
    size_t start;
    ds_buf_truncate(&b, 0);
    hand_header(&b, 1, 1, 0, 0);
    ds_frame_begin(&b, 0, &start);
    ds_codec_put_int(&b, 1);
    ds_codec_put_int(&b, 2);
    ds_frame_end(&b, start, 2);
    expect_restore_error(s, &b, b.len, DS_ECORRUPT, "neither");
  }

  /* And a good hand-written one, times in order. */
  ds_buf_truncate(&b, 0);
  hand_header(&b, 1, 2, 1000, 0);
  hand_time(&b, 40);
  hand_pairs(&b, k1, 1);
  hand_time(&b, 50);
  hand_pairs(&b, k2 + 1, 1);
  CHECK_EQ_INT(ds_state_restore(s, b.data, b.len, NULL, 0), (int64_t)b.len);
  {
    int64_t t;
    CHECK_EQ_INT(ds_state_time(s, ds_state_get_num(s, 1, NULL), &t), 0);
    CHECK_EQ_INT(t, 40);
    CHECK_EQ_INT(ds_state_time(s, ds_state_get_num(s, 2, NULL), &t), 0);
    CHECK_EQ_INT(t, 50);
  }
  /* A store without a timeout takes the keys and ignores the times. */
  {
    ds_state_t *plain = ds_state_new(0);
    CHECK_EQ_INT(ds_state_restore(plain, b.data, b.len, NULL, 0),
                 (int64_t)b.len);
    CHECK(same_contents(s, plain));
    ds_state_free(plain);
  }
  ds_buf_close(&b);
  ds_buf_close(&snap);
  ds_state_free(a);
  ds_state_free(s);
}

/* --- timeouts ------------------------------------------------------------ */

static void test_timeouts(void) {
  ds_state_t *s = ds_state_new(3000);
  ds_state_item_t k, v;
  ds_state_stats_t st;
  int64_t t;
  int i, slot;

  /* Idle for exactly the timeout: expired in that batch, not before, once. */
  CHECK(ds_state_put_num_num(s, 1, 10, 1000) >= 0);
  CHECK_EQ_INT(ds_state_expire(s, 3999, &k, &v), 0);
  CHECK_EQ_INT(ds_state_count(s), 1);
  CHECK_EQ_INT(ds_state_expire(s, 4000, &k, &v), 1);
  CHECK(k.kind == DS_STATE_NUM && k.num == 1);
  CHECK(v.kind == DS_STATE_NUM && v.num == 10);
  CHECK_EQ_INT(ds_state_expire(s, 4000, &k, &v), 0);
  CHECK_EQ_INT(ds_state_expire(s, 9000, &k, &v), 0);
  CHECK_EQ_INT(ds_state_count(s), 0);

  /* An updated key is not expired; its time moves. */
  CHECK(ds_state_put_num_num(s, 2, 20, 4000) >= 0);
  slot = ds_state_put_num_num(s, 2, 21, 5000);
  CHECK_EQ_INT(ds_state_time(s, slot, &t), 0);
  CHECK_EQ_INT(t, 5000);
  CHECK_EQ_INT(ds_state_expire(s, 7000, &k, &v), 0);
  CHECK_EQ_INT(ds_state_set_num(s, slot, 22, 6000), 0);
  CHECK_EQ_INT(ds_state_expire(s, 8999, &k, &v), 0);
  CHECK_EQ_INT(ds_state_expire(s, 9000, &k, &v), 1);
  CHECK(k.num == 2 && v.num == 22);

  /* Many updates in one batch queue the key once. */
  for (i = 0; i < 100; i++)
    CHECK(ds_state_put_num_num(s, 3, i, 10000) >= 0);
  ds_state_stats(s, &st);
  CHECK_EQ_INT(st.queue_len, 1);
  CHECK_EQ_INT(st.markers, 1);

  /* Removed keys are not handed back, though their slot is reused in the
   * same batch; a key put again later is handed back once, at its new
   * time. */
  CHECK(ds_state_put_num_num(s, 4, 40, 10000) >= 0);
  CHECK_EQ_INT(ds_state_remove_num(s, 4), 1);
  CHECK(ds_state_put_num_num(s, 5, 50, 10000) >= 0);
  CHECK_EQ_INT(ds_state_remove_num(s, 5), 1);
  CHECK(ds_state_put_num_num(s, 6, 60, 10000) >= 0);
  CHECK_EQ_INT(ds_state_remove_num(s, 6), 1);
  CHECK(ds_state_put_num_num(s, 6, 61, 11000) >= 0);
  CHECK_EQ_INT(ds_state_expire(s, 13000, &k, &v), 1);
  CHECK(k.num == 3 && v.num == 99);
  CHECK_EQ_INT(ds_state_expire(s, 13000, &k, &v), 0);
  CHECK_EQ_INT(ds_state_expire(s, 14000, &k, &v), 1);
  CHECK(k.num == 6 && v.num == 61);
  CHECK_EQ_INT(ds_state_expire(s, 14000, &k, &v), 0);

  /* Time must not go back. */
  slot = ds_state_put_num_num(s, 7, 70, 20000);
  CHECK_EQ_INT(ds_state_put_num_num(s, 7, 71, 19999), DS_EINVAL);
  CHECK_EQ_INT(ds_state_put_num_num(s, 8, 80, 19999), DS_EINVAL);
  CHECK_EQ_INT(ds_state_set_num(s, slot, 72, 19999), DS_EINVAL);
  CHECK(num_at(s, 7) == 70);
  CHECK_EQ_INT(ds_state_count(s), 1);
  CHECK_EQ_INT(ds_state_expire(s, INT64_MIN, &k, &v), 0);

  /* Bytes keys and values are handed back as copies that outlive them. */
  CHECK(ds_state_put_bytes_enc(s, DS_STATE_STR, "a long string key", 17,
                               "\x05\x0c" "a long value", 14, 21000) >= 0);
  CHECK(ds_state_put_bytes_enc(s, DS_STATE_ENC, "\x02", 1, "\x01", 1,
                               22000) >= 0);
  CHECK_EQ_INT(ds_state_expire(s, 24500, &k, &v), 1);
  CHECK(k.num == 7 && v.num == 70);
  CHECK_EQ_INT(ds_state_expire(s, 24500, &k, &v), 1);
  CHECK(item_is(&k, DS_STATE_STR, "a long string key", 17));
  CHECK(item_is(&v, DS_STATE_ENC, "\x05\x0c" "a long value", 14));
  CHECK(ds_state_put_bytes_num(s, DS_STATE_STR, "another long key", 16, 1,
                               24500) >= 0); /* reuses the freed blob */
  CHECK(item_is(&k, DS_STATE_STR, "a long string key", 17));
  CHECK_EQ_INT(ds_state_expire(s, 24500, &k, &v), 0);
  CHECK_EQ_INT(ds_state_expire(s, 25000, &k, &v), 1);
  CHECK(item_is(&k, DS_STATE_ENC, "\x02", 1));
  CHECK(item_is(&v, DS_STATE_ENC, "\x01", 1));
  ds_state_free(s);

  /* Without a timeout nothing expires and no time is kept. */
  s = ds_state_new(0);
  slot = ds_state_put_num_num(s, 1, 1, 5);
  CHECK_EQ_INT(ds_state_put_num_num(s, 1, 1, 1), slot); /* time is ignored */
  CHECK_EQ_INT(ds_state_expire(s, INT64_MAX, &k, &v), 0);
  CHECK_EQ_INT(ds_state_time(s, slot, &t), DS_ESTATE);
  CHECK_EQ_INT(ds_state_time(s, slot + 1, &t), DS_EINVAL);
  CHECK_EQ_INT(ds_state_timeout(s), 0);
  ds_state_free(s);
}

/* Batches put 10 new keys each; with a timeout of 100 batches, from batch
 * 101 on the 10 keys of batch b - 100 expire at b. Store `big` also gets
 * 100000 keys at batch 100. Expiry must examine the same entries in both:
 * its cost follows the keys that expire, not the keys held. */
/* A touched key keeps its value and bytes and starts its idle time again. */
static void test_touch(void) {
  ds_state_t *s = ds_state_new(3000);
  ds_state_item_t k, v;
  int64_t t;
  int slot = ds_state_put_bytes_enc(s, DS_STATE_STR, "key", 3, "\5\3abc", 5,
                                    1000);
  CHECK(slot >= 0);
  CHECK_EQ_INT(ds_state_touch(s, slot, 2000), 0);
  CHECK_EQ_INT(ds_state_time(s, slot, &t), 0);
  CHECK_EQ_INT(t, 2000);
  CHECK_EQ_INT(ds_state_expire(s, 4000, &k, &v), 0);
  CHECK(ds_state_value(s, slot, &v) >= 0);
  CHECK(v.kind == DS_STATE_ENC && v.len == 5 && memcmp(v.ptr, "\5\3abc", 5) == 0);
  CHECK_EQ_INT(ds_state_expire(s, 5000, &k, &v), 1);
  CHECK(k.len == 3 && memcmp(k.ptr, "key", 3) == 0);
  CHECK_EQ_INT(ds_state_touch(s, slot, 6000), DS_EINVAL);
  CHECK_EQ_INT(ds_state_touch(s, -1, 6000), DS_EINVAL);
  ds_state_free(s);
}

static void test_timeout_cost(void) {
  ds_state_t *small = ds_state_new(100000), *big = ds_state_new(100000);
  ds_state_stats_t a, b;
  ds_state_item_t k, v;
  int64_t t;
  int batch, i, ok = 1;
  for (batch = 1; batch <= 150; batch++) {
    uint64_t small_before, big_before;
    int n_small = 0, n_big = 0;
    t = batch * 1000;
    for (i = 0; i < 10; i++) {
      ok &= ds_state_put_num_num(small, batch * 100 + i, i, t) >= 0;
      ok &= ds_state_put_num_num(big, batch * 100 + i, i, t) >= 0;
    }
    if (batch == 100) {
      for (i = 0; i < 100000; i++)
        ok &= ds_state_put_num_num(big, -1 - i, i, t) >= 0;
    }
    ds_state_stats(small, &a);
    ds_state_stats(big, &b);
    small_before = a.visited;
    big_before = b.visited;
    while (ds_state_expire(small, t, &k, &v) == 1)
      n_small++;
    while (ds_state_expire(big, t, &k, &v) == 1)
      n_big++;
    ds_state_stats(small, &a);
    ds_state_stats(big, &b);
    ok &= n_small == (batch > 100 ? 10 : 0) && n_big == n_small;
    ok &= a.visited - small_before == (uint64_t)n_small;
    ok &= b.visited - big_before == (uint64_t)n_big;
  }
  CHECK(ok);
  CHECK_EQ_INT(ds_state_count(big), 100000 + 1000);
  ds_state_free(small);
  ds_state_free(big);
}

/* Every key updated every batch: the queue is compacted, stays bounded,
 * keeps the times right, and every key still expires once. */
static void test_timeout_compaction(void) {
  ds_state_t *s = ds_state_new(50000);
  ds_state_stats_t st;
  ds_state_item_t k, v;
  char seen[10000];
  int batch, i, ok = 1, n = 0;
  for (batch = 1; batch <= 40; batch++) {
    for (i = 0; i < 10000; i++) {
      int slot = ds_state_get_num(s, i, NULL);
      if (slot < 0 || (i + batch) % 7 == 0)
        ok &= ds_state_put_num_num(s, i, batch, batch * 1000) >= 0;
      else
        ok &= ds_state_set_num(s, slot, batch, batch * 1000) == 0;
    }
    ds_state_stats(s, &st);
    ok &= st.queue_len <= 12500 + QCHUNK;
    ok &= ds_state_expire(s, batch * 1000, &k, &v) == 0;
  }
  CHECK(ok);
  CHECK(st.compactions > 10);
  for (i = 0; i < 10000; i++) {
    int64_t t;
    ok &= ds_state_time(s, ds_state_get_num(s, i, NULL), &t) == 0 &&
          t == 40000;
  }
  CHECK(ok);
  CHECK_EQ_INT(ds_state_expire(s, 89999, &k, &v), 0);
  memset(seen, 0, sizeof seen);
  while (ds_state_expire(s, 90000, &k, &v) == 1) {
    ok &= k.num >= 0 && k.num < 10000 && !seen[(int)k.num] && v.num == 40;
    seen[(int)k.num] = 1;
    n++;
  }
  CHECK(ok);
  CHECK_EQ_INT(n, 10000);
  ds_state_stats(s, &st);
  CHECK_EQ_INT(st.count, 0);
  CHECK_EQ_INT(st.queue_len, 0);
  ds_state_free(s);
}

/* The bench's churn (bench/timeouts.lua): G groups of X keys, each inserted
 * among N / G keys that stay, which are all updated again in the G batches
 * after, so the queue's front holds runs of stale entries between the keys
 * that time out (those compacted away but the last). A batch passes up to
 * 20 stale entries per expired key, yet examines at most two entries (or
 * words of live bits) per expired key. */
static void test_timeout_stale_runs(void) {
  enum { G = 25, X = 200, STAY = 4000, BLOCK = STAY + X };
  ds_state_t *s = ds_state_new(100000);
  ds_state_stats_t st;
  ds_state_item_t k, v;
  int64_t t = 0;
  uint64_t most_stale = 0; /* passed in one batch */
  int j, p, ok = 1;
  for (j = 0; j < G; j++) { /* key j * BLOCK + p: a group key if p < X */
    t += 1000;
    for (p = 0; p < BLOCK; p++)
      ok &= ds_state_put_num_num(s, j * BLOCK + p, 1, t) >= 0;
  }
  for (j = 0; j < G; j++) {
    t += 1000;
    for (p = 0; p < BLOCK; p++) {
      int slot = ds_state_get_num(s, j * BLOCK + p, NULL);
      if (p % 21 != 0)
        ok &= ds_state_set_num(s, slot, 2, t) == 0;
    }
  }
  CHECK(ok);
  CHECK_EQ_INT(ds_state_expire(s, 100999, &k, &v), 0);
  for (j = 0; j < G; j++) {
    uint64_t visited, len;
    int n = 0;
    t = (j + 1) * 1000 + 100000;
    ds_state_stats(s, &st);
    visited = st.visited;
    len = st.queue_len;
    while (ds_state_expire(s, t, &k, &v) == 1) {
      int key = (int)k.num - j * BLOCK;
      ok &= key >= 0 && key < BLOCK && key % 21 == 0 && v.num == 1;
      n++;
    }
    ds_state_stats(s, &st);
    ok &= n == X;
    ok &= st.visited - visited <= 2 * (uint64_t)X;
    if (len - st.queue_len - (uint64_t)n > most_stale)
      most_stale = len - st.queue_len - (uint64_t)n;
  }
  CHECK(ok);
  /* Some groups sat among the stale entries of all the keys that stay. */
  CHECK_EQ_INT(most_stale, STAY);
  CHECK_EQ_INT(ds_state_count(s), G * STAY);
  ds_state_free(s);
}

/* --- out of memory ------------------------------------------------------- */

/* Run op with allocation n failing, for n = 1, 2, ... until it succeeds;
 * after each failure `unchanged` must hold. Returns the attempts. */
#define OOM_LOOP(op_result, op, unchanged)                                   \
  do {                                                                       \
    long n_;                                                                 \
    for (n_ = 1; n_ < 1000; n_++) {                                          \
      ds_test_fail_after(n_);                                                \
      op_result = (op);                                                      \
      ds_test_fail_after(0);                                                 \
      if (op_result != DS_ENOMEM)                                            \
        break;                                                               \
      CHECK(unchanged);                                                      \
    }                                                                        \
    CHECK(n_ > 1);                                                           \
  } while (0)

static void test_oom(void) {
  ds_state_t *s, *r;
  ds_buf_t big, snap;
  ds_state_item_t k, v;
  int64_t res;
  int i, slot;
  char key[40];

  ds_test_fail_after(1);
  CHECK(ds_state_new(0) == NULL);
  ds_test_fail_after(0);

  ds_buf_init(&big);
  ds_buf_init(&snap);
  enc_str(&big, 'b', 5000);
  s = ds_state_new(1000);
  /* The first insert allocates the index, a page, a marker ring and a
   * queue chunk; the 13th rebuilds the index. */
  OOM_LOOP(res, ds_state_put_num_num(s, 0, 0, 0), ds_state_count(s) == 0);
  CHECK(res >= 0);
  for (i = 1; i < 12; i++)
    CHECK(ds_state_put_num_num(s, i, i, 0) >= 0);
  OOM_LOOP(res, ds_state_put_num_num(s, 12, 12, 0),
           ds_state_count(s) == 12 && ds_state_get_num(s, 12, NULL) == -1);
  CHECK(res >= 0 && num_at(s, 12) == 12);
  /* A long key and a big value: a slab, the big table, a big blob. */
  memset(key, 'k', sizeof key);
  OOM_LOOP(res, ds_state_put_bytes_enc(s, DS_STATE_STR, key, 40, big.data,
                                       (uint32_t)big.len, 10),
           ds_state_count(s) == 13 &&
               ds_state_get_bytes(s, DS_STATE_STR, key, 40, NULL) == -1);
  CHECK(res >= 0);
  slot = (int)res;
  /* Replacing a value by another big one keeps the old until it can. */
  enc_str(&big, 'c', 6000);
  OOM_LOOP(res, ds_state_set_enc(s, slot, big.data, (uint32_t)big.len, 20),
           ds_state_value(s, slot, &v) == DS_STATE_ENC && v.len == 5003);
  CHECK_EQ_INT(res, 0);
  OOM_LOOP(res, ds_state_put_num_enc(s, 3, big.data, (uint32_t)big.len, 20),
           num_at(s, 3) == 3);
  CHECK(res >= 0);
  /* The 9th batch time grows the marker ring. */
  for (i = 0; i < 5; i++)
    CHECK(ds_state_put_num_num(s, 100 + i, i, 30 + i) >= 0);
  OOM_LOOP(res, ds_state_put_num_num(s, 200, 1, 40),
           ds_state_count(s) == 19 && ds_state_get_num(s, 200, NULL) == -1);
  CHECK(res >= 0);

  /* Snapshots leave the buffer as it was. */
  CHECK_EQ_INT(ds_buf_append(&snap, "x", 1), 0);
  OOM_LOOP(res, ds_state_snapshot(s, 50, &snap), snap.len == 1);
  CHECK_EQ_INT(res, 0);
  /* Restores leave the store empty, then succeed. */
  r = ds_state_new(1000);
  OOM_LOOP(res, ds_state_restore(r, snap.data + 1, snap.len - 1, NULL, 0),
           ds_state_count(r) == 0);
  CHECK_EQ_INT(res, (int64_t)snap.len - 1);
  CHECK(same_contents(s, r));
  ds_state_free(r);

  /* Expiry copies out before it removes: keys at time 0 need no copy, the
   * long key with its big value does. */
  for (i = 0; ds_state_expire(s, 1010, &k, &v) == 1; i++)
    ;
  CHECK_EQ_INT(i, 12);
  OOM_LOOP(res, ds_state_expire(s, 1020, &k, &v), ds_state_count(s) == 8);
  CHECK_EQ_INT(res, 1);
  CHECK(item_is(&k, DS_STATE_STR, "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
                40));
  CHECK(item_is(&v, DS_STATE_ENC, big.data, big.len));
  ds_state_free(s);

  /* A page of slots fills; a chunk of the timeout queue fills. */
  s = ds_state_new(0);
  for (i = 0; i < 4096; i++)
    CHECK(ds_state_put_num_num(s, i, i, 0) >= 0);
  OOM_LOOP(res, ds_state_put_num_num(s, -1, 1, 0), ds_state_count(s) == 4096);
  CHECK(res >= 0);
  ds_state_free(s);
  s = ds_state_new(10);
  for (i = 0; i < QCHUNK; i++)
    CHECK(ds_state_put_num_num(s, i, i, 0) >= 0);
  OOM_LOOP(res, ds_state_put_num_num(s, -1, 1, 0),
           ds_state_count(s) == QCHUNK);
  CHECK(res >= 0);
  ds_state_free(s);
  ds_buf_close(&big);
  ds_buf_close(&snap);
}

/* --- bytes per key ------------------------------------------------------- */

/* The layout's promise at 200 000 keys: numbers <= 32 bytes a key with a
 * timeout, string keys of 8-16 bytes <= 64. */
static void test_memory(void) {
  ds_state_t *s = ds_state_new(60000), *p = ds_state_new(0);
  char key[20];
  double per_key;
  int i, ok = 1, n = 200000;
  size_t base = ds_state_memory(s);
  for (i = 0; i < n; i++) {
    ok &= ds_state_put_num_num(s, i, i * 0.5, 1000) >= 0;
    ok &= ds_state_put_num_num(p, i, i * 0.5, 1000) >= 0;
  }
  CHECK(ok);
  per_key = (double)(ds_state_memory(s) - base) / n;
  CHECK(per_key <= 32);
  per_key = (double)(ds_state_memory(p) - base) / n;
  CHECK(per_key <= 24);
  ds_state_free(s);
  ds_state_free(p);
  s = ds_state_new(60000);
  for (i = 0; i < n; i++) {
    uint32_t len = 8 + (uint32_t)(i % 9);
    snprintf(key, sizeof key, "%016d", i);
    ok &= ds_state_put_bytes_num(s, DS_STATE_STR, key + 16 - len, len, i,
                                 1000) >= 0;
  }
  CHECK(ok);
  /* The shorter keys are suffixes of the longer: different keys. */
  CHECK_EQ_INT(ds_state_count(s), n);
  per_key = (double)(ds_state_memory(s) - base) / n;
  CHECK(per_key <= 64);
  ds_state_free(s);
}

/* --- folding: the built-in reducers -------------------------------------- */

/* Each op on number, STR and ENC keys: absent keys inserted with v, present
 * ones combined old value first, as reducers.lua does, NaNs included. */
static void test_fold(void) {
  static const char enc_true[1] = {(char)DS_CODEC_TRUE};
  ds_state_t *s = ds_state_new(0);
  ds_state_item_t old, v;
  int slot, again;
  double nan = NAN;

  old.kind = 99;
  slot = ds_state_fold_num(s, 7, 5, DS_FOLD_SUM, 0, &old);
  CHECK(slot >= 0);
  CHECK_EQ_INT(old.kind, -1);
  again = ds_state_fold_num(s, 7, -2.5, DS_FOLD_SUM, 0, &old);
  CHECK_EQ_INT(again, slot);
  CHECK_EQ_INT(old.kind, DS_STATE_NUM);
  CHECK(old.num == 5);
  CHECK(num_at(s, 7) == 2.5);
  CHECK_EQ_INT(ds_state_fold_num(s, -0.0, 1, DS_FOLD_SUM, 0, NULL),
               ds_state_fold_num(s, 0, 1, DS_FOLD_SUM, 0, NULL));
  CHECK(num_at(s, 0) == 2);

  ds_state_fold_num(s, 1, 4, DS_FOLD_MIN, 0, NULL);
  ds_state_fold_num(s, 1, 9, DS_FOLD_MIN, 0, NULL);
  ds_state_fold_num(s, 1, -3, DS_FOLD_MIN, 0, NULL);
  CHECK(num_at(s, 1) == -3);
  ds_state_fold_num(s, 2, 4, DS_FOLD_MAX, 0, NULL);
  ds_state_fold_num(s, 2, 9, DS_FOLD_MAX, 0, NULL);
  ds_state_fold_num(s, 2, -3, DS_FOLD_MAX, 0, NULL);
  CHECK(num_at(s, 2) == 9);
  /* min(a, NaN) is a, min(NaN, b) is NaN: b < a decides. */
  ds_state_fold_num(s, 1, nan, DS_FOLD_MIN, 0, NULL);
  CHECK(num_at(s, 1) == -3);
  ds_state_fold_num(s, 3, nan, DS_FOLD_MAX, 0, NULL);
  ds_state_fold_num(s, 3, 1, DS_FOLD_MAX, 0, NULL);
  CHECK(isnan(num_at(s, 3)));

  /* STR and ENC keys, kept apart from each other and from numbers. */
  slot = ds_state_fold_bytes(s, DS_STATE_STR, "product-17", 10, 3,
                             DS_FOLD_SUM, 0, NULL);
  CHECK(slot >= 0);
  CHECK_EQ_INT(ds_state_fold_bytes(s, DS_STATE_STR, "product-17", 10, 4,
                                   DS_FOLD_SUM, 0, &old),
               slot);
  CHECK(old.num == 3);
  CHECK_EQ_INT(ds_state_get_bytes(s, DS_STATE_STR, "product-17", 10, &v),
               slot);
  CHECK(v.kind == DS_STATE_NUM && v.num == 7);
  CHECK(ds_state_fold_bytes(s, DS_STATE_ENC, enc_true, 1, 1, DS_FOLD_SUM, 0,
                            NULL) >= 0);
  CHECK(ds_state_fold_bytes(s, DS_STATE_STR, "", 0, 10, DS_FOLD_MAX, 0,
                            NULL) >= 0);
  CHECK_EQ_INT(ds_state_count(s), 8);
  CHECK_EQ_INT(ds_state_get_bytes(s, DS_STATE_ENC, enc_true, 1, &v),
               ds_state_fold_bytes(s, DS_STATE_ENC, enc_true, 1, 1,
                                   DS_FOLD_SUM, 0, NULL));
  CHECK(v.num == 1); /* read before the second fold */
  CHECK_EQ_INT(ds_state_get_bytes(s, DS_STATE_ENC, enc_true, 1, &v), 6);
  CHECK(v.num == 2);

  /* Refused, with nothing changed. */
  CHECK_EQ_INT(ds_state_fold_num(s, nan, 1, DS_FOLD_SUM, 0, NULL), DS_EINVAL);
  CHECK_EQ_INT(ds_state_fold_num(s, 7, 1, 3, 0, NULL), DS_EINVAL);
  CHECK_EQ_INT(ds_state_fold_num(s, 7, 1, -1, 0, NULL), DS_EINVAL);
  CHECK_EQ_INT(ds_state_fold_bytes(s, DS_STATE_NUM, "x", 1, 1, DS_FOLD_SUM, 0,
                                   NULL),
               DS_EINVAL);
  CHECK_EQ_INT(ds_state_fold_bytes(s, DS_STATE_ENC, "\x05", 1, 1,
                                   DS_FOLD_SUM, 0, NULL),
               DS_EINVAL);
  CHECK(ds_state_put_num_enc(s, 8, enc_true, 1, 0) >= 0);
  CHECK_EQ_INT(ds_state_fold_num(s, 8, 1, DS_FOLD_SUM, 0, &old), DS_ETYPE);
  CHECK_EQ_INT(ds_state_get_num(s, 8, &v), ds_state_get_num(s, 8, NULL));
  CHECK(v.kind == DS_STATE_ENC);
  CHECK(num_at(s, 7) == 2.5);
  CHECK_EQ_INT(ds_state_count(s), 9);
  ds_state_free(s);
}

/* A fold is an update: with a timeout it makes the key current again. */
static void test_fold_timeout(void) {
  ds_state_t *s = ds_state_new(1000);
  ds_state_item_t k, v;
  CHECK(ds_state_fold_num(s, 1, 1, DS_FOLD_SUM, 0, NULL) >= 0);
  CHECK(ds_state_fold_num(s, 2, 1, DS_FOLD_SUM, 0, NULL) >= 0);
  CHECK(ds_state_fold_num(s, 1, 1, DS_FOLD_SUM, 500, NULL) >= 0);
  CHECK_EQ_INT(ds_state_fold_num(s, 1, 1, DS_FOLD_SUM, 400, NULL), DS_EINVAL);
  CHECK_EQ_INT(ds_state_expire(s, 1000, &k, &v), 1);
  CHECK(k.num == 2 && v.num == 1);
  CHECK_EQ_INT(ds_state_expire(s, 1000, &k, &v), 0);
  CHECK_EQ_INT(ds_state_expire(s, 1500, &k, &v), 1);
  CHECK(k.num == 1 && v.num == 2);
  ds_state_free(s);
}

/* Out of memory while inserting by a fold: nothing changed. */
static void test_fold_oom(void) {
  ds_state_t *s = ds_state_new(1000);
  char key[40];
  int i, res;
  memset(key, 'k', sizeof key);
  OOM_LOOP(res, ds_state_fold_num(s, 1, 1, DS_FOLD_SUM, 0, NULL),
           ds_state_count(s) == 0);
  CHECK(res >= 0);
  for (i = 2; i < 13; i++)
    CHECK(ds_state_fold_num(s, i, i, DS_FOLD_MAX, 0, NULL) >= 0);
  OOM_LOOP(res,
           ds_state_fold_bytes(s, DS_STATE_STR, key, 40, 2, DS_FOLD_SUM, 10,
                               NULL),
           ds_state_count(s) == 12 &&
               ds_state_get_bytes(s, DS_STATE_STR, key, 40, NULL) == -1);
  CHECK(res >= 0);
  CHECK(num_at(s, 12) == 12);
  ds_state_free(s);
}

/* find_nums gives, for every key of a batch, what get_num gives: present
 * and absent keys, -0, NaN, an empty store, a batch shorter and longer than
 * the look-ahead; and each found key's value cell. */
static void test_find_nums(void) {
  ds_state_t *s = ds_state_new(0);
  double keys[1000];
  ds_state_cell_t *cells[1000];
  int32_t slots[1000];
  uint32_t i;
  ds_state_item_t it;
  ds_state_find_nums(s, keys, 0, slots, NULL);
  keys[0] = 5;
  ds_state_find_nums(s, keys, 1, slots, cells); /* empty store */
  CHECK_EQ_INT(slots[0], -1);
  CHECK(cells[0] == NULL);
  for (i = 0; i < 500; i++)
    CHECK(ds_state_put_num_num(s, (double)i * 3, i, 0) >= 0);
  CHECK(ds_state_put_num_enc(s, 3, "\x01", 1, 0) >= 0); /* true */
  for (i = 0; i < 1000; i++)
    keys[i] = (double)((i * 7919) % 1600);
  keys[10] = NAN;
  keys[11] = -0.0;
  for (uint32_t n = 1; n <= 1000; n = n * 3 + 1) {
    uint32_t found =
        ds_state_find_nums(s, keys, n, slots, n % 2 ? cells : NULL);
    for (i = 0; i < n; i++) {
      int slot = ds_state_get_num(s, keys[i], &it);
      CHECK_EQ_INT(slots[i], slot);
      found -= slot >= 0;
      if (n % 2 == 0)
        continue;
      if (slot < 0) {
        CHECK(cells[i] == NULL);
      } else if (it.kind == DS_STATE_NUM) {
        CHECK(cells[i]->half[1] < 0xfff00000u && cells[i]->num == it.num);
      } else {
        CHECK(cells[i]->half[1] >= 0xfff00000u);
      }
    }
    CHECK_EQ_INT(found, 0); /* it said how many it found */
  }
  CHECK_EQ_INT(slots[10], -1);
  CHECK(slots[11] >= 0); /* -0 is the key 0 */
  /* Writing a number into a number's cell is ds_state_set_num's change. */
  ds_state_find_nums(s, keys, 20, slots, cells);
  for (i = 0; i < 20; i++) {
    if (slots[i] >= 0 && cells[i]->half[1] < 0xfff00000u)
      cells[i]->num = keys[i] + 0.5;
  }
  for (i = 0; i < 20; i++) {
    if (slots[i] >= 0 && keys[i] != 3)
      CHECK(num_at(s, keys[i]) == keys[i] + 0.5);
  }
  ds_state_free(s);
}

/* find_strs gives, for every STR key of a batch, what get_bytes gives:
 * inline (0-6 bytes) and blob keys, present and absent, and their cells. */
static void test_find_strs(void) {
  ds_state_t *s = ds_state_new(0);
  char buf[1000][24];
  const char *keys[1000];
  uint32_t lens[1000], i;
  ds_state_cell_t *cells[1000];
  int32_t slots[1000];
  ds_state_item_t it;
  for (i = 0; i < 1000; i++) {
    lens[i] = (uint32_t)snprintf(buf[i], sizeof buf[i], "%u%.*s", i % 700,
                                 (int)(i % 13), "-------------");
    keys[i] = buf[i];
  }
  ds_state_find_strs(s, keys, lens, 3, slots, cells); /* empty store */
  CHECK_EQ_INT(slots[0], -1);
  for (i = 0; i < 1000; i += 2)
    CHECK(ds_state_put_bytes_num(s, DS_STATE_STR, keys[i], lens[i], i, 0) >= 0);
  for (uint32_t n = 1; n <= 1000; n = n * 3 + 1) {
    uint32_t found =
        ds_state_find_strs(s, keys, lens, n, slots, n % 2 ? cells : NULL);
    for (i = 0; i < n; i++) {
      int slot = ds_state_get_bytes(s, DS_STATE_STR, keys[i], lens[i], &it);
      CHECK_EQ_INT(slots[i], slot);
      found -= slot >= 0;
      if (n % 2 == 1)
        CHECK(slot < 0 ? cells[i] == NULL : cells[i]->num == it.num);
    }
    CHECK_EQ_INT(found, 0);
  }
  ds_state_free(s);
}

int main(void) {
  ds_test_begin();
  test_numbers();
  test_bytes();
  test_growth();
  test_long_cluster();
  test_churn();
  test_iteration();
  test_snapshot_round_trip();
  test_snapshot_errors();
  test_timeouts();
  test_touch();
  test_timeout_cost();
  test_timeout_compaction();
  test_timeout_stale_runs();
  test_oom();
  test_memory();
  test_fold();
  test_fold_timeout();
  test_fold_oom();
  test_find_nums();
  test_find_strs();
  return ds_test_end("test_state");
}

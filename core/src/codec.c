/* The record codec: writing and checking values and frames.
 *
 * The byte format is specified in dstream/codec.h; this file implements it.
 *
 * WRITING appends to a ds_buf_t: each writer reserves its worst case (tag,
 * 10-byte varint, body) once and then stores bytes without further checks,
 * so a short string costs one capacity comparison and one memcpy. A map is
 * written in whatever order the caller walks it and put into canonical
 * order afterwards by ds_codec_sort_map(), which indexes the entries, sorts
 * the index by key bytes, and copies the entries through the buffer's own
 * spare capacity: no second buffer, and nothing changes if it fails.
 *
 * READING trusts nothing. Every length and count is compared with the bytes
 * left before anything is touched; a count that the bytes left could not
 * hold (each value takes at least one byte) is refused before a caller
 * sizes a table by it. ds_codec_skip() is the one structural check, used by
 * ds_frame_open() and ds_codec_check(): tags, varint minimality, depth, map
 * keys. ds_codec_read() is flat - it knows no nesting - and is safe on any
 * bytes on its own; its caller gets structure guarantees from having
 * checked first.
 *
 * INVARIANTS: every function that fails leaves its buffer's bytes, its
 * cursor and its output struct as they were.
 *
 * COSTS: all linear in bytes; checking a frame is one CRC pass plus one
 * skip pass, no allocation.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dstream/alloc.h"
#include "dstream/codec.h"
#include "dstream/crc32c.h"
#include "dstream/error.h"
#include "internal.h"

#define VARINT_MAX 10
#define SORT_INLINE 16

/* --- buffers ----------------------------------------------------------- */

void ds_buf_init(ds_buf_t *b) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

void ds_buf_close(ds_buf_t *b) {
  ds_free(b->data);
  ds_buf_init(b);
}

static int buf_grow(ds_buf_t *b, size_t extra) {
  size_t need, cap;
  char *p;
  if (extra > SIZE_MAX - b->len)
    return DS_ENOMEM;
  need = b->len + extra;
  cap = b->cap < 64 ? 64 : b->cap;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  p = ds_realloc(b->data, cap);
  if (p == NULL)
    return DS_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int ds_buf_reserve(ds_buf_t *b, size_t extra) {
  if (b->cap - b->len >= extra)
    return 0;
  return buf_grow(b, extra);
}

int ds_buf_append(ds_buf_t *b, const void *p, size_t n) {
  if (ds_buf_reserve(b, n) != 0)
    return DS_ENOMEM;
  if (n > 0)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

void ds_buf_truncate(ds_buf_t *b, size_t len) {
  if (len < b->len)
    b->len = len;
}

/* --- writing values ---------------------------------------------------- */

static unsigned char *store_varint(unsigned char *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  *p++ = (unsigned char)v;
  return p;
}

static void store_le32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

static uint32_t load_le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

/* Tag plus varint: every writer but the double's. */
static int put_head(ds_buf_t *b, ds_codec_tag_t tag, uint64_t n) {
  unsigned char *p;
  if (ds_buf_reserve(b, 1 + VARINT_MAX) != 0)
    return DS_ENOMEM;
  p = (unsigned char *)b->data + b->len;
  *p++ = (unsigned char)tag;
  p = store_varint(p, n);
  b->len = (size_t)((char *)p - b->data);
  return 0;
}

int ds_codec_put_bool(ds_buf_t *b, int v) {
  if (ds_buf_reserve(b, 1) != 0)
    return DS_ENOMEM;
  b->data[b->len++] = (char)(v ? DS_CODEC_TRUE : DS_CODEC_FALSE);
  return 0;
}

int ds_codec_put_int(ds_buf_t *b, int64_t v) {
  uint64_t u = (uint64_t)v;
  return put_head(b, DS_CODEC_INT, (u << 1) ^ (0 - (u >> 63)));
}

int ds_codec_put_double(ds_buf_t *b, double v) {
  unsigned char *p;
  uint64_t u;
  int i;
  if (ds_buf_reserve(b, 9) != 0)
    return DS_ENOMEM;
  memcpy(&u, &v, sizeof u);
  p = (unsigned char *)b->data + b->len;
  p[0] = DS_CODEC_DOUBLE;
  for (i = 0; i < 8; i++)
    p[1 + i] = (unsigned char)(u >> (8 * i));
  b->len += 9;
  return 0;
}

int ds_codec_put_number(ds_buf_t *b, double v) {
  /* Both bounds are powers of two, exact as doubles; NaN fails both. */
  if (v >= -9223372036854775808.0 && v < 9223372036854775808.0) {
    int64_t i = (int64_t)v;
    if ((double)i == v && !(i == 0 && signbit(v)))
      return ds_codec_put_int(b, i);
  }
  return ds_codec_put_double(b, v);
}

int ds_codec_put_str(ds_buf_t *b, const void *s, size_t len) {
  unsigned char *p;
  if (len > SIZE_MAX - 1 - VARINT_MAX ||
      ds_buf_reserve(b, 1 + VARINT_MAX + len) != 0)
    return DS_ENOMEM;
  p = (unsigned char *)b->data + b->len;
  *p++ = DS_CODEC_STR;
  p = store_varint(p, len);
  if (len > 0)
    memcpy(p, s, len);
  b->len = (size_t)((char *)p - b->data) + len;
  return 0;
}

int ds_codec_put_array(ds_buf_t *b, size_t count) {
  return put_head(b, DS_CODEC_ARRAY, count);
}

int ds_codec_put_map(ds_buf_t *b, size_t count) {
  return put_head(b, DS_CODEC_MAP, count);
}

/* --- reading values ---------------------------------------------------- */

/* Decode a varint from at most avail bytes at p: 0 and *used bytes, or
 * DS_ETRUNCATED / DS_ECORRUPT (over 64 bits or not minimal). */
static int load_varint(const unsigned char *p, size_t avail, uint64_t *out,
                       size_t *used) {
  uint64_t v = 0;
  size_t i;
  for (i = 0; i < VARINT_MAX; i++) {
    unsigned byte;
    if (i == avail)
      return DS_ETRUNCATED;
    byte = p[i];
    if (i == VARINT_MAX - 1 && byte > 1)
      return DS_ECORRUPT;
    v |= (uint64_t)(byte & 0x7f) << (7 * i);
    if ((byte & 0x80) == 0) {
      if (byte == 0 && i > 0)
        return DS_ECORRUPT;
      *out = v;
      *used = i + 1;
      return 0;
    }
  }
  return DS_ECORRUPT;
}

static const char *tag_name(unsigned tag) {
  switch (tag) {
  case DS_CODEC_INT:
    return "integer";
  case DS_CODEC_STR:
    return "string";
  case DS_CODEC_ARRAY:
    return "array";
  case DS_CODEC_MAP:
    return "map";
  default:
    return "value";
  }
}

void ds_cursor_init(ds_cursor_t *c, const void *data, size_t len) {
  c->data = data;
  c->len = len;
  c->pos = 0;
  c->base = 0;
}

void ds_cursor_init_frame(ds_cursor_t *c, const ds_frame_t *f) {
  ds_cursor_init(c, f->payload, f->payload_len);
  c->base = DS_FRAME_HEADER_LEN;
}

int ds_codec_read(ds_cursor_t *c, ds_codec_value_t *v, char *errbuf,
                  size_t errlen) {
  size_t at = c->base + c->pos, left = c->len - c->pos, used;
  const unsigned char *p = c->data + c->pos;
  uint64_t u;
  int err;
  if (left == 0)
    return ds__error_fill(errbuf, errlen, DS_ETRUNCATED,
                          "a value was expected at offset %zu but the data ends", at);
  switch (p[0]) {
  case DS_CODEC_FALSE:
  case DS_CODEC_TRUE:
    v->tag = (ds_codec_tag_t)p[0];
    c->pos += 1;
    return 0;
  case DS_CODEC_DOUBLE:
    if (left < 9)
      return ds__error_fill(errbuf, errlen, DS_ETRUNCATED,
                            "double at offset %zu needs 8 bytes, %zu left", at, left - 1);
    u = 0;
    for (used = 0; used < 8; used++)
      u |= (uint64_t)p[1 + used] << (8 * used);
    v->tag = DS_CODEC_DOUBLE;
    memcpy(&v->u.d, &u, sizeof u);
    c->pos += 9;
    return 0;
  case DS_CODEC_INT:
  case DS_CODEC_STR:
  case DS_CODEC_ARRAY:
  case DS_CODEC_MAP:
    break;
  default:
    return ds__error_fill(errbuf, errlen, DS_ECORRUPT, "unknown tag 0x%02x at offset %zu",
                          p[0], at);
  }
  err = load_varint(p + 1, left - 1, &u, &used);
  if (err == DS_ETRUNCATED)
    return ds__error_fill(errbuf, errlen, err, "%s at offset %zu: its varint runs past "
                          "the end of the data", tag_name(p[0]), at);
  if (err != 0)
    return ds__error_fill(errbuf, errlen, err, "%s at offset %zu: varint over 64 bits "
                          "or not minimal", tag_name(p[0]), at);
  left -= 1 + used;
  switch (p[0]) {
  case DS_CODEC_INT:
    v->u.i = (int64_t)((u >> 1) ^ (0 - (u & 1)));
    break;
  case DS_CODEC_STR:
    if (u > left)
      return ds__error_fill(errbuf, errlen, DS_ETRUNCATED, "string at offset %zu of "
                            "%llu bytes runs past the end (%zu bytes left)", at,
                            (unsigned long long)u, left);
    v->u.str.ptr = (const char *)p + 1 + used;
    v->u.str.len = (size_t)u;
    c->pos += (size_t)u;
    break;
  default:
    if (u > (p[0] == DS_CODEC_MAP ? left / 2 : left))
      return ds__error_fill(errbuf, errlen, DS_ETRUNCATED, "%s at offset %zu of %llu "
                            "%s cannot fit in the %zu bytes left", tag_name(p[0]), at,
                            (unsigned long long)u,
                            p[0] == DS_CODEC_MAP ? "entries" : "elements", left);
    v->u.count = (size_t)u;
    break;
  }
  v->tag = (ds_codec_tag_t)p[0];
  c->pos += 1 + used;
  return 0;
}

/* Map keys are scalars, and never NaN (which equals nothing). */
static int check_key(ds_cursor_t *c, char *errbuf, size_t errlen) {
  ds_cursor_t peek = *c;
  ds_codec_value_t k;
  int err = ds_codec_read(&peek, &k, errbuf, errlen);
  if (err != 0)
    return err;
  if (k.tag == DS_CODEC_ARRAY || k.tag == DS_CODEC_MAP)
    return ds__error_fill(errbuf, errlen, DS_ECORRUPT, "map key at offset %zu is %s %s",
                          c->base + c->pos, k.tag == DS_CODEC_MAP ? "a" : "an",
                          tag_name(k.tag));
  if (k.tag == DS_CODEC_DOUBLE && isnan(k.u.d))
    return ds__error_fill(errbuf, errlen, DS_ECORRUPT, "map key at offset %zu is NaN",
                          c->base + c->pos);
  return 0;
}

/* Skip one value whose enclosing containers number `depth`. */
static int skip_value(ds_cursor_t *c, int depth, char *errbuf, size_t errlen) {
  size_t start = c->pos, i;
  ds_codec_value_t v;
  int err = ds_codec_read(c, &v, errbuf, errlen);
  if (err != 0)
    return err;
  if (v.tag != DS_CODEC_ARRAY && v.tag != DS_CODEC_MAP)
    return 0;
  if (depth >= DS_CODEC_MAX_DEPTH) {
    c->pos = start;
    return ds__error_fill(errbuf, errlen, DS_ECORRUPT, "%s at offset %zu is nested "
                          "deeper than %d containers", tag_name(v.tag), c->base + start,
                          DS_CODEC_MAX_DEPTH);
  }
  for (i = 0; i < v.u.count; i++) {
    if (v.tag == DS_CODEC_MAP) {
      err = check_key(c, errbuf, errlen);
      if (err == 0)
        err = skip_value(c, depth + 1, errbuf, errlen);
      if (err != 0)
        break;
    }
    err = skip_value(c, depth + 1, errbuf, errlen);
    if (err != 0)
      break;
  }
  if (err != 0)
    c->pos = start;
  return err;
}

int ds_codec_skip(ds_cursor_t *c, char *errbuf, size_t errlen) {
  return skip_value(c, 0, errbuf, errlen);
}

int ds_codec_span(ds_cursor_t *c, const char **p, size_t *len, char *errbuf,
                  size_t errlen) {
  size_t start = c->pos;
  int err = skip_value(c, 0, errbuf, errlen);
  if (err != 0)
    return err;
  *p = (const char *)c->data + start;
  *len = c->pos - start;
  return 0;
}

int ds_codec_check(const void *data, size_t len, char *errbuf, size_t errlen) {
  ds_cursor_t c;
  int err;
  ds_cursor_init(&c, data, len);
  err = skip_value(&c, 0, errbuf, errlen);
  if (err != 0)
    return err;
  if (c.pos != len)
    return ds__error_fill(errbuf, errlen, DS_ECORRUPT, "%zu byte(s) follow the value, "
                          "from offset %zu", len - c.pos, c.pos);
  return 0;
}

/* --- canonical maps ---------------------------------------------------- */

typedef struct {
  const unsigned char *key; /* set once the buffer will not move */
  size_t key_len;
  size_t off;               /* of the entry, from the first entry */
  size_t len;               /* of the entry, key and value */
} entry_t;

static int entry_cmp(const void *a, const void *b) {
  const entry_t *x = a, *y = b;
  int c = memcmp(x->key, y->key, x->key_len < y->key_len ? x->key_len
                                                          : y->key_len);
  if (c != 0)
    return c;
  return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Index the count entries from the cursor on; offsets only, as the buffer
 * may yet move. */
static int index_entries(ds_cursor_t *c, entry_t *e, size_t count) {
  size_t body = c->pos, i;
  for (i = 0; i < count; i++) {
    const char *key;
    size_t start = c->pos;
    if (ds_codec_span(c, &key, &e[i].key_len, NULL, 0) != 0 ||
        ds_codec_skip(c, NULL, 0) != 0)
      return DS_ECORRUPT;
    e[i].off = start - body;
    e[i].len = c->pos - start;
  }
  return c->pos == c->len ? 0 : DS_ECORRUPT;
}

int ds_codec_sort_map(ds_buf_t *b, size_t map_off) {
  entry_t inline_entries[SORT_INLINE], *e;
  ds_codec_value_t v;
  ds_cursor_t c;
  size_t body, body_len, i;
  unsigned char *tail;
  int err;
  if (map_off > b->len)
    return DS_ECORRUPT;
  ds_cursor_init(&c, b->data + map_off, b->len - map_off);
  if (ds_codec_read(&c, &v, NULL, 0) != 0 || v.tag != DS_CODEC_MAP)
    return DS_ECORRUPT;
  body = map_off + c.pos;
  body_len = b->len - body;
  e = inline_entries;
  if (v.u.count > SORT_INLINE) {
    e = ds_malloc(v.u.count * sizeof *e); /* count <= bytes, cannot overflow */
    if (e == NULL)
      return DS_ENOMEM;
  }
  err = index_entries(&c, e, v.u.count);
  if (err == 0 && v.u.count > 1)
    err = ds_buf_reserve(b, body_len); /* room to copy the sorted entries */
  if (err == 0 && v.u.count > 1) {
    for (i = 0; i < v.u.count; i++)
      e[i].key = (const unsigned char *)b->data + body + e[i].off;
    qsort(e, v.u.count, sizeof *e, entry_cmp);
    tail = (unsigned char *)b->data + b->len;
    for (i = 0; i < v.u.count; i++) {
      memcpy(tail, b->data + body + e[i].off, e[i].len);
      tail += e[i].len;
    }
    memcpy(b->data + body, b->data + b->len, body_len);
  }
  if (e != inline_entries)
    ds_free(e);
  return err;
}

/* --- frames ------------------------------------------------------------ */

int ds_frame_begin(ds_buf_t *b, unsigned flags, size_t *start) {
  unsigned char *p;
  if ((flags & ~(unsigned)DS_FRAME_PAIRS) != 0)
    return DS_EINVAL;
  if (ds_buf_reserve(b, DS_FRAME_HEADER_LEN) != 0)
    return DS_ENOMEM;
  p = (unsigned char *)b->data + b->len;
  memset(p, 0, DS_FRAME_HEADER_LEN);
  p[0] = 'D';
  p[1] = 'S';
  p[2] = DS_FRAME_VERSION;
  p[3] = (unsigned char)flags;
  *start = b->len;
  b->len += DS_FRAME_HEADER_LEN;
  return 0;
}

int ds_frame_end(ds_buf_t *b, size_t start, size_t count) {
  unsigned char *p = (unsigned char *)b->data + start;
  size_t payload = b->len - start - DS_FRAME_HEADER_LEN;
  uint32_t crc;
  if (count > UINT32_MAX || payload > UINT32_MAX)
    return DS_ERANGE;
  store_le32(p + 4, (uint32_t)count);
  store_le32(p + 8, (uint32_t)payload);
  crc = ds_crc32c(0, p, 12);
  crc = ds_crc32c(crc, p + DS_FRAME_HEADER_LEN, payload);
  store_le32(p + 12, crc);
  return 0;
}

int ds_frame_header(ds_frame_t *f, const void *data, size_t len, char *errbuf,
                    size_t errlen) {
  const unsigned char *p = data;
  uint64_t min_bytes;
  ds_frame_t h;
  if ((len >= 1 && p[0] != 'D') || (len >= 2 && p[1] != 'S'))
    return ds__error_fill(errbuf, errlen, DS_ECORRUPT,
                          "no frame magic \"DS\" at offset 0 (found 0x%02x%s%02x)", p[0],
                          len >= 2 ? " 0x" : "", len >= 2 ? p[1] : 0);
  if (len >= 3 && p[2] != DS_FRAME_VERSION)
    return ds__error_fill(errbuf, errlen, DS_EVERSION, "frame version %u at offset 2, "
                          "this reader knows version %d", p[2], DS_FRAME_VERSION);
  if (len >= 4 && (p[3] & ~DS_FRAME_PAIRS) != 0)
    return ds__error_fill(errbuf, errlen, DS_ECORRUPT, "unknown frame flags 0x%02x at "
                          "offset 3", p[3]);
  if (len < DS_FRAME_HEADER_LEN)
    return ds__error_fill(errbuf, errlen, DS_ETRUNCATED, "a frame header takes %d "
                          "bytes, the data has %zu", DS_FRAME_HEADER_LEN, len);
  h.version = p[2];
  h.flags = p[3];
  h.count = load_le32(p + 4);
  h.payload = NULL;
  h.payload_len = load_le32(p + 8);
  h.size = DS_FRAME_HEADER_LEN + h.payload_len;
  min_bytes = (uint64_t)h.count * (h.flags & DS_FRAME_PAIRS ? 2 : 1);
  if (min_bytes > h.payload_len)
    return ds__error_fill(errbuf, errlen, DS_ECORRUPT, "%lu records cannot fit in a "
                          "payload of %zu bytes (header offsets 4-11)",
                          (unsigned long)h.count, h.payload_len);
  *f = h;
  return 0;
}

/* Check the structure of every record of an opened frame's payload. */
static int check_records(const ds_frame_t *f, char *errbuf, size_t errlen) {
  size_t values = (size_t)f->count * (f->flags & DS_FRAME_PAIRS ? 2 : 1), i;
  ds_cursor_t c;
  ds_cursor_init_frame(&c, f);
  for (i = 0; i < values; i++) {
    /* The payload's length is checksummed: a value that runs past it is
     * malformed, not cut short. */
    if (ds_codec_skip(&c, errbuf, errlen) != 0)
      return DS_ECORRUPT;
  }
  if (c.pos != c.len)
    return ds__error_fill(errbuf, errlen, DS_ECORRUPT, "%zu byte(s) follow the last "
                          "record, from offset %zu", c.len - c.pos, c.base + c.pos);
  return 0;
}

int ds_frame_open(ds_frame_t *f, const void *data, size_t len, char *errbuf,
                  size_t errlen) {
  const unsigned char *p = data;
  uint32_t crc, stored;
  ds_frame_t h;
  int err = ds_frame_header(&h, data, len, errbuf, errlen);
  if (err != 0)
    return err;
  if (len < h.size)
    return ds__error_fill(errbuf, errlen, DS_ETRUNCATED, "the frame takes %zu bytes, "
                          "the data has %zu", h.size, len);
  crc = ds_crc32c(0, p, 12);
  crc = ds_crc32c(crc, p + DS_FRAME_HEADER_LEN, h.payload_len);
  stored = load_le32(p + 12);
  if (crc != stored)
    return ds__error_fill(errbuf, errlen, DS_ECHECKSUM, "stored CRC-32C 0x%08lx, "
                          "computed 0x%08lx", (unsigned long)stored, (unsigned long)crc);
  h.payload = (const char *)p + DS_FRAME_HEADER_LEN;
  err = check_records(&h, errbuf, errlen);
  if (err != 0)
    return err;
  *f = h;
  return 0;
}

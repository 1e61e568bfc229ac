/* State store snapshots: a store as codec frames, and back.
 *
 * The format is dstream/state.h's (a header frame, then pairs frames and,
 * for a store with a timeout, time frames). A checkpoint stores the frames
 * as they are, so a snapshot is what the WAL and the checkpoint files
 * already know how to check (CRC-32C, structure): nothing here reads bytes
 * that ds_frame_open() has not checked.
 *
 * WHY OLDEST FIRST, BY THE QUEUE: a store with a timeout writes its keys in
 * the timeout queue's order, each group under a time frame, so restoring
 * inserts them in the same order and rebuilds the same queue - every key
 * times out in the batch it would have - without storing a time per key.
 * A store without one writes its keys in slot order and no time frames.
 *
 * WHAT RESTORE GUARANTEES: the store to restore into must be empty; on any
 * error (a bad frame, a key twice, more or fewer keys than the header says,
 * time going backwards, out of memory) it is left empty and the caller's
 * buffer says what and at which offset.
 *
 * COSTS: a snapshot is one pass over the keys (stale queue entries passed
 * by one word read each); frames of about 64 KiB. A restore is one insert
 * per key.
 */
#include <string.h>

#include "dstream/codec.h"
#include "internal.h"
#include "state_internal.h"

#define SNAP_FRAME_TARGET 65536
#define SNAP_NAME "dstream.state"

/* --- snapshots ----------------------------------------------------------- */

typedef struct {
  ds_buf_t *out;
  size_t start; /* of the open pairs frame */
  size_t pairs; /* in it */
  int open;
} snap_t;

static int snap_cell(ds_buf_t *b, const ds_state_t *s, const uint64_t *cp) {
  const unsigned char *p;
  uint32_t len;
  if (cell_is_num(*cp))
    return ds_codec_put_number(b, num_of(*cp));
  p = cell_bytes(s, cp, &len);
  if (cell_user_kind(*cp) == DS_STATE_STR)
    return ds_codec_put_str(b, p, len);
  return ds_buf_append(b, p, len);
}

static int snap_close(snap_t *w) {
  if (!w->open)
    return 0;
  w->open = 0;
  return ds_frame_end(w->out, w->start, w->pairs);
}

static int snap_pair(snap_t *w, const ds_state_t *s, uint32_t slot) {
  const entry_t *e = entry_at(s, slot);
  int err;
  if (!w->open) {
    err = ds_frame_begin(w->out, DS_FRAME_PAIRS, &w->start);
    if (err != 0)
      return err;
    w->open = 1;
    w->pairs = 0;
  }
  err = snap_cell(w->out, s, &e->key);
  if (err == 0)
    err = snap_cell(w->out, s, &e->val);
  if (err != 0)
    return err;
  w->pairs++;
  if (w->out->len - w->start - DS_FRAME_HEADER_LEN >= SNAP_FRAME_TARGET)
    return snap_close(w);
  return 0;
}

/* A frame of one record: an INT, or the header array. */
static int snap_single(snap_t *w, const int64_t *header, int64_t time) {
  size_t start;
  int err = snap_close(w);
  if (err == 0)
    err = ds_frame_begin(w->out, 0, &start);
  if (err != 0)
    return err;
  if (header == NULL) {
    err = ds_codec_put_int(w->out, time);
  } else {
    int i;
    err = ds_codec_put_array(w->out, 5);
    if (err == 0)
      err = ds_codec_put_str(w->out, SNAP_NAME, strlen(SNAP_NAME));
    for (i = 0; i < 4 && err == 0; i++)
      err = ds_codec_put_int(w->out, header[i]);
  }
  return err != 0 ? err : ds_frame_end(w->out, start, 1);
}

/* Keys oldest first, under a time frame per batch time: the queue's order. */
static int snap_by_time(snap_t *w, const ds_state_t *s) {
  const qchunk_t *c = s->qhead;
  uint64_t first = s->qhead_first, r;
  uint32_t mi = 0;
  int64_t written = 0;
  int have = 0, err = 0;
  for (r = s->head_seq; r < s->tail_seq && err == 0; r++) {
    uint32_t slot;
    if (r - first == QCHUNK) {
      c = c->next;
      first += QCHUNK;
    }
    while (mi + 1 < s->mlen && mark_at(s, mi + 1)->first <= r)
      mi++;
    slot = c->slot[r - first];
    if (!ref_current(s, slot, r))
      continue;
    if (!have || mark_at(s, mi)->time != written) {
      written = mark_at(s, mi)->time;
      have = 1;
      err = snap_single(w, NULL, written);
    }
    if (err == 0)
      err = snap_pair(w, s, slot);
  }
  return err;
}

static int snap_by_slot(snap_t *w, const ds_state_t *s) {
  int slot, err = 0;
  for (slot = ds_state_next(s, -1); slot >= 0 && err == 0;
       slot = ds_state_next(s, slot))
    err = snap_pair(w, s, (uint32_t)slot);
  return err;
}

int ds_state_snapshot(const ds_state_t *s, int64_t now_ms, ds_buf_t *out) {
  int64_t header[4];
  size_t orig = out->len;
  snap_t w;
  int err;
  header[0] = DS_STATE_SNAPSHOT_VERSION;
  header[1] = s->count;
  header[2] = s->timeout;
  header[3] = now_ms;
  w.out = out;
  w.open = 0;
  err = snap_single(&w, header, 0);
  if (err == 0)
    err = s->timeout > 0 ? snap_by_time(&w, s) : snap_by_slot(&w, s);
  if (err == 0)
    err = snap_close(&w);
  if (err != 0)
    ds_buf_truncate(out, orig);
  return err;
}

/* --- restoring ----------------------------------------------------------- */

typedef struct {
  const unsigned char *data;
  size_t len;
  size_t pos;   /* of the current frame in data */
  char *errbuf;
  size_t errlen;
} reader_t;

static int read_frame(reader_t *rd, ds_frame_t *f) {
  char why[160];
  int err = ds_frame_open(f, rd->data + rd->pos, rd->len - rd->pos, why,
                          sizeof why);
  if (err != 0)
    return ds__error_fill(rd->errbuf, rd->errlen, err,
                          "state snapshot: frame at offset %zu: %s", rd->pos,
                          why);
  return 0;
}

/* Read one INT from a frame's payload. */
static int read_int(reader_t *rd, ds_cursor_t *c, int64_t *out,
                    const char *what) {
  size_t at = rd->pos + c->base + c->pos;
  ds_codec_value_t v;
  if (ds_codec_read(c, &v, NULL, 0) != 0 || v.tag != DS_CODEC_INT)
    return ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                          "state snapshot: %s at offset %zu is not an integer",
                          what, at);
  *out = v.u.i;
  return 0;
}

/* The header frame: [name, version, keys, timeout, time]. */
static int read_header(reader_t *rd, uint64_t *keys, int64_t *time) {
  ds_codec_value_t v;
  ds_cursor_t c;
  ds_frame_t f;
  int64_t version, count, timeout;
  int err = read_frame(rd, &f);
  if (err != 0)
    return err;
  ds_cursor_init_frame(&c, &f);
  if (f.flags != 0 || f.count != 1 || ds_codec_read(&c, &v, NULL, 0) != 0 ||
      v.tag != DS_CODEC_ARRAY || v.u.count != 5 ||
      ds_codec_read(&c, &v, NULL, 0) != 0 || v.tag != DS_CODEC_STR ||
      v.u.str.len != strlen(SNAP_NAME) ||
      memcmp(v.u.str.ptr, SNAP_NAME, v.u.str.len) != 0)
    return ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                          "state snapshot: the frame at offset %zu is not a "
                          "state snapshot header", rd->pos);
  err = read_int(rd, &c, &version, "the format version");
  if (err == 0 && version != DS_STATE_SNAPSHOT_VERSION)
    return ds__error_fill(rd->errbuf, rd->errlen, DS_EVERSION,
                          "state snapshot: format version %lld, this reader "
                          "knows version %d", (long long)version,
                          DS_STATE_SNAPSHOT_VERSION);
  if (err == 0)
    err = read_int(rd, &c, &count, "the key count");
  if (err == 0)
    err = read_int(rd, &c, &timeout, "the timeout");
  if (err == 0)
    err = read_int(rd, &c, time, "the snapshot time");
  if (err == 0 && (count < 0 || count > MAX_SLOTS || timeout < 0))
    err = ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                         "state snapshot: header at offset %zu gives %lld "
                         "keys and a timeout of %lld ms", rd->pos,
                         (long long)count, (long long)timeout);
  if (err != 0)
    return err;
  *keys = (uint64_t)count;
  rd->pos += f.size;
  return 0;
}

/* One key or value of a pairs frame (checked by ds_frame_open). Numbers
 * become NUM items, strings STR (keys only), anything else its bytes. */
static int read_item(reader_t *rd, ds_cursor_t *c, int is_key,
                     ds_state_item_t *it) {
  size_t at = rd->pos + c->base + c->pos;
  ds_codec_value_t v;
  ds_cursor_t one;
  const char *p;
  size_t len;
  ds_codec_span(c, &p, &len, NULL, 0);
  ds_cursor_init(&one, p, len);
  ds_codec_read(&one, &v, NULL, 0);
  if (len > UINT32_MAX)
    return ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                          "state snapshot: value at offset %zu is larger than "
                          "4 GiB", at);
  if (v.tag == DS_CODEC_INT || v.tag == DS_CODEC_DOUBLE) {
    *it = num_item(v.tag == DS_CODEC_INT ? (double)v.u.i : v.u.d);
    if (is_key && it->num != it->num)
      return ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                            "state snapshot: key at offset %zu is NaN", at);
  } else if (is_key && v.tag == DS_CODEC_STR) {
    *it = enc_item(v.u.str.ptr, (uint32_t)v.u.str.len);
    it->kind = DS_STATE_STR;
  } else {
    *it = enc_item(p, (uint32_t)len);
  }
  return 0;
}

static int read_pairs(ds_state_t *s, reader_t *rd, const ds_frame_t *f,
                      int64_t time) {
  ds_cursor_t c;
  uint32_t i;
  ds_cursor_init_frame(&c, f);
  for (i = 0; i < f->count; i++) {
    size_t at = rd->pos + c.base + c.pos;
    ds_state_item_t key, value;
    probe_t k;
    int err = read_item(rd, &c, 1, &key);
    if (err == 0)
      err = read_item(rd, &c, 0, &value);
    if (err != 0)
      return err;
    if (key.kind == DS_STATE_NUM)
      probe_num(&k, key.num);
    else
      probe_bytes(&k, key.kind, key.ptr, key.len);
    if (index_find(s, &k, NULL) >= 0)
      return ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                            "state snapshot: key at offset %zu appears twice",
                            at);
    err = ds__state_insert(s, &k, &value, time);
    if (err < 0)
      return ds__error_fill(rd->errbuf, rd->errlen, err,
                            "state snapshot: key at offset %zu: %s", at,
                            ds_strerror(err));
  }
  return 0;
}

static int64_t restore(ds_state_t *s, reader_t *rd) {
  uint64_t keys = 0, got = 0;
  int64_t time, last = INT64_MIN;
  int err = read_header(rd, &keys, &time);
  while (err == 0 && got < keys) {
    ds_frame_t f;
    err = read_frame(rd, &f);
    if (err == 0 && (f.flags & DS_FRAME_PAIRS)) {
      if (f.count > keys - got)
        return ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                              "state snapshot: frame at offset %zu holds more "
                              "keys than the header's %llu", rd->pos,
                              (unsigned long long)keys);
      err = read_pairs(s, rd, &f, time);
      got += f.count;
      last = time;
    } else if (err == 0) {
      ds_cursor_t c;
      ds_cursor_init_frame(&c, &f);
      if (f.count != 1)
        return ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                              "state snapshot: frame at offset %zu is neither "
                              "pairs nor a time", rd->pos);
      err = read_int(rd, &c, &time, "the time");
      if (err == 0 && time < last)
        return ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                              "state snapshot: time frame at offset %zu goes "
                              "back in time", rd->pos);
      last = time;
    }
    if (err == 0)
      rd->pos += f.size;
  }
  return err != 0 ? err : (int64_t)rd->pos;
}

int64_t ds_state_restore(ds_state_t *s, const void *data, size_t len,
                         char *errbuf, size_t errlen) {
  reader_t rd;
  int64_t n;
  if (s->count != 0)
    return ds__error_fill(errbuf, errlen, DS_ESTATE,
                          "state snapshot: the store to restore into holds "
                          "%lu keys", (unsigned long)s->count);
  ds_state_clear(s);
  rd.data = data;
  rd.len = len;
  rd.pos = 0;
  rd.errbuf = errbuf;
  rd.errlen = errlen;
  n = restore(s, &rd);
  if (n < 0)
    ds_state_clear(s);
  return n;
}


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
#include <stdlib.h>
#include <string.h>

#include "dstream/alloc.h"
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

static int snap_close(snap_t *w);

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

/* Open a frame of records (flags 0) or pairs unless one is open. */
static int snap_open(snap_t *w, unsigned flags) {
  int err;
  if (w->open)
    return 0;
  err = ds_frame_begin(w->out, flags, &w->start);
  if (err != 0)
    return err;
  w->open = 1;
  w->pairs = 0;
  return 0;
}

/* Count one more record in the open frame, closing it once big enough. */
static int snap_counted(snap_t *w) {
  w->pairs++;
  if (w->out->len - w->start - DS_FRAME_HEADER_LEN >= SNAP_FRAME_TARGET)
    return snap_close(w);
  return 0;
}

static int snap_pair(snap_t *w, const ds_state_t *s, uint32_t slot) {
  const entry_t *e = entry_at(s, slot);
  int err = snap_open(w, DS_FRAME_PAIRS);
  if (err == 0)
    err = snap_cell(w->out, s, &e->key);
  if (err == 0)
    err = snap_cell(w->out, s, &e->val);
  return err != 0 ? err : snap_counted(w);
}

/* A frame of one record: an INT, or a header array of name and n INTs. */
static int snap_single(snap_t *w, const char *name, const int64_t *header,
                       int n, int64_t time) {
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
    err = ds_codec_put_array(w->out, (size_t)n + 1);
    if (err == 0)
      err = ds_codec_put_str(w->out, name, strlen(name));
    for (i = 0; i < n && err == 0; i++)
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
      err = snap_single(w, NULL, NULL, 0, written);
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
  err = snap_single(&w, SNAP_NAME, header, 4, 0);
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
  const char *what; /* "snapshot" or "delta", for messages */
} reader_t;

static int read_frame(reader_t *rd, ds_frame_t *f) {
  char why[160];
  int err = ds_frame_open(f, rd->data + rd->pos, rd->len - rd->pos, why,
                          sizeof why);
  if (err != 0)
    return ds__error_fill(rd->errbuf, rd->errlen, err,
                          "state %s: frame at offset %zu: %s", rd->what, rd->pos,
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
                          "state %s: %s at offset %zu is not an integer",
                          rd->what, what, at);
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
                          "state %s: value at offset %zu is larger than "
                          "4 GiB", rd->what, at);
  if (v.tag == DS_CODEC_INT || v.tag == DS_CODEC_DOUBLE) {
    *it = num_item(v.tag == DS_CODEC_INT ? (double)v.u.i : v.u.d);
    if (is_key && it->num != it->num)
      return ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                            "state %s: key at offset %zu is NaN", rd->what,
                            at);
  } else if (is_key && v.tag == DS_CODEC_STR) {
    *it = enc_item(v.u.str.ptr, (uint32_t)v.u.str.len);
    it->kind = DS_STATE_STR;
  } else {
    *it = enc_item(p, (uint32_t)len);
  }
  return 0;
}

/* RESTORING A SNAPSHOT IN BULK: inserting a million keys one by one puts
 * each in a random place of the index, one cache (and TLB) miss per key,
 * most of a restore's time. So a snapshot's keys go to their slots first
 * (slots 0, 1, 2... of the empty store, in order, without the index),
 * each noting its hash in an array; the array is then sorted by home
 * (radix, by the hash's high 32 bits) and the index filled in that order:
 * each key goes to the end of the cluster just filled, so the index is
 * written front to back. Equal keys have equal hashes, so a key given
 * twice is found next to its twin in the sorted array. */

/* One key of the sorted array: the hash's high 32 bits, its 3-bit tag and
 * its slot (MAX_SLOTS fits 25 bits). */
static uint64_t bulk_item(uint64_t hash, uint32_t slot) {
  return (hash >> 32) << 32 | (hash & IDX_TAG_MAX) << IDX_BITS | slot;
}

/* Put a key known to be new into the next slot of a store being restored,
 * its index word left for bulk_index(); its slot or a DS_E* code. */
static int bulk_insert(ds_state_t *s, const probe_t *k,
                       const ds_state_item_t *v, int64_t now,
                       uint64_t *items) {
  int slot, err = touch_prepare(s, now);
  if (err != 0)
    return err;
  slot = slot_fill(s, k, v);
  if (slot < 0)
    return slot;
  items[slot] = bulk_item(k->hash, (uint32_t)slot);
  touch(s, (uint32_t)slot, 1, now);
  return slot;
}

/* Sort n items by their high 32 bits: three passes of 11 bits between
 * items and tmp (counts on the stack: no state shared between stores).
 * Returns which of the two holds the result. */
static uint64_t *bulk_sort(uint64_t *items, uint64_t *tmp, uint32_t n) {
  uint32_t count[1u << 11];
  uint64_t *from = items, *to = tmp, *swap;
  int shift;
  for (shift = 32; shift < 64; shift += 11) {
    uint32_t i, sum = 0;
    memset(count, 0, sizeof count);
    for (i = 0; i < n; i++)
      count[from[i] >> shift & 0x7ff]++;
    for (i = 0; i < (1u << 11); i++) {
      uint32_t c = count[i];
      count[i] = sum;
      sum += c;
    }
    for (i = 0; i < n; i++)
      to[count[from[i] >> shift & 0x7ff]++] = from[i];
    swap = from;
    from = to;
    to = swap;
  }
  return from;
}

/* Fill the index of the count keys in items (sorted), checking that no key
 * is there twice: 0 or DS_ECORRUPT. */
static int bulk_index(ds_state_t *s, reader_t *rd, const uint64_t *items,
                      uint32_t n) {
  uint32_t i, j;
  for (i = 0; i < n; i++) {
    uint64_t it = items[i];
    uint32_t slot = (uint32_t)it & IDX_MASK;
    for (j = i; j > 0 && items[j - 1] >> 32 == it >> 32; j--) {
      uint32_t other = (uint32_t)items[j - 1] & IDX_MASK;
      if (slot_hash(s, other) == slot_hash(s, slot)) {
        const uint64_t *kp = &entry_at(s, slot)->key;
        probe_t k;
        int err;
        if (cell_is_num(*kp)) {
          err = probe_num(&k, num_of(*kp));
        } else {
          uint32_t len;
          const unsigned char *p = cell_bytes(s, kp, &len);
          err = probe_bytes(&k, cell_user_kind(*kp), (const char *)p, len);
        }
        if (err == 0 && key_equal(s, &entry_at(s, other)->key, &k))
          return ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                                "state snapshot: key number %u appears twice "
                                "(first as key number %u)",
                                (other > slot ? other : slot) + 1,
                                (other > slot ? slot : other) + 1);
      }
    }
    ds__index_put(s, s->index, s->cap,
                  (it >> 32) << 32 | (it >> IDX_BITS & IDX_TAG_MAX), slot);
  }
  return 0;
}

static int read_pairs(ds_state_t *s, reader_t *rd, const ds_frame_t *f,
                      int64_t time, uint64_t *items) {
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
      err = probe_num(&k, key.num);
    else
      err = probe_bytes(&k, key.kind, key.ptr, key.len);
    if (err != 0)
      return ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                            "state snapshot: the key at offset %zu is not a "
                            "key", at);
    err = bulk_insert(s, &k, &value, time, items);
    if (err < 0)
      return ds__error_fill(rd->errbuf, rd->errlen, err,
                            "state snapshot: key at offset %zu: %s", at,
                            ds_strerror(err));
  }
  return 0;
}

static int64_t restore(ds_state_t *s, reader_t *rd) {
  uint64_t keys = 0, got = 0, *items = NULL;
  int64_t time, last = INT64_MIN;
  int err = read_header(rd, &keys, &time);
  /* Each pair takes 2 bytes at least: a header claiming more (whose CRC
   * holds: made so on purpose) allocates nothing. */
  if (err == 0 && keys > (rd->len - rd->pos) / 2)
    err = ds__error_fill(rd->errbuf, rd->errlen, DS_ETRUNCATED,
                         "state snapshot: the header gives %llu keys, the "
                         "%zu bytes from offset %zu on cannot hold them",
                         (unsigned long long)keys, rd->len - rd->pos, rd->pos);
  if (err == 0 && keys > 0) {
    items = ds_malloc((size_t)keys * 2 * sizeof *items);
    if (items == NULL || ds__index_reserve(s, (uint32_t)keys) != 0)
      err = ds__error_fill(rd->errbuf, rd->errlen, DS_ENOMEM,
                           "state snapshot: out of memory for %llu keys",
                           (unsigned long long)keys);
  }
  while (err == 0 && got < keys) {
    ds_frame_t f;
    err = read_frame(rd, &f);
    if (err == 0 && (f.flags & DS_FRAME_PAIRS)) {
      if (f.count > keys - got) {
        err = ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                             "state snapshot: frame at offset %zu holds more "
                             "keys than the header's %llu", rd->pos,
                             (unsigned long long)keys);
        break;
      }
      err = read_pairs(s, rd, &f, time, items);
      got += f.count;
      last = time;
    } else if (err == 0) {
      ds_cursor_t c;
      ds_cursor_init_frame(&c, &f);
      if (f.count != 1) {
        err = ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                             "state snapshot: frame at offset %zu is neither "
                             "pairs nor a time", rd->pos);
        break;
      }
      err = read_int(rd, &c, &time, "the time");
      if (err == 0 && time < last)
        err = ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                             "state snapshot: time frame at offset %zu goes "
                             "back in time", rd->pos);
      last = time;
    }
    if (err == 0)
      rd->pos += f.size;
  }
  if (err == 0 && keys > 0) {
    err = bulk_index(s, rd, bulk_sort(items, items + keys, (uint32_t)keys),
                     (uint32_t)keys);
  }
  ds_free(items);
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
  rd.what = "snapshot";
  n = restore(s, &rd);
  if (n < 0)
    ds_state_clear(s);
  else if (s->tracking)
    ds__track_restart(s); /* what was restored is what was checkpointed */
  return n;
}


/* --- deltas -------------------------------------------------------------- */

#define DELTA_NAME "dstream.state.delta"

typedef struct {
  int64_t time;
  uint32_t slot;
} tslot_t;

static int tslot_cmp(const void *a, const void *b) {
  const tslot_t *x = a, *y = b;
  if (x->time != y->time)
    return x->time < y->time ? -1 : 1;
  return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/* The removed keys' codec values, cut into frames of records. */
static int delta_removed(snap_t *w, const ds_state_t *s) {
  ds_cursor_t c;
  uint32_t i;
  int err = 0;
  ds_cursor_init(&c, s->removed.data, s->removed.len);
  for (i = 0; i < s->nremoved && err == 0; i++) {
    const char *p;
    size_t len;
    ds_codec_span(&c, &p, &len, NULL, 0);
    err = snap_open(w, 0);
    if (err == 0)
      err = ds_buf_append(w->out, p, len);
    if (err == 0)
      err = snap_counted(w);
  }
  return err != 0 ? err : snap_close(w);
}

/* The slots set since the record started, oldest first under time frames
 * in a store with a timeout (the order a restore must rebuild its queue
 * in), else in the order they were first set. */
static int delta_sets(snap_t *w, const ds_state_t *s, const uint32_t *live,
                      uint32_t n) {
  tslot_t *ts;
  uint32_t i;
  int64_t written = 0;
  int err = 0;
  if (s->timeout == 0) {
    for (i = 0; i < n && err == 0; i++)
      err = snap_pair(w, s, live[i]);
    return err;
  }
  ts = ds_malloc((size_t)(n > 0 ? n : 1) * sizeof *ts);
  if (ts == NULL)
    return DS_ENOMEM;
  for (i = 0; i < n; i++) {
    ts[i].slot = live[i];
    ds_state_time(s, (int)live[i], &ts[i].time);
  }
  qsort(ts, n, sizeof *ts, tslot_cmp);
  for (i = 0; i < n && err == 0; i++) {
    if (i == 0 || ts[i].time != written) {
      written = ts[i].time;
      err = snap_single(w, NULL, NULL, 0, written);
    }
    if (err == 0)
      err = snap_pair(w, s, ts[i].slot);
  }
  ds_free(ts);
  return err;
}

/* A delta of the record (see DELTA FORMAT in state.h) appended to out. */
static int delta_write(ds_state_t *s, int64_t now_ms, ds_buf_t *out) {
  int64_t header[6];
  uint32_t *live = NULL, n = 0, i;
  snap_t w;
  int err;
  if (!s->cleared) {
    live = ds_malloc((size_t)(s->dlen > 0 ? s->dlen : 1) * sizeof *live);
    if (live == NULL)
      return DS_ENOMEM;
    for (i = 0; i < s->dlen; i++) {
      if (slot_live(s, (int)s->dlist[i]))
        live[n++] = s->dlist[i];
    }
  }
  header[0] = DS_STATE_SNAPSHOT_VERSION;
  header[1] = s->cleared ? s->count : n;
  header[2] = s->cleared ? 0 : s->nremoved;
  header[3] = s->timeout;
  header[4] = now_ms;
  header[5] = s->cleared;
  w.out = out;
  w.open = 0;
  err = snap_single(&w, DELTA_NAME, header, 6, 0);
  if (err == 0 && !s->cleared)
    err = delta_removed(&w, s);
  if (err == 0 && s->cleared)
    err = s->timeout > 0 ? snap_by_time(&w, s) : snap_by_slot(&w, s);
  else if (err == 0)
    err = delta_sets(&w, s, live, n);
  if (err == 0)
    err = snap_close(&w);
  ds_free(live);
  return err;
}

int ds_state_checkpoint(ds_state_t *s, int full, int64_t now_ms,
                        const char **data, size_t *len) {
  int err;
  if (!full && !s->tracking)
    return DS_ESTATE;
  s->applied = -1;
  ds_buf_truncate(&s->ckpt, 0);
  err = full ? ds_state_snapshot(s, now_ms, &s->ckpt)
             : delta_write(s, now_ms, &s->ckpt);
  if (err != 0) {
    ds_buf_close(&s->ckpt);
    return err;
  }
  if (s->tracking)
    ds__track_restart(s);
  *data = s->ckpt.data;
  *len = s->ckpt.len;
  return 0;
}

void ds_state_checkpoint_free(ds_state_t *s) {
  ds_buf_close(&s->ckpt);
  s->applied = -1;
}

/* The delta header frame: [name, version, sets, removed, timeout, time,
 * cleared]; the name was checked by the caller. */
static int read_delta_header(reader_t *rd, int64_t *h) {
  static const char *const what[6] = {
      "the format version", "the count of keys set",
      "the count of keys removed", "the timeout", "the delta time",
      "the cleared flag"};
  ds_codec_value_t v;
  ds_cursor_t c;
  ds_frame_t f;
  int i, err = read_frame(rd, &f);
  if (err != 0)
    return err;
  ds_cursor_init_frame(&c, &f);
  if (ds_codec_read(&c, &v, NULL, 0) != 0 || v.tag != DS_CODEC_ARRAY ||
      v.u.count != 7)
    return ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                          "state delta: the header at offset %zu is not an "
                          "array of 7", rd->pos);
  ds_codec_skip(&c, NULL, 0);
  for (i = 0; i < 6 && err == 0; i++)
    err = read_int(rd, &c, &h[i], what[i]);
  if (err == 0 && h[0] != DS_STATE_SNAPSHOT_VERSION)
    return ds__error_fill(rd->errbuf, rd->errlen, DS_EVERSION,
                          "state delta: format version %lld, this reader "
                          "knows version %d", (long long)h[0],
                          DS_STATE_SNAPSHOT_VERSION);
  if (err == 0 && (h[1] < 0 || h[1] > MAX_SLOTS || h[2] < 0 ||
                   h[2] > UINT32_MAX || h[3] < 0 || h[5] < 0 || h[5] > 1))
    err = ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                         "state delta: the header at offset %zu gives %lld "
                         "keys set, %lld removed, a timeout of %lld ms and "
                         "cleared %lld", rd->pos, (long long)h[1],
                         (long long)h[2], (long long)h[3], (long long)h[5]);
  if (err == 0)
    rd->pos += f.size;
  return err;
}

/* A key or a key's value read from a delta as a probe (key) or an item. */
static int delta_key(reader_t *rd, ds_cursor_t *c, probe_t *k) {
  size_t at = rd->pos + c->base + c->pos;
  ds_state_item_t it;
  int err = read_item(rd, c, 1, &it);
  if (err != 0)
    return err;
  err = it.kind == DS_STATE_NUM ? probe_num(k, it.num)
                                : probe_bytes(k, it.kind, it.ptr, it.len);
  if (err != 0)
    return ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                          "state delta: the key at offset %zu is not a key",
                          at);
  return 0;
}

/* Note a slot whose key the delta being applied removes or inserts; out of
 * memory for the note: every slot may have changed. */
static void applied_note(ds_state_t *s, int slot) {
  int32_t v = slot;
  if (s->applied < 0)
    return;
  if (ds_buf_append(&s->ckpt, &v, sizeof v) != 0) {
    s->applied = -1;
    return;
  }
  s->applied++;
}

int ds_state_applied(const ds_state_t *s, const int32_t **slots) {
  *slots = (const int32_t *)s->ckpt.data;
  return s->applied;
}

/* Go through a delta: check it (apply 0: nothing changes), or apply it
 * (after a check passed: then only out of memory can fail). Removals come
 * first, then the keys set, as delta_write() wrote them. */
static int delta_walk(ds_state_t *s, reader_t *rd, int apply) {
  int64_t h[6], time, last;
  uint64_t got = 0;
  int err = read_delta_header(rd, h);
  if (err != 0)
    return err;
  if (apply && h[5]) {
    ds_state_clear(s);
    s->applied = -1;
  }
  time = h[4];
  last = h[5] || s->timeout == 0 ? INT64_MIN : s->last_time;
  while (got < (uint64_t)h[2]) { /* removed keys */
    ds_frame_t f;
    ds_cursor_t c;
    uint32_t i;
    if ((err = read_frame(rd, &f)) != 0)
      return err;
    if (f.flags != 0 || f.count > (uint64_t)h[2] - got)
      return ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                            "state delta: frame at offset %zu is not a frame "
                            "of the %lld keys removed", rd->pos,
                            (long long)h[2]);
    ds_cursor_init_frame(&c, &f);
    for (i = 0; i < f.count; i++) {
      probe_t k;
      uint32_t pos;
      int slot;
      if ((err = delta_key(rd, &c, &k)) != 0)
        return err;
      if (apply && (slot = index_find(s, &k, &pos)) >= 0) {
        applied_note(s, slot);
        queue_drop(s, (uint32_t)slot);
        remove_at(s, (uint32_t)slot, pos);
      }
    }
    got += f.count;
    rd->pos += f.size;
  }
  got = 0;
  while (got < (uint64_t)h[1]) { /* keys set, under time frames */
    ds_frame_t f;
    ds_cursor_t c;
    uint32_t i;
    if ((err = read_frame(rd, &f)) != 0)
      return err;
    ds_cursor_init_frame(&c, &f);
    if (!(f.flags & DS_FRAME_PAIRS)) {
      if (f.count != 1)
        return ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                              "state delta: frame at offset %zu is neither "
                              "pairs nor a time", rd->pos);
      if ((err = read_int(rd, &c, &time, "the time")) != 0)
        return err;
      rd->pos += f.size;
      continue;
    }
    if (f.count > (uint64_t)h[1] - got)
      return ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                            "state delta: frame at offset %zu holds more keys "
                            "than the header's %lld", rd->pos,
                            (long long)h[1]);
    if (s->timeout > 0 && time < last)
      return ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                            "state delta: the keys at offset %zu go back in "
                            "time (%lld after %lld)", rd->pos,
                            (long long)time, (long long)last);
    last = time;
    for (i = 0; i < f.count; i++) {
      size_t at = rd->pos + c.base + c.pos;
      ds_state_item_t value;
      probe_t k;
      if ((err = delta_key(rd, &c, &k)) != 0 ||
          (err = read_item(rd, &c, 0, &value)) != 0)
        return err;
      if (apply) {
        uint32_t before = s->count;
        if ((err = ds__state_put(s, &k, &value, time)) < 0)
          return ds__error_fill(rd->errbuf, rd->errlen, err,
                                "state delta: key at offset %zu: %s", at,
                                ds_strerror(err));
        if (s->count != before)
          applied_note(s, err);
      }
    }
    got += f.count;
    rd->pos += f.size;
  }
  return 0;
}

int ds_state_apply(ds_state_t *s, const char *data, size_t len, char *errbuf,
                   size_t errlen) {
  ds_codec_value_t v;
  ds_cursor_t c;
  ds_frame_t f;
  reader_t rd;
  int64_t n;
  int err;
  rd.data = (const unsigned char *)data;
  rd.len = len;
  rd.pos = 0;
  rd.errbuf = errbuf;
  rd.errlen = errlen;
  rd.what = "checkpoint";
  if ((err = read_frame(&rd, &f)) != 0)
    return err;
  ds_cursor_init_frame(&c, &f);
  if (f.flags != 0 || f.count != 1 || ds_codec_read(&c, &v, NULL, 0) != 0 ||
      v.tag != DS_CODEC_ARRAY || ds_codec_read(&c, &v, NULL, 0) != 0 ||
      v.tag != DS_CODEC_STR)
    return ds__error_fill(errbuf, errlen, DS_ECORRUPT,
                          "state checkpoint: the frame at offset 0 is not a "
                          "state snapshot or delta header");
  if (v.u.str.len == strlen(DELTA_NAME) &&
      memcmp(v.u.str.ptr, DELTA_NAME, v.u.str.len) == 0) {
    rd.what = "delta";
    if ((err = delta_walk(s, &rd, 0)) != 0)
      return err;
    n = (int64_t)rd.pos;
    if ((size_t)n != len)
      return ds__error_fill(errbuf, errlen, DS_ECORRUPT,
                            "state delta: %zu bytes after its end at offset "
                            "%lld", len - (size_t)n, (long long)n);
    rd.pos = 0;
    ds_buf_truncate(&s->ckpt, 0);
    s->applied = 0;
    err = delta_walk(s, &rd, 1);
    if (err != 0) {
      s->applied = -1;
      return err;
    }
    if (s->tracking)
      ds__track_restart(s);
  } else {
    s->applied = -1;
    n = ds_state_restore(s, data, len, errbuf, errlen);
    if (n < 0)
      return (int)n;
    if ((size_t)n != len) {
      ds_state_clear(s);
      return ds__error_fill(errbuf, errlen, DS_ECORRUPT,
                            "state snapshot: %zu bytes after its end at "
                            "offset %lld", len - (size_t)n, (long long)n);
    }
  }
  return 0;
}

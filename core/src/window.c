/* Window buffers: the past batches a windowed stream still needs.
 *
 * A window of length L over a parent whose batches come S_p apart (the
 * parent's slide, at least the batch interval) is evaluated at multiples of
 * its own slide and covers the parent's batches in (t - L, t]. Each batch's
 * partial result (for reduceByKeyAndWindow: that batch reduced by key) is
 * kept here as the caller's bytes - codec frames - in C memory, so that a
 * 24-hour window costs the Lua GC nothing and the parent stream need not
 * remember its own batches for a whole window.
 *
 * HOW SLOTS ARE KEPT: a ring of slots, oldest first from `head`, holding the
 * batches at consecutive times up to `newest`. A time skipped by a push is
 * an empty slot, never a missing one, so the slot of time t is found by
 * arithmetic: (newest - t) / S_p places back from the newest. The ring
 * grows by doubling up to L / S_p slots - the most a window can read - and
 * nothing but the batches' own bytes is allocated once it has grown.
 *
 * WHY A BATCH IS DROPPED ON PUSH: a push at t drops the batches at or before
 * t - L, which no window ending at t or later can read. A caller that
 * needs the batches leaving the window (an inverse reduce function) reads
 * them before it pushes the batches entering it: with an inverse, work per
 * evaluation grows with the slide, not with the window length. A caller
 * that reads the whole window at every evaluation t instead evicts up to
 * its next one, ds_window_evict(w, t + S): what that window does not read
 * goes at once (with S >= L, everything).
 *
 * INVARIANTS: held times are newest - (count - 1) * S_p .. newest, each a
 * multiple of S_p, all inside (newest - L, newest]; `bytes` is the sum of
 * their lengths; an empty batch allocates nothing. Every function either
 * succeeds or changes nothing.
 *
 * CHECKPOINTS: a checkpoint holds the batches pushed since the previous
 * one (time > since_t), with their times, and the buffer's newest time and
 * count, so that pushing them onto the buffer the previous checkpoints
 * rebuilt, and dropping what the buffer written had dropped, gives the
 * same buffer: what entered the window is written, what left it is not
 * (the restore drops it as the push and the evict did). Its cost follows
 * the batches entered, not the window's length.
 *
 * COSTS: memory L / S_p slots of 16 bytes at most, plus the bytes held;
 * push O(1) amortised plus one copy of its bytes (and O(skipped times));
 * get O(1); evict O(batches dropped).
 */
#include <string.h>

#include "dstream/alloc.h"
#include "dstream/codec.h"
#include "dstream/error.h"
#include "dstream/window.h"
#include "internal.h"

#define NOTHING_PUSHED INT64_MIN
#define MIN_RING 16

int ds_window_init(ds_window_t *w, int64_t step_ms, int64_t len_ms) {
  if (step_ms <= 0 || len_ms <= 0 || len_ms % step_ms != 0)
    return DS_EINVAL;
  memset(w, 0, sizeof(*w));
  w->step_ms = step_ms;
  w->len_ms = len_ms;
  w->max_count = (size_t)(len_ms / step_ms);
  w->newest = NOTHING_PUSHED;
  return 0;
}

static ds_window_slot_t *slot_at(const ds_window_t *w, size_t i) {
  return &w->slots[(w->head + i) % w->cap];
}

/* Free the n oldest batches. */
static void drop_oldest(ds_window_t *w, size_t n) {
  for (size_t i = 0; i < n; i++) {
    ds_window_slot_t *s = slot_at(w, 0);
    w->bytes -= s->len;
    ds_free(s->data);
    s->data = NULL;
    s->len = 0;
    w->head = (w->head + 1) % w->cap;
    w->count--;
  }
  if (w->count == 0)
    w->head = 0;
}

void ds_window_close(ds_window_t *w) {
  if (w->slots != NULL)
    drop_oldest(w, w->count);
  ds_free(w->slots);
  w->slots = NULL;
  w->cap = 0;
  w->head = 0;
  w->count = 0;
  w->bytes = 0;
  w->newest = NOTHING_PUSHED;
}

/* How many held batches are at or before t - len_ms. */
static size_t count_out_of_window(const ds_window_t *w, int64_t t) {
  int64_t oldest, edge = t - w->len_ms;
  if (w->count == 0 || edge < (oldest = w->newest - (int64_t)(w->count - 1) * w->step_ms))
    return 0;
  if (edge >= w->newest)
    return w->count;
  return (size_t)((edge - oldest) / w->step_ms) + 1;
}

/* A ring of at least `need` slots holding the same batches, oldest first at
 * index 0; the old ring is freed. DS_ENOMEM leaves w as it was. */
static int grow(ds_window_t *w, size_t need) {
  size_t cap = w->cap > 0 ? w->cap * 2 : MIN_RING;
  ds_window_slot_t *slots;
  if (cap > w->max_count)
    cap = w->max_count;
  if (cap < need)
    cap = need;
  slots = ds_malloc(cap * sizeof(*slots));
  if (slots == NULL)
    return DS_ENOMEM;
  for (size_t i = 0; i < w->count; i++)
    slots[i] = *slot_at(w, i);
  ds_free(w->slots);
  w->slots = slots;
  w->cap = cap;
  w->head = 0;
  return 0;
}

static void append(ds_window_t *w, char *data, size_t len) {
  ds_window_slot_t *s = slot_at(w, w->count);
  s->data = data;
  s->len = len;
  w->count++;
  w->bytes += len;
}

int ds_window_push(ds_window_t *w, int64_t t, const void *data, size_t len) {
  size_t gone, gap = 0, need;
  char *copy = NULL;
  if (t % w->step_ms != 0)
    return DS_EINVAL;
  if (w->newest != NOTHING_PUSHED) {
    int64_t from = w->newest + w->step_ms, edge = t - w->len_ms + w->step_ms;
    if (t <= w->newest)
      return DS_ERANGE;
    if (from < edge)
      from = edge;
    gap = (size_t)((t - from) / w->step_ms);
  }
  gone = count_out_of_window(w, t);
  need = w->count - gone + gap + 1;
  if (len > 0) {
    copy = ds_malloc(len);
    if (copy == NULL)
      return DS_ENOMEM;
    memcpy(copy, data, len);
  }
  if (need > w->cap && grow(w, need) != 0) {
    ds_free(copy);
    return DS_ENOMEM;
  }
  drop_oldest(w, gone);
  for (size_t i = 0; i < gap; i++)
    append(w, NULL, 0);
  append(w, copy, len);
  w->newest = t;
  return 0;
}

int ds_window_get(const ds_window_t *w, int64_t t, const char **data,
                  size_t *len) {
  const ds_window_slot_t *s;
  int64_t back;
  if (w->count == 0 || t > w->newest || t % w->step_ms != 0)
    return 0;
  back = (w->newest - t) / w->step_ms;
  if ((uint64_t)back >= w->count)
    return 0;
  s = slot_at(w, w->count - 1 - (size_t)back);
  *data = s->data;
  *len = s->len;
  return 1;
}

size_t ds_window_evict(ds_window_t *w, int64_t t) {
  size_t gone = count_out_of_window(w, t);
  drop_oldest(w, gone);
  return gone;
}

/* --- checkpoints --------------------------------------------------------- */

#define WINDOW_NAME "dstream.window"
#define WINDOW_VERSION 1

int ds_window_checkpoint(const ds_window_t *w, int64_t since_t, ds_buf_t *out) {
  size_t orig = out->len, start, i, n = 0, first;
  int64_t oldest = w->newest - (int64_t)(w->count > 0 ? w->count - 1 : 0) * w->step_ms;
  int err;
  /* the held batches after since_t are the newest n */
  if (w->count > 0 && since_t < w->newest)
    n = since_t < oldest ? w->count
                         : (size_t)((w->newest - since_t) / w->step_ms);
  first = w->count - n;
  err = ds_frame_begin(out, 0, &start);
  if (err == 0)
    err = ds_codec_put_array(out, 7);
  if (err == 0)
    err = ds_codec_put_str(out, WINDOW_NAME, strlen(WINDOW_NAME));
  if (err == 0)
    err = ds_codec_put_int(out, WINDOW_VERSION);
  if (err == 0)
    err = ds_codec_put_int(out, w->step_ms);
  if (err == 0)
    err = ds_codec_put_int(out, w->len_ms);
  if (err == 0)
    err = ds_codec_put_int(out, w->newest);
  if (err == 0)
    err = ds_codec_put_int(out, (int64_t)w->count);
  if (err == 0)
    err = ds_codec_put_int(out, (int64_t)n);
  if (err == 0)
    err = ds_frame_end(out, start, 1);
  for (i = first; i < w->count && err == 0; i++) {
    const ds_window_slot_t *s = slot_at(w, i);
    err = ds_frame_begin(out, 0, &start);
    if (err == 0)
      err = ds_codec_put_int(out, oldest + (int64_t)i * w->step_ms);
    if (err == 0)
      err = ds_codec_put_str(out, s->len > 0 ? s->data : "", s->len);
    if (err == 0)
      err = ds_frame_end(out, start, 2);
  }
  if (err != 0)
    ds_buf_truncate(out, orig);
  return err;
}

/* Read one INT at the cursor (a frame checked by ds_frame_open). */
static int read_int(ds_cursor_t *c, int64_t *v) {
  ds_codec_value_t x;
  if (ds_codec_read(c, &x, NULL, 0) != 0 || x.tag != DS_CODEC_INT)
    return DS_ECORRUPT;
  *v = x.u.i;
  return 0;
}

/* Go through a checkpoint: check it (apply 0), or push its batches. */
static int restore_walk(ds_window_t *w, const unsigned char *data, size_t len,
                        int apply, int64_t *h, char *errbuf, size_t errlen) {
  ds_codec_value_t v;
  ds_cursor_t c;
  ds_frame_t f;
  size_t pos = 0;
  int64_t last = w->newest, first = NOTHING_PUSHED, i;
  char why[160];
  int err = ds_frame_open(&f, data, len, why, sizeof why);
  if (err != 0)
    return ds__error_fill(errbuf, errlen, err,
                          "window checkpoint: frame at offset 0: %s", why);
  ds_cursor_init_frame(&c, &f);
  if (f.count != 1 || ds_codec_read(&c, &v, NULL, 0) != 0 ||
      v.tag != DS_CODEC_ARRAY || v.u.count != 7 ||
      ds_codec_read(&c, &v, NULL, 0) != 0 || v.tag != DS_CODEC_STR ||
      v.u.str.len != strlen(WINDOW_NAME) ||
      memcmp(v.u.str.ptr, WINDOW_NAME, v.u.str.len) != 0)
    return ds__error_fill(errbuf, errlen, DS_ECORRUPT,
                          "window checkpoint: the frame at offset 0 is not a "
                          "window checkpoint header");
  for (i = 0; i < 6; i++) {
    if (read_int(&c, &h[i]) != 0)
      return ds__error_fill(errbuf, errlen, DS_ECORRUPT,
                            "window checkpoint: the header at offset 0 holds "
                            "something else than integers");
  }
  if (h[0] != WINDOW_VERSION)
    return ds__error_fill(errbuf, errlen, DS_EVERSION,
                          "window checkpoint: format version %lld, this "
                          "reader knows version %d", (long long)h[0],
                          WINDOW_VERSION);
  if (h[1] != w->step_ms || h[2] != w->len_ms)
    return ds__error_fill(errbuf, errlen, DS_EINVAL,
                          "window checkpoint: written by a buffer of a %lld ms "
                          "window every %lld ms, restored into one of %lld "
                          "every %lld", (long long)h[2], (long long)h[1],
                          (long long)w->len_ms, (long long)w->step_ms);
  if (h[4] < 0 || h[5] < 0 || h[5] > h[4] || (uint64_t)h[4] > w->max_count)
    return ds__error_fill(errbuf, errlen, DS_ECORRUPT,
                          "window checkpoint: the header at offset 0 says %lld "
                          "batches held and %lld written", (long long)h[4],
                          (long long)h[5]);
  if (w->newest != NOTHING_PUSHED && h[3] < w->newest)
    return ds__error_fill(errbuf, errlen, DS_EINVAL,
                          "window checkpoint: written at newest batch %lld, "
                          "older than the buffer's newest (%lld)",
                          (long long)h[3], (long long)w->newest);
  pos = f.size;
  for (i = 0; i < h[5]; i++) {
    int64_t t;
    err = ds_frame_open(&f, data + pos, len - pos, why, sizeof why);
    if (err != 0)
      return ds__error_fill(errbuf, errlen, err,
                            "window checkpoint: frame at offset %zu: %s", pos,
                            why);
    ds_cursor_init_frame(&c, &f);
    if (f.count != 2 || read_int(&c, &t) != 0 ||
        ds_codec_read(&c, &v, NULL, 0) != 0 || v.tag != DS_CODEC_STR)
      return ds__error_fill(errbuf, errlen, DS_ECORRUPT,
                            "window checkpoint: the frame at offset %zu is not "
                            "a batch's time and bytes", pos);
    if (t % w->step_ms != 0 || (last != NOTHING_PUSHED && t <= last) ||
        t > h[3])
      return ds__error_fill(errbuf, errlen, DS_EINVAL,
                            "window checkpoint: the batch at offset %zu, time "
                            "%lld, does not follow the newest held (%lld)",
                            pos, (long long)t, (long long)last);
    if (apply && (err = ds_window_push(w, t, v.u.str.ptr, v.u.str.len)) != 0)
      return ds__error_fill(errbuf, errlen, err,
                            "window checkpoint: the batch at offset %zu: %s",
                            pos, ds_strerror(err));
    if (first == NOTHING_PUSHED)
      first = t;
    last = t;
    pos += f.size;
  }
  if (pos != len)
    return ds__error_fill(errbuf, errlen, DS_ECORRUPT,
                          "window checkpoint: %zu bytes after its end at "
                          "offset %zu", len - pos, pos);
  if (h[4] > 0) {
    /* After the pushes, the buffer holds from its oldest (or the first
     * pushed) to the newest, within the window: at least what was held. */
    int64_t from = w->count > 0 ? w->newest - (int64_t)(w->count - 1) * w->step_ms
                                : first;
    if (from < h[3] - w->len_ms + w->step_ms)
      from = h[3] - w->len_ms + w->step_ms;
    if (last != h[3] || last == NOTHING_PUSHED ||
        (h[3] - from) / w->step_ms + 1 < h[4])
      return ds__error_fill(errbuf, errlen, DS_EINVAL,
                            "window checkpoint: the buffer written held %lld "
                            "batches up to %lld, this one would hold fewer: "
                            "the checkpoints before it were not restored",
                            (long long)h[4], (long long)h[3]);
  }
  return 0;
}

int ds_window_restore(ds_window_t *w, const void *data, size_t len,
                      char *errbuf, size_t errlen) {
  int64_t h[6];
  int err = restore_walk(w, data, len, 0, h, errbuf, errlen);
  if (err == 0)
    err = restore_walk(w, data, len, 1, h, errbuf, errlen);
  if (err != 0)
    return err;
  /* Drop what the buffer written had dropped (by a push or an evict). */
  if (h[4] == 0) {
    if (w->slots != NULL)
      drop_oldest(w, w->count);
    w->newest = h[3];
  } else if (w->count > (size_t)h[4]) {
    drop_oldest(w, w->count - (size_t)h[4]);
  }
  return 0;
}

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
 * COSTS: memory L / S_p slots of 16 bytes at most, plus the bytes held;
 * push O(1) amortised plus one copy of its bytes (and O(skipped times));
 * get O(1); evict O(batches dropped).
 */
#include <string.h>

#include "dstream/alloc.h"
#include "dstream/error.h"
#include "dstream/window.h"

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

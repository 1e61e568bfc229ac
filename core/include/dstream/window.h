/* Window buffers: the past batches of one windowed stream, in codec form.
 *
 * A buffer of length len_ms over batches step_ms apart holds the bytes of
 * the batches at consecutive times in (newest - len_ms, newest]: what every
 * window ending at `newest` or later may still read. The bytes are opaque
 * here; the Lua side stores codec frames of each batch's partial result.
 * See core/src/window.c for how the slots are kept and what they cost.
 */
#ifndef DSTREAM_WINDOW_H
#define DSTREAM_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include "dstream/codec.h"

/* One batch's bytes; data is NULL for an empty batch. */
typedef struct {
  char *data; /* owned */
  size_t len;
} ds_window_slot_t;

typedef struct {
  ds_window_slot_t *slots; /* owned ring of cap slots; NULL until first push */
  size_t cap;
  size_t head;             /* ring index of the oldest batch held */
  size_t count;            /* batches held (empty ones included) */
  size_t max_count;        /* len_ms / step_ms: the most ever held */
  int64_t step_ms;         /* time between two batches */
  int64_t len_ms;          /* window length */
  int64_t newest;          /* time of the newest batch (when count > 0) */
  size_t bytes;            /* sum of the held batches' lengths */
} ds_window_t;

/* An empty buffer; allocates nothing. DS_EINVAL unless step_ms > 0 and
 * len_ms is a positive multiple of it. */
int ds_window_init(ds_window_t *w, int64_t step_ms, int64_t len_ms);
/* Free every batch held and the ring; w is empty after, ready for reuse. */
void ds_window_close(ds_window_t *w);
/* Add the batch at time t, copying len bytes of data (len 0: an empty
 * batch, nothing allocated). Batches at or before t - len_ms are dropped
 * first; times skipped between the newest batch and t that are still inside
 * the window become empty batches. 0, or DS_EINVAL (t not a multiple of
 * step_ms), DS_ERANGE (t not after the newest batch), DS_ENOMEM; on error
 * nothing changes. */
int ds_window_push(ds_window_t *w, int64_t t, const void *data, size_t len);
/* 1 and the bytes of the batch at time t (borrowed until that batch is
 * dropped), or 0 when no batch at t is held. An empty batch gives len 0. */
int ds_window_get(const ds_window_t *w, int64_t t, const char **data,
                  size_t *len);
/* Drop every batch no window ending at t or later reads (times at or
 * before t - len_ms); returns how many were dropped. */
size_t ds_window_evict(ds_window_t *w, int64_t t);

/* CHECKPOINT FORMAT: codec frames (codec.h), each of one or two records:
 *   1. a header frame of one record, the array
 *        ["dstream.window", 1, <step_ms>, <len_ms>, <newest>, <held>, <n>]
 *      (format name and version, the buffer's durations, the time of its
 *      newest batch (the least int64 when nothing was ever pushed), how
 *      many batches it holds, how many batches follow);
 *   2. n frames of two records: a batch's time (INT) and its bytes (STR,
 *      empty for an empty batch), times increasing.
 * Append to out the batches held with time > since_t (INT64_MIN: all).
 * 0, or DS_ENOMEM / DS_ERANGE (a batch over 4 GiB) with out as it was. */
int ds_window_checkpoint(const ds_window_t *w, int64_t since_t, ds_buf_t *out);
/* Apply len bytes, exactly one checkpoint, onto w: push its batches (they
 * must come after the newest held) and drop what the buffer written had
 * dropped, so w holds what it held, if w held what it held at since_t.
 * 0, or DS_ECORRUPT, DS_ECHECKSUM, DS_ETRUNCATED, DS_EVERSION, DS_EINVAL
 * (other durations, batches not after the newest held), with w unchanged
 * and errbuf (may be NULL) saying what and at which byte offset; DS_ENOMEM
 * may leave some batches pushed. */
int ds_window_restore(ds_window_t *w, const void *data, size_t len,
                      char *errbuf, size_t errlen);

#endif

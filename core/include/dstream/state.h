/* Keyed state stores: the C API beyond the per-record surface.
 *
 * A store (core/src/state*.c) holds the state of mapWithState and
 * updateStateByKey off the Lua heap. Its per-record functions - lookups,
 * puts, removals, iteration, expiry - are declared in dstream/ffi.h, which
 * this header includes, together with the meaning of keys, values, slots,
 * times and borrowed bytes. Declared here: what the driver and the
 * checkpoint code call per batch or per checkpoint.
 *
 * SNAPSHOT FORMAT: ds_state_snapshot() appends codec frames (codec.h) to a
 * buffer; a checkpoint stores them as they are.
 *
 *   1. A header frame (flags 0) of one record, the array
 *        ["dstream.state", 1, <keys>, <timeout_ms>, <snapshot time ms>]
 *      (format name, format version, number of keys that follow, the
 *      store's timeout, 0 for none, and the batch time of the snapshot).
 *   2. Then, until <keys> pairs have been given, frames of two kinds:
 *      - a pairs frame (DS_FRAME_PAIRS): key, value, key, value, ... at
 *        most about 64 KiB of payload each, at least one pair;
 *      - a time frame (flags 0) of one INT record: the last-update time of
 *        the keys in the pairs frames after it, up to the next time frame.
 *        Times never decrease from one time frame to the next.
 *   A key is written as the codec value it stands for: a number as INT or
 *   DOUBLE (ds_codec_put_number), a STR key as a STR, an ENC key as its
 *   bytes. A value likewise: a number, or its ENC bytes.
 *
 * Stores with a timeout write their keys oldest first, each group under a
 * time frame; stores without one write no time frames, and a store with a
 * timeout restoring such a snapshot gives every key the snapshot's time.
 * Reading checks every frame (CRC, structure) and that exactly <keys>
 * distinct keys follow the header.
 *
 * DELTA FORMAT: ds_state_checkpoint() without `full` writes the changes
 * since the previous checkpoint (state_track.c records them) in the same
 * frames:
 *
 *   1. A header frame (flags 0) of one record, the array
 *        ["dstream.state.delta", 1, <set>, <removed>, <timeout_ms>,
 *         <delta time ms>, <cleared>]
 *      (<set> keys set, <removed> keys removed, <cleared> 1 when the store
 *      was emptied since: the reader empties it first and <set> is then
 *      every key, <removed> 0).
 *   2. Frames (flags 0) of records, each a key removed (written as above),
 *      until <removed> keys have been given; a key may appear twice.
 *   3. Pairs and time frames as in a snapshot, until <set> pairs have been
 *      given: each key's value and, in a store with a timeout, its time.
 *
 * Applying a delta removes the keys removed (those absent are skipped),
 * then puts the keys set at their times; so the store ends as the one
 * written was at the delta's time, when it held what the one written held
 * at the previous checkpoint. A key removed and put again is in both lists.
 */
#ifndef DSTREAM_STATE_H
#define DSTREAM_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "dstream/codec.h"
#include "dstream/ffi.h"

#define DS_STATE_SNAPSHOT_VERSION 1

/* What a store holds and what its timeout work has cost so far. */
typedef struct {
  uint32_t count;       /* live keys */
  uint32_t slots;       /* slots ever handed out, live or free */
  uint32_t index_cap;   /* positions in the hash index */
  uint64_t queue_len;   /* entries in the timeout queue, current or stale */
  uint32_t markers;     /* distinct batch times in the timeout queue */
  size_t memory;        /* as ds_state_memory() */
  uint64_t visited;     /* queue entries ds_state_expire() has examined */
  uint64_t compactions; /* times the timeout queue was compacted */
} ds_state_stats_t;

/* Remove every key and free everything but the store itself. */
void ds_state_clear(ds_state_t *s);
/* The timeout the store was made with (ms, 0 for none). */
int64_t ds_state_timeout(const ds_state_t *s);
/* Last-update time of a live slot into *time_ms: 0, or DS_EINVAL (not a
 * live slot) / DS_ESTATE (the store has no timeout, so keeps no times). */
int ds_state_time(const ds_state_t *s, int slot, int64_t *time_ms);
/* Fill *st. */
void ds_state_stats(const ds_state_t *s, ds_state_stats_t *st);

/* Append a snapshot of every key, taken at batch time now_ms, to out (see
 * SNAPSHOT FORMAT). 0, or DS_ENOMEM with out as it was. */
int ds_state_snapshot(const ds_state_t *s, int64_t now_ms, ds_buf_t *out);
/* Load the snapshot at the start of data (len bytes, which may go on past
 * it) into s, which must be empty (DS_ESTATE otherwise). Returns the bytes
 * the snapshot took, or DS_ETRUNCATED, DS_ECORRUPT, DS_ECHECKSUM,
 * DS_EVERSION, DS_ENOMEM with s left empty; errbuf (may be NULL) gets what
 * went wrong and at which byte offset of data. */
int64_t ds_state_restore(ds_state_t *s, const void *data, size_t len,
                         char *errbuf, size_t errlen);

#endif

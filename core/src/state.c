/* Keyed state stores: millions of keys off the Lua heap, about 30 bytes each.
 *
 * mapWithState and updateStateByKey keep one value per key across batches.
 * Kept in Lua tables, 2 000 000 keys cost the GC a traversal of every one of
 * them at every cycle, and 25-48 bytes each (80 with 8-16 byte string keys).
 * Kept here they cost the GC nothing, and at 2 000 000 keys (measured by
 * bench/state_mem.c) a numeric key with a numeric state costs 22 bytes, 30
 * to 31 with a timeout; a string key of 8-16 bytes 39, 47 to 48 with a
 * timeout. Lua reaches a key through one FFI call that the JIT compiles to a
 * direct call (ffi.h).
 *
 * THE PARTS, each in a file of its own whose opening comment says what it
 * guarantees and costs (state_internal.h says what they share and why the
 * per-record parts of each are static inline there):
 *   state_slab.c      cells, entry pages of stable slots, blob slabs
 *   state_index.c     the Robin Hood index from a key to its slot
 *   state_queue.c     the timeout queue, its live bits, expiry
 *   state_snapshot.c  snapshot and restore
 * This file is the store's API (dstream/ffi.h, dstream/state.h) made of
 * them: lifecycle, lookups, puts, removals, folds.
 *
 * INVARIANTS: every live key of a store with a timeout has exactly one
 * current queue entry, and sequence numbers in the queue span less than 2^32
 * (at most 1.25 * count + 4094), so 32 bits identify them. A fallible call
 * reserves everything it may need (index growth, a page, a marker, a queue
 * chunk, blobs) before it changes anything: on DS_ENOMEM the store holds
 * what it held. Borrowed bytes stay where they are until the next change.
 *
 * COSTS: a lookup hashes the key (numbers: two multiplies) and reads
 * typically one index word and one entry; a put adds, with a timeout, one
 * sequence number and at most one queue entry; a removal, the index words
 * of the rest of the cluster (mostly in the same cache line). Memory is 16
 * bytes per slot, 4 more with a timeout, 5-7.5 for the index, 4.2-5.3 for
 * the timeout queue and its live bits, plus blobs. A lookup of a key kept
 * in a blob costs three dependent cache misses (index word, entry, blob)
 * where a Lua table pays two: in random order over millions of such keys
 * it is the slower of the two, unless the batch lookups
 * (ds_state_find_nums, ds_state_find_strs) overlap the misses of a batch's
 * keys. Hashing uses a fixed seed, so iteration order is reproducible and
 * keys chosen to collide can slow a store down (not corrupt it).
 */
#include <string.h>

#include "dstream/alloc.h"
#include "dstream/codec.h"
#include "dstream/error.h"
#include "dstream/state.h"
#include "state_internal.h"

/* --- lifecycle ----------------------------------------------------------- */

ds_state_t *ds_state_new(int64_t timeout_ms) {
  ds_state_t *s;
  if (timeout_ms < 0)
    return NULL;
  s = ds_calloc(1, sizeof *s);
  if (s == NULL)
    return NULL;
  s->timeout = timeout_ms;
  s->last_time = INT64_MIN;
  s->memory = sizeof *s;
  ds_buf_init(&s->scratch);
  ds_buf_init(&s->removed);
  ds_buf_init(&s->ckpt);
  s->applied = -1;
  return s;
}

/* Free what the store holds, leaving fields to be reset. */
static void release_all(ds_state_t *s) {
  ds__slab_release(s);
  ds__state_dealloc(s, s->index, (size_t)s->cap * sizeof *s->index);
  ds__queue_release(s);
  ds_buf_close(&s->scratch);
  ds__state_dealloc(s, s->dbits, (size_t)s->dwords_cap * sizeof *s->dbits);
  ds__state_dealloc(s, s->dlist, (size_t)s->dcap * sizeof *s->dlist);
  ds_buf_close(&s->removed);
  ds_buf_close(&s->ckpt);
}

void ds_state_clear(ds_state_t *s) {
  ds_state_t empty;
  release_all(s);
  memset(&empty, 0, sizeof empty);
  /* A tracking store goes on tracking: the next delta starts from empty. */
  empty.tracking = s->tracking;
  empty.cleared = s->tracking;
  empty.timeout = s->timeout;
  empty.last_time = INT64_MIN;
  empty.memory = s->memory; /* the struct itself */
  empty.visited = s->visited;
  empty.compactions = s->compactions;
  ds_buf_init(&empty.scratch);
  ds_buf_init(&empty.removed);
  ds_buf_init(&empty.ckpt);
  empty.applied = -1;
  *s = empty;
}

void ds_state_free(ds_state_t *s) {
  if (s == NULL)
    return;
  ds_state_clear(s);
  ds_free(s);
}

uint32_t ds_state_count(const ds_state_t *s) {
  return s->count;
}

size_t ds_state_memory(const ds_state_t *s) {
  return s->memory + s->scratch.cap + s->removed.cap + s->ckpt.cap;
}

int64_t ds_state_timeout(const ds_state_t *s) {
  return s->timeout;
}

void ds_state_stats(const ds_state_t *s, ds_state_stats_t *st) {
  st->count = s->count;
  st->slots = s->used;
  st->index_cap = s->cap;
  st->queue_len = s->tail_seq - s->head_seq;
  st->markers = s->mlen;
  st->memory = ds_state_memory(s);
  st->visited = s->visited;
  st->compactions = s->compactions;
}

/* --- reading ------------------------------------------------------------- */

static int get(const ds_state_t *s, const probe_t *k, ds_state_item_t *value) {
  int slot = index_find(s, k, NULL);
  if (slot >= 0 && value != NULL)
    item_of(s, &entry_at(s, (uint32_t)slot)->val, value);
  return slot;
}

int ds_state_get_num(const ds_state_t *s, double key, ds_state_item_t *value) {
  probe_t k;
  if (probe_num(&k, key) != 0)
    return -1;
  return get(s, &k, value);
}

/* Look up n keys at once. One lookup is two dependent cache misses (the
 * index word at the key's home, then its entry), three for a key kept in a
 * blob (then its bytes); looking ahead, the index words of keys FIND_AHEAD
 * further on, the entries of keys FIND_AHEAD / 2 further on and the blobs
 * of keys FIND_AHEAD / 4 further on are asked of the cache while the
 * current key is looked up, so the misses of a batch overlap instead of
 * adding up. The entry prefetched is the one of the first word at the
 * key's home: the key's own, but in a cluster. Hashes are kept in a ring
 * from the first stage on, so each key is hashed once. */
#define FIND_AHEAD 16
#define FIND_RING 32 /* a power of two above FIND_AHEAD */

/* The entry of the word at hash's home, or NULL for an empty word. */
static inline entry_t *home_entry(const ds_state_t *s, uint64_t hash) {
  uint32_t w = s->index[idx_home(hash, s->cap)];
  return w != 0 ? entry_at(s, (w & IDX_MASK) - 1) : NULL;
}

/* Slot i of a batch's answer; 1 if present. */
static inline uint32_t find_out(const ds_state_t *s, int slot, uint32_t i,
                                int32_t *slots, ds_state_cell_t **cells) {
  slots[i] = slot;
  if (cells != NULL)
    cells[i] = slot >= 0 ? (ds_state_cell_t *)&entry_at(s, (uint32_t)slot)->val
                       : NULL;
  return slot >= 0;
}

uint32_t ds_state_find_nums(const ds_state_t *s, const double *keys,
                            uint32_t n, int32_t *slots, ds_state_cell_t **cells) {
  probe_t k;
  uint32_t i, found = 0;
  for (i = 0; i < n; i++) {
    if (s->cap > 0 && i + FIND_AHEAD < n &&
        probe_num(&k, keys[i + FIND_AHEAD]) == 0)
      __builtin_prefetch(&s->index[idx_home(k.hash, s->cap)]);
    if (s->cap > 0 && i + FIND_AHEAD / 2 < n &&
        probe_num(&k, keys[i + FIND_AHEAD / 2]) == 0) {
      entry_t *e = home_entry(s, k.hash);
      if (e != NULL)
        __builtin_prefetch(e);
    }
    found += find_out(s, probe_num(&k, keys[i]) == 0 ? index_find(s, &k, NULL)
                                                      : -1,
                      i, slots, cells);
  }
  return found;
}

uint32_t ds_state_find_strs(const ds_state_t *s, const char *const *keys,
                            const uint32_t *lens, uint32_t n, int32_t *slots,
                            ds_state_cell_t **cells) {
  uint64_t ring[FIND_RING];
  probe_t k;
  uint32_t i, j, found = 0;
  if (s->cap == 0) {
    for (i = 0; i < n; i++)
      find_out(s, -1, i, slots, cells);
    return 0;
  }
  for (j = 0; j < FIND_AHEAD && j < n; j++)
    ring[j] = hash_bytes(DS_STATE_STR, (const unsigned char *)keys[j], lens[j]);
  for (i = 0; i < n; i++) {
    if ((j = i + FIND_AHEAD) < n) {
      uint64_t h = hash_bytes(DS_STATE_STR, (const unsigned char *)keys[j],
                              lens[j]);
      ring[j & (FIND_RING - 1)] = h;
      __builtin_prefetch(&s->index[idx_home(h, s->cap)]);
    }
    if ((j = i + FIND_AHEAD / 2) < n) {
      entry_t *e = home_entry(s, ring[j & (FIND_RING - 1)]);
      if (e != NULL)
        __builtin_prefetch(e);
    }
    if ((j = i + FIND_AHEAD / 4) < n) {
      entry_t *e = home_entry(s, ring[j & (FIND_RING - 1)]);
      if (e != NULL && !cell_is_num(e->key) &&
          cell_kind(e->key) == KIND_STR_REF)
        __builtin_prefetch(blob_at(s, e->key & PAYLOAD_MASK));
    }
    probe_fill(&k, DS_STATE_STR, keys[i], lens[i], ring[i & (FIND_RING - 1)]);
    found += find_out(s, index_find(s, &k, NULL), i, slots, cells);
  }
  return found;
}

int ds_state_get_bytes(const ds_state_t *s, int kind, const char *key,
                       uint32_t len, ds_state_item_t *value) {
  probe_t k;
  if (probe_bytes(&k, kind, key, len) != 0)
    return -1;
  return get(s, &k, value);
}

int ds_state_next(const ds_state_t *s, int slot) {
  uint32_t i = slot < 0 ? 0 : (uint32_t)slot + 1;
  for (; i < s->used; i++) {
    if (!cell_is_free(entry_at(s, i)->key))
      return (int)i;
  }
  return -1;
}

int ds_state_key(const ds_state_t *s, int slot, ds_state_item_t *out) {
  if (!slot_live(s, slot))
    return DS_EINVAL;
  return item_of(s, &entry_at(s, (uint32_t)slot)->key, out);
}

int ds_state_value(const ds_state_t *s, int slot, ds_state_item_t *out) {
  if (!slot_live(s, slot))
    return DS_EINVAL;
  return item_of(s, &entry_at(s, (uint32_t)slot)->val, out);
}

/* --- writing ------------------------------------------------------------- */

/* Give an entry the value v (ENC bytes copied, in place when they keep the
 * old blob's size class); nothing changed on failure. */
static int value_store(ds_state_t *s, entry_t *e, const ds_state_item_t *v) {
  uint64_t old = e->val, cell;
  int err;
  if (v->kind == DS_STATE_NUM) {
    cell_drop(s, old);
    e->val = value_num_cell(v->num);
    return 0;
  }
  if (ds__blob_rewrite(s, old, v->ptr, v->len))
    return 0;
  err = ds__cell_new(s, DS_STATE_ENC, v->ptr, v->len, &cell);
  if (err != 0)
    return err;
  cell_drop(s, old);
  e->val = cell;
  return 0;
}

static int set(ds_state_t *s, uint32_t slot, const ds_state_item_t *v,
               int64_t now) {
  int err = touch_prepare(s, now);
  if (err == 0)
    err = value_store(s, entry_at(s, slot), v);
  if (err != 0)
    return err;
  touch(s, slot, 0, now);
  track_set(s, slot);
  return 0;
}

int ds__state_insert(ds_state_t *s, const probe_t *k, const ds_state_item_t *v,
                     int64_t now) {
  int slot, err = touch_prepare(s, now);
  if (err == 0 && (uint64_t)(s->count + 1) * 5 > (uint64_t)s->cap * 4)
    err = ds__index_grow(s);
  if (err != 0)
    return err;
  slot = slot_fill(s, k, v);
  if (slot < 0)
    return slot;
  ds__index_put(s, s->index, s->cap, k->hash, (uint32_t)slot);
  touch(s, (uint32_t)slot, 1, now);
  track_set(s, (uint32_t)slot);
  return slot;
}

static int put(ds_state_t *s, const probe_t *k, const ds_state_item_t *v,
               int64_t now) {
  int slot, err;
  if (v->kind == DS_STATE_ENC && (v->len == 0 || v->ptr == NULL))
    return DS_EINVAL;
  slot = index_find(s, k, NULL);
  if (slot < 0)
    return ds__state_insert(s, k, v, now);
  err = set(s, (uint32_t)slot, v, now);
  return err != 0 ? err : slot;
}

int ds__state_put(ds_state_t *s, const probe_t *k, const ds_state_item_t *v,
                  int64_t now) {
  return put(s, k, v, now);
}

int ds_state_put_num_num(ds_state_t *s, double key, double value,
                         int64_t now_ms) {
  ds_state_item_t v = num_item(value);
  probe_t k;
  int err = probe_num(&k, key);
  return err != 0 ? err : put(s, &k, &v, now_ms);
}

int ds_state_put_num_enc(ds_state_t *s, double key, const char *value,
                         uint32_t vlen, int64_t now_ms) {
  ds_state_item_t v = enc_item(value, vlen);
  probe_t k;
  int err = probe_num(&k, key);
  return err != 0 ? err : put(s, &k, &v, now_ms);
}

int ds_state_put_bytes_num(ds_state_t *s, int kind, const char *key,
                           uint32_t klen, double value, int64_t now_ms) {
  ds_state_item_t v = num_item(value);
  probe_t k;
  int err = probe_bytes(&k, kind, key, klen);
  return err != 0 ? err : put(s, &k, &v, now_ms);
}

int ds_state_put_bytes_enc(ds_state_t *s, int kind, const char *key,
                           uint32_t klen, const char *value, uint32_t vlen,
                           int64_t now_ms) {
  ds_state_item_t v = enc_item(value, vlen);
  probe_t k;
  int err = probe_bytes(&k, kind, key, klen);
  return err != 0 ? err : put(s, &k, &v, now_ms);
}

int ds_state_set_num(ds_state_t *s, int slot, double value, int64_t now_ms) {
  ds_state_item_t v = num_item(value);
  if (!slot_live(s, slot))
    return DS_EINVAL;
  return set(s, (uint32_t)slot, &v, now_ms);
}

int ds_state_set_enc(ds_state_t *s, int slot, const char *value,
                     uint32_t vlen, int64_t now_ms) {
  ds_state_item_t v = enc_item(value, vlen);
  if (!slot_live(s, slot) || vlen == 0 || value == NULL)
    return DS_EINVAL;
  return set(s, (uint32_t)slot, &v, now_ms);
}

int ds_state_touch(ds_state_t *s, int slot, int64_t now_ms) {
  int err;
  if (!slot_live(s, slot))
    return DS_EINVAL;
  if ((err = touch_prepare(s, now_ms)) != 0)
    return err;
  touch(s, (uint32_t)slot, 0, now_ms);
  /* Without a timeout a touch changes nothing a checkpoint holds. */
  if (s->timeout > 0)
    track_set(s, (uint32_t)slot);
  return 0;
}

/* --- removing ------------------------------------------------------------ */

static int remove_key(ds_state_t *s, const probe_t *k) {
  uint32_t pos;
  int slot = index_find(s, k, &pos);
  if (slot < 0)
    return 0;
  queue_drop(s, (uint32_t)slot);
  remove_at(s, (uint32_t)slot, pos);
  return 1;
}

int ds_state_remove_num(ds_state_t *s, double key) {
  probe_t k;
  return probe_num(&k, key) != 0 ? 0 : remove_key(s, &k);
}

int ds_state_remove_bytes(ds_state_t *s, int kind, const char *key,
                          uint32_t len) {
  probe_t k;
  return probe_bytes(&k, kind, key, len) != 0 ? 0 : remove_key(s, &k);
}

int ds_state_remove_slot(ds_state_t *s, int slot) {
  if (!slot_live(s, slot))
    return DS_EINVAL;
  queue_drop(s, (uint32_t)slot);
  remove_at(s, (uint32_t)slot, index_pos_of(s, (uint32_t)slot));
  return 0;
}

/* --- folding: the built-in reducers -------------------------------------- */

/* What a window's reduceByKeyAndWindow(dstream.sum, ...) does per record:
 * one call finds the key, combines, and stores, where Lua would look the key
 * up, call the reducer and put the result back. The combinations are those
 * of lua/dstream/reducers.lua, operand for operand (old value first), so
 * NaNs come out as they do there. */

static double fold_apply(double acc, double v, int op) {
  switch (op) {
  case DS_FOLD_MIN:
    return v < acc ? v : acc;
  case DS_FOLD_MAX:
    return v > acc ? v : acc;
  default:
    return acc + v;
  }
}

static int fold(ds_state_t *s, const probe_t *k, double v, int op,
                int64_t now, ds_state_item_t *old) {
  ds_state_item_t it;
  entry_t *e;
  double acc;
  int slot, err;
  if (op < DS_FOLD_SUM || op > DS_FOLD_MAX)
    return DS_EINVAL;
  slot = index_find(s, k, NULL);
  if (slot < 0) {
    it = num_item(v);
    slot = ds__state_insert(s, k, &it, now);
    if (slot >= 0 && old != NULL)
      old->kind = -1;
    return slot;
  }
  e = entry_at(s, (uint32_t)slot);
  if (!cell_is_num(e->val))
    return DS_ETYPE;
  acc = num_of(e->val);
  it = num_item(fold_apply(acc, v, op));
  err = set(s, (uint32_t)slot, &it, now);
  if (err != 0)
    return err;
  if (old != NULL)
    *old = num_item(acc);
  return slot;
}

int ds_state_fold_num(ds_state_t *s, double key, double v, int op,
                      int64_t now_ms, ds_state_item_t *old) {
  probe_t k;
  int err = probe_num(&k, key);
  return err != 0 ? err : fold(s, &k, v, op, now_ms, old);
}

int ds_state_fold_bytes(ds_state_t *s, int kind, const char *key,
                        uint32_t klen, double v, int op, int64_t now_ms,
                        ds_state_item_t *old) {
  probe_t k;
  int err = probe_bytes(&k, kind, key, klen);
  return err != 0 ? err : fold(s, &k, v, op, now_ms, old);
}


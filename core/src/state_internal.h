/* The inside of a keyed state store, shared by its files.
 *
 * A store is one struct (below) and four structures kept in it, each built
 * in a file of its own: state_slab.c (entry pages, blob slabs, big blobs:
 * where keys and values live), state_index.c (the Robin Hood index from a
 * key to its slot), state_queue.c (the timeout queue, its markers and live
 * bits; expiry), state_snapshot.c (snapshot and restore, deltas),
 * state_track.c (the record of changes a delta is made of). state.c is the
 * public API of dstream/ffi.h and dstream/state.h built from them. Each
 * file's opening comment says what its structure guarantees and costs.
 *
 * WHY SO MUCH IS STATIC INLINE HERE: a lookup, a put and an expiry go
 * through cells, hashing, the index probe and the live bits once per
 * record. In one file the compiler inlined them; split across files
 * without link-time optimization, each would become a call. So the small
 * functions on those paths are defined here, static inline, under the names
 * they had in state.c (they are private to the store's files); what is
 * larger or off the per-record path (growth, blob allocation, compaction,
 * removal from the index) is a ds__<noun>_<verb> function of one file.
 *
 * NOT FOR ANYONE ELSE: nothing outside core/src/state*.c includes this.
 */
#ifndef DS_STATE_INTERNAL_H
#define DS_STATE_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "dstream/codec.h"
#include "dstream/error.h"
#include "dstream/state.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the state store keeps short bytes in a cell's low bytes: little-endian"
#endif

/* --- layout constants ---------------------------------------------------- */

#define CELL_NEG_INF 0xfff0000000000000u /* -inf; every cell above is ours */
#define CELL_NAN 0x7ff8000000000000u     /* the one NaN a value cell holds */
#define PAYLOAD_MASK 0xffffffffffffu
#define KIND_FREE 0u
#define KIND_STR_INLINE 1u /* + length 0..6 */
#define KIND_STR_REF 8u
#define KIND_ENC_INLINE 8u /* + length 1..6 */
#define KIND_ENC_REF 15u
#define INLINE_MAX 6u
#define FREE_MARK ((uint64_t)1 << 47)
#define REF_BIG ((uint64_t)1 << 32)

#define PAGE_SHIFT 12
#define PAGE_SLOTS (1u << PAGE_SHIFT)

#define IDX_BITS 25 /* index word: slot + 1, */
#define IDX_MASK ((1u << IDX_BITS) - 1)
#define IDX_DIST_SHIFT IDX_BITS /* 4 bits of distance from home, */
#define DIST_SAT 15u            /* (15: 15 or more) */
#define IDX_TAG_SHIFT (IDX_BITS + 4) /* 3 bits of hash tag */
#define IDX_TAG_MAX 7u
#define IDX_TAG_MASK (IDX_TAG_MAX << IDX_TAG_SHIFT)
#define MAX_SLOTS IDX_MASK /* slot + 1 must fit the index word */

#define SLAB_SHIFT 16
#define SLAB_BYTES (1u << SLAB_SHIFT)
#define UNIT_SHIFT 3 /* slab references count 8-byte units */
#define SLAB_UNITS_SHIFT (SLAB_SHIFT - UNIT_SHIFT)
#define MAX_SLABS ((1u << (32 - SLAB_UNITS_SHIFT)) - 1)
#define BLOB_SLAB_MAX 1024u
#define NCLASS 24

#define QCHUNK 4094 /* a chunk is 16 KiB */

typedef struct {
  uint64_t key;
  uint64_t val;
} entry_t;

typedef struct qchunk_s {
  struct qchunk_s *next;
  uint32_t slot[QCHUNK];
} qchunk_t;

typedef struct {
  int64_t time;   /* batch time of the entries from `first` on */
  uint64_t first; /* sequence number of the first of them */
} marker_t;

typedef union {
  unsigned char *p; /* a live big blob */
  uintptr_t next;   /* a free entry: (next free + 1) << 1 | 1 */
} big_t;

/* A key being looked up or inserted. */
typedef struct {
  uint64_t hash;
  uint64_t cell;          /* the key's cell, when direct */
  const unsigned char *p; /* its bytes (STR, ENC) */
  uint32_t len;
  int kind;   /* DS_STATE_NUM, _STR, _ENC */
  int direct; /* a number or inline bytes: equal keys, equal cells */
} probe_t;

struct ds_state_s {
  int64_t timeout; /* ms, 0 for none */
  uint32_t count;  /* live keys */
  /* the index */
  uint32_t *index;
  uint32_t cap;
  /* entries */
  unsigned char **pages;
  uint32_t npages, pages_cap;
  uint32_t used;      /* slots handed out, live or free */
  uint32_t free_slot; /* first free slot + 1, 0 for none */
  /* blobs */
  unsigned char **slabs;
  uint32_t nslabs, slabs_cap;
  uint32_t slab_used; /* bytes cut from the last slab */
  uint32_t free_blob[NCLASS]; /* first free reference + 1, per class */
  big_t *big;
  uint32_t nbig, big_cap, big_free;
  /* timeouts */
  qchunk_t *qhead, *qtail;
  uint64_t qhead_first, qtail_first; /* sequence number of slot[0] */
  uint64_t head_seq, tail_seq;       /* the queue holds [head, tail) */
  marker_t *marks;                   /* a ring of mcap (a power of two) */
  uint32_t mhead, mlen, mcap;
  uint64_t *live;  /* bit seq % (64 * lwords): whether entry seq is current */
  uint32_t lwords; /* a power of two; 64 * lwords > tail_seq - head_seq */
  int64_t last_time;
  /* ds_state_expire()'s copies */
  ds_buf_t scratch;
  /* the change record (state_track.c), kept once tracking is on */
  int tracking;
  int cleared;       /* every key must go in the next delta */
  uint64_t *dbits;   /* a bit per slot: in dlist */
  uint32_t dwords, dwords_cap;
  uint32_t *dlist;   /* slots set since the record started, each once */
  uint32_t dlen, dcap;
  ds_buf_t removed;  /* keys removed since, as codec values */
  uint32_t nremoved;
  ds_buf_t ckpt;     /* ds_state_checkpoint()'s bytes, or the slots whose
                        key the last ds_state_apply() changed (int32) */
  int applied;       /* how many of those, -1 for every slot */
  /* accounting */
  size_t memory; /* bytes allocated, but for scratch */
  uint64_t visited, compactions;
};

/* --- cells (state_slab.c says what they hold) ---------------------------- */

static inline uint64_t bits_of(double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  return u;
}

static inline double num_of(uint64_t u) {
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

static inline int cell_is_num(uint64_t c) {
  return c <= CELL_NEG_INF;
}

static inline unsigned cell_kind(uint64_t c) {
  return (unsigned)(c >> 48) & 15u;
}

static inline uint64_t cell_make(unsigned kind, uint64_t payload) {
  return CELL_NEG_INF | (uint64_t)kind << 48 | payload;
}

static inline int cell_is_free(uint64_t c) {
  return !cell_is_num(c) && cell_kind(c) == KIND_FREE;
}

static inline int cell_is_ref(uint64_t c) {
  return !cell_is_num(c) &&
         (cell_kind(c) == KIND_STR_REF || cell_kind(c) == KIND_ENC_REF);
}

/* DS_STATE_NUM, _STR or _ENC (c is not free). */
static inline int cell_user_kind(uint64_t c) {
  if (cell_is_num(c))
    return DS_STATE_NUM;
  return cell_kind(c) <= KIND_STR_REF ? DS_STATE_STR : DS_STATE_ENC;
}

static inline uint64_t value_num_cell(double v) {
  return v != v ? CELL_NAN : bits_of(v);
}

/* --- hashing ------------------------------------------------------------- */

static inline uint64_t mix(uint64_t x) {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93u;
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93u;
  x ^= x >> 32;
  return x;
}

static inline uint64_t hash_num(uint64_t bits) {
  return mix(bits ^ 0x9e3779b97f4a7c15u);
}

/* Kind and length go in first: "a" and an ENC "a" hash apart. */
static inline uint64_t hash_bytes(int kind, const unsigned char *p,
                                  uint32_t len) {
  uint64_t h = mix(((uint64_t)kind << 32 | len) ^ 0x2545f4914f6cdd1du), w;
  while (len >= 8) {
    memcpy(&w, p, 8);
    h = mix(h ^ w);
    p += 8;
    len -= 8;
  }
  w = 0;
  if (len > 0)
    memcpy(&w, p, len);
  return mix(h ^ w);
}

/* --- blobs: varint length, then bytes ------------------------------------ */

static inline size_t varint_len(uint32_t n) {
  size_t k = 1;
  while (n >= 0x80) {
    n >>= 7;
    k++;
  }
  return k;
}

static inline unsigned char *varint_put(unsigned char *p, uint32_t n) {
  while (n >= 0x80) {
    *p++ = (unsigned char)(n | 0x80);
    n >>= 7;
  }
  *p++ = (unsigned char)n;
  return p;
}

static inline unsigned char *varint_get(unsigned char *p, uint32_t *n) {
  uint32_t v = 0;
  int shift = 0;
  while (*p & 0x80) {
    v |= (uint32_t)(*p++ & 0x7f) << shift;
    shift += 7;
  }
  *n = v | (uint32_t)*p++ << shift;
  return p;
}

static inline unsigned char *slab_at(const ds_state_t *s, uint32_t ref) {
  return s->slabs[ref >> SLAB_UNITS_SHIFT] +
         ((size_t)(ref & ((1u << SLAB_UNITS_SHIFT) - 1)) << UNIT_SHIFT);
}

static inline unsigned char *blob_at(const ds_state_t *s, uint64_t ref) {
  return ref & REF_BIG ? s->big[(uint32_t)ref].p : slab_at(s, (uint32_t)ref);
}

static inline size_t blob_total(unsigned char *blob) {
  uint32_t len;
  varint_get(blob, &len);
  return varint_len(len) + len;
}

/* The bytes of a STR or ENC cell, in place: an inline cell's own low bytes
 * or its blob's. */
static inline const unsigned char *cell_bytes(const ds_state_t *s,
                                              const uint64_t *cp,
                                              uint32_t *len) {
  unsigned kind = cell_kind(*cp);
  if (kind == KIND_STR_REF || kind == KIND_ENC_REF)
    return varint_get(blob_at(s, *cp & PAYLOAD_MASK), len);
  *len = kind < KIND_STR_REF ? kind - KIND_STR_INLINE : kind - KIND_ENC_INLINE;
  return (const unsigned char *)cp;
}

/* --- memory (state_slab.c) ----------------------------------------------- */

/* n bytes counted in the store's memory; NULL if out of memory. */
void *ds__state_alloc(ds_state_t *s, size_t n);
/* Free p, n bytes counted in the store's memory (NULL allowed). */
void ds__state_dealloc(ds_state_t *s, void *p, size_t n);
/* arr (capacity *cap elements of elem bytes) with room for need elements,
 * capacity doubling; NULL (arr untouched) if out of memory. */
void *ds__state_grow(ds_state_t *s, void *arr, uint32_t *cap, size_t elem,
                     uint32_t need);
/* Free the entry pages and every blob, leaving fields to be reset. */
void ds__slab_release(ds_state_t *s);

/* --- cells that own bytes (state_slab.c) ---------------------------------- */

/* The cell for len bytes of kind STR or ENC (ENC: len >= 1), copied into a
 * blob unless they fit inline; DS_ENOMEM / DS_ERANGE with nothing changed. */
int ds__cell_new(ds_state_t *s, int kind, const void *p, uint32_t len,
                 uint64_t *cell);
/* Free the blob referenced by ref. */
void ds__blob_free(ds_state_t *s, uint64_t ref);
/* Rewrite the ENC bytes of the blob cell old with len bytes at p (which may
 * be the old bytes themselves) if they keep its size class: 1 done, 0 not
 * possible (nothing changed). */
int ds__blob_rewrite(ds_state_t *s, uint64_t old, const char *p, uint32_t len);

/* Free what a cell owns (numbers and inline bytes own nothing). */
static inline void cell_drop(ds_state_t *s, uint64_t cell) {
  if (cell_is_ref(cell))
    ds__blob_free(s, cell & PAYLOAD_MASK);
}

/* --- probes -------------------------------------------------------------- */

static inline int probe_num(probe_t *k, double key) {
  if (key != key)
    return DS_EINVAL;
  if (key == 0)
    key = 0; /* -0 is 0 */
  k->cell = bits_of(key);
  k->hash = hash_num(k->cell);
  k->p = NULL;
  k->len = 0;
  k->kind = DS_STATE_NUM;
  k->direct = 1;
  return 0;
}

/* A probe for len bytes of kind (valid) whose hash is known. */
static inline void probe_fill(probe_t *k, int kind, const char *p,
                              uint32_t len, uint64_t hash) {
  k->p = (const unsigned char *)p;
  k->len = len;
  k->kind = kind;
  k->hash = hash;
  k->direct = len <= INLINE_MAX;
  if (k->direct) {
    uint64_t w = 0;
    if (len > 0)
      memcpy(&w, p, len);
    k->cell = cell_make((kind == DS_STATE_STR ? KIND_STR_INLINE
                                              : KIND_ENC_INLINE) + len, w);
  }
}

/* ENC keys must be one codec value that is not a number or a string. */
static inline int probe_bytes(probe_t *k, int kind, const char *p,
                              uint32_t len) {
  if (p == NULL && len > 0)
    return DS_EINVAL;
  if (kind == DS_STATE_ENC) {
    unsigned tag = len > 0 ? (unsigned char)p[0] : 0;
    if (tag < DS_CODEC_FALSE || tag > DS_CODEC_MAP || tag == DS_CODEC_INT ||
        tag == DS_CODEC_DOUBLE || tag == DS_CODEC_STR)
      return DS_EINVAL;
  } else if (kind != DS_STATE_STR) {
    return DS_EINVAL;
  }
  probe_fill(k, kind, p, len, hash_bytes(kind, (const unsigned char *)p, len));
  return 0;
}

/* --- entries (state_slab.c) ---------------------------------------------- */

static inline size_t page_bytes(const ds_state_t *s) {
  return PAGE_SLOTS * (sizeof(entry_t) + (s->timeout > 0 ? sizeof(uint32_t)
                                                           : 0));
}

static inline entry_t *entry_at(const ds_state_t *s, uint32_t slot) {
  return (entry_t *)s->pages[slot >> PAGE_SHIFT] + (slot & (PAGE_SLOTS - 1));
}

/* The queue sequence number of a slot (stores with a timeout only). */
static inline uint32_t *seq_at(const ds_state_t *s, uint32_t slot) {
  unsigned char *page = s->pages[slot >> PAGE_SHIFT];
  return (uint32_t *)(page + PAGE_SLOTS * sizeof(entry_t)) +
         (slot & (PAGE_SLOTS - 1));
}

static inline int slot_live(const ds_state_t *s, int slot) {
  return slot >= 0 && (uint32_t)slot < s->used &&
         !cell_is_free(entry_at(s, (uint32_t)slot)->key);
}

/* Add a page of slots; DS_ENOMEM / DS_ERANGE with nothing changed. */
int ds__slot_page_add(ds_state_t *s);

/* Make sure slot_take() has a slot to give. */
static inline int slot_reserve(ds_state_t *s) {
  if (s->free_slot != 0 || s->used < s->npages * PAGE_SLOTS)
    return 0;
  return ds__slot_page_add(s);
}

static inline uint32_t slot_take(ds_state_t *s) {
  uint32_t slot;
  if (s->free_slot == 0)
    return s->used++;
  slot = s->free_slot - 1;
  s->free_slot = (uint32_t)entry_at(s, slot)->key;
  return slot;
}

/* Put the new key k with value v into a free slot: cells made for their
 * bytes, the entry filled and counted; the index and the timeout queue are
 * the caller's. The slot, or DS_ENOMEM / DS_ERANGE with nothing changed. */
static inline int slot_fill(ds_state_t *s, const probe_t *k,
                            const ds_state_item_t *v) {
  uint64_t key = k->cell, val = value_num_cell(v->num);
  uint32_t slot;
  entry_t *e;
  int err = slot_reserve(s);
  if (err == 0 && !k->direct)
    err = ds__cell_new(s, k->kind, k->p, k->len, &key);
  if (err == 0 && v->kind == DS_STATE_ENC) {
    err = ds__cell_new(s, DS_STATE_ENC, v->ptr, v->len, &val);
    if (err != 0)
      cell_drop(s, key);
  }
  if (err != 0)
    return err;
  slot = slot_take(s);
  e = entry_at(s, slot);
  e->key = key;
  e->val = val;
  s->count++;
  return (int)slot;
}

static inline void slot_release(ds_state_t *s, uint32_t slot) {
  entry_t *e = entry_at(s, slot);
  e->key = cell_make(KIND_FREE, FREE_MARK | s->free_slot);
  e->val = 0;
  s->free_slot = slot + 1;
  /* A number no queue entry of this slot carries: its entries lie within
   * [head_seq, tail_seq), less than 2^32 wide, and none is added until the
   * slot is taken again. So ref_current() need not read the key cell. */
  if (s->timeout > 0)
    *seq_at(s, slot) = (uint32_t)(s->head_seq - 1);
}

static inline uint64_t slot_hash(const ds_state_t *s, uint32_t slot) {
  const uint64_t *kp = &entry_at(s, slot)->key;
  uint32_t len;
  const unsigned char *p;
  if (cell_is_num(*kp))
    return hash_num(*kp);
  p = cell_bytes(s, kp, &len);
  return hash_bytes(cell_user_kind(*kp), p, len);
}

static inline int key_equal(const ds_state_t *s, const uint64_t *kp,
                            const probe_t *k) {
  const unsigned char *p;
  uint32_t len;
  if (k->direct)
    return *kp == k->cell;
  if (cell_is_num(*kp) ||
      cell_kind(*kp) != (k->kind == DS_STATE_STR ? KIND_STR_REF : KIND_ENC_REF))
    return 0;
  p = cell_bytes(s, kp, &len);
  return len == k->len && memcmp(p, k->p, len) == 0;
}

/* --- the index (state_index.c) ------------------------------------------- */

static inline uint32_t idx_home(uint64_t hash, uint32_t cap) {
  return (uint32_t)(((hash >> 32) * (uint64_t)cap) >> 32);
}

static inline uint32_t idx_tag(uint64_t hash) {
  return (uint32_t)(hash & IDX_TAG_MAX) << IDX_TAG_SHIFT;
}

static inline uint32_t idx_next(uint32_t i, uint32_t cap) {
  return i + 1 == cap ? 0 : i + 1;
}

/* A word's distance field: its distance from home, DIST_SAT for DIST_SAT or
 * more. */
static inline uint32_t idx_dfield(uint32_t w) {
  return w >> IDX_DIST_SHIFT & DIST_SAT;
}

/* The slot holding k, or -1; *pos (unless NULL) gets the position of its
 * index word. Only words at k's own distance from their home (so with k's
 * home) and k's tag lead to an entry; a word nearer its home than k would
 * be ends the search (Robin Hood order). */
static inline int index_find(const ds_state_t *s, const probe_t *k,
                             uint32_t *pos) {
  uint32_t i, w, d, f, tag = idx_tag(k->hash);
  if (s->cap == 0)
    return -1;
  for (i = idx_home(k->hash, s->cap), d = 0; (w = s->index[i]) != 0;
       i = idx_next(i, s->cap), d++) {
    f = idx_dfield(w);
    if (f < d && f < DIST_SAT)
      return -1;
    if (f == (d < DIST_SAT ? d : DIST_SAT) &&
        (w & IDX_TAG_MASK) == tag &&
        key_equal(s, &entry_at(s, (w & IDX_MASK) - 1)->key, k)) {
      if (pos != NULL)
        *pos = i;
      return (int)((w & IDX_MASK) - 1);
    }
  }
  return -1;
}

/* Add slot, whose key hashes to hash, to index (cap positions, not full). */
void ds__index_put(const ds_state_t *s, uint32_t *index, uint32_t cap,
                   uint64_t hash, uint32_t slot);
/* Rebuild the index half as large again; DS_ENOMEM leaves the old one. */
int ds__index_grow(ds_state_t *s);
/* Size the index of an empty store for count keys at once, as growing
 * key by key would have: a restore rehashes nothing. DS_ENOMEM leaves it. */
int ds__index_reserve(ds_state_t *s, uint32_t count);
/* Empty the word at hole (no tombstones). */
void ds__index_delete(ds_state_t *s, uint32_t hole);

/* The position of a live slot's word. */
static inline uint32_t index_pos_of(const ds_state_t *s, uint32_t slot) {
  uint32_t i = idx_home(slot_hash(s, slot), s->cap);
  while ((s->index[i] & IDX_MASK) != slot + 1)
    i = idx_next(i, s->cap);
  return i;
}

/* --- the timeout queue (state_queue.c) ------------------------------------ */

static inline marker_t *mark_at(const ds_state_t *s, uint32_t i) {
  return &s->marks[(s->mhead + i) & (s->mcap - 1)];
}

static inline uint64_t *live_word(const ds_state_t *s, uint64_t seq) {
  return &s->live[(seq >> 6) & (s->lwords - 1)];
}

static inline void live_set(ds_state_t *s, uint64_t seq) {
  *live_word(s, seq) |= (uint64_t)1 << (seq & 63);
}

static inline void live_clear(ds_state_t *s, uint64_t seq) {
  *live_word(s, seq) &= ~((uint64_t)1 << (seq & 63));
}

/* The number of the current entry of a live slot. */
static inline uint64_t slot_seq(const ds_state_t *s, uint32_t slot) {
  return s->head_seq + (uint32_t)(*seq_at(s, slot) - (uint32_t)s->head_seq);
}

/* Make stale the current entry of a live slot about to be removed. */
static inline void queue_drop(ds_state_t *s, uint32_t slot) {
  if (s->timeout > 0)
    live_clear(s, slot_seq(s, slot));
}

/* Whether the queue entry numbered seq for slot is current (see
 * slot_release() for why a free slot never matches). */
static inline int ref_current(const ds_state_t *s, uint32_t slot,
                              uint64_t seq) {
  return *seq_at(s, slot) == (uint32_t)seq;
}

/* touch_prepare() for a store with a timeout. */
int ds__queue_reserve(ds_state_t *s, int64_t now);
/* touch() for a store with a timeout. */
void ds__queue_touch(ds_state_t *s, uint32_t slot, int fresh, int64_t now);
/* Free the queue, its markers and live bits, leaving fields to be reset. */
void ds__queue_release(ds_state_t *s);

/* Reserve what touch() may need at time now: a marker, a queue place and
 * its live bit. DS_EINVAL if now is before the last update. */
static inline int touch_prepare(ds_state_t *s, int64_t now) {
  return s->timeout == 0 ? 0 : ds__queue_reserve(s, now);
}

/* Record that slot (fresh: just inserted) was updated at now; after
 * touch_prepare(), cannot fail. */
static inline void touch(ds_state_t *s, uint32_t slot, int fresh, int64_t now) {
  if (s->timeout > 0)
    ds__queue_touch(s, slot, fresh, now);
}

/* --- the change record (state_track.c) ------------------------------------ */

/* Record that a live slot not yet in the list was set. */
void ds__track_set(ds_state_t *s, uint32_t slot);
/* Make room in the per-slot bits for `slots` slots; DS_ENOMEM, nothing
 * changed. */
int ds__track_bits(ds_state_t *s, uint32_t slots);
/* Record that the key of a live slot is about to be removed. */
void ds__track_removed(ds_state_t *s, uint32_t slot);
/* Start the record again: nothing changed since now. */
void ds__track_restart(ds_state_t *s);

/* After a change that succeeded: a store that does not record its changes
 * pays one test here, per record. */
static inline void track_set(ds_state_t *s, uint32_t slot) {
  if (__builtin_expect(s->tracking, 0) &&
      (s->dbits[slot >> 6] & (uint64_t)1 << (slot & 63)) == 0)
    ds__track_set(s, slot);
}

/* --- the store's own operations (state.c) --------------------------------- */

static inline int item_of(const ds_state_t *s, const uint64_t *cp,
                          ds_state_item_t *out) {
  if (cell_is_num(*cp)) {
    out->kind = DS_STATE_NUM;
    out->len = 0;
    out->num = num_of(*cp);
    out->ptr = NULL;
  } else {
    out->kind = cell_user_kind(*cp);
    out->num = 0;
    out->ptr = (const char *)cell_bytes(s, cp, &out->len);
  }
  return out->kind;
}

static inline ds_state_item_t num_item(double v) {
  ds_state_item_t it = {DS_STATE_NUM, 0, v, NULL};
  return it;
}

static inline ds_state_item_t enc_item(const char *p, uint32_t len) {
  ds_state_item_t it = {DS_STATE_ENC, len, 0, p};
  return it;
}

/* Insert k, known to be absent, with v: its slot, or a DS_E* code with
 * nothing changed. */
int ds__state_insert(ds_state_t *s, const probe_t *k, const ds_state_item_t *v,
                     int64_t now);
/* Put v under k (present or not) at now: its slot, or a DS_E* code with
 * nothing changed. */
int ds__state_put(ds_state_t *s, const probe_t *k, const ds_state_item_t *v,
                  int64_t now);
/* Remove the live slot whose index word is at pos (its queue entry already
 * made stale or popped). */
static inline void remove_at(ds_state_t *s, uint32_t slot, uint32_t pos) {
  entry_t *e = entry_at(s, slot);
  if (s->tracking)
    ds__track_removed(s, slot);
  ds__index_delete(s, pos);
  cell_drop(s, e->key);
  cell_drop(s, e->val);
  slot_release(s, slot);
  s->count--;
}

#endif

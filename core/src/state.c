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
 * CELLS: a key and a value are each one 8-byte cell, NaN-boxed. A number is
 * its own IEEE 754 bits - unboxed, no allocation, compared as 64 bits (keys
 * turn -0 into 0 and refuse NaN; values turn every NaN into one). Every
 * bit pattern above -inf (sign set, exponent all ones, mantissa not zero)
 * is a NaN no number cell ever holds, so those 2^52 patterns are ours: a
 * 4-bit kind and a 48-bit payload.
 *
 *   kind   meaning                       payload
 *   0      free slot                     next free slot + 1, bit 47 set
 *   1-7    STR of 0-6 bytes, inline      the bytes, in the cell's low bytes
 *   8      STR in a blob                 blob reference
 *   9-14   ENC of 1-6 bytes, inline      the bytes
 *   15     ENC in a blob                 blob reference
 *
 * So words, small composite keys and `true` states take no memory beyond
 * their cell, and two direct cells (numbers, inline bytes) are the same key
 * exactly when their 64 bits are equal. A blob reference is a slab offset in
 * 8-byte units, or (bit 32 set) an index into the table of big blobs.
 *
 * ENTRIES live in pages of 4096 slots that never move: a slot is a
 * {key cell, value cell} pair (16 bytes), plus, in a store with a timeout, a
 * 32-bit queue sequence number kept after the page's pairs (4 more). A slot
 * number is stable for the life of its key, so Lua can look a key up once
 * and update it by slot. Freed slots form a list through their key cells and
 * are reused first; pages are kept until clear or free (memory stays at its
 * high-water mark).
 *
 * THE INDEX is a separate open-addressing table of 32-bit words: 25 bits of
 * slot + 1 (0 is empty; so at most 2^25 - 1 = 33 554 431 keys a store), 4
 * bits of distance from the key's home (15: 15 or more), 3 bits of hash
 * tag. The home is the high half of the key's 64-bit hash scaled to the
 * capacity (a multiply, not a mask, so the capacity need not be a power of
 * two); probing is linear, in Robin Hood order: an insert takes the place of
 * the first word nearer its own home than the insert is, which moves on the
 * same way, so a cluster holds its words in order of home. A lookup reads
 * an entry only for a word at its own distance (same home) with its tag,
 * and stops at a word nearer its home than the key would be. Removal shifts
 * the words after the hole back by one until one that is at its home: no
 * tombstones, so probe lengths do not degrade under churn, and no entry is
 * read - the distances say where to stop - but for a word 15 or more from
 * home (at load 0.8, 1 in 600), whose distance its entry's hash gives.
 * Removing a key by slot (expiry, remove_slot) hashes its key to find its
 * word: one entry and one index word read.
 *
 * WHY THE INDEX IS SEPARATE AND GROWS BY HALF: a table of 16-byte pairs at
 * load 0.8 costs 20 bytes per key before its first growth and 40 after
 * doubling; pairs packed in pages cost 16, the index 4 / load. Growing by
 * half when the load passes 0.8 keeps the load between 0.53 and 0.8: the
 * index costs 5 to 7.5 bytes per key. Rehashing reads the entries (the
 * index holds no full hashes), 3 moves per key amortized.
 *
 * BLOBS: bytes that do not fit a cell go, with a varint length in front,
 * into 64 KiB slabs cut into 24 size classes (8, 16, ... 64, then four per
 * doubling up to 1024 bytes: at most 25% rounding); a freed blob joins its
 * class's free list, linked through its first 4 bytes. Larger blobs are one
 * allocation each. A value rewritten with a length of the same class is
 * rewritten in place.
 *
 * TIMEOUTS (exact, not scanning): a store made with a timeout keeps a queue
 * of slot numbers in chunks of 4094, appended to each time a key is updated
 * in a batch other than that of its last update, so the queue is in order of
 * update time. Each appended entry gets the next sequence number, which the
 * key's slot records; an entry is current when its slot is live and records
 * its sequence number, stale when the key has been updated again or removed
 * since (a freed slot records a number no entry carries, so telling the two
 * apart reads one word). Markers, one per batch time present, give the
 * sequence number where each time starts. ds_state_expire() pops from the
 * front while the front's time is at most now - timeout, removing the keys
 * of current entries: each key is handed back once, in the first batch at
 * which it has been idle for the timeout.
 *
 * THE LIVE BITS: a ring of one bit per queue entry, set while the entry is
 * current. An update clears the bit of the key's old entry (whose number
 * its slot holds: the word is read anyway, to be rewritten), a removal that
 * of its entry. So expiry passes stale entries 64 to a word of bits, never
 * reading their slots: a batch's expiry costs its expired keys plus one
 * word per 64 stale entries in front of them, not one cache miss per stale
 * entry - at 2 000 000 keys a batch whose 1 000 keys sat among 80 000 stale
 * entries (keys updated after the last compaction) cost 6 times one whose
 * keys did not. The bits cost 1/8 to 1/4 byte per queue entry (the ring's
 * size is a power of two), under 0.3 byte per key.
 *
 * When stale entries pass a quarter of the live keys, one pass compacts the
 * queue in place and renumbers it, reading the bits, not the stale entries'
 * slots: amortized 5 entries per queued update; the queue costs 4 to 5
 * bytes per key. (An intrusive doubly-linked list would cost 8, and two
 * dependent misses per update.) Expiring a current entry asks the cache
 * ahead of time for the entries and index words of the current entries
 * after it, so with millions of keys their misses overlap rather than come
 * one after the other.
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
 * of the rest of the cluster (mostly in the same cache line). Memory is 16 bytes per slot,
 * 4 more with a timeout, 5-7.5 for the index, 4.2-5.3 for the timeout queue
 * and its live bits, plus blobs. A lookup of a key kept in a blob costs three dependent cache
 * misses (index word, entry, blob) where a Lua table pays two: in random
 * order over millions of such keys it is the slower of the two. Hashing
 * uses a fixed seed, so iteration order is reproducible and keys chosen to
 * collide can slow a store down (not corrupt it).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dstream/alloc.h"
#include "dstream/codec.h"
#include "dstream/error.h"
#include "dstream/state.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "state.c keeps short bytes in a cell's low bytes: little-endian only"
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
#define INDEX_MIN 16

#define SLAB_SHIFT 16
#define SLAB_BYTES (1u << SLAB_SHIFT)
#define UNIT_SHIFT 3 /* slab references count 8-byte units */
#define SLAB_UNITS_SHIFT (SLAB_SHIFT - UNIT_SHIFT)
#define MAX_SLABS ((1u << (32 - SLAB_UNITS_SHIFT)) - 1)
#define BLOB_SLAB_MAX 1024u
#define NCLASS 24

#define QCHUNK 4094 /* a chunk is 16 KiB */
#define LIVE_MIN_WORDS 16 /* the live bits' first ring: 1024 entries */
#define EXPIRE_AHEAD 8    /* current entries prefetched ahead of expiry */
#define EXPIRE_SPAN 1024  /* queue entries looked through for them */

#define SNAP_FRAME_TARGET 65536
#define SNAP_NAME "dstream.state"

static const uint16_t class_size[NCLASS] = {
    8,   16,  24,  32,  40,  48,  56,  64,  80,  96,  112, 128,
    160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024};

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
  /* accounting */
  size_t memory; /* bytes allocated, but for scratch */
  uint64_t visited, compactions;
};

/* --- memory -------------------------------------------------------------- */

static void *mem_alloc(ds_state_t *s, size_t n) {
  void *p = ds_malloc(n);
  if (p != NULL)
    s->memory += n;
  return p;
}

static void mem_free(ds_state_t *s, void *p, size_t n) {
  if (p != NULL) {
    ds_free(p);
    s->memory -= n;
  }
}

/* arr (capacity *cap elements of elem bytes) with room for need elements,
 * capacity doubling; NULL (arr untouched) if out of memory. */
static void *grow_array(ds_state_t *s, void *arr, uint32_t *cap, size_t elem,
                        uint32_t need) {
  uint32_t ncap = *cap > 0 ? *cap : 8;
  void *p;
  if (need <= *cap)
    return arr;
  while (ncap < need)
    ncap *= 2;
  p = ds_realloc(arr, (size_t)ncap * elem);
  if (p == NULL)
    return NULL;
  s->memory += (size_t)(ncap - *cap) * elem;
  *cap = ncap;
  return p;
}

/* --- cells --------------------------------------------------------------- */

static uint64_t bits_of(double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  return u;
}

static double num_of(uint64_t u) {
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

static int cell_is_num(uint64_t c) {
  return c <= CELL_NEG_INF;
}

static unsigned cell_kind(uint64_t c) {
  return (unsigned)(c >> 48) & 15u;
}

static uint64_t cell_make(unsigned kind, uint64_t payload) {
  return CELL_NEG_INF | (uint64_t)kind << 48 | payload;
}

static int cell_is_free(uint64_t c) {
  return !cell_is_num(c) && cell_kind(c) == KIND_FREE;
}

static int cell_is_ref(uint64_t c) {
  return !cell_is_num(c) &&
         (cell_kind(c) == KIND_STR_REF || cell_kind(c) == KIND_ENC_REF);
}

/* DS_STATE_NUM, _STR or _ENC (c is not free). */
static int cell_user_kind(uint64_t c) {
  if (cell_is_num(c))
    return DS_STATE_NUM;
  return cell_kind(c) <= KIND_STR_REF ? DS_STATE_STR : DS_STATE_ENC;
}

static uint64_t value_num_cell(double v) {
  return v != v ? CELL_NAN : bits_of(v);
}

/* --- hashing ------------------------------------------------------------- */

static uint64_t mix(uint64_t x) {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93u;
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93u;
  x ^= x >> 32;
  return x;
}

static uint64_t hash_num(uint64_t bits) {
  return mix(bits ^ 0x9e3779b97f4a7c15u);
}

/* Kind and length go in first: "a" and an ENC "a" hash apart. */
static uint64_t hash_bytes(int kind, const unsigned char *p, uint32_t len) {
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

static size_t varint_len(uint32_t n) {
  size_t k = 1;
  while (n >= 0x80) {
    n >>= 7;
    k++;
  }
  return k;
}

static unsigned char *varint_put(unsigned char *p, uint32_t n) {
  while (n >= 0x80) {
    *p++ = (unsigned char)(n | 0x80);
    n >>= 7;
  }
  *p++ = (unsigned char)n;
  return p;
}

static unsigned char *varint_get(unsigned char *p, uint32_t *n) {
  uint32_t v = 0;
  int shift = 0;
  while (*p & 0x80) {
    v |= (uint32_t)(*p++ & 0x7f) << shift;
    shift += 7;
  }
  *n = v | (uint32_t)*p++ << shift;
  return p;
}

static unsigned class_of(size_t total) {
  unsigned c = 0;
  while (class_size[c] < total)
    c++;
  return c;
}

static unsigned char *slab_at(const ds_state_t *s, uint32_t ref) {
  return s->slabs[ref >> SLAB_UNITS_SHIFT] +
         ((size_t)(ref & ((1u << SLAB_UNITS_SHIFT) - 1)) << UNIT_SHIFT);
}

static unsigned char *blob_at(const ds_state_t *s, uint64_t ref) {
  return ref & REF_BIG ? s->big[(uint32_t)ref].p : slab_at(s, (uint32_t)ref);
}

static size_t blob_total(unsigned char *blob) {
  uint32_t len;
  varint_get(blob, &len);
  return varint_len(len) + len;
}

static int slab_add(ds_state_t *s) {
  unsigned char **dir, *p;
  if (s->nslabs == MAX_SLABS)
    return DS_ERANGE;
  dir = grow_array(s, s->slabs, &s->slabs_cap, sizeof *dir, s->nslabs + 1);
  if (dir == NULL)
    return DS_ENOMEM;
  s->slabs = dir;
  p = mem_alloc(s, SLAB_BYTES);
  if (p == NULL)
    return DS_ENOMEM;
  s->slabs[s->nslabs++] = p;
  s->slab_used = 0;
  return 0;
}

static int slab_alloc(ds_state_t *s, unsigned c, uint32_t *ref) {
  if (s->free_blob[c] != 0) {
    *ref = s->free_blob[c] - 1;
    memcpy(&s->free_blob[c], slab_at(s, *ref), sizeof(uint32_t));
    return 0;
  }
  if (s->nslabs == 0 || s->slab_used + class_size[c] > SLAB_BYTES) {
    int err = slab_add(s);
    if (err != 0)
      return err;
  }
  *ref = (s->nslabs - 1) << SLAB_UNITS_SHIFT | s->slab_used >> UNIT_SHIFT;
  s->slab_used += class_size[c];
  return 0;
}

static int big_alloc(ds_state_t *s, size_t total, uint32_t *i) {
  unsigned char *p;
  if (s->big_free == 0) {
    big_t *dir;
    if (s->nbig == 2u * MAX_SLOTS) /* two blobs a slot at most */
      return DS_ERANGE;
    dir = grow_array(s, s->big, &s->big_cap, sizeof *dir, s->nbig + 1);
    if (dir == NULL)
      return DS_ENOMEM;
    s->big = dir;
  }
  p = mem_alloc(s, total);
  if (p == NULL)
    return DS_ENOMEM;
  if (s->big_free != 0) {
    *i = s->big_free - 1;
    s->big_free = (uint32_t)(s->big[*i].next >> 1);
  } else {
    *i = s->nbig++;
  }
  s->big[*i].p = p;
  return 0;
}

/* Room for a blob of len bytes: its reference and where its bytes go (the
 * length is written). DS_ENOMEM / DS_ERANGE with nothing changed. */
static int blob_new(ds_state_t *s, uint32_t len, uint64_t *ref,
                    unsigned char **body) {
  size_t total = varint_len(len) + (size_t)len;
  unsigned char *p;
  uint32_t r;
  int err;
  if (total <= BLOB_SLAB_MAX) {
    err = slab_alloc(s, class_of(total), &r);
    if (err != 0)
      return err;
    p = slab_at(s, r);
    *ref = r;
  } else {
    err = big_alloc(s, total, &r);
    if (err != 0)
      return err;
    p = s->big[r].p;
    *ref = REF_BIG | r;
  }
  *body = varint_put(p, len);
  return 0;
}

static void blob_free(ds_state_t *s, uint64_t ref) {
  unsigned char *p = blob_at(s, ref);
  size_t total = blob_total(p);
  if (ref & REF_BIG) {
    uint32_t i = (uint32_t)ref;
    mem_free(s, p, total);
    s->big[i].next = (uintptr_t)s->big_free << 1 | 1;
    s->big_free = i + 1;
  } else {
    unsigned c = class_of(total);
    memcpy(p, &s->free_blob[c], sizeof(uint32_t));
    s->free_blob[c] = (uint32_t)ref + 1;
  }
}

/* The bytes of a STR or ENC cell, in place: an inline cell's own low bytes
 * or its blob's. */
static const unsigned char *cell_bytes(const ds_state_t *s, const uint64_t *cp,
                                       uint32_t *len) {
  unsigned kind = cell_kind(*cp);
  if (kind == KIND_STR_REF || kind == KIND_ENC_REF)
    return varint_get(blob_at(s, *cp & PAYLOAD_MASK), len);
  *len = kind < KIND_STR_REF ? kind - KIND_STR_INLINE : kind - KIND_ENC_INLINE;
  return (const unsigned char *)cp;
}

/* The cell for len bytes of kind STR or ENC (ENC: len >= 1), copied into a
 * blob unless they fit inline. */
static int cell_new(ds_state_t *s, int kind, const void *p, uint32_t len,
                    uint64_t *cell) {
  uint64_t ref;
  unsigned char *body;
  int err;
  if (len <= INLINE_MAX) {
    uint64_t w = 0;
    if (len > 0)
      memcpy(&w, p, len);
    *cell = cell_make((kind == DS_STATE_STR ? KIND_STR_INLINE : KIND_ENC_INLINE)
                      + len, w);
    return 0;
  }
  err = blob_new(s, len, &ref, &body);
  if (err != 0)
    return err;
  memcpy(body, p, len);
  *cell = cell_make(kind == DS_STATE_STR ? KIND_STR_REF : KIND_ENC_REF, ref);
  return 0;
}

/* Free what a cell owns (numbers and inline bytes own nothing). */
static void cell_drop(ds_state_t *s, uint64_t cell) {
  if (cell_is_ref(cell))
    blob_free(s, cell & PAYLOAD_MASK);
}

/* --- probes -------------------------------------------------------------- */

static int probe_num(probe_t *k, double key) {
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

/* ENC keys must be one codec value that is not a number or a string. */
static int probe_bytes(probe_t *k, int kind, const char *p, uint32_t len) {
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
  k->p = (const unsigned char *)p;
  k->len = len;
  k->kind = kind;
  k->hash = hash_bytes(kind, k->p, len);
  k->direct = len <= INLINE_MAX;
  if (k->direct) {
    uint64_t w = 0;
    if (len > 0)
      memcpy(&w, p, len);
    k->cell = cell_make((kind == DS_STATE_STR ? KIND_STR_INLINE
                                              : KIND_ENC_INLINE) + len, w);
  }
  return 0;
}

/* --- entries ------------------------------------------------------------- */

static size_t page_bytes(const ds_state_t *s) {
  return PAGE_SLOTS * (sizeof(entry_t) + (s->timeout > 0 ? sizeof(uint32_t)
                                                           : 0));
}

static entry_t *entry_at(const ds_state_t *s, uint32_t slot) {
  return (entry_t *)s->pages[slot >> PAGE_SHIFT] + (slot & (PAGE_SLOTS - 1));
}

/* The queue sequence number of a slot (stores with a timeout only). */
static uint32_t *seq_at(const ds_state_t *s, uint32_t slot) {
  unsigned char *page = s->pages[slot >> PAGE_SHIFT];
  return (uint32_t *)(page + PAGE_SLOTS * sizeof(entry_t)) +
         (slot & (PAGE_SLOTS - 1));
}

static int slot_live(const ds_state_t *s, int slot) {
  return slot >= 0 && (uint32_t)slot < s->used &&
         !cell_is_free(entry_at(s, (uint32_t)slot)->key);
}

/* Make sure slot_take() has a slot to give. */
static int slot_reserve(ds_state_t *s) {
  unsigned char **dir, *page;
  if (s->free_slot != 0 || s->used < s->npages * PAGE_SLOTS)
    return 0;
  if (s->used >= MAX_SLOTS)
    return DS_ERANGE;
  dir = grow_array(s, s->pages, &s->pages_cap, sizeof *dir, s->npages + 1);
  if (dir == NULL)
    return DS_ENOMEM;
  s->pages = dir;
  page = mem_alloc(s, page_bytes(s));
  if (page == NULL)
    return DS_ENOMEM;
  s->pages[s->npages++] = page;
  return 0;
}

static uint32_t slot_take(ds_state_t *s) {
  uint32_t slot;
  if (s->free_slot == 0)
    return s->used++;
  slot = s->free_slot - 1;
  s->free_slot = (uint32_t)entry_at(s, slot)->key;
  return slot;
}

static void slot_release(ds_state_t *s, uint32_t slot) {
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

static uint64_t slot_hash(const ds_state_t *s, uint32_t slot) {
  const uint64_t *kp = &entry_at(s, slot)->key;
  uint32_t len;
  const unsigned char *p;
  if (cell_is_num(*kp))
    return hash_num(*kp);
  p = cell_bytes(s, kp, &len);
  return hash_bytes(cell_user_kind(*kp), p, len);
}

static int key_equal(const ds_state_t *s, const uint64_t *kp,
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

/* --- the index ----------------------------------------------------------- */

static uint32_t idx_home(uint64_t hash, uint32_t cap) {
  return (uint32_t)(((hash >> 32) * (uint64_t)cap) >> 32);
}

static uint32_t idx_tag(uint64_t hash) {
  return (uint32_t)(hash & IDX_TAG_MAX) << IDX_TAG_SHIFT;
}

static uint32_t idx_next(uint32_t i, uint32_t cap) {
  return i + 1 == cap ? 0 : i + 1;
}

/* A word's distance field: its distance from home, DIST_SAT for DIST_SAT or
 * more. */
static uint32_t idx_dfield(uint32_t w) {
  return w >> IDX_DIST_SHIFT & DIST_SAT;
}

/* w (its distance field ignored) with the distance d. */
static uint32_t idx_with_dist(uint32_t w, uint32_t d) {
  return (w & ~(DIST_SAT << IDX_DIST_SHIFT)) |
         (d < DIST_SAT ? d : DIST_SAT) << IDX_DIST_SHIFT;
}

/* The exact distance from its home of the word w at position i of index
 * (cap positions): from w, or if saturated from its entry's hash. */
static uint32_t idx_dist(const ds_state_t *s, uint32_t cap, uint32_t w,
                         uint32_t i) {
  uint32_t d = idx_dfield(w), home;
  if (d < DIST_SAT)
    return d;
  home = idx_home(slot_hash(s, (w & IDX_MASK) - 1), cap);
  return i >= home ? i - home : i + cap - home;
}

/* The slot holding k, or -1; *pos (unless NULL) gets the position of its
 * index word. Only words at k's own distance from their home (so with k's
 * home) and k's tag lead to an entry; a word nearer its home than k would
 * be ends the search (Robin Hood order). */
static int index_find(const ds_state_t *s, const probe_t *k, uint32_t *pos) {
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

/* Add slot, whose key hashes to hash, to index (cap positions, not full):
 * from its home on, it takes the place of the first word nearer its own
 * home, which goes on the same way (Robin Hood). */
static void index_put(const ds_state_t *s, uint32_t *index, uint32_t cap,
                      uint64_t hash, uint32_t slot) {
  uint32_t i = idx_home(hash, cap), d = 0, cur = idx_tag(hash) | (slot + 1);
  for (;; i = idx_next(i, cap), d++) {
    uint32_t w = index[i], wd;
    if (w == 0) {
      index[i] = idx_with_dist(cur, d);
      return;
    }
    /* A saturated word is at least as far as d while d is below DIST_SAT:
     * the entry is read only past that. */
    wd = idx_dfield(w);
    if (wd == DIST_SAT && d >= DIST_SAT)
      wd = idx_dist(s, cap, w, i);
    if (wd < d) {
      index[i] = idx_with_dist(cur, d);
      cur = w;
      d = wd;
    }
  }
}

/* The position of a live slot's word. */
static uint32_t index_pos_of(const ds_state_t *s, uint32_t slot) {
  uint32_t i = idx_home(slot_hash(s, slot), s->cap);
  while ((s->index[i] & IDX_MASK) != slot + 1)
    i = idx_next(i, s->cap);
  return i;
}

/* Rebuild the index half as large again (INDEX_MIN at first) from the
 * entries; DS_ENOMEM leaves the old one. */
static int index_grow(ds_state_t *s) {
  uint32_t cap = s->cap > 0 ? s->cap + s->cap / 2 : INDEX_MIN, slot;
  uint32_t *index = ds_calloc(cap, sizeof *index);
  if (index == NULL)
    return DS_ENOMEM;
  for (slot = 0; slot < s->used; slot++) {
    if (!cell_is_free(entry_at(s, slot)->key))
      index_put(s, index, cap, slot_hash(s, slot), slot);
  }
  mem_free(s, s->index, (size_t)s->cap * sizeof *index);
  s->memory += (size_t)cap * sizeof *index;
  s->index = index;
  s->cap = cap;
  return 0;
}

/* Empty the word at hole, shifting the words after it in its cluster back
 * by one until one at its home (no tombstones). Reads index words only, but
 * for a word DIST_SAT or more from its home. */
static void index_delete(ds_state_t *s, uint32_t hole) {
  uint32_t j = hole, w, d;
  for (;;) {
    j = idx_next(j, s->cap);
    w = s->index[j];
    if (w == 0 || (d = idx_dfield(w)) == 0)
      break;
    if (d == DIST_SAT)
      d = idx_dist(s, s->cap, w, j);
    s->index[hole] = idx_with_dist(w, d - 1);
    hole = j;
  }
  s->index[hole] = 0;
}

/* --- the timeout queue --------------------------------------------------- */

static marker_t *mark_at(const ds_state_t *s, uint32_t i) {
  return &s->marks[(s->mhead + i) & (s->mcap - 1)];
}

static int marks_grow(ds_state_t *s) {
  uint32_t cap = s->mcap > 0 ? s->mcap * 2 : 8, i;
  marker_t *m = mem_alloc(s, cap * sizeof *m);
  if (m == NULL)
    return DS_ENOMEM;
  for (i = 0; i < s->mlen; i++)
    m[i] = *mark_at(s, i);
  mem_free(s, s->marks, s->mcap * sizeof *m);
  s->marks = m;
  s->mcap = cap;
  s->mhead = 0;
  return 0;
}

static qchunk_t *chunk_new(ds_state_t *s) {
  qchunk_t *c = mem_alloc(s, sizeof *c);
  if (c != NULL)
    c->next = NULL;
  return c;
}

/* The live bits. Only those of [head_seq, tail_seq) mean anything: an
 * appended entry's bit is set, never assumed clear, so passing an entry
 * needs no write, and no two entries of the queue share a bit. */

static uint64_t *live_word(const ds_state_t *s, uint64_t seq) {
  return &s->live[(seq >> 6) & (s->lwords - 1)];
}

static void live_set(ds_state_t *s, uint64_t seq) {
  *live_word(s, seq) |= (uint64_t)1 << (seq & 63);
}

static void live_clear(ds_state_t *s, uint64_t seq) {
  *live_word(s, seq) &= ~((uint64_t)1 << (seq & 63));
}

static unsigned low_bit(uint64_t w) {
#if defined(__GNUC__)
  return (unsigned)__builtin_ctzll(w);
#else
  unsigned n = 0;
  while ((w & 1) == 0) {
    w >>= 1;
    n++;
  }
  return n;
#endif
}

/* The first current entry in [seq, end), end <= tail_seq, or end; adds to
 * *empty (if not NULL) the words read that held none. */
static uint64_t live_next(const ds_state_t *s, uint64_t seq, uint64_t end,
                          uint64_t *empty) {
  while (seq < end) {
    uint64_t w = *live_word(s, seq) >> (seq & 63);
    if (w != 0) {
      seq += low_bit(w);
      return seq < end ? seq : end;
    }
    seq = (seq | 63) + 1;
    if (empty != NULL)
      (*empty)++;
  }
  return end;
}

/* The n-th (n >= 1) current entry in [seq, end), end <= tail_seq, or end. */
static uint64_t live_nth(const ds_state_t *s, uint64_t seq, uint64_t end,
                         unsigned n) {
  while (seq < end) {
    uint64_t w = *live_word(s, seq) >> (seq & 63);
    for (; w != 0; w &= w - 1) {
      if (--n == 0) {
        seq += low_bit(w);
        return seq < end ? seq : end;
      }
    }
    seq = (seq | 63) + 1;
  }
  return end;
}

/* Double the ring of live bits, keeping those of [head_seq, tail_seq). */
static int live_grow(ds_state_t *s) {
  uint32_t n = s->lwords > 0 ? s->lwords * 2 : LIVE_MIN_WORDS;
  uint64_t *bits = mem_alloc(s, (size_t)n * sizeof *bits), w;
  if (bits == NULL)
    return DS_ENOMEM;
  memset(bits, 0, (size_t)n * sizeof *bits);
  /* At most lwords + 1 words, each to a word of its own in the new ring. */
  if (s->head_seq < s->tail_seq) {
    for (w = s->head_seq >> 6; w <= (s->tail_seq - 1) >> 6; w++)
      bits[w & (n - 1)] = s->live[w & (s->lwords - 1)];
  }
  mem_free(s, s->live, (size_t)s->lwords * sizeof *bits);
  s->live = bits;
  s->lwords = n;
  return 0;
}

/* The number of the current entry of a live slot. */
static uint64_t slot_seq(const ds_state_t *s, uint32_t slot) {
  return s->head_seq + (uint32_t)(*seq_at(s, slot) - (uint32_t)s->head_seq);
}

/* Make stale the current entry of a live slot about to be removed. */
static void queue_drop(ds_state_t *s, uint32_t slot) {
  if (s->timeout > 0)
    live_clear(s, slot_seq(s, slot));
}

/* Reserve what touch() may need at time now: a marker, a queue place and
 * its live bit. */
static int touch_prepare(ds_state_t *s, int64_t now) {
  if (s->timeout == 0)
    return 0;
  if (now < s->last_time)
    return DS_EINVAL;
  if (s->mlen == s->mcap && marks_grow(s) != 0)
    return DS_ENOMEM;
  if (s->tail_seq + 1 - s->head_seq > (uint64_t)s->lwords * 64 &&
      live_grow(s) != 0)
    return DS_ENOMEM;
  if (s->qtail == NULL) {
    s->qtail = chunk_new(s);
    if (s->qtail == NULL)
      return DS_ENOMEM;
    s->qhead = s->qtail;
    s->qhead_first = s->qtail_first = s->tail_seq;
  } else if (s->tail_seq - s->qtail_first == QCHUNK && s->qtail->next == NULL) {
    s->qtail->next = chunk_new(s);
    if (s->qtail->next == NULL)
      return DS_ENOMEM;
  }
  return 0;
}

/* Whether the queue entry numbered seq for slot is current (see
 * slot_release() for why a free slot never matches). */
static int ref_current(const ds_state_t *s, uint32_t slot, uint64_t seq) {
  return *seq_at(s, slot) == (uint32_t)seq;
}

/* Drop stale entries, renumbering the rest from head_seq, in place. The
 * bit of w is set after that of r >= w is read, and no entry still to be
 * read shares it (it would be w + 64 * lwords >= tail_seq). */
static void queue_compact(ds_state_t *s) {
  qchunk_t *rc = s->qhead, *wc = s->qhead, *c;
  uint64_t rfirst = s->qhead_first, wfirst = s->qhead_first;
  uint64_t r = s->head_seq, w = s->head_seq;
  uint32_t mi = 0, mo = 0; /* marker read, markers written */
  for (;; r++) {
    uint32_t slot;
    r = live_next(s, r, s->tail_seq, NULL);
    if (r == s->tail_seq)
      break;
    while (r - rfirst >= QCHUNK) {
      rc = rc->next;
      rfirst += QCHUNK;
    }
    while (mi + 1 < s->mlen && mark_at(s, mi + 1)->first <= r)
      mi++;
    slot = rc->slot[r - rfirst];
    if (w - wfirst == QCHUNK) {
      wc = wc->next;
      wfirst += QCHUNK;
    }
    wc->slot[w - wfirst] = slot;
    *seq_at(s, slot) = (uint32_t)w;
    live_set(s, w);
    /* Markers are written at mo <= mi: never over one still to be read. */
    if (mo == 0 || mark_at(s, mo - 1)->time != mark_at(s, mi)->time) {
      marker_t m = {mark_at(s, mi)->time, w};
      *mark_at(s, mo++) = m;
    }
    w++;
  }
  for (c = wc->next; c != NULL;) {
    qchunk_t *next = c->next;
    mem_free(s, c, sizeof *c);
    c = next;
  }
  wc->next = NULL;
  s->qtail = wc;
  s->qtail_first = wfirst;
  s->tail_seq = w;
  s->mlen = mo;
  s->compactions++;
}

/* Record that slot (fresh: just inserted) was updated at now; after
 * touch_prepare(), cannot fail. */
static void touch(ds_state_t *s, uint32_t slot, int fresh, int64_t now) {
  marker_t *last;
  uint64_t old = 0;
  if (s->timeout == 0)
    return;
  s->last_time = now;
  if (s->head_seq == s->tail_seq)
    s->mlen = 0; /* markers of an empty queue mark nothing */
  last = s->mlen > 0 ? mark_at(s, s->mlen - 1) : NULL;
  if (last != NULL && last->time == now) {
    /* Already queued in this batch: its entry is at or after last->first. */
    if (!fresh && (uint32_t)(*seq_at(s, slot) - (uint32_t)last->first) <
                      (uint32_t)(s->tail_seq - last->first))
      return;
  } else {
    last = mark_at(s, s->mlen++);
    last->time = now;
    last->first = s->tail_seq;
  }
  if (!fresh)
    old = slot_seq(s, slot);
  if (s->tail_seq - s->qtail_first == QCHUNK) {
    s->qtail = s->qtail->next;
    s->qtail_first += QCHUNK;
  }
  s->qtail->slot[s->tail_seq - s->qtail_first] = slot;
  *seq_at(s, slot) = (uint32_t)s->tail_seq;
  live_set(s, s->tail_seq);
  if (!fresh)
    live_clear(s, old);
  s->tail_seq++;
  if (s->tail_seq - s->head_seq > (uint64_t)s->count + s->count / 4 + QCHUNK)
    queue_compact(s);
}

/* Move the front of the queue on to seq (<= tail_seq), freeing the chunks
 * left behind (but the tail's). */
static void queue_advance(ds_state_t *s, uint64_t seq) {
  s->head_seq = seq;
  while (s->head_seq - s->qhead_first >= QCHUNK && s->qhead != s->qtail) {
    qchunk_t *done = s->qhead;
    s->qhead = done->next;
    s->qhead_first += QCHUNK;
    mem_free(s, done, sizeof *done);
  }
}

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
  return s;
}

/* Free what the store holds, leaving fields to be reset. */
static void release_all(ds_state_t *s) {
  uint32_t i;
  qchunk_t *c;
  for (i = 0; i < s->npages; i++)
    mem_free(s, s->pages[i], page_bytes(s));
  mem_free(s, s->pages, s->pages_cap * sizeof *s->pages);
  for (i = 0; i < s->nslabs; i++)
    mem_free(s, s->slabs[i], SLAB_BYTES);
  mem_free(s, s->slabs, s->slabs_cap * sizeof *s->slabs);
  for (i = 0; i < s->nbig; i++) {
    if ((s->big[i].next & 1) == 0)
      mem_free(s, s->big[i].p, blob_total(s->big[i].p));
  }
  mem_free(s, s->big, s->big_cap * sizeof *s->big);
  mem_free(s, s->index, (size_t)s->cap * sizeof *s->index);
  for (c = s->qhead; c != NULL;) {
    qchunk_t *next = c->next;
    mem_free(s, c, sizeof *c);
    c = next;
  }
  mem_free(s, s->marks, s->mcap * sizeof *s->marks);
  mem_free(s, s->live, (size_t)s->lwords * sizeof *s->live);
  ds_buf_close(&s->scratch);
}

void ds_state_clear(ds_state_t *s) {
  ds_state_t empty;
  release_all(s);
  memset(&empty, 0, sizeof empty);
  empty.timeout = s->timeout;
  empty.last_time = INT64_MIN;
  empty.memory = s->memory; /* the struct itself */
  empty.visited = s->visited;
  empty.compactions = s->compactions;
  ds_buf_init(&empty.scratch);
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
  return s->memory + s->scratch.cap;
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

static int item_of(const ds_state_t *s, const uint64_t *cp,
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

/* Look up n number keys at once. One lookup is two dependent cache misses
 * (the index word at the key's home, then its entry); looking ahead, the
 * index words of keys FIND_AHEAD further on and the entries of keys
 * FIND_AHEAD / 2 further on are asked of the cache while the current key is
 * looked up, so the misses of a batch overlap instead of adding up. */
#define FIND_AHEAD 16

void ds_state_find_nums(const ds_state_t *s, const double *keys, uint32_t n,
                        int32_t *slots) {
  probe_t k;
  uint32_t i;
  for (i = 0; i < n; i++) {
    if (s->cap > 0 && i + FIND_AHEAD < n &&
        probe_num(&k, keys[i + FIND_AHEAD]) == 0)
      __builtin_prefetch(&s->index[idx_home(k.hash, s->cap)]);
    if (s->cap > 0 && i + FIND_AHEAD / 2 < n &&
        probe_num(&k, keys[i + FIND_AHEAD / 2]) == 0) {
      uint32_t w = s->index[idx_home(k.hash, s->cap)];
      if (w != 0)
        __builtin_prefetch(entry_at(s, (w & IDX_MASK) - 1));
    }
    slots[i] = probe_num(&k, keys[i]) == 0 ? index_find(s, &k, NULL) : -1;
  }
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

int ds_state_time(const ds_state_t *s, int slot, int64_t *time_ms) {
  uint64_t seq;
  uint32_t lo = 0, hi;
  if (!slot_live(s, slot))
    return DS_EINVAL;
  if (s->timeout == 0)
    return DS_ESTATE;
  /* The slot's entry is current, so within [head_seq, tail_seq). */
  seq = s->head_seq + (uint32_t)(*seq_at(s, (uint32_t)slot) -
                                 (uint32_t)s->head_seq);
  hi = s->mlen - 1;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo + 1) / 2;
    if (mark_at(s, mid)->first <= seq)
      lo = mid;
    else
      hi = mid - 1;
  }
  *time_ms = mark_at(s, lo)->time;
  return 0;
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
  if (v->len > INLINE_MAX && cell_is_ref(old) && !(old & REF_BIG)) {
    unsigned char *blob = blob_at(s, old & PAYLOAD_MASK);
    size_t total = varint_len(v->len) + (size_t)v->len;
    if (total <= BLOB_SLAB_MAX &&
        class_of(total) == class_of(blob_total(blob))) {
      /* v may be the old bytes themselves, borrowed: memmove. */
      memmove(blob + varint_len(v->len), v->ptr, v->len);
      varint_put(blob, v->len);
      return 0;
    }
  }
  err = cell_new(s, DS_STATE_ENC, v->ptr, v->len, &cell);
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
  return 0;
}

/* Insert k, known to be absent, with v. */
static int insert(ds_state_t *s, const probe_t *k, const ds_state_item_t *v,
                  int64_t now) {
  uint64_t key = k->cell, val = value_num_cell(v->num);
  uint32_t slot;
  entry_t *e;
  int err = touch_prepare(s, now);
  if (err == 0 && (uint64_t)(s->count + 1) * 5 > (uint64_t)s->cap * 4)
    err = index_grow(s);
  if (err == 0)
    err = slot_reserve(s);
  if (err == 0 && !k->direct)
    err = cell_new(s, k->kind, k->p, k->len, &key);
  if (err == 0 && v->kind == DS_STATE_ENC) {
    err = cell_new(s, DS_STATE_ENC, v->ptr, v->len, &val);
    if (err != 0)
      cell_drop(s, key);
  }
  if (err != 0)
    return err;
  slot = slot_take(s);
  e = entry_at(s, slot);
  e->key = key;
  e->val = val;
  index_put(s, s->index, s->cap, k->hash, slot);
  s->count++;
  touch(s, slot, 1, now);
  return (int)slot;
}

static int put(ds_state_t *s, const probe_t *k, const ds_state_item_t *v,
               int64_t now) {
  int slot, err;
  if (v->kind == DS_STATE_ENC && (v->len == 0 || v->ptr == NULL))
    return DS_EINVAL;
  slot = index_find(s, k, NULL);
  if (slot < 0)
    return insert(s, k, v, now);
  err = set(s, (uint32_t)slot, v, now);
  return err != 0 ? err : slot;
}

static ds_state_item_t num_item(double v) {
  ds_state_item_t it = {DS_STATE_NUM, 0, v, NULL};
  return it;
}

static ds_state_item_t enc_item(const char *p, uint32_t len) {
  ds_state_item_t it = {DS_STATE_ENC, len, 0, p};
  return it;
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
  return 0;
}

/* --- removing ------------------------------------------------------------ */

/* Remove the live slot whose index word is at pos. */
static void remove_at(ds_state_t *s, uint32_t slot, uint32_t pos) {
  entry_t *e = entry_at(s, slot);
  index_delete(s, pos);
  cell_drop(s, e->key);
  cell_drop(s, e->val);
  slot_release(s, slot);
  s->count--;
}

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

/* --- expiry -------------------------------------------------------------- */

/* Copy a slot's key and value into the scratch area and describe them. */
static int copy_out(ds_state_t *s, uint32_t slot, ds_state_item_t *key,
                    ds_state_item_t *value) {
  entry_t *e = entry_at(s, slot);
  ds_state_item_t k, v;
  char *p;
  item_of(s, &e->key, &k);
  item_of(s, &e->val, &v);
  ds_buf_truncate(&s->scratch, 0);
  if (ds_buf_reserve(&s->scratch, (size_t)k.len + v.len) != 0)
    return DS_ENOMEM;
  p = s->scratch.data;
  if (k.len > 0) {
    memcpy(p, k.ptr, k.len);
    k.ptr = p;
  }
  if (v.len > 0) {
    memcpy(p + k.len, v.ptr, v.len);
    v.ptr = p + k.len;
  }
  *key = k;
  *value = v;
  return 0;
}

/* The slot of queue entry seq, in [head_seq, tail_seq). */
static uint32_t queue_at(const ds_state_t *s, uint64_t seq) {
  const qchunk_t *c = s->qhead;
  uint64_t first = s->qhead_first;
  while (seq - first >= QCHUNK) {
    c = c->next;
    first += QCHUNK;
  }
  return c->slot[seq - first];
}

/* Ask the cache for what expiring the current entries after seq will read,
 * so that their misses overlap: EXPIRE_AHEAD of them ahead, the entry; half
 * as far, the index word at its key's home (numbers and inline bytes: a
 * blob would be a miss of its own), its entry asked for before. Looks only
 * EXPIRE_SPAN entries ahead, so that a long stale run costs once. */
static void expire_prefetch(const ds_state_t *s, uint64_t seq) {
#if defined(__GNUC__)
  uint64_t end = s->tail_seq - seq > EXPIRE_SPAN ? seq + EXPIRE_SPAN
                                                 : s->tail_seq;
  uint32_t slot;
  seq = live_nth(s, seq + 1, end, EXPIRE_AHEAD / 2);
  if (seq == end)
    return;
  slot = queue_at(s, seq);
  if (!cell_is_ref(entry_at(s, slot)->key))
    __builtin_prefetch(&s->index[idx_home(slot_hash(s, slot), s->cap)]);
  seq = live_nth(s, seq + 1, end, EXPIRE_AHEAD / 2);
  if (seq == end)
    return;
  slot = queue_at(s, seq);
  __builtin_prefetch(entry_at(s, slot));
  __builtin_prefetch(seq_at(s, slot), 1);
#else
  (void)s;
  (void)seq;
#endif
}

/* Stale entries in front are passed by their live bits (each word of them
 * that holds no current entry counts as one visited); each current entry
 * expired counts one. */
int ds_state_expire(ds_state_t *s, int64_t now_ms, ds_state_item_t *key,
                    ds_state_item_t *value) {
  int64_t limit;
  uint64_t seq;
  uint32_t slot;
  int err;
  if (s->timeout == 0 || now_ms < INT64_MIN + s->timeout)
    return 0;
  limit = now_ms - s->timeout;
  seq = live_next(s, s->head_seq, s->tail_seq, &s->visited);
  queue_advance(s, seq);
  if (seq == s->tail_seq)
    return 0;
  while (s->mlen > 1 && mark_at(s, 1)->first <= seq) {
    s->mhead = (s->mhead + 1) & (s->mcap - 1);
    s->mlen--;
  }
  if (mark_at(s, 0)->time > limit)
    return 0;
  slot = s->qhead->slot[seq - s->qhead_first];
  s->visited++;
  expire_prefetch(s, seq);
  err = copy_out(s, slot, key, value);
  if (err != 0)
    return err;
  s->head_seq++;
  remove_at(s, slot, index_pos_of(s, slot));
  return 1;
}

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

static int fail(char *errbuf, size_t errlen, int err, const char *fmt, ...) {
  if (errbuf != NULL && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
  }
  return err;
}

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
    return fail(rd->errbuf, rd->errlen, err, "state snapshot: frame at "
                "offset %zu: %s", rd->pos, why);
  return 0;
}

/* Read one INT from a frame's payload. */
static int read_int(reader_t *rd, ds_cursor_t *c, int64_t *out,
                    const char *what) {
  size_t at = rd->pos + c->base + c->pos;
  ds_codec_value_t v;
  if (ds_codec_read(c, &v, NULL, 0) != 0 || v.tag != DS_CODEC_INT)
    return fail(rd->errbuf, rd->errlen, DS_ECORRUPT, "state snapshot: %s at "
                "offset %zu is not an integer", what, at);
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
    return fail(rd->errbuf, rd->errlen, DS_ECORRUPT, "state snapshot: the "
                "frame at offset %zu is not a state snapshot header", rd->pos);
  err = read_int(rd, &c, &version, "the format version");
  if (err == 0 && version != DS_STATE_SNAPSHOT_VERSION)
    return fail(rd->errbuf, rd->errlen, DS_EVERSION, "state snapshot: format "
                "version %lld, this reader knows version %d",
                (long long)version, DS_STATE_SNAPSHOT_VERSION);
  if (err == 0)
    err = read_int(rd, &c, &count, "the key count");
  if (err == 0)
    err = read_int(rd, &c, &timeout, "the timeout");
  if (err == 0)
    err = read_int(rd, &c, time, "the snapshot time");
  if (err == 0 && (count < 0 || count > MAX_SLOTS || timeout < 0))
    err = fail(rd->errbuf, rd->errlen, DS_ECORRUPT, "state snapshot: header "
               "at offset %zu gives %lld keys and a timeout of %lld ms",
               rd->pos, (long long)count, (long long)timeout);
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
    return fail(rd->errbuf, rd->errlen, DS_ECORRUPT, "state snapshot: value "
                "at offset %zu is larger than 4 GiB", at);
  if (v.tag == DS_CODEC_INT || v.tag == DS_CODEC_DOUBLE) {
    *it = num_item(v.tag == DS_CODEC_INT ? (double)v.u.i : v.u.d);
    if (is_key && it->num != it->num)
      return fail(rd->errbuf, rd->errlen, DS_ECORRUPT, "state snapshot: key "
                  "at offset %zu is NaN", at);
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
      return fail(rd->errbuf, rd->errlen, DS_ECORRUPT, "state snapshot: key "
                  "at offset %zu appears twice", at);
    err = insert(s, &k, &value, time);
    if (err < 0)
      return fail(rd->errbuf, rd->errlen, err, "state snapshot: key at "
                  "offset %zu: %s", at, ds_strerror(err));
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
        return fail(rd->errbuf, rd->errlen, DS_ECORRUPT, "state snapshot: "
                    "frame at offset %zu holds more keys than the header's "
                    "%llu", rd->pos, (unsigned long long)keys);
      err = read_pairs(s, rd, &f, time);
      got += f.count;
      last = time;
    } else if (err == 0) {
      ds_cursor_t c;
      ds_cursor_init_frame(&c, &f);
      if (f.count != 1)
        return fail(rd->errbuf, rd->errlen, DS_ECORRUPT, "state snapshot: "
                    "frame at offset %zu is neither pairs nor a time",
                    rd->pos);
      err = read_int(rd, &c, &time, "the time");
      if (err == 0 && time < last)
        return fail(rd->errbuf, rd->errlen, DS_ECORRUPT, "state snapshot: "
                    "time frame at offset %zu goes back in time", rd->pos);
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
    return fail(errbuf, errlen, DS_ESTATE, "state snapshot: the store to "
                "restore into holds %lu keys", (unsigned long)s->count);
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
    slot = insert(s, k, &it, now);
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

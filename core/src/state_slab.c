/* State store memory: where keys and values live - cells, entry pages,
 * blob slabs and big blobs.
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
 * BLOBS: bytes that do not fit a cell go, with a varint length in front,
 * into 64 KiB slabs cut into 24 size classes (8, 16, ... 64, then four per
 * doubling up to 1024 bytes: at most 25% rounding); a freed blob joins its
 * class's free list, linked through its first 4 bytes. Larger blobs are one
 * allocation each. A value rewritten with a length of the same class is
 * rewritten in place.
 *
 * INVARIANTS: every allocation is counted in s->memory (ds_state_memory());
 * a fallible function here changes nothing when it fails, so the store's
 * callers can reserve before they change anything.
 *
 * COSTS: 16 bytes per slot, 4 more with a timeout; a blob its size class
 * (at most 25% over its varint length and bytes), a big blob one
 * allocation. Allocating or freeing a blob is O(1) but for the class
 * search (at most 24 steps over a small table).
 */
#include <string.h>

#include "dstream/alloc.h"
#include "state_internal.h"

static const uint16_t class_size[NCLASS] = {
    8,   16,  24,  32,  40,  48,  56,  64,  80,  96,  112, 128,
    160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024};

/* --- memory -------------------------------------------------------------- */

void *ds__state_alloc(ds_state_t *s, size_t n) {
  void *p = ds_malloc(n);
  if (p != NULL)
    s->memory += n;
  return p;
}

void ds__state_dealloc(ds_state_t *s, void *p, size_t n) {
  if (p != NULL) {
    ds_free(p);
    s->memory -= n;
  }
}

void *ds__state_grow(ds_state_t *s, void *arr, uint32_t *cap, size_t elem,
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

/* --- blobs ---------------------------------------------------------------- */

static unsigned class_of(size_t total) {
  unsigned c = 0;
  while (class_size[c] < total)
    c++;
  return c;
}

static int slab_add(ds_state_t *s) {
  unsigned char **dir, *p;
  if (s->nslabs == MAX_SLABS)
    return DS_ERANGE;
  dir = ds__state_grow(s, s->slabs, &s->slabs_cap, sizeof *dir, s->nslabs + 1);
  if (dir == NULL)
    return DS_ENOMEM;
  s->slabs = dir;
  p = ds__state_alloc(s, SLAB_BYTES);
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
    dir = ds__state_grow(s, s->big, &s->big_cap, sizeof *dir, s->nbig + 1);
    if (dir == NULL)
      return DS_ENOMEM;
    s->big = dir;
  }
  p = ds__state_alloc(s, total);
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

void ds__blob_free(ds_state_t *s, uint64_t ref) {
  unsigned char *p = blob_at(s, ref);
  size_t total = blob_total(p);
  if (ref & REF_BIG) {
    uint32_t i = (uint32_t)ref;
    ds__state_dealloc(s, p, total);
    s->big[i].next = (uintptr_t)s->big_free << 1 | 1;
    s->big_free = i + 1;
  } else {
    unsigned c = class_of(total);
    memcpy(p, &s->free_blob[c], sizeof(uint32_t));
    s->free_blob[c] = (uint32_t)ref + 1;
  }
}

int ds__blob_rewrite(ds_state_t *s, uint64_t old, const char *p,
                     uint32_t len) {
  unsigned char *blob;
  size_t total = varint_len(len) + (size_t)len;
  if (len <= INLINE_MAX || !cell_is_ref(old) || (old & REF_BIG))
    return 0;
  blob = blob_at(s, old & PAYLOAD_MASK);
  if (total > BLOB_SLAB_MAX || class_of(total) != class_of(blob_total(blob)))
    return 0;
  /* p may be the old bytes themselves, borrowed: memmove. */
  memmove(blob + varint_len(len), p, len);
  varint_put(blob, len);
  return 1;
}

int ds__cell_new(ds_state_t *s, int kind, const void *p, uint32_t len,
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

/* --- entry pages ---------------------------------------------------------- */

int ds__slot_page_add(ds_state_t *s) {
  unsigned char **dir, *page;
  if (s->used >= MAX_SLOTS)
    return DS_ERANGE;
  dir = ds__state_grow(s, s->pages, &s->pages_cap, sizeof *dir, s->npages + 1);
  if (dir == NULL)
    return DS_ENOMEM;
  s->pages = dir;
  if (s->tracking &&
      ds__track_bits(s, (s->npages + 1) * PAGE_SLOTS) != 0)
    return DS_ENOMEM;
  page = ds__state_alloc(s, page_bytes(s));
  if (page == NULL)
    return DS_ENOMEM;
  s->pages[s->npages++] = page;
  return 0;
}

void ds__slab_release(ds_state_t *s) {
  uint32_t i;
  for (i = 0; i < s->npages; i++)
    ds__state_dealloc(s, s->pages[i], page_bytes(s));
  ds__state_dealloc(s, s->pages, s->pages_cap * sizeof *s->pages);
  for (i = 0; i < s->nslabs; i++)
    ds__state_dealloc(s, s->slabs[i], SLAB_BYTES);
  ds__state_dealloc(s, s->slabs, s->slabs_cap * sizeof *s->slabs);
  for (i = 0; i < s->nbig; i++) {
    if ((s->big[i].next & 1) == 0)
      ds__state_dealloc(s, s->big[i].p, blob_total(s->big[i].p));
  }
  ds__state_dealloc(s, s->big, s->big_cap * sizeof *s->big);
}

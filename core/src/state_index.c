/* State store index: from a key to its slot, Robin Hood, no tombstones.
 *
 * The index is a separate open-addressing table of 32-bit words: 25 bits of
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
 * WHERE THE LOOKUP IS: index_find(), the probe every lookup and put makes,
 * is static inline in state_internal.h so that it stays inlined into the
 * store's per-record functions; what changes the index is here.
 *
 * COSTS: a lookup reads typically one index word and one entry; an insert
 * the words of the rest of its cluster; a removal likewise, reading no
 * entry but for saturated words; growth rehashes every live key.
 */
#include "dstream/alloc.h"
#include "state_internal.h"

#define INDEX_MIN 16

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

/* Add slot, whose key hashes to hash, to index (cap positions, not full):
 * from its home on, it takes the place of the first word nearer its own
 * home, which goes on the same way (Robin Hood). */
void ds__index_put(const ds_state_t *s, uint32_t *index, uint32_t cap,
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

/* Rebuild the index half as large again (INDEX_MIN at first) from the
 * entries; DS_ENOMEM leaves the old one. */
int ds__index_grow(ds_state_t *s) {
  uint32_t cap = s->cap > 0 ? s->cap + s->cap / 2 : INDEX_MIN, slot;
  uint32_t *index = ds_calloc(cap, sizeof *index);
  if (index == NULL)
    return DS_ENOMEM;
  for (slot = 0; slot < s->used; slot++) {
    if (!cell_is_free(entry_at(s, slot)->key))
      ds__index_put(s, index, cap, slot_hash(s, slot), slot);
  }
  ds__state_dealloc(s, s->index, (size_t)s->cap * sizeof *index);
  s->memory += (size_t)cap * sizeof *index;
  s->index = index;
  s->cap = cap;
  return 0;
}

/* Empty the word at hole, shifting the words after it in its cluster back
 * by one until one at its home (no tombstones). Reads index words only, but
 * for a word DIST_SAT or more from its home. */
void ds__index_delete(ds_state_t *s, uint32_t hole) {
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

int ds__index_reserve(ds_state_t *s, uint32_t count) {
  uint32_t cap = s->cap > 0 ? s->cap : INDEX_MIN;
  uint32_t *index;
  if (s->count != 0)
    return 0; /* only an empty store: nothing to rehash */
  while ((uint64_t)count * 5 > (uint64_t)cap * 4) {
    if (cap > UINT32_MAX / 3 * 2)
      return 0; /* inserting will say what is wrong */
    cap += cap / 2;
  }
  if (cap <= s->cap)
    return 0;
  index = ds_calloc(cap, sizeof *index);
  if (index == NULL)
    return DS_ENOMEM;
  ds__state_dealloc(s, s->index, (size_t)s->cap * sizeof *index);
  s->memory += (size_t)cap * sizeof *index;
  s->index = index;
  s->cap = cap;
  return 0;
}

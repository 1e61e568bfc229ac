/* Words and the word-counting table: see dstream/words.h for what a word is
 * and how the table is laid out.
 *
 * WHY FNV-1a: the hash is computed in the same loop that finds the word's
 * end, one step per byte, so a word is read once; it is the hash of the plain
 * C baseline (bench/wordcount_c.c), which keeps the comparison about the
 * engine, not about hash functions.
 *
 * HOW A FAILED ADD IS UNDONE: the call notes the entry count, the arena's
 * length and the total before it starts. On failure it splits again the
 * bytes it had counted, decrements the words whose entries existed before
 * (the others are dropped whole by cutting the entries and the arena back),
 * and rebuilds the index from the entries that remain. None of that
 * allocates, so undoing cannot itself fail.
 */
#include <string.h>

#include "dstream/alloc.h"
#include "dstream/error.h"
#include "dstream/words.h"

#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u
#define MIN_SLOTS 1024
#define MIN_ENTRIES 256
#define MIN_BYTES 4096
#define TAG_MASK 0xffffffff00000000ull

static const unsigned char SPACE[256] = {
  ['\t'] = 1, ['\n'] = 1, ['\v'] = 1, ['\f'] = 1, ['\r'] = 1, [' '] = 1,
};

int ds_words_is_space(unsigned char c) {
  return SPACE[c];
}

int ds_words_next(const char *s, size_t len, size_t *off, size_t *start, size_t *wlen) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = *off, j;
  while (i < len && SPACE[p[i]])
    i++;
  if (i >= len) {
    *off = len;
    return 0;
  }
  j = i;
  while (j < len && !SPACE[p[j]])
    j++;
  *start = i;
  *wlen = j - i;
  *off = j;
  return 1;
}

void ds_words_init(ds_words_t *w) {
  memset(w, 0, sizeof(*w));
}

void ds_words_close(ds_words_t *w) {
  ds_free(w->index);
  ds_free(w->entries);
  ds_free(w->bytes);
  ds_words_init(w);
}

static void index_put(uint64_t *index, size_t mask, uint32_t hash, size_t entry) {
  size_t i = hash & mask;
  while (index[i] != 0)
    i = (i + 1) & mask;
  index[i] = (uint64_t)hash << 32 | (uint64_t)(entry + 1);
}

/* A new index of `slots` slots holding every entry; the old one is freed. */
static int index_resize(ds_words_t *w, size_t slots) {
  uint64_t *index = ds_calloc(slots, sizeof(*index));
  if (index == NULL)
    return DS_ENOMEM;
  for (size_t e = 0; e < w->n; e++)
    index_put(index, slots - 1, w->entries[e].hash, e);
  ds_free(w->index);
  w->index = index;
  w->mask = slots - 1;
  return 0;
}

/* Room for one more entry of len bytes: every allocation a new word needs,
 * made before anything of it is stored. */
static int reserve(ds_words_t *w, size_t len) {
  int rc;
  if (len > UINT32_MAX || w->n >= UINT32_MAX - 1)
    return DS_ERANGE;
  if (w->index == NULL || (w->n + 1) * 2 > w->mask + 1) {
    rc = index_resize(w, w->index == NULL ? MIN_SLOTS : (w->mask + 1) * 2);
    if (rc != 0)
      return rc;
  }
  if (w->n == w->ecap) {
    size_t cap = w->ecap ? w->ecap * 2 : MIN_ENTRIES;
    ds_words_entry_t *e = ds_realloc(w->entries, cap * sizeof(*e));
    if (e == NULL)
      return DS_ENOMEM;
    w->entries = e;
    w->ecap = cap;
  }
  if (len > w->bcap - w->blen) {
    size_t cap = w->bcap ? w->bcap : MIN_BYTES;
    char *b;
    while (len > cap - w->blen) {
      if (cap > SIZE_MAX / 2)
        return DS_ENOMEM;
      cap *= 2;
    }
    b = ds_realloc(w->bytes, cap);
    if (b == NULL)
      return DS_ENOMEM;
    w->bytes = b;
    w->bcap = cap;
  }
  return 0;
}

/* The entry of word, or NULL. */
static ds_words_entry_t *find(const ds_words_t *w, const unsigned char *word, size_t len,
                              uint32_t hash) {
  uint64_t tag = (uint64_t)hash << 32;
  size_t i;
  if (w->index == NULL)
    return NULL;
  for (i = hash & w->mask; w->index[i] != 0; i = (i + 1) & w->mask) {
    uint64_t slot = w->index[i];
    if ((slot & TAG_MASK) == tag) {
      ds_words_entry_t *e = &w->entries[(uint32_t)slot - 1];
      if (e->len == len && memcmp(w->bytes + e->off, word, len) == 0)
        return e;
    }
  }
  return NULL;
}

/* A word not in the table yet: a new entry with count 1. */
static int insert(ds_words_t *w, const unsigned char *word, size_t len, uint32_t hash) {
  ds_words_entry_t *e;
  int rc = reserve(w, len);
  if (rc != 0)
    return rc;
  e = &w->entries[w->n];
  e->off = w->blen;
  e->len = (uint32_t)len;
  e->hash = hash;
  e->count = 1;
  if (len > 0)
    memcpy(w->bytes + w->blen, word, len);
  w->blen += len;
  index_put(w->index, w->mask, hash, w->n);
  w->n++;
  return 0;
}

static inline int count_one(ds_words_t *w, const unsigned char *word, size_t len, uint32_t hash) {
  ds_words_entry_t *e = find(w, word, len, hash);
  if (e != NULL) {
    e->count++;
    return 0;
  }
  return insert(w, word, len, hash);
}

/* Count the words of s[0, len); on failure *fail_off is where the word that
 * could not be counted starts (the words before it are counted). */
static int count_span(ds_words_t *w, const char *s, size_t len, size_t *fail_off) {
  const unsigned char *start = (const unsigned char *)s, *p = start, *end = start + len;
  uint64_t words = 0;
  for (;;) {
    const unsigned char *word;
    uint32_t hash = FNV_OFFSET;
    int rc;
    while (p < end && SPACE[*p])
      p++;
    if (p == end)
      break;
    word = p;
    while (p < end && !SPACE[*p])
      hash = (hash ^ *p++) * FNV_PRIME;
    rc = count_one(w, word, (size_t)(p - word), hash);
    if (rc != 0) {
      *fail_off = (size_t)(word - start);
      w->total += words;
      return rc;
    }
    words++;
  }
  w->total += words;
  return 0;
}

/* Take the words of s[0, len) out again, but only from entries older than
 * n_mark (the newer ones are dropped whole by undo_finish). */
static void uncount_span(ds_words_t *w, const char *s, size_t len, size_t n_mark) {
  size_t off = 0, start, wlen;
  while (ds_words_next(s, len, &off, &start, &wlen)) {
    const unsigned char *word = (const unsigned char *)s + start;
    uint32_t hash = FNV_OFFSET;
    ds_words_entry_t *e;
    for (size_t i = 0; i < wlen; i++)
      hash = (hash ^ word[i]) * FNV_PRIME;
    e = find(w, word, wlen, hash);
    if (e != NULL && (size_t)(e - w->entries) < n_mark)
      e->count--;
  }
}

typedef struct {
  size_t n, blen;
  uint64_t total;
} mark_t;

static mark_t mark_of(const ds_words_t *w) {
  mark_t m = {w->n, w->blen, w->total};
  return m;
}

/* Cut the entries and the arena back to m and rebuild the index in place. */
static void undo_finish(ds_words_t *w, mark_t m) {
  w->n = m.n;
  w->blen = m.blen;
  w->total = m.total;
  if (w->index != NULL) {
    memset(w->index, 0, (w->mask + 1) * sizeof(*w->index));
    for (size_t e = 0; e < w->n; e++)
      index_put(w->index, w->mask, w->entries[e].hash, e);
  }
}

int ds_words_add(ds_words_t *w, const char *s, size_t len) {
  mark_t m = mark_of(w);
  size_t fail_off = 0;
  int rc = count_span(w, s, len, &fail_off);
  if (rc != 0) {
    uncount_span(w, s, fail_off, m.n);
    undo_finish(w, m);
  }
  return rc;
}

int ds_words_add_block(ds_words_t *w, const ds_block_t *blk) {
  mark_t m = mark_of(w);
  size_t off = 0, len, fail_off = 0;
  const char *rec;
  int rc = 0;
  while (ds_block_next(blk, &off, &rec, &len)) {
    rc = count_span(w, rec, len, &fail_off);
    if (rc != 0)
      break;
  }
  if (rc != 0) {
    size_t failed_at = (size_t)(rec - blk->data), roff = 0;
    const char *r;
    size_t rlen;
    while (ds_block_next(blk, &roff, &r, &rlen) && (size_t)(r - blk->data) < failed_at)
      uncount_span(w, r, rlen, m.n);
    uncount_span(w, rec, fail_off, m.n);
    undo_finish(w, m);
  }
  return rc;
}

size_t ds_words_distinct(const ds_words_t *w) {
  return w->n;
}

void ds_words_get(const ds_words_t *w, size_t i, const char **word, size_t *len, uint64_t *count) {
  const ds_words_entry_t *e = &w->entries[i];
  *word = w->bytes + e->off;
  *len = e->len;
  *count = e->count;
}

void ds_words_clear(ds_words_t *w) {
  size_t used = w->n;
  w->n = 0;
  w->blen = 0;
  w->total = 0;
  if (w->index == NULL)
    return;
  /* A table sized for a burst is not kept (nor cleared slot by slot) for
   * the quiet batches after it. */
  if (w->mask + 1 > MIN_SLOTS && (used * 2 + MIN_SLOTS) * 8 < w->mask + 1) {
    ds_words_close(w);
    return;
  }
  memset(w->index, 0, (w->mask + 1) * sizeof(*w->index));
}

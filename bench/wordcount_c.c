/* wordcount_c: baseline (d) of the word-count benchmark, plain C.
 *
 *   wordcount_c [INPUT] [--dump PATH]
 *
 * What the word count costs with no Lua at all: the file is mapped, split
 * into words (maximal runs of bytes other than " \t\n\v\f\r", as Lua's %S),
 * and each word counted in an open-addressing hash table whose keys point
 * into the mapping, so nothing is copied. INPUT defaults to
 * bench/data/words.txt (relative to the working directory; make it with
 * bench/gen_text.lua).
 *
 * It prints the JSON line every variant prints (bench/wordcount_common.lua
 * describes the fields), variant "plain_c", with the same checksum: the sum
 * over distinct words of count * FNV-1a-32(word), mod 2^32. --dump PATH
 * writes "word count" lines sorted by the words' bytes (shorter first on a
 * common prefix, as LuaJIT compares strings), the same file the Lua
 * variants' --dump writes.
 *
 * HOW THE TABLE WORKS: a power-of-two array of slots probed linearly from
 * hash & mask; each slot keeps the word's hash so most mismatches cost one
 * integer compare; the table doubles when half full.
 *
 * COSTS: one pass over the bytes; memory the mapping plus 32 bytes a slot.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_INPUT "bench/data/words.txt"
#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u

typedef struct {
  const unsigned char *word; /* into the mapping; NULL for an empty slot */
  size_t len;
  uint64_t count;
  uint32_t hash;
} wc_slot_t;

typedef struct {
  wc_slot_t *slots;
  size_t mask; /* capacity - 1, capacity a power of two */
  size_t used;
} wc_table_t;

static const unsigned char is_space[256] = {
  ['\t'] = 1, ['\n'] = 1, ['\v'] = 1, ['\f'] = 1, ['\r'] = 1, [' '] = 1,
};

static void die(const char *what, const char *detail) {
  fprintf(stderr, "wordcount_c: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(1);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void table_init(wc_table_t *t, size_t capacity) {
  t->slots = calloc(capacity, sizeof(wc_slot_t));
  if (t->slots == NULL) die("out of memory", NULL);
  t->mask = capacity - 1;
  t->used = 0;
}

/* Moves every word into a table twice as large. */
static void table_grow(wc_table_t *t) {
  wc_table_t bigger;
  table_init(&bigger, (t->mask + 1) * 2);
  for (size_t i = 0; i <= t->mask; i++) {
    const wc_slot_t *s = &t->slots[i];
    if (s->word == NULL) continue;
    size_t j = s->hash & bigger.mask;
    while (bigger.slots[j].word != NULL) j = (j + 1) & bigger.mask;
    bigger.slots[j] = *s;
  }
  bigger.used = t->used;
  free(t->slots);
  *t = bigger;
}

/* Counts one occurrence of the word [w, w + len); w stays borrowed from the
 * caller for the table's life. */
static void table_count(wc_table_t *t, const unsigned char *w, size_t len, uint32_t hash) {
  size_t i = hash & t->mask;
  for (;;) {
    wc_slot_t *s = &t->slots[i];
    if (s->word == NULL) break;
    if (s->hash == hash && s->len == len && memcmp(s->word, w, len) == 0) {
      s->count++;
      return;
    }
    i = (i + 1) & t->mask;
  }
  if ((t->used + 1) * 2 > t->mask + 1) {
    table_grow(t);
    table_count(t, w, len, hash);
    return;
  }
  t->slots[i] = (wc_slot_t){.word = w, .len = len, .count = 1, .hash = hash};
  t->used++;
}

/* Counts the words of data[0, size); returns the total number of words. */
static uint64_t count_words(wc_table_t *t, const unsigned char *data, size_t size) {
  const unsigned char *p = data, *end = data + size;
  uint64_t words = 0;
  for (;;) {
    while (p < end && is_space[*p]) p++;
    if (p == end) return words;
    const unsigned char *w = p;
    uint32_t hash = FNV_OFFSET;
    while (p < end && !is_space[*p]) hash = (hash ^ *p++) * FNV_PRIME;
    table_count(t, w, (size_t)(p - w), hash);
    words++;
  }
}

static uint32_t table_checksum(const wc_table_t *t) {
  uint32_t sum = 0;
  for (size_t i = 0; i <= t->mask; i++)
    if (t->slots[i].word != NULL) sum += (uint32_t)t->slots[i].count * t->slots[i].hash;
  return sum;
}

static int compare_slots(const void *a, const void *b) {
  const wc_slot_t *x = a, *y = b;
  int c = memcmp(x->word, y->word, x->len < y->len ? x->len : y->len);
  if (c != 0) return c;
  return (x->len > y->len) - (x->len < y->len);
}

/* Writes "word count" lines sorted by bytes to path; sorts t's slots in place. */
static void table_dump(wc_table_t *t, const char *path) {
  size_t n = 0;
  for (size_t i = 0; i <= t->mask; i++)
    if (t->slots[i].word != NULL) t->slots[n++] = t->slots[i];
  qsort(t->slots, n, sizeof(wc_slot_t), compare_slots);
  FILE *f = fopen(path, "wb");
  if (f == NULL) die(path, strerror(errno));
  for (size_t i = 0; i < n; i++) {
    fwrite(t->slots[i].word, 1, t->slots[i].len, f);
    fprintf(f, " %llu\n", (unsigned long long)t->slots[i].count);
  }
  if (fclose(f) != 0) die(path, strerror(errno));
}

int main(int argc, char **argv) {
  const char *input = NULL, *dump = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc) {
      dump = argv[++i];
    } else if (input == NULL && strncmp(argv[i], "--", 2) != 0) {
      input = argv[i];
    } else {
      fprintf(stderr, "usage: wordcount_c [INPUT (default %s)] [--dump PATH]\n", DEFAULT_INPUT);
      return 1;
    }
  }
  if (input == NULL) input = DEFAULT_INPUT;

  double started = now();
  int fd = open(input, O_RDONLY);
  if (fd < 0) die(input, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) die(input, strerror(errno));
  size_t size = (size_t)st.st_size;
  const unsigned char *data = NULL;
  if (size > 0) {
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) die(input, strerror(errno));
    madvise(map, size, MADV_SEQUENTIAL);
    data = map;
  }
  wc_table_t table;
  table_init(&table, 1024);
  uint64_t words = size > 0 ? count_words(&table, data, size) : 0;
  double seconds = now() - started;
  double rate = seconds > 0 ? (double)words / seconds : 0;

  printf("{\"bench\":\"wordcount\",\"variant\":\"plain_c\",\"words\":%llu,\"distinct\":%zu,"
         "\"seconds\":%.6f,\"words_per_s\":%.0f,\"checksum\":%u}\n",
         (unsigned long long)words, table.used, seconds, rate,
         (unsigned)table_checksum(&table));
  fflush(stdout);
  if (dump != NULL) table_dump(&table, dump);
  free(table.slots);
  if (size > 0) munmap((void *)data, size);
  close(fd);
  return 0;
}

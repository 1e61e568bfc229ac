/* builtins_c: the plain C word counter reading a socket, the baseline of
 * bench/builtins.lua's socket variant.
 *
 *   builtins_c PORT [HOST (default 127.0.0.1)]
 *
 * bench/wordcount_c.c counts a mapped file; this is the same counter fed by
 * a TCP connection instead, as dstream's socketTextStream is: it connects,
 * reads 1 MiB at a time until EOF, and splits and counts as the bytes come
 * (a word cut by a read is carried to the next). Words are maximal runs of
 * bytes other than " \t\n\v\f\r" (Lua's %S); each distinct word's bytes are
 * copied once into an arena; the table is wordcount_c's (open addressing,
 * FNV-1a, doubled when half full). It prints the JSON line of every
 * wordcount variant (bench/wordcount_common.lua), variant
 * "plain_c_socket", with the same checksum; `seconds` runs from connect()
 * to the count of the last word.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u
#define CHUNK (1024 * 1024)

typedef struct {
  size_t off; /* of the word in the arena; len 0 marks an empty slot */
  size_t len;
  uint64_t count;
  uint32_t hash;
} bc_slot_t;

typedef struct {
  bc_slot_t *slots;
  size_t mask, used;
  char *arena;
  size_t alen, acap;
} bc_table_t;

static const unsigned char is_space[256] = {
  ['\t'] = 1, ['\n'] = 1, ['\v'] = 1, ['\f'] = 1, ['\r'] = 1, [' '] = 1,
};

static void die(const char *what, const char *detail) {
  fprintf(stderr, "builtins_c: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(1);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void table_init(bc_table_t *t, size_t capacity) {
  t->slots = calloc(capacity, sizeof(bc_slot_t));
  if (t->slots == NULL) die("out of memory", NULL);
  t->mask = capacity - 1;
  t->used = 0;
}

static void table_grow(bc_table_t *t) {
  bc_slot_t *old = t->slots;
  size_t n = t->mask + 1;
  t->slots = calloc(n * 2, sizeof(bc_slot_t));
  if (t->slots == NULL) die("out of memory", NULL);
  t->mask = n * 2 - 1;
  for (size_t i = 0; i < n; i++) {
    if (old[i].len == 0) continue;
    size_t j = old[i].hash & t->mask;
    while (t->slots[j].len != 0) j = (j + 1) & t->mask;
    t->slots[j] = old[i];
  }
  free(old);
}

static void table_count(bc_table_t *t, const unsigned char *w, size_t len, uint32_t hash) {
  size_t i = hash & t->mask;
  for (;;) {
    bc_slot_t *s = &t->slots[i];
    if (s->len == 0) break;
    if (s->hash == hash && s->len == len && memcmp(t->arena + s->off, w, len) == 0) {
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
  while (t->alen + len > t->acap) {
    t->acap = t->acap ? t->acap * 2 : 65536;
    t->arena = realloc(t->arena, t->acap);
    if (t->arena == NULL) die("out of memory", NULL);
  }
  memcpy(t->arena + t->alen, w, len);
  t->slots[i] = (bc_slot_t){.off = t->alen, .len = len, .count = 1, .hash = hash};
  t->alen += len;
  t->used++;
}

/* Counts the whole words of data[0, size); returns how many bytes at the
 * end are an unfinished word (unless last: then it is counted too). */
static size_t count_words(bc_table_t *t, const unsigned char *data, size_t size, int last,
                          uint64_t *words) {
  const unsigned char *p = data, *end = data + size;
  for (;;) {
    while (p < end && is_space[*p]) p++;
    if (p == end) return 0;
    const unsigned char *w = p;
    uint32_t hash = FNV_OFFSET;
    while (p < end && !is_space[*p]) hash = (hash ^ *p++) * FNV_PRIME;
    if (p == end && !last) return (size_t)(p - w);
    table_count(t, w, (size_t)(p - w), hash);
    (*words)++;
  }
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: builtins_c PORT [HOST]\n");
    return 1;
  }
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
  if (inet_pton(AF_INET, argc > 2 ? argv[2] : "127.0.0.1", &addr.sin_addr) != 1) die("bad host", argv[2]);
  unsigned char *buf = malloc(CHUNK * 2);
  if (buf == NULL) die("out of memory", NULL);
  bc_table_t table = {0};
  table_init(&table, 1024);
  uint64_t words = 0;
  size_t carry = 0;
  double started = now();
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) die("connect", strerror(errno));
  for (;;) {
    ssize_t got = read(fd, buf + carry, CHUNK);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) die("read", strerror(errno));
    size_t size = carry + (size_t)got;
    size_t rest = count_words(&table, buf, size, got == 0, &words);
    if (got == 0) break;
    /* A word longer than a chunk keeps growing the carry: make room. */
    if (rest >= CHUNK) {
      unsigned char *bigger = malloc(rest + CHUNK);
      if (bigger == NULL) die("out of memory", NULL);
      memcpy(bigger, buf + size - rest, rest);
      free(buf);
      buf = bigger;
    } else {
      memmove(buf, buf + size - rest, rest);
    }
    carry = rest;
  }
  double seconds = now() - started;
  close(fd);
  uint32_t sum = 0;
  for (size_t i = 0; i <= table.mask; i++)
    if (table.slots[i].len != 0) sum += (uint32_t)table.slots[i].count * table.slots[i].hash;
  printf("{\"bench\":\"wordcount\",\"variant\":\"plain_c_socket\",\"words\":%llu,\"distinct\":%zu,"
         "\"seconds\":%.6f,\"words_per_s\":%.0f,\"checksum\":%u}\n",
         (unsigned long long)words, table.used, seconds, seconds > 0 ? (double)words / seconds : 0, sum);
  free(table.slots);
  free(table.arena);
  free(buf);
  return 0;
}

/* Directory scans: see dstream/dirscan.h.
 *
 * HOW NAMES ARE KEPT: an open-addressing hash set (linear probing, FNV-1a,
 * at most 3/4 full) of name -> d_ino. Each scan bumps `mark`; readdir sets
 * the mark of every name it finds, so after the pass the names whose mark
 * is old are the ones gone. Deleting shifts the following cluster back
 * (no tombstones), so a set that follows a directory for months stays as
 * fast as a new one.
 *
 * ON ERROR NOTHING CHANGES: a scan first reads the whole directory, noting
 * new names and changed inode numbers aside, and allocates everything the
 * commit needs (a bigger table, the result arrays); only then does it
 * change the set, with no step left that can fail. Marks set by a failed
 * scan are harmless: the next scan uses a new mark.
 *
 * COSTS: a scan is one readdir pass plus one lookup per entry; a pass over
 * the table's slots finds the gone names; allocation only for new names.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dstream/alloc.h"
#include "dstream/dirscan.h"
#include "dstream/error.h"
#include "internal.h"

typedef struct {
  char *name;       /* owned until committed into the set */
  uint64_t ino;
  uint32_t hash;
  size_t slot;      /* for a changed inode: the slot holding the name */
} pending_t;

typedef struct {
  pending_t *items;
  size_t n, cap;
} pending_list_t;

static uint32_t hash_name(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s != '\0'; s++) {
    h ^= (unsigned char)*s;
    h *= 16777619u;
  }
  return h;
}

void ds_dirscan_init(ds_dirscan_t *sc) {
  memset(sc, 0, sizeof(*sc));
}

static void free_gone(ds_dirscan_t *sc) {
  size_t i;
  for (i = 0; i < sc->ngone; i++)
    ds_free(sc->gone[i]);
  ds_free(sc->gone);
  sc->gone = NULL;
  sc->ngone = 0;
}

void ds_dirscan_close(ds_dirscan_t *sc) {
  size_t i;
  for (i = 0; i < sc->cap; i++)
    ds_free(sc->slots[i].name);
  ds_free(sc->slots);
  ds_free(sc->changed);
  free_gone(sc);
  memset(sc, 0, sizeof(*sc));
}

/* The slot holding name, or the free slot where it would go. */
static size_t find_slot(const ds_dirscan_slot_t *slots, size_t cap, const char *name, uint32_t h) {
  size_t i = h & (cap - 1);
  while (slots[i].name != NULL && (slots[i].hash != h || strcmp(slots[i].name, name) != 0))
    i = (i + 1) & (cap - 1);
  return i;
}

/* Remove the entry at slot i, shifting back the rest of its cluster. */
static void delete_slot(ds_dirscan_slot_t *slots, size_t cap, size_t i) {
  size_t j = i;
  slots[i].name = NULL;
  for (;;) {
    size_t home;
    j = (j + 1) & (cap - 1);
    if (slots[j].name == NULL)
      return;
    home = slots[j].hash & (cap - 1);
    /* Move j back into the hole at i unless its home lies in (i, j]. */
    if ((i <= j) ? (i < home && home <= j) : (i < home || home <= j))
      continue;
    slots[i] = slots[j];
    slots[j].name = NULL;
    i = j;
  }
}

static int push_pending(pending_list_t *p, pending_t item) {
  if (p->n == p->cap) {
    size_t ncap = p->cap > 0 ? p->cap * 2 : 16;
    pending_t *grown = ds_realloc(p->items, ncap * sizeof(*grown));
    if (grown == NULL)
      return ENOMEM;
    p->items = grown;
    p->cap = ncap;
  }
  p->items[p->n++] = item;
  return 0;
}

static void free_pending(pending_list_t *p) {
  size_t i;
  for (i = 0; i < p->n; i++)
    ds_free(p->items[i].name);
  ds_free(p->items);
}

/* One readdir pass: mark known names, note new names and changed inode
 * numbers in fresh / moved. Returns 0 or an errno value. */
static int read_entries(ds_dirscan_t *sc, DIR *d, pending_list_t *fresh, pending_list_t *moved) {
  struct dirent *e;
  for (;;) {
    pending_t item;
    uint32_t h;
    size_t i;
    errno = 0;
    if ((e = readdir(d)) == NULL)
      return errno;
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    h = hash_name(e->d_name);
    item.ino = (uint64_t)e->d_ino;
    item.hash = h;
    item.name = NULL;
    item.slot = 0;
    if (sc->cap > 0) {
      i = find_slot(sc->slots, sc->cap, e->d_name, h);
      if (sc->slots[i].name != NULL) {
        sc->slots[i].mark = sc->mark;
        if (sc->slots[i].ino == item.ino)
          continue;
        item.slot = i;
        if (push_pending(moved, item) != 0)
          return ENOMEM;
        continue;
      }
    }
    if ((item.name = ds_strndup(e->d_name, strlen(e->d_name))) == NULL)
      return ENOMEM;
    if (push_pending(fresh, item) != 0) {
      ds_free(item.name);
      return ENOMEM;
    }
  }
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Everything a commit needs, allocated before anything changes. */
typedef struct {
  ds_dirscan_slot_t *slots;  /* the new table, or NULL to keep the old */
  size_t cap;
  char **changed;
  char **gone;
  size_t ngone;
} commit_t;

static int prepare(const ds_dirscan_t *sc, size_t nfresh, size_t nmoved, commit_t *c) {
  size_t i, live, need;
  memset(c, 0, sizeof(*c));
  for (i = 0; i < sc->cap; i++)
    if (sc->slots[i].name != NULL && sc->slots[i].mark != sc->mark)
      c->ngone++;
  live = sc->count - c->ngone + nfresh;
  need = sc->cap > 0 ? sc->cap : 16;
  while (live + 1 > need / 4 * 3)
    need *= 2;
  if (need != sc->cap && (c->slots = ds_calloc(need, sizeof(*c->slots))) == NULL)
    return ENOMEM;
  c->cap = need;
  c->changed = ds_malloc((nfresh + nmoved + 1) * sizeof(*c->changed));
  c->gone = ds_malloc((c->ngone + 1) * sizeof(*c->gone));
  if (c->changed == NULL || c->gone == NULL) {
    ds_free(c->slots);
    ds_free(c->changed);
    ds_free(c->gone);
    return ENOMEM;
  }
  return 0;
}

/* Apply a scan's findings; nothing here can fail. */
static void commit(ds_dirscan_t *sc, commit_t *c, pending_list_t *fresh, pending_list_t *moved) {
  size_t i, n = 0, g = 0;
  ds_free(sc->changed);
  free_gone(sc);
  for (i = 0; i < moved->n; i++) {
    sc->slots[moved->items[i].slot].ino = moved->items[i].ino;
    c->changed[n++] = sc->slots[moved->items[i].slot].name;
  }
  for (i = 0; i < sc->cap;) {
    if (sc->slots[i].name != NULL && sc->slots[i].mark != sc->mark) {
      c->gone[g++] = sc->slots[i].name;
      delete_slot(sc->slots, sc->cap, i);
      sc->count--;
      continue; /* slot i may now hold a shifted entry */
    }
    i++;
  }
  if (c->slots != NULL) {
    for (i = 0; i < sc->cap; i++)
      if (sc->slots[i].name != NULL)
        c->slots[find_slot(c->slots, c->cap, sc->slots[i].name, sc->slots[i].hash)] = sc->slots[i];
    ds_free(sc->slots);
    sc->slots = c->slots;
    sc->cap = c->cap;
  }
  for (i = 0; i < fresh->n; i++) {
    pending_t *p = &fresh->items[i];
    size_t at = find_slot(sc->slots, sc->cap, p->name, p->hash);
    sc->slots[at].name = p->name;
    sc->slots[at].ino = p->ino;
    sc->slots[at].hash = p->hash;
    sc->slots[at].mark = sc->mark;
    sc->count++;
    c->changed[n++] = p->name;
    p->name = NULL;
  }
  if (n > 1)
    qsort(c->changed, n, sizeof(*c->changed), by_name);
  if (g > 1)
    qsort(c->gone, g, sizeof(*c->gone), by_name);
  sc->changed = c->changed;
  sc->nchanged = n;
  sc->gone = c->gone;
  sc->ngone = g;
}

int ds_dirscan_update(ds_dirscan_t *sc, const char *dir, char *errbuf, size_t errlen) {
  pending_list_t fresh = {0}, moved = {0};
  commit_t c;
  int err;
  DIR *d = opendir(dir);
  if (d == NULL)
    return ds__fs_fail(errno, dir, NULL, errbuf, errlen);
  if (++sc->mark == 0)
    sc->mark = 1;
  err = read_entries(sc, d, &fresh, &moved);
  closedir(d);
  if (err == 0)
    err = prepare(sc, fresh.n, moved.n, &c);
  if (err == 0)
    commit(sc, &c, &fresh, &moved);
  free_pending(&fresh);
  ds_free(moved.items);
  return err != 0 ? ds__fs_fail(err, dir, NULL, errbuf, errlen) : 0;
}

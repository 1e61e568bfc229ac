/* Directory scans that cost what changed, not what is there.
 *
 * textFileStream lists its directory every batch. A directory that holds
 * 100 000 old files and receives one new file a batch must not hand 100 000
 * names to Lua each time: a scan remembers every name it saw with the
 * inode number readdir gave it, and reports only the names that are new or
 * carry a different inode number (a file replaced under an old name) and
 * the names that are gone.
 *
 * WHAT IS KEPT: exactly the names present at the last scan, so the set
 * follows the directory and never grows with its history.
 *
 * COSTS: per scan, one readdir pass and one hash lookup per entry, no stat
 * and no allocation for an entry seen before; memory per name its bytes
 * plus about 40.
 */
#ifndef DSTREAM_DIRSCAN_H
#define DSTREAM_DIRSCAN_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  char *name;     /* owned; NULL marks a free slot */
  uint64_t ino;   /* d_ino at the last scan that saw the name */
  uint32_t hash;
  uint32_t mark;  /* the scan that last saw the name */
} ds_dirscan_slot_t;

typedef struct {
  ds_dirscan_slot_t *slots;  /* open addressing, linear probing */
  size_t cap;                /* a power of two, or 0 */
  size_t count;
  uint32_t mark;
  char **changed;            /* names new or re-created at the last scan, sorted;
                                borrowed from the set until the next scan */
  size_t nchanged;
  char **gone;               /* names gone at the last scan, sorted; owned here
                                until the next scan */
  size_t ngone;
} ds_dirscan_t;

/* Prepare an empty scan (knows no names). */
void ds_dirscan_init(ds_dirscan_t *sc);
/* Free every name and array; the scan may be init'ed again. */
void ds_dirscan_close(ds_dirscan_t *sc);
/* Read dir and update the set: afterwards sc->changed / sc->gone list what
 * differs from the previous scan ("." and ".." are never listed). Returns 0,
 * or DS_ENOENT / DS_EACCES / DS_ENOMEM / DS_EIO naming dir in errbuf, with
 * the set and the previous results unchanged. */
int ds_dirscan_update(ds_dirscan_t *sc, const char *dir, char *errbuf, size_t errlen);

#endif

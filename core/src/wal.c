/* The write-ahead log: see dstream/wal.h for the format and what it promises.
 *
 * HOW A SEGMENT IS READ: the reader is pure - bytes in, blocks and damage
 * out - so open, replay and the fuzzer share every check. Segments are
 * mmap()ed read-only, never copied: open touches each byte once (the CRC),
 * a replay only the segments whose seq range meets the one asked for.
 *
 * HOW AN APPEND STAYS ATOMIC: the frame is built whole in one buffer, then
 * written with pwrite() at the size the segment had after its last good
 * append and fdatasync()ed. A failure truncates back to that size, and the
 * next append writes at that offset anyway, so the bytes of a failed append
 * can only ever sit past the last good frame - where open cuts them as a
 * torn tail if a crash leaves them there. fdatasync() is enough: it flushes
 * the file's size with its data, and the directory is fsynced whenever a
 * segment is created.
 *
 * WHY THE NEWEST SEGMENT IS KEPT: its name carries the seq counter across a
 * restart even when it holds no block, so a release never deletes it.
 *
 * INVARIANTS: segs[] is sorted by first seq; every good block of segs[i] has
 * segs[i].first <= seq < segs[i + 1].first; w->size is the newest segment's
 * length up to its last good frame; w->last_seq >= segs[newest].first - 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dstream/alloc.h"
#include "dstream/codec.h"
#include "dstream/error.h"
#include "dstream/fs.h"
#include "dstream/wal.h"
#include "internal.h"

#define SEGMENT_NAME_LEN 24 /* "wal-" + 16 digits + ".log" */
#define PATH_MAX_LEN 4096

typedef struct {
  uint64_t first;               /* the seq in its name */
  int damaged;                  /* damage was reported for it */
} segment_t;

struct ds_wal_s {
  char *dir;
  size_t segment_bytes;
  segment_t *segs;
  size_t nsegs;
  size_t segcap;
  int fd;                       /* the newest segment; -1 once closed */
  uint64_t size;                /* of the newest segment, to its last good frame */
  uint64_t last_seq;
  ds_buf_t frame;               /* the frame being appended */
  char **warnings;
  size_t nwarnings;
  size_t warncap;
};

/* --- the segment reader ------------------------------------------------- */

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Count the records of a block's bytes; -1 if they are not a block. */
static int lines_count(const unsigned char *p, size_t len, uint32_t *count) {
  size_t off = 0;
  uint64_t n = 0;
  while (off < len) {
    uint32_t l;
    if (len - off < 4)
      return -1;
    l = le32(p + off);
    off += 4;
    if (l > len - off || ++n > UINT32_MAX)
      return -1;
    off += l;
  }
  *count = (uint32_t)n;
  return 0;
}

/* Check a block's bytes for its kind; 0 with *count, or DS_ECORRUPT /
 * DS_EINVAL with why. */
static int check_bytes(int kind, const void *data, size_t len, uint32_t *count, char *why,
                       size_t whylen) {
  ds_frame_t f;
  char err[160];
  int rc;
  if (kind == DS_WAL_LINES) {
    if (lines_count(data, len, count) < 0)
      return ds__error_fill(why, whylen, DS_ECORRUPT, "lines block of %zu bytes is malformed", len);
    return 0;
  }
  if (kind != DS_WAL_CODEC)
    return ds__error_fill(why, whylen, DS_EINVAL, "unknown block kind %d", kind);
  if ((rc = ds_frame_open(&f, data, len, err, sizeof err)) != 0)
    return ds__error_fill(why, whylen, rc, "codec block: %s", err);
  if (f.size != len)
    return ds__error_fill(why, whylen, DS_ECORRUPT, "codec block: %zu bytes after its frame",
                          len - f.size);
  if (f.flags != 0)
    return ds__error_fill(why, whylen, DS_EINVAL, "codec block is a pairs frame");
  *count = f.count;
  return 0;
}

/* Read one INT item of at least min into *v. */
static int read_int(ds_cursor_t *c, int64_t min, uint64_t *v) {
  ds_codec_value_t item;
  if (ds_codec_read(c, &item, NULL, 0) != 0 || item.tag != DS_CODEC_INT || item.u.i < min)
    return -1;
  *v = (uint64_t)item.u.i;
  return 0;
}

/* Is the frame at r->data[pos] a good block? 0 with *blk (and its size in
 * *size), else a code with why. */
static int check_frame(const ds_wal_reader_t *r, size_t pos, ds_wal_block_t *blk, size_t *size,
                       char *why, size_t whylen) {
  ds_frame_t f;
  ds_cursor_t c;
  ds_codec_value_t bytes;
  uint64_t kind;
  char err[160];
  int rc = ds_frame_open(&f, r->data + pos, r->len - pos, err, sizeof err);
  if (rc != 0)
    return ds__error_fill(why, whylen, rc, "%s: %s", ds_err_name(rc), err);
  if (f.flags != 0 || f.count != 4)
    return ds__error_fill(why, whylen, DS_ECORRUPT, "a frame of %u records, not a WAL block",
                          (unsigned)f.count);
  ds_cursor_init_frame(&c, &f);
  if (read_int(&c, 0, &blk->stream) < 0 || read_int(&c, 1, &blk->seq) < 0 ||
      read_int(&c, 1, &kind) < 0 || kind > 2 || ds_codec_read(&c, &bytes, NULL, 0) != 0 ||
      bytes.tag != DS_CODEC_STR)
    return ds__error_fill(why, whylen, DS_ECORRUPT, "not a WAL block (stream, seq, kind, bytes)");
  blk->kind = (int)kind;
  blk->data = bytes.u.str.ptr;
  blk->len = bytes.u.str.len;
  blk->offset = pos;
  if ((rc = check_bytes(blk->kind, blk->data, blk->len, &blk->count, why, whylen)) != 0)
    return DS_ECORRUPT;
  if (blk->seq <= r->prev_seq || blk->seq > r->max_seq)
    return ds__error_fill(why, whylen, DS_ECORRUPT, "seq %llu out of order (expected %llu..%llu)",
                          (unsigned long long)blk->seq, (unsigned long long)r->prev_seq + 1,
                          (unsigned long long)r->max_seq);
  *size = f.size;
  return 0;
}

/* Where reading resumes after damage at start: the end of the damaged frame
 * if its header still holds and a good block or the end follows it, else the
 * next offset with a good block, else the end. */
static size_t resync(const ds_wal_reader_t *r, size_t start) {
  ds_wal_block_t blk;
  ds_frame_t f;
  size_t size, p;
  char why[8];
  if (ds_frame_header(&f, r->data + start, r->len - start, NULL, 0) == 0 &&
      f.size <= r->len - start &&
      (f.size == r->len - start || check_frame(r, start + f.size, &blk, &size, why, sizeof why) == 0))
    return start + f.size;
  for (p = start + 1; p + DS_FRAME_HEADER_LEN <= r->len; p++) {
    const unsigned char *d = memchr(r->data + p, 'D', r->len - p - DS_FRAME_HEADER_LEN + 1);
    if (d == NULL)
      break;
    p = (size_t)(d - r->data);
    if (d[1] == 'S' && check_frame(r, p, &blk, &size, why, sizeof why) == 0)
      return p;
  }
  return r->len;
}

void ds_wal_reader_init(ds_wal_reader_t *r, const void *data, size_t len, uint64_t prev_seq,
                        uint64_t max_seq) {
  memset(r, 0, sizeof(*r));
  r->data = data;
  r->len = len;
  r->prev_seq = prev_seq;
  r->max_seq = max_seq;
}

int ds_wal_reader_next(ds_wal_reader_t *r, ds_wal_block_t *blk) {
  size_t size;
  if (r->pos >= r->len)
    return DS_WAL_END;
  if (check_frame(r, r->pos, blk, &size, r->why, sizeof r->why) == 0) {
    r->pos += size;
    r->prev_seq = blk->seq;
    return DS_WAL_BLOCK;
  }
  r->damage_off = r->pos;
  r->pos = resync(r, r->pos);
  r->damage_len = r->pos - r->damage_off;
  return DS_WAL_DAMAGE;
}

/* --- the WAL's bookkeeping ---------------------------------------------- */

static void seg_path(const ds_wal_t *w, uint64_t first, char *out, size_t n) {
  snprintf(out, n, "%s/wal-%016llu.log", w->dir, (unsigned long long)first);
}

DS__PRINTF(2, 3)
static int warn(ds_wal_t *w, const char *fmt, ...) {
  char msg[DS_WAL_MESSAGE_MAX], *copy;
  va_list ap;
  if (w->nwarnings == w->warncap) {
    size_t cap = w->warncap ? w->warncap * 2 : 4;
    char **p = ds_realloc(w->warnings, cap * sizeof(*p));
    if (p == NULL)
      return DS_ENOMEM;
    w->warnings = p;
    w->warncap = cap;
  }
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if ((copy = ds_strndup(msg, strlen(msg))) == NULL)
    return DS_ENOMEM;
  w->warnings[w->nwarnings++] = copy;
  return 0;
}

/* Make room for one more segment in segs[]. */
static int reserve_segment(ds_wal_t *w) {
  if (w->nsegs == w->segcap) {
    size_t cap = w->segcap ? w->segcap * 2 : 8;
    segment_t *p = ds_realloc(w->segs, cap * sizeof(*p));
    if (p == NULL)
      return DS_ENOMEM;
    w->segs = p;
    w->segcap = cap;
  }
  return 0;
}

/* The seq a segment's name gives, or 0 if the name is not a segment's. */
static uint64_t parse_name(const char *name) {
  uint64_t v = 0;
  int i;
  if (strlen(name) != SEGMENT_NAME_LEN || strncmp(name, "wal-", 4) != 0 ||
      strcmp(name + 20, ".log") != 0)
    return 0;
  for (i = 4; i < 20; i++) {
    if (name[i] < '0' || name[i] > '9')
      return 0;
    v = v * 10 + (uint64_t)(name[i] - '0');
  }
  return v;
}

/* The seq bounds of good blocks in segment i. */
static uint64_t seg_prev(const ds_wal_t *w, size_t i) {
  return w->segs[i].first - 1;
}

static uint64_t seg_max(const ds_wal_t *w, size_t i) {
  return i + 1 < w->nsegs ? w->segs[i + 1].first - 1 : UINT64_MAX;
}

/* Map a whole file read-only; *map NULL for an empty one. */
static int map_file(int fd, const char *path, void **map, size_t *len, char *errbuf,
                    size_t errlen) {
  struct stat st;
  *map = NULL;
  *len = 0;
  if (fstat(fd, &st) != 0)
    return ds__fs_fail(errno, path, NULL, errbuf, errlen);
  if (!S_ISREG(st.st_mode))
    return ds__error_fill(errbuf, errlen, DS_EIO, "%s (not a regular file)", path);
  if (st.st_size == 0)
    return 0;
  *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  if (*map == MAP_FAILED) {
    *map = NULL;
    return ds__fs_fail(errno, path, NULL, errbuf, errlen);
  }
  *len = (size_t)st.st_size;
  return 0;
}

/* Report damage found in segment i (path). */
static int report_damage(ds_wal_t *w, size_t i, const char *path, const ds_wal_reader_t *r,
                         int cut) {
  w->segs[i].damaged = 1;
  if (cut)
    return warn(w, "%s: torn tail cut at byte %zu (%zu bytes dropped: %s); last good block "
                "seq %llu", path, r->damage_off, r->damage_len, r->why,
                (unsigned long long)r->prev_seq);
  return warn(w, "%s: %zu corrupt bytes at byte %zu skipped (%s); blocks between seq %llu and "
              "the next good block are lost", path, r->damage_len, r->damage_off, r->why,
              (unsigned long long)r->prev_seq);
}

/* Read segment i at open: find its last seq, report damage, cut a torn tail
 * of the newest. The newest stays open in w->fd. */
static int scan_segment(ds_wal_t *w, size_t i, char *errbuf, size_t errlen) {
  char path[PATH_MAX_LEN];
  int newest = i + 1 == w->nsegs, rc, what;
  int fd;
  void *map;
  size_t len, cut = SIZE_MAX;
  ds_wal_reader_t r;
  ds_wal_block_t blk;
  seg_path(w, w->segs[i].first, path, sizeof path);
  if ((fd = open(path, (newest ? O_RDWR : O_RDONLY) | O_CLOEXEC)) < 0)
    return ds__fs_fail(errno, path, NULL, errbuf, errlen);
  if ((rc = map_file(fd, path, &map, &len, errbuf, errlen)) != 0) {
    close(fd);
    return rc;
  }
  ds_wal_reader_init(&r, map, len, seg_prev(w, i), seg_max(w, i));
  while (rc == 0 && (what = ds_wal_reader_next(&r, &blk)) != DS_WAL_END) {
    if (what == DS_WAL_BLOCK) {
      w->last_seq = blk.seq;
      continue;
    }
    if (newest && r.pos == len)
      cut = r.damage_off;
    rc = report_damage(w, i, path, &r, newest && r.pos == len);
  }
  if (map != NULL)
    munmap(map, len);
  if (rc == 0 && cut != SIZE_MAX && (ftruncate(fd, (off_t)cut) != 0 || fdatasync(fd) != 0))
    rc = ds__fs_fail(errno, path, NULL, errbuf, errlen);
  if (rc == DS_ENOMEM)
    ds__error_fill(errbuf, errlen, rc, "recording a warning about %s", path);
  if (rc != 0 || !newest) {
    close(fd);
    return rc;
  }
  w->fd = fd;
  w->size = cut != SIZE_MAX ? cut : len;
  return 0;
}

/* Create the segment whose first block is seq, fsync the directory and make
 * it the newest. */
static int start_segment(ds_wal_t *w, uint64_t seq, char *errbuf, size_t errlen) {
  char path[PATH_MAX_LEN];
  int fd, rc;
  seg_path(w, seq, path, sizeof path);
  if ((rc = reserve_segment(w)) != 0)
    return ds__error_fill(errbuf, errlen, rc, "starting %s", path);
  if ((fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0)
    return ds__fs_fail(errno, path, NULL, errbuf, errlen);
  if ((rc = ds_fs_fsync_dir(w->dir, errbuf, errlen)) != 0) {
    close(fd);
    unlink(path);
    return rc;
  }
  w->segs[w->nsegs].first = seq;
  w->segs[w->nsegs].damaged = 0;
  w->nsegs++;
  if (w->fd >= 0)
    close(w->fd);
  w->fd = fd;
  w->size = 0;
  return 0;
}

void ds_wal_opts_init(ds_wal_opts_t *opts) {
  opts->segment_bytes = (size_t)64 * 1024 * 1024;
}

static int list_segments(ds_wal_t *w, char *errbuf, size_t errlen) {
  char **names;
  size_t n, i;
  int rc = ds_fs_list(w->dir, &names, &n, errbuf, errlen);
  if (rc != 0)
    return rc;
  for (i = 0; rc == 0 && i < n; i++) {
    uint64_t first = parse_name(names[i]);
    if (first == 0)
      continue;
    if ((rc = reserve_segment(w)) != 0) {
      ds__error_fill(errbuf, errlen, rc, "listing %s", w->dir);
      break;
    }
    w->segs[w->nsegs].first = first;
    w->segs[w->nsegs].damaged = 0;
    w->nsegs++;
  }
  ds_fs_list_free(names, n);
  return rc;
}

int ds_wal_open(const char *dir, const ds_wal_opts_t *opts, ds_wal_t **out, char *errbuf,
                size_t errlen) {
  ds_wal_t *w;
  size_t i;
  int rc;
  if (dir == NULL || dir[0] == '\0' || strlen(dir) > PATH_MAX_LEN - SEGMENT_NAME_LEN - 2 ||
      opts->segment_bytes == 0)
    return ds__error_fill(errbuf, errlen, DS_EINVAL, "WAL directory %s",
                          dir == NULL || dir[0] == '\0' ? "missing" : "name too long");
  if ((rc = ds_fs_mkdirs(dir, errbuf, errlen)) != 0)
    return rc;
  if ((w = ds_calloc(1, sizeof(*w))) == NULL || (w->dir = ds_strndup(dir, strlen(dir))) == NULL) {
    ds_free(w);
    return ds__error_fill(errbuf, errlen, DS_ENOMEM, "opening the WAL in %s", dir);
  }
  w->fd = -1;
  w->segment_bytes = opts->segment_bytes;
  ds_buf_init(&w->frame);
  rc = list_segments(w, errbuf, errlen);
  for (i = 0; rc == 0 && i < w->nsegs; i++)
    rc = scan_segment(w, i, errbuf, errlen);
  if (rc == 0 && w->nsegs == 0)
    rc = start_segment(w, 1, errbuf, errlen);
  if (rc != 0) {
    ds_wal_free(w);
    return rc;
  }
  if (w->last_seq < w->segs[w->nsegs - 1].first - 1)
    w->last_seq = w->segs[w->nsegs - 1].first - 1;
  *out = w;
  return 0;
}

/* --- appending ---------------------------------------------------------- */

static int build_frame(ds_wal_t *w, uint64_t stream, uint64_t seq, int kind, const void *data,
                       size_t len) {
  size_t start;
  int rc;
  ds_buf_truncate(&w->frame, 0);
  if ((rc = ds_buf_reserve(&w->frame, len + 64)) != 0 ||
      (rc = ds_frame_begin(&w->frame, 0, &start)) != 0 ||
      (rc = ds_codec_put_int(&w->frame, (int64_t)stream)) != 0 ||
      (rc = ds_codec_put_int(&w->frame, (int64_t)seq)) != 0 ||
      (rc = ds_codec_put_int(&w->frame, kind)) != 0 ||
      (rc = ds_codec_put_str(&w->frame, data, len)) != 0)
    return rc;
  return ds_frame_end(&w->frame, start, 4);
}

/* Write the frame at w->size and make it durable; on failure cut the
 * segment back. */
static int write_frame(ds_wal_t *w, char *errbuf, size_t errlen) {
  char path[PATH_MAX_LEN];
  size_t done = 0;
  int err = 0;
  while (done < w->frame.len && err == 0) {
    ssize_t n = pwrite(w->fd, w->frame.data + done, w->frame.len - done,
                       (off_t)(w->size + done));
    if (n > 0)
      done += (size_t)n;
    else if (n < 0 && errno != EINTR)
      err = errno;
    else if (n == 0)
      err = EIO;
  }
  if (err == 0 && fdatasync(w->fd) != 0)
    err = errno;
  if (err == 0)
    return 0;
  if (ftruncate(w->fd, (off_t)w->size) != 0) {
    /* Left past w->size: overwritten by the next append, cut by an open. */
  }
  seg_path(w, w->segs[w->nsegs - 1].first, path, sizeof path);
  ds__fs_fail(err, path, NULL, errbuf, errlen);
  return DS_EIO;
}

int ds_wal_append(ds_wal_t *w, uint64_t stream, int kind, const void *data, size_t len,
                  uint64_t *seq, char *errbuf, size_t errlen) {
  uint64_t next = w->last_seq + 1;
  uint32_t count;
  char why[160];
  int rc;
  if (w->fd < 0)
    return ds__error_fill(errbuf, errlen, DS_ECLOSED, "the WAL in %s is closed", w->dir);
  if (stream > (uint64_t)INT64_MAX || next > (uint64_t)INT64_MAX)
    return ds__error_fill(errbuf, errlen, DS_ERANGE, "stream or seq over 2^63-1");
  if ((rc = check_bytes(kind, data, len, &count, why, sizeof why)) != 0)
    return ds__error_fill(errbuf, errlen, rc, "appending to the WAL in %s: %s", w->dir, why);
  if ((rc = build_frame(w, stream, next, kind, data, len)) != 0)
    return ds__error_fill(errbuf, errlen, rc, "appending a block of %zu bytes to the WAL in %s",
                          len, w->dir);
  if (w->size > 0 && w->size + w->frame.len > w->segment_bytes &&
      (rc = start_segment(w, next, errbuf, errlen)) != 0)
    return rc;
  if ((rc = write_frame(w, errbuf, errlen)) != 0)
    return rc;
  w->size += w->frame.len;
  w->last_seq = next;
  *seq = next;
  if (w->frame.cap > ((size_t)4 << 20))
    ds_buf_close(&w->frame);
  return 0;
}

int ds_wal_append_block(ds_wal_t *w, uint64_t stream, const ds_block_t *blk, uint64_t *seq,
                        char *errbuf, size_t errlen) {
  return ds_wal_append(w, stream, DS_WAL_LINES, blk->data, blk->len, seq, errbuf, errlen);
}

uint64_t ds_wal_last_seq(const ds_wal_t *w) {
  return w->last_seq;
}

int ds_wal_release(ds_wal_t *w, uint64_t seq, char *errbuf, size_t errlen) {
  char path[PATH_MAX_LEN];
  size_t k = 0;
  int rc = 0;
  while (k + 1 < w->nsegs && w->segs[k + 1].first - 1 <= seq) {
    seg_path(w, w->segs[k].first, path, sizeof path);
    if (unlink(path) != 0 && errno != ENOENT) {
      rc = ds__fs_fail(errno, path, NULL, errbuf, errlen);
      break;
    }
    k++;
  }
  memmove(w->segs, w->segs + k, (w->nsegs - k) * sizeof(*w->segs));
  w->nsegs -= k;
  return rc != 0 ? rc : (int)(k < INT_MAX ? k : INT_MAX);
}

size_t ds_wal_warnings(const ds_wal_t *w, const char *const **out) {
  *out = (const char *const *)w->warnings;
  return w->nwarnings;
}

void ds_wal_close(ds_wal_t *w) {
  if (w->fd >= 0)
    close(w->fd);
  w->fd = -1;
}

void ds_wal_free(ds_wal_t *w) {
  size_t i;
  if (w == NULL)
    return;
  ds_wal_close(w);
  for (i = 0; i < w->nwarnings; i++)
    ds_free(w->warnings[i]);
  ds_free(w->warnings);
  ds_free(w->segs);
  ds_buf_close(&w->frame);
  ds_free(w->dir);
  ds_free(w);
}

/* --- replay ------------------------------------------------------------- */

void ds_wal_iter_init(ds_wal_iter_t *it, ds_wal_t *w, uint64_t stream, uint64_t after,
                      uint64_t upto) {
  memset(it, 0, sizeof(*it));
  it->w = w;
  it->stream = stream;
  it->after = after;
  it->upto = upto;
}

static void iter_unmap(ds_wal_iter_t *it) {
  if (it->map != NULL)
    munmap(it->map, it->map_len);
  it->map = NULL;
  it->map_len = 0;
  it->reading = 0;
}

/* Map the next segment that can hold a wanted seq; 0, 1 when none is left,
 * or a code. */
static int iter_advance(ds_wal_iter_t *it, char *errbuf, size_t errlen) {
  ds_wal_t *w = it->w;
  char path[PATH_MAX_LEN];
  int fd, rc;
  while (it->seg < w->nsegs) {
    size_t i = it->seg++;
    if (seg_max(w, i) <= it->after)
      continue;
    if (w->segs[i].first > it->upto)
      return 1;
    seg_path(w, w->segs[i].first, path, sizeof path);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
      return ds__fs_fail(errno, path, NULL, errbuf, errlen);
    rc = map_file(fd, path, &it->map, &it->map_len, errbuf, errlen);
    close(fd);
    if (rc != 0)
      return rc;
    if (i + 1 == w->nsegs && it->map_len > w->size)
      it->map_len = (size_t)w->size; /* a failed append's bytes, if any */
    ds_wal_reader_init(&it->r, it->map, it->map_len, seg_prev(w, i), seg_max(w, i));
    it->cur = i;
    it->reading = 1;
    return 0;
  }
  return 1;
}

int ds_wal_iter_next(ds_wal_iter_t *it, ds_wal_block_t *blk, char *errbuf, size_t errlen) {
  if (it->w != NULL && it->w->fd < 0 && !it->reading && it->seg < it->w->nsegs)
    return ds__error_fill(errbuf, errlen, DS_ECLOSED, "the WAL in %s is closed", it->w->dir);
  for (;;) {
    int what, rc;
    if (!it->reading) {
      if ((rc = iter_advance(it, errbuf, errlen)) != 0)
        return rc < 0 ? rc : 0;
      continue;
    }
    what = ds_wal_reader_next(&it->r, blk);
    if (what == DS_WAL_END) {
      iter_unmap(it);
    } else if (what == DS_WAL_DAMAGE) {
      if (!it->w->segs[it->cur].damaged) {
        char path[PATH_MAX_LEN];
        seg_path(it->w, it->w->segs[it->cur].first, path, sizeof path);
        if (report_damage(it->w, it->cur, path, &it->r, 0) != 0)
          return ds__error_fill(errbuf, errlen, DS_ENOMEM, "recording a warning about %s", path);
      }
    } else if (blk->seq > it->upto) {
      iter_unmap(it);
      it->seg = it->w->nsegs;
      return 0;
    } else if (blk->seq > it->after && blk->stream == it->stream) {
      return 1;
    }
  }
}

void ds_wal_iter_close(ds_wal_iter_t *it) {
  iter_unmap(it);
  it->seg = it->w != NULL ? it->w->nsegs : 0;
}

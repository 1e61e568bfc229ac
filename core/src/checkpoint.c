/* Checkpoint files: see dstream/checkpoint.h for the format and the rules.
 *
 * WHY THE FILE LAYER KNOWS NOTHING OF STREAMS: what a checkpoint holds (the
 * graph, stores, window buffers, source positions) changes with the engine;
 * how a file survives a crash does not. Sections keep the two apart, and a
 * reader can check a whole file without understanding one section.
 *
 * WHY A BASE LINK IN EACH DELTA: after a damaged newest file, recovery
 * resumes from an older checkpoint, and the writer's next delta describes
 * changes since THAT one. Had deltas rested implicitly on seq - 1, the new
 * delta would rest on the damaged file and be useless; with the base in its
 * header it continues the good chain, and the damaged files are merely
 * skipped until pruning removes them.
 *
 * HOW A FILE IS WRITTEN: frames go through one buffer that is flushed to the
 * temporary file whenever it holds a chunk, so a checkpoint of any size costs
 * about one chunk of memory besides the caller's sections.
 *
 * HOW A FILE IS READ: the whole file is read into one buffer, then walked
 * twice: the first walk checks every frame (CRC, structure, the rules of the
 * format) and counts; the second, which cannot fail, moves the sections'
 * names and bytes down over the frame headers, in place, so that a section
 * split over frames becomes contiguous without a second buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dstream/alloc.h"
#include "dstream/checkpoint.h"
#include "dstream/codec.h"
#include "dstream/error.h"
#include "dstream/fs.h"
#include "internal.h"

#define FORMAT_NAME "dstream.checkpoint"
#define TRAILER_NAME "end"
#define CKPT_PREFIX "checkpoint-"
#define PENDING_PREFIX "pending-"
#define TMP_SUFFIX ".tmp"
#define DIGITS 16
#define MAX_NUMBER 9999999999999999LL /* 16 digits */
#define WHY_LEN 512

static const char *const KIND_NAMES[] = {"full", "delta", "pending"};

const char *ds_checkpoint_kind_name(ds_checkpoint_kind_t kind) {
  return (unsigned)kind < 3 ? KIND_NAMES[kind] : "unknown";
}

/* --- names ---------------------------------------------------------------- */

/* Parse 16 decimal digits at p. */
static int parse_digits(const char *p, int64_t *out) {
  int64_t v = 0;
  int i;
  for (i = 0; i < DIGITS; i++) {
    if (p[i] < '0' || p[i] > '9')
      return 0;
    v = v * 10 + (p[i] - '0');
  }
  *out = v;
  return 1;
}

/* Whether name is one of ours: a checkpoint (kind, seq) or a pending file
 * (kind, time). Exact names only, so a stray file is never taken for one. */
static int parse_name(const char *name, ds_checkpoint_kind_t *kind, int64_t *num) {
  size_t len = strlen(name), cp = strlen(CKPT_PREFIX), pp = strlen(PENDING_PREFIX);
  if (len == pp + DIGITS && strncmp(name, PENDING_PREFIX, pp) == 0) {
    *kind = DS_CHECKPOINT_PENDING;
    return parse_digits(name + pp, num);
  }
  if (len < cp + DIGITS || strncmp(name, CKPT_PREFIX, cp) != 0 ||
      !parse_digits(name + cp, num) || *num == 0)
    return 0;
  if (strcmp(name + cp + DIGITS, ".full") == 0)
    *kind = DS_CHECKPOINT_FULL;
  else if (strcmp(name + cp + DIGITS, ".delta") == 0)
    *kind = DS_CHECKPOINT_DELTA;
  else
    return 0;
  return 1;
}

static void make_name(char *out, size_t len, ds_checkpoint_kind_t kind, int64_t num) {
  if (kind == DS_CHECKPOINT_PENDING)
    snprintf(out, len, PENDING_PREFIX "%016" PRId64, num);
  else
    snprintf(out, len, CKPT_PREFIX "%016" PRId64 ".%s", num, KIND_NAMES[kind]);
}

static int is_tmp(const char *name) {
  size_t len = strlen(name), tl = strlen(TMP_SUFFIX);
  return len > tl && strcmp(name + len - tl, TMP_SUFFIX) == 0 &&
         (strncmp(name, CKPT_PREFIX, strlen(CKPT_PREFIX)) == 0 ||
          strncmp(name, PENDING_PREFIX, strlen(PENDING_PREFIX)) == 0);
}

/* dir/name in a new allocation, NULL when out of memory. */
static char *join(const char *dir, const char *name, const char *suffix) {
  size_t dl = strlen(dir), nl = strlen(name), sl = suffix ? strlen(suffix) : 0;
  char *p = ds_malloc(dl + nl + sl + 2);
  if (p == NULL)
    return NULL;
  memcpy(p, dir, dl);
  p[dl] = '/';
  memcpy(p + dl + 1, name, nl);
  if (sl > 0)
    memcpy(p + dl + 1 + nl, suffix, sl);
  p[dl + 1 + nl + sl] = '\0';
  return p;
}

/* --- parsing -------------------------------------------------------------- */

typedef struct {
  const unsigned char *data;
  size_t len;
  size_t pos;     /* of the current frame */
  int checked;    /* the walk that fills: every frame was checked before */
  char *errbuf;
  size_t errlen;
} reader_t;

/* What the first walk counts and the second fills. */
typedef struct {
  ds_checkpoint_kind_t kind;
  int64_t seq, base, time, n;
  size_t sections; /* seen */
  size_t blob;     /* names and bytes of all sections */
  ds_checkpoint_section_t *out; /* NULL on the checking walk */
  char *blob_out;
} walk_t;

static int open_frame(reader_t *rd, ds_frame_t *f, ds_cursor_t *c, size_t *items) {
  char why[256];
  ds_codec_value_t v;
  int err;
  if (rd->checked) {
    /* No second CRC pass over the file: the first walk did it. */
    ds_frame_header(f, rd->data + rd->pos, rd->len - rd->pos, NULL, 0);
    f->payload = (const char *)rd->data + rd->pos + DS_FRAME_HEADER_LEN;
    ds_cursor_init_frame(c, f);
    ds_codec_read(c, &v, NULL, 0);
    *items = v.u.count;
    return 0;
  }
  err = ds_frame_open(f, rd->data + rd->pos, rd->len - rd->pos, why, sizeof why);
  if (err != 0)
    return ds__error_fill(rd->errbuf, rd->errlen, err, "byte %zu: %s", rd->pos, why);
  ds_cursor_init_frame(c, f);
  if (f->flags != 0 || f->count != 1 || ds_codec_read(c, &v, NULL, 0) != 0 ||
      v.tag != DS_CODEC_ARRAY)
    return ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT,
                          "byte %zu: the frame is not one array record", rd->pos);
  *items = v.u.count;
  return 0;
}

static int bad(reader_t *rd, const char *what) {
  return ds__error_fill(rd->errbuf, rd->errlen, DS_ECORRUPT, "byte %zu: %s", rd->pos, what);
}

static int read_int(ds_cursor_t *c, int64_t *out) {
  ds_codec_value_t v;
  if (ds_codec_read(c, &v, NULL, 0) != 0 || v.tag != DS_CODEC_INT || v.u.i < 0)
    return 0;
  *out = v.u.i;
  return 1;
}

static int read_str(ds_cursor_t *c, const char **p, size_t *len) {
  ds_codec_value_t v;
  if (ds_codec_read(c, &v, NULL, 0) != 0 || v.tag != DS_CODEC_STR)
    return 0;
  *p = v.u.str.ptr;
  *len = v.u.str.len;
  return 1;
}

static int is_str(const char *p, size_t len, const char *want) {
  return len == strlen(want) && memcmp(p, want, len) == 0;
}

static int read_header(reader_t *rd, walk_t *w) {
  ds_frame_t f;
  ds_cursor_t c;
  const char *s;
  size_t items, len;
  int64_t version;
  int err = open_frame(rd, &f, &c, &items);
  if (err != 0)
    return err;
  if (items != 7 || !read_str(&c, &s, &len) || !is_str(s, len, FORMAT_NAME))
    return bad(rd, "not a dstream checkpoint header");
  if (!read_int(&c, &version))
    return bad(rd, "the header's version is not a count");
  if (version != DS_CHECKPOINT_VERSION)
    return ds__error_fill(rd->errbuf, rd->errlen, DS_EVERSION,
                          "byte %zu: checkpoint format version %" PRId64
                          ", this reader knows version %d",
                          rd->pos, version, DS_CHECKPOINT_VERSION);
  if (!read_str(&c, &s, &len))
    return bad(rd, "the header's kind is not a string");
  if (is_str(s, len, "full"))
    w->kind = DS_CHECKPOINT_FULL;
  else if (is_str(s, len, "delta"))
    w->kind = DS_CHECKPOINT_DELTA;
  else if (is_str(s, len, "pending"))
    w->kind = DS_CHECKPOINT_PENDING;
  else
    return bad(rd, "the header's kind is none of full, delta, pending");
  if (!read_int(&c, &w->seq) || !read_int(&c, &w->base) || !read_int(&c, &w->time) ||
      !read_int(&c, &w->n))
    return bad(rd, "the header's seq, base, time or count is not a count");
  if ((w->kind == DS_CHECKPOINT_PENDING) != (w->seq == 0) ||
      (w->kind == DS_CHECKPOINT_DELTA) != (w->base != 0) || w->base >= w->seq + (w->seq == 0))
    return bad(rd, "the header's seq and base do not fit its kind");
  if (w->seq > MAX_NUMBER || w->time > MAX_NUMBER)
    return bad(rd, "the header's seq or time has more than 16 digits");
  rd->pos += f.size;
  return 0;
}

/* The section frames and the trailer, after the header. */
static int read_body(reader_t *rd, walk_t *w) {
  const char *name = NULL, *s;
  size_t name_len = 0, len;
  int64_t length = 0, got = 0, total = 0;
  for (;;) {
    ds_frame_t f;
    ds_cursor_t c;
    size_t items;
    int64_t off, n, sum;
    int err;
    if (rd->pos == rd->len)
      return ds__error_fill(rd->errbuf, rd->errlen, DS_ETRUNCATED,
                            "byte %zu: the file ends before its trailer (%zu of %" PRId64
                            " sections)", rd->pos, w->sections, w->n);
    err = open_frame(rd, &f, &c, &items);
    if (err != 0)
      return err;
    if (items == 3) {
      if (!read_str(&c, &s, &len) || !is_str(s, len, TRAILER_NAME) || !read_int(&c, &n) ||
          !read_int(&c, &sum))
        return bad(rd, "a malformed trailer");
      if (got != length)
        return bad(rd, "the trailer comes before the last section's end");
      if (n != w->n || (int64_t)w->sections != n || sum != total)
        return bad(rd, "the trailer's section count or byte total does not match");
      rd->pos += f.size;
      if (rd->pos != rd->len)
        return bad(rd, "bytes follow the trailer");
      return 0;
    }
    if (items != 4 || !read_str(&c, &s, &len) || !read_int(&c, &n) || !read_int(&c, &off))
      return bad(rd, "a malformed section frame");
    if (off == 0) {
      if (got != length)
        return bad(rd, "a section starts before the one before it ends");
      if ((int64_t)w->sections == w->n)
        return bad(rd, "more sections than the header counts");
      name = s;
      name_len = len;
      length = n;
      got = 0;
      if (w->out != NULL) {
        ds_checkpoint_section_t *sec = &w->out[w->sections];
        if (len > 0)
          memmove(w->blob_out, s, len);
        sec->name = w->blob_out;
        sec->name_len = len;
        sec->data = w->blob_out + len;
        sec->len = (size_t)n;
        w->blob_out += len;
      }
      w->blob += len + (size_t)n;
      w->sections++;
    } else if (off != got || n != length ||
               /* the filling walk may have moved bytes over the first name */
               (!rd->checked && (len != name_len || memcmp(s, name, len) != 0))) {
      return bad(rd, "a section frame out of place (name, length or offset)");
    }
    if (!read_str(&c, &s, &len))
      return bad(rd, "a section frame's bytes are not a string");
    if ((int64_t)len > length - got || (len == 0 && off != 0))
      return bad(rd, "a section frame's bytes run past the section's length");
    if (w->out != NULL) {
      if (len > 0)
        memmove(w->blob_out, s, len);
      w->blob_out += len;
    }
    got += (int64_t)len;
    total += (int64_t)len;
    rd->pos += f.size;
  }
}

static int walk(const void *data, size_t len, walk_t *w, char *errbuf, size_t errlen) {
  reader_t rd;
  int err;
  rd.data = data;
  rd.len = len;
  rd.pos = 0;
  rd.checked = w->out != NULL;
  rd.errbuf = errbuf;
  rd.errlen = errlen;
  w->sections = 0;
  w->blob = 0;
  err = read_header(&rd, w);
  return err != 0 ? err : read_body(&rd, w);
}

void ds_checkpoint_file_close(ds_checkpoint_file_t *f) {
  ds_free(f->sections);
  ds_free(f->blob);
  ds_free(f->name);
  f->sections = NULL;
  f->blob = NULL;
  f->name = NULL;
  f->nsections = 0;
}

/* Parse the file held in data (len bytes, a ds_malloc'd buffer) and, on
 * success, take the buffer as f's blob: the second walk moves the sections'
 * names and bytes down over the frames' headers and encodings, in place.
 * That is safe because it never writes at or past the frame it reads (the
 * header frame alone is more than the 16 bytes of a frame header ahead), and
 * each item is read before bytes are moved over it. On error data is the
 * caller's still. */
static int parse_owned(ds_checkpoint_file_t *f, char *data, size_t len, char *errbuf,
                       size_t errlen) {
  walk_t w;
  int err;
  memset(f, 0, sizeof *f);
  memset(&w, 0, sizeof w);
  err = walk(data, len, &w, errbuf, errlen);
  if (err != 0)
    return err;
  f->sections = ds_calloc(w.sections > 0 ? w.sections : 1, sizeof *f->sections);
  if (f->sections == NULL)
    return ds__error_fill(errbuf, errlen, DS_ENOMEM, "checkpoint of %zu bytes", len);
  w.out = f->sections;
  w.blob_out = data;
  walk(data, len, &w, NULL, 0); /* checked above: cannot fail */
  f->blob = data;
  f->kind = w.kind;
  f->seq = (uint64_t)w.seq;
  f->base = (uint64_t)w.base;
  f->time_ms = w.time;
  f->nsections = w.sections;
  f->size = len;
  return 0;
}

int ds_checkpoint_parse(ds_checkpoint_file_t *f, const void *data, size_t len,
                        char *errbuf, size_t errlen) {
  char *copy = ds_malloc(len > 0 ? len : 1);
  int err;
  memset(f, 0, sizeof *f);
  if (copy == NULL)
    return ds__error_fill(errbuf, errlen, DS_ENOMEM, "checkpoint of %zu bytes", len);
  if (len > 0)
    memcpy(copy, data, len);
  err = parse_owned(f, copy, len, errbuf, errlen);
  if (err != 0)
    ds_free(copy);
  return err;
}

/* --- writing -------------------------------------------------------------- */

typedef struct {
  int fd;
  ds_buf_t buf;
  uint64_t written;
} writer_t;

/* Write out what the buffer holds; a writer without a file (fd -1)
 * keeps everything in its buffer. */
static int flush(writer_t *wr) {
  const char *p = wr->buf.data;
  size_t left = wr->buf.len;
  if (wr->fd < 0)
    return 0;
  while (left > 0) {
    ssize_t put = write(wr->fd, p, left);
    if (put < 0 && errno == EINTR)
      continue;
    if (put < 0)
      return errno;
    p += put;
    left -= (size_t)put;
  }
  wr->written += wr->buf.len;
  ds_buf_truncate(&wr->buf, 0);
  return 0;
}

/* Errors below are positive errno values or negative DS_E* codes, as in
 * fs.c, until the caller turns them into one. */
static int put_frame_end(writer_t *wr, size_t start) {
  int err = ds_frame_end(&wr->buf, start, 1);
  if (err != 0)
    return err;
  return wr->fd >= 0 && wr->buf.len >= DS_CHECKPOINT_CHUNK ? flush(wr) : 0;
}

static int put_header(writer_t *wr, ds_checkpoint_kind_t kind, int64_t seq, int64_t base,
                      int64_t time, size_t n) {
  size_t start;
  int err = ds_frame_begin(&wr->buf, 0, &start);
  if (err == 0)
    err = ds_codec_put_array(&wr->buf, 7);
  if (err == 0)
    err = ds_codec_put_str(&wr->buf, FORMAT_NAME, strlen(FORMAT_NAME));
  if (err == 0)
    err = ds_codec_put_int(&wr->buf, DS_CHECKPOINT_VERSION);
  if (err == 0)
    err = ds_codec_put_str(&wr->buf, KIND_NAMES[kind], strlen(KIND_NAMES[kind]));
  if (err == 0)
    err = ds_codec_put_int(&wr->buf, seq);
  if (err == 0)
    err = ds_codec_put_int(&wr->buf, base);
  if (err == 0)
    err = ds_codec_put_int(&wr->buf, time);
  if (err == 0)
    err = ds_codec_put_int(&wr->buf, (int64_t)n);
  return err != 0 ? err : put_frame_end(wr, start);
}

static int put_section(writer_t *wr, const ds_checkpoint_section_t *s) {
  size_t off = 0;
  do {
    size_t chunk = s->len - off < DS_CHECKPOINT_CHUNK ? s->len - off : DS_CHECKPOINT_CHUNK;
    size_t start;
    int err = ds_frame_begin(&wr->buf, 0, &start);
    if (err == 0)
      err = ds_codec_put_array(&wr->buf, 4);
    if (err == 0)
      err = ds_codec_put_str(&wr->buf, s->name, s->name_len);
    if (err == 0)
      err = ds_codec_put_int(&wr->buf, (int64_t)s->len);
    if (err == 0)
      err = ds_codec_put_int(&wr->buf, (int64_t)off);
    if (err == 0)
      err = ds_codec_put_str(&wr->buf, s->data + off, chunk);
    if (err == 0)
      err = put_frame_end(wr, start);
    if (err != 0)
      return err;
    off += chunk;
  } while (off < s->len);
  return 0;
}

static int put_trailer(writer_t *wr, size_t n, uint64_t total) {
  size_t start;
  int err = ds_frame_begin(&wr->buf, 0, &start);
  if (err == 0)
    err = ds_codec_put_array(&wr->buf, 3);
  if (err == 0)
    err = ds_codec_put_str(&wr->buf, TRAILER_NAME, strlen(TRAILER_NAME));
  if (err == 0)
    err = ds_codec_put_int(&wr->buf, (int64_t)n);
  if (err == 0)
    err = ds_codec_put_int(&wr->buf, (int64_t)total);
  if (err == 0)
    err = ds_frame_end(&wr->buf, start, 1);
  return err != 0 ? err : flush(wr);
}

static int put_all(writer_t *wr, ds_checkpoint_kind_t kind, int64_t seq, int64_t base,
                   int64_t time, const ds_checkpoint_section_t *sections, size_t n) {
  uint64_t total = 0;
  size_t i;
  int err = put_header(wr, kind, seq, base, time, n);
  for (i = 0; i < n && err == 0; i++) {
    err = put_section(wr, &sections[i]);
    total += sections[i].len;
  }
  return err != 0 ? err : put_trailer(wr, n, total);
}

int ds_checkpoint_encode(ds_buf_t *out, ds_checkpoint_kind_t kind, uint64_t seq, uint64_t base,
                         int64_t time_ms, const ds_checkpoint_section_t *sections, size_t n) {
  size_t orig = out->len;
  writer_t wr;
  int err;
  if ((unsigned)kind > DS_CHECKPOINT_PENDING || time_ms < 0 || time_ms > MAX_NUMBER ||
      seq > (uint64_t)MAX_NUMBER || (kind == DS_CHECKPOINT_PENDING) != (seq == 0) ||
      (kind == DS_CHECKPOINT_DELTA) != (base != 0) || (base != 0 && base >= seq))
    return DS_EINVAL;
  wr.fd = -1;
  wr.buf = *out;
  wr.written = 0;
  err = put_all(&wr, kind, (int64_t)seq, (int64_t)base, time_ms, sections, n);
  *out = wr.buf;
  if (err != 0)
    ds_buf_truncate(out, orig);
  return err;
}

/* Write the file name in cp->dir through a temporary file, fsync, rename,
 * fsync the directory. */
static int write_file(const ds_checkpoint_t *cp, const char *name, ds_checkpoint_kind_t kind,
                      int64_t seq, int64_t base, int64_t time,
                      const ds_checkpoint_section_t *sections, size_t n, uint64_t *bytes,
                      char *errbuf, size_t errlen) {
  char *path = join(cp->dir, name, NULL), *tmp = join(cp->dir, name, TMP_SUFFIX);
  writer_t wr;
  int err = 0;
  if (path == NULL || tmp == NULL) {
    ds_free(path);
    ds_free(tmp);
    return ds__error_fill(errbuf, errlen, DS_ENOMEM, "%s/%s", cp->dir, name);
  }
  ds_buf_init(&wr.buf);
  wr.written = 0;
  wr.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (wr.fd < 0) {
    err = ds__fs_fail(errno, tmp, NULL, errbuf, errlen);
    goto done;
  }
  err = put_all(&wr, kind, seq, base, time, sections, n);
  if (err == 0 && fsync(wr.fd) != 0)
    err = errno;
  if (close(wr.fd) != 0 && err == 0)
    err = errno;
  if (err != 0) {
    unlink(tmp);
    if (err > 0)
      err = ds__fs_fail(err, tmp, NULL, errbuf, errlen);
    else
      err = ds__error_fill(errbuf, errlen, err, "%s", tmp);
    goto done;
  }
  err = ds_fs_rename(tmp, path, errbuf, errlen);
  if (err != 0) {
    unlink(tmp);
    goto done;
  }
  err = ds_fs_fsync_dir(cp->dir, errbuf, errlen);
  if (err != 0) {
    unlink(path); /* not known durable: the caller must not count on it */
    goto done;
  }
  if (bytes != NULL)
    *bytes = wr.written;
done:
  ds_buf_close(&wr.buf);
  ds_free(path);
  ds_free(tmp);
  return err;
}

/* --- the directory -------------------------------------------------------- */

int ds_checkpoint_init(ds_checkpoint_t *cp, const char *dir, char *errbuf, size_t errlen) {
  char **names;
  size_t n, i;
  int err;
  memset(cp, 0, sizeof *cp);
  cp->head_time = -1;
  err = ds_fs_mkdirs(dir, errbuf, errlen);
  if (err == 0)
    err = ds_fs_list(dir, &names, &n, errbuf, errlen);
  if (err != 0)
    return err;
  for (i = 0; i < n; i++) {
    ds_checkpoint_kind_t kind;
    int64_t num;
    if (parse_name(names[i], &kind, &num)) {
      if (kind != DS_CHECKPOINT_PENDING && (uint64_t)num > cp->last_seq)
        cp->last_seq = (uint64_t)num;
    } else if (is_tmp(names[i])) {
      char *p = join(dir, names[i], NULL);
      if (p != NULL)
        unlink(p); /* a write cut short by a crash: never a checkpoint */
      ds_free(p);
    }
  }
  ds_fs_list_free(names, n);
  cp->dir = ds_strndup(dir, strlen(dir));
  if (cp->dir == NULL)
    return ds__error_fill(errbuf, errlen, DS_ENOMEM, "%s", dir);
  return 0;
}

void ds_checkpoint_close(ds_checkpoint_t *cp) {
  ds_free(cp->dir);
  ds_free(cp->bad);
  cp->dir = NULL;
  cp->bad = NULL;
  cp->nbad = 0;
}

static int is_bad(const ds_checkpoint_t *cp, uint64_t seq) {
  size_t i;
  for (i = 0; i < cp->nbad; i++)
    if (cp->bad[i] == seq)
      return 1;
  return 0;
}

static int by_seq_desc(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* Delete pending files at or before pending_upto, and after a full all but the last
 * two good fulls and what follows the older. Best effort: what is left is
 * retried at the next write, and what survives a crash is ignored. */
static void prune(const ds_checkpoint_t *cp, int full, int64_t pending_upto) {
  char **names;
  uint64_t *fulls = NULL, keep_from = 0;
  size_t n, i, nfulls = 0;
  if (ds_fs_list(cp->dir, &names, &n, NULL, 0) != 0)
    return;
  if (full && (fulls = ds_calloc(n > 0 ? n : 1, sizeof *fulls)) != NULL) {
    for (i = 0; i < n; i++) {
      ds_checkpoint_kind_t kind;
      int64_t num;
      if (parse_name(names[i], &kind, &num) && kind == DS_CHECKPOINT_FULL &&
          !is_bad(cp, (uint64_t)num))
        fulls[nfulls++] = (uint64_t)num;
    }
    qsort(fulls, nfulls, sizeof *fulls, by_seq_desc);
    if (nfulls >= 2)
      keep_from = fulls[1];
    ds_free(fulls);
  }
  for (i = 0; i < n; i++) {
    ds_checkpoint_kind_t kind;
    int64_t num;
    int drop;
    if (!parse_name(names[i], &kind, &num))
      continue;
    drop = kind == DS_CHECKPOINT_PENDING ? num <= pending_upto : (uint64_t)num < keep_from;
    if (drop) {
      char *p = join(cp->dir, names[i], NULL);
      if (p != NULL)
        unlink(p);
      ds_free(p);
    }
  }
  ds_fs_list_free(names, n);
}

int ds_checkpoint_write(ds_checkpoint_t *cp, ds_checkpoint_kind_t kind, int64_t time_ms,
                        const ds_checkpoint_section_t *sections, size_t n, uint64_t *bytes,
                        char *errbuf, size_t errlen) {
  char name[64];
  int64_t seq = 0, base = 0;
  int err;
  if ((unsigned)kind > DS_CHECKPOINT_PENDING)
    return ds__error_fill(errbuf, errlen, DS_EINVAL, "%s: unknown checkpoint kind %d",
                          cp->dir, (int)kind);
  if (time_ms < 0 || time_ms > MAX_NUMBER)
    return ds__error_fill(errbuf, errlen, DS_ERANGE,
                          "%s: batch time %" PRId64 " is not 0 to 16 digits of ms", cp->dir,
                          time_ms);
  if (kind != DS_CHECKPOINT_PENDING) {
    if (cp->last_seq >= (uint64_t)MAX_NUMBER)
      return ds__error_fill(errbuf, errlen, DS_ERANGE, "%s: checkpoint seqs exhausted",
                            cp->dir);
    seq = (int64_t)cp->last_seq + 1;
    if (kind == DS_CHECKPOINT_DELTA) {
      if (cp->head == 0)
        return ds__error_fill(errbuf, errlen, DS_ESTATE,
                              "%s: a delta checkpoint needs a checkpoint to rest on: "
                              "write a full one first (or load one)", cp->dir);
      base = (int64_t)cp->head;
    }
  }
  make_name(name, sizeof name, kind, kind == DS_CHECKPOINT_PENDING ? time_ms : seq);
  err = write_file(cp, name, kind, seq, base, time_ms, sections, n, bytes, errbuf, errlen);
  if (err != 0)
    return err;
  if (kind != DS_CHECKPOINT_PENDING) {
    int64_t before = cp->head_time;
    cp->last_seq = (uint64_t)seq;
    cp->head = (uint64_t)seq;
    cp->head_time = time_ms;
    prune(cp, kind == DS_CHECKPOINT_FULL, before);
  }
  return 0;
}

/* --- loading -------------------------------------------------------------- */

typedef struct {
  char *name;
  ds_checkpoint_kind_t kind;
  int64_t num;          /* seq, or time for pending */
  int state;            /* 0 not read, 1 intact (f holds it), 2 damaged */
  int code;             /* DS_E* of the damage */
  char why[WHY_LEN];    /* the damage: byte offset and reason */
  ds_checkpoint_file_t f;
} file_entry_t;

static int by_num(const void *a, const void *b) {
  const file_entry_t *x = a, *y = b;
  return x->num < y->num ? -1 : x->num > y->num ? 1 : 0;
}

/* Read a whole regular file (never blocking on a FIFO). */
static int read_whole(const char *path, char **data, size_t *len, char *errbuf, size_t errlen) {
  struct stat sb;
  size_t got = 0;
  char *p;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return ds__fs_fail(errno, path, NULL, errbuf, errlen);
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    int e = errno;
    close(fd);
    return S_ISREG(sb.st_mode) ? ds__fs_fail(e, path, NULL, errbuf, errlen)
                               : ds__error_fill(errbuf, errlen, DS_EIO, "%s: not a regular file", path);
  }
  p = ds_malloc((size_t)sb.st_size > 0 ? (size_t)sb.st_size : 1);
  if (p == NULL) {
    close(fd);
    return ds__error_fill(errbuf, errlen, DS_ENOMEM, "%s", path);
  }
  while (got < (size_t)sb.st_size) {
    ssize_t r = read(fd, p + got, (size_t)sb.st_size - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      ds_free(p);
      return ds__fs_fail(e, path, NULL, errbuf, errlen);
    }
    if (r == 0)
      break; /* shrank while read: parse what there is */
    got += (size_t)r;
  }
  close(fd);
  *data = p;
  *len = got;
  return 0;
}

/* Read and check an entry once; its state says the outcome. Only a system
 * error (not damage) is returned. */
static int examine(const ds_checkpoint_t *cp, file_entry_t *e, char *errbuf, size_t errlen) {
  char *path, *data = NULL;
  size_t len = 0;
  int err;
  if (e->state != 0)
    return 0;
  path = join(cp->dir, e->name, NULL);
  if (path == NULL)
    return ds__error_fill(errbuf, errlen, DS_ENOMEM, "%s/%s", cp->dir, e->name);
  err = read_whole(path, &data, &len, errbuf, errlen);
  ds_free(path);
  if (err != 0)
    return err;
  err = parse_owned(&e->f, data, len, e->why, sizeof e->why);
  if (err != 0)
    ds_free(data);
  if (err == DS_ENOMEM)
    return ds__error_fill(errbuf, errlen, err, "%s/%s", cp->dir, e->name);
  if (err == 0 && (e->f.kind != e->kind ||
                   (e->kind == DS_CHECKPOINT_PENDING ? e->f.time_ms : (int64_t)e->f.seq) != e->num)) {
    ds_checkpoint_file_close(&e->f);
    err = ds__error_fill(e->why, sizeof e->why, DS_ECORRUPT,
                         "byte 0: its header (%s, seq %" PRIu64 ", time %" PRId64
                         ") does not match its name", ds_checkpoint_kind_name(e->f.kind),
                         e->f.seq, e->f.time_ms);
  }
  e->state = err == 0 ? 1 : 2;
  e->code = err;
  return 0;
}

static file_entry_t *find_seq(file_entry_t *es, size_t n, uint64_t seq) {
  size_t i;
  for (i = 0; i < n; i++)
    if (es[i].kind != DS_CHECKPOINT_PENDING && (uint64_t)es[i].num == seq)
      return &es[i];
  return NULL;
}

static int add_warning(ds_checkpoint_loaded_t *out, const char *text) {
  char **w = ds_realloc(out->warnings, (out->nwarnings + 1) * sizeof *w);
  if (w == NULL)
    return DS_ENOMEM;
  out->warnings = w;
  if ((w[out->nwarnings] = ds_strndup(text, strlen(text))) == NULL)
    return DS_ENOMEM;
  out->nwarnings++;
  return 0;
}

/* Walk from candidate c down its base links to a full. 1 when the whole
 * chain is intact (*len gets its length), 0 with why saying what broke it. */
static int chain_of(const ds_checkpoint_t *cp, file_entry_t *es, size_t n, file_entry_t *c, size_t *len,
                    char *why, size_t whylen, int *code, char *errbuf, size_t errlen,
                    int *err) {
  file_entry_t *e = c;
  *len = 0;
  for (;;) {
    uint64_t base;
    file_entry_t *b;
    if ((*err = examine(cp, e, errbuf, errlen)) != 0)
      return 0;
    if (e->state == 2) {
      *code = e->code;
      if (e == c)
        snprintf(why, whylen, "%s: damaged at %s", e->name, e->why);
      else
        snprintf(why, whylen, "%s: not applied: it rests on %s, damaged at %s", c->name,
                 e->name, e->why);
      return 0;
    }
    (*len)++;
    if (e->kind == DS_CHECKPOINT_FULL)
      return 1;
    base = e->f.base;
    b = find_seq(es, n, base);
    if (b == NULL || b->num >= e->num) {
      *code = DS_ECORRUPT;
      snprintf(why, whylen, "%s: not applied: the checkpoint it rests on (seq %" PRIu64
               ") is missing", c->name, base);
      return 0;
    }
    e = b;
  }
}

void ds_checkpoint_loaded_close(ds_checkpoint_loaded_t *out) {
  size_t i;
  for (i = 0; i < out->nchain; i++)
    ds_checkpoint_file_close(&out->chain[i]);
  for (i = 0; i < out->npending; i++)
    ds_checkpoint_file_close(&out->pending[i]);
  for (i = 0; i < out->nwarnings; i++)
    ds_free(out->warnings[i]);
  ds_free(out->chain);
  ds_free(out->pending);
  ds_free(out->warnings);
  memset(out, 0, sizeof *out);
}

static void free_entries(file_entry_t *es, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    ds_checkpoint_file_close(&es[i].f);
    ds_free(es[i].name);
  }
  ds_free(es);
}

/* Move the chain ending at c (length len) into out, full first. */
static int take_chain(file_entry_t *es, size_t n, file_entry_t *c, size_t len,
                      ds_checkpoint_loaded_t *out) {
  file_entry_t *e = c;
  size_t i;
  out->chain = ds_calloc(len, sizeof *out->chain);
  if (out->chain == NULL)
    return DS_ENOMEM;
  out->nchain = len;
  for (i = len; i-- > 0;) {
    out->chain[i] = e->f;
    out->chain[i].name = e->name;
    e->name = NULL;
    memset(&e->f, 0, sizeof e->f);
    if (i > 0)
      e = find_seq(es, n, out->chain[i].base);
  }
  return 0;
}

int ds_checkpoint_load(ds_checkpoint_t *cp, ds_checkpoint_loaded_t *out, char *errbuf,
                       size_t errlen) {
  char **names = NULL, why[2 * WHY_LEN + 128], used[256];
  file_entry_t *es = NULL, *winner = NULL;
  size_t nnames = 0, n = 0, i, chain_len = 0, ncheckpoints = 0;
  uint64_t *bad = NULL;
  size_t nbad = 0;
  int err, first_code = 0;

  memset(out, 0, sizeof *out);
  err = ds_fs_list(cp->dir, &names, &nnames, errbuf, errlen);
  if (err != 0)
    return err;
  es = ds_calloc(nnames > 0 ? nnames : 1, sizeof *es);
  bad = ds_calloc(nnames > 0 ? nnames : 1, sizeof *bad);
  if (es == NULL || bad == NULL) {
    err = ds__error_fill(errbuf, errlen, DS_ENOMEM, "%s", cp->dir);
    goto done;
  }
  for (i = 0; i < nnames; i++) {
    ds_checkpoint_kind_t kind;
    int64_t num;
    if (!parse_name(names[i], &kind, &num))
      continue;
    es[n].name = names[i];
    names[i] = NULL;
    es[n].kind = kind;
    es[n].num = num;
    if (kind != DS_CHECKPOINT_PENDING) {
      ncheckpoints++;
      if ((uint64_t)num > cp->last_seq)
        cp->last_seq = (uint64_t)num;
    }
    n++;
  }
  /* Checkpoints by seq, then pending files by time, each ascending. */
  qsort(es, n, sizeof *es, by_num);
  if (ncheckpoints == 0) {
    err = ds__error_fill(errbuf, errlen, DS_ENOENT, "no checkpoint in %s", cp->dir);
    goto done;
  }
  for (i = n; i-- > 0 && winner == NULL;) {
    file_entry_t *c = &es[i];
    int code = 0;
    if (c->kind == DS_CHECKPOINT_PENDING)
      continue;
    if (chain_of(cp, es, n, c, &chain_len, why, sizeof why, &code, errbuf, errlen, &err)) {
      winner = c;
      break;
    }
    if (err != 0)
      goto done;
    if (first_code == 0)
      first_code = code;
    if ((err = add_warning(out, why)) != 0) {
      err = ds__error_fill(errbuf, errlen, err, "%s", cp->dir);
      goto done;
    }
  }
  /* Pruning keeps the last two fulls not known damaged. */
  for (i = 0; i < n; i++)
    if (es[i].state == 2 && es[i].kind != DS_CHECKPOINT_PENDING)
      bad[nbad++] = (uint64_t)es[i].num;
  ds_free(cp->bad);
  cp->bad = nbad > 0 ? bad : NULL;
  cp->nbad = nbad;
  if (nbad > 0)
    bad = NULL;
  if (winner == NULL) {
    size_t w;
    int off = snprintf(errbuf, errlen, "no intact checkpoint in %s:", cp->dir);
    for (w = 0; w < out->nwarnings && errbuf != NULL && off >= 0 && (size_t)off < errlen; w++)
      off += snprintf(errbuf + off, errlen - (size_t)off, " %s;", out->warnings[w]);
    err = first_code != 0 ? first_code : DS_ECORRUPT;
    goto done;
  }
  snprintf(used, sizeof used, "; using %s (batch time %" PRId64 ") instead", winner->name,
           winner->f.time_ms);
  for (i = 0; i < out->nwarnings; i++) {
    size_t a = strlen(out->warnings[i]), b = strlen(used);
    char *t = ds_realloc(out->warnings[i], a + b + 1);
    if (t == NULL) {
      err = ds__error_fill(errbuf, errlen, DS_ENOMEM, "%s", cp->dir);
      goto done;
    }
    memcpy(t + a, used, b + 1);
    out->warnings[i] = t;
  }
  {
    int64_t time = winner->f.time_ms;
    uint64_t head = (uint64_t)winner->num;
    size_t np = 0;
    if ((err = take_chain(es, n, winner, chain_len, out)) != 0) {
      err = ds__error_fill(errbuf, errlen, err, "%s", cp->dir);
      goto done;
    }
    out->pending = ds_calloc(n > 0 ? n : 1, sizeof *out->pending);
    if (out->pending == NULL) {
      err = ds__error_fill(errbuf, errlen, DS_ENOMEM, "%s", cp->dir);
      goto done;
    }
    for (i = 0; i < n; i++) {
      file_entry_t *e = &es[i];
      if (e->kind != DS_CHECKPOINT_PENDING || e->num <= time)
        continue;
      if ((err = examine(cp, e, errbuf, errlen)) != 0)
        goto done;
      if (e->state == 2) {
        snprintf(why, sizeof why, "%s: damaged at %s; batch %" PRId64
                 " is skipped: its inputs are unknown", e->name, e->why, e->num);
        if ((err = add_warning(out, why)) != 0) {
          err = ds__error_fill(errbuf, errlen, err, "%s", cp->dir);
          goto done;
        }
        continue;
      }
      out->pending[np] = e->f;
      out->pending[np].name = e->name;
      e->name = NULL;
      memset(&e->f, 0, sizeof e->f);
      np++;
    }
    out->npending = np;
    cp->head = head;
    cp->head_time = time;
  }
done:
  ds_free(bad);
  if (es != NULL)
    free_entries(es, n);
  ds_fs_list_free(names, nnames);
  if (err != 0) {
    /* The warnings stay for a caller that lists them; no chain is half given. */
    for (i = 0; i < out->nchain; i++)
      ds_checkpoint_file_close(&out->chain[i]);
    for (i = 0; i < out->npending; i++)
      ds_checkpoint_file_close(&out->pending[i]);
    ds_free(out->chain);
    ds_free(out->pending);
    out->chain = out->pending = NULL;
    out->nchain = out->npending = 0;
  }
  return err;
}

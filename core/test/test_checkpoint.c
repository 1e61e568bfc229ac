/* Checkpoint files against a real temporary directory: atomic writes, chains
 * of a full and deltas, pending files, pruning, and damage - a newest file
 * cut at every byte offset, every bit flipped - always detected, the
 * previous checkpoint used, and a warning naming the file and the byte
 * offset of the frame where it went wrong. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "dstream/alloc.h"
#include "dstream/checkpoint.h"
#include "dstream/codec.h"
#include "dstream/error.h"
#include "dstream/fs.h"
#include "harness.h"

static char root[256];
static char errbuf[4096];

/* root/rel, in a static buffer (one of four, so a call can take several). */
static const char *at(const char *rel) {
  static char bufs[4][512];
  static int next;
  char *p = bufs[next++ % 4];
  snprintf(p, 512, "%s/%s", root, rel);
  return p;
}

static const char *ckpt_name(uint64_t seq, const char *kind) {
  static char bufs[4][64];
  static int next;
  char *p = bufs[next++ % 4];
  snprintf(p, 64, "checkpoint-%016llu.%s", (unsigned long long)seq, kind);
  return p;
}

static ds_checkpoint_section_t sec(const char *name, const char *data, size_t len) {
  ds_checkpoint_section_t s;
  s.name = name;
  s.name_len = strlen(name);
  s.data = data;
  s.len = len;
  return s;
}

/* Write one checkpoint of a single section holding text. */
static int put(ds_checkpoint_t *cp, ds_checkpoint_kind_t kind, int64_t t, const char *text) {
  ds_checkpoint_section_t s = sec("s", text, strlen(text));
  return ds_checkpoint_write(cp, kind, t, &s, 1, NULL, errbuf, sizeof errbuf);
}

static void fresh(const char *rel) {
  ds_fs_remove_tree(at(rel), NULL, 0);
}

/* The directory's entries joined by spaces. */
static const char *listing(const char *dir) {
  static char out[4096];
  char **names;
  size_t n, i, len = 0;
  out[0] = '\0';
  if (ds_fs_list(dir, &names, &n, errbuf, sizeof errbuf) != 0)
    return "(unlistable)";
  for (i = 0; i < n; i++)
    len += (size_t)snprintf(out + len, sizeof out - len, "%s%s", i ? " " : "", names[i]);
  ds_fs_list_free(names, n);
  return out;
}

static int section_is(const ds_checkpoint_file_t *f, size_t i, const char *name,
                      const char *data, size_t len) {
  return i < f->nsections && f->sections[i].name_len == strlen(name) &&
         memcmp(f->sections[i].name, name, strlen(name)) == 0 && f->sections[i].len == len &&
         (len == 0 || memcmp(f->sections[i].data, data, len) == 0);
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *p;
  long n;
  if (f == NULL)
    return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  p = malloc((size_t)n + 1);
  *len = fread(p, 1, (size_t)n, f);
  fclose(f);
  return p;
}

static void test_write_and_load_back(void) {
  const char *dir = at("basic");
  size_t big_len = 2 * DS_CHECKPOINT_CHUNK + 12345, i;
  char *big = ds_malloc(big_len);
  ds_checkpoint_section_t s[4];
  ds_checkpoint_loaded_t r;
  ds_checkpoint_t cp;
  uint64_t bytes = 0;
  ds_fs_stat_t st;
  for (i = 0; i < big_len; i++)
    big[i] = (char)(i * 7);
  s[0] = sec("graph", "shape", 5);
  s[1] = sec("big", big, big_len);
  s[2] = sec("empty", "", 0);
  s[3] = sec("bin", "\0\1", 2);
  CHECK_EQ_INT(ds_checkpoint_init(&cp, dir, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(ds_checkpoint_load(&cp, &r, errbuf, sizeof errbuf), DS_ENOENT);
  CHECK(strstr(errbuf, "no checkpoint in") != NULL);
  ds_checkpoint_loaded_close(&r);
  CHECK_EQ_INT(ds_checkpoint_write(&cp, DS_CHECKPOINT_FULL, 7000, s, 4, &bytes, errbuf,
                                   sizeof errbuf), 0);
  CHECK_EQ_STR(listing(dir), ckpt_name(1, "full"));
  CHECK_EQ_INT(ds_fs_stat(at("basic/checkpoint-0000000000000001.full"), &st, errbuf,
                          sizeof errbuf), 0);
  CHECK_EQ_INT(st.size, bytes);
  CHECK(bytes > big_len && bytes < big_len + 400);
  CHECK_EQ_INT(ds_checkpoint_load(&cp, &r, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(r.nchain, 1);
  CHECK_EQ_INT(r.npending, 0);
  CHECK_EQ_INT(r.nwarnings, 0);
  CHECK_EQ_INT(r.chain[0].kind, DS_CHECKPOINT_FULL);
  CHECK_EQ_INT(r.chain[0].seq, 1);
  CHECK_EQ_INT(r.chain[0].time_ms, 7000);
  CHECK_EQ_STR(r.chain[0].name, ckpt_name(1, "full"));
  CHECK_EQ_INT(r.chain[0].nsections, 4);
  CHECK(section_is(&r.chain[0], 0, "graph", "shape", 5));
  CHECK(section_is(&r.chain[0], 1, "big", big, big_len));
  CHECK(section_is(&r.chain[0], 2, "empty", "", 0));
  CHECK(section_is(&r.chain[0], 3, "bin", "\0\1", 2));
  ds_checkpoint_loaded_close(&r);
  ds_checkpoint_loaded_close(&r);
  ds_checkpoint_close(&cp);
  ds_checkpoint_close(&cp);
  ds_free(big);
}

static void test_chain_and_seqs(void) {
  const char *dir = at("chain");
  ds_checkpoint_loaded_t r;
  ds_checkpoint_t cp, again;
  CHECK_EQ_INT(ds_checkpoint_init(&cp, dir, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_DELTA, 1000, "d"), DS_ESTATE);
  CHECK(strstr(errbuf, "write a full one first") != NULL);
  CHECK_EQ_STR(listing(dir), "");
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_FULL, 1000, "f1"), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_DELTA, 2000, "d2"), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_DELTA, 3000, "d3"), 0);
  ds_checkpoint_close(&cp);
  /* A new handle continues the seqs, and rests deltas on what it loaded. */
  CHECK_EQ_INT(ds_checkpoint_init(&again, dir, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(put(&again, DS_CHECKPOINT_DELTA, 4000, "d4"), DS_ESTATE);
  CHECK_EQ_INT(ds_checkpoint_load(&again, &r, errbuf, sizeof errbuf), 0);
  ds_checkpoint_loaded_close(&r);
  CHECK_EQ_INT(put(&again, DS_CHECKPOINT_DELTA, 4000, "d4"), 0);
  CHECK_EQ_INT(ds_checkpoint_load(&again, &r, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(r.nchain, 4);
  if (r.nchain == 4) {
    CHECK(section_is(&r.chain[0], 0, "s", "f1", 2));
    CHECK(section_is(&r.chain[1], 0, "s", "d2", 2));
    CHECK(section_is(&r.chain[3], 0, "s", "d4", 2));
    CHECK_EQ_INT(r.chain[3].seq, 4);
    CHECK_EQ_INT(r.chain[3].base, 3);
    CHECK_EQ_INT(r.chain[3].time_ms, 4000);
  }
  ds_checkpoint_loaded_close(&r);
  ds_checkpoint_close(&again);
}

static void test_pending(void) {
  const char *dir = at("pending");
  ds_checkpoint_loaded_t r;
  ds_checkpoint_t cp;
  CHECK_EQ_INT(ds_checkpoint_init(&cp, dir, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_PENDING, 1000, "in1"), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_FULL, 1000, "f1"), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_PENDING, 2000, "in2"), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_DELTA, 2000, "d2"), 0);
  /* Batch 1000's inputs go once a checkpoint rests on the one covering it... */
  CHECK_EQ_STR(listing(dir), "checkpoint-0000000000000001.full "
                             "checkpoint-0000000000000002.delta pending-0000000000002000");
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_PENDING, 4000, "in4"), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_PENDING, 3000, "old"), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_PENDING, 3000, "in3"), 0); /* replaces */
  CHECK_EQ_INT(ds_checkpoint_load(&cp, &r, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(r.npending, 2);
  if (r.npending == 2) {
    CHECK_EQ_INT(r.pending[0].time_ms, 3000);
    CHECK_EQ_INT(r.pending[0].kind, DS_CHECKPOINT_PENDING);
    CHECK(section_is(&r.pending[0], 0, "s", "in3", 3));
    CHECK_EQ_INT(r.pending[1].time_ms, 4000);
    CHECK_EQ_STR(r.pending[1].name, "pending-0000000000004000");
  }
  ds_checkpoint_loaded_close(&r);
  /* ... and the batches up to it are not returned (2000 <= 2000). */
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_DELTA, 3000, "d3"), 0);
  CHECK_EQ_STR(listing(dir), "checkpoint-0000000000000001.full checkpoint-0000000000000002.delta "
                             "checkpoint-0000000000000003.delta pending-0000000000003000 "
                             "pending-0000000000004000");
  CHECK_EQ_INT(ds_checkpoint_load(&cp, &r, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(r.npending, 1);
  ds_checkpoint_loaded_close(&r);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_PENDING, -1, "x"), DS_ERANGE);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_PENDING, 10000000000000000LL, "x"), DS_ERANGE);
  ds_checkpoint_close(&cp);
}

static void test_pruning_keeps_two_fulls(void) {
  const char *dir = at("prune");
  ds_checkpoint_t cp;
  CHECK_EQ_INT(ds_checkpoint_init(&cp, dir, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_FULL, 1000, "1"), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_DELTA, 2000, "2"), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_FULL, 3000, "3"), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_DELTA, 4000, "4"), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_DELTA, 5000, "5"), 0);
  CHECK_EQ_STR(listing(dir), "checkpoint-0000000000000001.full checkpoint-0000000000000002.delta "
                             "checkpoint-0000000000000003.full checkpoint-0000000000000004.delta "
                             "checkpoint-0000000000000005.delta");
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_FULL, 6000, "6"), 0);
  CHECK_EQ_STR(listing(dir), "checkpoint-0000000000000003.full checkpoint-0000000000000004.delta "
                             "checkpoint-0000000000000005.delta checkpoint-0000000000000006.full");
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_FULL, 7000, "7"), 0);
  CHECK_EQ_STR(listing(dir), "checkpoint-0000000000000006.full checkpoint-0000000000000007.full");
  ds_checkpoint_close(&cp);
}

/* A full found damaged does not count as one of the two kept. */
static void test_pruning_skips_damaged_fulls(void) {
  const char *dir = at("prune2");
  ds_checkpoint_loaded_t r;
  ds_checkpoint_t cp;
  CHECK_EQ_INT(ds_checkpoint_init(&cp, dir, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_FULL, 1000, "1"), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_DELTA, 2000, "2"), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_FULL, 3000, "3"), 0);
  ds_checkpoint_close(&cp);
  CHECK_EQ_INT(ds_fs_write(at("prune2/checkpoint-0000000000000003.full"), "DS", 2, errbuf,
                           sizeof errbuf), 0);
  CHECK_EQ_INT(ds_checkpoint_init(&cp, dir, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(ds_checkpoint_load(&cp, &r, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(r.nchain, 2);
  ds_checkpoint_loaded_close(&r);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_FULL, 3000, "3 again"), 0);
  /* Fulls 1 and 4 are the two good ones: 1 and its delta stay. */
  CHECK_EQ_STR(listing(dir), "checkpoint-0000000000000001.full checkpoint-0000000000000002.delta "
                             "checkpoint-0000000000000003.full checkpoint-0000000000000004.full");
  ds_checkpoint_close(&cp);
}

static void test_atomic_write(void) {
  const char *dir = at("atomic");
  ds_checkpoint_loaded_t r;
  ds_checkpoint_t cp;
  struct rlimit old, small;
  size_t big_len = 3 * DS_CHECKPOINT_CHUNK;
  char *big = ds_calloc(big_len, 1);
  ds_checkpoint_section_t s = sec("big", big, big_len);
  int rc;
  CHECK_EQ_INT(ds_fs_mkdirs(dir, errbuf, sizeof errbuf), 0);
  /* A write cut short by a crash leaves a .tmp file: never read, removed at open. */
  CHECK_EQ_INT(ds_fs_write(at("atomic/checkpoint-0000000000000009.full.tmp"), "DS", 2, errbuf,
                           sizeof errbuf), 0);
  CHECK_EQ_INT(ds_fs_write(at("atomic/other.tmp"), "x", 1, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(ds_checkpoint_init(&cp, dir, errbuf, sizeof errbuf), 0);
  CHECK_EQ_STR(listing(dir), "other.tmp");
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_FULL, 1000, "f1"), 0);
  /* A write that fails half way (the file size limit: EFBIG, as a full disk
   * would give ENOSPC) leaves nothing new, and the old checkpoint stands. */
  getrlimit(RLIMIT_FSIZE, &old);
  small = old;
  small.rlim_cur = DS_CHECKPOINT_CHUNK + 100;
  signal(SIGXFSZ, SIG_IGN);
  setrlimit(RLIMIT_FSIZE, &small);
  rc = ds_checkpoint_write(&cp, DS_CHECKPOINT_FULL, 2000, &s, 1, NULL, errbuf, sizeof errbuf);
  setrlimit(RLIMIT_FSIZE, &old);
  CHECK_EQ_INT(rc, DS_EIO);
  CHECK(strstr(errbuf, "atomic/checkpoint-0000000000000002.full.tmp (File too large)") != NULL);
  CHECK_EQ_STR(listing(dir), "checkpoint-0000000000000001.full other.tmp");
  CHECK_EQ_INT(ds_checkpoint_load(&cp, &r, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(r.nchain, 1);
  CHECK_EQ_INT(r.chain[0].time_ms, 1000);
  ds_checkpoint_loaded_close(&r);
  /* A directory that went away: the error names it. */
  ds_checkpoint_close(&cp);
  CHECK_EQ_INT(ds_checkpoint_init(&cp, at("atomic/gone"), errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(ds_fs_remove_tree(at("atomic/gone"), errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_FULL, 1000, "f"), DS_ENOENT);
  CHECK(strstr(errbuf, "atomic/gone/checkpoint-0000000000000001.full.tmp") != NULL);
  ds_checkpoint_close(&cp);
  /* A path through a file cannot be a checkpoint directory. */
  CHECK_EQ_INT(ds_checkpoint_init(&cp, at("atomic/other.tmp/sub"), errbuf, sizeof errbuf),
               DS_EIO);
  CHECK(strstr(errbuf, "other.tmp/sub (Not a directory)") != NULL);
  ds_free(big);
}

/* The offsets at which the frames of data begin (at most max). */
static size_t frame_starts(const char *data, size_t len, size_t *starts, size_t max) {
  size_t pos = 0, n = 0;
  while (pos < len && n < max) {
    ds_frame_t f;
    if (ds_frame_header(&f, data + pos, len - pos, NULL, 0) != 0)
      break;
    starts[n++] = pos;
    pos += f.size;
  }
  return n;
}

/* The start of the frame holding byte off. */
static size_t frame_of(const size_t *starts, size_t n, size_t off) {
  size_t i = n;
  while (i-- > 0)
    if (starts[i] <= off)
      return starts[i];
  return 0;
}

/* dir holds F1 D2 and the newest file `name`: load must give the chain up to
 * seq 2 (time 2000) and one warning naming name and "byte <at>". */
static int falls_back(const char *dir, const char *name, size_t at_byte) {
  char want[128];
  ds_checkpoint_loaded_t r;
  ds_checkpoint_t cp;
  int ok = 1;
  snprintf(want, sizeof want, "%s: damaged at byte %zu: ", name, at_byte);
  if (ds_checkpoint_init(&cp, dir, errbuf, sizeof errbuf) != 0)
    return 0;
  if (ds_checkpoint_load(&cp, &r, errbuf, sizeof errbuf) != 0) {
    ok = 0;
  } else {
    ok = r.nchain == 2 && r.chain[1].seq == 2 && r.chain[1].time_ms == 2000 &&
         r.nwarnings == 1 && strncmp(r.warnings[0], want, strlen(want)) == 0 &&
         strstr(r.warnings[0], "using checkpoint-0000000000000002.delta (batch time 2000)") != NULL &&
         r.npending == 1 && r.pending[0].time_ms == 3000;
    if (!ok)
      fprintf(stderr, "expected a warning starting \"%s\", got \"%s\"\n", want,
              r.nwarnings > 0 ? r.warnings[0] : "(none)");
  }
  ds_checkpoint_loaded_close(&r);
  ds_checkpoint_close(&cp);
  return ok;
}

/* The byte after off to flip: every byte of the first and last 32, and
 * between them one in every step. */
static size_t next_flip(size_t off, size_t len, size_t step) {
  if (off < 32 || off + 32 >= len)
    return off + 1;
  return off + step < len - 32 ? off + step : len - 32;
}

/* The newest file, a delta or a full (big: two frames for a section), cut at every
 * byte offset (of its last frame, for the full) and with every bit flipped
 * (a sample of bits for the big full). */
static void damage_newest(const char *rel, int full) {
  const char *dir = at(rel);
  char path[600], name[64];
  size_t len, starts[16], nframes, off, first_cut, bits = 0;
  size_t big_len = DS_CHECKPOINT_CHUNK + 777;
  char *big = ds_malloc(big_len), *orig;
  ds_checkpoint_section_t s[2];
  ds_checkpoint_t cp;
  int all_ok = 1, fd;
  memset(big, 'b', big_len);
  s[0] = sec("graph", "g", 1);
  s[1] = full ? sec("state", big, big_len) : sec("state", "changed keys", 12);
  fresh(rel);
  CHECK_EQ_INT(ds_checkpoint_init(&cp, dir, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_FULL, 1000, "f1"), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_PENDING, 2000, "in2"), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_DELTA, 2000, "d2"), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_PENDING, 3000, "in3"), 0);
  CHECK_EQ_INT(ds_checkpoint_write(&cp, full ? DS_CHECKPOINT_FULL : DS_CHECKPOINT_DELTA, 3000,
                                   s, 2, NULL, errbuf, sizeof errbuf), 0);
  ds_checkpoint_close(&cp);
  ds_free(big);
  snprintf(name, sizeof name, "%s", ckpt_name(3, full ? "full" : "delta"));
  snprintf(path, sizeof path, "%s/%s", dir, name);
  orig = slurp(path, &len);
  nframes = frame_starts(orig, len, starts, 16);
  CHECK_EQ_INT(nframes, full ? 5 : 4); /* header, sections (2 frames for big), trailer */
  /* The file is damaged in place (pwrite, ftruncate): rewriting it whole
   * thousands of times would make the file system flush it each time. */
  fd = open(path, O_RDWR);
  CHECK(fd >= 0);
  /* Flip every bit; of the big full, every bit of its first and last 32
   * bytes (its header and trailer frames) and one bit in every 64 KiB
   * between (each load reads the whole 1 MiB again). */
  for (off = 0; off < len; off = next_flip(off, len, full ? 65521 : 1)) {
    int bit;
    for (bit = 0; bit < 8; bit++) {
      char b = (char)(orig[off] ^ (1 << bit));
      if (full && off >= 32 && off + 32 < len && bit != (int)(off % 8))
        continue; /* one bit per sampled byte */
      CHECK_EQ_INT(pwrite(fd, &b, 1, (off_t)off), 1);
      bits++;
      if (!falls_back(dir, name, frame_of(starts, nframes, off))) {
        all_ok = 0;
        fprintf(stderr, "%s: bit %d of byte %zu flipped\n", name, bit, off);
      }
      CHECK_EQ_INT(pwrite(fd, orig + off, 1, (off_t)off), 1);
    }
  }
  CHECK(all_ok);
  /* Cut at every offset, also exactly at each frame boundary; from the
   * end, so that each cut only shortens the file. */
  first_cut = full ? starts[nframes - 1] : 0;
  for (off = len; off-- > first_cut;) {
    CHECK_EQ_INT(ftruncate(fd, (off_t)off), 0);
    /* Frames before the cut are intact: the one holding it is reported,
     * or, cut at a boundary, the missing one. */
    if (!falls_back(dir, name, frame_of(starts, nframes, off))) {
      all_ok = 0;
      fprintf(stderr, "%s cut at %zu of %zu bytes\n", name, off, len);
    }
  }
  CHECK(all_ok);
  close(fd);
  CHECK(bits >= (full ? 512 + 15 : len * 8));
  free(orig);
}

static void test_damaged_pending_and_all_damaged(void) {
  const char *dir = at("alldamaged");
  ds_checkpoint_loaded_t r;
  ds_checkpoint_t cp;
  CHECK_EQ_INT(ds_checkpoint_init(&cp, dir, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_FULL, 1000, "f1"), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_DELTA, 2000, "d2"), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_PENDING, 3000, "in3"), 0);
  CHECK_EQ_INT(ds_fs_write(at("alldamaged/pending-0000000000003000"), "DS\1", 3, errbuf,
                           sizeof errbuf), 0);
  CHECK_EQ_INT(ds_checkpoint_load(&cp, &r, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(r.npending, 0);
  CHECK_EQ_INT(r.nwarnings, 1);
  if (r.nwarnings == 1)
    CHECK(strstr(r.warnings[0], "pending-0000000000003000: damaged at byte 0: a frame header "
                                "takes 16 bytes") != NULL);
  ds_checkpoint_loaded_close(&r);
  CHECK_EQ_INT(ds_fs_write(at("alldamaged/checkpoint-0000000000000001.full"), "", 0, errbuf,
                           sizeof errbuf), 0);
  CHECK_EQ_INT(ds_checkpoint_load(&cp, &r, errbuf, sizeof errbuf), DS_ETRUNCATED);
  CHECK(strstr(errbuf, "no intact checkpoint in ") != NULL);
  CHECK(strstr(errbuf, "checkpoint-0000000000000002.delta: not applied: it rests on "
                       "checkpoint-0000000000000001.full, damaged at byte 0") != NULL);
  CHECK(strstr(errbuf, "checkpoint-0000000000000001.full: damaged at byte 0") != NULL);
  CHECK_EQ_INT(r.nchain, 0);
  CHECK_EQ_INT(r.nwarnings, 2);
  ds_checkpoint_loaded_close(&r);
  ds_checkpoint_close(&cp);
}

/* Bytes a reader must refuse, each at the right offset. */
static void test_parse_refuses(void) {
  ds_checkpoint_section_t s = sec("s", "abc", 3);
  ds_checkpoint_file_t f;
  ds_checkpoint_t cp;
  char *data, *copy;
  size_t len;
  CHECK_EQ_INT(ds_checkpoint_init(&cp, at("parse"), errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(ds_checkpoint_write(&cp, DS_CHECKPOINT_FULL, 5, &s, 1, NULL, errbuf,
                                   sizeof errbuf), 0);
  ds_checkpoint_close(&cp);
  data = slurp(at("parse/checkpoint-0000000000000001.full"), &len);
  CHECK_EQ_INT(ds_checkpoint_parse(&f, data, len, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(f.nsections, 1);
  CHECK(f.name == NULL);
  ds_checkpoint_file_close(&f);
  copy = malloc(len + 1);
  memcpy(copy, data, len);
  copy[len] = 'x';
  CHECK_EQ_INT(ds_checkpoint_parse(&f, copy, len + 1, errbuf, sizeof errbuf), DS_ECORRUPT);
  CHECK(strstr(errbuf, "bytes follow the trailer") != NULL);
  CHECK_EQ_INT(ds_checkpoint_parse(&f, "", 0, errbuf, sizeof errbuf), DS_ETRUNCATED);
  CHECK_EQ_STR(errbuf, "byte 0: a frame header takes 16 bytes, the data has 0");
  free(copy);
  free(data);
}

/* Every allocation failing in turn: ENOMEM, nothing leaked, nothing new on disk. */
static void test_out_of_memory(void) {
  const char *dir = at("oom");
  ds_checkpoint_section_t s[2];
  ds_checkpoint_loaded_t r;
  ds_checkpoint_t cp;
  long nth, base;
  int rc = -1;
  char before[4096];
  s[0] = sec("a", "1", 1);
  s[1] = sec("b", "22", 2);
  CHECK_EQ_INT(ds_checkpoint_init(&cp, dir, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_FULL, 1000, "f1"), 0);
  CHECK_EQ_INT(put(&cp, DS_CHECKPOINT_PENDING, 3000, "in"), 0);
  base = ds_test_live();
  for (nth = 1; nth < 200; nth++) {
    snprintf(before, sizeof before, "%s", listing(dir));
    ds_test_fail_after(nth);
    rc = ds_checkpoint_write(&cp, DS_CHECKPOINT_DELTA, 2000, s, 2, NULL, errbuf, sizeof errbuf);
    ds_test_fail_after(0);
    if (rc == 0)
      break;
    CHECK_EQ_INT(rc, DS_ENOMEM);
    CHECK_EQ_STR(listing(dir), before);
    CHECK_EQ_INT(ds_test_live(), base);
  }
  CHECK_EQ_INT(rc, 0);
  for (nth = 1; nth < 400; nth++) {
    ds_test_fail_after(nth);
    rc = ds_checkpoint_load(&cp, &r, errbuf, sizeof errbuf);
    ds_test_fail_after(0);
    if (rc == 0)
      break;
    CHECK_EQ_INT(rc, DS_ENOMEM);
    CHECK_EQ_INT(r.nchain, 0);
    ds_checkpoint_loaded_close(&r);
    if (ds_test_live() != base)
      fprintf(stderr, "load leaks when allocation %ld fails\n", nth);
    CHECK_EQ_INT(ds_test_live(), base);
  }
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(r.nchain, 2);
  CHECK_EQ_INT(r.npending, 1);
  ds_checkpoint_loaded_close(&r);
  ds_checkpoint_close(&cp);
  for (nth = 1; nth < 100; nth++) {
    ds_test_fail_after(nth);
    rc = ds_checkpoint_init(&cp, dir, errbuf, sizeof errbuf);
    ds_test_fail_after(0);
    if (rc == 0)
      break;
    CHECK_EQ_INT(rc, DS_ENOMEM);
    CHECK_EQ_INT(ds_test_live(), 0);
  }
  CHECK_EQ_INT(rc, 0);
  ds_checkpoint_close(&cp);
}

int main(void) {
  const char *tmp = getenv("TMPDIR");
  ds_test_begin();
  snprintf(root, sizeof(root), "%s/ds_test_checkpoint.XXXXXX", tmp != NULL ? tmp : "/tmp");
  if (mkdtemp(root) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  test_write_and_load_back();
  test_chain_and_seqs();
  test_pending();
  test_pruning_keeps_two_fulls();
  test_pruning_skips_damaged_fulls();
  test_atomic_write();
  damage_newest("torn_delta", 0);
  damage_newest("torn_full", 1);
  test_damaged_pending_and_all_damaged();
  test_parse_refuses();
  test_out_of_memory();
  CHECK_EQ_STR(ds_checkpoint_kind_name(DS_CHECKPOINT_DELTA), "delta");
  CHECK_EQ_INT(ds_fs_remove_tree(root, errbuf, sizeof(errbuf)), 0);
  return ds_test_end("test_checkpoint");
}

/* The write-ahead log in real directories: blocks come back after a reopen,
 * segments roll and are released, a segment cut at EVERY byte offset of its
 * last frame and EVERY single-bit flip are detected, reported and cost only
 * the damaged block; appends that fail (a real file size limit) leave
 * nothing behind; out of memory at every allocation changes nothing. */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dstream/codec.h"
#include "dstream/error.h"
#include "dstream/fs.h"
#include "dstream/wal.h"
#include "harness.h"

static char errbuf[DS_WAL_MESSAGE_MAX];

static void make_dir(char *out, size_t n) {
  snprintf(out, n, "/tmp/test_wal_XXXXXX");
  CHECK(mkdtemp(out) != NULL);
}

static void remove_dir(const char *dir) {
  CHECK_EQ_INT(ds_fs_remove_tree(dir, NULL, 0), 0);
}

static ds_wal_t *open_wal(const char *dir, size_t segment_bytes) {
  ds_wal_opts_t o;
  ds_wal_t *w = NULL;
  int rc;
  ds_wal_opts_init(&o);
  o.segment_bytes = segment_bytes;
  rc = ds_wal_open(dir, &o, &w, errbuf, sizeof errbuf);
  CHECK_EQ_INT(rc, 0);
  if (rc != 0)
    fprintf(stderr, "  open: %s\n", errbuf);
  return w;
}

/* A lines block of records "<tag> <i>" for i < n. */
static ds_block_t *lines_block(const char *tag, int n) {
  ds_block_t *b = ds_block_new(64);
  char rec[64];
  int i;
  for (i = 0; i < n; i++) {
    int len = snprintf(rec, sizeof rec, "%s %d", tag, i);
    CHECK_EQ_INT(ds_block_append(b, rec, (size_t)len), 0);
  }
  return b;
}

/* A codec block (a frame) of n string records "<tag>". */
static void codec_block(ds_buf_t *b, const char *tag, int n) {
  size_t start;
  int i;
  ds_buf_truncate(b, 0);
  CHECK_EQ_INT(ds_frame_begin(b, 0, &start), 0);
  for (i = 0; i < n; i++)
    CHECK_EQ_INT(ds_codec_put_str(b, tag, strlen(tag)), 0);
  CHECK_EQ_INT(ds_frame_end(b, start, (size_t)n), 0);
}

static uint64_t append_lines(ds_wal_t *w, uint64_t stream, const char *tag, int n) {
  ds_block_t *b = lines_block(tag, n);
  uint64_t seq = 0;
  CHECK_EQ_INT(ds_wal_append_block(w, stream, b, &seq, errbuf, sizeof errbuf), 0);
  ds_block_free(b);
  return seq;
}

static uint64_t append_codec(ds_wal_t *w, uint64_t stream, const char *tag, int n) {
  ds_buf_t b;
  uint64_t seq = 0;
  ds_buf_init(&b);
  codec_block(&b, tag, n);
  CHECK_EQ_INT(ds_wal_append(w, stream, DS_WAL_CODEC, b.data, b.len, &seq, errbuf, sizeof errbuf), 0);
  ds_buf_close(&b);
  return seq;
}

/* The seqs replay gives for stream in (after, upto], into out; how many. */
static size_t replay_seqs(ds_wal_t *w, uint64_t stream, uint64_t after, uint64_t upto,
                          uint64_t *out, size_t max) {
  ds_wal_iter_t it;
  ds_wal_block_t blk;
  size_t n = 0;
  int rc;
  ds_wal_iter_init(&it, w, stream, after, upto);
  while ((rc = ds_wal_iter_next(&it, &blk, errbuf, sizeof errbuf)) == 1)
    if (n < max)
      out[n++] = blk.seq;
  CHECK_EQ_INT(rc, 0);
  ds_wal_iter_close(&it);
  return n;
}

static size_t warnings_of(ds_wal_t *w, const char *const **out) {
  return ds_wal_warnings(w, out);
}

static char *seg_path(const char *dir, uint64_t first, char *out, size_t n) {
  snprintf(out, n, "%s/wal-%016llu.log", dir, (unsigned long long)first);
  return out;
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  long n = file_size(path);
  char *p = malloc(n > 0 ? (size_t)n : 1);
  *len = fread(p, 1, (size_t)n, f);
  fclose(f);
  return p;
}

static void write_file(const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "wb");
  CHECK(fwrite(data, 1, len, f) == len);
  fclose(f);
}

/* The tests. */

static void test_blocks_come_back_after_a_reopen(void) {
  char dir[64];
  uint64_t seqs[16];
  ds_wal_iter_t it;
  ds_wal_block_t blk;
  ds_wal_t *w;
  const char *const *warn;
  make_dir(dir, sizeof dir);
  w = open_wal(dir, 1 << 20);
  CHECK_EQ_INT(ds_wal_last_seq(w), 0);
  CHECK_EQ_INT(append_lines(w, 3, "a", 2), 1);
  CHECK_EQ_INT(append_codec(w, 4, "b", 1), 2);
  CHECK_EQ_INT(append_codec(w, 3, "c", 3), 3);
  ds_wal_free(w);

  w = open_wal(dir, 1 << 20);
  CHECK_EQ_INT(ds_wal_last_seq(w), 3);
  CHECK_EQ_INT(warnings_of(w, &warn), 0);
  ds_wal_iter_init(&it, w, 3, 0, UINT64_MAX);
  CHECK_EQ_INT(ds_wal_iter_next(&it, &blk, errbuf, sizeof errbuf), 1);
  CHECK(blk.seq == 1 && blk.stream == 3 && blk.kind == DS_WAL_LINES && blk.count == 2);
  CHECK(blk.len == 2 * 4 + 3 + 3 && memcmp(blk.data + 4, "a 0", 3) == 0);
  CHECK_EQ_INT(ds_wal_iter_next(&it, &blk, errbuf, sizeof errbuf), 1);
  CHECK(blk.seq == 3 && blk.kind == DS_WAL_CODEC && blk.count == 3);
  CHECK_EQ_INT(blk.len, DS_FRAME_HEADER_LEN + 3 * 3); /* a frame of 3 x "c" */
  CHECK_EQ_INT(ds_wal_iter_next(&it, &blk, errbuf, sizeof errbuf), 0);
  ds_wal_iter_close(&it);
  CHECK_EQ_INT(replay_seqs(w, 4, 0, UINT64_MAX, seqs, 16), 1);
  CHECK_EQ_INT(replay_seqs(w, 3, 1, 2, seqs, 16), 0);
  CHECK_EQ_INT(replay_seqs(w, 3, 0, 1, seqs, 16), 1);
  CHECK_EQ_INT(append_lines(w, 3, "d", 1), 4);
  ds_wal_close(w);
  CHECK_EQ_INT(ds_wal_append(w, 3, DS_WAL_LINES, "", 0, &seqs[0], errbuf, sizeof errbuf),
               DS_ECLOSED);
  ds_wal_free(w);
  remove_dir(dir);
}

static void test_bad_blocks_are_refused(void) {
  static const char bad_lines[] = {5, 0, 0, 0, 'a'};
  char dir[64];
  ds_buf_t b;
  uint64_t seq = 0;
  size_t start;
  ds_wal_t *w;
  make_dir(dir, sizeof dir);
  w = open_wal(dir, 1 << 20);
  ds_buf_init(&b);
  CHECK_EQ_INT(ds_wal_append(w, 0, DS_WAL_LINES, bad_lines, sizeof bad_lines, &seq, errbuf,
                             sizeof errbuf), DS_ECORRUPT);
  CHECK_EQ_INT(ds_wal_append(w, 0, 9, "", 0, &seq, errbuf, sizeof errbuf), DS_EINVAL);
  CHECK_EQ_INT(ds_wal_append(w, 0, DS_WAL_CODEC, "xx", 2, &seq, errbuf, sizeof errbuf),
               DS_ECORRUPT);
  CHECK_EQ_INT(ds_frame_begin(&b, DS_FRAME_PAIRS, &start), 0);
  CHECK_EQ_INT(ds_frame_end(&b, start, 0), 0);
  CHECK_EQ_INT(ds_wal_append(w, 0, DS_WAL_CODEC, b.data, b.len, &seq, errbuf, sizeof errbuf),
               DS_EINVAL);
  CHECK(strstr(errbuf, "pairs frame") != NULL);
  codec_block(&b, "x", 1);
  CHECK_EQ_INT(ds_buf_append(&b, "!", 1), 0);
  CHECK_EQ_INT(ds_wal_append(w, 0, DS_WAL_CODEC, b.data, b.len, &seq, errbuf, sizeof errbuf),
               DS_ECORRUPT);
  CHECK(strstr(errbuf, "1 bytes after its frame") != NULL);
  CHECK_EQ_INT(ds_wal_last_seq(w), 0);
  ds_buf_close(&b);
  ds_wal_free(w);
  remove_dir(dir);
}

static void test_segments_roll_and_are_released(void) {
  char dir[64], path[128], **names;
  uint64_t seqs[16];
  size_t n;
  ds_wal_t *w;
  make_dir(dir, sizeof dir);
  CHECK_EQ_INT(mkdir(strcat(strcpy(path, dir), "/wal-junk.log"), 0755), 0);
  write_file(strcat(strcpy(path, dir), "/notes"), "x", 1);
  w = open_wal(dir, 120);
  /* each block is a frame of 57 bytes: two per segment */
  for (n = 1; n <= 7; n++)
    CHECK_EQ_INT(append_lines(w, n % 2, "block", 3), n);
  CHECK(file_size(seg_path(dir, 1, path, sizeof path)) > 0);
  CHECK(file_size(seg_path(dir, 3, path, sizeof path)) > 0);
  CHECK(file_size(seg_path(dir, 7, path, sizeof path)) > 0);
  CHECK_EQ_INT(ds_wal_release(w, 1, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(ds_wal_release(w, 4, errbuf, sizeof errbuf), 2);
  CHECK_EQ_INT(file_size(seg_path(dir, 1, path, sizeof path)), -1);
  CHECK_EQ_INT(file_size(seg_path(dir, 3, path, sizeof path)), -1);
  CHECK_EQ_INT(replay_seqs(w, 1, 0, UINT64_MAX, seqs, 16), 2);
  CHECK(seqs[0] == 5 && seqs[1] == 7);
  CHECK_EQ_INT(ds_wal_release(w, 100, errbuf, sizeof errbuf), 1);
  ds_wal_free(w);
  CHECK_EQ_INT(ds_fs_list(dir, &names, &n, NULL, 0), 0);
  CHECK_EQ_INT(n, 3); /* notes, the newest segment, wal-junk.log */
  CHECK_EQ_STR(names[1], "wal-0000000000000007.log");
  ds_fs_list_free(names, n);
  /* Every block released: the seq still goes on. */
  w = open_wal(dir, 100);
  CHECK_EQ_INT(ds_wal_last_seq(w), 7);
  CHECK_EQ_INT(append_codec(w, 0, "x", 1), 8);
  ds_wal_free(w);
  /* An empty newest segment carries the seq too. */
  CHECK_EQ_INT(ds_fs_remove_tree(seg_path(dir, 7, path, sizeof path), NULL, 0), 0);
  write_file(seg_path(dir, 20, path, sizeof path), "", 0);
  w = open_wal(dir, 100);
  CHECK_EQ_INT(ds_wal_last_seq(w), 19);
  CHECK_EQ_INT(append_codec(w, 0, "x", 1), 20);
  ds_wal_free(w);
  remove_dir(dir);
}

/* A WAL of three blocks in one segment (sizes in sz[]), written anew. */
static void three_blocks(const char *dir, size_t *sz) {
  char path[128];
  ds_wal_t *w;
  long before = 0, after;
  int i;
  remove_dir(dir);
  w = open_wal(dir, 1 << 20);
  for (i = 0; i < 3; i++) {
    if (i == 1)
      append_codec(w, 1, "codec", 2);
    else
      append_lines(w, 1, i == 0 ? "first" : "third", 2);
    after = file_size(seg_path(dir, 1, path, sizeof path));
    sz[i] = (size_t)(after - before);
    before = after;
  }
  ds_wal_free(w);
}

static void test_a_cut_at_every_offset_of_the_last_frame(void) {
  char dir[64], path[128];
  char *orig;
  size_t sz[3], len, cut, start, failures = 0;
  make_dir(dir, sizeof dir);
  three_blocks(dir, sz);
  seg_path(dir, 1, path, sizeof path);
  orig = read_file(path, &len);
  start = sz[0] + sz[1];
  CHECK_EQ_INT(len, start + sz[2]);
  for (cut = start; cut < len; cut++) {
    const char *const *warn;
    uint64_t seqs[4];
    char want[DS_WAL_MESSAGE_MAX];
    ds_wal_t *w;
    size_t nwarn;
    int ok = 1;
    write_file(path, orig, cut);
    w = open_wal(dir, 1 << 20);
    nwarn = warnings_of(w, &warn);
    snprintf(want, sizeof want, "%s: torn tail cut at byte %zu (%zu bytes dropped: ", path,
             start, cut - start);
    ok = ok && ds_wal_last_seq(w) == 2 && (size_t)file_size(path) == start;
    ok = ok && nwarn == (cut > start ? 1u : 0u);
    ok = ok && (nwarn == 0 || strncmp(warn[0], want, strlen(want)) == 0);
    ok = ok && (nwarn == 0 || strstr(warn[0], "last good block seq 2") != NULL);
    ok = ok && replay_seqs(w, 1, 0, UINT64_MAX, seqs, 4) == 2 && seqs[1] == 2;
    ok = ok && append_lines(w, 1, "next", 1) == 3;
    ok = ok && replay_seqs(w, 1, 2, UINT64_MAX, seqs, 4) == 1 && seqs[0] == 3;
    if (!ok && failures++ < 3)
      fprintf(stderr, "  cut at %zu: %s\n", cut, nwarn > 0 ? warn[0] : "no warning");
    ds_wal_free(w);
  }
  CHECK_EQ_INT(failures, 0);
  free(orig);
  remove_dir(dir);
}

/* A torn tail in the newest of several segments; older ones are not cut. */
static void test_a_torn_newest_segment_among_older_ones(void) {
  char dir[64], path[128];
  const char *const *warn;
  uint64_t seqs[8];
  ds_wal_t *w;
  long size;
  make_dir(dir, sizeof dir);
  w = open_wal(dir, 100);
  for (int i = 0; i < 5; i++)
    append_lines(w, 0, "block", 3);
  ds_wal_free(w);
  seg_path(dir, 5, path, sizeof path);
  size = file_size(path);
  CHECK_EQ_INT(truncate(path, size - 1), 0);
  w = open_wal(dir, 100);
  CHECK_EQ_INT(warnings_of(w, &warn), 1);
  CHECK(strstr(warn[0], "wal-0000000000000005.log: torn tail cut at byte 0 (") != NULL);
  CHECK_EQ_INT(ds_wal_last_seq(w), 4);
  CHECK_EQ_INT(file_size(path), 0);
  CHECK_EQ_INT(replay_seqs(w, 0, 0, UINT64_MAX, seqs, 8), 4);
  CHECK_EQ_INT(append_lines(w, 0, "again", 1), 5);
  ds_wal_free(w);
  remove_dir(dir);
}

/* Every single-bit flip anywhere in the segment: the damaged block, and
 * only it, is lost, with one warning; the others come back intact. */
static void test_every_bit_flip_is_detected(void) {
  char dir[64], path[128];
  char *orig;
  size_t sz[3], len, byte, failures = 0;
  int bitno;
  make_dir(dir, sizeof dir);
  three_blocks(dir, sz);
  seg_path(dir, 1, path, sizeof path);
  orig = read_file(path, &len);
  for (byte = 0; byte < len; byte++) {
    int victim = byte < sz[0] ? 0 : byte < sz[0] + sz[1] ? 1 : 2;
    for (bitno = 0; bitno < 8; bitno++) {
      const char *const *warn;
      uint64_t seqs[4];
      ds_wal_t *w;
      size_t n, nwarn, k;
      int ok = 1;
      orig[byte] ^= (char)(1 << bitno);
      write_file(path, orig, len);
      orig[byte] ^= (char)(1 << bitno);
      w = open_wal(dir, 1 << 20);
      nwarn = warnings_of(w, &warn);
      n = replay_seqs(w, 1, 0, UINT64_MAX, seqs, 4);
      ok = ok && nwarn == 1 && n == 2;
      for (k = 0; ok && k < n; k++)
        ok = seqs[k] != (uint64_t)victim + 1;
      /* the last frame damaged is a torn tail, cut; any other stays */
      ok = ok && (size_t)file_size(path) == (victim == 2 ? sz[0] + sz[1] : len);
      ok = ok && strstr(warn[0], victim == 2 ? "torn tail cut" : "corrupt bytes") != NULL;
      ok = ok && ds_wal_last_seq(w) == (victim == 2 ? 2u : 3u);
      if (!ok && failures++ < 3)
        fprintf(stderr, "  flip byte %zu bit %d: %zu warnings, %zu blocks: %s\n", byte, bitno,
                nwarn, n, nwarn > 0 ? warn[0] : "");
      ds_wal_free(w);
    }
  }
  CHECK_EQ_INT(failures, 0);
  free(orig);
  remove_dir(dir);
}

/* Frames that are each well formed but repeat seqs (a segment written
 * twice, say) are damage: reported, skipped, and the segment not cut. */
static void test_out_of_order_seqs_are_damage(void) {
  char dir[64], path[128], *orig, *twice;
  const char *const *warn;
  uint64_t seqs[8];
  size_t sz[3], len;
  ds_wal_t *w;
  make_dir(dir, sizeof dir);
  three_blocks(dir, sz);
  seg_path(dir, 1, path, sizeof path);
  orig = read_file(path, &len);
  twice = malloc(2 * len);
  memcpy(twice, orig, len);
  memcpy(twice + len, orig, len);
  write_file(path, twice, len); /* the first copy only ... */
  write_file(path, twice, 2 * len); /* ... then both */
  w = open_wal(dir, 1 << 20);
  CHECK_EQ_INT(warnings_of(w, &warn), 1);
  CHECK(strstr(warn[0], "seq 1 out of order (expected 4..") != NULL);
  CHECK_EQ_INT(ds_wal_last_seq(w), 3);
  CHECK_EQ_INT(replay_seqs(w, 1, 0, UINT64_MAX, seqs, 8), 3);
  CHECK_EQ_INT((size_t)file_size(path), len); /* to the end: a tail, cut */
  ds_wal_free(w);
  free(orig);
  free(twice);
  remove_dir(dir);
}

/* Damage in an older segment is reported and skipped, never cut, and a
 * replay that meets damage open did not see reports it too. */
static void test_damage_in_an_older_segment(void) {
  char dir[64], path[128];
  const char *const *warn;
  uint64_t seqs[8];
  ds_wal_t *w;
  long size;
  FILE *f;
  make_dir(dir, sizeof dir);
  w = open_wal(dir, 100);
  for (int i = 0; i < 4; i++)
    append_lines(w, 0, "block", 3);
  seg_path(dir, 1, path, sizeof path);
  size = file_size(path);
  /* damage the first block of segment 1 behind the open WAL's back */
  f = fopen(path, "r+b");
  fseek(f, 20, SEEK_SET);
  fputc('!', f);
  fclose(f);
  CHECK_EQ_INT(replay_seqs(w, 0, 0, UINT64_MAX, seqs, 8), 3);
  CHECK_EQ_INT(warnings_of(w, &warn), 1);
  CHECK(strstr(warn[0], "wal-0000000000000001.log: ") != NULL);
  CHECK(strstr(warn[0], "corrupt bytes at byte 0 skipped (ECHECKSUM") != NULL);
  CHECK_EQ_INT(replay_seqs(w, 0, 0, UINT64_MAX, seqs, 8), 3);
  CHECK_EQ_INT(warnings_of(w, &warn), 1);
  ds_wal_free(w);
  w = open_wal(dir, 100);
  CHECK_EQ_INT(warnings_of(w, &warn), 1);
  CHECK_EQ_INT(file_size(path), size);
  CHECK_EQ_INT(ds_wal_last_seq(w), 4);
  ds_wal_free(w);
  remove_dir(dir);
}

/* A disk that fills up, for real: RLIMIT_FSIZE makes write() fail (EFBIG)
 * the way ENOSPC would; the append fails whole, then succeeds once there
 * is room, with the next seq and no damage left behind. */
static void test_a_failed_append_leaves_nothing(void) {
  char dir[64], path[128];
  const char *const *warn;
  struct rlimit saved, full;
  ds_block_t *b = lines_block("lots of data that does not fit", 50);
  uint64_t seq = 0, seqs[4];
  ds_wal_t *w;
  long size;
  make_dir(dir, sizeof dir);
  w = open_wal(dir, 1 << 20);
  append_lines(w, 0, "small", 1);
  seg_path(dir, 1, path, sizeof path);
  size = file_size(path);
  signal(SIGXFSZ, SIG_IGN);
  CHECK_EQ_INT(getrlimit(RLIMIT_FSIZE, &saved), 0);
  full = saved;
  full.rlim_cur = (rlim_t)size + 100;
  CHECK_EQ_INT(setrlimit(RLIMIT_FSIZE, &full), 0);
  CHECK_EQ_INT(ds_wal_append_block(w, 0, b, &seq, errbuf, sizeof errbuf), DS_EIO);
  CHECK_EQ_INT(setrlimit(RLIMIT_FSIZE, &saved), 0);
  CHECK(strstr(errbuf, path) != NULL && strstr(errbuf, "(File too large)") != NULL);
  CHECK_EQ_INT(file_size(path), size);
  CHECK_EQ_INT(ds_wal_last_seq(w), 1);
  CHECK_EQ_INT(ds_wal_append_block(w, 0, b, &seq, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(seq, 2);
  ds_wal_free(w);
  w = open_wal(dir, 1 << 20);
  CHECK_EQ_INT(warnings_of(w, &warn), 0);
  CHECK_EQ_INT(replay_seqs(w, 0, 0, UINT64_MAX, seqs, 4), 2);
  ds_wal_free(w);
  ds_block_free(b);
  remove_dir(dir);
}

static void test_open_fails_with_the_file_named(void) {
  char dir[64], path[128], file[128];
  ds_wal_opts_t o;
  ds_wal_t *w = NULL;
  make_dir(dir, sizeof dir);
  ds_wal_opts_init(&o);
  CHECK_EQ_INT(ds_wal_open("", &o, &w, errbuf, sizeof errbuf), DS_EINVAL);
  /* a segment that is a directory */
  CHECK_EQ_INT(mkdir(seg_path(dir, 1, path, sizeof path), 0755), 0);
  CHECK_EQ_INT(ds_wal_open(dir, &o, &w, errbuf, sizeof errbuf), DS_EIO);
  CHECK(strstr(errbuf, path) != NULL);
  CHECK(w == NULL);
  /* a directory that is a file */
  snprintf(file, sizeof file, "%s/file", dir);
  write_file(file, "x", 1);
  strcat(file, "/wal");
  CHECK(ds_wal_open(file, &o, &w, errbuf, sizeof errbuf) < 0);
  CHECK(strstr(errbuf, dir) != NULL);
  remove_dir(dir);
}

/* Out of memory at each allocation of open (with a torn tail to report)
 * and of append: DS_ENOMEM, nothing leaked, and then it works. */
static void test_out_of_memory_changes_nothing(void) {
  char dir[64], path[128];
  ds_wal_opts_t o;
  ds_wal_t *w = NULL;
  uint64_t seq;
  long n, size;
  int rc;
  make_dir(dir, sizeof dir);
  w = open_wal(dir, 1 << 20);
  append_lines(w, 0, "a", 1);
  append_lines(w, 0, "b", 1);
  ds_wal_free(w);
  seg_path(dir, 1, path, sizeof path);
  size = file_size(path);
  CHECK_EQ_INT(truncate(path, size - 2), 0);
  ds_wal_opts_init(&o);
  for (n = 1;; n++) {
    long live = ds_test_live();
    ds_test_fail_after(n);
    rc = ds_wal_open(dir, &o, &w, errbuf, sizeof errbuf);
    ds_test_fail_after(0);
    if (rc == 0)
      break;
    CHECK_EQ_INT(rc, DS_ENOMEM);
    CHECK_EQ_INT(ds_test_live(), live);
    CHECK_EQ_INT(file_size(path), size - 2); /* not cut until it can be reported */
  }
  CHECK(n > 3);
  CHECK_EQ_INT(ds_wal_last_seq(w), 1);
  for (n = 1;; n++) {
    ds_test_fail_after(n);
    rc = ds_wal_append(w, 0, DS_WAL_LINES, "\1\0\0\0z", 5, &seq, errbuf, sizeof errbuf);
    ds_test_fail_after(0);
    if (rc == 0)
      break;
    CHECK_EQ_INT(rc, DS_ENOMEM);
    CHECK_EQ_INT(ds_wal_last_seq(w), 1);
  }
  CHECK_EQ_INT(seq, 2);
  ds_wal_free(w);
  remove_dir(dir);
}

/* The reader on bytes: every byte is in exactly one block or damage. */
static void test_the_reader_accounts_for_every_byte(void) {
  char dir[64], path[128], *orig;
  size_t sz[3], len, i;
  make_dir(dir, sizeof dir);
  three_blocks(dir, sz);
  orig = read_file(seg_path(dir, 1, path, sizeof path), &len);
  for (i = 0; i < len; i += 7) {
    ds_wal_reader_t r;
    ds_wal_block_t blk;
    size_t covered = 0;
    int what;
    orig[i] ^= 0x5a;
    ds_wal_reader_init(&r, orig, len, 0, UINT64_MAX);
    while ((what = ds_wal_reader_next(&r, &blk)) != DS_WAL_END) {
      if (what == DS_WAL_BLOCK)
        CHECK_EQ_INT(blk.offset, covered);
      else
        CHECK_EQ_INT(r.damage_off, covered);
      covered = r.pos;
    }
    CHECK_EQ_INT(covered, len);
    orig[i] ^= 0x5a;
  }
  free(orig);
  remove_dir(dir);
}

int main(void) {
  ds_test_begin();
  test_blocks_come_back_after_a_reopen();
  test_bad_blocks_are_refused();
  test_segments_roll_and_are_released();
  test_a_cut_at_every_offset_of_the_last_frame();
  test_a_torn_newest_segment_among_older_ones();
  test_every_bit_flip_is_detected();
  test_out_of_order_seqs_are_damage();
  test_damage_in_an_older_segment();
  test_a_failed_append_leaves_nothing();
  test_open_fails_with_the_file_named();
  test_out_of_memory_changes_nothing();
  test_the_reader_accounts_for_every_byte();
  return ds_test_end("test_wal");
}

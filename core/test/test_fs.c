/* The file-system helpers against a real temporary directory: results, and
 * errors that carry the right code and name the path. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dstream/error.h"
#include "dstream/fs.h"
#include "harness.h"
#include "internal.h"

static char root[256];
static char errbuf[512];

/* root/rel, in a static buffer (one of four, so a call can take several). */
static const char *at(const char *rel) {
  static char bufs[4][512];
  static int next;
  char *p = bufs[next++ % 4];
  snprintf(p, 512, "%s/%s", root, rel);
  return p;
}

static void put(const char *rel, const char *data, size_t len) {
  CHECK_EQ_INT(ds_fs_write(at(rel), data, len, errbuf, sizeof(errbuf)), 0);
}

static void check_records(const ds_block_t *blk, const char *const *want,
                          const size_t *wlen, size_t n) {
  const char *rec;
  size_t len, off = 0, i = 0;
  while (ds_block_next(blk, &off, &rec, &len)) {
    CHECK(i < n);
    if (i < n)
      CHECK(len == wlen[i] && memcmp(rec, want[i], len) == 0);
    i++;
  }
  CHECK_EQ_INT(i, n);
}

static void test_mkdirs(void) {
  ds_fs_stat_t st;
  CHECK_EQ_INT(ds_fs_mkdirs(at("a/b/c"), errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(ds_fs_stat(at("a/b/c"), &st, errbuf, sizeof(errbuf)), 0);
  CHECK(st.is_dir);
  CHECK_EQ_INT(ds_fs_mkdirs(at("a/b/c"), errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(ds_fs_mkdirs(at("a/b/d/"), errbuf, sizeof(errbuf)), 0);
  put("a/file", "x", 1);
  CHECK_EQ_INT(ds_fs_mkdirs(at("a/file"), errbuf, sizeof(errbuf)), DS_EEXIST);
  CHECK_EQ_STR(errbuf, at("a/file"));
  CHECK_EQ_INT(ds_fs_mkdirs(at("a/file/sub"), errbuf, sizeof(errbuf)), DS_EIO);
  CHECK(strstr(errbuf, "a/file/sub (Not a directory)") != NULL);
  CHECK_EQ_INT(ds_fs_mkdirs("", errbuf, sizeof(errbuf)), DS_ENOENT);
}

static void test_write_stat_and_read_back(void) {
  static const char text[] = "one\ntwo\r\nthr\0ee\n\nwaaaaaaaaaaaay too long\nlast";
  const char *want[] = {"one", "two", "thr\0ee", "", "last"};
  size_t wlen[] = {3, 3, 6, 0, 4};
  ds_fs_stat_t st;
  ds_block_t *blk = NULL;
  uint64_t skipped = 0;
  put("text", text, sizeof(text) - 1);
  CHECK_EQ_INT(ds_fs_stat(at("text"), &st, errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(st.size, sizeof(text) - 1);
  CHECK(!st.is_dir);
  CHECK(st.mtime_ms > 1500000000000LL);
  CHECK_EQ_INT(ds_fs_read_lines(at("text"), 10, &blk, &skipped, errbuf, sizeof(errbuf)), 0);
  check_records(blk, want, wlen, 5);
  CHECK_EQ_INT(skipped, 1);
  ds_block_free(blk);
  /* Writing again replaces the content. */
  put("text", "new\n", 4);
  CHECK_EQ_INT(ds_fs_stat(at("text"), &st, errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(st.size, 4);
  put("empty", "", 0);
  CHECK_EQ_INT(ds_fs_read_lines(at("empty"), 10, &blk, &skipped, errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(blk->count, 0);
  CHECK_EQ_INT(skipped, 0);
  ds_block_free(blk);
}

static void test_read_lines_across_chunks(void) {
  size_t n = 50000, i, len = 0, off = 0, rlen;
  char *text = malloc(n * 16), want[32];
  const char *rec;
  ds_block_t *blk = NULL;
  uint64_t skipped;
  int exact = 1;
  for (i = 0; i < n; i++)
    len += (size_t)sprintf(text + len, i % 3 ? "line %zu\n" : "line %zu\r\n", i);
  put("big", text, len);
  CHECK_EQ_INT(ds_fs_read_lines(at("big"), 1 << 20, &blk, &skipped, errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(blk->count, n);
  for (i = 0; ds_block_next(blk, &off, &rec, &rlen); i++) {
    int wlen = sprintf(want, "line %zu", i);
    exact = exact && rlen == (size_t)wlen && memcmp(rec, want, rlen) == 0;
  }
  CHECK(exact);
  ds_block_free(blk);
  free(text);
}

static void test_missing_paths_are_named(void) {
  ds_fs_stat_t st;
  ds_block_t *blk = NULL;
  uint64_t skipped;
  char **names;
  size_t n;
  CHECK_EQ_INT(ds_fs_stat(at("nope"), &st, errbuf, sizeof(errbuf)), DS_ENOENT);
  CHECK_EQ_STR(errbuf, at("nope"));
  CHECK_EQ_INT(ds_fs_read_lines(at("nope"), 10, &blk, &skipped, errbuf, sizeof(errbuf)), DS_ENOENT);
  CHECK_EQ_STR(errbuf, at("nope"));
  CHECK(blk == NULL);
  CHECK_EQ_INT(ds_fs_list(at("nope"), &names, &n, errbuf, sizeof(errbuf)), DS_ENOENT);
  CHECK_EQ_STR(errbuf, at("nope"));
  CHECK_EQ_INT(ds_fs_write(at("nope/file"), "x", 1, errbuf, sizeof(errbuf)), DS_ENOENT);
  CHECK_EQ_STR(errbuf, at("nope/file"));
  CHECK_EQ_INT(ds_fs_fsync_dir(at("nope"), errbuf, sizeof(errbuf)), DS_ENOENT);
  CHECK_EQ_INT(ds_fs_remove_tree(at("nope"), errbuf, sizeof(errbuf)), DS_ENOENT);
  CHECK_EQ_INT(ds_fs_rename(at("nope"), at("other"), NULL, 0), DS_ENOENT);
  CHECK_EQ_INT(ds_fs_rename(at("nope"), at("other"), errbuf, sizeof(errbuf)), DS_ENOENT);
  CHECK(strstr(errbuf, "/nope -> ") != NULL && strstr(errbuf, "/other") != NULL);
}

static void test_wrong_kind_of_file(void) {
  ds_block_t *blk = NULL;
  uint64_t skipped;
  char **names;
  size_t n;
  char want[600];
  CHECK_EQ_INT(ds_fs_mkdirs(at("kind/dir"), errbuf, sizeof(errbuf)), 0);
  put("kind/file", "x\n", 2);
  CHECK_EQ_INT(ds_fs_read_lines(at("kind/dir"), 10, &blk, &skipped, errbuf, sizeof(errbuf)), DS_EIO);
  snprintf(want, sizeof(want), "%s (not a regular file: directory)", at("kind/dir"));
  CHECK_EQ_STR(errbuf, want);
  CHECK_EQ_INT(ds_fs_list(at("kind/file"), &names, &n, errbuf, sizeof(errbuf)), DS_EIO);
  CHECK_EQ_INT(ds_fs_write(at("kind/dir"), "x", 1, errbuf, sizeof(errbuf)), DS_EIO);
  CHECK_EQ_INT(ds_fs_rename(at("kind/file"), at("kind/dir"), errbuf, sizeof(errbuf)), DS_EIO);
  /* rename(2) replaces an empty directory by a directory, not a full one. */
  put("kind/dir/inside", "x", 1);
  CHECK_EQ_INT(ds_fs_mkdirs(at("kind/dir2"), errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(ds_fs_rename(at("kind/dir2"), at("kind/dir"), errbuf, sizeof(errbuf)), DS_EEXIST);
}

static void test_permission_denied(void) {
  ds_block_t *blk = NULL;
  uint64_t skipped;
  if (geteuid() == 0)
    return; /* root reads everything */
  put("secret", "x\n", 2);
  CHECK_EQ_INT(chmod(at("secret"), 0), 0);
  CHECK_EQ_INT(ds_fs_read_lines(at("secret"), 10, &blk, &skipped, errbuf, sizeof(errbuf)), DS_EACCES);
  CHECK_EQ_STR(errbuf, at("secret"));
}

static void test_list_sorted(void) {
  char **names = NULL;
  size_t n = 0;
  CHECK_EQ_INT(ds_fs_mkdirs(at("list/zsub"), errbuf, sizeof(errbuf)), 0);
  put("list/b", "", 0);
  put("list/a", "", 0);
  put("list/.hidden", "", 0);
  put("list/B", "", 0);
  CHECK_EQ_INT(ds_fs_list(at("list"), &names, &n, errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(n, 5);
  if (n == 5) {
    CHECK_EQ_STR(names[0], ".hidden");
    CHECK_EQ_STR(names[1], "B");
    CHECK_EQ_STR(names[2], "a");
    CHECK_EQ_STR(names[3], "b");
    CHECK_EQ_STR(names[4], "zsub");
  }
  ds_fs_list_free(names, n);
  CHECK_EQ_INT(ds_fs_mkdirs(at("list/zsub/empty"), errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(ds_fs_list(at("list/zsub/empty"), &names, &n, errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(n, 0);
  ds_fs_list_free(names, n);
}

/* A reader steps through a file at most budget bytes at a time, and refuses
 * a FIFO at once instead of waiting for a writer. */
static void test_reader_steps_and_refuses_fifos(void) {
  ds_fs_reader_t r;
  ds_block_t *blk = NULL;
  ds_fs_stat_t st;
  size_t lines = 0, steps = 0;
  put("steps", "aaaa\nbbbb\ncccc\ndd", 17);
  CHECK_EQ_INT(ds_fs_reader_open(&r, at("steps"), 100, errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(r.st.size, 17);
  while (!r.eof && steps < 100) {
    CHECK_EQ_INT(ds_fs_reader_next(&r, 5, &blk, errbuf, sizeof(errbuf)), 0);
    CHECK(blk->count <= 1);
    lines += blk->count;
    ds_block_free(blk);
    steps++;
  }
  CHECK_EQ_INT(lines, 4);
  CHECK_EQ_INT(r.offset, 17);
  CHECK_EQ_INT(ds_fs_reader_next(&r, 5, &blk, errbuf, sizeof(errbuf)), DS_ESTATE);
  ds_fs_reader_close(&r);
  ds_fs_reader_close(&r);
  CHECK_EQ_INT(mkfifo(at("fifo"), 0644), 0);
  CHECK_EQ_INT(ds_fs_stat(at("fifo"), &st, errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(st.kind, DS_FS_FIFO);
  CHECK_EQ_INT(ds_fs_reader_open(&r, at("fifo"), 100, errbuf, sizeof(errbuf)), DS_EIO);
  CHECK(strstr(errbuf, "fifo (not a regular file: FIFO)") != NULL);
  ds_fs_reader_close(&r);
}

/* A sparse file's hole inside a line already too long is jumped over, not
 * read: the lines around it still come out, the long one is counted. */
static void test_reader_jumps_holes(void) {
  static const char *const want[] = {"head", "last"};
  static const size_t wlen[] = {4, 4};
  const off_t hole = (off_t)1 << 30;
  ds_fs_reader_t r;
  ds_block_t *blk = NULL;
  int fd = open(at("sparse"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECK(fd >= 0);
  CHECK_EQ_INT(pwrite(fd, "head\nlong", 9, 0), 9);
  CHECK_EQ_INT(pwrite(fd, "\nlast\n", 6, hole), 6);
  close(fd);
  CHECK_EQ_INT(ds_fs_reader_open(&r, at("sparse"), 100, errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(ds_fs_reader_next(&r, 1 << 20, &blk, errbuf, sizeof(errbuf)), 0);
  CHECK(r.eof);
  if (blk != NULL)
    check_records(blk, want, wlen, 2);
  CHECK_EQ_INT(r.lines.skipped, 1);
  CHECK_EQ_INT(r.offset, hole + 6);
  ds_block_free(blk);
  ds_fs_reader_close(&r);
  CHECK_EQ_INT(unlink(at("sparse")), 0);
}

/* The atomic directory write the sinks do: tmp dir, files, rename, fsync. */
static void test_atomic_directory_write(void) {
  ds_fs_stat_t st;
  CHECK_EQ_INT(ds_fs_mkdirs(at("out/_tmp-1000"), errbuf, sizeof(errbuf)), 0);
  put("out/_tmp-1000/part-00000", "a\nb\n", 4);
  put("out/_tmp-1000/_SUCCESS", "", 0);
  CHECK_EQ_INT(ds_fs_fsync_dir(at("out/_tmp-1000"), errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(ds_fs_rename(at("out/_tmp-1000"), at("out/batch-1000"), errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(ds_fs_fsync_dir(at("out"), errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(ds_fs_stat(at("out/batch-1000/part-00000"), &st, errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(st.size, 4);
  CHECK_EQ_INT(ds_fs_stat(at("out/_tmp-1000"), &st, errbuf, sizeof(errbuf)), DS_ENOENT);
}

/* A batch written again (after recovery) replaces the old one by swapping
 * names: both directories exist at every moment, and a missing one errs. */
static void test_exchange_swaps_two_full_directories(void) {
  ds_fs_stat_t st;
  CHECK_EQ_INT(ds_fs_mkdirs(at("swap/old"), errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(ds_fs_mkdirs(at("swap/new"), errbuf, sizeof(errbuf)), 0);
  put("swap/old/part-00000", "old\n", 4);
  put("swap/new/part-00000", "new, longer\n", 12);
  CHECK_EQ_INT(ds_fs_exchange(at("swap/new"), at("swap/old"), errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(ds_fs_stat(at("swap/old/part-00000"), &st, errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(st.size, 12);
  CHECK_EQ_INT(ds_fs_stat(at("swap/new/part-00000"), &st, errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(st.size, 4);
  CHECK_EQ_INT(ds_fs_exchange(at("swap/new"), at("swap/none"), errbuf, sizeof(errbuf)), DS_ENOENT);
  CHECK(strstr(errbuf, "swap/none") != NULL || strstr(errbuf, "swap/new") != NULL);
}

static void test_remove_tree_does_not_follow_links(void) {
  ds_fs_stat_t st;
  CHECK_EQ_INT(ds_fs_mkdirs(at("keep"), errbuf, sizeof(errbuf)), 0);
  put("keep/precious", "x", 1);
  CHECK_EQ_INT(ds_fs_mkdirs(at("tree/x/y/z"), errbuf, sizeof(errbuf)), 0);
  put("tree/x/f1", "1", 1);
  put("tree/x/y/f2", "2", 1);
  CHECK_EQ_INT(symlink(at("keep"), at("tree/x/link")), 0);
  CHECK_EQ_INT(ds_fs_remove_tree(at("tree"), errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(ds_fs_stat(at("tree"), &st, errbuf, sizeof(errbuf)), DS_ENOENT);
  CHECK_EQ_INT(ds_fs_stat(at("keep/precious"), &st, errbuf, sizeof(errbuf)), 0);
  put("lonely", "x", 1);
  CHECK_EQ_INT(ds_fs_remove_tree(at("lonely"), errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(ds_fs_stat(at("lonely"), &st, errbuf, sizeof(errbuf)), DS_ENOENT);
}

static void test_out_of_memory(void) {
  char **names;
  size_t n;
  ds_block_t *blk;
  uint64_t skipped;
  long nth;
  int failed;
  CHECK_EQ_INT(ds_fs_mkdirs(at("oom"), errbuf, sizeof(errbuf)), 0);
  put("oom/1", "one\ntwo\n", 8);
  put("oom/2", "", 0);
  for (nth = 1, failed = 1; failed; nth++) {
    ds_test_fail_after(nth);
    failed = ds_fs_list(at("oom"), &names, &n, errbuf, sizeof(errbuf)) != 0;
    ds_test_fail_after(0);
    if (failed)
      CHECK_EQ_STR(errbuf, at("oom"));
    else
      ds_fs_list_free(names, n);
    CHECK_EQ_INT(ds_test_live(), 0);
  }
  CHECK(nth > 3);
  for (nth = 1, failed = 1; failed; nth++) {
    ds_test_fail_after(nth);
    failed = ds_fs_read_lines(at("oom/1"), 100, &blk, &skipped, errbuf, sizeof(errbuf)) != 0;
    ds_test_fail_after(0);
    if (!failed)
      ds_block_free(blk);
    CHECK_EQ_INT(ds_test_live(), 0);
  }
  CHECK(nth > 3);
  ds_test_fail_after(1);
  CHECK_EQ_INT(ds_fs_remove_tree(at("oom"), errbuf, sizeof(errbuf)), DS_ENOMEM);
  ds_test_fail_after(0);
}
/* A system error comes back as a DS_E* code, never as -errno: each failing
 * call's code has a name, and lies below every errno and libuv code. */
static void test_system_errors_are_ds_codes(void) {
  ds_fs_stat_t st;
  int codes[4], i;
  CHECK_EQ_INT(ds_fs_mkdirs(at("sys"), errbuf, sizeof(errbuf)), 0);
  put("sys/file", "x", 1);
  codes[0] = ds_fs_stat(at("sys/nope"), &st, errbuf, sizeof(errbuf));            /* ENOENT */
  codes[1] = ds_fs_stat(at("sys/file/below"), &st, errbuf, sizeof(errbuf));      /* ENOTDIR */
  codes[2] = ds_fs_write(at("sys"), "x", 1, errbuf, sizeof(errbuf));             /* EISDIR */
  codes[3] = ds_fs_mkdirs(at("sys/file/sub"), errbuf, sizeof(errbuf));           /* ENOTDIR */
  for (i = 0; i < 4; i++) {
    CHECK(codes[i] < -4095 && codes[i] > DS_ERR_MIN);
    CHECK(strcmp(ds_err_name(codes[i]), "EUNKNOWN") != 0);
  }
  CHECK_EQ_INT(codes[0], DS_ENOENT);
  CHECK_EQ_INT(codes[1], DS_EIO);
}

/* ds__fs_fail() maps errno values and names the path (and the target). */
static void test_fs_fail_maps_and_names(void) {
  char small[8];
  CHECK_EQ_INT(ds__fs_fail(ENOENT, "/a", NULL, errbuf, sizeof(errbuf)), DS_ENOENT);
  CHECK_EQ_STR(errbuf, "/a");
  CHECK_EQ_INT(ds__fs_fail(EPERM, "/a", NULL, errbuf, sizeof(errbuf)), DS_EACCES);
  CHECK_EQ_INT(ds__fs_fail(ENOTEMPTY, "/a", "/b", errbuf, sizeof(errbuf)), DS_EEXIST);
  CHECK_EQ_STR(errbuf, "/a -> /b");
  CHECK_EQ_INT(ds__fs_fail(ENOMEM, "/a", NULL, NULL, 0), DS_ENOMEM);
  CHECK_EQ_INT(ds__fs_fail(EXDEV, "/a", "/b", errbuf, sizeof(errbuf)), DS_EIO);
  CHECK(strncmp(errbuf, "/a -> /b (", 10) == 0 && strlen(errbuf) > 11);
  CHECK_EQ_INT(ds__fs_fail(EIO, "/a/long/path", NULL, small, sizeof(small)), DS_EIO);
  CHECK_EQ_STR(small, "/a/long");
}

int main(void) {
  const char *tmp = getenv("TMPDIR");
  ds_test_begin();
  snprintf(root, sizeof(root), "%s/ds_test_fs.XXXXXX", tmp != NULL ? tmp : "/tmp");
  if (mkdtemp(root) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  test_mkdirs();
  test_write_stat_and_read_back();
  test_read_lines_across_chunks();
  test_missing_paths_are_named();
  test_wrong_kind_of_file();
  test_permission_denied();
  test_reader_steps_and_refuses_fifos();
  test_reader_jumps_holes();
  test_list_sorted();
  test_atomic_directory_write();
  test_exchange_swaps_two_full_directories();
  test_remove_tree_does_not_follow_links();
  test_out_of_memory();
  test_system_errors_are_ds_codes();
  test_fs_fail_maps_and_names();
  CHECK_EQ_INT(ds_fs_remove_tree(root, errbuf, sizeof(errbuf)), 0);
  return ds_test_end("test_fs");
}

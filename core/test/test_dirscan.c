/* Directory scans against a real temporary directory: what is reported as
 * new, re-created and gone, a set that follows the directory, and failed
 * scans (missing directory, out of memory) that change nothing. */
#include <stdlib.h>
#include <unistd.h>

#include "dstream/dirscan.h"
#include "dstream/error.h"
#include "dstream/fs.h"
#include "harness.h"

static char root[256];
static char errbuf[512];

static const char *at(const char *rel) {
  static char bufs[4][512];
  static int next;
  char *p = bufs[next++ % 4];
  snprintf(p, 512, "%s/%s", root, rel);
  return p;
}

static void put(const char *rel) {
  CHECK_EQ_INT(ds_fs_write(at(rel), "x\n", 2, errbuf, sizeof(errbuf)), 0);
}

/* The names of a result array joined by spaces. */
static const char *joined(char **names, size_t n) {
  static char buf[4096];
  size_t i, len = 0;
  buf[0] = '\0';
  for (i = 0; i < n && len < sizeof(buf) - 256; i++)
    len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", i ? " " : "", names[i]);
  return buf;
}

static void test_new_gone_and_recreated(void) {
  ds_dirscan_t sc;
  ds_dirscan_init(&sc);
  CHECK_EQ_INT(ds_fs_mkdirs(at("d"), errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(ds_dirscan_update(&sc, at("d"), errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(sc.nchanged + sc.ngone + sc.count, 0);
  put("d/b");
  put("d/a");
  CHECK_EQ_INT(ds_dirscan_update(&sc, at("d"), errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_STR(joined(sc.changed, sc.nchanged), "a b");
  CHECK_EQ_INT(sc.ngone, 0);
  CHECK_EQ_INT(ds_dirscan_update(&sc, at("d"), errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(sc.nchanged + sc.ngone, 0);
  /* Renamed over: a new inode under an old name. */
  put("d/.tmp");
  CHECK_EQ_INT(ds_fs_rename(at("d/.tmp"), at("d/a"), errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(unlink(at("d/b")), 0);
  put("d/c");
  CHECK_EQ_INT(ds_dirscan_update(&sc, at("d"), errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_STR(joined(sc.changed, sc.nchanged), "a c");
  CHECK_EQ_STR(joined(sc.gone, sc.ngone), "b");
  CHECK_EQ_INT(sc.count, 2);
  ds_dirscan_close(&sc);
}

static void test_set_follows_the_directory(void) {
  ds_dirscan_t sc;
  char name[64];
  int i;
  ds_dirscan_init(&sc);
  CHECK_EQ_INT(ds_fs_mkdirs(at("many"), errbuf, sizeof(errbuf)), 0);
  for (i = 0; i < 2000; i++) {
    snprintf(name, sizeof(name), "many/f%04d", i);
    put(name);
  }
  CHECK_EQ_INT(ds_dirscan_update(&sc, at("many"), errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(sc.nchanged, 2000);
  CHECK_EQ_INT(sc.count, 2000);
  for (i = 0; i < 2000; i += 2) {
    snprintf(name, sizeof(name), "many/f%04d", i);
    CHECK_EQ_INT(unlink(at(name)), 0);
  }
  CHECK_EQ_INT(ds_dirscan_update(&sc, at("many"), errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(sc.nchanged, 0);
  CHECK_EQ_INT(sc.ngone, 1000);
  CHECK_EQ_INT(sc.count, 1000);
  if (sc.ngone == 1000) {
    CHECK_EQ_STR(sc.gone[0], "f0000");
    CHECK_EQ_STR(sc.gone[999], "f1998");
  }
  /* Every survivor is still found after the deletions shifted the table. */
  CHECK_EQ_INT(ds_dirscan_update(&sc, at("many"), errbuf, sizeof(errbuf)), 0);
  CHECK_EQ_INT(sc.nchanged + sc.ngone, 0);
  CHECK_EQ_INT(sc.count, 1000);
  ds_dirscan_close(&sc);
}

static void test_failures_change_nothing(void) {
  ds_dirscan_t sc;
  long nth;
  int failed;
  ds_dirscan_init(&sc);
  CHECK_EQ_INT(ds_dirscan_update(&sc, at("nope"), errbuf, sizeof(errbuf)), DS_ENOENT);
  CHECK_EQ_STR(errbuf, at("nope"));
  CHECK_EQ_INT(ds_fs_mkdirs(at("oom"), errbuf, sizeof(errbuf)), 0);
  put("oom/old");
  CHECK_EQ_INT(ds_dirscan_update(&sc, at("oom"), errbuf, sizeof(errbuf)), 0);
  put("oom/new1");
  put("oom/new2");
  for (nth = 1, failed = 1; failed; nth++) {
    ds_test_fail_after(nth);
    failed = ds_dirscan_update(&sc, at("oom"), errbuf, sizeof(errbuf)) != 0;
    ds_test_fail_after(0);
    if (failed) {
      CHECK_EQ_INT(sc.count, 1);
      CHECK_EQ_STR(joined(sc.changed, sc.nchanged), "old");
    }
  }
  CHECK(nth > 3);
  CHECK_EQ_STR(joined(sc.changed, sc.nchanged), "new1 new2");
  CHECK_EQ_INT(sc.count, 3);
  ds_dirscan_close(&sc);
}

int main(void) {
  const char *tmp = getenv("TMPDIR");
  ds_test_begin();
  snprintf(root, sizeof(root), "%s/ds_test_dirscan.XXXXXX", tmp != NULL ? tmp : "/tmp");
  if (mkdtemp(root) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  test_new_gone_and_recreated();
  test_set_follows_the_directory();
  test_failures_change_nothing();
  CHECK_EQ_INT(ds_fs_remove_tree(root, errbuf, sizeof(errbuf)), 0);
  return ds_test_end("test_dirscan");
}

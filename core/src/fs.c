/* File-system helpers: see dstream/fs.h.
 *
 * Thin wrappers over POSIX calls whose value is in the details that are easy
 * to get wrong one call site at a time: EINTR and short writes, fsync before
 * close, close's own error, a partial file removed after a failed write,
 * names sorted so a directory scan is deterministic, and an error that names
 * the path. Reading lines reuses the splitter, so a file and a socket cut
 * lines the same way.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dstream/alloc.h"
#include "dstream/error.h"
#include "dstream/fs.h"
#include "dstream/lines.h"
#include "internal.h"

#define READ_CHUNK (64 * 1024)

static int code_of(int err_no) {
  switch (err_no) {
  case ENOENT:
    return DS_ENOENT;
  case EACCES:
  case EPERM:
    return DS_EACCES;
  case EEXIST:
  case ENOTEMPTY:
    return DS_EEXIST;
  case ENOMEM:
    return DS_ENOMEM;
  default:
    return DS_EIO;
  }
}

int ds__fs_fail(int err_no, const char *path, const char *to, char *errbuf, size_t errlen) {
  int code = code_of(err_no);
  if (code == DS_EIO)
    return ds__error_fill(errbuf, errlen, code, "%s%s%s (%s)", path, to ? " -> " : "", to ? to : "",
                          strerror(err_no));
  return ds__error_fill(errbuf, errlen, code, "%s%s%s", path, to ? " -> " : "", to ? to : "");
}

static int fail(int err_no, const char *path, const char *to, char *errbuf, size_t errlen) {
  return ds__fs_fail(err_no, path, to, errbuf, errlen);
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void ds_fs_list_free(char **names, size_t n) {
  size_t i;
  if (names == NULL)
    return;
  for (i = 0; i < n; i++)
    ds_free(names[i]);
  ds_free(names);
}

/* Append a copy of name to the growing array; ENOMEM on failure. */
static int push_name(char ***names, size_t *n, size_t *cap, const char *name) {
  char *copy;
  if (*n == *cap) {
    size_t ncap = *cap > 0 ? *cap * 2 : 16;
    char **grown = ds_realloc(*names, ncap * sizeof(*grown));
    if (grown == NULL)
      return ENOMEM;
    *names = grown;
    *cap = ncap;
  }
  if ((copy = ds_strndup(name, strlen(name))) == NULL)
    return ENOMEM;
  (*names)[(*n)++] = copy;
  return 0;
}

int ds_fs_list(const char *dir, char ***names, size_t *n, char *errbuf, size_t errlen) {
  char **list = NULL;
  size_t count = 0, cap = 0;
  struct dirent *e;
  int err = 0;
  DIR *d = opendir(dir);
  if (d == NULL)
    return fail(errno, dir, NULL, errbuf, errlen);
  for (;;) {
    errno = 0;
    if ((e = readdir(d)) == NULL) {
      err = errno;
      break;
    }
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    if ((err = push_name(&list, &count, &cap, e->d_name)) != 0)
      break;
  }
  closedir(d);
  if (err != 0) {
    ds_fs_list_free(list, count);
    return fail(err, dir, NULL, errbuf, errlen);
  }
  if (count > 1)
    qsort(list, count, sizeof(*list), by_name);
  *names = list;
  *n = count;
  return 0;
}

static ds_fs_kind_t kind_of(mode_t mode) {
  if (S_ISREG(mode))
    return DS_FS_FILE;
  if (S_ISDIR(mode))
    return DS_FS_DIR;
  if (S_ISFIFO(mode))
    return DS_FS_FIFO;
  if (S_ISSOCK(mode))
    return DS_FS_SOCKET;
  if (S_ISCHR(mode))
    return DS_FS_CHAR_DEVICE;
  if (S_ISBLK(mode))
    return DS_FS_BLOCK_DEVICE;
  return DS_FS_OTHER;
}

const char *ds_fs_kind_name(ds_fs_kind_t kind) {
  switch (kind) {
  case DS_FS_FILE:
    return "file";
  case DS_FS_DIR:
    return "directory";
  case DS_FS_FIFO:
    return "FIFO";
  case DS_FS_SOCKET:
    return "socket";
  case DS_FS_CHAR_DEVICE:
    return "character device";
  case DS_FS_BLOCK_DEVICE:
    return "block device";
  default:
    return "other";
  }
}

static void fill_stat(const struct stat *sb, ds_fs_stat_t *st) {
  st->size = (uint64_t)sb->st_size;
  st->mtime_ms = (int64_t)sb->st_mtim.tv_sec * 1000 + sb->st_mtim.tv_nsec / 1000000;
  st->mtime_ns = (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec;
  st->btime_ns = 0;
  st->ino = (uint64_t)sb->st_ino;
  st->dev = (uint64_t)sb->st_dev;
  st->kind = kind_of(sb->st_mode);
  st->is_dir = st->kind == DS_FS_DIR;
}

/* The creation time, where the kernel and the file system keep one: it
 * tells a file re-created under an old name from the old file even when
 * the inode number was reused (ext4 reuses them at once). */
static int64_t btime_of(int dirfd, const char *path, int flags) {
#ifdef STATX_BTIME
  struct statx sx;
  if (statx(dirfd, path, flags, STATX_BTIME, &sx) == 0 && (sx.stx_mask & STATX_BTIME))
    return (int64_t)sx.stx_btime.tv_sec * 1000000000 + sx.stx_btime.tv_nsec;
#else
  (void)dirfd;
  (void)path;
  (void)flags;
#endif
  return 0;
}

int ds_fs_stat(const char *path, ds_fs_stat_t *st, char *errbuf, size_t errlen) {
  struct stat sb;
  if (stat(path, &sb) != 0)
    return fail(errno, path, NULL, errbuf, errlen);
  fill_stat(&sb, st);
  st->btime_ns = btime_of(AT_FDCWD, path, 0);
  return 0;
}

void ds_fs_reader_close(ds_fs_reader_t *r) {
  if (r->fd >= 0)
    close(r->fd);
  r->fd = -1;
  ds_free(r->buf);
  r->buf = NULL;
  ds_free(r->path);
  r->path = NULL;
  ds_lines_close(&r->lines);
}

int ds_fs_reader_open(ds_fs_reader_t *r, const char *path, size_t max_line_bytes,
                      char *errbuf, size_t errlen) {
  struct stat sb;
  int fd;
  memset(r, 0, sizeof(*r));
  r->fd = -1;
  ds_lines_init(&r->lines, max_line_bytes);
  /* O_NONBLOCK: a FIFO opens at once instead of waiting for a writer. */
  fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0)
    return fail(errno, path, NULL, errbuf, errlen);
  if (fstat(fd, &sb) != 0) {
    int err = errno;
    close(fd);
    return fail(err, path, NULL, errbuf, errlen);
  }
  if (!S_ISREG(sb.st_mode)) {
    close(fd);
    return ds__error_fill(errbuf, errlen, DS_EIO, "%s (not a regular file: %s)", path,
                          ds_fs_kind_name(kind_of(sb.st_mode)));
  }
  r->path = ds_strndup(path, strlen(path));
  r->buf = ds_malloc(READ_CHUNK);
  if (r->path == NULL || r->buf == NULL) {
    close(fd);
    ds_free(r->path);
    ds_free(r->buf);
    r->path = r->buf = NULL;
    return fail(ENOMEM, path, NULL, errbuf, errlen);
  }
  r->fd = fd;
  fill_stat(&sb, &r->st);
  r->st.btime_ns = btime_of(fd, "", AT_EMPTY_PATH);
  return 0;
}

/* Inside a line already too long, a hole of a sparse file (NUL bytes, no
 * newline) cannot end it: jump to the next data instead of reading zeros,
 * so a 2 GB sparse file costs what its data costs. Where SEEK_DATA is not
 * supported nothing happens and the zeros are read. */
static void skip_hole(ds_fs_reader_t *r) {
#ifdef SEEK_DATA
  off_t data;
  if (!r->lines.skipping)
    return;
  data = lseek(r->fd, (off_t)r->offset, SEEK_DATA);
  if (data < 0 && errno == ENXIO) /* only a hole up to the end */
    data = lseek(r->fd, 0, SEEK_END);
  if (data > (off_t)r->offset)
    r->offset = (uint64_t)data;
  else
    lseek(r->fd, (off_t)r->offset, SEEK_SET);
#else
  (void)r;
#endif
}

/* Read at most budget bytes of r through its splitter into blk; at the end
 * of the file emit the last line and set r->eof. Returns 0, an errno value
 * (positive) or a negative DS_E* code from the splitter. */
static int reader_fill(ds_fs_reader_t *r, size_t budget, ds_block_t *blk) {
  size_t done = 0;
  while (done < budget) {
    size_t want = budget - done < READ_CHUNK ? budget - done : READ_CHUNK;
    ssize_t got;
    int rc;
    skip_hole(r);
    got = read(r->fd, r->buf, want);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0)
      return errno;
    if (got == 0) {
      if ((rc = ds_lines_finish(&r->lines, blk)) == 0)
        r->eof = 1;
      return rc;
    }
    /* On DS_ENOMEM these bytes are lost to this reader: the caller closes it. */
    if ((rc = ds_lines_feed(&r->lines, r->buf, (size_t)got, blk)) < 0)
      return rc;
    r->offset += (uint64_t)got;
    done += (size_t)got;
  }
  return 0;
}

/* Describe reader r's failure rc (errno value or DS_E* code) in errbuf. */
static int reader_fail(const ds_fs_reader_t *r, int rc, char *errbuf, size_t errlen) {
  const char *path = r->path != NULL ? r->path : "(closed reader)";
  if (rc > 0)
    return fail(rc, path, NULL, errbuf, errlen);
  return ds__error_fill(errbuf, errlen, rc, "%s", path);
}

int ds_fs_reader_next(ds_fs_reader_t *r, size_t budget, ds_block_t **out,
                      char *errbuf, size_t errlen) {
  ds_block_t *blk;
  int rc;
  if (r->fd < 0)
    return reader_fail(r, DS_ECLOSED, errbuf, errlen);
  if (r->eof)
    return reader_fail(r, DS_ESTATE, errbuf, errlen);
  if (budget == 0)
    budget = 1;
  if ((blk = ds_block_new((budget < READ_CHUNK ? budget : READ_CHUNK) + 64)) == NULL)
    return reader_fail(r, ENOMEM, errbuf, errlen);
  if ((rc = reader_fill(r, budget, blk)) != 0) {
    ds_block_free(blk);
    return reader_fail(r, rc == DS_ENOMEM ? ENOMEM : rc, errbuf, errlen);
  }
  *out = blk;
  return 0;
}

int ds_fs_read_lines(const char *path, size_t max_line_bytes, ds_block_t **out,
                     uint64_t *skipped, char *errbuf, size_t errlen) {
  ds_fs_reader_t r;
  ds_block_t *blk;
  int rc = ds_fs_reader_open(&r, path, max_line_bytes, errbuf, errlen);
  if (rc != 0) {
    ds_fs_reader_close(&r);
    return rc;
  }
  if ((blk = ds_block_new((size_t)r.st.size + (size_t)r.st.size / 4 + 16)) == NULL) {
    ds_fs_reader_close(&r);
    return fail(ENOMEM, path, NULL, errbuf, errlen);
  }
  while (!r.eof && rc == 0)
    rc = reader_fill(&r, (size_t)-1, blk);
  *skipped = r.lines.skipped;
  if (rc != 0) {
    rc = reader_fail(&r, rc == DS_ENOMEM ? ENOMEM : rc, errbuf, errlen);
    ds_block_free(blk);
  } else {
    *out = blk;
  }
  ds_fs_reader_close(&r);
  return rc;
}

/* Write all of data to fd, through short writes and interrupts. */
static int write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t put = write(fd, data, len);
    if (put < 0 && errno == EINTR)
      continue;
    if (put < 0)
      return errno;
    data += put;
    len -= (size_t)put;
  }
  return 0;
}

int ds_fs_write(const char *path, const void *data, size_t len, char *errbuf, size_t errlen) {
  int err, fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return fail(errno, path, NULL, errbuf, errlen);
  err = write_all(fd, data, len);
  if (err == 0 && fsync(fd) != 0)
    err = errno;
  if (close(fd) != 0 && err == 0)
    err = errno;
  if (err != 0) {
    unlink(path);
    return fail(err, path, NULL, errbuf, errlen);
  }
  return 0;
}

int ds_fs_mkdirs(const char *dir, char *errbuf, size_t errlen) {
  size_t len = strlen(dir), i;
  struct stat sb;
  char *path;
  int err = 0;
  if (len == 0)
    return fail(ENOENT, dir, NULL, errbuf, errlen);
  if ((path = ds_strndup(dir, len)) == NULL)
    return fail(ENOMEM, dir, NULL, errbuf, errlen);
  for (i = 1; i <= len && err == 0; i++) {
    if (path[i] != '/' && path[i] != '\0')
      continue;
    path[i] = '\0';
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
      err = errno;
    else if (i == len && stat(path, &sb) == 0 && !S_ISDIR(sb.st_mode))
      err = EEXIST;
    if (err != 0)
      err = fail(err, path, NULL, errbuf, errlen);
    path[i] = i < len ? '/' : '\0';
  }
  ds_free(path);
  return err;
}

int ds_fs_rename(const char *from, const char *to, char *errbuf, size_t errlen) {
  if (rename(from, to) != 0)
    return fail(errno, from, to, errbuf, errlen);
  return 0;
}

int ds_fs_exchange(const char *a, const char *b, char *errbuf, size_t errlen) {
  /* renameat2(2), Linux 3.15+: the one way to replace a non-empty directory
   * with no moment at which neither the old nor the new one is there. */
  if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0)
    return fail(errno, a, b, errbuf, errlen);
  return 0;
}

int ds_fs_fsync_dir(const char *dir, char *errbuf, size_t errlen) {
  int err = 0, fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return fail(errno, dir, NULL, errbuf, errlen);
  if (fsync(fd) != 0)
    err = errno;
  close(fd);
  return err != 0 ? fail(err, dir, NULL, errbuf, errlen) : 0;
}

/* Remove everything under dir (a directory, not a link to one), then dir. */
static int remove_dir(const char *dir, char *errbuf, size_t errlen) {
  char **names;
  size_t n, i, dlen = strlen(dir);
  int rc = ds_fs_list(dir, &names, &n, errbuf, errlen);
  if (rc != 0)
    return rc;
  for (i = 0; i < n && rc == 0; i++) {
    size_t nlen = strlen(names[i]);
    char *child = ds_malloc(dlen + nlen + 2);
    if (child == NULL) {
      rc = fail(ENOMEM, dir, NULL, errbuf, errlen);
      break;
    }
    memcpy(child, dir, dlen);
    child[dlen] = '/';
    memcpy(child + dlen + 1, names[i], nlen + 1);
    rc = ds_fs_remove_tree(child, errbuf, errlen);
    ds_free(child);
  }
  ds_fs_list_free(names, n);
  if (rc == 0 && rmdir(dir) != 0)
    rc = fail(errno, dir, NULL, errbuf, errlen);
  return rc;
}

int ds_fs_remove_tree(const char *path, char *errbuf, size_t errlen) {
  struct stat sb;
  if (lstat(path, &sb) != 0)
    return fail(errno, path, NULL, errbuf, errlen);
  if (S_ISDIR(sb.st_mode))
    return remove_dir(path, errbuf, errlen);
  if (unlink(path) != 0)
    return fail(errno, path, NULL, errbuf, errlen);
  return 0;
}

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

/* Turn err_no into a DS_E* code and describe what and where in errbuf;
 * to names a second path (a rename's target) or is NULL. */
static int fail(int err_no, const char *path, const char *to, char *errbuf, size_t errlen) {
  int code = code_of(err_no);
  if (errbuf == NULL || errlen == 0)
    return code;
  if (code == DS_EIO)
    snprintf(errbuf, errlen, "%s%s%s (%s)", path, to ? " -> " : "", to ? to : "", strerror(err_no));
  else
    snprintf(errbuf, errlen, "%s%s%s", path, to ? " -> " : "", to ? to : "");
  return code;
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

int ds_fs_stat(const char *path, ds_fs_stat_t *st, char *errbuf, size_t errlen) {
  struct stat sb;
  if (stat(path, &sb) != 0)
    return fail(errno, path, NULL, errbuf, errlen);
  st->size = (uint64_t)sb.st_size;
  st->mtime_ms = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
  st->is_dir = S_ISDIR(sb.st_mode);
  return 0;
}

/* Read fd to its end through the splitter into blk. Returns 0, an errno
 * value (positive), or a negative DS_E* code from the splitter. */
static int split_fd(int fd, ds_lines_t *ls, ds_block_t *blk) {
  char *buf = ds_malloc(READ_CHUNK);
  int rc = 0;
  if (buf == NULL)
    return ENOMEM;
  for (;;) {
    ssize_t got = read(fd, buf, READ_CHUNK);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      rc = errno;
      break;
    }
    if (got == 0) {
      rc = ds_lines_finish(ls, blk);
      break;
    }
    if ((rc = ds_lines_feed(ls, buf, (size_t)got, blk)) < 0)
      break;
  }
  ds_free(buf);
  return rc;
}

int ds_fs_read_lines(const char *path, size_t max_line_bytes, ds_block_t **out,
                     uint64_t *skipped, char *errbuf, size_t errlen) {
  struct stat sb = {0};
  ds_lines_t ls;
  ds_block_t *blk;
  int rc, fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail(errno, path, NULL, errbuf, errlen);
  if (fstat(fd, &sb) != 0 || S_ISDIR(sb.st_mode)) {
    int err = S_ISDIR(sb.st_mode) ? EISDIR : errno;
    close(fd);
    return fail(err, path, NULL, errbuf, errlen);
  }
  if ((blk = ds_block_new((size_t)sb.st_size + (size_t)sb.st_size / 4 + 16)) == NULL) {
    close(fd);
    return fail(ENOMEM, path, NULL, errbuf, errlen);
  }
  ds_lines_init(&ls, max_line_bytes);
  rc = split_fd(fd, &ls, blk);
  close(fd);
  ds_lines_close(&ls);
  if (rc != 0) {
    ds_block_free(blk);
    if (rc > 0)
      return fail(rc, path, NULL, errbuf, errlen);
    if (rc == DS_ENOMEM)
      return fail(ENOMEM, path, NULL, errbuf, errlen);
    if (errbuf != NULL && errlen > 0)
      snprintf(errbuf, errlen, "%s", path);
    return rc;
  }
  *out = blk;
  *skipped = ls.skipped;
  return 0;
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

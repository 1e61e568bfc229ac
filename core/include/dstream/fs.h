/* File-system helpers for the file source and the file sinks.
 *
 * textFileStream lists a directory, stats what appeared and reads new files
 * as lines; saveAsTextFiles and checkpoints write directories atomically
 * (write into a temporary directory, fsync each file, rename, fsync the
 * parent). These are the few POSIX calls that takes, with the errors a user
 * can act on.
 *
 * ERRORS: each function returns 0 or a DS_E* code: DS_ENOENT (missing path),
 * DS_EACCES (permission), DS_EEXIST (something in the way), DS_ENOMEM,
 * else DS_EIO; on failure it fills errbuf (errlen bytes, NUL-terminated;
 * NULL allowed) with the path concerned and, for DS_EIO, the system's
 * reason: "out/part-00000 (Is a directory)".
 *
 * NON-REGULAR FILES: readers open with O_NONBLOCK and refuse anything but a
 * regular file after an fstat of the opened descriptor, so a FIFO without a
 * writer, a socket or a device never blocks the caller (DS_EIO, "not a
 * regular file").
 *
 * COSTS: blocking calls on the caller's thread. ds_fs_read_lines costs the
 * file's lines' bytes plus 4 per line in one block; a ds_fs_reader_t reads
 * at most `budget` bytes a step, so it holds one step's lines, a 64 KiB
 * buffer and the unfinished line (at most max_line_bytes + 1).
 */
#ifndef DSTREAM_FS_H
#define DSTREAM_FS_H

#include <stddef.h>
#include <stdint.h>

#include "dstream/block.h"
#include "dstream/lines.h"

/* What kind of directory entry a path is (after following symbolic links). */
typedef enum {
  DS_FS_FILE,
  DS_FS_DIR,
  DS_FS_FIFO,
  DS_FS_SOCKET,
  DS_FS_CHAR_DEVICE,
  DS_FS_BLOCK_DEVICE,
  DS_FS_OTHER
} ds_fs_kind_t;

typedef struct {
  uint64_t size;     /* bytes */
  int64_t mtime_ms;  /* last modification, ms since the Unix epoch */
  int64_t mtime_ns;  /* the same instant to the nanosecond the file system keeps */
  int64_t btime_ns;  /* creation, ns since the Unix epoch; 0 where unknown */
  uint64_t ino;      /* inode number */
  uint64_t dev;      /* device of the file system holding it */
  ds_fs_kind_t kind;
  int is_dir;        /* kind == DS_FS_DIR */
} ds_fs_stat_t;

/* A file read as lines a step at a time (caller-owned; init with open). */
typedef struct {
  int fd;               /* -1 once closed */
  char *path;           /* a copy, for errors */
  ds_lines_t lines;
  ds_fs_stat_t st;      /* of the file as opened (fstat of the descriptor) */
  uint64_t offset;      /* bytes read so far */
  int eof;              /* the end was reached and the last line emitted */
  char *buf;            /* READ_CHUNK bytes */
} ds_fs_reader_t;

/* List dir's entries but "." and "..", sorted bytewise: *names (caller owns,
 * free with ds_fs_list_free) gets *n NUL-terminated names. */
int ds_fs_list(const char *dir, char ***names, size_t *n, char *errbuf, size_t errlen);
/* Free a list from ds_fs_list (NULL allowed). */
void ds_fs_list_free(char **names, size_t n);
/* Stat path, following symbolic links. */
int ds_fs_stat(const char *path, ds_fs_stat_t *st, char *errbuf, size_t errlen);
/* A static name for a kind: "file", "directory", "FIFO", "socket",
 * "character device", "block device", "other". */
const char *ds_fs_kind_name(ds_fs_kind_t kind);
/* Open path for reading as lines of at most max_line_bytes; a path that is
 * not a regular file fails with DS_EIO and nothing is left open. */
int ds_fs_reader_open(ds_fs_reader_t *r, const char *path, size_t max_line_bytes,
                      char *errbuf, size_t errlen);
/* Read at most budget bytes (at least 1) and split them into lines: *out
 * (caller owns) gets one block, possibly empty. At the end of the file the
 * unfinished last line becomes a record and r->eof is set. On error r is
 * unchanged but for bytes already consumed: close it. */
int ds_fs_reader_next(ds_fs_reader_t *r, size_t budget, ds_block_t **out,
                      char *errbuf, size_t errlen);
/* Close the file and free the reader's buffers; idempotent. */
void ds_fs_reader_close(ds_fs_reader_t *r);
/* Read path whole and split it into lines as dstream/lines.h does (a last
 * line without newline is a record; lines longer than max_line_bytes are
 * skipped and counted in *skipped). *out (caller owns) gets one block,
 * possibly empty. */
int ds_fs_read_lines(const char *path, size_t max_line_bytes, ds_block_t **out,
                     uint64_t *skipped, char *errbuf, size_t errlen);
/* Create or replace path with data[0..len) and fsync it; on failure nothing
 * is left at path. */
int ds_fs_write(const char *path, const void *data, size_t len, char *errbuf, size_t errlen);
/* Make dir and its missing parents (mode 0755); an existing directory is fine. */
int ds_fs_mkdirs(const char *dir, char *errbuf, size_t errlen);
/* Rename from to to (rename(2): atomic, replaces a file or an empty dir). */
int ds_fs_rename(const char *from, const char *to, char *errbuf, size_t errlen);
/* Swap the names a and b atomically (both must exist; directories too);
 * DS_EINVAL where the file system cannot (then rename instead). */
int ds_fs_exchange(const char *a, const char *b, char *errbuf, size_t errlen);
/* Fsync a directory, making renames and creations in it durable. */
int ds_fs_fsync_dir(const char *dir, char *errbuf, size_t errlen);
/* Remove path: a file, or a directory with everything under it (symbolic
 * links are removed, never followed). */
int ds_fs_remove_tree(const char *path, char *errbuf, size_t errlen);

#endif

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
 * COSTS: blocking calls on the caller's thread; reading a file costs its
 * lines' bytes plus 4 per line in one block and a 64 KiB buffer.
 */
#ifndef DSTREAM_FS_H
#define DSTREAM_FS_H

#include <stddef.h>
#include <stdint.h>

#include "dstream/block.h"

typedef struct {
  uint64_t size;     /* bytes */
  int64_t mtime_ms;  /* last modification, ms since the Unix epoch */
  int is_dir;
} ds_fs_stat_t;

/* List dir's entries but "." and "..", sorted bytewise: *names (caller owns,
 * free with ds_fs_list_free) gets *n NUL-terminated names. */
int ds_fs_list(const char *dir, char ***names, size_t *n, char *errbuf, size_t errlen);
/* Free a list from ds_fs_list (NULL allowed). */
void ds_fs_list_free(char **names, size_t n);
/* Stat path, following symbolic links. */
int ds_fs_stat(const char *path, ds_fs_stat_t *st, char *errbuf, size_t errlen);
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
/* Fsync a directory, making renames and creations in it durable. */
int ds_fs_fsync_dir(const char *dir, char *errbuf, size_t errlen);
/* Remove path: a file, or a directory with everything under it (symbolic
 * links are removed, never followed). */
int ds_fs_remove_tree(const char *path, char *errbuf, size_t errlen);

#endif

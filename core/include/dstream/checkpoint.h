/* Checkpoint files: what a context writes after each batch, and reads back.
 *
 * This layer does not know what a checkpoint holds: a checkpoint is a list
 * of named sections (a name and bytes, both any bytes). It knows how to
 * write them so that a crash at any moment leaves either the old or the new
 * file, how to detect a file that was damaged afterwards, and which files
 * of a directory make up the newest checkpoint that can be trusted.
 *
 * THE DIRECTORY (the context's checkpoint dir):
 *
 *   checkpoint-<seq>.full    a full checkpoint (seq: 16 decimal digits)
 *   checkpoint-<seq>.delta   the changes since the checkpoint it names as
 *                            its base (the one written before it)
 *   pending-<time>           the inputs of batch <time> (ms, 16 digits),
 *                            written before the batch runs
 *   *.tmp                    a file being written; removed at open
 *
 * Other names are left alone (the WAL lives in wal/ beside them). Seqs
 * count up from 1 across fulls and deltas: a new one is one more than the
 * newest on disk or written.
 *
 * FILE FORMAT: codec frames (codec.h), each with its CRC-32C, each of one
 * record, back to back with nothing after the trailer:
 *
 *   1. header  ["dstream.checkpoint", 1, <kind>, <seq>, <base>, <time>, <n>]
 *      kind "full" | "delta" | "pending"; seq (0 for pending); base: for a
 *      delta the seq of the checkpoint it applies on, else 0; time: the
 *      batch time in ms; n: the number of sections.
 *   2. per section, one or more section frames
 *        [<name>, <length>, <offset>, <bytes>]
 *      name and bytes are STR; a section's frames come in order, the first
 *      at offset 0, each at the offset where the one before ended, until
 *      <length> bytes; at most DS_CHECKPOINT_CHUNK bytes per frame; an empty
 *      section is one frame of no bytes.
 *   3. trailer ["end", <n>, <total bytes of all sections>]
 *   All numbers are INT. The header must agree with the file's name (kind,
 *   seq or time).
 *
 * WRITING is atomic and durable: the file is written as <name>.tmp in the
 * directory, fsynced, renamed to <name>, and the directory is fsynced; only
 * then does ds_checkpoint_write() return. Deleting files needs no fsync: a
 * deleted file that comes back after a crash is one the reader ignores
 * anyway (an older checkpoint, a pending batch at or before the newest).
 *
 * DETECTING DAMAGE: every frame has a CRC-32C, the header and the trailer
 * both count the sections, and the trailer is last: a file cut anywhere
 * (also at a frame boundary), a flipped bit, bytes appended, or a file with
 * the wrong name fails to parse, with its byte offset and the reason.
 *
 * WHICH CHECKPOINT IS USED (ds_checkpoint_load): the newest file whose
 * whole chain - itself, its base, its base's base, ... down to a full - is
 * intact. Files newer than it are skipped, each with a warning naming the
 * file, the byte offset and why (damaged, or resting on a damaged file), and
 * which checkpoint is used instead. A base link (not "seq - 1") lets a
 * writer that recovered from an older checkpoint continue its chain after
 * the damaged files. Pending files newer than the checkpoint used are
 * returned too (damaged ones skipped with a warning).
 *
 * PRUNING, after each full or delta: pending files at or before the time
 * of the checkpoint it follows (the last one written or loaded through the
 * handle) are deleted - not those up to its own time, so that when it is
 * found damaged, the batches between the two can still be re-run; after a full, the newest two fulls not known to be damaged
 * and every file from the older of the two on are kept, older ones deleted.
 * So the last two good checkpoints stay, and a damaged newest one falls back
 * to the one before.
 *
 * ERRORS: 0 or a DS_E* code, with the caller's buffer saying what and where:
 * the file (its path) and, for a damaged one, the byte offset. The fs.h codes
 * for system errors; DS_ECORRUPT, DS_ECHECKSUM, DS_ETRUNCATED, DS_EVERSION
 * for a damaged file; DS_ESTATE for a delta with nothing to rest on;
 * DS_ENOENT from load when there is no checkpoint at all.
 *
 * COSTS: a write is one pass over the sections' bytes through a buffer of
 * one chunk (1 MiB), two fsyncs and a rename; a load reads the files of the
 * directory's newest chain (and of whatever newer files it must skip) whole.
 */
#ifndef DSTREAM_CHECKPOINT_H
#define DSTREAM_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "dstream/codec.h"

#define DS_CHECKPOINT_VERSION 1
#define DS_CHECKPOINT_CHUNK (1024 * 1024)

typedef enum {
  DS_CHECKPOINT_FULL,
  DS_CHECKPOINT_DELTA,
  DS_CHECKPOINT_PENDING
} ds_checkpoint_kind_t;

/* A named section; both borrowed (from the caller when writing, from the
 * file's data when read). */
typedef struct {
  const char *name;
  size_t name_len;
  const char *data;
  size_t len;
} ds_checkpoint_section_t;

/* One parsed file. */
typedef struct {
  ds_checkpoint_kind_t kind;
  uint64_t seq;   /* 0 for pending */
  uint64_t base;  /* a delta's base seq, else 0 */
  int64_t time_ms;
  size_t nsections;
  ds_checkpoint_section_t *sections; /* owned */
  char *blob;     /* owned: the sections' names and bytes */
  char *name;     /* owned: the file's name in the directory; NULL when parsed from memory */
  size_t size;    /* the file's bytes */
} ds_checkpoint_file_t;

/* A directory of checkpoints (caller-owned; ds_checkpoint_init, _close). */
typedef struct {
  char *dir;
  uint64_t last_seq;  /* newest seq on disk or written, 0 for none */
  uint64_t head;      /* seq a delta would rest on: the last written or loaded; 0 none */
  int64_t head_time;  /* its batch time, -1 for none */
  uint64_t *bad;      /* seqs found damaged by load */
  size_t nbad;
} ds_checkpoint_t;

/* What ds_checkpoint_load found. */
typedef struct {
  ds_checkpoint_file_t *chain;   /* a full first, then deltas in apply order */
  size_t nchain;
  ds_checkpoint_file_t *pending; /* pending files newer than the chain, ascending */
  size_t npending;
  char **warnings;               /* NUL-terminated texts */
  size_t nwarnings;
} ds_checkpoint_loaded_t;

/* Open dir (made with its parents if missing), find its newest seq and
 * remove leftover *.tmp files. On error nothing is left open. */
int ds_checkpoint_init(ds_checkpoint_t *cp, const char *dir, char *errbuf,
                       size_t errlen);
/* Free what init allocated; idempotent. */
void ds_checkpoint_close(ds_checkpoint_t *cp);

/* Write a checkpoint of n sections (borrowed) for batch time_ms, atomically
 * and durably, then prune (see above). A full or delta gets the next seq
 * (a delta rests on the last one written or loaded through cp: DS_ESTATE if
 * there is none); a pending file replaces one of the same time. *bytes (may
 * be NULL) gets the file's size. On error no new file is left. */
int ds_checkpoint_write(ds_checkpoint_t *cp, ds_checkpoint_kind_t kind,
                        int64_t time_ms, const ds_checkpoint_section_t *sections,
                        size_t n, uint64_t *bytes, char *errbuf, size_t errlen);

/* Read the newest intact chain and the pending files after it into *out
 * (caller closes it with ds_checkpoint_loaded_close, also on error). Later
 * deltas written through cp rest on the chain's last file. DS_ENOENT when
 * the directory holds no checkpoint; when every checkpoint is damaged, the
 * error of the newest and errbuf naming each damaged file. */
int ds_checkpoint_load(ds_checkpoint_t *cp, ds_checkpoint_loaded_t *out,
                       char *errbuf, size_t errlen);
/* Free a load's result; idempotent. */
void ds_checkpoint_loaded_close(ds_checkpoint_loaded_t *out);

/* Parse len bytes of a checkpoint file (borrowed; the result copies what it
 * keeps) into *f, closed with ds_checkpoint_file_close. On error *f holds
 * nothing and errbuf says at which byte offset the file went wrong. */
int ds_checkpoint_parse(ds_checkpoint_file_t *f, const void *data, size_t len,
                        char *errbuf, size_t errlen);
/* Free a parsed file; idempotent. */
void ds_checkpoint_file_close(ds_checkpoint_file_t *f);

/* Append to out the bytes of a checkpoint file (what ds_checkpoint_write
 * puts in one): for tests and tools. 0, DS_ENOMEM / DS_ERANGE (out
 * unchanged), or DS_EINVAL when seq and base do not fit the kind (a pending
 * file has seq 0, a delta a base below its seq, others base 0). */
int ds_checkpoint_encode(ds_buf_t *out, ds_checkpoint_kind_t kind, uint64_t seq, uint64_t base,
                         int64_t time_ms, const ds_checkpoint_section_t *sections, size_t n);

/* "full", "delta" or "pending". */
const char *ds_checkpoint_kind_name(ds_checkpoint_kind_t kind);

#endif

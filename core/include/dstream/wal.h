/* The write-ahead log: received blocks made durable before they count.
 *
 * A receiver (the socket receiver, a custom receiver's poll) appends each
 * block it seals; ds_wal_append() returns only once the block is written and
 * fdatasync()ed, with the block's seq. After a crash, ds_wal_open() finds
 * every block that was appended, and a batch that had taken blocks but not
 * completed gets them back by (stream, seq range) with the replay iterator.
 * This comment is the format's specification.
 *
 * FILES: a WAL is one directory of segments named wal-<seq>.log, where <seq>
 * (16 decimal digits, zero-padded, so names sort by number) is the seq the
 * segment's first block has or would have had. Other names are ignored.
 * Appends go to the newest segment; when a block would take it past
 * segment_bytes (and it is not empty) a new segment is started, named after
 * the block's seq, and the directory is fsynced. A block larger than
 * segment_bytes gets a segment of its own.
 *
 * FRAMES: a segment is codec frames back to back (dstream/codec.h: 16-byte
 * header, CRC-32C over header and payload), nothing else: no file header.
 * Each frame is one block, a payload of exactly 4 records:
 *
 *   INT stream   the receiver's stream number (>= 0), given by the caller
 *   INT seq      >= 1, one counter for the whole WAL, +1 per block appended
 *   INT kind     1 DS_WAL_LINES: the bytes are a block as dstream/block.h
 *                  lays it out (4-byte little-endian length, then the bytes,
 *                  per record: lines, NUL bytes and all)
 *                2 DS_WAL_CODEC: the bytes are one codec frame (not a pairs
 *                  frame) of records, as core.encode() makes them
 *   STR bytes    the block
 *
 * A frame is a good block when the frame opens (magic, version, length,
 * CRC, structure), holds those 4 records with kind 1 or 2, its bytes are
 * well formed for their kind, and its seq is above every seq before it (in
 * this segment and in older ones) and below the next segment's first seq.
 *
 * SEQ: the next append gets one more than the highest seq found, or than
 * the newest segment's name minus one, whichever is higher. The newest
 * segment is never deleted, so seqs never go back, even when every block
 * was released: a checkpoint that saved "seq 500 taken" stays right.
 *
 * RECOVERY (ds_wal_open): every segment is read once, in order. Bytes that
 * are not good blocks are DAMAGE: the reader resyncs at the next good block
 * (first trying the damaged frame's own length, then every later "DS"
 * magic), so one bad frame costs only its own block. Damage that runs to the
 * end of the newest segment is a torn tail - a crash during an append - and
 * the file is cut there (ftruncate, fsync), so that the next append follows
 * the last good frame. Any other damage (in the middle of a segment, or at
 * the end of an older one, which a crash cannot cause) is left on disk and
 * its blocks are skipped by replay. Every damage is reported as a warning:
 * the segment's path, the byte offset, how many bytes, why, and the last
 * good seq before it - at each open, until a release deletes its segment.
 *
 * RESIDUAL RISK: a resync takes the first later offset that holds a good
 * block. A line or record whose bytes are themselves a well-formed WAL frame
 * with a plausible seq, lying inside a damaged frame, would be taken as a
 * block. Ordinary data never is: it needs the magic, a valid CRC over it and
 * the exact 4-record shape.
 *
 * RELEASE: ds_wal_release(seq) deletes the segments (oldest first, never the
 * newest) whose blocks all have seqs <= seq, which a segment knows from the
 * next segment's first seq.
 *
 * FAILED APPENDS: a failed write or fdatasync (disk full, I/O error) cuts
 * the segment back to its size before the append (so a half frame never sits
 * before a later good one) and returns the error with the path: the block
 * has no seq and the caller still owns it, to retry. Linux may drop dirty
 * pages after a failed fsync, so the retry writes the whole frame again
 * rather than fsyncing again.
 *
 * NOT PROVIDED: two processes must not open one directory at once (no lock).
 *
 * COSTS: an append is one write() and one fdatasync() of the frame (its
 * bytes plus about 30), plus one copy of the block into the WAL's buffer;
 * the fdatasync dominates (see notes/wal.md for measured figures). Open reads
 * every segment once (mmap, CRC at about 2 GB/s). Memory: the segment list
 * and one frame buffer.
 */
#ifndef DSTREAM_WAL_H
#define DSTREAM_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "dstream/block.h"

#define DS_WAL_LINES 1
#define DS_WAL_CODEC 2
/* The size of a warning's or error's text, NUL included. */
#define DS_WAL_MESSAGE_MAX 512

typedef struct ds_wal_s ds_wal_t;

typedef struct {
  size_t segment_bytes;         /* 64 MiB; at least 1 */
} ds_wal_opts_t;

/* One block read back; data is borrowed from the segment being read. */
typedef struct {
  uint64_t stream;
  uint64_t seq;
  int kind;                     /* DS_WAL_LINES or DS_WAL_CODEC */
  const char *data;
  size_t len;
  uint32_t count;               /* records in the block */
  size_t offset;                /* of the frame in its segment */
} ds_wal_block_t;

/* What ds_wal_reader_next() found. */
enum { DS_WAL_END = 0, DS_WAL_BLOCK = 1, DS_WAL_DAMAGE = 2 };

/* The segment reader: good blocks and damage in the bytes of one segment.
 * Pure (no I/O, no allocation); open and replay use it, and the fuzzer. */
typedef struct {
  const unsigned char *data;    /* borrowed */
  size_t len;
  size_t pos;                   /* where the next read starts */
  uint64_t prev_seq;            /* a good block's seq must exceed this ... */
  uint64_t max_seq;             /* ... and not exceed this */
  size_t damage_off;            /* DS_WAL_DAMAGE: bytes [off, off + len) */
  size_t damage_len;
  char why[DS_WAL_MESSAGE_MAX / 2];
} ds_wal_reader_t;

/* A replay: the blocks of one stream with after < seq <= upto. */
typedef struct {
  ds_wal_t *w;
  uint64_t stream, after, upto;
  size_t seg;                   /* index of the next segment to map */
  size_t cur;                   /* index of the segment being read */
  int reading;                  /* r reads segment cur */
  void *map;                    /* the mapped segment, or NULL */
  size_t map_len;
  ds_wal_reader_t r;
} ds_wal_iter_t;

/* Fill opts with the defaults above. */
void ds_wal_opts_init(ds_wal_opts_t *opts);

/* Open (creating it and its parents if needed) the WAL in dir: read every
 * segment, cut a torn tail, record warnings. *out (caller owns, free with
 * ds_wal_free) on 0; else a DS_E* code, errbuf saying what and which file. */
int ds_wal_open(const char *dir, const ds_wal_opts_t *opts, ds_wal_t **out,
                char *errbuf, size_t errlen);
/* Append a block of `kind` (bytes borrowed, checked to be well formed:
 * DS_EINVAL / DS_ECORRUPT otherwise) for `stream`, write it and fdatasync it;
 * *seq gets its seq. DS_EIO / DS_ENOMEM / DS_ECLOSED with errbuf saying what
 * and which file; on any failure the WAL holds nothing of the block. */
int ds_wal_append(ds_wal_t *w, uint64_t stream, int kind, const void *data,
                  size_t len, uint64_t *seq, char *errbuf, size_t errlen);
/* ds_wal_append() of a lines block (borrowed). */
int ds_wal_append_block(ds_wal_t *w, uint64_t stream, const ds_block_t *blk,
                        uint64_t *seq, char *errbuf, size_t errlen);
/* The highest seq appended or found (0 for a new WAL). */
uint64_t ds_wal_last_seq(const ds_wal_t *w);
/* Delete the segments, never the newest, whose blocks all have seq <= seq.
 * Returns how many were deleted, or DS_EIO (errbuf: which file) after
 * deleting those before it. */
int ds_wal_release(ds_wal_t *w, uint64_t seq, char *errbuf, size_t errlen);
/* The warnings so far (torn tails cut, damage skipped), oldest first; the
 * strings are borrowed until ds_wal_free(). */
size_t ds_wal_warnings(const ds_wal_t *w, const char *const **out);
/* Close the segment files; later appends fail with DS_ECLOSED. Idempotent. */
void ds_wal_close(ds_wal_t *w);
/* Close if needed and free w (NULL allowed). */
void ds_wal_free(ds_wal_t *w);

/* Start a replay of stream's blocks with after < seq <= upto (UINT64_MAX:
 * all); reads nothing yet. */
void ds_wal_iter_init(ds_wal_iter_t *it, ds_wal_t *w, uint64_t stream,
                      uint64_t after, uint64_t upto);
/* The next block: 1 with *blk filled (data borrowed until the next call),
 * 0 at the end, or DS_EIO / DS_ECLOSED with errbuf saying which file.
 * Damage is skipped (a new damage, not seen at open, becomes a warning). */
int ds_wal_iter_next(ds_wal_iter_t *it, ds_wal_block_t *blk, char *errbuf,
                     size_t errlen);
/* Release what the replay holds; idempotent. */
void ds_wal_iter_close(ds_wal_iter_t *it);

/* Start reading the len bytes of a segment (borrowed); good blocks must have
 * prev_seq < seq <= max_seq. */
void ds_wal_reader_init(ds_wal_reader_t *r, const void *data, size_t len,
                        uint64_t prev_seq, uint64_t max_seq);
/* DS_WAL_BLOCK with *blk filled (r->prev_seq becomes its seq), DS_WAL_DAMAGE
 * with r->damage_off/len/why filled (reading goes on after the damage), or
 * DS_WAL_END. Every byte is either in one block or in one damage. */
int ds_wal_reader_next(ds_wal_reader_t *r, ds_wal_block_t *blk);

#endif

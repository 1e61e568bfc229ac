/* Blocks: arenas of length-prefixed records.
 *
 * Receivers write the bytes they accept into the current block; every
 * blockInterval (and at every batch time) the block is sealed and queued, and
 * a batch takes the queued blocks whole. A block becomes Lua values with one
 * call per block, never one per record.
 *
 * LAYOUT: records are stored back to back, each a 4-byte little-endian length
 * followed by that many bytes (any bytes, NUL included). `count` records and
 * `len` bytes are in use out of `cap`.
 *
 * OWNERSHIP: a block belongs to whoever holds it; ds_blockq_push() takes it,
 * ds_blockq_take() hands the chain to the caller, who frees each block.
 */
#ifndef DSTREAM_BLOCK_H
#define DSTREAM_BLOCK_H

#include <stddef.h>
#include <stdint.h>

typedef struct ds_block_s {
  struct ds_block_s *next; /* link while queued */
  char *data;
  size_t len;
  size_t cap;
  uint32_t count;          /* records in the block */
} ds_block_t;

typedef struct {
  ds_block_t *head;
  ds_block_t *tail;
  size_t nblocks;
  uint64_t nrecords;
  uint64_t nbytes;
} ds_blockq_t;

/* Allocate an empty block with room for cap bytes; NULL on out of memory. */
ds_block_t *ds_block_new(size_t cap);
/* Free a block (NULL is allowed); does not follow `next`. */
void ds_block_free(ds_block_t *blk);
/* Append one record (copied); grows the block; DS_ENOMEM leaves it as it was. */
int ds_block_append(ds_block_t *blk, const void *rec, size_t len);
/* Step through records: *off starts at 0; returns 1 and sets rec/len while
 * records remain, 0 at the end. rec is borrowed from the block. */
int ds_block_next(const ds_block_t *blk, size_t *off, const char **rec, size_t *len);

void ds_blockq_init(ds_blockq_t *q);
/* Queue a block at the tail; takes ownership of blk. */
void ds_blockq_push(ds_blockq_t *q, ds_block_t *blk);
/* Take every queued block as a chain (caller owns it); the queue is empty after. */
ds_block_t *ds_blockq_take(ds_blockq_t *q);
/* Free every queued block. */
void ds_blockq_close(ds_blockq_t *q);

#endif

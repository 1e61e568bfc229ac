/* The line splitter: bytes in, one record per line out.
 *
 * A receiver feeds whatever the network or a file hands it, in chunks that
 * cut lines anywhere; the splitter appends every complete line to a block as
 * one record, without its terminator ("\n" or "\r\n"; a lone "\r" is data),
 * and carries the unfinished line over to the next feed. Bytes are kept as
 * they are, NUL included.
 *
 * OVERSIZE LINES: a line longer than max_line_bytes (terminator excluded) is
 * skipped whole, even when it spans many feeds: the splitter never holds more
 * than max_line_bytes + 1 bytes of it (the + 1 is a trailing "\r" that may
 * still turn out to be half of a "\r\n"), counts it in `skipped` as soon as
 * it is known to be too long, notes in `last_skip_len` how many bytes of it
 * had been seen then, and resyncs at the next "\n".
 *
 * END OF INPUT: ds_lines_finish() turns an unfinished last line into a
 * record: data without a trailing newline is still a record.
 *
 * OUT OF MEMORY: a feed that cannot grow the block or the carried line
 * returns DS_ENOMEM and leaves the block and the splitter exactly as they
 * were before the call, so the same bytes can be fed again.
 *
 * COSTS: one memchr per line and one copy of each line into the block; only
 * a line cut by a feed boundary is copied twice.
 */
#ifndef DSTREAM_LINES_H
#define DSTREAM_LINES_H

#include <stddef.h>
#include <stdint.h>

#include "dstream/block.h"

typedef struct {
  char *buf;              /* the unfinished line carried across feeds */
  size_t len;
  size_t cap;
  size_t max_line_bytes;
  int skipping;           /* inside an oversize line: drop bytes until "\n" */
  uint64_t skipped;       /* oversize lines skipped so far */
  size_t last_skip_len;   /* bytes seen of the last skipped line when it was
                             found too long (at least max_line_bytes + 1) */
} ds_lines_t;

/* Prepare a splitter for lines of at most max_line_bytes bytes (clamped to
 * 1..UINT32_MAX, the most a block record holds). */
void ds_lines_init(ds_lines_t *ls, size_t max_line_bytes);
/* Free the carried line; the splitter may be init'ed again. */
void ds_lines_close(ds_lines_t *ls);
/* Append every line completed by buf[0..n) to blk (borrowed); carry the rest.
 * Returns 0, or DS_ENOMEM (DS_ERANGE: blk already holds UINT32_MAX records)
 * with blk and ls unchanged. */
int ds_lines_feed(ds_lines_t *ls, const char *buf, size_t n, ds_block_t *blk);
/* End of input: append the unfinished line, if any, to blk as a record and
 * resync. Returns 0, or DS_ENOMEM / DS_ERANGE with blk and ls unchanged. */
int ds_lines_finish(ds_lines_t *ls, ds_block_t *blk);
/* Forget the unfinished line and any skip in progress, keeping the counters:
 * for a caller that lost part of the stream and starts over at a new one. */
void ds_lines_reset(ds_lines_t *ls);

#endif

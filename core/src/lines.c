/* The line splitter: see dstream/lines.h for what it promises.
 *
 * HOW A FEED RUNS: first the carried line (or the oversize line being
 * skipped) is finished at the feed's first "\n"; then every line lying whole
 * inside the feed goes from the caller's buffer straight into the block, found
 * by memchr, never copied elsewhere; last, the bytes after the last "\n" are
 * carried. Only those carried bytes are ever copied into ls->buf, and never
 * more than max_line_bytes + 1 of them.
 *
 * WHY A FAILED FEED CAN BE UNDONE: a block only grows at its end and the
 * carried line is only written past its old length until the very last step
 * (carrying the tail), whose one allocation happens before it writes. So
 * restoring the block's len/count and the splitter's scalars is enough.
 */
#include <string.h>

#include "dstream/alloc.h"
#include "dstream/error.h"
#include "dstream/lines.h"

/* The scalars a failed feed restores. */
typedef struct {
  size_t blk_len;
  uint32_t blk_count;
  size_t len;
  int skipping;
  uint64_t skipped;
  size_t last_skip_len;
} saved_t;

static void save(const ds_lines_t *ls, const ds_block_t *blk, saved_t *sv) {
  sv->blk_len = blk->len;
  sv->blk_count = blk->count;
  sv->len = ls->len;
  sv->skipping = ls->skipping;
  sv->skipped = ls->skipped;
  sv->last_skip_len = ls->last_skip_len;
}

static int restore(ds_lines_t *ls, ds_block_t *blk, const saved_t *sv, int err) {
  blk->len = sv->blk_len;
  blk->count = sv->blk_count;
  ls->len = sv->len;
  ls->skipping = sv->skipping;
  ls->skipped = sv->skipped;
  ls->last_skip_len = sv->last_skip_len;
  return err;
}

void ds_lines_init(ds_lines_t *ls, size_t max_line_bytes) {
  memset(ls, 0, sizeof(*ls));
  if (max_line_bytes == 0)
    max_line_bytes = 1;
  if (max_line_bytes > UINT32_MAX)
    max_line_bytes = UINT32_MAX; /* a block record holds at most this */
  ls->max_line_bytes = max_line_bytes;
}

void ds_lines_close(ds_lines_t *ls) {
  ds_free(ls->buf);
  ls->buf = NULL;
  ls->len = 0;
  ls->cap = 0;
  ls->skipping = 0;
}

void ds_lines_reset(ds_lines_t *ls) {
  ls->len = 0;
  ls->skipping = 0;
}

/* Room for need (<= max_line_bytes + 1) bytes of carried line. */
static int reserve(ds_lines_t *ls, size_t need) {
  size_t cap;
  char *buf;
  if (need <= ls->cap)
    return 0;
  cap = ls->cap > 0 ? ls->cap : 128;
  while (cap < need)
    cap *= 2;
  if (cap > ls->max_line_bytes + 1)
    cap = ls->max_line_bytes + 1;
  buf = ds_realloc(ls->buf, cap);
  if (buf == NULL)
    return DS_ENOMEM;
  ls->buf = buf;
  ls->cap = cap;
  return 0;
}

static void skip(ds_lines_t *ls, size_t seen) {
  ls->skipped++;
  ls->last_skip_len = seen;
}

/* The carried line ends with seg[0..n) (its "\n" excluded). */
static int finish_carried(ds_lines_t *ls, const char *seg, size_t n, ds_block_t *blk) {
  size_t total, content;
  char last;
  int rc;
  if (ls->skipping) {
    ls->skipping = 0;
    return 0;
  }
  total = ls->len + n;
  last = n > 0 ? seg[n - 1] : ls->buf[ls->len - 1];
  content = last == '\r' ? total - 1 : total;
  if (content > ls->max_line_bytes) {
    skip(ls, content);
    ls->len = 0;
    return 0;
  }
  if (content > ls->len) {
    if ((rc = reserve(ls, content)) < 0)
      return rc;
    memcpy(ls->buf + ls->len, seg, content - ls->len);
  }
  if ((rc = ds_block_append(blk, ls->buf, content)) < 0)
    return rc;
  ls->len = 0;
  return 0;
}

/* Carry p[0..n), bytes after the last "\n" of a feed. */
static int carry(ds_lines_t *ls, const char *p, size_t n) {
  size_t total;
  int rc;
  if (ls->skipping)
    return 0;
  total = ls->len + n;
  if (total > ls->max_line_bytes &&
      !(total == ls->max_line_bytes + 1 && p[n - 1] == '\r')) {
    skip(ls, total);
    ls->skipping = 1;
    ls->len = 0;
    return 0;
  }
  if ((rc = reserve(ls, total)) < 0)
    return rc;
  memcpy(ls->buf + ls->len, p, n);
  ls->len = total;
  return 0;
}

int ds_lines_feed(ds_lines_t *ls, const char *buf, size_t n, ds_block_t *blk) {
  const char *p = buf, *end = buf + n, *nl;
  saved_t sv;
  int rc;
  if (n == 0)
    return 0;
  save(ls, blk, &sv);
  if (ls->skipping || ls->len > 0) {
    nl = memchr(p, '\n', n);
    if (nl == NULL)
      rc = carry(ls, p, n);
    else
      rc = finish_carried(ls, p, (size_t)(nl - p), blk);
    if (rc < 0)
      return restore(ls, blk, &sv, rc);
    if (nl == NULL)
      return 0;
    p = nl + 1;
  }
  while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
    size_t len = (size_t)(nl - p);
    if (len > 0 && nl[-1] == '\r')
      len--;
    if (len > ls->max_line_bytes)
      skip(ls, len);
    else if ((rc = ds_block_append(blk, p, len)) < 0)
      return restore(ls, blk, &sv, rc);
    p = nl + 1;
  }
  if (p < end && (rc = carry(ls, p, (size_t)(end - p))) < 0)
    return restore(ls, blk, &sv, rc);
  return 0;
}

int ds_lines_finish(ds_lines_t *ls, ds_block_t *blk) {
  int rc;
  if (ls->skipping) {
    ls->skipping = 0;
    return 0;
  }
  if (ls->len == 0)
    return 0;
  if (ls->len > ls->max_line_bytes) {
    skip(ls, ls->len);
    ls->len = 0;
    return 0;
  }
  if ((rc = ds_block_append(blk, ls->buf, ls->len)) < 0)
    return rc;
  ls->len = 0;
  return 0;
}

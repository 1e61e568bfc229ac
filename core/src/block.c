/* Blocks and block queues: see dstream/block.h for the layout.
 *
 * Growth doubles the capacity so that appending n bytes costs O(n) amortised;
 * a block that fails to grow keeps every record it already had. */
#include <string.h>

#include "dstream/alloc.h"
#include "dstream/block.h"
#include "dstream/error.h"

ds_block_t *ds_block_new(size_t cap) {
  ds_block_t *blk = ds_malloc(sizeof(*blk));
  if (blk == NULL)
    return NULL;
  blk->data = ds_malloc(cap);
  if (blk->data == NULL) {
    ds_free(blk);
    return NULL;
  }
  blk->next = NULL;
  blk->len = 0;
  blk->cap = cap > 0 ? cap : 1;
  blk->count = 0;
  return blk;
}

void ds_block_free(ds_block_t *blk) {
  if (blk == NULL)
    return;
  ds_free(blk->data);
  ds_free(blk);
}

int ds_block_append(ds_block_t *blk, const void *rec, size_t len) {
  size_t need;
  unsigned char hdr[4];
  if (len > UINT32_MAX || blk->count == UINT32_MAX)
    return DS_ERANGE;
  need = blk->len + 4 + len;
  if (need > blk->cap) {
    size_t cap = blk->cap;
    char *data;
    while (cap < need)
      cap *= 2;
    data = ds_realloc(blk->data, cap);
    if (data == NULL)
      return DS_ENOMEM;
    blk->data = data;
    blk->cap = cap;
  }
  hdr[0] = (unsigned char)len;
  hdr[1] = (unsigned char)(len >> 8);
  hdr[2] = (unsigned char)(len >> 16);
  hdr[3] = (unsigned char)(len >> 24);
  memcpy(blk->data + blk->len, hdr, 4);
  if (len > 0)
    memcpy(blk->data + blk->len + 4, rec, len);
  blk->len = need;
  blk->count++;
  return 0;
}

int ds_block_next(const ds_block_t *blk, size_t *off, const char **rec, size_t *len) {
  const unsigned char *p;
  size_t n;
  if (*off + 4 > blk->len)
    return 0;
  p = (const unsigned char *)blk->data + *off;
  n = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
  *rec = (const char *)p + 4;
  *len = n;
  *off += 4 + n;
  return 1;
}

void ds_blockq_init(ds_blockq_t *q) {
  memset(q, 0, sizeof(*q));
}

void ds_blockq_push(ds_blockq_t *q, ds_block_t *blk) {
  blk->next = NULL;
  if (q->tail != NULL)
    q->tail->next = blk;
  else
    q->head = blk;
  q->tail = blk;
  q->nblocks++;
  q->nrecords += blk->count;
  q->nbytes += blk->len;
}

ds_block_t *ds_blockq_take(ds_blockq_t *q) {
  ds_block_t *chain = q->head;
  ds_blockq_init(q);
  return chain;
}

void ds_blockq_close(ds_blockq_t *q) {
  ds_block_t *blk = ds_blockq_take(q);
  while (blk != NULL) {
    ds_block_t *next = blk->next;
    ds_block_free(blk);
    blk = next;
  }
}

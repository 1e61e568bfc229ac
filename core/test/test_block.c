/* Blocks keep records byte for byte and survive a failed allocation. */
#include "dstream/block.h"
#include "dstream/error.h"
#include "harness.h"

static void test_append_and_iterate(void) {
  ds_block_t *blk = ds_block_new(4);
  const char *rec;
  size_t len, off = 0;
  CHECK(blk != NULL);
  CHECK_EQ_INT(ds_block_append(blk, "hello", 5), 0);
  CHECK_EQ_INT(ds_block_append(blk, "", 0), 0);
  CHECK_EQ_INT(ds_block_append(blk, "a\0b", 3), 0);
  CHECK_EQ_INT(blk->count, 3);
  CHECK(ds_block_next(blk, &off, &rec, &len) == 1 && len == 5 && memcmp(rec, "hello", 5) == 0);
  CHECK(ds_block_next(blk, &off, &rec, &len) == 1 && len == 0);
  CHECK(ds_block_next(blk, &off, &rec, &len) == 1 && len == 3 && memcmp(rec, "a\0b", 3) == 0);
  CHECK(ds_block_next(blk, &off, &rec, &len) == 0);
  ds_block_free(blk);
}

static void test_failed_growth_keeps_records(void) {
  ds_block_t *blk = ds_block_new(8);
  const char *rec;
  size_t len, off = 0;
  CHECK_EQ_INT(ds_block_append(blk, "ab", 2), 0);
  ds_test_fail_after(1);
  CHECK_EQ_INT(ds_block_append(blk, "a longer record", 15), DS_ENOMEM);
  ds_test_fail_after(0);
  CHECK_EQ_INT(blk->count, 1);
  CHECK(ds_block_next(blk, &off, &rec, &len) == 1 && len == 2 && memcmp(rec, "ab", 2) == 0);
  CHECK(ds_block_next(blk, &off, &rec, &len) == 0);
  ds_block_free(blk);
}

static void test_queue_hands_over_blocks_in_order(void) {
  ds_blockq_t q;
  ds_block_t *a = ds_block_new(16), *b = ds_block_new(16), *chain;
  ds_blockq_init(&q);
  ds_block_append(a, "x", 1);
  ds_block_append(b, "y", 1);
  ds_block_append(b, "z", 1);
  ds_blockq_push(&q, a);
  ds_blockq_push(&q, b);
  CHECK_EQ_INT(q.nblocks, 2);
  CHECK_EQ_INT(q.nrecords, 3);
  chain = ds_blockq_take(&q);
  CHECK(chain == a && chain->next == b && b->next == NULL);
  CHECK_EQ_INT(q.nblocks, 0);
  ds_blockq_push(&q, a);
  ds_blockq_push(&q, b);
  ds_blockq_close(&q);
}

static void test_new_fails_cleanly(void) {
  ds_test_fail_after(2);
  CHECK(ds_block_new(16) == NULL);
  ds_test_fail_after(1);
  CHECK(ds_block_new(16) == NULL);
  ds_test_fail_after(0);
}

int main(void) {
  ds_test_begin();
  test_append_and_iterate();
  test_failed_growth_keeps_records();
  test_queue_hands_over_blocks_in_order();
  test_new_fails_cleanly();
  return ds_test_end("test_block");
}

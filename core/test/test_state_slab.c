/* State store memory (state_slab.c): cells that hold their bytes inline or
 * in a blob, blobs in size classes with free lists, big blobs, in-place
 * rewrites, entry pages of stable slots, memory accounting, and nothing
 * changed when an allocation fails. */
#include "dstream/alloc.h"
#include "dstream/error.h"
#include "dstream/state.h"
#include "harness.h"
#include "state_internal.h"

static char bytes[4096];

static uint64_t new_cell(ds_state_t *s, uint32_t len) {
  uint64_t cell = 0;
  CHECK_EQ_INT(ds__cell_new(s, DS_STATE_ENC, bytes, len, &cell), 0);
  return cell;
}

static int cell_holds(const ds_state_t *s, uint64_t cell, const void *p,
                      uint32_t len) {
  uint32_t got;
  const unsigned char *q = cell_bytes(s, &cell, &got);
  /* an inline cell's bytes are the cell's own: compare a copy */
  return got == len && memcmp(q, p, len) == 0;
}

/* Up to 6 bytes stay in the cell: no blob, no memory. */
static void test_inline_cells(void) {
  ds_state_t *s = ds_state_new(0);
  size_t before = ds_state_memory(s);
  uint32_t len;
  for (len = 1; len <= INLINE_MAX; len++) {
    uint64_t cell = new_cell(s, len);
    CHECK(!cell_is_ref(cell) && !cell_is_num(cell));
    CHECK(cell_holds(s, cell, bytes, len));
    CHECK_EQ_INT(cell_user_kind(cell), DS_STATE_ENC);
    cell_drop(s, cell);
  }
  CHECK_EQ_INT(ds_state_memory(s), before);
  ds_state_free(s);
}

/* A freed blob is the next one handed out in its class; another class does
 * not take it. */
static void test_blob_classes_reuse(void) {
  ds_state_t *s = ds_state_new(0);
  uint64_t a, b, c;
  size_t mem;
  a = new_cell(s, 7); /* 8 bytes with its length: class 8 */
  mem = ds_state_memory(s);
  CHECK(cell_is_ref(a) && !(a & REF_BIG));
  CHECK(mem >= SLAB_BYTES);
  b = new_cell(s, 100);
  CHECK(cell_holds(s, a, bytes, 7) && cell_holds(s, b, bytes, 100));
  cell_drop(s, a);
  c = new_cell(s, 200); /* another class: a fresh place */
  CHECK((c & PAYLOAD_MASK) != (a & PAYLOAD_MASK));
  CHECK_EQ_INT(ds_state_memory(s), mem); /* one slab holds them all */
  c = new_cell(s, 6 + 1); /* a's class again: a's place */
  CHECK_EQ_INT(c & PAYLOAD_MASK, a & PAYLOAD_MASK);
  ds_state_free(s);
}

/* Over 1 KiB a blob is an allocation of its own, freed with its cell, and
 * its directory entry is reused. */
static void test_big_blobs(void) {
  ds_state_t *s = ds_state_new(0);
  size_t mem = ds_state_memory(s);
  uint64_t a = new_cell(s, 2000), b;
  CHECK(a & REF_BIG);
  CHECK(cell_holds(s, a, bytes, 2000));
  CHECK(ds_state_memory(s) >= mem + 2000);
  cell_drop(s, a);
  b = new_cell(s, 3000);
  CHECK_EQ_INT(b & PAYLOAD_MASK, a & PAYLOAD_MASK);
  CHECK(cell_holds(s, b, bytes, 3000));
  ds_state_free(s);
}

/* A value of the same size class is rewritten where it is; otherwise
 * nothing changes. */
static void test_blob_rewrite(void) {
  ds_state_t *s = ds_state_new(0);
  char other[200];
  uint64_t a = new_cell(s, 90), big = new_cell(s, 1500), small = new_cell(s, 3);
  memset(other, 'z', sizeof other);
  CHECK_EQ_INT(ds__blob_rewrite(s, a, other, 95), 1); /* 96: class 96 too */
  CHECK(cell_holds(s, a, other, 95));
  CHECK_EQ_INT(ds__blob_rewrite(s, a, bytes, 150), 0); /* class 160 */
  CHECK(cell_holds(s, a, other, 95));
  CHECK_EQ_INT(ds__blob_rewrite(s, a, bytes, 4), 0); /* would be inline */
  CHECK_EQ_INT(ds__blob_rewrite(s, big, bytes, 1500), 0);
  CHECK_EQ_INT(ds__blob_rewrite(s, small, bytes, 3), 0);
  /* the bytes may be the blob's own */
  {
    uint32_t len;
    const unsigned char *own = cell_bytes(s, &a, &len);
    CHECK_EQ_INT(ds__blob_rewrite(s, a, (const char *)own + 1, len - 1), 1);
    CHECK(cell_holds(s, a, other, 94));
  }
  ds_state_free(s);
}

/* Slots come from pages that never move; a released slot is taken first. */
static void test_slots(void) {
  ds_state_t *s = ds_state_new(1000);
  uint32_t i, first;
  entry_t *e0;
  CHECK_EQ_INT(slot_reserve(s), 0);
  first = slot_take(s);
  CHECK_EQ_INT(first, 0);
  e0 = entry_at(s, 0);
  for (i = 1; i < PAGE_SLOTS + 10; i++) {
    CHECK_EQ_INT(slot_reserve(s), 0);
    CHECK_EQ_INT(slot_take(s), i);
    entry_at(s, i)->key = cell_make(KIND_STR_INLINE, 0);
  }
  CHECK_EQ_INT(s->npages, 2);
  CHECK(entry_at(s, 0) == e0);
  slot_release(s, 5);
  CHECK(cell_is_free(entry_at(s, 5)->key));
  CHECK_EQ_INT(slot_reserve(s), 0);
  CHECK_EQ_INT(slot_take(s), 5);
  CHECK_EQ_INT(s->npages, 2);
  s->used = 0; /* the cells are not real keys: let clear free the pages */
  ds_state_free(s);
}

/* An allocation that fails leaves the store as it was. */
static void test_out_of_memory(void) {
  ds_state_t *s = ds_state_new(0);
  uint64_t cell = 0;
  size_t mem;
  long n;
  new_cell(s, 50);
  /* a big blob: its directory may grow (and stays grown), no blob is had */
  for (n = 1; n <= 2; n++) {
    uint32_t nbig = s->nbig;
    ds_test_fail_after(n);
    CHECK_EQ_INT(ds__cell_new(s, DS_STATE_ENC, bytes, 2000, &cell), DS_ENOMEM);
    ds_test_fail_after(0);
    CHECK_EQ_INT(s->nbig, nbig);
  }
  CHECK_EQ_INT(ds__cell_new(s, DS_STATE_ENC, bytes, 2000, &cell), 0);
  CHECK(cell_holds(s, cell, bytes, 2000));
  /* a new slab that cannot be had */
  while (s->slab_used + 1024 <= SLAB_BYTES)
    new_cell(s, 1000);
  mem = ds_state_memory(s);
  ds_test_fail_after(1);
  CHECK_EQ_INT(ds__cell_new(s, DS_STATE_ENC, bytes, 1000, &cell), DS_ENOMEM);
  ds_test_fail_after(0);
  CHECK_EQ_INT(ds_state_memory(s), mem);
  CHECK_EQ_INT(ds__cell_new(s, DS_STATE_ENC, bytes, 1000, &cell), 0);
  CHECK(ds_state_memory(s) > mem);
  ds_state_free(s);
}

int main(void) {
  size_t i;
  ds_test_begin();
  for (i = 0; i < sizeof bytes; i++)
    bytes[i] = (char)('a' + i % 26);
  test_inline_cells();
  test_blob_classes_reuse();
  test_big_blobs();
  test_blob_rewrite();
  test_slots();
  test_out_of_memory();
  return ds_test_end("test_state_slab");
}

/* Fuzz target: what recovery feeds the keyed state store and the window
 * buffers from a checkpoint - ds_state_apply() (a snapshot or a delta) and
 * ds_window_restore() - on any bytes.
 *
 * The first input byte picks a mode, the rest is the checkpoint:
 *   bit 0: recompute every frame's CRC-32C first, so that mutations get
 *          past the checksum to the structure checks behind it;
 *   bit 1: the stores have a timeout (deltas carry times);
 *   bit 2: a window buffer's checkpoint instead of a store's.
 * Accepted bytes must give a store (or buffer) that survives its own full
 * checkpoint and restore; refused bytes must leave a store or buffer that
 * already held something exactly as it was (but after DS_ENOMEM).
 *
 * Built by CMake with -DDS_FUZZ=ON under clang; run by scripts/test.sh over
 * fuzz/corpus/state_apply.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dstream/codec.h"
#include "dstream/crc32c.h"
#include "dstream/error.h"
#include "dstream/state.h"
#include "dstream/window.h"
#include "frames.h"

static void fail(const char *why) {
  fprintf(stderr, "fuzz_state_apply: %s\n", why);
  abort();
}

/* A store's own full checkpoint, applied to an empty store, gives as many keys. */
static void check_round_trip(ds_state_t *s, int64_t timeout) {
  const char *bytes;
  size_t len;
  ds_state_t *t;
  if (ds_state_checkpoint(s, 1, 10000, &bytes, &len) != 0)
    return; /* out of memory */
  t = ds_state_new(timeout);
  if (t == NULL)
    abort();
  if (ds_state_apply(t, bytes, len, NULL, 0) != 0)
    fail("a store's own snapshot is refused");
  if (ds_state_count(t) != ds_state_count(s))
    fail("a store's own snapshot gives another number of keys");
  ds_state_free(t);
}

static void fuzz_store(const char *p, size_t len, int64_t timeout) {
  char errbuf[256];
  ds_state_t *empty = ds_state_new(timeout), *full = ds_state_new(timeout);
  int rc;
  if (empty == NULL || full == NULL)
    abort();
  if (ds_state_track(empty) != 0 || ds_state_track(full) != 0)
    abort();
  for (int k = 0; k < 3; k++)
    if (ds_state_put_num_num(full, k, k * 10.0, 1000) < 0)
      abort();
  rc = ds_state_apply(empty, p, len, errbuf, sizeof errbuf);
  if (rc == 0)
    check_round_trip(empty, timeout);
  else if (rc != DS_ENOMEM && ds_state_count(empty) != 0)
    fail("a refused snapshot left keys behind");
  rc = ds_state_apply(full, p, len, errbuf, sizeof errbuf);
  if (rc == 0)
    check_round_trip(full, timeout);
  else if (rc != DS_ENOMEM && ds_state_count(full) != 3)
    fail("a refused delta changed the store");
  ds_state_free(empty);
  ds_state_free(full);
}

static void fuzz_window(const char *p, size_t len) {
  char errbuf[256];
  ds_window_t w, again;
  ds_buf_t out;
  int rc;
  if (ds_window_init(&w, 1000, 5000) != 0 || ds_window_init(&again, 1000, 5000) != 0)
    abort();
  if (ds_window_push(&w, 1000, "a", 1) != 0 || ds_window_push(&w, 3000, "bc", 2) != 0)
    abort();
  rc = ds_window_restore(&w, p, len, errbuf, sizeof errbuf);
  if (rc != 0 && rc != DS_ENOMEM && (w.count != 3 || w.newest != 3000 || w.bytes != 3))
    fail("a refused window checkpoint changed the buffer");
  if (rc == 0) {
    ds_buf_init(&out);
    if (ds_window_checkpoint(&w, INT64_MIN, &out) == 0) {
      if (ds_window_restore(&again, out.data, out.len, NULL, 0) != 0)
        fail("a buffer's own checkpoint is refused");
      if (again.count != w.count || again.bytes != w.bytes || again.newest != w.newest)
        fail("a buffer's own checkpoint gives another buffer");
    }
    ds_buf_close(&out);
  }
  ds_window_close(&w);
  ds_window_close(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  unsigned char *copy;
  size_t len;
  if (size == 0)
    return 0;
  len = size - 1;
  copy = malloc(len > 0 ? len : 1);
  if (copy == NULL)
    abort();
  memcpy(copy, data + 1, len);
  if (data[0] & 1)
    fuzz_fix_crcs(copy, len);
  if (data[0] & 4)
    fuzz_window((const char *)copy, len);
  else
    fuzz_store((const char *)copy, len, (data[0] & 2) ? 60000 : 0);
  free(copy);
  return 0;
}

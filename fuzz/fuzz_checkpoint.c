/* Fuzz target: the checkpoint file reader (ds_checkpoint_parse) on any bytes.
 *
 * The first input byte picks a mode, the rest is the file:
 *   even: the bytes as they are - what a damaged disk gives;
 *   odd:  the same bytes with every frame's CRC-32C recomputed first, so
 *         that mutations get past the checksum and reach the checks of the
 *         header, the section frames and the trailer behind it.
 * Whatever the reader accepts must be self-consistent (sections inside
 * what was read, byte total as parsed) and must survive a round trip:
 * encoded again (ds_checkpoint_encode) and parsed, it gives the same kind,
 * seq, base, time and sections. A violation aborts with the input; a crash
 * or an out-of-bounds read is caught by ASan and UBSan.
 *
 * Built by CMake with -DDS_FUZZ=ON under clang (-fsanitize=fuzzer); run by
 * scripts/test.sh for a bounded number of inputs over fuzz/corpus/checkpoint:
 *     build-fuzz/fuzz_checkpoint -runs=N fuzz/corpus/checkpoint
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dstream/checkpoint.h"
#include "dstream/codec.h"
#include "dstream/crc32c.h"
#include "frames.h"

/* The engine library is built without libFuzzer's coverage instrumentation
 * (only the target's own sources get -fsanitize=fuzzer), which would leave
 * the fuzzer blind to the reader's branches. Compiled here, the reader and
 * the frame checks it relies on are instrumented; the linker then takes no
 * copy of them from the library, as nothing is left undefined there. */
#include "../core/src/checkpoint.c"
#include "../core/src/codec.c"

static void fail(const char *why) {
  fprintf(stderr, "fuzz_checkpoint: %s\n", why);
  abort();
}

static void check_same(const ds_checkpoint_file_t *a, const ds_checkpoint_file_t *b) {
  size_t i;
  if (a->kind != b->kind || a->seq != b->seq || a->base != b->base || a->time_ms != b->time_ms ||
      a->nsections != b->nsections)
    fail("the round trip changed the header");
  for (i = 0; i < a->nsections; i++) {
    const ds_checkpoint_section_t *x = &a->sections[i], *y = &b->sections[i];
    if (x->name_len != y->name_len || x->len != y->len ||
        (x->name_len > 0 && memcmp(x->name, y->name, x->name_len) != 0) ||
        (x->len > 0 && memcmp(x->data, y->data, x->len) != 0))
      fail("the round trip changed a section");
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char errbuf[512];
  ds_checkpoint_file_t f, g;
  unsigned char *copy;
  size_t len, i, total = 0;
  ds_buf_t buf;
  int rc;
  if (size == 0)
    return 0;
  len = size - 1;
  copy = malloc(len > 0 ? len : 1);
  if (copy == NULL)
    abort();
  memcpy(copy, data + 1, len);
  if (data[0] & 1)
    fuzz_fix_crcs(copy, len);
  rc = ds_checkpoint_parse(&f, copy, len, errbuf, sizeof errbuf);
  if (rc != 0) {
    if (strncmp(errbuf, "byte ", 5) != 0)
      fail("a refusal that does not say at which byte");
    free(copy);
    return 0;
  }
  for (i = 0; i < f.nsections; i++)
    total += f.sections[i].name_len + f.sections[i].len;
  if (total > len)
    fail("sections hold more bytes than the file");
  ds_buf_init(&buf);
  if (ds_checkpoint_encode(&buf, f.kind, f.seq, f.base, f.time_ms, f.sections, f.nsections) != 0)
    fail("what was read cannot be written again");
  if (ds_checkpoint_parse(&g, buf.data, buf.len, errbuf, sizeof errbuf) != 0)
    fail(errbuf);
  check_same(&f, &g);
  ds_checkpoint_file_close(&g);
  ds_checkpoint_file_close(&f);
  ds_buf_close(&buf);
  free(copy);
  return 0;
}

/* CRC-32C: published vectors, a bitwise reference, chaining. */
#include <stdint.h>

#include "dstream/crc32c.h"
#include "harness.h"

/* The definition, one bit at a time: what the tables must agree with. */
static uint32_t crc_bitwise(uint32_t crc, const unsigned char *p, size_t len) {
  int k;
  crc = ~crc;
  while (len-- > 0) {
    crc ^= *p++;
    for (k = 0; k < 8; k++)
      crc = (crc >> 1) ^ (0x82F63B78u & (0 - (crc & 1)));
  }
  return ~crc;
}

static void test_vectors(void) {
  unsigned char buf[32];
  int i;
  CHECK_EQ_INT(ds_crc32c(0, "123456789", 9), 0xE3069283u);
  CHECK_EQ_INT(ds_crc32c(0, "", 0), 0);
  CHECK_EQ_INT(ds_crc32c(0x12345678, "", 0), 0x12345678);
  /* RFC 3720 (iSCSI) appendix B.4 */
  memset(buf, 0, sizeof buf);
  CHECK_EQ_INT(ds_crc32c(0, buf, 32), 0x8A9136AAu);
  memset(buf, 0xff, sizeof buf);
  CHECK_EQ_INT(ds_crc32c(0, buf, 32), 0x62A8AB43u);
  for (i = 0; i < 32; i++)
    buf[i] = (unsigned char)i;
  CHECK_EQ_INT(ds_crc32c(0, buf, 32), 0x46DD794Eu);
  for (i = 0; i < 32; i++)
    buf[i] = (unsigned char)(31 - i);
  CHECK_EQ_INT(ds_crc32c(0, buf, 32), 0x113FDB5Cu);
}

/* Every length and alignment up to a few words, against the reference;
 * and a split anywhere chains to the same CRC. */
static void test_reference_and_chaining(void) {
  unsigned char data[300];
  uint64_t x = 0x9E3779B97F4A7C15u;
  size_t i, off, len, cut;
  int mismatches = 0, chain_mismatches = 0;
  for (i = 0; i < sizeof data; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    data[i] = (unsigned char)x;
  }
  for (off = 0; off < 8; off++)
    for (len = 0; len + off <= sizeof data; len++) {
      uint32_t want = crc_bitwise(0, data + off, len);
      if (ds_crc32c(0, data + off, len) != want)
        mismatches++;
      for (cut = 0; cut <= len; cut += 7)
        if (ds_crc32c(ds_crc32c(0, data + off, cut), data + off + cut,
                      len - cut) != want)
          chain_mismatches++;
    }
  CHECK_EQ_INT(mismatches, 0);
  CHECK_EQ_INT(chain_mismatches, 0);
}

int main(void) {
  ds_test_begin();
  test_vectors();
  test_reference_and_chaining();
  return ds_test_end("test_crc32c");
}

/* For the fuzz targets that read codec frames (codec.h): recompute the
 * CRC-32C of every whole frame, walking by the headers' lengths, so that
 * mutated inputs get past the checksum to the checks behind it. */
#ifndef DS_FUZZ_FRAMES_H
#define DS_FUZZ_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#include "dstream/codec.h"
#include "dstream/crc32c.h"

static void fuzz_put_le32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

/* Seal every whole frame of p[0..len) with its right CRC. */
static void fuzz_fix_crcs(unsigned char *p, size_t len) {
  size_t pos = 0;
  while (len - pos >= DS_FRAME_HEADER_LEN) {
    ds_frame_t f;
    uint32_t crc;
    if (ds_frame_header(&f, p + pos, len - pos, NULL, 0) != 0 || f.size > len - pos)
      return;
    crc = ds_crc32c(0, p + pos, 12);
    crc = ds_crc32c(crc, p + pos + DS_FRAME_HEADER_LEN, f.payload_len);
    fuzz_put_le32(p + pos + 12, crc);
    pos += f.size;
  }
}

#endif

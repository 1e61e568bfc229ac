/* The record codec: dstream's one binary format.
 *
 * The WAL, checkpoints, state snapshots, window buffers and object files all
 * hold records in this form, and keyed state stores compare and hash keys by
 * their encoded bytes. This comment is the format's specification.
 *
 * VALUES are nil-free Lua values: booleans, numbers, strings, arrays, maps.
 * Each value is one tag byte followed by its body:
 *
 *   tag   name    body
 *   0x01  FALSE   -
 *   0x02  TRUE    -
 *   0x03  INT     zigzag varint of an int64 (see below)
 *   0x04  DOUBLE  8 bytes, IEEE 754 binary64, little-endian
 *   0x05  STR     varint byte length, then the bytes (any bytes, NUL too)
 *   0x06  ARRAY   varint element count, then the elements
 *   0x07  MAP     varint entry count, then key, value, key, value, ...
 *
 * Every other tag byte (0x00 included, so zero-filled garbage never parses)
 * is malformed. A varint is unsigned LEB128: 7 bits per byte, low groups
 * first, high bit set on every byte but the last; at most 10 bytes, and it
 * must be minimal (no trailing 0x00 group). Zigzag maps int64 n to uint64
 * (n << 1) ^ (n >> 63), so small magnitudes of either sign stay short.
 *
 * Map keys are scalars: FALSE, TRUE, INT, DOUBLE (not NaN) or STR. Nesting
 * is limited to DS_CODEC_MAX_DEPTH containers (an array is depth 1, an array
 * inside it depth 2, ...).
 *
 * NUMBERS: a number that is integral and representable as an int64
 * (-2^63 <= x < 2^63, not -0.0) is written as INT, any other (fractions,
 * -0.0, +-inf, NaN, |x| >= 2^63) as DOUBLE. Readers hand INT back as an
 * int64 exactly; Lua gets it as a double (exact up to 2^53, and exact for
 * every INT that Lua itself wrote).
 *
 * CANONICAL FORM: writers that use ds_codec_put_number() for numbers and
 * ds_codec_sort_map() for maps (as the Lua glue does) write each value in
 * exactly one way: equal values give equal bytes, so encoded keys can be
 * hashed and compared as bytes. Map entries are sorted by their keys'
 * encoded bytes (memcmp order, a prefix first). ds_codec_put_double() always
 * writes DOUBLE, even for 3.0: fine for data, not canonical for keys.
 * Readers accept any entry order.
 *
 * FRAMES carry records: the WAL appends frames, a file holds frames back to
 * back. A frame is a 16-byte header and a payload:
 *
 *   offset  size  field
 *   0       2     magic "DS" (0x44 0x53)
 *   2       1     version, DS_FRAME_VERSION (1)
 *   3       1     flags: bit 0 DS_FRAME_PAIRS; other bits must be 0
 *   4       4     record count, uint32 little-endian
 *   8       4     payload length in bytes, uint32 little-endian
 *   12      4     CRC-32C of header bytes 0..11 followed by the payload
 *   16      n     payload: the records, back to back
 *
 * A record is one value, or, in a frame flagged DS_FRAME_PAIRS, two values
 * (the key, then the value) - pair streams keep their records as two arrays,
 * not as a value per pair. The payload holds exactly `count` records: no
 * byte more, no byte less.
 *
 * READING: ds_frame_open() checks the whole frame before anything is read -
 * header, length, checksum, then every value's structure - so a caller can
 * build its result knowing it will not fail half way. ds_codec_read() then
 * steps through values one item at a time: a scalar, or a container's count
 * followed (by further reads) by its elements. Every read is bounds-checked,
 * so arbitrary bytes never make a reader look outside its input; a count is
 * refused if the bytes left could not hold that many values.
 *
 * ERRORS: DS_ETRUNCATED (the input ends before the frame or value does),
 * DS_ECORRUPT (malformed bytes), DS_ECHECKSUM (CRC mismatch), DS_EVERSION
 * (a version this reader does not know). Where an errbuf is passed it gets
 * what went wrong and at which byte offset; offsets count from the start of
 * the frame for frame payloads, from the start of the input otherwise.
 *
 * COSTS: encoding and checking are linear in bytes, allocation-free except
 * for buffer growth (and, for maps of more than 16 entries, one index array
 * while sorting). An encoded short string costs its length plus 2 bytes.
 */
#ifndef DSTREAM_CODEC_H
#define DSTREAM_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define DS_CODEC_MAX_DEPTH 64
#define DS_FRAME_VERSION 1
#define DS_FRAME_HEADER_LEN 16
#define DS_FRAME_PAIRS 0x01

typedef enum {
  DS_CODEC_FALSE = 0x01,
  DS_CODEC_TRUE = 0x02,
  DS_CODEC_INT = 0x03,
  DS_CODEC_DOUBLE = 0x04,
  DS_CODEC_STR = 0x05,
  DS_CODEC_ARRAY = 0x06,
  DS_CODEC_MAP = 0x07
} ds_codec_tag_t;

/* A growable byte buffer, owned by the caller; data is NULL until the first
 * growth. `len` bytes of `cap` are in use. */
typedef struct {
  char *data;
  size_t len;
  size_t cap;
} ds_buf_t;

/* One item read by ds_codec_read(). */
typedef struct {
  ds_codec_tag_t tag;
  union {
    int64_t i;        /* INT */
    double d;         /* DOUBLE */
    struct {
      const char *ptr; /* borrowed from the input */
      size_t len;
    } str;            /* STR */
    size_t count;     /* ARRAY: elements; MAP: entries (key-value pairs) */
  } u;
} ds_codec_value_t;

/* A read position in encoded values; borrows its input. `base` is the offset
 * of data[0] within whatever error messages should count from. */
typedef struct {
  const unsigned char *data;
  size_t len;
  size_t pos;
  size_t base;
} ds_cursor_t;

/* A checked frame; payload is borrowed from the input given to open. */
typedef struct {
  unsigned version;
  unsigned flags;      /* DS_FRAME_PAIRS or 0 */
  uint32_t count;      /* records (pairs count once) */
  const char *payload; /* NULL from ds_frame_header() */
  size_t payload_len;
  size_t size;         /* header plus payload: the next frame starts here */
} ds_frame_t;

/* --- buffers ----------------------------------------------------------- */

/* Start an empty buffer; allocates nothing. */
void ds_buf_init(ds_buf_t *b);
/* Free the buffer's memory and leave it empty, ready for reuse. */
void ds_buf_close(ds_buf_t *b);
/* Make room for `extra` more bytes; DS_ENOMEM leaves the buffer as it was. */
int ds_buf_reserve(ds_buf_t *b, size_t extra);
/* Append n bytes (copied); DS_ENOMEM leaves the buffer as it was. */
int ds_buf_append(ds_buf_t *b, const void *p, size_t n);
/* Drop everything after the first len bytes (len <= b->len); keeps memory. */
void ds_buf_truncate(ds_buf_t *b, size_t len);

/* --- writing values ------------------------------------------------------
 * Each appends one item to b and returns 0, or DS_ENOMEM with b unchanged.
 * Containers are written as a header followed by their elements (a map's
 * by key, value, key, value...). */

int ds_codec_put_bool(ds_buf_t *b, int v);
int ds_codec_put_int(ds_buf_t *b, int64_t v);
/* Always a DOUBLE, even for integral v; see ds_codec_put_number(). */
int ds_codec_put_double(ds_buf_t *b, double v);
/* INT when v is integral and fits an int64 (not -0.0), else DOUBLE. */
int ds_codec_put_number(ds_buf_t *b, double v);
/* A string of len bytes of s (copied). */
int ds_codec_put_str(ds_buf_t *b, const void *s, size_t len);
int ds_codec_put_array(ds_buf_t *b, size_t count);
int ds_codec_put_map(ds_buf_t *b, size_t count);
/* Put the entries of the map whose header ds_codec_put_map() wrote at byte
 * map_off of b into canonical order; the map must end at b->len. 0, or
 * DS_ENOMEM / DS_ECORRUPT (the bytes there are not one map) with b
 * unchanged. */
int ds_codec_sort_map(ds_buf_t *b, size_t map_off);

/* --- writing frames ---------------------------------------------------- */

/* Append a frame header to be filled in by ds_frame_end(); *start gets its
 * offset in b. flags: 0 or DS_FRAME_PAIRS. 0 or DS_ENOMEM (b unchanged). */
int ds_frame_begin(ds_buf_t *b, unsigned flags, size_t *start);
/* Seal the frame begun at start: everything after its header is its payload
 * of count records (not checked). Fills count, length and CRC. 0, or
 * DS_ERANGE if count or the payload exceeds 2^32-1 (b unchanged). */
int ds_frame_end(ds_buf_t *b, size_t start, size_t count);

/* --- reading ----------------------------------------------------------- */

/* Parse and check a frame's header only (magic, version, flags) from the
 * first len bytes of data, which may be shorter than the frame: fills f
 * except payload, so a caller can learn f->size before reading the rest.
 * DS_ETRUNCATED if fewer than DS_FRAME_HEADER_LEN bytes, DS_ECORRUPT,
 * DS_EVERSION. errbuf (may be NULL) gets the detail. */
int ds_frame_header(ds_frame_t *f, const void *data, size_t len, char *errbuf,
                    size_t errlen);
/* Check the frame at the start of data (len bytes, the frame may be followed
 * by more): header, length, CRC and the structure of all its records. On 0,
 * f->payload borrows from data. DS_ETRUNCATED, DS_ECORRUPT, DS_ECHECKSUM,
 * DS_EVERSION; errbuf (may be NULL) gets what and at which offset. */
int ds_frame_open(ds_frame_t *f, const void *data, size_t len, char *errbuf,
                  size_t errlen);

/* A cursor over len bytes of data (borrowed); offsets count from 0. */
void ds_cursor_init(ds_cursor_t *c, const void *data, size_t len);
/* A cursor over an opened frame's payload; offsets count from the frame. */
void ds_cursor_init_frame(ds_cursor_t *c, const ds_frame_t *f);
/* Read one item (a scalar, or a container's count) and advance past it.
 * 0, or DS_ETRUNCATED / DS_ECORRUPT with the cursor unchanged. */
int ds_codec_read(ds_cursor_t *c, ds_codec_value_t *v, char *errbuf,
                  size_t errlen);
/* Advance past one whole value, checking its structure and depth. */
int ds_codec_skip(ds_cursor_t *c, char *errbuf, size_t errlen);
/* Like ds_codec_skip(), and set *p, *len to the exact bytes of the value
 * skipped (borrowed from the cursor's input). */
int ds_codec_span(ds_cursor_t *c, const char **p, size_t *len, char *errbuf,
                  size_t errlen);
/* Check that data holds exactly one well-formed value and nothing more. */
int ds_codec_check(const void *data, size_t len, char *errbuf, size_t errlen);

#endif

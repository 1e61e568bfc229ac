/* Error codes of the dstream engine.
 *
 * Every fallible function returns 0 (or a count) on success and one of the
 * negative DS_E* codes below on failure, and changes nothing when it fails.
 * The codes come from one list, DS_ERRNO_MAP, so that the enum, the names
 * and the messages can never drift apart. The core never prints: callers
 * turn a code into text with ds_strerror() / ds_err_name().
 */
#ifndef DSTREAM_ERROR_H
#define DSTREAM_ERROR_H

#define DS_ERRNO_MAP(XX)                                                     \
  XX(NOMEM, -1, "out of memory")                                             \
  XX(INVAL, -2, "invalid argument")                                          \
  XX(RANGE, -3, "value out of range")                                        \
  XX(TYPE, -4, "value of a type the codec cannot hold")                      \
  XX(DEPTH, -5, "value nested too deeply")                                   \
  XX(CORRUPT, -6, "malformed data")                                          \
  XX(CHECKSUM, -7, "checksum mismatch")                                      \
  XX(VERSION, -8, "unsupported format version")                              \
  XX(TRUNCATED, -9, "data ends before its frame does")                       \
  XX(IO, -10, "input/output error")                                          \
  XX(NOENT, -11, "no such file or directory")                                \
  XX(ACCES, -12, "permission denied")                                        \
  XX(EXIST, -13, "already exists")                                           \
  XX(CONNREFUSED, -14, "connection refused")                                 \
  XX(CONNRESET, -15, "connection reset by peer")                             \
  XX(TOOLONG, -16, "line longer than the limit")                             \
  XX(CLOSED, -17, "handle is closed")                                        \
  XX(STATE, -18, "operation not allowed in this state")                      \
  XX(NOOUTPUT, -19, "graph has no output operation")                         \
  XX(NOTMULTIPLE, -20, "duration is not a multiple of the batch interval")   \
  XX(NET, -21, "network error")                                              \
  XX(RESOLVE, -22, "host name not resolved")                                \
  XX(EOF, -23, "connection closed by the peer")

typedef enum {
#define XX(name, code, msg) DS_E##name = code,
  DS_ERRNO_MAP(XX)
#undef XX
} ds_errno_t;

/* Human-readable message for a DS_E* code; a static string, never NULL. */
const char *ds_strerror(int err);

/* Symbolic name ("EINVAL") for a DS_E* code; a static string, never NULL. */
const char *ds_err_name(int err);

#endif

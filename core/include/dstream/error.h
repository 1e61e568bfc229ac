/* Error codes of the dstream engine.
 *
 * Every fallible function returns 0 (or a count) on success and one of the
 * negative DS_E* codes below on failure, and changes nothing when it fails.
 * The codes come from one list, DS_ERRNO_MAP, so that the enum, the names
 * and the messages can never drift apart. The core never prints: callers
 * turn a code into text with ds_strerror() / ds_err_name().
 *
 * WHY THEY START AT -30001: a DS_E* code can never be mistaken for a
 * negated errno value (Linux's go up to 133) or a libuv error (libuv's
 * UV_E* codes are -errno or, for its own, -3000 to -4095). So a function
 * that meets a system or libuv error must map it (fs.c's ds__fs_fail(),
 * socket.c's connection errors) and can never leak one as if it were a
 * DS_E* code: ds_err_name() of an unmapped -errno says "EUNKNOWN". (Inside
 * fs.c an errno travels positive, a DS_E* code negative, until
 * ds__fs_fail() maps the first at the public boundary.) Codes
 * are compared by name only (err == DS_ENOMEM), never by range, but all
 * lie in (DS_ERR_MIN, 0) - DS_ERR_MIN is -31000, a bound tests check.
 */
#ifndef DSTREAM_ERROR_H
#define DSTREAM_ERROR_H

#define DS_ERRNO_MAP(XX)                                                     \
  XX(NOMEM, -30001, "out of memory")                                         \
  XX(INVAL, -30002, "invalid argument")                                      \
  XX(RANGE, -30003, "value out of range")                                    \
  XX(TYPE, -30004, "value of a type the codec cannot hold")                  \
  XX(DEPTH, -30005, "value nested too deeply")                               \
  XX(CORRUPT, -30006, "malformed data")                                      \
  XX(CHECKSUM, -30007, "checksum mismatch")                                  \
  XX(VERSION, -30008, "unsupported format version")                          \
  XX(TRUNCATED, -30009, "data ends before its frame does")                   \
  XX(IO, -30010, "input/output error")                                       \
  XX(NOENT, -30011, "no such file or directory")                             \
  XX(ACCES, -30012, "permission denied")                                     \
  XX(EXIST, -30013, "already exists")                                        \
  XX(CONNREFUSED, -30014, "connection refused")                              \
  XX(CONNRESET, -30015, "connection reset by peer")                          \
  XX(TOOLONG, -30016, "line longer than the limit")                          \
  XX(CLOSED, -30017, "handle is closed")                                     \
  XX(STATE, -30018, "operation not allowed in this state")                   \
  XX(NOOUTPUT, -30019, "graph has no output operation")                      \
  XX(NOTMULTIPLE, -30020, "duration is not a multiple of the batch interval") \
  XX(NET, -30021, "network error")                                           \
  XX(RESOLVE, -30022, "host name not resolved")                              \
  XX(EOF, -30023, "connection closed by the peer")

#define DS_ERR_MIN (-31000)

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

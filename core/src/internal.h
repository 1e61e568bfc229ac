/* Internal names shared across the engine's files (ds__<noun>_<verb>).
 *
 * ERROR DETAIL: where a DS_E* code is not enough (a codec frame, a snapshot
 * offset, a file's path) a fallible function takes a caller's buffer and
 * fills it with what failed and where. ds__error_fill() is the one way to
 * do that, so every such text is cut to the buffer the same way (always
 * NUL-terminated, a NULL buffer or a zero length allowed) and returns the
 * code to return, so a failure is one line: `return ds__error_fill(...)`.
 */
#ifndef DS_INTERNAL_H
#define DS_INTERNAL_H

#include <stddef.h>

#if defined(__GNUC__)
#define DS__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define DS__PRINTF(f, a)
#endif

/* Write the printf-formatted detail into errbuf (errlen bytes, NULL
 * allowed) and return err. */
int ds__error_fill(char *errbuf, size_t errlen, int err, const char *fmt, ...)
    DS__PRINTF(4, 5);

/* err_no (a positive errno value) as a DS_E* code, with errbuf (NULL
 * allowed) given path, then " -> to" when to is not NULL, then the
 * system's reason when the code is DS_EIO (defined in fs.c, used by
 * fs.c and dirscan.c). */
int ds__fs_fail(int err_no, const char *path, const char *to, char *errbuf,
                size_t errlen);

#endif

/* Shared by the file-system files (fs.c, dirscan.c): one way to turn an
 * errno into a DS_E* code and an error text that names the path. */
#ifndef DS_FS_INTERNAL_H
#define DS_FS_INTERNAL_H

#include <stddef.h>

/* err_no as a DS_E* code; errbuf (NULL allowed) gets path, then " -> to"
 * when to is not NULL, then the system's reason for DS_EIO. */
int ds__fs_fail(int err_no, const char *path, const char *to, char *errbuf, size_t errlen);

#endif

/* Error names and messages, generated from DS_ERRNO_MAP so they cannot drift
 * from the codes themselves; and the one formatter of error details. */
#include <stdarg.h>
#include <stdio.h>

#include "dstream/error.h"
#include "internal.h"

const char *ds_strerror(int err) {
  switch (err) {
#define XX(name, code, msg) case code: return msg;
    DS_ERRNO_MAP(XX)
#undef XX
  }
  return "unknown error";
}

const char *ds_err_name(int err) {
  switch (err) {
#define XX(name, code, msg) case code: return "E" #name;
    DS_ERRNO_MAP(XX)
#undef XX
  }
  return "EUNKNOWN";
}

int ds__error_fill(char *errbuf, size_t errlen, int err, const char *fmt, ...) {
  if (errbuf != NULL && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
  }
  return err;
}

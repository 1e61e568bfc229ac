/* Error names and messages, generated from DS_ERRNO_MAP so they cannot drift
 * from the codes themselves. */
#include "dstream/error.h"

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

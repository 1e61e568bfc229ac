/* Every error code has a name and a message. */
#include "dstream/error.h"
#include "harness.h"

int main(void) {
  ds_test_begin();
#define XX(name, code, msg)                                                  \
  CHECK_EQ_STR(ds_err_name(code), "E" #name);                                \
  CHECK_EQ_STR(ds_strerror(code), msg);
  DS_ERRNO_MAP(XX)
#undef XX
  CHECK_EQ_STR(ds_err_name(12345), "EUNKNOWN");
  CHECK_EQ_STR(ds_strerror(0), "unknown error");
  return ds_test_end("test_error");
}

/* Every error code has a name and a message, none can be taken for -errno,
 * and the one error-detail formatter fills the caller's buffer. */
#include <errno.h>

#include "dstream/error.h"
#include "harness.h"
#include "internal.h"

/* No DS_E* code is a negated errno value or a libuv code (-1..-4095), and
 * all lie above DS_ERR_MIN. */
static void test_codes_apart_from_errno(void) {
  int e;
#define XX(name, code, msg) CHECK(code < -4095 && code > DS_ERR_MIN);
  DS_ERRNO_MAP(XX)
#undef XX
  for (e = 1; e <= 4095; e++)
    CHECK(strcmp(ds_err_name(-e), "EUNKNOWN") == 0);
  CHECK_EQ_STR(ds_strerror(-ENOMEM), "unknown error");
}

static void test_error_fill(void) {
  char buf[16], small[6];
  memset(small, 'x', sizeof small);
  CHECK_EQ_INT(ds__error_fill(buf, sizeof buf, DS_ECORRUPT, "at offset %d", 12), DS_ECORRUPT);
  CHECK_EQ_STR(buf, "at offset 12");
  /* cut to the buffer, always terminated */
  CHECK_EQ_INT(ds__error_fill(small, sizeof small, DS_EIO, "%s", "truncated"), DS_EIO);
  CHECK_EQ_STR(small, "trunc");
  /* no buffer, or no room: only the code */
  CHECK_EQ_INT(ds__error_fill(NULL, 0, DS_ENOMEM, "%s", "ignored"), DS_ENOMEM);
  buf[0] = '!';
  CHECK_EQ_INT(ds__error_fill(buf, 0, DS_EINVAL, "%s", "ignored"), DS_EINVAL);
  CHECK(buf[0] == '!');
}

int main(void) {
  ds_test_begin();
#define XX(name, code, msg)                                                  \
  CHECK_EQ_STR(ds_err_name(code), "E" #name);                                \
  CHECK_EQ_STR(ds_strerror(code), msg);
  DS_ERRNO_MAP(XX)
#undef XX
  CHECK_EQ_STR(ds_err_name(12345), "EUNKNOWN");
  CHECK_EQ_STR(ds_strerror(0), "unknown error");
  test_codes_apart_from_errno();
  test_error_fill();
  return ds_test_end("test_error");
}

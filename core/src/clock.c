/* Clocks: the wall clock through libuv, or a manual clock that only moves
 * forward when told to. */
#include <uv.h>

#include "dstream/clock.h"
#include "dstream/error.h"

void ds_clock_init(ds_clock_t *c, int manual) {
  c->manual = manual;
  c->manual_ms = 0;
}

int64_t ds_clock_now(const ds_clock_t *c) {
  uv_timeval64_t tv;
  if (c->manual)
    return c->manual_ms;
  if (uv_gettimeofday(&tv) != 0)
    return 0;
  return tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int64_t ds_clock_now_us(const ds_clock_t *c) {
  uv_timeval64_t tv;
  if (c->manual)
    return c->manual_ms * 1000;
  if (uv_gettimeofday(&tv) != 0)
    return 0;
  return tv.tv_sec * 1000000 + tv.tv_usec;
}

int ds_clock_set(ds_clock_t *c, int64_t ms) {
  if (!c->manual)
    return DS_ESTATE;
  if (ms < c->manual_ms)
    return DS_ERANGE;
  c->manual_ms = ms;
  return 0;
}

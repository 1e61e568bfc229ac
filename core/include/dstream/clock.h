/* Clocks: where batch times come from.
 *
 * A system clock reads the wall clock in milliseconds since the Unix epoch; a
 * manual clock stands still until ds_clock_set() moves it, which is what makes
 * every spec deterministic: time moves only when the test says so.
 */
#ifndef DSTREAM_CLOCK_H
#define DSTREAM_CLOCK_H

#include <stdint.h>

typedef struct {
  int manual;
  int64_t manual_ms;
} ds_clock_t;

/* A system clock (manual = 0) or a manual clock standing at 0 ms. */
void ds_clock_init(ds_clock_t *c, int manual);
/* The time in ms: since the epoch (system) or since the zero time (manual). */
int64_t ds_clock_now(const ds_clock_t *c);
/* The same time in µs: what a millisecond batch waits for is a fraction
 * of a millisecond, so waits are measured finer than batch times. */
int64_t ds_clock_now_us(const ds_clock_t *c);
/* Move a manual clock to ms; DS_ESTATE on a system clock, DS_ERANGE backwards. */
int ds_clock_set(ds_clock_t *c, int64_t ms);

#endif

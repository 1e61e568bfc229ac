/* Rate control: see dstream/rate.h.
 *
 * WHY THE BUCKET STARTS EMPTY: a full bucket would let a receiver take a
 * whole burst the moment it starts, on top of what accrues during the first
 * interval; starting empty keeps the first batch at rate * interval. */
#include <math.h>

#include "dstream/rate.h"

static double burst_tokens(const ds_rate_t *r) {
  double b = r->rate * (double)r->burst_ms / 1000.0;
  return b < 1.0 ? 1.0 : b;
}

static void refill(ds_rate_t *r, uint64_t now_ms) {
  double cap;
  if (now_ms > r->last_ms && r->rate > 0)
    r->tokens += r->rate * (double)(now_ms - r->last_ms) / 1000.0;
  if (now_ms > r->last_ms)
    r->last_ms = now_ms;
  cap = burst_tokens(r);
  if (r->tokens > cap)
    r->tokens = cap;
}

void ds_rate_init(ds_rate_t *r, double rate, uint64_t burst_ms, uint64_t now_ms) {
  r->rate = rate > 0 ? rate : 0;
  r->tokens = 0;
  r->burst_ms = burst_ms > 0 ? burst_ms : 1000;
  r->last_ms = now_ms;
}

void ds_rate_set(ds_rate_t *r, double rate, uint64_t now_ms) {
  refill(r, now_ms);
  r->rate = rate > 0 ? rate : 0;
  if (r->tokens > burst_tokens(r))
    r->tokens = burst_tokens(r);
}

uint64_t ds_rate_available(ds_rate_t *r, uint64_t now_ms) {
  if (r->rate <= 0)
    return UINT64_MAX;
  refill(r, now_ms);
  return (uint64_t)floor(r->tokens);
}

void ds_rate_spend(ds_rate_t *r, uint64_t n) {
  if (r->rate <= 0)
    return;
  r->tokens -= (double)n;
  if (r->tokens < 0)
    r->tokens = 0;
}

uint64_t ds_rate_wait_ms(const ds_rate_t *r) {
  if (r->rate <= 0 || r->tokens >= 1.0)
    return 0;
  return (uint64_t)ceil((1.0 - r->tokens) * 1000.0 / r->rate);
}

void ds_pid_init(ds_pid_t *p, uint64_t batch_ms) {
  p->proportional = 1.0;
  p->integral = 0.2;
  p->derivative = 0.0;
  p->min_rate = 100.0;
  p->batch_ms = batch_ms > 0 ? batch_ms : 1;
  p->latest_time = -1;
  p->latest_rate = -1;
  p->latest_error = -1;
  p->first_run = 1;
  p->updates = 0;
}

int ds_pid_compute(ds_pid_t *p, int64_t time_ms, uint64_t num_records, int64_t processing_ms,
                   int64_t scheduling_ms, double *rate) {
  double since, processing_rate, error, historical, d_error, new_rate;
  if (time_ms <= p->latest_time || num_records == 0 || processing_ms <= 0)
    return 0;
  since = p->latest_time < 0 ? 1.0 : (double)(time_ms - p->latest_time) / 1000.0;
  processing_rate = (double)num_records / (double)processing_ms * 1000.0;
  error = p->latest_rate - processing_rate;
  historical = (double)(scheduling_ms > 0 ? scheduling_ms : 0) * processing_rate / (double)p->batch_ms;
  d_error = (error - p->latest_error) / since;
  new_rate = p->latest_rate - p->proportional * error - p->integral * historical -
             p->derivative * d_error;
  if (new_rate < p->min_rate)
    new_rate = p->min_rate;
  p->latest_time = time_ms;
  if (p->first_run) {
    p->latest_rate = processing_rate;
    p->latest_error = 0;
    p->first_run = 0;
    return 0;
  }
  p->latest_rate = new_rate;
  p->latest_error = error;
  p->updates++;
  *rate = new_rate;
  return 1;
}

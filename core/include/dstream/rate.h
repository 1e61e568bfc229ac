/* Rate control of receivers: a token bucket that caps the records a
 * receiver accepts per second, and Spark's PID rate estimator that sets
 * that cap from how fast the batches are processed (backpressure).
 *
 * TOKEN BUCKET: tokens accrue at `rate` per second of the caller's clock
 * (ms), up to `burst_ms` worth (at least one token); a receiver accepts one
 * record per token. Starting empty, it never grants more than
 * rate * elapsed + one burst over any span, so the first batch is capped
 * too. A rate of 0 means unlimited: everything is granted.
 *
 * PID ESTIMATOR: Spark's PIDRateEstimator (1.5+), same formula and
 * defaults (proportional 1.0, integral 0.2, derivative 0, minimum rate
 * 100/s). After each completed batch at time t (ms) with n records,
 * processing delay p and scheduling delay d (ms):
 *   processingRate  = n / p * 1000
 *   error           = latestRate - processingRate
 *   historicalError = d * processingRate / batchInterval
 *   dError          = (error - latestError) / (t - latestTime) * 1000
 *   newRate = max(minRate, latestRate - P*error - I*historicalError - D*dError)
 * A batch with no records, a zero processing delay or a time not after the
 * last update changes nothing. The first such batch only sets latestRate to
 * its processing rate (no estimate yet), as in Spark.
 *
 * COSTS: plain structs, no allocation.
 */
#ifndef DSTREAM_RATE_H
#define DSTREAM_RATE_H

#include <stdint.h>

typedef struct {
  double rate;                  /* records/s; 0: unlimited */
  double tokens;                /* may be fractional */
  uint64_t burst_ms;            /* tokens kept at most: burst_ms of rate */
  uint64_t last_ms;             /* the clock at the last refill */
} ds_rate_t;

typedef struct {
  double proportional;          /* 1.0 */
  double integral;              /* 0.2 */
  double derivative;            /* 0.0 */
  double min_rate;              /* 100 records/s */
  uint64_t batch_ms;            /* the batch interval */
  int64_t latest_time;          /* -1 before the first update */
  double latest_rate;
  double latest_error;
  int first_run;
  uint64_t updates;             /* estimates made */
} ds_pid_t;

/* An empty bucket at now_ms; rate 0 is unlimited, burst_ms 0 means 1000. */
void ds_rate_init(ds_rate_t *r, double rate, uint64_t burst_ms, uint64_t now_ms);
/* Change the rate from now_ms on (tokens accrued so far at the old rate are
 * kept, up to the new burst). */
void ds_rate_set(ds_rate_t *r, double rate, uint64_t now_ms);
/* Whole tokens available at now_ms (refilling first); UINT64_MAX when
 * unlimited. */
uint64_t ds_rate_available(ds_rate_t *r, uint64_t now_ms);
/* Spend n tokens (records accepted); never below zero. */
void ds_rate_spend(ds_rate_t *r, uint64_t n);
/* ms until at least one whole token is available (0: now or unlimited). */
uint64_t ds_rate_wait_ms(const ds_rate_t *r);

/* Spark's defaults for a batch interval of batch_ms (> 0). */
void ds_pid_init(ds_pid_t *p, uint64_t batch_ms);
/* Feed one completed batch; returns 1 and sets *rate when there is a new
 * estimate, else 0. */
int ds_pid_compute(ds_pid_t *p, int64_t time_ms, uint64_t num_records, int64_t processing_ms,
                   int64_t scheduling_ms, double *rate);

#endif

/* The token bucket and Spark's PID estimator, on explicit times: the bucket
 * never grants more than rate * elapsed + one burst, and the estimator
 * follows Spark's formula and settles on a steady load without
 * oscillating. */
#include <math.h>
#include <stdint.h>

#include "dstream/rate.h"
#include "harness.h"

static void test_bucket_starts_empty_and_refills_at_its_rate(void) {
  ds_rate_t r;
  ds_rate_init(&r, 100, 1000, 5000);
  CHECK_EQ_INT(ds_rate_available(&r, 5000), 0);
  CHECK_EQ_INT(ds_rate_wait_ms(&r), 10);
  CHECK_EQ_INT(ds_rate_available(&r, 5500), 50);
  ds_rate_spend(&r, 50);
  CHECK_EQ_INT(ds_rate_available(&r, 5500), 0);
  CHECK_EQ_INT(ds_rate_available(&r, 5510), 1);
  /* a long pause fills it up to one burst (1000 ms of rate), no more */
  CHECK_EQ_INT(ds_rate_available(&r, 60000), 100);
  ds_rate_spend(&r, 1000); /* spending more than there is stops at zero */
  CHECK_EQ_INT(ds_rate_available(&r, 60000), 0);
  /* a clock going back grants nothing */
  CHECK_EQ_INT(ds_rate_available(&r, 59000), 0);
}

static void test_bucket_holds_its_rate_over_time(void) {
  ds_rate_t r;
  uint64_t t, got = 0;
  ds_rate_init(&r, 250, 200, 0);
  for (t = 0; t <= 10000; t += 7) { /* a greedy taker polling every 7 ms */
    uint64_t n = ds_rate_available(&r, t);
    ds_rate_spend(&r, n);
    got += n;
  }
  CHECK(got <= 250 * 10);
  CHECK(got >= 250 * 10 - 2);
}

static void test_bucket_rate_changes_and_unlimited(void) {
  ds_rate_t r;
  ds_rate_init(&r, 0, 1000, 0);
  CHECK(ds_rate_available(&r, 0) == UINT64_MAX);
  CHECK_EQ_INT(ds_rate_wait_ms(&r), 0);
  ds_rate_spend(&r, 5);
  CHECK(ds_rate_available(&r, 10) == UINT64_MAX);
  ds_rate_set(&r, 1000, 10);
  CHECK_EQ_INT(ds_rate_available(&r, 10), 0);
  CHECK_EQ_INT(ds_rate_available(&r, 110), 100);
  /* lowering the rate keeps at most the new burst */
  ds_rate_set(&r, 10, 110);
  CHECK_EQ_INT(ds_rate_available(&r, 110), 10);
  /* a burst below one record still lets one through */
  ds_rate_init(&r, 0.5, 100, 0);
  CHECK_EQ_INT(ds_rate_available(&r, 1000), 0);
  CHECK_EQ_INT(ds_rate_available(&r, 3000), 1);
}

static void test_pid_follows_sparks_formula(void) {
  ds_pid_t p;
  double rate = -1;
  ds_pid_init(&p, 1000);
  CHECK(p.proportional == 1.0 && p.integral == 0.2 && p.derivative == 0.0 && p.min_rate == 100.0);
  /* the first batch only measures: 1000 records in 500 ms = 2000/s */
  CHECK_EQ_INT(ds_pid_compute(&p, 1000, 1000, 500, 0, &rate), 0);
  CHECK(rate == -1);
  CHECK(p.latest_rate == 2000.0);
  /* 3000 records in 1000 ms after waiting 500 ms: processing rate 3000,
   * error -1000, historical error 500 * 3000 / 1000 = 1500:
   * 2000 + 1000 - 0.2 * 1500 = 2700 */
  CHECK_EQ_INT(ds_pid_compute(&p, 2000, 3000, 1000, 500, &rate), 1);
  CHECK(fabs(rate - 2700.0) < 1e-9);
  /* nothing to learn from: no records, no processing time, an old time */
  CHECK_EQ_INT(ds_pid_compute(&p, 3000, 0, 1000, 0, &rate), 0);
  CHECK_EQ_INT(ds_pid_compute(&p, 3000, 10, 0, 0, &rate), 0);
  CHECK_EQ_INT(ds_pid_compute(&p, 2000, 10, 10, 0, &rate), 0);
  /* a huge backlog drives it down to the minimum rate, not below */
  CHECK_EQ_INT(ds_pid_compute(&p, 4000, 1000, 1000, 100000, &rate), 1);
  CHECK(rate == 100.0);
  CHECK_EQ_INT(p.updates, 2);
}

/* A single-threaded pipeline fed by an endless producer through a bucket at
 * the estimator's rate: a batch costs fixed_ms + per_record_ms each, starts
 * when it is due or when the one before ends, and holds what the bucket let
 * in since the batch before started. */
static void simulate(double fixed_ms, double per_record_ms, uint64_t batch_ms, int batches,
                     double *rates, double *sched) {
  ds_pid_t p;
  ds_rate_t bucket;
  double end = 0, rate = 1000; /* the default first-batch cap */
  uint64_t last_start = 0;
  int k;
  ds_pid_init(&p, batch_ms);
  ds_rate_init(&bucket, rate, batch_ms, 0);
  for (k = 1; k <= batches; k++) {
    double due = (double)(k * batch_ms), start = end > due ? end : due, proc, est;
    uint64_t n = ds_rate_available(&bucket, (uint64_t)start);
    ds_rate_spend(&bucket, n);
    last_start = (uint64_t)start;
    proc = fixed_ms + per_record_ms * (double)n;
    end = start + proc;
    sched[k - 1] = start - due;
    if (ds_pid_compute(&p, (int64_t)end, n, (int64_t)ceil(proc), (int64_t)(start - due), &est)) {
      rate = est;
      ds_rate_set(&bucket, rate, (uint64_t)end);
    }
    rates[k - 1] = rate;
  }
  (void)last_start;
}

static void test_pid_settles_without_oscillating(void) {
  double rates[60], sched[60];
  /* 50 ms a batch plus 0.5 ms a record at 1 s batches: 1900 records/s
   * fill a batch exactly */
  double target = (1000.0 - 50.0) / 0.5;
  int k, turns = 0;
  simulate(50, 0.5, 1000, 60, rates, sched);
  for (k = 2; k < 60; k++)
    if ((rates[k] - rates[k - 1]) * (rates[k - 1] - rates[k - 2]) < -1e-6 &&
        fabs(rates[k] - rates[k - 1]) > 0.01 * target)
      turns++;
  CHECK_EQ_INT(turns, 0);
  CHECK(fabs(rates[59] - target) < 0.05 * target);
  for (k = 10; k < 60; k++)
    CHECK(sched[k] < 1000);
}

int main(void) {
  ds_test_begin();
  test_bucket_starts_empty_and_refills_at_its_rate();
  test_bucket_holds_its_rate_over_time();
  test_bucket_rate_changes_and_unlimited();
  test_pid_follows_sparks_formula();
  test_pid_settles_without_oscillating();
  return ds_test_end("test_rate");
}

/* The batch scheduler: which batch times fall due, and what happened to each.
 *
 * Batch times are multiples of the batch interval from the zero time. Every
 * batch time after the start falls due exactly once and in order, however
 * late the caller asks: a batch that runs late shows as scheduling delay,
 * never as a skipped batch.
 *
 * Each batch has a ds_batch_info_t recording its submission, processing start
 * and end; the most recent DS_SCHED_HISTORY of them are kept in a ring (for
 * listeners and, later, the status page), indexed by batch time.
 *
 * COSTS: O(1) per batch; memory fixed at start.
 */
#ifndef DSTREAM_SCHEDULER_H
#define DSTREAM_SCHEDULER_H

#include <stdint.h>

#define DS_SCHED_HISTORY 1024

typedef struct {
  int64_t batch_time;        /* ms */
  int64_t num_records;       /* records the sources gave the batch */
  int64_t submission_time;   /* ms; -1 until submitted */
  int64_t processing_start;  /* ms; -1 until started */
  int64_t processing_end;    /* ms; -1 until completed */
  int failed;                /* 1 if a job of the batch raised */
} ds_batch_info_t;

typedef struct {
  int64_t interval_ms;
  int64_t next_ms;           /* the next batch time to fall due */
  int64_t generated;         /* batches fallen due so far */
  ds_batch_info_t ring[DS_SCHED_HISTORY];
} ds_sched_t;

/* Start scheduling: the first batch is the first multiple of interval_ms
 * strictly after start_ms. DS_EINVAL if interval_ms <= 0. */
int ds_sched_init(ds_sched_t *s, int64_t interval_ms, int64_t start_ms);
/* If a batch is due at now_ms, set *batch_time, advance, and return 1; else 0. */
int ds_sched_due(ds_sched_t *s, int64_t now_ms, int64_t *batch_time);
/* The time at which the next batch falls due. */
int64_t ds_sched_next(const ds_sched_t *s);
/* Record that batch t was submitted at now with n records; returns its info. */
ds_batch_info_t *ds_sched_submit(ds_sched_t *s, int64_t t, int64_t now, int64_t n);
/* Record that batch t started processing at `at` (never before its
 * submission); its info, or NULL when t is no longer in the history. */
ds_batch_info_t *ds_sched_started(ds_sched_t *s, int64_t t, int64_t at);
/* Record that batch t finished at `at` (never before it started), failed
 * or not; its info, or NULL when t is no longer in the history. */
ds_batch_info_t *ds_sched_completed(ds_sched_t *s, int64_t t, int64_t at, int failed);
/* The info of batch t if it is still in the history, else NULL. */
ds_batch_info_t *ds_sched_info(ds_sched_t *s, int64_t t);
/* Delays in ms of a completed batch (Spark's definitions); -1 where unknown. */
int64_t ds_batch_scheduling_delay(const ds_batch_info_t *b);
int64_t ds_batch_processing_delay(const ds_batch_info_t *b);
int64_t ds_batch_total_delay(const ds_batch_info_t *b);

#endif

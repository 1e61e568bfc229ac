/* The batch scheduler: see dstream/scheduler.h. */
#include <string.h>

#include "dstream/error.h"
#include "dstream/scheduler.h"

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int ds_sched_init(ds_sched_t *s, int64_t interval_ms, int64_t start_ms) {
  if (interval_ms <= 0)
    return DS_EINVAL;
  memset(s, 0, sizeof(*s));
  for (size_t i = 0; i < DS_SCHED_HISTORY; i++)
    s->ring[i].batch_time = INT64_MIN;
  s->interval_ms = interval_ms;
  s->next_ms = (floor_div(start_ms, interval_ms) + 1) * interval_ms;
  return 0;
}

int ds_sched_due(ds_sched_t *s, int64_t now_ms, int64_t *batch_time) {
  if (now_ms < s->next_ms)
    return 0;
  *batch_time = s->next_ms;
  s->next_ms += s->interval_ms;
  s->generated++;
  return 1;
}

int64_t ds_sched_next(const ds_sched_t *s) {
  return s->next_ms;
}

static size_t slot_of(const ds_sched_t *s, int64_t t) {
  return (size_t)(floor_div(t, s->interval_ms) % DS_SCHED_HISTORY + DS_SCHED_HISTORY) % DS_SCHED_HISTORY;
}

ds_batch_info_t *ds_sched_submit(ds_sched_t *s, int64_t t, int64_t now, int64_t n) {
  ds_batch_info_t *b = &s->ring[slot_of(s, t)];
  b->batch_time = t;
  b->num_records = n;
  b->submission_time = now;
  b->processing_start = -1;
  b->processing_end = -1;
  b->failed = 0;
  return b;
}

ds_batch_info_t *ds_sched_info(ds_sched_t *s, int64_t t) {
  ds_batch_info_t *b = &s->ring[slot_of(s, t)];
  return b->batch_time == t ? b : NULL;
}

ds_batch_info_t *ds_sched_started(ds_sched_t *s, int64_t t, int64_t at) {
  ds_batch_info_t *b = ds_sched_info(s, t);
  if (b != NULL)
    b->processing_start = at > b->submission_time ? at : b->submission_time;
  return b;
}

ds_batch_info_t *ds_sched_completed(ds_sched_t *s, int64_t t, int64_t at, int failed) {
  ds_batch_info_t *b = ds_sched_info(s, t);
  if (b != NULL) {
    b->processing_end = at > b->processing_start ? at : b->processing_start;
    b->failed = failed != 0;
  }
  return b;
}

int64_t ds_batch_scheduling_delay(const ds_batch_info_t *b) {
  return b->processing_start < 0 ? -1 : b->processing_start - b->submission_time;
}

int64_t ds_batch_processing_delay(const ds_batch_info_t *b) {
  return b->processing_end < 0 || b->processing_start < 0 ? -1 : b->processing_end - b->processing_start;
}

int64_t ds_batch_total_delay(const ds_batch_info_t *b) {
  return b->processing_end < 0 ? -1 : b->processing_end - b->submission_time;
}

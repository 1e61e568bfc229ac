/* The engine: see dstream/engine.h.
 *
 * WHY A WAKE TIMER: uv_run(UV_RUN_ONCE) blocks until some handle has an
 * event; the wake timer makes "at most timeout_ms" true even when no receiver
 * sends anything, so the driver gets control back when a batch falls due. */
#include <signal.h>
#include <string.h>

#include "dstream/engine.h"
#include "dstream/error.h"

static void on_wake(uv_timer_t *t) {
  (void)t;
}

static void on_signal(uv_signal_t *h, int signum) {
  ds_engine_t *e = h->data;
  e->signaled = signum;
  uv_stop(h->loop);
}

int ds_engine_watch_signals(ds_engine_t *e) {
  if (!e->loop_open)
    return DS_ECLOSED;
  if (e->watching)
    return 0;
  uv_signal_init(&e->loop, &e->sigint);
  uv_signal_init(&e->loop, &e->sigterm);
  e->sigint.data = e;
  e->sigterm.data = e;
  uv_signal_start(&e->sigint, on_signal, SIGINT);
  uv_signal_start(&e->sigterm, on_signal, SIGTERM);
  /* Signal handles must not keep the loop alive on their own. */
  uv_unref((uv_handle_t *)&e->sigint);
  uv_unref((uv_handle_t *)&e->sigterm);
  e->watching = 1;
  return 0;
}

int ds_engine_signaled(const ds_engine_t *e) {
  return e->signaled;
}

int ds_engine_init(ds_engine_t *e, int64_t batch_ms, int manual) {
  int rc;
  if (batch_ms <= 0)
    return DS_EINVAL;
  memset(e, 0, sizeof(*e));
  rc = uv_loop_init(&e->loop);
  if (rc != 0)
    return DS_ENOMEM;
  uv_timer_init(&e->loop, &e->wake);
  ds_clock_init(&e->clock, manual);
  ds_graph_init(&e->graph, batch_ms);
  e->batch_ms = batch_ms;
  e->loop_open = 1;
  return 0;
}

int ds_engine_start(ds_engine_t *e) {
  if (e->started)
    return DS_ESTATE;
  ds_sched_init(&e->sched, e->batch_ms, ds_clock_now(&e->clock));
  e->started = 1;
  return 0;
}

int ds_engine_run(ds_engine_t *e, int64_t timeout_ms) {
  if (!e->loop_open)
    return DS_ECLOSED;
  if (timeout_ms <= 0 || e->clock.manual) {
    uv_run(&e->loop, UV_RUN_NOWAIT);
    return 0;
  }
  uv_update_time(&e->loop);
  uv_timer_start(&e->wake, on_wake, (uint64_t)timeout_ms, 0);
  uv_run(&e->loop, UV_RUN_ONCE);
  uv_timer_stop(&e->wake);
  return 0;
}

int ds_engine_due(ds_engine_t *e, int64_t *t) {
  if (!e->started)
    return 0;
  return ds_sched_due(&e->sched, ds_clock_now(&e->clock), t);
}

int64_t ds_engine_wait_ms(ds_engine_t *e) {
  int64_t wait;
  if (!e->started)
    return 0;
  wait = ds_sched_next(&e->sched) - ds_clock_now(&e->clock);
  return wait > 0 ? wait : 0;
}

int ds_engine_advance(ds_engine_t *e, int64_t ms) {
  return ds_clock_set(&e->clock, ms);
}

int ds_engine_close(ds_engine_t *e) {
  if (!e->loop_open)
    return 0;
  if (!uv_is_closing((uv_handle_t *)&e->wake))
    uv_close((uv_handle_t *)&e->wake, NULL);
  if (e->watching) {
    uv_close((uv_handle_t *)&e->sigint, NULL);
    uv_close((uv_handle_t *)&e->sigterm, NULL);
    e->watching = 0;
  }
  uv_run(&e->loop, UV_RUN_NOWAIT);
  if (uv_loop_close(&e->loop) != 0)
    return DS_ESTATE;
  ds_graph_close(&e->graph);
  e->loop_open = 0;
  return 0;
}

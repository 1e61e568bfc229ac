/* The engine: see dstream/engine.h.
 *
 * WHY A WAKE TIMER: uv_run(UV_RUN_ONCE) blocks until some handle has an
 * event; the wake timer makes "at most timeout_ms" true even when no receiver
 * sends anything, so the driver gets control back when a batch falls due.
 *
 * WHY A SLEEP FOR THE LAST MILLISECOND: libuv's timers and its poll timeout
 * count whole milliseconds of a loop time truncated to the millisecond, so a
 * timer woke up to a millisecond late: at 1 ms batches, a whole interval of
 * scheduling delay. The wait is measured in µs instead: whole milliseconds
 * go to the timer (rounded down, so it never wakes late) and what is left,
 * under a millisecond, to nanosleep, after which the loop collects the I/O
 * that arrived meanwhile without waiting. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dstream/engine.h"
#include "dstream/error.h"

static void on_wake(uv_timer_t *t) {
  (void)t;
}

/* Signals. The handler may only touch sig_atomic_t flags and call
 * async-signal-safe functions: write(), _exit(), alarm() and uv_async_send()
 * (which libuv documents as async-signal-safe). */

static volatile sig_atomic_t first_signal; /* 0 until the first one */
static volatile sig_atomic_t grace_s;      /* alarm after the first signal */
static uv_async_t *volatile wake_handle;   /* the watching engine's */
static ds_engine_t *watcher;
static struct sigaction old_int, old_term, old_alrm;
static int alarm_taken;

static void say(const char *msg) {
  ssize_t rc = write(STDERR_FILENO, msg, strlen(msg));
  (void)rc;
}

static void on_os_signal(int signum) {
  int saved = errno;
  if (signum == SIGALRM) {
    if (first_signal != 0) {
      say("dstream: the graceful stop did not finish within its grace period: "
          "exiting now; the batch in progress and the data not yet processed are lost\n");
      _exit(128 + first_signal);
    }
  } else if (first_signal != 0) {
    say(signum == SIGINT ? "dstream: second SIGINT" : "dstream: second SIGTERM");
    say(": exiting now without finishing the batch in progress; "
        "the data not yet processed is lost\n");
    _exit(128 + signum);
  } else {
    first_signal = signum;
    if (grace_s > 0)
      alarm((unsigned)grace_s);
    if (wake_handle != NULL)
      uv_async_send(wake_handle);
  }
  errno = saved;
}

static void on_signal_wake(uv_async_t *h) {
  uv_stop(h->loop);
}

int ds_engine_watch_signals(ds_engine_t *e, int64_t grace_ms) {
  struct sigaction sa;
  if (!e->loop_open)
    return DS_ECLOSED;
  if (grace_ms < 0)
    return DS_EINVAL;
  if (e->watching)
    return 0;
  if (uv_async_init(&e->loop, &e->wake_on_signal, on_signal_wake) != 0)
    return DS_ENOMEM;
  /* The wake handle must not keep the loop alive on its own. */
  uv_unref((uv_handle_t *)&e->wake_on_signal);
  e->watching = 1;
  grace_s = (sig_atomic_t)((grace_ms + 999) / 1000);
  wake_handle = &e->wake_on_signal;
  if (watcher == NULL) {
    first_signal = 0; /* a signal that stopped an earlier context is spent */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_os_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    /* SIGALRM only with a grace period: a script may use alarm() itself. */
    alarm_taken = grace_s > 0;
    if (alarm_taken)
      sigaction(SIGALRM, &sa, &old_alrm);
  }
  watcher = e;
  return 0;
}

int ds_engine_signaled(const ds_engine_t *e) {
  return e->watching ? first_signal : 0;
}

/* Stop watching; the last watcher to go puts the old handlers back. */
static void unwatch(ds_engine_t *e) {
  if (!e->watching)
    return;
  e->watching = 0;
  uv_close((uv_handle_t *)&e->wake_on_signal, NULL);
  if (watcher != e)
    return;
  wake_handle = NULL;
  watcher = NULL;
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  if (alarm_taken)
    sigaction(SIGALRM, &old_alrm, NULL);
  alarm_taken = 0;
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

int ds_engine_start_after(ds_engine_t *e, int64_t after_ms) {
  if (e->started)
    return DS_ESTATE;
  if (after_ms < 0 || after_ms % e->batch_ms != 0)
    return DS_EINVAL;
  /* A manual clock stands where the recovered run stopped, so that
   * advance(n) runs the n batches after it; one already past it stays. */
  if (e->clock.manual && ds_clock_now(&e->clock) < after_ms)
    ds_clock_set(&e->clock, after_ms);
  ds_sched_init(&e->sched, e->batch_ms, after_ms);
  e->started = 1;
  return 0;
}

int ds_engine_run(ds_engine_t *e, int64_t timeout_ms) {
  return ds_engine_run_us(e, timeout_ms > INT64_MAX / 1000 ? INT64_MAX : timeout_ms * 1000);
}

int ds_engine_run_us(ds_engine_t *e, int64_t timeout_us) {
  if (!e->loop_open)
    return DS_ECLOSED;
  if (timeout_us <= 0 || e->clock.manual) {
    uv_run(&e->loop, UV_RUN_NOWAIT);
    return 0;
  }
  if (timeout_us < 1000) {
    /* A signal cuts the sleep short (EINTR): the driver then sees it. */
    struct timespec ts = {0, (long)timeout_us * 1000};
    nanosleep(&ts, NULL);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    return 0;
  }
  uv_update_time(&e->loop);
  uv_timer_start(&e->wake, on_wake, (uint64_t)(timeout_us / 1000), 0);
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

int64_t ds_engine_wait_us(ds_engine_t *e) {
  int64_t wait;
  if (!e->started)
    return 0;
  wait = ds_sched_next(&e->sched) * 1000 - ds_clock_now_us(&e->clock);
  return wait > 0 ? wait : 0;
}

int ds_engine_due_by(ds_engine_t *e, int64_t until_ms, int64_t *t) {
  if (!e->started)
    return 0;
  return ds_sched_due(&e->sched, until_ms, t);
}

int64_t ds_engine_settle_time(const ds_engine_t *e, int64_t t) {
  int64_t settle = t;
  for (int i = 0; i < e->graph.n; i++) {
    const ds_node_t *n = &e->graph.nodes[i];
    int64_t slide = n->slide_ms > 0 ? n->slide_ms : e->batch_ms, next;
    if (!(n->flags & DS_NODE_OUTPUT))
      continue;
    next = t + (slide - t % slide) % slide; /* batch times are >= 0 */
    if (next > settle)
      settle = next;
  }
  return settle;
}

int ds_engine_advance(ds_engine_t *e, int64_t ms) {
  return ds_clock_set(&e->clock, ms);
}

int ds_engine_close(ds_engine_t *e) {
  if (!e->loop_open)
    return 0;
  if (!uv_is_closing((uv_handle_t *)&e->wake))
    uv_close((uv_handle_t *)&e->wake, NULL);
  unwatch(e);
  uv_run(&e->loop, UV_RUN_NOWAIT);
  if (uv_loop_close(&e->loop) != 0)
    return DS_ESTATE;
  ds_graph_close(&e->graph);
  e->loop_open = 0;
  return 0;
}

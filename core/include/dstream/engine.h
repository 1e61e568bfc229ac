/* The engine: one context's clock, batch scheduler, graph and libuv loop.
 *
 * The engine is a state machine the Lua driver pumps, never the other way
 * round: ds_engine_run() lets libuv do I/O (receivers fill their blocks) for
 * at most a given time, then ds_engine_due() says which batch times have
 * fallen due, and the driver runs their jobs. C never calls into Lua.
 *
 * With a manual clock the loop never waits: ds_engine_advance() moves time and
 * ds_engine_run(e, 0) only collects I/O already there.
 *
 * SIGNALS: ds_engine_watch_signals() installs a process-wide handler for
 * SIGINT and SIGTERM. The first signal is only recorded (and wakes the loop),
 * so the driver can stop gracefully between two batches. A user function
 * that never returns would keep it from ever getting there, and a Lua debug
 * hook cannot interrupt compiled traces; so the second signal, or the end
 * of a grace period after the first, writes a message to stderr and ends the
 * process at once with _exit(128 + signal), from the handler itself.
 *
 * OWNERSHIP: the caller owns the struct; receivers attach handles to
 * ds_engine_loop(). ds_engine_close() returns DS_ESTATE while handles other
 * than the engine's own are still open: close those, then call it again.
 */
#ifndef DSTREAM_ENGINE_H
#define DSTREAM_ENGINE_H

#include <stdint.h>
#include <uv.h>

#include "dstream/clock.h"
#include "dstream/graph.h"
#include "dstream/scheduler.h"

typedef struct {
  uv_loop_t loop;
  uv_timer_t wake;      /* bounds how long one run may wait */
  uv_async_t wake_on_signal; /* sent from the signal handler */
  int watching;
  ds_clock_t clock;
  ds_sched_t sched;
  ds_graph_t graph;
  int64_t batch_ms;
  int started;
  int loop_open;
} ds_engine_t;

/* Initialise an engine with a batch interval (ms, > 0) and a clock. */
int ds_engine_init(ds_engine_t *e, int64_t batch_ms, int manual);
/* Start scheduling: the first batch is one interval after now (rounded to
 * the interval). DS_ESTATE if already started. */
int ds_engine_start(ds_engine_t *e);
/* Start scheduling after a recovered batch time after_ms (a multiple of the
 * batch interval, >= 0): the first batch is after_ms + interval, however far
 * the clock has gone since (the batches missed while down all fall due, in
 * order). A manual clock behind after_ms is moved to it. DS_EINVAL for a bad
 * time, DS_ESTATE if already started. */
int ds_engine_start_after(ds_engine_t *e, int64_t after_ms);
/* Run I/O for at most timeout_ms (0: only what is ready now, never wait). */
int ds_engine_run(ds_engine_t *e, int64_t timeout_ms);
/* The same in µs: the driver of millisecond batches waits that finely
 * (whole milliseconds on a libuv timer, the rest asleep). */
int ds_engine_run_us(ds_engine_t *e, int64_t timeout_us);
/* If a batch has fallen due, set *t to its time and return 1; else 0. */
int ds_engine_due(ds_engine_t *e, int64_t *t);
/* Milliseconds until the next batch falls due (0 if one is due). */
int64_t ds_engine_wait_ms(ds_engine_t *e);
/* Microseconds until the next batch falls due (0 if one is due). */
int64_t ds_engine_wait_us(ds_engine_t *e);
/* Manual clock: move time to ms. */
int ds_engine_advance(ds_engine_t *e, int64_t ms);
/* The time of the next batch if it is at most until_ms, whatever the clock
 * says (earlier or later): set *t, advance, return 1; else 0. For a stop
 * that runs the batches its outputs still need at once instead of waiting
 * for them, and none after them however far behind the clock it is. */
int ds_engine_due_by(ds_engine_t *e, int64_t until_ms, int64_t *t);
/* The earliest time T >= t such that every output node produces a batch in
 * [t, T]: running every batch up to T shows the data of batch t to every
 * output, windowed ones included. */
int64_t ds_engine_settle_time(const ds_engine_t *e, int64_t t);
/* Watch SIGINT and SIGTERM (see SIGNALS above): the first ends the current
 * run and is reported by ds_engine_signaled(); the second, or grace_ms after
 * the first (0: no grace period), ends the process. One engine watches at a
 * time (the last to ask); closing it puts the previous handlers back. */
int ds_engine_watch_signals(ds_engine_t *e, int64_t grace_ms);
/* The first signal received while watching (0 if none). */
int ds_engine_signaled(const ds_engine_t *e);
/* Close the loop and free the graph; DS_ESTATE while other handles are open. */
int ds_engine_close(ds_engine_t *e);

#endif

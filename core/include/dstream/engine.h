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
  uv_signal_t sigint;   /* watched only after ds_engine_watch_signals() */
  uv_signal_t sigterm;
  int signaled;         /* the last signal received, 0 if none */
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
/* Run I/O for at most timeout_ms (0: only what is ready now, never wait). */
int ds_engine_run(ds_engine_t *e, int64_t timeout_ms);
/* If a batch has fallen due, set *t to its time and return 1; else 0. */
int ds_engine_due(ds_engine_t *e, int64_t *t);
/* Milliseconds until the next batch falls due (0 if one is due). */
int64_t ds_engine_wait_ms(ds_engine_t *e);
/* Manual clock: move time to ms. */
int ds_engine_advance(ds_engine_t *e, int64_t ms);
/* Watch SIGINT and SIGTERM: a signal ends the current run and is reported by
 * ds_engine_signaled() instead of killing the process. */
int ds_engine_watch_signals(ds_engine_t *e);
/* The last signal received since watching began (0 if none). */
int ds_engine_signaled(const ds_engine_t *e);
/* Close the loop and free the graph; DS_ESTATE while other handles are open. */
int ds_engine_close(ds_engine_t *e);

#endif

/* The engine's clock and scheduler: batches fall due once each, in order,
 * none skipped; a stop runs the batches its outputs need (graph: test_graph.c). */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dstream/engine.h"
#include "dstream/error.h"
#include "harness.h"

static void test_manual_clock_runs_each_batch_once(void) {
  ds_engine_t e;
  int64_t t;
  CHECK_EQ_INT(ds_engine_init(&e, 1000, 1), 0);
  CHECK_EQ_INT(ds_engine_due(&e, &t), 0); /* not started */
  CHECK_EQ_INT(ds_engine_start(&e), 0);
  CHECK_EQ_INT(ds_engine_start(&e), DS_ESTATE);
  CHECK_EQ_INT(ds_engine_due(&e, &t), 0);
  CHECK_EQ_INT(ds_engine_wait_ms(&e), 1000);
  CHECK_EQ_INT(ds_engine_wait_us(&e), 1000000);
  CHECK_EQ_INT(ds_clock_now_us(&e.clock), 0);
  CHECK_EQ_INT(ds_engine_advance(&e, 3500), 0);
  CHECK_EQ_INT(ds_engine_run(&e, 0), 0);
  CHECK(ds_engine_due(&e, &t) == 1 && t == 1000);
  CHECK(ds_engine_due(&e, &t) == 1 && t == 2000);
  CHECK(ds_engine_due(&e, &t) == 1 && t == 3000);
  CHECK_EQ_INT(ds_engine_due(&e, &t), 0);
  CHECK_EQ_INT(ds_engine_wait_ms(&e), 500);
  CHECK_EQ_INT(ds_engine_advance(&e, 100), DS_ERANGE);
  CHECK_EQ_INT(ds_engine_close(&e), 0);
  CHECK_EQ_INT(ds_engine_close(&e), 0);
}

static void test_system_clock_waits_for_the_next_batch(void) {
  ds_engine_t e;
  int64_t t, before;
  CHECK_EQ_INT(ds_engine_init(&e, 5, 0), 0);
  CHECK_EQ_INT(ds_engine_advance(&e, 10), DS_ESTATE);
  ds_engine_start(&e);
  before = ds_clock_now(&e.clock);
  while (!ds_engine_due(&e, &t))
    ds_engine_run(&e, ds_engine_wait_ms(&e));
  CHECK(t % 5 == 0);
  CHECK(t > before - 5);
  CHECK(ds_clock_now(&e.clock) >= t);
  CHECK_EQ_INT(ds_engine_close(&e), 0);
}

/* 1 ms batches: waiting to the µs wakes the loop at (not before) each
 * batch time, each batch time falling due once, in order, none skipped. */
static void test_millisecond_batches_fall_due_in_order_waiting_in_us(void) {
  ds_engine_t e;
  int64_t t, last = -1;
  CHECK_EQ_INT(ds_engine_init(&e, 1, 0), 0);
  CHECK_EQ_INT(ds_engine_wait_us(&e), 0); /* not started */
  ds_engine_start(&e);
  CHECK(ds_engine_wait_us(&e) <= 1000);
  for (int i = 0; i < 200; i++) {
    while (!ds_engine_due(&e, &t))
      CHECK_EQ_INT(ds_engine_run_us(&e, ds_engine_wait_us(&e)), 0);
    CHECK(ds_clock_now_us(&e.clock) >= t * 1000);
    CHECK(last < 0 || t == last + 1);
    last = t;
  }
  CHECK_EQ_INT(ds_engine_close(&e), 0);
  CHECK_EQ_INT(ds_engine_run_us(&e, 10), DS_ECLOSED);
}

static void test_a_watched_signal_ends_the_run(void) {
  ds_engine_t e;
  CHECK_EQ_INT(ds_engine_init(&e, 1000, 0), 0);
  CHECK_EQ_INT(ds_engine_watch_signals(&e, 0), 0);
  ds_engine_start(&e);
  CHECK_EQ_INT(ds_engine_signaled(&e), 0);
  raise(SIGTERM);
  ds_engine_run(&e, 5000);
  CHECK_EQ_INT(ds_engine_signaled(&e), SIGTERM);
  CHECK_EQ_INT(ds_engine_close(&e), 0);
  CHECK_EQ_INT(ds_engine_watch_signals(&e, 0), DS_ECLOSED);
}

/* Runs fn in a child process; returns its wait status. */
static int in_child(void (*fn)(void)) {
  int status = -1;
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDERR_FILENO); /* the child's message is not the test's */
    fn();
    _exit(0);
  }
  waitpid(pid, &status, 0);
  return status;
}

static void second_signal(void) {
  ds_engine_t e;
  ds_engine_init(&e, 1000, 0);
  ds_engine_watch_signals(&e, 0);
  raise(SIGINT);
  raise(SIGINT); /* the process ends here */
  _exit(3);
}

static void grace_period(void) {
  ds_engine_t e;
  ds_engine_init(&e, 1000, 0);
  ds_engine_watch_signals(&e, 1);
  raise(SIGTERM);
  for (;;)
    pause(); /* a user function that never returns */
}

static void test_a_second_signal_or_the_grace_period_ends_the_process(void) {
  int status = in_child(second_signal);
  CHECK(WIFEXITED(status));
  CHECK_EQ_INT(WEXITSTATUS(status), 128 + SIGINT);
  status = in_child(grace_period);
  CHECK(WIFEXITED(status));
  CHECK_EQ_INT(WEXITSTATUS(status), 128 + SIGTERM);
}

static void test_closing_puts_the_old_handlers_back(void) {
  ds_engine_t e;
  struct sigaction sa;
  CHECK_EQ_INT(ds_engine_init(&e, 1000, 0), 0);
  CHECK_EQ_INT(ds_engine_watch_signals(&e, 0), 0);
  sigaction(SIGTERM, NULL, &sa);
  CHECK(sa.sa_handler != SIG_DFL);
  CHECK_EQ_INT(ds_engine_close(&e), 0);
  sigaction(SIGTERM, NULL, &sa);
  CHECK(sa.sa_handler == SIG_DFL);
}

static void test_a_stop_runs_the_batches_its_outputs_need_at_once(void) {
  ds_engine_t e;
  int64_t t = 0, until;
  int src, win, n = 0;
  CHECK_EQ_INT(ds_engine_init(&e, 100, 0), 0);
  src = ds_graph_add(&e.graph, "queueStream", NULL, 0, 100, 0, DS_NODE_INPUT);
  ds_graph_add(&e.graph, "print", &src, 1, 100, 0, DS_NODE_OUTPUT);
  win = ds_graph_add(&e.graph, "window", &src, 1, 1000, 1000, 0);
  ds_graph_add(&e.graph, "print", &win, 1, 1000, 0, DS_NODE_OUTPUT);
  CHECK_EQ_INT(ds_engine_settle_time(&e, 1000), 1000);
  CHECK_EQ_INT(ds_engine_settle_time(&e, 1100), 2000);
  CHECK_EQ_INT(ds_engine_settle_time(&e, 1900), 2000);
  ds_engine_start(&e);
  /* due_by hands out batch times in the future of a system clock. */
  until = ds_engine_settle_time(&e, ds_sched_next(&e.sched) + 5000);
  while (ds_engine_due_by(&e, until, &t))
    n++;
  CHECK_EQ_INT(t, until);
  CHECK(n >= 51);
  CHECK_EQ_INT(ds_engine_due_by(&e, until, &t), 0);
  CHECK_EQ_INT(ds_engine_close(&e), 0);
}

static void test_rejects_a_non_positive_interval(void) {
  ds_engine_t e;
  CHECK_EQ_INT(ds_engine_init(&e, 0, 1), DS_EINVAL);
  CHECK_EQ_INT(ds_engine_init(&e, -5, 1), DS_EINVAL);
}

static void test_batch_info_delays(void) {
  ds_sched_t s;
  ds_batch_info_t *b;
  CHECK_EQ_INT(ds_sched_init(&s, 100, 0), 0);
  b = ds_sched_submit(&s, 100, 100, 42);
  CHECK_EQ_INT(ds_batch_scheduling_delay(b), -1);
  b->processing_start = 130;
  b->processing_end = 180;
  CHECK_EQ_INT(ds_batch_scheduling_delay(b), 30);
  CHECK_EQ_INT(ds_batch_processing_delay(b), 50);
  CHECK_EQ_INT(ds_batch_total_delay(b), 80);
  CHECK(ds_sched_info(&s, 100) == b);
  CHECK(ds_sched_info(&s, 200) == NULL);
  /* A start before the submission, an end before the start: clamped. */
  b = ds_sched_submit(&s, 200, 200, 3);
  CHECK(ds_sched_started(&s, 200, 150) == b);
  CHECK_EQ_INT(b->processing_start, 200);
  CHECK(ds_sched_completed(&s, 200, 190, 1) == b);
  CHECK_EQ_INT(b->processing_end, 200);
  CHECK_EQ_INT(b->failed, 1);
  CHECK(ds_sched_started(&s, 300, 300) == NULL);
  CHECK(ds_sched_completed(&s, 300, 300, 0) == NULL);
  ds_sched_submit(&s, 100 + 100 * DS_SCHED_HISTORY, 0, 1);
  CHECK(ds_sched_info(&s, 100) == NULL);
}

static void test_a_recovered_engine_starts_after_the_checkpointed_batch(void) {
  ds_engine_t e;
  int64_t t, before;
  /* Manual: the clock moves to the recovered time; the next batch follows it. */
  CHECK_EQ_INT(ds_engine_init(&e, 1000, 1), 0);
  CHECK_EQ_INT(ds_engine_start_after(&e, 2500), DS_EINVAL);
  CHECK_EQ_INT(ds_engine_start_after(&e, -1000), DS_EINVAL);
  CHECK_EQ_INT(ds_engine_start_after(&e, 7000), 0);
  CHECK_EQ_INT(ds_engine_start_after(&e, 7000), DS_ESTATE);
  CHECK_EQ_INT(ds_clock_now(&e.clock), 7000);
  CHECK_EQ_INT(ds_engine_due(&e, &t), 0);
  CHECK_EQ_INT(ds_engine_advance(&e, 9000), 0);
  CHECK(ds_engine_due(&e, &t) == 1 && t == 8000);
  CHECK(ds_engine_due(&e, &t) == 1 && t == 9000);
  CHECK_EQ_INT(ds_engine_due(&e, &t), 0);
  CHECK_EQ_INT(ds_engine_close(&e), 0);
  /* System: every batch missed since the recovered time falls due, in order. */
  CHECK_EQ_INT(ds_engine_init(&e, 100, 0), 0);
  before = ds_clock_now(&e.clock);
  CHECK_EQ_INT(ds_engine_start_after(&e, (before / 100 - 5) * 100), 0);
  for (int i = 4; i >= 0; i--) {
    CHECK(ds_engine_due(&e, &t) == 1);
    CHECK_EQ_INT(t, (before / 100 - i) * 100);
  }
  CHECK_EQ_INT(ds_engine_close(&e), 0);
}

int main(void) {
  ds_test_begin();
  test_manual_clock_runs_each_batch_once();
  test_system_clock_waits_for_the_next_batch();
  test_millisecond_batches_fall_due_in_order_waiting_in_us();
  test_rejects_a_non_positive_interval();
  test_a_watched_signal_ends_the_run();
  test_a_second_signal_or_the_grace_period_ends_the_process();
  test_closing_puts_the_old_handlers_back();
  test_a_stop_runs_the_batches_its_outputs_need_at_once();
  test_batch_info_delays();
  test_a_recovered_engine_starts_after_the_checkpointed_batch();
  return ds_test_end("test_engine");
}

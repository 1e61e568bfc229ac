/* The graph: validation, remember durations, the plan of each batch (what to
 * compute, in which order, what to forget) and the shape's fingerprint. */
#include "dstream/error.h"
#include "dstream/graph.h"
#include "harness.h"

static void test_graph_needs_an_output(void) {
  ds_graph_t g;
  int bad, src;
  ds_graph_init(&g, 1000);
  src = ds_graph_add(&g, "queueStream", NULL, 0, 1000, 0, DS_NODE_INPUT);
  CHECK_EQ_INT(src, 0);
  CHECK_EQ_INT(ds_graph_validate(&g, &bad), DS_ENOOUTPUT);
  ds_graph_close(&g);
}

static void test_graph_rejects_non_multiples(void) {
  ds_graph_t g;
  int bad, src, win;
  ds_graph_init(&g, 1000);
  src = ds_graph_add(&g, "queueStream", NULL, 0, 1000, 0, DS_NODE_INPUT);
  win = ds_graph_add(&g, "window", &src, 1, 1500, 3000, 0);
  ds_graph_add(&g, "print", &win, 1, 1500, 0, DS_NODE_OUTPUT);
  CHECK_EQ_INT(ds_graph_validate(&g, &bad), DS_ENOTMULTIPLE);
  CHECK_EQ_INT(bad, 1);
  CHECK_EQ_INT(ds_graph_add(&g, "map", (int[]){7}, 1, 1000, 0, 0), DS_EINVAL);
  ds_graph_close(&g);
}

static void test_graph_remembers_what_windows_need(void) {
  ds_graph_t g;
  int bad, src, mapped, win, out;
  ds_graph_init(&g, 1000);
  src = ds_graph_add(&g, "queueStream", NULL, 0, 1000, 0, DS_NODE_INPUT);
  mapped = ds_graph_add(&g, "map", &src, 1, 1000, 0, 0);
  win = ds_graph_add(&g, "window", &mapped, 1, 2000, 6000, 0);
  out = ds_graph_add(&g, "print", &win, 1, 2000, 0, DS_NODE_OUTPUT);
  CHECK_EQ_INT(ds_graph_validate(&g, &bad), 0);
  CHECK_EQ_INT(g.nodes[out].remember_ms, 2000);
  CHECK_EQ_INT(g.nodes[win].remember_ms, 2000);
  CHECK_EQ_INT(g.nodes[mapped].remember_ms, 8000);
  CHECK_EQ_INT(g.nodes[src].remember_ms, 8000);
  CHECK(ds_graph_produces(&g, win, 4000));
  CHECK(!ds_graph_produces(&g, win, 3000));
  CHECK(ds_graph_produces(&g, src, 3000));
  CHECK_EQ_INT(ds_graph_remember(&g, mapped), 8000);
  CHECK_EQ_INT(ds_graph_remember(&g, 9), -1);
  /* ssc:remember(10 s): every node keeps at least that, its parents more. */
  ds_graph_set_min_remember(&g, 10000);
  CHECK_EQ_INT(ds_graph_validate(&g, &bad), 0);
  CHECK_EQ_INT(ds_graph_remember(&g, out), 10000);
  CHECK_EQ_INT(ds_graph_remember(&g, mapped), 16000);
  ds_graph_close(&g);
}

static void test_graph_add_fails_cleanly_without_memory(void) {
  ds_graph_t g;
  int src, bad;
  ds_plan_t plan;
  ds_graph_init(&g, 1000);
  ds_test_fail_after(1);
  CHECK_EQ_INT(ds_graph_add(&g, "queueStream", NULL, 0, 1000, 0, 0), DS_ENOMEM);
  ds_test_fail_after(0);
  src = ds_graph_add(&g, "queueStream", NULL, 0, 1000, 0, DS_NODE_INPUT);
  ds_test_fail_after(1);
  CHECK_EQ_INT(ds_graph_add(&g, "print", &src, 1, 1000, 0, DS_NODE_OUTPUT), DS_ENOMEM);
  ds_test_fail_after(2);
  CHECK_EQ_INT(ds_graph_add(&g, "print", &src, 1, 1000, 0, DS_NODE_OUTPUT), DS_ENOMEM);
  ds_test_fail_after(0);
  CHECK_EQ_INT(g.n, 1);
  ds_graph_add(&g, "print", &src, 1, 1000, 0, DS_NODE_OUTPUT);
  ds_test_fail_after(3);
  CHECK_EQ_INT(ds_graph_validate(&g, &bad), DS_ENOMEM);
  ds_test_fail_after(0);
  CHECK_EQ_INT(ds_graph_plan(&g, 1000, &plan), DS_ESTATE);
  CHECK_EQ_INT(ds_graph_set_name(&g, 5, "x"), DS_EINVAL);
  ds_test_fail_after(1);
  CHECK_EQ_INT(ds_graph_set_name(&g, src, "lines"), DS_ENOMEM);
  ds_test_fail_after(0);
  CHECK(g.nodes[src].name == NULL);
  ds_graph_close(&g);
}

/* The plan of t as a string of node ids, e.g. "0 1 3". */
static const char *plan_of(ds_graph_t *g, int64_t t, ds_plan_t *plan) {
  static char buf[256];
  size_t len = 0;
  buf[0] = '\0';
  if (ds_graph_plan(g, t, plan) != 0)
    return "error";
  for (int i = 0; i < plan->n && len + 8 < sizeof(buf); i++)
    len += (size_t)snprintf(buf + len, sizeof(buf) - len, i > 0 ? " %d" : "%d", plan->nodes[i]);
  return buf;
}

static void test_plan_runs_inputs_first_then_parents_before_children(void) {
  ds_graph_t g;
  ds_plan_t plan;
  int bad, a, b, m, u;
  ds_graph_init(&g, 1000);
  a = ds_graph_add(&g, "queueStream", NULL, 0, 1000, 0, DS_NODE_INPUT);
  m = ds_graph_add(&g, "map", &a, 1, 1000, 0, 0);
  b = ds_graph_add(&g, "queueStream", NULL, 0, 1000, 0, DS_NODE_INPUT);
  u = ds_graph_add(&g, "union", (int[]){m, b}, 2, 1000, 0, 0);
  ds_graph_add(&g, "print", &u, 1, 1000, 0, DS_NODE_OUTPUT);
  CHECK_EQ_INT(ds_graph_validate(&g, &bad), 0);
  CHECK_EQ_STR(plan_of(&g, 1000, &plan), "0 2 1 3 4");
  CHECK_EQ_INT(plan.ninputs, 2);
  CHECK_EQ_INT(plan.t, 1000);
  ds_graph_close(&g);
}

static void test_plan_leaves_out_what_no_output_reads(void) {
  ds_graph_t g;
  ds_plan_t plan;
  int bad, src;
  ds_graph_init(&g, 1000);
  src = ds_graph_add(&g, "queueStream", NULL, 0, 1000, 0, DS_NODE_INPUT);
  ds_graph_add(&g, "map", &src, 1, 1000, 0, 0); /* nobody reads it */
  ds_graph_add(&g, "print", &src, 1, 1000, 0, DS_NODE_OUTPUT);
  CHECK_EQ_INT(ds_graph_validate(&g, &bad), 0);
  CHECK_EQ_STR(plan_of(&g, 1000, &plan), "0 2");
  ds_graph_close(&g);
}

static void test_plan_runs_stateful_nodes_every_batch_unread(void) {
  ds_graph_t g;
  ds_plan_t plan;
  int bad, src, pairs;
  ds_graph_init(&g, 1000);
  src = ds_graph_add(&g, "queueStream", NULL, 0, 1000, 0, DS_NODE_INPUT);
  pairs = ds_graph_add(&g, "mapToPair", &src, 1, 1000, 0, 0);
  ds_graph_add(&g, "updateStateByKey", &pairs, 1, 1000, 0, 0);
  ds_graph_add(&g, "print", &src, 1, 1000, 0, DS_NODE_OUTPUT);
  CHECK_EQ_INT(ds_graph_validate(&g, &bad), 0);
  CHECK_EQ_STR(plan_of(&g, 1000, &plan), "0 3");
  CHECK_EQ_INT(ds_graph_add_flags(&g, 2, DS_NODE_STATEFUL), 0);
  CHECK_EQ_INT(ds_graph_plan(&g, 2000, &plan), DS_ESTATE); /* flags changed the shape */
  CHECK_EQ_INT(ds_graph_validate(&g, &bad), 0);
  CHECK_EQ_STR(plan_of(&g, 2000, &plan), "0 1 2 3");
  ds_graph_close(&g);
}

static void test_plan_respects_slides_and_computes_a_windows_past_as_it_arrives(void) {
  ds_graph_t g;
  ds_plan_t plan;
  int bad, src, mapped, win;
  ds_graph_init(&g, 1000);
  src = ds_graph_add(&g, "queueStream", NULL, 0, 1000, 0, DS_NODE_INPUT);
  mapped = ds_graph_add(&g, "map", &src, 1, 1000, 0, 0);
  /* A window sliding by 3 s reads one slide of its parent's past. */
  win = ds_graph_add(&g, "window", &mapped, 1, 3000, 3000, 0);
  ds_graph_add(&g, "print", &win, 1, 3000, 0, DS_NODE_OUTPUT);
  CHECK_EQ_INT(ds_graph_validate(&g, &bad), 0);
  CHECK_EQ_STR(plan_of(&g, 1000, &plan), "0 1");
  CHECK_EQ_STR(plan_of(&g, 2000, &plan), "0 1");
  CHECK_EQ_STR(plan_of(&g, 3000, &plan), "0 1 2 3");
  CHECK_EQ_STR(plan_of(&g, 4000, &plan), "0 1");
  ds_graph_close(&g);
}

/* Plan every batch from 1000 to until; count how often (id, t) is forgotten
 * and in which plan. */
static void test_plan_forgets_each_batch_once_when_no_later_plan_reads_it(void) {
  ds_graph_t g;
  ds_plan_t plan;
  int bad, src, mapped, win, out, times[4][32] = {{0}};
  int64_t when_mapped_1000 = -1;
  ds_graph_init(&g, 1000);
  src = ds_graph_add(&g, "queueStream", NULL, 0, 1000, 0, DS_NODE_INPUT);
  mapped = ds_graph_add(&g, "map", &src, 1, 1000, 0, 0);
  win = ds_graph_add(&g, "window", &mapped, 1, 2000, 6000, 0);
  out = ds_graph_add(&g, "print", &win, 1, 2000, 0, DS_NODE_OUTPUT);
  CHECK_EQ_INT(ds_graph_validate(&g, &bad), 0);
  for (int64_t t = 1000; t <= 20000; t += 1000) {
    CHECK_EQ_INT(ds_graph_plan(&g, t, &plan), 0);
    for (int i = 0; i < plan.nforget; i++) {
      const ds_forget_t *f = &plan.forget[i];
      CHECK(f->t <= t);
      CHECK(f->t % g.nodes[f->id].slide_ms == 0);
      times[f->id][f->t / 1000]++;
      if (f->id == mapped && f->t == 1000)
        when_mapped_1000 = t;
    }
  }
  /* mapped remembers 8 s: its batch at 1000 is read up to the plan at 8000. */
  CHECK_EQ_INT(when_mapped_1000, 8000);
  for (int s = 1; s <= 12; s++) {
    CHECK_EQ_INT(times[src][s], 1);
    CHECK_EQ_INT(times[mapped][s], 1);
  }
  CHECK_EQ_INT(times[win][2], 1);
  CHECK_EQ_INT(times[win][3], 0);
  CHECK_EQ_INT(times[out][20], 1);
  ds_graph_close(&g);
}

/* Two pipelines differing in one respect: kind, parents, window or name. */
static uint64_t fingerprint_of(const char *kind, int join_second, int64_t window, const char *name) {
  ds_graph_t g;
  int a, b, m, w;
  uint64_t h;
  ds_graph_init(&g, 1000);
  a = ds_graph_add(&g, "queueStream", NULL, 0, 1000, 0, DS_NODE_INPUT);
  b = ds_graph_add(&g, "queueStream", NULL, 0, 1000, 0, DS_NODE_INPUT);
  m = ds_graph_add(&g, kind, join_second ? &b : &a, 1, 1000, 0, 0);
  w = ds_graph_add(&g, "window", &m, 1, 1000, window, 0);
  ds_graph_add(&g, "print", &w, 1, 1000, 0, DS_NODE_OUTPUT);
  if (name != NULL)
    ds_graph_set_name(&g, m, name);
  h = ds_graph_fingerprint(&g);
  ds_graph_close(&g);
  return h;
}

static void test_fingerprint_follows_the_shape_only(void) {
  uint64_t base = fingerprint_of("map", 0, 3000, NULL);
  ds_graph_t g;
  int bad, src;
  uint64_t before;
  ds_plan_t plan;
  /* The same script builds the same graph, whatever its closures. */
  CHECK(fingerprint_of("map", 0, 3000, NULL) == base);
  CHECK(fingerprint_of("filter", 0, 3000, NULL) != base);
  CHECK(fingerprint_of("map", 1, 3000, NULL) != base);
  CHECK(fingerprint_of("map", 0, 4000, NULL) != base);
  CHECK(fingerprint_of("map", 0, 3000, "words") != base);
  CHECK(fingerprint_of("map", 0, 3000, "words") != fingerprint_of("map", 0, 3000, "lines"));
  /* Validating and planning change nothing in it. */
  ds_graph_init(&g, 1000);
  src = ds_graph_add(&g, "queueStream", NULL, 0, 1000, 0, DS_NODE_INPUT);
  ds_graph_add(&g, "print", &src, 1, 1000, 0, DS_NODE_OUTPUT);
  before = ds_graph_fingerprint(&g);
  CHECK_EQ_INT(ds_graph_validate(&g, &bad), 0);
  CHECK_EQ_INT(ds_graph_plan(&g, 1000, &plan), 0);
  CHECK(ds_graph_fingerprint(&g) == before);
  ds_graph_close(&g);
}

int main(void) {
  ds_test_begin();
  test_graph_needs_an_output();
  test_graph_rejects_non_multiples();
  test_graph_remembers_what_windows_need();
  test_graph_add_fails_cleanly_without_memory();
  test_plan_runs_inputs_first_then_parents_before_children();
  test_plan_leaves_out_what_no_output_reads();
  test_plan_runs_stateful_nodes_every_batch_unread();
  test_plan_respects_slides_and_computes_a_windows_past_as_it_arrives();
  test_plan_forgets_each_batch_once_when_no_later_plan_reads_it();
  test_fingerprint_follows_the_shape_only();
  return ds_test_end("test_graph");
}

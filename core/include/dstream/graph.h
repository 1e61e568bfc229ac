/* The DStream graph: nodes, their parents, how long each must remember, and
 * for each batch time the plan of what to compute and what to forget.
 *
 * Every stream of a context is a node; a node's parents are the streams it is
 * computed from, so ids always point backwards (a parent is created before its
 * children) and the graph is acyclic by construction: ascending ids are a
 * topological order. Output operations are nodes flagged DS_NODE_OUTPUT;
 * sources DS_NODE_INPUT; streams whose result at t depends on every batch
 * before t (keyed state) DS_NODE_STATEFUL.
 *
 * SLIDES AND WINDOWS: a node produces a batch only at multiples of its slide;
 * a node with window W reads, at its time t, its parents' batches in
 * (t - W, t] (W = 0: the batch at t only). ds_graph_validate() checks that
 * every slide and window is a positive multiple of the batch interval and
 * then computes, in one backward pass over the ids, each node's remember
 * duration: the longest any consumer needs.
 *
 * THE PLAN (ds_graph_plan): the graph is the one place that decides what a
 * batch computes; the driver runs the plan and keeps no rule of its own.
 * At batch time t a node is computed when it produces at t and its batch at t
 * will be read: it is an input (a source takes its data every batch, needed
 * or not), an output, a stateful node (its state must see every batch), or
 * some child that is computed at a time t' in [t, t + W_child) reads it. So
 * a window's parent is computed batch by batch, as its data arrives, and the
 * window finds the past batches already made. Inputs come first, then the
 * other nodes in ascending id order, so every parent precedes its children.
 * The plan also lists the batches that can be forgotten: node n's batches at
 * or before t + slide - remember, which no later plan can read again; each
 * (node, time) is listed once, in the first plan after which it is unneeded.
 *
 * FINGERPRINT: a 64-bit FNV-1a hash of the shape (each node's operator kind
 * with its arguments, name, parents, slide, window and flags, in id order),
 * never of closures:
 * a checkpoint written by one graph is recognised by the same script.
 *
 * COSTS: O(nodes + edges) to validate; a plan O(nodes + edges) per batch for
 * graphs without windows, times W / slide per window a node feeds.
 */
#ifndef DSTREAM_GRAPH_H
#define DSTREAM_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#define DS_NODE_INPUT 1u
#define DS_NODE_OUTPUT 2u
#define DS_NODE_STATEFUL 4u

typedef struct {
  int *parents;           /* owned */
  int nparents;
  int64_t slide_ms;       /* produces at multiples of this */
  int64_t window_ms;      /* past of its parents it reads (0: current batch) */
  int64_t remember_ms;    /* computed by ds_graph_validate() */
  unsigned flags;
  char *kind;             /* owned: the operator and the arguments that make
                           * its shape, e.g. "map" or "window(3 s, 1 s)" */
  char *name;             /* owned: the user's name(), or NULL */
  int64_t kept_from;      /* batches before this are forgotten (plans) */
} ds_node_t;

/* One batch a plan says can be forgotten. */
typedef struct {
  int id;
  int64_t t;
} ds_forget_t;

/* What a batch runs: nodes[0 .. ninputs) are inputs, nodes[ninputs .. n) the
 * rest in topological order; forget[0 .. nforget) the batches no later plan
 * reads. Arrays borrowed from the graph until its next plan or close. */
typedef struct {
  int64_t t;
  const int *nodes;
  int n;
  int ninputs;
  const ds_forget_t *forget;
  int nforget;
} ds_plan_t;

typedef struct {
  ds_node_t *nodes;
  int n;
  int cap;
  int64_t interval_ms;
  int64_t min_remember_ms; /* ssc:remember() */
  /* Filled by ds_graph_validate(): children in CSR form, plan scratch. */
  int *child_start;        /* n + 1 */
  int *children;
  int *plan_nodes;         /* n */
  signed char *need_now;   /* n: -1 unknown, 0, 1 for the plan's own t */
  ds_forget_t *forget;
  int forget_cap;
  int validated;
} ds_graph_t;

/* An empty graph for a batch interval of interval_ms. */
void ds_graph_init(ds_graph_t *g, int64_t interval_ms);
/* Free every node and the plan arrays. */
void ds_graph_close(ds_graph_t *g);
/* Add a node of operator kind (copied; NULL: "stream") with parents
 * (copied); returns its id (>= 0) or DS_EINVAL (a parent that does not exist
 * yet) / DS_ENOMEM; on error nothing changes. Adding undoes validation. */
int ds_graph_add(ds_graph_t *g, const char *kind, const int *parents, int nparents,
                 int64_t slide_ms, int64_t window_ms, unsigned flags);
/* Name node id (copied; NULL removes the name). DS_EINVAL for no such node,
 * DS_ENOMEM; on error nothing changes. */
int ds_graph_set_name(ds_graph_t *g, int id, const char *name);
/* Add flags to node id (DS_NODE_STATEFUL once it is known). DS_EINVAL for no
 * such node. Adding undoes validation. */
int ds_graph_add_flags(ds_graph_t *g, int id, unsigned flags);
/* Keep every node's batches at least ms (ssc:remember()); undoes validation. */
void ds_graph_set_min_remember(ds_graph_t *g, int64_t ms);
/* How long node id keeps its batches (after validation); -1 for no such node. */
int64_t ds_graph_remember(const ds_graph_t *g, int id);
/* Check the graph, compute remember durations and prepare plans. On failure
 * returns DS_ENOOUTPUT, DS_ENOTMULTIPLE (with *bad_node the offending id, -1
 * if none) or DS_ENOMEM, and leaves the graph as it was. */
int ds_graph_validate(ds_graph_t *g, int *bad_node);
/* 1 if node id produces a batch at time t (a multiple of its slide). */
int ds_graph_produces(const ds_graph_t *g, int id, int64_t t);
/* The plan of batch time t (see THE PLAN above), t after the previous plan's.
 * DS_ESTATE before ds_graph_validate(), DS_ENOMEM (nothing changes). */
int ds_graph_plan(ds_graph_t *g, int64_t t, ds_plan_t *plan);
/* The shape's hash (see FINGERPRINT above). */
uint64_t ds_graph_fingerprint(const ds_graph_t *g);

#endif

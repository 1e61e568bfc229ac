/* The DStream graph: nodes, their parents, and how long each must remember.
 *
 * Every stream of a context is a node; a node's parents are the streams it is
 * computed from, so ids always point backwards (a parent is created before its
 * children) and the graph is acyclic by construction. Output operations are
 * nodes flagged DS_NODE_OUTPUT; sources are flagged DS_NODE_INPUT.
 *
 * SLIDES AND WINDOWS: a node produces a batch only at multiples of its slide;
 * a node that reads a window of its parents' past (window length W) needs
 * each parent to keep its batches W longer than the node itself keeps its
 * own. ds_graph_validate() checks that every slide and window is a positive
 * multiple of the batch interval and then computes, in one backward pass over
 * the ids, each node's remember duration: the longest any consumer needs.
 *
 * COSTS: O(nodes + edges) to validate; lookups O(1).
 */
#ifndef DSTREAM_GRAPH_H
#define DSTREAM_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#define DS_NODE_INPUT 1u
#define DS_NODE_OUTPUT 2u

typedef struct {
  int *parents;           /* owned */
  int nparents;
  int64_t slide_ms;       /* produces at multiples of this */
  int64_t window_ms;      /* past of its parents it reads (0: current batch) */
  int64_t remember_ms;    /* computed by ds_graph_validate() */
  unsigned flags;
} ds_node_t;

typedef struct {
  ds_node_t *nodes;
  int n;
  int cap;
  int64_t interval_ms;
  int64_t min_remember_ms; /* ssc:remember() */
} ds_graph_t;

/* An empty graph for a batch interval of interval_ms. */
void ds_graph_init(ds_graph_t *g, int64_t interval_ms);
/* Free every node. */
void ds_graph_close(ds_graph_t *g);
/* Add a node (parents copied); returns its id (>= 0) or DS_EINVAL (a parent
 * that does not exist yet) / DS_ENOMEM. */
int ds_graph_add(ds_graph_t *g, const int *parents, int nparents,
                 int64_t slide_ms, int64_t window_ms, unsigned flags);
/* Check the graph and compute remember durations. On failure returns
 * DS_ENOOUTPUT or DS_ENOTMULTIPLE, sets *bad_node to the offending id (-1 if
 * none) and leaves the remember durations as they were. */
int ds_graph_validate(ds_graph_t *g, int *bad_node);
/* 1 if node id produces a batch at time t (a multiple of its slide). */
int ds_graph_produces(const ds_graph_t *g, int id, int64_t t);

#endif

/* The DStream graph: see dstream/graph.h. */
#include <string.h>

#include "dstream/alloc.h"
#include "dstream/error.h"
#include "dstream/graph.h"

void ds_graph_init(ds_graph_t *g, int64_t interval_ms) {
  memset(g, 0, sizeof(*g));
  g->interval_ms = interval_ms;
}

void ds_graph_close(ds_graph_t *g) {
  for (int i = 0; i < g->n; i++)
    ds_free(g->nodes[i].parents);
  ds_free(g->nodes);
  memset(g, 0, sizeof(*g));
}

int ds_graph_add(ds_graph_t *g, const int *parents, int nparents,
                 int64_t slide_ms, int64_t window_ms, unsigned flags) {
  ds_node_t *node;
  int *copy = NULL;
  if (nparents < 0)
    return DS_EINVAL;
  for (int i = 0; i < nparents; i++)
    if (parents[i] < 0 || parents[i] >= g->n)
      return DS_EINVAL;
  if (g->n == g->cap) {
    int cap = g->cap > 0 ? g->cap * 2 : 16;
    ds_node_t *nodes = ds_realloc(g->nodes, (size_t)cap * sizeof(*nodes));
    if (nodes == NULL)
      return DS_ENOMEM;
    g->nodes = nodes;
    g->cap = cap;
  }
  if (nparents > 0) {
    copy = ds_malloc((size_t)nparents * sizeof(*copy));
    if (copy == NULL)
      return DS_ENOMEM;
    memcpy(copy, parents, (size_t)nparents * sizeof(*copy));
  }
  node = &g->nodes[g->n];
  node->parents = copy;
  node->nparents = nparents;
  node->slide_ms = slide_ms;
  node->window_ms = window_ms;
  node->remember_ms = 0;
  node->flags = flags;
  return g->n++;
}

static int is_multiple(int64_t d, int64_t interval) {
  return d > 0 && d % interval == 0;
}

int ds_graph_validate(ds_graph_t *g, int *bad_node) {
  int outputs = 0;
  *bad_node = -1;
  for (int i = 0; i < g->n; i++) {
    const ds_node_t *node = &g->nodes[i];
    if (!is_multiple(node->slide_ms, g->interval_ms) ||
        (node->window_ms != 0 && !is_multiple(node->window_ms, g->interval_ms))) {
      *bad_node = i;
      return DS_ENOTMULTIPLE;
    }
    if (node->flags & DS_NODE_OUTPUT)
      outputs++;
  }
  if (outputs == 0)
    return DS_ENOOUTPUT;
  for (int i = 0; i < g->n; i++) {
    ds_node_t *node = &g->nodes[i];
    node->remember_ms = node->slide_ms > g->min_remember_ms ? node->slide_ms : g->min_remember_ms;
  }
  /* Children have larger ids than their parents: one backward pass sees every
   * child's final duration before it raises its parents'. */
  for (int i = g->n - 1; i >= 0; i--) {
    const ds_node_t *node = &g->nodes[i];
    int64_t need = node->remember_ms + node->window_ms;
    for (int p = 0; p < node->nparents; p++) {
      ds_node_t *parent = &g->nodes[node->parents[p]];
      if (parent->remember_ms < need)
        parent->remember_ms = need;
    }
  }
  return 0;
}

int ds_graph_produces(const ds_graph_t *g, int id, int64_t t) {
  if (id < 0 || id >= g->n)
    return 0;
  return t % g->nodes[id].slide_ms == 0;
}

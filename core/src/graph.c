/* The DStream graph: see dstream/graph.h. */
#include <string.h>

#include "dstream/alloc.h"
#include "dstream/error.h"
#include "dstream/graph.h"

void ds_graph_init(ds_graph_t *g, int64_t interval_ms) {
  memset(g, 0, sizeof(*g));
  g->interval_ms = interval_ms;
}

static void free_plan_arrays(ds_graph_t *g) {
  ds_free(g->child_start);
  ds_free(g->children);
  ds_free(g->plan_nodes);
  ds_free(g->need_now);
  ds_free(g->forget);
  g->child_start = g->children = g->plan_nodes = NULL;
  g->need_now = NULL;
  g->forget = NULL;
  g->forget_cap = 0;
  g->validated = 0;
}

void ds_graph_close(ds_graph_t *g) {
  for (int i = 0; i < g->n; i++) {
    ds_free(g->nodes[i].parents);
    ds_free(g->nodes[i].kind);
    ds_free(g->nodes[i].name);
  }
  ds_free(g->nodes);
  free_plan_arrays(g);
  memset(g, 0, sizeof(*g));
}

static char *copy_string(const char *s) {
  size_t len = strlen(s) + 1;
  char *copy = ds_malloc(len);
  if (copy != NULL)
    memcpy(copy, s, len);
  return copy;
}

int ds_graph_add(ds_graph_t *g, const char *kind, const int *parents, int nparents,
                 int64_t slide_ms, int64_t window_ms, unsigned flags) {
  ds_node_t *node;
  int *copy = NULL;
  char *kind_copy;
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
  kind_copy = copy_string(kind != NULL ? kind : "stream");
  if (kind_copy == NULL)
    return DS_ENOMEM;
  if (nparents > 0) {
    copy = ds_malloc((size_t)nparents * sizeof(*copy));
    if (copy == NULL) {
      ds_free(kind_copy);
      return DS_ENOMEM;
    }
    memcpy(copy, parents, (size_t)nparents * sizeof(*copy));
  }
  node = &g->nodes[g->n];
  node->parents = copy;
  node->nparents = nparents;
  node->slide_ms = slide_ms;
  node->window_ms = window_ms;
  node->remember_ms = 0;
  node->flags = flags;
  node->kind = kind_copy;
  node->name = NULL;
  node->kept_from = INT64_MIN;
  g->validated = 0;
  return g->n++;
}

int ds_graph_set_name(ds_graph_t *g, int id, const char *name) {
  char *copy = NULL;
  if (id < 0 || id >= g->n)
    return DS_EINVAL;
  if (name != NULL && (copy = copy_string(name)) == NULL)
    return DS_ENOMEM;
  ds_free(g->nodes[id].name);
  g->nodes[id].name = copy;
  return 0;
}

int ds_graph_add_flags(ds_graph_t *g, int id, unsigned flags) {
  if (id < 0 || id >= g->n)
    return DS_EINVAL;
  if ((g->nodes[id].flags | flags) != g->nodes[id].flags)
    g->validated = 0;
  g->nodes[id].flags |= flags;
  return 0;
}

void ds_graph_set_min_remember(ds_graph_t *g, int64_t ms) {
  g->min_remember_ms = ms;
  g->validated = 0;
}

int64_t ds_graph_remember(const ds_graph_t *g, int id) {
  return id >= 0 && id < g->n ? g->nodes[id].remember_ms : -1;
}

static int is_multiple(int64_t d, int64_t interval) {
  return d > 0 && d % interval == 0;
}

/* Children lists in CSR form and the plan's scratch arrays; on failure
 * nothing is kept. */
static int build_plan_arrays(ds_graph_t *g) {
  int edges = 0, *fill;
  for (int i = 0; i < g->n; i++)
    edges += g->nodes[i].nparents;
  free_plan_arrays(g);
  g->child_start = ds_malloc((size_t)(g->n + 1) * sizeof(int));
  g->children = ds_malloc((size_t)(edges > 0 ? edges : 1) * sizeof(int));
  g->plan_nodes = ds_malloc((size_t)(g->n > 0 ? g->n : 1) * sizeof(int));
  g->need_now = ds_malloc((size_t)(g->n > 0 ? g->n : 1));
  g->forget_cap = g->n > 0 ? g->n : 1;
  g->forget = ds_malloc((size_t)g->forget_cap * sizeof(ds_forget_t));
  if (g->child_start == NULL || g->children == NULL || g->plan_nodes == NULL ||
      g->need_now == NULL || g->forget == NULL) {
    free_plan_arrays(g);
    return DS_ENOMEM;
  }
  /* Count children per node, prefix-sum, then fill (plan_nodes as cursor). */
  memset(g->child_start, 0, (size_t)(g->n + 1) * sizeof(int));
  for (int i = 0; i < g->n; i++)
    for (int p = 0; p < g->nodes[i].nparents; p++)
      g->child_start[g->nodes[i].parents[p] + 1]++;
  for (int i = 0; i < g->n; i++)
    g->child_start[i + 1] += g->child_start[i];
  fill = g->plan_nodes;
  for (int i = 0; i < g->n; i++)
    fill[i] = g->child_start[i];
  for (int i = 0; i < g->n; i++)
    for (int p = 0; p < g->nodes[i].nparents; p++)
      g->children[fill[g->nodes[i].parents[p]]++] = i;
  return 0;
}

int ds_graph_validate(ds_graph_t *g, int *bad_node) {
  int outputs = 0, rc;
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
  rc = build_plan_arrays(g);
  if (rc != 0)
    return rc;
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
  g->validated = 1;
  return 0;
}

int ds_graph_produces(const ds_graph_t *g, int id, int64_t t) {
  if (id < 0 || id >= g->n)
    return 0;
  return t % g->nodes[id].slide_ms == 0;
}

/* The first multiple of step at or after t. */
static int64_t align_up(int64_t t, int64_t step) {
  int64_t r = t % step;
  if (r < 0)
    r += step;
  return r == 0 ? t : t + (step - r);
}

/* Whether node id's batch at time t will be read (see THE PLAN); answers for
 * the plan's own time `now` are kept in need_now. Times only grow along the
 * recursion and ids too, so it ends. */
static int needed_at(ds_graph_t *g, int id, int64_t t, int64_t now) {
  const ds_node_t *node = &g->nodes[id];
  int need = 0;
  if (t == now && g->need_now[id] >= 0)
    return g->need_now[id];
  if (t % node->slide_ms == 0) {
    need = (node->flags & (DS_NODE_INPUT | DS_NODE_OUTPUT | DS_NODE_STATEFUL)) != 0;
    for (int c = g->child_start[id]; !need && c < g->child_start[id + 1]; c++) {
      const ds_node_t *child = &g->nodes[g->children[c]];
      if (child->window_ms == 0) {
        need = needed_at(g, g->children[c], t, now);
        continue;
      }
      for (int64_t tc = align_up(t, child->slide_ms); !need && tc < t + child->window_ms;
           tc += child->slide_ms)
        need = needed_at(g, g->children[c], tc, now);
    }
  }
  if (t == now)
    g->need_now[id] = (signed char)need;
  return need;
}

/* The first batch of node that plan t may forget, and the last. */
static void forget_range(const ds_node_t *node, int64_t t, int64_t *from, int64_t *to) {
  *from = align_up(node->kept_from == INT64_MIN ? t : node->kept_from, node->slide_ms);
  *to = t + node->slide_ms - node->remember_ms;
}

int ds_graph_plan(ds_graph_t *g, int64_t t, ds_plan_t *plan) {
  int n = 0, ninputs = 0, nforget = 0;
  if (!g->validated)
    return DS_ESTATE;
  for (int i = 0; i < g->n; i++) {
    int64_t from, to;
    forget_range(&g->nodes[i], t, &from, &to);
    if (to >= from)
      nforget += (int)((to - from) / g->nodes[i].slide_ms + 1);
  }
  if (nforget > g->forget_cap) {
    ds_forget_t *grown = ds_realloc(g->forget, (size_t)nforget * sizeof(*grown));
    if (grown == NULL)
      return DS_ENOMEM;
    g->forget = grown;
    g->forget_cap = nforget;
  }
  memset(g->need_now, -1, (size_t)g->n);
  for (int i = 0; i < g->n; i++)
    if ((g->nodes[i].flags & DS_NODE_INPUT) && t % g->nodes[i].slide_ms == 0)
      g->plan_nodes[ninputs++] = i;
  n = ninputs;
  for (int i = 0; i < g->n; i++)
    if (!(g->nodes[i].flags & DS_NODE_INPUT) && needed_at(g, i, t, t))
      g->plan_nodes[n++] = i;
  nforget = 0;
  for (int i = 0; i < g->n; i++) {
    ds_node_t *node = &g->nodes[i];
    int64_t from, to;
    forget_range(node, t, &from, &to);
    for (int64_t tb = from; tb <= to; tb += node->slide_ms) {
      g->forget[nforget].id = i;
      g->forget[nforget++].t = tb;
    }
    from = node->kept_from == INT64_MIN ? t : node->kept_from;
    node->kept_from = to + 1 > from ? to + 1 : from;
  }
  plan->t = t;
  plan->nodes = g->plan_nodes;
  plan->n = n;
  plan->ninputs = ninputs;
  plan->forget = g->forget;
  plan->nforget = nforget;
  return 0;
}

/* FNV-1a, 64 bits. */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t len) {
  const unsigned char *b = p;
  for (size_t i = 0; i < len; i++) {
    h ^= b[i];
    h *= UINT64_C(0x100000001b3);
  }
  return h;
}

static uint64_t hash_int(uint64_t h, int64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)((uint64_t)v >> (8 * i)); /* the same on every host */
  return hash_bytes(h, b, sizeof(b));
}

uint64_t ds_graph_fingerprint(const ds_graph_t *g) {
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  h = hash_int(h, g->interval_ms);
  h = hash_int(h, g->n);
  for (int i = 0; i < g->n; i++) {
    const ds_node_t *node = &g->nodes[i];
    h = hash_bytes(h, node->kind, strlen(node->kind) + 1);
    /* A name and no name differ from every name. */
    h = hash_int(h, node->name != NULL);
    if (node->name != NULL)
      h = hash_bytes(h, node->name, strlen(node->name) + 1);
    h = hash_int(h, node->nparents);
    for (int p = 0; p < node->nparents; p++)
      h = hash_int(h, node->parents[p]);
    h = hash_int(h, node->slide_ms);
    h = hash_int(h, node->window_ms);
    h = hash_int(h, node->flags);
  }
  return h;
}

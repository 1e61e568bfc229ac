/* Glue for the engine: clock, scheduler, graph and loop of one context.
 * Every function here is called once per batch or less, never per record. */
#include <string.h>

#include "lds.h"

#include "dstream/engine.h"
#include "dstream/error.h"

#define ENGINE_MT "dstream.engine"

typedef struct {
  ds_engine_t e;
  int open;
} lds_engine_t;

static lds_engine_t *lds_check_engine(lua_State *L, int idx) {
  lds_engine_t *u = luaL_checkudata(L, idx, ENGINE_MT);
  if (!u->open)
    luaL_argerror(L, idx, "engine is closed");
  return u;
}

uv_loop_t *lds_check_loop(lua_State *L, int idx) {
  return &lds_check_engine(L, idx)->e.loop;
}

/* A time or duration in milliseconds, truncated to an integer; raises for
 * NaN and for what no int64_t holds exactly (converting those is undefined). */
static int64_t check_ms(lua_State *L, int idx) {
  lua_Number ms = luaL_checknumber(L, idx);
  if (!(ms >= -9007199254740992.0 && ms <= 9007199254740992.0))
    luaL_argerror(L, idx, "must be a number of milliseconds within +-2^53");
  return (int64_t)ms;
}

static int64_t opt_ms(lua_State *L, int idx) {
  return lua_isnoneornil(L, idx) ? 0 : check_ms(L, idx);
}

/* core.engine_new{batch = ms, manual = bool} -> engine */
static int engine_new(lua_State *L) {
  lds_engine_t *u;
  int64_t batch;
  int manual, rc;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "manual");
  manual = lua_toboolean(L, -1);
  lua_getfield(L, 1, "batch");
  batch = check_ms(L, -1);
  lua_pop(L, 2);
  u = lua_newuserdata(L, sizeof(*u));
  u->open = 0;
  rc = ds_engine_init(&u->e, batch, manual);
  if (rc != 0)
    return lds_fail(L, rc, "batch interval");
  u->open = 1;
  luaL_getmetatable(L, ENGINE_MT);
  lua_setmetatable(L, -2);
  return 1;
}

/* engine:start([after_ms]): the first batch one interval after now, or
 * (recovery) the one after batch time after_ms */
static int engine_start(lua_State *L) {
  lds_engine_t *u = lds_check_engine(L, 1);
  int rc = lua_isnoneornil(L, 2) ? ds_engine_start(&u->e) : ds_engine_start_after(&u->e, check_ms(L, 2));
  if (rc != 0)
    return lds_fail(L, rc, rc == DS_EINVAL ? "recovered batch time" : "engine already started");
  lua_pushboolean(L, 1);
  return 1;
}

/* engine:now() -> ms */
static int engine_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)ds_clock_now(&lds_check_engine(L, 1)->e.clock));
  return 1;
}

/* engine:run(timeout_ms): libuv I/O for at most timeout_ms (a fraction of
 * a millisecond counts: millisecond batches wait that finely) */
static int engine_run(lua_State *L) {
  lds_engine_t *u = lds_check_engine(L, 1);
  lua_Number ms = luaL_optnumber(L, 2, 0);
  if (!(ms >= -9007199254740.0 && ms <= 9007199254740.0))
    luaL_argerror(L, 2, "must be a number of milliseconds within +-2^43");
  ds_engine_run_us(&u->e, (int64_t)(ms * 1000));
  return 0;
}

/* engine:due() -> batch time in ms, or nil when none has fallen due */
static int engine_due(lua_State *L) {
  int64_t t;
  if (!ds_engine_due(&lds_check_engine(L, 1)->e, &t))
    return 0;
  lua_pushnumber(L, (lua_Number)t);
  return 1;
}

/* engine:wait_ms() -> ms until the next batch falls due, to the µs */
static int engine_wait_ms(lua_State *L) {
  lua_pushnumber(L, (lua_Number)ds_engine_wait_us(&lds_check_engine(L, 1)->e) / 1000);
  return 1;
}

/* engine:due_by(until) -> the next batch time if it is <= until (or due), else nil */
static int engine_due_by(lua_State *L) {
  int64_t t;
  lds_engine_t *u = lds_check_engine(L, 1);
  if (!ds_engine_due_by(&u->e, check_ms(L, 2), &t))
    return 0;
  lua_pushnumber(L, (lua_Number)t);
  return 1;
}

/* engine:settle_time(t) -> the time by which every output has seen batch t */
static int engine_settle_time(lua_State *L) {
  lds_engine_t *u = lds_check_engine(L, 1);
  lua_pushnumber(L, (lua_Number)ds_engine_settle_time(&u->e, check_ms(L, 2)));
  return 1;
}

/* engine:next_batch() -> time of the next batch */
static int engine_next_batch(lua_State *L) {
  lds_engine_t *u = lds_check_engine(L, 1);
  lua_pushnumber(L, (lua_Number)ds_sched_next(&u->e.sched));
  return 1;
}

/* engine:advance_to(ms): manual clock only */
static int engine_advance_to(lua_State *L) {
  int rc = ds_engine_advance(&lds_check_engine(L, 1)->e, check_ms(L, 2));
  if (rc != 0)
    return lds_fail(L, rc, "manual clock");
  lua_pushboolean(L, 1);
  return 1;
}

/* engine:graph_add(kind, parents, slide_ms, window_ms, flags) -> node id */
static int engine_graph_add(lua_State *L) {
  lds_engine_t *u = lds_check_engine(L, 1);
  const char *kind = luaL_checkstring(L, 2);
  int parents[64];
  int n, rc;
  luaL_checktype(L, 3, LUA_TTABLE);
  n = (int)lua_objlen(L, 3);
  luaL_argcheck(L, n <= 64, 3, "at most 64 parents");
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, 3, i + 1);
    parents[i] = (int)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
  }
  rc = ds_graph_add(&u->e.graph, kind, parents, n, check_ms(L, 4), check_ms(L, 5),
                    (unsigned)luaL_optinteger(L, 6, 0));
  if (rc < 0)
    return lds_fail(L, rc, "graph node");
  lua_pushinteger(L, rc);
  return 1;
}

/* engine:graph_set_name(id, name) -> true, or nil, message, name */
static int engine_graph_set_name(lua_State *L) {
  lds_engine_t *u = lds_check_engine(L, 1);
  int rc = ds_graph_set_name(&u->e.graph, (int)luaL_checkinteger(L, 2), luaL_optstring(L, 3, NULL));
  if (rc != 0)
    return lds_fail(L, rc, "graph node name");
  lua_pushboolean(L, 1);
  return 1;
}

/* engine:graph_add_flags(id, flags) -> true, or nil, message, name */
static int engine_graph_add_flags(lua_State *L) {
  lds_engine_t *u = lds_check_engine(L, 1);
  int rc = ds_graph_add_flags(&u->e.graph, (int)luaL_checkinteger(L, 2), (unsigned)luaL_checkinteger(L, 3));
  if (rc != 0)
    return lds_fail(L, rc, "graph node flags");
  lua_pushboolean(L, 1);
  return 1;
}

/* engine:plan(t, nodes, forget_ids, forget_times) -> n, ninputs, nforget:
 * fills the caller's arrays (1-based; ids as the graph numbers them) with the
 * plan of batch t, so a batch allocates no table; or nil, message, name */
static int engine_plan(lua_State *L) {
  lds_engine_t *u = lds_check_engine(L, 1);
  ds_plan_t plan;
  int rc;
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  luaL_checktype(L, 5, LUA_TTABLE);
  rc = ds_graph_plan(&u->e.graph, check_ms(L, 2), &plan);
  if (rc != 0)
    return lds_fail(L, rc, "batch plan");
  for (int i = 0; i < plan.n; i++) {
    lua_pushinteger(L, plan.nodes[i]);
    lua_rawseti(L, 3, i + 1);
  }
  for (int i = 0; i < plan.nforget; i++) {
    lua_pushinteger(L, plan.forget[i].id);
    lua_rawseti(L, 4, i + 1);
    lua_pushnumber(L, (lua_Number)plan.forget[i].t);
    lua_rawseti(L, 5, i + 1);
  }
  lua_pushinteger(L, plan.n);
  lua_pushinteger(L, plan.ninputs);
  lua_pushinteger(L, plan.nforget);
  return 3;
}

/* engine:fingerprint() -> the graph's shape hash as 16 hex digits */
static int engine_fingerprint(lua_State *L) {
  char hex[17];
  uint64_t h = ds_graph_fingerprint(&lds_check_engine(L, 1)->e.graph);
  for (int i = 15; i >= 0; i--, h >>= 4)
    hex[i] = "0123456789abcdef"[h & 15];
  hex[16] = '\0';
  lua_pushstring(L, hex);
  return 1;
}

/* engine:graph_validate() -> true, or nil, message, name, bad node id */
static int engine_graph_validate(lua_State *L) {
  lds_engine_t *u = lds_check_engine(L, 1);
  int bad, rc = ds_graph_validate(&u->e.graph, &bad);
  if (rc != 0) {
    lds_fail(L, rc, NULL);
    if (bad >= 0)
      lua_pushinteger(L, bad);
    else
      lua_pushnil(L);
    return 4;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* engine:set_min_remember(ms) */
static int engine_set_min_remember(lua_State *L) {
  ds_graph_set_min_remember(&lds_check_engine(L, 1)->e.graph, check_ms(L, 2));
  return 0;
}

/* engine:remember(id) -> ms the node keeps its batches (after validation) */
static int engine_remember(lua_State *L) {
  lds_engine_t *u = lds_check_engine(L, 1);
  int64_t ms = ds_graph_remember(&u->e.graph, (int)luaL_checkinteger(L, 2));
  luaL_argcheck(L, ms >= 0, 2, "no such node");
  lua_pushnumber(L, (lua_Number)ms);
  return 1;
}

static void push_info(lua_State *L, const ds_batch_info_t *b) {
  lua_createtable(L, 0, 9);
#define FIELD(name, value) lua_pushnumber(L, (lua_Number)(value)); lua_setfield(L, -2, name)
#define OPTFIELD(name, value) if ((value) >= 0) { FIELD(name, value); }
  FIELD("batchTime", b->batch_time);
  FIELD("numRecords", b->num_records);
  FIELD("submissionTime", b->submission_time);
  OPTFIELD("processingStartTime", b->processing_start);
  OPTFIELD("processingEndTime", b->processing_end);
  OPTFIELD("schedulingDelay", ds_batch_scheduling_delay(b));
  OPTFIELD("processingDelay", ds_batch_processing_delay(b));
  OPTFIELD("totalDelay", ds_batch_total_delay(b));
#undef OPTFIELD
#undef FIELD
  lua_pushboolean(L, b->failed);
  lua_setfield(L, -2, "failed");
}

/* engine:submit(t, n) -> info: batch t was submitted (at its time) with n records */
static int engine_submit(lua_State *L) {
  lds_engine_t *u = lds_check_engine(L, 1);
  int64_t t = check_ms(L, 2);
  push_info(L, ds_sched_submit(&u->e.sched, t, t, check_ms(L, 3)));
  return 1;
}

/* engine:started(t, at = now) -> info: batch t started processing at `at` */
static int engine_started(lua_State *L) {
  lds_engine_t *u = lds_check_engine(L, 1);
  int64_t at = lua_isnoneornil(L, 3) ? ds_clock_now(&u->e.clock) : check_ms(L, 3);
  ds_batch_info_t *b = ds_sched_started(&u->e.sched, check_ms(L, 2), at);
  luaL_argcheck(L, b != NULL, 2, "no such batch");
  push_info(L, b);
  return 1;
}

/* engine:completed(t, failed) -> info: batch t finished processing now */
static int engine_completed(lua_State *L) {
  lds_engine_t *u = lds_check_engine(L, 1);
  ds_batch_info_t *b = ds_sched_completed(&u->e.sched, check_ms(L, 2), ds_clock_now(&u->e.clock),
                                          lua_toboolean(L, 3));
  luaL_argcheck(L, b != NULL, 2, "no such batch");
  push_info(L, b);
  return 1;
}

/* engine:watch_signals(grace_ms = 0): the first SIGINT / SIGTERM ends the
 * current run; the second, or grace_ms after the first, ends the process */
static int engine_watch_signals(lua_State *L) {
  int rc = ds_engine_watch_signals(&lds_check_engine(L, 1)->e, opt_ms(L, 2));
  if (rc != 0)
    return lds_fail(L, rc, "signals");
  lua_pushboolean(L, 1);
  return 1;
}

/* engine:signaled() -> the number of the last signal received, or nil */
static int engine_signaled(lua_State *L) {
  int sig = ds_engine_signaled(&lds_check_engine(L, 1)->e);
  if (sig == 0)
    return 0;
  lua_pushinteger(L, sig);
  return 1;
}

/* The one close of close() and __gc: idempotent; 0, or DS_ESTATE (the
 * engine left open) while receivers' handles are open. */
static int engine_shut(lds_engine_t *u) {
  int rc;
  if (!u->open)
    return 0;
  rc = ds_engine_close(&u->e);
  if (rc == 0)
    u->open = 0;
  return rc;
}

/* engine:close() -> true, or nil, "ESTATE: ..." while receivers' handles are open */
static int engine_close(lua_State *L) {
  int rc = engine_shut(luaL_checkudata(L, 1, ENGINE_MT));
  if (rc != 0)
    return lds_fail(L, rc, "receivers still open");
  lua_pushboolean(L, 1);
  return 1;
}

/* Collected without close(): a socket's environment holds its engine, so an
 * engine goes with or after its sockets, whose handles the last loop turn of
 * ds_engine_close finishes closing. */
static int engine_gc(lua_State *L) {
  engine_shut(luaL_checkudata(L, 1, ENGINE_MT));
  return 0;
}

static int engine_tostring(lua_State *L) {
  lds_engine_t *u = luaL_checkudata(L, 1, ENGINE_MT);
  lua_pushfstring(L, "dstream.engine (%s)", u->open ? "open" : "closed");
  return 1;
}

static const luaL_Reg engine_methods[] = {
  {"start", engine_start},
  {"now", engine_now},
  {"run", engine_run},
  {"due", engine_due},
  {"wait_ms", engine_wait_ms},
  {"next_batch", engine_next_batch},
  {"due_by", engine_due_by},
  {"settle_time", engine_settle_time},
  {"advance_to", engine_advance_to},
  {"graph_add", engine_graph_add},
  {"graph_validate", engine_graph_validate},
  {"set_min_remember", engine_set_min_remember},
  {"remember", engine_remember},
  {"graph_set_name", engine_graph_set_name},
  {"graph_add_flags", engine_graph_add_flags},
  {"plan", engine_plan},
  {"fingerprint", engine_fingerprint},
  {"submit", engine_submit},
  {"started", engine_started},
  {"completed", engine_completed},
  {"watch_signals", engine_watch_signals},
  {"signaled", engine_signaled},
  {"close", engine_close},
  {NULL, NULL}
};

void lds_open_engine(lua_State *L) {
  luaL_newmetatable(L, ENGINE_MT);
  lua_newtable(L);
  luaL_register(L, NULL, engine_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, engine_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, engine_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  lua_pushcfunction(L, engine_new);
  lua_setfield(L, -2, "engine_new");
  lua_pushinteger(L, DS_NODE_INPUT);
  lua_setfield(L, -2, "NODE_INPUT");
  lua_pushinteger(L, DS_NODE_OUTPUT);
  lua_setfield(L, -2, "NODE_OUTPUT");
  lua_pushinteger(L, DS_NODE_STATEFUL);
  lua_setfield(L, -2, "NODE_STATEFUL");
}

/* Rate control for Lua: core.rate_new (the token bucket of custom
 * receivers) and core.pid_new (the backpressure estimator); the work is in
 * core/src/rate.c. */
#include <math.h>

#include "lds.h"

#include "dstream/rate.h"

#define RATE_MT "dstream.rate"
#define PID_MT "dstream.pid"

static uint64_t check_ms(lua_State *L, int idx) {
  lua_Number v = luaL_checknumber(L, idx);
  luaL_argcheck(L, v >= 0 && v < 9007199254740992.0, idx, "must be a time in ms, at least 0");
  return (uint64_t)v;
}

static double check_rate(lua_State *L, int idx) {
  lua_Number r = luaL_checknumber(L, idx);
  luaL_argcheck(L, r >= 0 && r <= 1e15, idx, "must be records per second (0: unlimited)");
  return (double)r;
}

/* core.rate_new(rate, burst_ms, now_ms) -> an empty bucket */
static int rate_new(lua_State *L) {
  double rate = check_rate(L, 1);
  uint64_t burst = check_ms(L, 2), now = check_ms(L, 3);
  ds_rate_t *r = lua_newuserdata(L, sizeof(*r));
  ds_rate_init(r, rate, burst, now);
  luaL_getmetatable(L, RATE_MT);
  lua_setmetatable(L, -2);
  return 1;
}

/* bucket:available(now_ms) -> whole tokens now (math.huge: unlimited) */
static int rate_available(lua_State *L) {
  ds_rate_t *r = luaL_checkudata(L, 1, RATE_MT);
  uint64_t n = ds_rate_available(r, check_ms(L, 2));
  lua_pushnumber(L, n == UINT64_MAX ? HUGE_VAL : (lua_Number)n);
  return 1;
}

/* bucket:spend(n) */
static int rate_spend(lua_State *L) {
  ds_rate_t *r = luaL_checkudata(L, 1, RATE_MT);
  lua_Number n = luaL_checknumber(L, 2);
  ds_rate_spend(r, n > 0 ? (uint64_t)n : 0);
  return 0;
}

/* bucket:set(rate, now_ms) */
static int rate_set(lua_State *L) {
  ds_rate_t *r = luaL_checkudata(L, 1, RATE_MT);
  ds_rate_set(r, check_rate(L, 2), check_ms(L, 3));
  return 0;
}

/* bucket:rate() -> records/s (0: unlimited) */
static int rate_rate(lua_State *L) {
  ds_rate_t *r = luaL_checkudata(L, 1, RATE_MT);
  lua_pushnumber(L, r->rate);
  return 1;
}

/* core.pid_new(batch_ms) -> Spark's PID estimator with its defaults */
static int pid_new(lua_State *L) {
  uint64_t batch = check_ms(L, 1);
  ds_pid_t *p;
  luaL_argcheck(L, batch > 0, 1, "the batch interval must be at least 1 ms");
  p = lua_newuserdata(L, sizeof(*p));
  ds_pid_init(p, batch);
  luaL_getmetatable(L, PID_MT);
  lua_setmetatable(L, -2);
  return 1;
}

/* pid:compute(time_ms, records, processing_ms, scheduling_ms) -> rate or nil */
static int pid_compute(lua_State *L) {
  ds_pid_t *p = luaL_checkudata(L, 1, PID_MT);
  lua_Number t = luaL_checknumber(L, 2), n = luaL_checknumber(L, 3);
  lua_Number proc = luaL_checknumber(L, 4), sched = luaL_optnumber(L, 5, 0);
  double rate;
  if (ds_pid_compute(p, (int64_t)t, n > 0 ? (uint64_t)n : 0, (int64_t)proc, (int64_t)sched, &rate))
    lua_pushnumber(L, rate);
  else
    lua_pushnil(L);
  return 1;
}

/* pid:latest() -> the latest rate (nil before any batch), estimates made */
static int pid_latest(lua_State *L) {
  ds_pid_t *p = luaL_checkudata(L, 1, PID_MT);
  if (p->latest_time < 0)
    lua_pushnil(L);
  else
    lua_pushnumber(L, p->latest_rate);
  lua_pushnumber(L, (lua_Number)p->updates);
  return 2;
}

static const luaL_Reg rate_methods[] = {
  {"available", rate_available},
  {"spend", rate_spend},
  {"set", rate_set},
  {"rate", rate_rate},
  {NULL, NULL},
};

static const luaL_Reg pid_methods[] = {
  {"compute", pid_compute},
  {"latest", pid_latest},
  {NULL, NULL},
};

static void metatable(lua_State *L, const char *name, const luaL_Reg *methods) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  luaL_register(L, NULL, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

void lds_open_rate(lua_State *L) {
  metatable(L, RATE_MT, rate_methods);
  metatable(L, PID_MT, pid_methods);
  lua_pushcfunction(L, rate_new);
  lua_setfield(L, -2, "rate_new");
  lua_pushcfunction(L, pid_new);
  lua_setfield(L, -2, "pid_new");
}

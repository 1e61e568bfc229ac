/* Glue for the socket receiver (dstream/socket.h): core.socket_new(engine,
 * host, port, opts) and the methods of a "dstream.socket" userdata. The Lua
 * side calls these once per batch or block interval, never per record.
 *
 * The userdata boxes a pointer because the C socket can outlive it: handles
 * close asynchronously, and a socket collected while still open is freed by
 * its last close callback when the engine next runs the loop. The userdata's
 * environment holds the engine, so the engine (and its loop) is not collected
 * before the socket, nor is the WAL of opts.wal. */
#include <string.h>

#include "lds.h"

#include "dstream/error.h"
#include "dstream/socket.h"

#define SOCKET_MT "dstream.socket"

typedef struct {
  ds_socket_t *s;   /* NULL once freed */
  int closed;       /* close() was called */
} lds_socket_t;

static lds_socket_t *lds_check_socket(lua_State *L, int idx) {
  lds_socket_t *u = luaL_checkudata(L, idx, SOCKET_MT);
  if (u->s == NULL)
    luaL_argerror(L, idx, "socket is freed");
  return u;
}

/* Read opts[key] as an integer in [min, max] into *out; absent keeps *out. */
static void opt_integer(lua_State *L, int idx, const char *key, double min, double max,
                        uint64_t *out) {
  lua_Number v;
  lua_getfield(L, idx, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  v = lua_tonumber(L, -1);
  if (lua_type(L, -1) != LUA_TNUMBER || !(v >= min && v <= max) || v != (lua_Number)(uint64_t)v)
    luaL_argerror(L, idx, lua_pushfstring(L, "opts.%s must be an integer from %d to %f",
                                          key, (int)min, max));
  *out = (uint64_t)v;
  lua_pop(L, 1);
}

/* opts.wal (a "dstream.wal") and opts.walStream; the WAL's userdata is left
 * on the stack (nil without one) for the socket to keep. */
static void check_wal(lua_State *L, int idx, ds_socket_opts_t *o) {
  lua_getfield(L, idx, "wal");
  if (!lua_isnil(L, -1)) {
    if (luaL_testudata(L, -1, "dstream.wal") == NULL)
      luaL_argerror(L, idx, "opts.wal must be a WAL (core.wal_open)");
    o->wal = lds_check_wal(L, lua_gettop(L));
    opt_integer(L, idx, "walStream", 0, 9007199254740992.0, &o->wal_stream);
    return;
  }
  lua_getfield(L, idx, "walStream");
  if (!lua_isnil(L, -1))
    luaL_argerror(L, idx, "opts.walStream needs opts.wal");
  lua_pop(L, 1);
}

static void check_opts(lua_State *L, int idx, ds_socket_opts_t *o) {
  static const char *const known[] = {"maxLineBytes", "blockInterval", "backoffInitial",
                                      "backoffMax", "wal", "walStream", "maxRate",
                                      "rateBurst", "maxPendingRecords", NULL};
  uint64_t max_line = o->max_line_bytes;
  int i;
  if (lua_isnoneornil(L, idx)) {
    lua_pushnil(L);
    return;
  }
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int ok = 0;
    lua_pop(L, 1);
    for (i = 0; known[i] != NULL && !ok; i++)
      ok = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), known[i]) == 0;
    if (!ok)
      luaL_argerror(L, idx, lua_pushfstring(L, "unknown option %s (allowed: maxLineBytes, "
                                            "blockInterval, backoffInitial, backoffMax, "
                                            "wal, walStream, maxRate, rateBurst, "
                                            "maxPendingRecords)",
                                            lua_type(L, -1) == LUA_TSTRING ?
                                            lua_tostring(L, -1) : luaL_typename(L, -1)));
  }
  opt_integer(L, idx, "maxLineBytes", 1, 4294967295.0, &max_line);
  opt_integer(L, idx, "blockInterval", 0, 86400000, &o->block_interval_ms);
  opt_integer(L, idx, "backoffInitial", 1, 86400000, &o->backoff_initial_ms);
  opt_integer(L, idx, "backoffMax", 1, 86400000, &o->backoff_max_ms);
  opt_integer(L, idx, "rateBurst", 1, 86400000, &o->rate_burst_ms);
  opt_integer(L, idx, "maxPendingRecords", 0, 9007199254740992.0, &o->max_pending_records);
  lua_getfield(L, idx, "maxRate");
  if (!lua_isnil(L, -1)) {
    lua_Number r = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(r >= 0) || r > 1e15)
      luaL_argerror(L, idx, "opts.maxRate must be a number of lines per second (0: unlimited)");
    o->max_rate = (double)r;
  }
  lua_pop(L, 1);
  o->max_line_bytes = (size_t)max_line;
  if (o->backoff_initial_ms > o->backoff_max_ms)
    luaL_argerror(L, idx, "opts.backoffInitial must not exceed opts.backoffMax");
  check_wal(L, idx, o);
}

/* core.socket_new(engine, host, port, opts) -> socket */
static int socket_new(lua_State *L) {
  uv_loop_t *loop = lds_check_loop(L, 1);
  ds_socket_opts_t o;
  lds_socket_t *u;
  lua_Number port;
  int rc;
  ds_socket_opts_init(&o);
  o.host = luaL_checkstring(L, 2);
  if (o.host[0] == '\0')
    luaL_argerror(L, 2, "host must not be empty");
  port = luaL_checknumber(L, 3);
  if (!(port >= 1 && port <= 65535) || port != (lua_Number)(int)port)
    luaL_argerror(L, 3, "port must be an integer from 1 to 65535");
  o.port = (int)port;
  lua_settop(L, 4);
  check_opts(L, 4, &o); /* leaves the WAL (or nil) at 5 */
  u = lua_newuserdata(L, sizeof(*u));
  u->s = NULL;
  u->closed = 0;
  rc = ds_socket_new(loop, &o, &u->s);
  if (rc != 0)
    return lds_fail(L, rc, o.host);
  luaL_getmetatable(L, SOCKET_MT);
  lua_setmetatable(L, -2);
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, 5);
  lua_rawseti(L, -2, 2);
  lua_setfenv(L, -2);
  return 1;
}

/* socket:start() -> true */
static int socket_start(lua_State *L) {
  lds_socket_t *u = lds_check_socket(L, 1);
  int rc = ds_socket_start(u->s);
  if (rc != 0)
    return lds_fail(L, rc, rc == DS_ESTATE ? "socket already started" : "socket is closed");
  lua_pushboolean(L, 1);
  return 1;
}

/* Push the ends of the chain's blocks with records ({0} for none): where
 * each partition of the batch ends; returns the number of records. */
static size_t push_block_ends(lua_State *L, const ds_block_t *chain) {
  size_t end = 0;
  int nblocks = 0;
  lua_newtable(L);
  for (const ds_block_t *b = chain; b != NULL; b = b->next) {
    if (b->count == 0)
      continue;
    end += b->count;
    lua_pushnumber(L, (lua_Number)end);
    lua_rawseti(L, -2, ++nblocks);
  }
  if (nblocks == 0) {
    lua_pushnumber(L, 0);
    lua_rawseti(L, -2, 1);
  }
  return end;
}

/* Push the WAL seqs of a take's first and last block, nil, nil for none. */
static int push_seqs(lua_State *L, uint64_t first, uint64_t last) {
  if (first == 0) {
    lua_pushnil(L);
    lua_pushnil(L);
  } else {
    lua_pushnumber(L, (lua_Number)first);
    lua_pushnumber(L, (lua_Number)last);
  }
  return 2;
}

/* socket:take() -> array of lines received since the last take, n, ends,
 * first_seq, last_seq: ends says where each block (one per block interval
 * with lines) ends in the array, {0} when there are none; the batch keeps
 * each block as a partition. The seqs are the WAL's of the first and last
 * block taken, nil without a WAL or a block. */
static int socket_take(lua_State *L) {
  lds_socket_t *u = lds_check_socket(L, 1);
  ds_block_t **box = lds_chain_new(L); /* Lua owns the chain from here */
  size_t n;
  uint64_t first, last;
  *box = ds_socket_take_seqs(u->s, &first, &last);
  push_block_ends(L, *box);
  lua_insert(L, -2); /* ends, box */
  n = lds_push_blocks(L);
  lua_pushnumber(L, (lua_Number)n);
  lua_pushvalue(L, -3);
  lua_remove(L, -4);
  push_seqs(L, first, last);
  return 5;
}

/* socket:take_blocks() -> chain, n, ends, first_seq, last_seq: take()'s
 * batch with its records left in C blocks (a box, see lds.h), for a reader
 * that needs no Lua string per record (the word counter, lua/src/words.c). */
static int socket_take_blocks(lua_State *L) {
  lds_socket_t *u = lds_check_socket(L, 1);
  ds_block_t **box = lds_chain_new(L); /* Lua owns the chain from here */
  uint64_t first, last;
  *box = ds_socket_take_seqs(u->s, &first, &last);
  size_t end = push_block_ends(L, *box);
  lua_pushnumber(L, (lua_Number)end);
  lua_insert(L, -2); /* box, n, ends */
  push_seqs(L, first, last);
  return 5;
}

/* socket:errors() -> array of {time = ms, code = "ENAME", message = "..."}, drained */
static int socket_errors(lua_State *L) {
  lds_socket_t *u = lds_check_socket(L, 1);
  ds_socket_report_t reports[16];
  size_t got, i;
  int n = 0;
  lua_newtable(L);
  while ((got = ds_socket_errors(u->s, reports, 16)) > 0) {
    for (i = 0; i < got; i++) {
      lua_createtable(L, 0, 3);
      lua_pushnumber(L, (lua_Number)reports[i].time_ms);
      lua_setfield(L, -2, "time");
      lua_pushstring(L, ds_err_name(reports[i].code));
      lua_setfield(L, -2, "code");
      lua_pushstring(L, reports[i].message);
      lua_setfield(L, -2, "message");
      lua_rawseti(L, -2, ++n);
    }
  }
  return 1;
}

static void set_number(lua_State *L, const char *key, uint64_t v) {
  lua_pushnumber(L, (lua_Number)v);
  lua_setfield(L, -2, key);
}

/* socket:stats() -> {records, bytes, skipped, truncated, connects, errors,
 * dropped_reports, backoff (ms), wal_errors, wal_pending, throttles, held_bytes,
 * capped, rate (lines/s, 0: unlimited), connected = bool} */
static int socket_stats(lua_State *L) {
  lds_socket_t *u = lds_check_socket(L, 1);
  ds_socket_stats_t st;
  ds_socket_stats(u->s, &st);
  lua_createtable(L, 0, 15);
  set_number(L, "records", st.records);
  set_number(L, "bytes", st.bytes);
  set_number(L, "skipped", st.skipped);
  set_number(L, "truncated", st.truncated);
  set_number(L, "connects", st.connects);
  set_number(L, "errors", st.errors);
  set_number(L, "dropped_reports", st.dropped_reports);
  set_number(L, "backoff", st.backoff_ms);
  set_number(L, "wal_errors", st.wal_errors);
  set_number(L, "wal_pending", st.wal_pending);
  set_number(L, "throttles", st.throttles);
  set_number(L, "held_bytes", st.held_bytes);
  set_number(L, "capped", st.capped);
  lua_pushnumber(L, (lua_Number)st.rate);
  lua_setfield(L, -2, "rate");
  lua_pushboolean(L, st.connected);
  lua_setfield(L, -2, "connected");
  return 1;
}

/* socket:set_rate(lines_per_s) -> true; 0 is unlimited */
static int socket_set_rate(lua_State *L) {
  lds_socket_t *u = lds_check_socket(L, 1);
  lua_Number r = luaL_checknumber(L, 2);
  luaL_argcheck(L, r >= 0 && r <= 1e15, 2, "rate must be a number of lines per second (0: unlimited)");
  ds_socket_set_rate(u->s, (double)r);
  lua_pushboolean(L, 1);
  return 1;
}

/* socket:drain() -> bytes read of what the connection held right now */
static int socket_drain(lua_State *L) {
  lua_pushnumber(L, (lua_Number)ds_socket_drain(lds_check_socket(L, 1)->s));
  return 1;
}

/* socket:stop(): close the connection, stop reconnecting; lines stay takeable */
static int socket_stop(lua_State *L) {
  ds_socket_stop(lds_check_socket(L, 1)->s);
  return 0;
}

/* socket:close(): start closing every handle; idempotent */
static int socket_close(lua_State *L) {
  lds_socket_t *u = luaL_checkudata(L, 1, SOCKET_MT);
  if (u->s != NULL && !u->closed) {
    ds_socket_close(u->s);
    u->closed = 1;
  }
  return 0;
}

/* socket:closed() -> true once close() was called and every handle is closed */
static int socket_closed(lua_State *L) {
  lds_socket_t *u = luaL_checkudata(L, 1, SOCKET_MT);
  lua_pushboolean(L, u->s == NULL || ds_socket_closed(u->s));
  return 1;
}

/* Collected: close, and free now or from the last close callback. */
static int socket_gc(lua_State *L) {
  lds_socket_t *u = luaL_checkudata(L, 1, SOCKET_MT);
  if (u->s != NULL) {
    ds_socket_free(u->s);
    u->s = NULL;
  }
  return 0;
}

static int socket_tostring(lua_State *L) {
  lds_socket_t *u = luaL_checkudata(L, 1, SOCKET_MT);
  ds_socket_stats_t st;
  if (u->s == NULL) {
    lua_pushliteral(L, "dstream.socket (freed)");
    return 1;
  }
  ds_socket_stats(u->s, &st);
  lua_pushfstring(L, "dstream.socket (%s)",
                  u->closed ? "closed" : st.connected ? "connected" : "not connected");
  return 1;
}

static const luaL_Reg socket_methods[] = {
  {"start", socket_start},
  {"take", socket_take},
  {"take_blocks", socket_take_blocks},
  {"errors", socket_errors},
  {"stats", socket_stats},
  {"drain", socket_drain},
  {"set_rate", socket_set_rate},
  {"stop", socket_stop},
  {"close", socket_close},
  {"closed", socket_closed},
  {NULL, NULL}
};

void lds_open_socket(lua_State *L) {
  luaL_newmetatable(L, SOCKET_MT);
  lua_newtable(L);
  luaL_register(L, NULL, socket_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, socket_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, socket_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  lua_pushcfunction(L, socket_new);
  lua_setfield(L, -2, "socket_new");
}

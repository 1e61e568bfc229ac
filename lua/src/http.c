/* Glue for the status server (dstream/http.h): core.http_new(engine, host,
 * port, opts) and the methods of a "dstream.http" userdata. Lua renders the
 * resources and hands their bytes over with set(); C only serves them.
 *
 * As a socket's, the userdata boxes a pointer (the server's handles close
 * asynchronously) and its environment holds the engine, whose loop must
 * outlive the server. */
#include <string.h>

#include "lds.h"

#include "dstream/error.h"
#include "dstream/http.h"

#define HTTP_MT "dstream.http"

typedef struct {
  ds_http_t *h; /* NULL once freed */
} lds_http_t;

static lds_http_t *check_http(lua_State *L, int idx) {
  lds_http_t *u = luaL_checkudata(L, idx, HTTP_MT);
  if (u->h == NULL)
    luaL_argerror(L, idx, "status server is freed");
  return u;
}

static void opt_size(lua_State *L, int idx, const char *key, double max, size_t *out) {
  lua_Number v;
  lua_getfield(L, idx, key);
  if (!lua_isnil(L, -1)) {
    v = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(v >= 1 && v <= max) || v != (lua_Number)(size_t)v)
      luaL_argerror(L, idx, lua_pushfstring(L, "opts.%s must be an integer from 1 to %f", key, max));
    *out = (size_t)v;
  }
  lua_pop(L, 1);
}

/* core.http_new(engine, host, port, opts) -> server, or nil, message, name.
 * opts: maxRequestBytes, maxClients, timeout (ms). */
static int http_new(lua_State *L) {
  uv_loop_t *loop = lds_check_loop(L, 1);
  ds_http_opts_t o;
  lds_http_t *u;
  lua_Number port;
  size_t timeout;
  char err[256];
  int rc;
  ds_http_opts_init(&o);
  o.host = luaL_checkstring(L, 2);
  port = luaL_checknumber(L, 3);
  if (!(port >= 0 && port <= 65535) || port != (lua_Number)(int)port)
    luaL_argerror(L, 3, "port must be an integer from 0 to 65535");
  o.port = (int)port;
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    opt_size(L, 4, "maxRequestBytes", 1048576, &o.max_request_bytes);
    opt_size(L, 4, "maxClients", 65536, &o.max_clients);
    timeout = (size_t)o.timeout_ms;
    opt_size(L, 4, "timeout", 86400000, &timeout);
    o.timeout_ms = timeout;
  }
  lua_settop(L, 1);
  u = lua_newuserdata(L, sizeof *u);
  u->h = NULL;
  rc = ds_http_new(loop, &o, &u->h, err, sizeof err);
  if (rc != 0)
    return lds_fail(L, rc, err);
  luaL_getmetatable(L, HTTP_MT);
  lua_setmetatable(L, -2);
  lua_createtable(L, 1, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  lua_setfenv(L, -2);
  return 1;
}

/* server:port() -> the port listened on */
static int http_port(lua_State *L) {
  lua_pushinteger(L, ds_http_port(check_http(L, 1)->h));
  return 1;
}

/* server:set(path, content_type, body) -> true: serve a copy of body at path */
static int http_set(lua_State *L) {
  lds_http_t *u = check_http(L, 1);
  const char *path = luaL_checkstring(L, 2);
  const char *type = luaL_checkstring(L, 3);
  size_t len;
  const char *body = luaL_checklstring(L, 4, &len);
  int rc;
  if (path[0] != '/')
    luaL_argerror(L, 2, "path must start with /");
  rc = ds_http_set(u->h, path, type, body, len);
  if (rc != 0)
    return lds_fail(L, rc, path);
  lua_pushboolean(L, 1);
  return 1;
}

/* server:stats() -> {requests, errors, rejected, timeouts, clients} */
static int http_stats(lua_State *L) {
  ds_http_stats_t s;
  ds_http_stats(check_http(L, 1)->h, &s);
  lua_createtable(L, 0, 5);
  lua_pushnumber(L, (lua_Number)s.requests);
  lua_setfield(L, -2, "requests");
  lua_pushnumber(L, (lua_Number)s.errors);
  lua_setfield(L, -2, "errors");
  lua_pushnumber(L, (lua_Number)s.rejected);
  lua_setfield(L, -2, "rejected");
  lua_pushnumber(L, (lua_Number)s.timeouts);
  lua_setfield(L, -2, "timeouts");
  lua_pushnumber(L, (lua_Number)s.clients);
  lua_setfield(L, -2, "clients");
  return 1;
}

/* server:close(): start closing; the engine's loop finishes it */
static int http_close(lua_State *L) {
  ds_http_close(check_http(L, 1)->h);
  return 0;
}

/* server:closed() -> true once every handle is closed */
static int http_closed(lua_State *L) {
  lua_pushboolean(L, ds_http_closed(check_http(L, 1)->h));
  return 1;
}

static int http_gc(lua_State *L) {
  lds_http_t *u = luaL_checkudata(L, 1, HTTP_MT);
  if (u->h != NULL) {
    ds_http_free(u->h);
    u->h = NULL;
  }
  return 0;
}

static const luaL_Reg http_methods[] = {
  {"port", http_port},
  {"set", http_set},
  {"stats", http_stats},
  {"close", http_close},
  {"closed", http_closed},
  {NULL, NULL}
};

void lds_open_http(lua_State *L) {
  luaL_newmetatable(L, HTTP_MT);
  lua_newtable(L);
  luaL_register(L, NULL, http_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, http_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_pushcfunction(L, http_new);
  lua_setfield(L, -2, "http_new");
}

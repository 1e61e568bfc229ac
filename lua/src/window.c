/* Glue for window buffers (dstream/window.h): one userdata per windowed
 * stream, called once per batch entering or leaving the window, never per
 * record.
 *
 *   core.window_new(step_ms, len_ms) -> window | nil, "EINVAL: ...", "EINVAL"
 *   w:push(t, bytes)  -> true | nil, "ENAME: ...", "ENAME"   (bytes copied)
 *   w:get(t)          -> bytes ("" for an empty batch) | nil when not held
 *   w:evict(t)        -> number of batches dropped
 *   w:bytes()         -> bytes held;  w:count() -> batches held
 *   w:checkpoint(since_t) -> string: the batches held with time > since_t
 *                     (all when nil), their times and the buffer's newest
 *   w:restore(s)      -> true | nil, "ENAME: ...", "ENAME": pushes them
 *                     (window.h: CHECKPOINT FORMAT)
 *   w:close()         frees everything; also run by __gc
 */
#include <math.h>

#include "lds.h"

#include "dstream/error.h"
#include "dstream/window.h"

#define WINDOW_MT "dstream.window"

typedef struct {
  ds_window_t w;
  int open;
} lds_window_t;

static ds_window_t *lds_check_window(lua_State *L, int idx) {
  lds_window_t *u = luaL_checkudata(L, idx, WINDOW_MT);
  if (!u->open)
    luaL_argerror(L, idx, "window buffer is closed");
  return &u->w;
}

/* A batch time or duration in whole milliseconds. */
static int64_t check_ms(lua_State *L, int idx) {
  lua_Number ms = luaL_checknumber(L, idx);
  if (ms != floor(ms) || fabs(ms) > 9007199254740992.0)
    luaL_argerror(L, idx, "must be a whole number of milliseconds");
  return (int64_t)ms;
}

static int window_new(lua_State *L) {
  int64_t step = check_ms(L, 1), len = check_ms(L, 2);
  lds_window_t *u = lua_newuserdata(L, sizeof(*u));
  int rc;
  u->open = 0;
  rc = ds_window_init(&u->w, step, len);
  if (rc != 0)
    return lds_fail(L, rc, "the window length must be a positive multiple of the step");
  u->open = 1;
  luaL_getmetatable(L, WINDOW_MT);
  lua_setmetatable(L, -2);
  return 1;
}

static int window_push(lua_State *L) {
  ds_window_t *w = lds_check_window(L, 1);
  int64_t t = check_ms(L, 2);
  size_t len;
  const char *data = luaL_checklstring(L, 3, &len);
  int rc = ds_window_push(w, t, data, len);
  if (rc == DS_EINVAL)
    return lds_fail(L, rc, "batch time is not a multiple of the window's step");
  if (rc == DS_ERANGE)
    return lds_fail(L, rc, "batch time is not after the newest batch held");
  if (rc != 0)
    return lds_fail(L, rc, "window buffer");
  lua_pushboolean(L, 1);
  return 1;
}

static int window_get(lua_State *L) {
  ds_window_t *w = lds_check_window(L, 1);
  const char *data;
  size_t len;
  if (!ds_window_get(w, check_ms(L, 2), &data, &len))
    return 0;
  lua_pushlstring(L, len > 0 ? data : "", len);
  return 1;
}

static int window_evict(lua_State *L) {
  ds_window_t *w = lds_check_window(L, 1);
  lua_pushnumber(L, (lua_Number)ds_window_evict(w, check_ms(L, 2)));
  return 1;
}

static int window_bytes(lua_State *L) {
  lua_pushnumber(L, (lua_Number)lds_check_window(L, 1)->bytes);
  return 1;
}

static int window_count(lua_State *L) {
  lua_pushnumber(L, (lua_Number)lds_check_window(L, 1)->count);
  return 1;
}

static int window_checkpoint(lua_State *L) {
  ds_window_t *w = lds_check_window(L, 1);
  int64_t since = lua_isnoneornil(L, 2) ? INT64_MIN : check_ms(L, 2);
  ds_buf_t out;
  int rc;
  ds_buf_init(&out);
  rc = ds_window_checkpoint(w, since, &out);
  if (rc != 0) {
    ds_buf_close(&out);
    return luaL_error(L, "window checkpoint: %s", ds_strerror(rc));
  }
  lua_pushlstring(L, out.len > 0 ? out.data : "", out.len);
  ds_buf_close(&out);
  return 1;
}

static int window_restore(lua_State *L) {
  ds_window_t *w = lds_check_window(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  char errbuf[256];
  int rc;
  errbuf[0] = 0;
  rc = ds_window_restore(w, data, len, errbuf, sizeof errbuf);
  if (rc != 0)
    return lds_fail(L, rc, errbuf);
  lua_pushboolean(L, 1);
  return 1;
}

static int window_close(lua_State *L) {
  lds_window_t *u = luaL_checkudata(L, 1, WINDOW_MT);
  if (u->open) {
    ds_window_close(&u->w);
    u->open = 0;
  }
  return 0;
}

static int window_tostring(lua_State *L) {
  lds_window_t *u = luaL_checkudata(L, 1, WINDOW_MT);
  if (!u->open) {
    lua_pushliteral(L, "dstream.window (closed)");
    return 1;
  }
  lua_pushfstring(L, "dstream.window (%f batches, %f bytes, window %f ms)",
                  (lua_Number)u->w.count, (lua_Number)u->w.bytes, (lua_Number)u->w.len_ms);
  return 1;
}

static const luaL_Reg window_methods[] = {
  {"push", window_push},
  {"get", window_get},
  {"evict", window_evict},
  {"bytes", window_bytes},
  {"count", window_count},
  {"checkpoint", window_checkpoint},
  {"restore", window_restore},
  {"close", window_close},
  {NULL, NULL}
};

void lds_open_window(lua_State *L) {
  luaL_newmetatable(L, WINDOW_MT);
  lua_newtable(L);
  luaL_register(L, NULL, window_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, window_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, window_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  lua_pushcfunction(L, window_new);
  lua_setfield(L, -2, "window_new");
}

/* Glue for checkpoint files (dstream/checkpoint.h): core.checkpoint_open(dir)
 * gives a "dstream.checkpoint" userdata with write, load and close. The C
 * struct is kept inline (nothing else points to it); close() and __gc share
 * one idempotent close. Failures return nil, "ENAME: message (detail)",
 * "ENAME"; misuse (a bad kind, a section that is not two strings) raises. */
#include <string.h>

#include "lds.h"

#include "dstream/alloc.h"
#include "dstream/checkpoint.h"
#include "dstream/error.h"

#define ERRBUF 4096
#define CHECKPOINT_MT "dstream.checkpoint"
#define SECTIONS_MT "dstream.checkpoint_sections"
#define LOADED_MT "dstream.checkpoint_loaded"

typedef struct {
  ds_checkpoint_t cp;
  int open;
} lds_checkpoint_t;

static lds_checkpoint_t *lds_check_checkpoint(lua_State *L, int idx) {
  lds_checkpoint_t *u = luaL_checkudata(L, idx, CHECKPOINT_MT);
  if (!u->open)
    luaL_argerror(L, idx, "checkpoint directory is closed");
  return u;
}

/* A C array of sections owned by a userdata, so that a raise while the Lua
 * table is read frees it. */
typedef struct {
  ds_checkpoint_section_t *s;
} lds_sections_t;

static int sections_gc(lua_State *L) {
  lds_sections_t *box = luaL_checkudata(L, 1, SECTIONS_MT);
  ds_free(box->s);
  box->s = NULL;
  return 0;
}

/* A load's result owned by a userdata while it becomes Lua tables. */
static int loaded_gc(lua_State *L) {
  ds_checkpoint_loaded_close(luaL_checkudata(L, 1, LOADED_MT));
  return 0;
}

/* core.checkpoint_open(dir) -> cp | nil, err: makes dir if missing. */
static int checkpoint_open(lua_State *L) {
  char errbuf[ERRBUF];
  size_t len;
  const char *dir = luaL_checklstring(L, 1, &len);
  lds_checkpoint_t *u;
  int rc;
  if (strlen(dir) != len)
    luaL_argerror(L, 1, "path holds a NUL byte");
  u = lua_newuserdata(L, sizeof *u);
  u->open = 0;
  luaL_getmetatable(L, CHECKPOINT_MT);
  lua_setmetatable(L, -2);
  rc = ds_checkpoint_init(&u->cp, dir, errbuf, sizeof errbuf);
  if (rc != 0)
    return lds_fail(L, rc, errbuf);
  u->open = 1;
  return 1;
}

/* One field of a section: s[i] or s[key], a string. */
static const char *section_field(lua_State *L, int t, int i, const char *key, size_t *len) {
  const char *p;
  lua_rawgeti(L, t, i);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_getfield(L, t, key);
  }
  if (lua_type(L, -1) != LUA_TSTRING)
    return NULL;
  p = lua_tolstring(L, -1, len);
  lua_pop(L, 1); /* the table keeps the string alive */
  return p;
}

/* cp:write(kind, t_ms, sections) -> bytes | nil, err
 * kind "full" | "delta" | "pending"; sections: array of {name, data}. */
static int checkpoint_write(lua_State *L) {
  static const char *const kinds[] = {"full", "delta", "pending", NULL};
  char errbuf[ERRBUF];
  lds_checkpoint_t *u = lds_check_checkpoint(L, 1);
  int kind = luaL_checkoption(L, 2, NULL, kinds);
  lua_Number t = luaL_checknumber(L, 3);
  lds_sections_t *box;
  uint64_t bytes = 0;
  size_t n, i;
  int rc;
  if (!(t >= 0 && t <= 9007199254740992.0) || t != (lua_Number)(int64_t)t)
    luaL_argerror(L, 3, "batch time must be a whole number of ms, 0 or more");
  luaL_checktype(L, 4, LUA_TTABLE);
  n = lua_objlen(L, 4);
  box = lua_newuserdata(L, sizeof *box);
  box->s = NULL;
  luaL_getmetatable(L, SECTIONS_MT);
  lua_setmetatable(L, -2);
  box->s = ds_calloc(n > 0 ? n : 1, sizeof *box->s);
  if (box->s == NULL)
    return luaL_error(L, "not enough memory");
  for (i = 0; i < n; i++) {
    ds_checkpoint_section_t *s = &box->s[i];
    lua_rawgeti(L, 4, (int)i + 1);
    if (!lua_istable(L, -1))
      return luaL_argerror(L, 4, lua_pushfstring(L, "section %d is not a table {name, data}",
                                                 (int)i + 1));
    s->name = section_field(L, lua_gettop(L), 1, "name", &s->name_len);
    s->data = section_field(L, lua_gettop(L), 2, "data", &s->len);
    if (s->name == NULL || s->data == NULL)
      return luaL_argerror(L, 4, lua_pushfstring(L, "section %d needs a name and data, "
                                                 "both strings", (int)i + 1));
    lua_pop(L, 1);
  }
  rc = ds_checkpoint_write(&u->cp, (ds_checkpoint_kind_t)kind, (int64_t)t, box->s, n, &bytes,
                           errbuf, sizeof errbuf);
  ds_free(box->s);
  box->s = NULL;
  if (rc != 0)
    return lds_fail(L, rc, errbuf);
  lua_pushnumber(L, (lua_Number)bytes);
  return 1;
}

static void push_sections(lua_State *L, const ds_checkpoint_file_t *f) {
  size_t i;
  lua_createtable(L, (int)f->nsections, 0);
  for (i = 0; i < f->nsections; i++) {
    lua_createtable(L, 0, 2);
    lua_pushlstring(L, f->sections[i].name, f->sections[i].name_len);
    lua_setfield(L, -2, "name");
    lua_pushlstring(L, f->sections[i].data, f->sections[i].len);
    lua_setfield(L, -2, "data");
    lua_rawseti(L, -2, (int)i + 1);
  }
}

static void push_file(lua_State *L, const ds_checkpoint_file_t *f) {
  lua_createtable(L, 0, 6);
  lua_pushstring(L, ds_checkpoint_kind_name(f->kind));
  lua_setfield(L, -2, "kind");
  if (f->kind != DS_CHECKPOINT_PENDING) {
    lua_pushnumber(L, (lua_Number)f->seq);
    lua_setfield(L, -2, "seq");
  }
  lua_pushnumber(L, (lua_Number)f->time_ms);
  lua_setfield(L, -2, "time");
  if (f->name != NULL) {
    lua_pushstring(L, f->name);
    lua_setfield(L, -2, "file");
  }
  lua_pushnumber(L, (lua_Number)f->size);
  lua_setfield(L, -2, "bytes");
  push_sections(L, f);
  lua_setfield(L, -2, "sections");
}

static void push_warnings(lua_State *L, const ds_checkpoint_loaded_t *r) {
  size_t i;
  lua_createtable(L, (int)r->nwarnings, 0);
  for (i = 0; i < r->nwarnings; i++) {
    lua_pushstring(L, r->warnings[i]);
    lua_rawseti(L, -2, (int)i + 1);
  }
}

/* cp:load() -> {time, seq, chain, pending, warnings} | nil (no checkpoint)
 * | nil, err (every checkpoint damaged, or a system error). */
static int checkpoint_load(lua_State *L) {
  char errbuf[ERRBUF];
  lds_checkpoint_t *u = lds_check_checkpoint(L, 1);
  ds_checkpoint_loaded_t *r = lua_newuserdata(L, sizeof *r);
  const ds_checkpoint_file_t *last;
  size_t i;
  int rc;
  memset(r, 0, sizeof *r);
  luaL_getmetatable(L, LOADED_MT);
  lua_setmetatable(L, -2);
  rc = ds_checkpoint_load(&u->cp, r, errbuf, sizeof errbuf);
  if (rc == DS_ENOENT && r->nwarnings == 0) {
    ds_checkpoint_loaded_close(r);
    lua_pushnil(L);
    return 1;
  }
  if (rc != 0) {
    ds_checkpoint_loaded_close(r);
    return lds_fail(L, rc, errbuf);
  }
  last = &r->chain[r->nchain - 1];
  lua_createtable(L, 0, 5);
  lua_pushnumber(L, (lua_Number)last->time_ms);
  lua_setfield(L, -2, "time");
  lua_pushnumber(L, (lua_Number)last->seq);
  lua_setfield(L, -2, "seq");
  lua_createtable(L, (int)r->nchain, 0);
  for (i = 0; i < r->nchain; i++) {
    push_file(L, &r->chain[i]);
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_setfield(L, -2, "chain");
  lua_createtable(L, (int)r->npending, 0);
  for (i = 0; i < r->npending; i++) {
    push_file(L, &r->pending[i]);
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_setfield(L, -2, "pending");
  push_warnings(L, r);
  lua_setfield(L, -2, "warnings");
  ds_checkpoint_loaded_close(r);
  return 1;
}

static int checkpoint_close(lua_State *L) {
  lds_checkpoint_t *u = luaL_checkudata(L, 1, CHECKPOINT_MT);
  if (u->open) {
    ds_checkpoint_close(&u->cp);
    u->open = 0;
  }
  return 0;
}

static int checkpoint_tostring(lua_State *L) {
  lds_checkpoint_t *u = luaL_checkudata(L, 1, CHECKPOINT_MT);
  if (u->open)
    lua_pushfstring(L, "dstream.checkpoint (%s)", u->cp.dir);
  else
    lua_pushliteral(L, "dstream.checkpoint (closed)");
  return 1;
}

void lds_open_checkpoint(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"write", checkpoint_write},
      {"load", checkpoint_load},
      {"close", checkpoint_close},
      {NULL, NULL}};
  luaL_newmetatable(L, SECTIONS_MT);
  lua_pushcfunction(L, sections_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, LOADED_MT);
  lua_pushcfunction(L, loaded_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, CHECKPOINT_MT);
  lua_newtable(L);
  luaL_register(L, NULL, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, checkpoint_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, checkpoint_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  lua_pushcfunction(L, checkpoint_open);
  lua_setfield(L, -2, "checkpoint_open");
}

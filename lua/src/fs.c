/* Glue for the file-system helpers (dstream/fs.h, dstream/dirscan.h):
 * core.fs_list, core.fs_stat, core.fs_read_lines, core.fs_write,
 * core.fs_mkdirs, core.fs_rename, core.fs_exchange, core.fs_fsync_dir, core.fs_remove_tree,
 * core.fs_reader (a "dstream.fs_reader" userdata) and core.dirscan_new (a
 * "dstream.dirscan" userdata). Each returns its result (true when there is
 * none) or nil, "ENAME: message (path)", "ENAME"; a path that is not a
 * string, or holds a NUL, raises. Both userdata hold plain C structs that
 * nothing else points to, so they are kept inline; close() and __gc share
 * one idempotent close. */
#include <string.h>

#include "lds.h"

#include "dstream/dirscan.h"
#include "dstream/error.h"
#include "dstream/fs.h"

#define ERRBUF 1024
#define READER_MT "dstream.fs_reader"
#define DIRSCAN_MT "dstream.dirscan"
#define NAMES_MT "dstream.fs_names"

typedef struct {
  ds_fs_reader_t r;
  int open;
} lds_reader_t;

typedef struct {
  ds_dirscan_t sc;
  int open;
} lds_dirscan_t;

static lds_reader_t *lds_check_reader(lua_State *L, int idx) {
  lds_reader_t *u = luaL_checkudata(L, idx, READER_MT);
  if (!u->open)
    luaL_argerror(L, idx, "reader is closed");
  return u;
}

static lds_dirscan_t *lds_check_dirscan(lua_State *L, int idx) {
  lds_dirscan_t *u = luaL_checkudata(L, idx, DIRSCAN_MT);
  if (!u->open)
    luaL_argerror(L, idx, "dirscan is closed");
  return u;
}

static const char *lds_check_path(lua_State *L, int idx) {
  size_t len;
  const char *path = luaL_checklstring(L, idx, &len);
  if (strlen(path) != len)
    luaL_argerror(L, idx, "path holds a NUL byte");
  return path;
}

static int done(lua_State *L, int rc, const char *errbuf) {
  if (rc != 0)
    return lds_fail(L, rc, errbuf);
  lua_pushboolean(L, 1);
  return 1;
}

/* Push an array of n names (a name holds no NUL). */
static void push_names(lua_State *L, char **names, size_t n) {
  size_t i;
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    lua_pushstring(L, names[i]);
    lua_rawseti(L, -2, (int)i + 1);
  }
}

/* The names of ds_fs_list, owned by a userdata while they become Lua
 * strings (which may raise: out of memory), so they are freed either way. */
typedef struct {
  char **names;
  size_t n;
} lds_names_t;

static int names_gc(lua_State *L) {
  lds_names_t *box = luaL_checkudata(L, 1, NAMES_MT);
  ds_fs_list_free(box->names, box->n);
  box->names = NULL;
  box->n = 0;
  return 0;
}

/* core.fs_list(dir) -> sorted array of entry names */
static int fs_list(lua_State *L) {
  char errbuf[ERRBUF], **names;
  const char *dir = lds_check_path(L, 1);
  lds_names_t *box = lua_newuserdata(L, sizeof(*box));
  size_t n;
  int rc;
  box->names = NULL;
  box->n = 0;
  luaL_getmetatable(L, NAMES_MT);
  lua_setmetatable(L, -2);
  rc = ds_fs_list(dir, &names, &n, errbuf, sizeof(errbuf));
  if (rc != 0)
    return lds_fail(L, rc, errbuf);
  box->names = names;
  box->n = n;
  push_names(L, names, n);
  ds_fs_list_free(names, n);
  box->names = NULL;
  box->n = 0;
  return 1;
}

static void push_stat(lua_State *L, const ds_fs_stat_t *st) {
  lua_createtable(L, 0, 7);
  lua_pushnumber(L, (lua_Number)st->size);
  lua_setfield(L, -2, "size");
  /* ms with the sub-ms part as a fraction (a double keeps ~0.25 us of it). */
  lua_pushnumber(L, (lua_Number)(st->mtime_ns / 1000000) + (lua_Number)(st->mtime_ns % 1000000) / 1e6);
  lua_setfield(L, -2, "mtime");
  lua_pushnumber(L, (lua_Number)(st->btime_ns / 1000000) + (lua_Number)(st->btime_ns % 1000000) / 1e6);
  lua_setfield(L, -2, "btime");
  lua_pushnumber(L, (lua_Number)st->ino);
  lua_setfield(L, -2, "ino");
  lua_pushstring(L, ds_fs_kind_name(st->kind));
  lua_setfield(L, -2, "kind");
  lua_pushboolean(L, st->is_dir);
  lua_setfield(L, -2, "dir");
  lua_pushboolean(L, st->kind == DS_FS_FILE);
  lua_setfield(L, -2, "file");
}

/* core.fs_stat(path) -> {size = bytes, mtime = ms, btime = ms or 0, ino,
 * kind = "file" | "directory" | "FIFO" | ..., dir = bool, file = bool} */
static int fs_stat(lua_State *L) {
  char errbuf[ERRBUF];
  ds_fs_stat_t st;
  int rc = ds_fs_stat(lds_check_path(L, 1), &st, errbuf, sizeof(errbuf));
  if (rc != 0)
    return lds_fail(L, rc, errbuf);
  push_stat(L, &st);
  return 1;
}

/* core.fs_reader(path, maxLineBytes = 1 MiB) -> reader; refuses anything
 * but a regular file without blocking (EIO "not a regular file: FIFO"). */
static int fs_reader(lua_State *L) {
  char errbuf[ERRBUF];
  const char *path = lds_check_path(L, 1);
  lua_Number max = luaL_optnumber(L, 2, 1024 * 1024);
  lds_reader_t *u;
  int rc;
  if (!(max >= 1 && max <= 4294967295.0) || max != (lua_Number)(size_t)max)
    luaL_argerror(L, 2, "maxLineBytes must be an integer from 1 to 4294967295");
  u = lua_newuserdata(L, sizeof(*u));
  u->open = 0;
  rc = ds_fs_reader_open(&u->r, path, (size_t)max, errbuf, sizeof(errbuf));
  if (rc != 0) {
    ds_fs_reader_close(&u->r);
    return lds_fail(L, rc, errbuf);
  }
  u->open = 1;
  luaL_getmetatable(L, READER_MT);
  lua_setmetatable(L, -2);
  return 1;
}

/* reader:read(t, n, budget) -> n', eof: reads at most budget bytes and
 * appends their complete lines to t after index n. */
static int reader_read(lua_State *L) {
  char errbuf[ERRBUF];
  lds_reader_t *u = lds_check_reader(L, 1);
  lua_Number n = luaL_checknumber(L, 3), budget = luaL_checknumber(L, 4);
  ds_block_t *blk, **slot;
  int rc;
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!(n >= 0 && n < 2147483647.0) || n != (lua_Number)(int)n)
    luaL_argerror(L, 3, "n must be a whole number >= 0");
  if (!(budget >= 1 && budget <= 1073741824.0))
    luaL_argerror(L, 4, "budget must be from 1 byte to 1 GiB");
  if (u->r.eof) {
    lua_pushnumber(L, n);
    lua_pushboolean(L, 1);
    return 2;
  }
  lua_settop(L, 4);
  slot = lds_chain_new(L);
  rc = ds_fs_reader_next(&u->r, (size_t)budget, &blk, errbuf, sizeof(errbuf));
  if (rc != 0)
    return lds_fail(L, rc, errbuf);
  *slot = blk;
  n = (lua_Number)lds_append_blocks(L, 5, 2, (size_t)n);
  lua_pushnumber(L, n);
  lua_pushboolean(L, u->r.eof);
  return 2;
}

/* reader:skipped() -> lines longer than maxLineBytes skipped so far */
static int reader_skipped(lua_State *L) {
  lua_pushnumber(L, (lua_Number)lds_check_reader(L, 1)->r.lines.skipped);
  return 1;
}

/* reader:offset() -> bytes read so far */
static int reader_offset(lua_State *L) {
  lua_pushnumber(L, (lua_Number)lds_check_reader(L, 1)->r.offset);
  return 1;
}

/* reader:stat() -> fs_stat's table for the file as it was opened */
static int reader_stat(lua_State *L) {
  push_stat(L, &lds_check_reader(L, 1)->r.st);
  return 1;
}

/* reader:close(): idempotent; also run by __gc */
static int reader_close(lua_State *L) {
  lds_reader_t *u = luaL_checkudata(L, 1, READER_MT);
  if (u->open)
    ds_fs_reader_close(&u->r);
  u->open = 0;
  return 0;
}

/* core.dirscan_new() -> a scan that knows no names yet */
static int dirscan_new(lua_State *L) {
  lds_dirscan_t *u = lua_newuserdata(L, sizeof(*u));
  ds_dirscan_init(&u->sc);
  u->open = 1;
  luaL_getmetatable(L, DIRSCAN_MT);
  lua_setmetatable(L, -2);
  return 1;
}

/* scan:update(dir) -> changed, gone: arrays of names, sorted */
static int dirscan_update(lua_State *L) {
  char errbuf[ERRBUF];
  lds_dirscan_t *u = lds_check_dirscan(L, 1);
  int rc = ds_dirscan_update(&u->sc, lds_check_path(L, 2), errbuf, sizeof(errbuf));
  if (rc != 0)
    return lds_fail(L, rc, errbuf);
  push_names(L, u->sc.changed, u->sc.nchanged);
  push_names(L, u->sc.gone, u->sc.ngone);
  return 2;
}

/* scan:count() -> names the scan holds (those of the last scan) */
static int dirscan_count(lua_State *L) {
  lua_pushnumber(L, (lua_Number)lds_check_dirscan(L, 1)->sc.count);
  return 1;
}

/* scan:close(): idempotent; also run by __gc */
static int dirscan_close(lua_State *L) {
  lds_dirscan_t *u = luaL_checkudata(L, 1, DIRSCAN_MT);
  if (u->open)
    ds_dirscan_close(&u->sc);
  u->open = 0;
  return 0;
}

/* core.fs_read_lines(path, maxLineBytes = 1 MiB) -> array of lines, n, skipped */
static int fs_read_lines(lua_State *L) {
  char errbuf[ERRBUF];
  const char *path = lds_check_path(L, 1);
  lua_Number max = luaL_optnumber(L, 2, 1024 * 1024);
  ds_block_t *blk, **slot;
  uint64_t skipped;
  size_t n;
  int rc;
  if (!(max >= 1 && max <= 4294967295.0) || max != (lua_Number)(size_t)max)
    luaL_argerror(L, 2, "maxLineBytes must be an integer from 1 to 4294967295");
  slot = lds_chain_new(L);
  rc = ds_fs_read_lines(path, (size_t)max, &blk, &skipped, errbuf, sizeof(errbuf));
  if (rc != 0)
    return lds_fail(L, rc, errbuf);
  *slot = blk;
  n = lds_push_blocks(L);
  lua_pushnumber(L, (lua_Number)n);
  lua_pushnumber(L, (lua_Number)skipped);
  return 3;
}

/* core.fs_write(path, data) -> true: create or replace, then fsync */
static int fs_write(lua_State *L) {
  char errbuf[ERRBUF];
  const char *path = lds_check_path(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  return done(L, ds_fs_write(path, data, len, errbuf, sizeof(errbuf)), errbuf);
}

/* core.fs_mkdirs(path) -> true */
static int fs_mkdirs(lua_State *L) {
  char errbuf[ERRBUF];
  return done(L, ds_fs_mkdirs(lds_check_path(L, 1), errbuf, sizeof(errbuf)), errbuf);
}

/* core.fs_rename(from, to) -> true */
static int fs_rename(lua_State *L) {
  char errbuf[ERRBUF];
  const char *from = lds_check_path(L, 1), *to = lds_check_path(L, 2);
  return done(L, ds_fs_rename(from, to, errbuf, sizeof(errbuf)), errbuf);
}

/* core.fs_exchange(a, b) -> true: swap two names atomically */
static int fs_exchange(lua_State *L) {
  char errbuf[ERRBUF];
  const char *a = lds_check_path(L, 1), *b = lds_check_path(L, 2);
  return done(L, ds_fs_exchange(a, b, errbuf, sizeof(errbuf)), errbuf);
}

/* core.fs_fsync_dir(path) -> true */
static int fs_fsync_dir(lua_State *L) {
  char errbuf[ERRBUF];
  return done(L, ds_fs_fsync_dir(lds_check_path(L, 1), errbuf, sizeof(errbuf)), errbuf);
}

/* core.fs_remove_tree(path) -> true */
static int fs_remove_tree(lua_State *L) {
  char errbuf[ERRBUF];
  return done(L, ds_fs_remove_tree(lds_check_path(L, 1), errbuf, sizeof(errbuf)), errbuf);
}

static const luaL_Reg fs_functions[] = {
  {"fs_list", fs_list},
  {"fs_stat", fs_stat},
  {"fs_read_lines", fs_read_lines},
  {"fs_write", fs_write},
  {"fs_mkdirs", fs_mkdirs},
  {"fs_rename", fs_rename},
  {"fs_exchange", fs_exchange},
  {"fs_fsync_dir", fs_fsync_dir},
  {"fs_remove_tree", fs_remove_tree},
  {"fs_reader", fs_reader},
  {"dirscan_new", dirscan_new},
  {NULL, NULL}
};

static const luaL_Reg reader_methods[] = {
  {"read", reader_read},
  {"skipped", reader_skipped},
  {"offset", reader_offset},
  {"stat", reader_stat},
  {"close", reader_close},
  {NULL, NULL}
};

static const luaL_Reg dirscan_methods[] = {
  {"update", dirscan_update},
  {"count", dirscan_count},
  {"close", dirscan_close},
  {NULL, NULL}
};

static void new_metatable(lua_State *L, const char *name, const luaL_Reg *methods,
                          lua_CFunction gc) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  luaL_register(L, NULL, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
}

void lds_open_fs(lua_State *L) {
  luaL_newmetatable(L, NAMES_MT);
  lua_pushcfunction(L, names_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  new_metatable(L, READER_MT, reader_methods, reader_close);
  new_metatable(L, DIRSCAN_MT, dirscan_methods, dirscan_close);
  luaL_register(L, NULL, fs_functions);
}

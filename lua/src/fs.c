/* Glue for the file-system helpers (dstream/fs.h): core.fs_list,
 * core.fs_stat, core.fs_read_lines, core.fs_write, core.fs_mkdirs,
 * core.fs_rename, core.fs_fsync_dir and core.fs_remove_tree. Each returns
 * its result (true when there is none) or nil, "ENAME: message (path)",
 * "ENAME"; a path that is not a string, or holds a NUL, raises. */
#include <string.h>

#include "lds.h"

#include "dstream/error.h"
#include "dstream/fs.h"

#define ERRBUF 1024

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

/* core.fs_list(dir) -> sorted array of entry names */
static int fs_list(lua_State *L) {
  char errbuf[ERRBUF], **names;
  size_t n, i;
  int rc = ds_fs_list(lds_check_path(L, 1), &names, &n, errbuf, sizeof(errbuf));
  if (rc != 0)
    return lds_fail(L, rc, errbuf);
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    lua_pushstring(L, names[i]);
    lua_rawseti(L, -2, (int)i + 1);
  }
  ds_fs_list_free(names, n);
  return 1;
}

/* core.fs_stat(path) -> {size = bytes, mtime = ms, dir = bool} */
static int fs_stat(lua_State *L) {
  char errbuf[ERRBUF];
  ds_fs_stat_t st;
  int rc = ds_fs_stat(lds_check_path(L, 1), &st, errbuf, sizeof(errbuf));
  if (rc != 0)
    return lds_fail(L, rc, errbuf);
  lua_createtable(L, 0, 3);
  lua_pushnumber(L, (lua_Number)st.size);
  lua_setfield(L, -2, "size");
  lua_pushnumber(L, (lua_Number)st.mtime_ms);
  lua_setfield(L, -2, "mtime");
  lua_pushboolean(L, st.is_dir);
  lua_setfield(L, -2, "dir");
  return 1;
}

/* core.fs_read_lines(path, maxLineBytes = 1 MiB) -> array of lines, n, skipped */
static int fs_read_lines(lua_State *L) {
  char errbuf[ERRBUF];
  const char *path = lds_check_path(L, 1);
  lua_Number max = luaL_optnumber(L, 2, 1024 * 1024);
  ds_block_t *blk;
  uint64_t skipped;
  size_t n;
  int rc;
  if (!(max >= 1 && max <= 4294967295.0) || max != (lua_Number)(size_t)max)
    luaL_argerror(L, 2, "maxLineBytes must be an integer from 1 to 4294967295");
  rc = ds_fs_read_lines(path, (size_t)max, &blk, &skipped, errbuf, sizeof(errbuf));
  if (rc != 0)
    return lds_fail(L, rc, errbuf);
  n = lds_push_blocks(L, blk);
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
  {"fs_fsync_dir", fs_fsync_dir},
  {"fs_remove_tree", fs_remove_tree},
  {NULL, NULL}
};

void lds_open_fs(lua_State *L) {
  luaL_register(L, NULL, fs_functions);
}

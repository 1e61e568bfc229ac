/* Glue for the write-ahead log (dstream/wal.h): core.wal_open(dir, opts) and
 * the methods of a "dstream.wal" userdata. Called once per block appended
 * and once per replayed batch, never per record.
 *
 *   core.wal_open(dir [, {segmentBytes = n}]) -> wal | nil, err, code
 *   wal:append(stream, data) -> seq | nil, err, code   data: core.encode(...)
 *   wal:replay(stream, after_seq [, upto_seq]) -> arr, n, ends, last_seq
 *   wal:last_seq() -> n
 *   wal:release(seq) -> segments deleted | nil, err, code
 *   wal:warnings() -> array of strings
 *   wal:close()
 *
 * The userdata boxes a pointer: close() only closes the files, the C object
 * lives until __gc, because a socket receiver (lua/src/socket.c) may still
 * hold it - its appends then fail with ECLOSED instead of touching freed
 * memory. A socket keeps its WAL's userdata in its environment and is
 * created after it, so the socket is finalized first.
 *
 * Codec blocks are decoded by core.decode (lua/src/codec.c), kept as an
 * upvalue of replay. A replay's segment mapping lives in a userdata of its
 * own, so a Lua error half way (out of memory) unmaps it through __gc. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "lds.h"

#include "dstream/error.h"
#include "dstream/wal.h"

#define WAL_MT "dstream.wal"
#define WAL_ITER_MT "dstream.wal_iter"

typedef struct {
  ds_wal_t *w;      /* NULL once freed */
  int closed;
} lds_wal_t;

static lds_wal_t *check_box(lua_State *L, int idx) {
  lds_wal_t *u = luaL_checkudata(L, idx, WAL_MT);
  if (u->w == NULL)
    luaL_argerror(L, idx, "WAL is freed");
  return u;
}

ds_wal_t *lds_check_wal(lua_State *L, int idx) {
  return check_box(L, idx)->w;
}

/* An integer argument >= 0 (exact in a double: up to 2^53). */
static uint64_t check_count(lua_State *L, int idx, const char *what) {
  lua_Number v = luaL_checknumber(L, idx);
  if (!(v >= 0 && v <= 9007199254740992.0) || v != floor(v))
    luaL_argerror(L, idx, lua_pushfstring(L, "%s must be an integer >= 0", what));
  return (uint64_t)v;
}

static int fail_msg(lua_State *L, int err, const char *msg) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", ds_err_name(err), msg);
  lua_pushstring(L, ds_err_name(err));
  return 3;
}

/* core.wal_open(dir [, opts]) -> wal | nil, err, code */
static int wal_open(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  ds_wal_opts_t o;
  lds_wal_t *u;
  char err[DS_WAL_MESSAGE_MAX];
  int rc;
  ds_wal_opts_init(&o);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 2) != 0) {
      lua_pop(L, 1);
      if (lua_type(L, -1) != LUA_TSTRING || strcmp(lua_tostring(L, -1), "segmentBytes") != 0)
        luaL_argerror(L, 2, lua_pushfstring(L, "unknown option %s (allowed: segmentBytes)",
                                            lua_type(L, -1) == LUA_TSTRING ?
                                            lua_tostring(L, -1) : luaL_typename(L, -1)));
    }
    lua_getfield(L, 2, "segmentBytes");
    if (!lua_isnil(L, -1)) {
      lua_Number v = lua_tonumber(L, -1);
      if (lua_type(L, -1) != LUA_TNUMBER || !(v >= 1 && v <= 1099511627776.0) || v != floor(v))
        luaL_argerror(L, 2, "opts.segmentBytes must be an integer from 1 to 2^40");
      o.segment_bytes = (size_t)v;
    }
    lua_pop(L, 1);
  }
  u = lua_newuserdata(L, sizeof(*u));
  u->w = NULL;
  u->closed = 0;
  luaL_getmetatable(L, WAL_MT);
  lua_setmetatable(L, -2);
  if ((rc = ds_wal_open(dir, &o, &u->w, err, sizeof err)) != 0)
    return fail_msg(L, rc, err);
  return 1;
}

/* wal:append(stream, data) -> seq | nil, err, code */
static int wal_append(lua_State *L) {
  lds_wal_t *u = check_box(L, 1);
  uint64_t stream = check_count(L, 2, "stream");
  size_t len;
  const char *data = luaL_checklstring(L, 3, &len);
  char err[DS_WAL_MESSAGE_MAX];
  uint64_t seq;
  int rc = ds_wal_append(u->w, stream, DS_WAL_CODEC, data, len, &seq, err, sizeof err);
  if (rc != 0)
    return fail_msg(L, rc, err);
  lua_pushnumber(L, (lua_Number)seq);
  return 1;
}

static int iter_gc(lua_State *L) {
  ds_wal_iter_close(luaL_checkudata(L, 1, WAL_ITER_MT));
  return 0;
}

/* Append the records of a codec block to the table at t after index n. */
static size_t push_codec(lua_State *L, const ds_wal_block_t *blk, int t, size_t n) {
  uint32_t i;
  lua_pushvalue(L, lua_upvalueindex(1)); /* core.decode */
  lua_pushlstring(L, blk->data, blk->len);
  lua_call(L, 1, 2);
  if (lua_isnil(L, -2))
    luaL_error(L, "seq %f: %s", (double)blk->seq, lua_tostring(L, -1));
  for (i = 1; i <= blk->count; i++) {
    lua_rawgeti(L, -2, (int)i);
    lua_rawseti(L, t, (int)(n + i));
  }
  lua_pop(L, 2);
  return n + blk->count;
}

/* Append the records of a lines block to the table at t after index n. */
static size_t push_lines(lua_State *L, const ds_wal_block_t *blk, int t, size_t n) {
  const unsigned char *p = (const unsigned char *)blk->data;
  size_t off = 0;
  while (off < blk->len) {
    uint32_t l = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 |
                 (uint32_t)p[off + 3] << 24;
    lua_pushlstring(L, blk->data + off + 4, l);
    lua_rawseti(L, t, (int)++n);
    off += 4 + l;
  }
  return n;
}

/* wal:replay(stream, after_seq [, upto_seq]) -> arr, n, ends, last_seq:
 * the records of stream's blocks with after_seq < seq <= upto_seq (upto nil:
 * all), lines as strings and codec records decoded; ends[i] is where block i
 * ends in arr ({0} when none); last_seq the last block's seq (after_seq if
 * none). nil, err, code when a segment cannot be read. */
static int wal_replay(lua_State *L) {
  lds_wal_t *u = check_box(L, 1);
  uint64_t stream = check_count(L, 2, "stream");
  uint64_t after = check_count(L, 3, "after_seq");
  uint64_t upto = lua_isnoneornil(L, 4) ? UINT64_MAX : check_count(L, 4, "upto_seq");
  uint64_t last = after;
  ds_wal_iter_t *it;
  ds_wal_block_t blk;
  char err[DS_WAL_MESSAGE_MAX];
  size_t n = 0;
  int nblocks = 0, rc;
  lua_settop(L, 4);
  it = lua_newuserdata(L, sizeof(*it)); /* 5 */
  memset(it, 0, sizeof(*it));
  luaL_getmetatable(L, WAL_ITER_MT);
  lua_setmetatable(L, -2);
  ds_wal_iter_init(it, u->w, stream, after, upto);
  lua_newtable(L); /* 6: arr */
  lua_newtable(L); /* 7: ends */
  while ((rc = ds_wal_iter_next(it, &blk, err, sizeof err)) == 1) {
    if (n + blk.count >= (size_t)INT32_MAX)
      luaL_error(L, "more than %d records in one replay", INT32_MAX);
    n = blk.kind == DS_WAL_LINES ? push_lines(L, &blk, 6, n) : push_codec(L, &blk, 6, n);
    lua_pushnumber(L, (lua_Number)n);
    lua_rawseti(L, 7, ++nblocks);
    last = blk.seq;
  }
  ds_wal_iter_close(it);
  if (rc < 0)
    return fail_msg(L, rc, err);
  if (nblocks == 0) {
    lua_pushnumber(L, 0);
    lua_rawseti(L, 7, 1);
  }
  lua_pushvalue(L, 6);
  lua_pushnumber(L, (lua_Number)n);
  lua_pushvalue(L, 7);
  lua_pushnumber(L, (lua_Number)last);
  return 4;
}

/* wal:last_seq() -> the highest seq appended or found */
static int wal_last_seq(lua_State *L) {
  lua_pushnumber(L, (lua_Number)ds_wal_last_seq(check_box(L, 1)->w));
  return 1;
}

/* wal:release(seq) -> segments deleted | nil, err, code */
static int wal_release(lua_State *L) {
  lds_wal_t *u = check_box(L, 1);
  char err[DS_WAL_MESSAGE_MAX];
  int rc = ds_wal_release(u->w, check_count(L, 2, "seq"), err, sizeof err);
  if (rc < 0)
    return fail_msg(L, rc, err);
  lua_pushnumber(L, rc);
  return 1;
}

/* wal:warnings() -> array of strings: torn tails cut, damage skipped */
static int wal_warnings(lua_State *L) {
  const char *const *w;
  size_t n = ds_wal_warnings(check_box(L, 1)->w, &w), i;
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    lua_pushstring(L, w[i]);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

/* wal:close(): close the segment files; idempotent */
static int wal_close(lua_State *L) {
  lds_wal_t *u = luaL_checkudata(L, 1, WAL_MT);
  if (u->w != NULL)
    ds_wal_close(u->w);
  u->closed = 1;
  return 0;
}

static int wal_gc(lua_State *L) {
  lds_wal_t *u = luaL_checkudata(L, 1, WAL_MT);
  ds_wal_free(u->w);
  u->w = NULL;
  return 0;
}

static int wal_tostring(lua_State *L) {
  lds_wal_t *u = luaL_checkudata(L, 1, WAL_MT);
  if (u->w == NULL || u->closed)
    lua_pushliteral(L, "dstream.wal (closed)");
  else
    lua_pushfstring(L, "dstream.wal (last seq %f)", (double)ds_wal_last_seq(u->w));
  return 1;
}

static const luaL_Reg wal_methods[] = {
  {"append", wal_append},
  {"last_seq", wal_last_seq},
  {"release", wal_release},
  {"warnings", wal_warnings},
  {"close", wal_close},
  {NULL, NULL}
};

void lds_open_wal(lua_State *L) {
  luaL_newmetatable(L, WAL_ITER_MT);
  lua_pushcfunction(L, iter_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, WAL_MT);
  lua_newtable(L);
  luaL_register(L, NULL, wal_methods);
  lua_getfield(L, -3, "decode"); /* registered by lds_open_codec */
  lua_pushcclosure(L, wal_replay, 1);
  lua_setfield(L, -2, "replay");
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, wal_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, wal_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  lua_pushcfunction(L, wal_open);
  lua_setfield(L, -2, "wal_open");
}

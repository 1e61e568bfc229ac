/* Codec glue: Lua values to codec frames and back, one call per batch.
 *
 *   core.encode(a, n [, b])   -> frame string          (pairs if b given)
 *   core.decode(s [, pos])    -> a, n, b|false, nextpos
 *   core.encode_value(v)      -> canonical bytes of one value, no frame
 *   core.decode_value(s)      -> v
 *
 * A Lua table is an array when its keys are exactly 1..#t (so {} is an
 * empty array), else a map whose keys must be booleans, numbers or strings.
 * Failures come back as nil, "ENAME: message (detail)", "ENAME" with the
 * offending type and the 1-based record in the detail.
 *
 * The encoders write into one scratch buffer per module, kept as an upvalue
 * userdata: it is reused across calls (no growth in the steady state) and,
 * because the userdata owns it, a Lua error thrown half way leaks nothing.
 * Tables are read with raw access only, so no metamethod runs while it is
 * in use.
 */
#include <math.h>
#include <stdio.h>

#include "lds.h"

#include "dstream/codec.h"
#include "dstream/error.h"

#define SCRATCH_META "dstream.codec_buf"
#define SCRATCH_KEEP (4u << 20) /* larger scratch is freed after a call */

/* The encoder's output, and why it stopped if it did. */
typedef struct {
  ds_buf_t *b;
  const char *type; /* Lua type name of the value the codec cannot hold */
  int as_key;       /* ... found as a map key */
} enc_t;

static ds_buf_t *lds_check_scratch(lua_State *L) {
  ds_buf_t *b = luaL_checkudata(L, lua_upvalueindex(1), SCRATCH_META);
  ds_buf_truncate(b, 0);
  return b;
}

static void scratch_trim(ds_buf_t *b) {
  if (b->cap > SCRATCH_KEEP)
    ds_buf_close(b);
}

static int scratch_gc(lua_State *L) {
  ds_buf_close(luaL_checkudata(L, 1, SCRATCH_META));
  return 0;
}

/* --- encoding ---------------------------------------------------------- */

static int enc_value(lua_State *L, enc_t *e, int idx, int depth);

/* The number of keys of the table at idx, and whether they are 1..#t. */
static size_t table_shape(lua_State *L, int idx, int *is_array) {
  size_t n = lua_objlen(L, idx), count = 0;
  *is_array = 1;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    count++;
    if (*is_array) {
      lua_Number k;
      if (lua_type(L, -2) != LUA_TNUMBER)
        *is_array = 0;
      else if (k = lua_tonumber(L, -2), k < 1 || k > (lua_Number)n ||
               k != floor(k))
        *is_array = 0;
    }
    lua_pop(L, 1);
  }
  if (count != n)
    *is_array = 0;
  return count;
}

static int enc_array(lua_State *L, enc_t *e, int idx, size_t n, int depth) {
  size_t i;
  int err = ds_codec_put_array(e->b, n);
  for (i = 1; err == 0 && i <= n; i++) {
    lua_rawgeti(L, idx, (int)i);
    err = enc_value(L, e, lua_gettop(L), depth);
    lua_pop(L, 1);
  }
  return err;
}

static int enc_map(lua_State *L, enc_t *e, int idx, size_t count, int depth) {
  size_t off = e->b->len;
  int err = ds_codec_put_map(e->b, count);
  if (err != 0)
    return err;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int t = lua_type(L, -2);
    if (t != LUA_TBOOLEAN && t != LUA_TNUMBER && t != LUA_TSTRING) {
      e->type = luaL_typename(L, -2);
      e->as_key = 1;
      err = DS_ETYPE;
    }
    if (err == 0)
      err = enc_value(L, e, lua_gettop(L) - 1, depth);
    if (err == 0)
      err = enc_value(L, e, lua_gettop(L), depth);
    if (err != 0) {
      lua_pop(L, 2);
      return err;
    }
    lua_pop(L, 1);
  }
  return ds_codec_sort_map(e->b, off);
}

/* Encode the value at idx (absolute), inside `depth` tables. */
static int enc_value(lua_State *L, enc_t *e, int idx, int depth) {
  size_t len, count;
  const char *s;
  int is_array;
  switch (lua_type(L, idx)) {
  case LUA_TBOOLEAN:
    return ds_codec_put_bool(e->b, lua_toboolean(L, idx));
  case LUA_TNUMBER:
    return ds_codec_put_number(e->b, lua_tonumber(L, idx));
  case LUA_TSTRING:
    s = lua_tolstring(L, idx, &len);
    return ds_codec_put_str(e->b, s, len);
  case LUA_TTABLE:
    if (depth >= DS_CODEC_MAX_DEPTH || !lua_checkstack(L, 4))
      return DS_EDEPTH;
    count = table_shape(L, idx, &is_array);
    if (is_array)
      return enc_array(L, e, idx, count, depth + 1);
    return enc_map(L, e, idx, count, depth + 1);
  default:
    e->type = luaL_typename(L, idx);
    e->as_key = 0;
    return DS_ETYPE;
  }
}

/* Fail with what stopped the encoder; `where` names the record ("record 3",
 * "the key of record 3") or is "" for a lone value. */
static int enc_fail(lua_State *L, const enc_t *e, int err, const char *where) {
  char detail[160];
  int lone = where[0] == '\0';
  ds_buf_truncate(e->b, 0);
  scratch_trim(e->b);
  if (err == DS_ETYPE)
    snprintf(detail, sizeof detail, "%s%s%s%s", e->type,
             e->as_key ? " as a map key" : "", lone ? "" : " in ", where);
  else if (err == DS_EDEPTH)
    snprintf(detail, sizeof detail, "more than %d nested tables, or a "
             "cycle%s%s", DS_CODEC_MAX_DEPTH, lone ? "" : ", in ", where);
  else
    snprintf(detail, sizeof detail, "%s", where);
  return lds_fail(L, err, detail);
}

/* Encode the value at idx as part `part` ("", "the key of ", "the value of ")
 * of record i; 0, or 1 with the failure triple pushed. */
static int enc_record(lua_State *L, enc_t *e, int idx, const char *part,
                      size_t i) {
  char where[64];
  int err = enc_value(L, e, idx, 0);
  if (err == 0)
    return 0;
  snprintf(where, sizeof where, "%srecord %zu", part, i);
  enc_fail(L, e, err, where);
  return 1;
}

static int l_encode(lua_State *L) {
  enc_t e = {NULL, NULL, 0};
  lua_Number nn;
  size_t n, i, start;
  int pairs;
  luaL_checktype(L, 1, LUA_TTABLE);
  nn = luaL_checknumber(L, 2);
  /* Lua's array indexes are ints. */
  if (!(nn >= 0 && nn <= 2147483647.0) || nn != floor(nn))
    return luaL_argerror(L, 2, "record count must be an integer in 0..2^31-1");
  n = (size_t)nn;
  pairs = !lua_isnoneornil(L, 3);
  if (pairs)
    luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  e.b = lds_check_scratch(L);
  if (ds_frame_begin(e.b, pairs ? DS_FRAME_PAIRS : 0, &start) != 0)
    return enc_fail(L, &e, DS_ENOMEM, "");
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, (int)i);
    if (enc_record(L, &e, 4, pairs ? "the key of " : "", i) != 0)
      return 3;
    if (pairs) {
      lua_rawgeti(L, 3, (int)i);
      if (enc_record(L, &e, 5, "the value of ", i) != 0)
        return 3;
    }
    lua_settop(L, 3);
  }
  if (ds_frame_end(e.b, start, n) != 0)
    return enc_fail(L, &e, DS_ERANGE, "frame payload over 2^32-1 bytes");
  lua_pushlstring(L, e.b->data, e.b->len);
  scratch_trim(e.b);
  return 1;
}

static int l_encode_value(lua_State *L) {
  enc_t e = {NULL, NULL, 0};
  int err;
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  e.b = lds_check_scratch(L);
  err = enc_value(L, &e, 1, 0);
  if (err != 0)
    return enc_fail(L, &e, err, "");
  lua_pushlstring(L, e.b->data, e.b->len);
  scratch_trim(e.b);
  return 1;
}

/* --- decoding ---------------------------------------------------------- */

/* Push the next value of a checked input; 0 or a DS_E* code. */
static int push_value(lua_State *L, ds_cursor_t *c) {
  ds_codec_value_t v;
  size_t i;
  int err = ds_codec_read(c, &v, NULL, 0);
  if (err != 0)
    return err;
  switch (v.tag) {
  case DS_CODEC_FALSE:
  case DS_CODEC_TRUE:
    lua_pushboolean(L, v.tag == DS_CODEC_TRUE);
    return 0;
  case DS_CODEC_INT:
    lua_pushnumber(L, (lua_Number)v.u.i);
    return 0;
  case DS_CODEC_DOUBLE:
    lua_pushnumber(L, v.u.d);
    return 0;
  case DS_CODEC_STR:
    lua_pushlstring(L, v.u.str.ptr, v.u.str.len);
    return 0;
  case DS_CODEC_ARRAY:
    if (!lua_checkstack(L, 4))
      return DS_EDEPTH;
    lua_createtable(L, (int)v.u.count, 0);
    for (i = 1; i <= v.u.count; i++) {
      if ((err = push_value(L, c)) != 0)
        return err;
      lua_rawseti(L, -2, (int)i);
    }
    return 0;
  case DS_CODEC_MAP:
    if (!lua_checkstack(L, 4))
      return DS_EDEPTH;
    lua_createtable(L, 0, (int)v.u.count);
    for (i = 0; i < v.u.count; i++) {
      if ((err = push_value(L, c)) != 0 || (err = push_value(L, c)) != 0)
        return err;
      lua_rawset(L, -3);
    }
    return 0;
  }
  return DS_ECORRUPT;
}

/* Push an array of one value per record of a checked frame: the record
 * itself, or for pairs the key (part 0) or the value (part 1). */
static int push_records(lua_State *L, const ds_frame_t *f, int part) {
  int pairs = (f->flags & DS_FRAME_PAIRS) != 0, err;
  ds_cursor_t c;
  uint32_t i;
  ds_cursor_init_frame(&c, f);
  lua_createtable(L, (int)f->count, 0);
  for (i = 1; i <= f->count; i++) {
    if (pairs && part == 1 && (err = ds_codec_skip(&c, NULL, 0)) != 0)
      return err;
    if ((err = push_value(L, &c)) != 0)
      return err;
    lua_rawseti(L, -2, (int)i);
    if (pairs && part == 0 && (err = ds_codec_skip(&c, NULL, 0)) != 0)
      return err;
  }
  return 0;
}

static int l_decode(lua_State *L) {
  size_t len, off, avail;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_Number pos = luaL_optnumber(L, 2, 1);
  char errbuf[160] = "", detail[200];
  ds_frame_t f;
  int err;
  if (pos < 1 || pos != floor(pos))
    return luaL_argerror(L, 2, "position must be an integer >= 1");
  off = pos - 1 < (lua_Number)len ? (size_t)pos - 1 : len;
  avail = len - off;
  err = ds_frame_open(&f, s + off, avail, errbuf, sizeof errbuf);
  if (err == 0)
    err = push_records(L, &f, 0);
  if (err == 0 && (f.flags & DS_FRAME_PAIRS))
    err = push_records(L, &f, 1);
  else if (err == 0)
    lua_pushboolean(L, 0);
  if (err != 0) {
    snprintf(detail, sizeof detail, "%s%sframe at byte %.0f", errbuf,
             errbuf[0] != '\0' ? "; " : "", pos);
    return lds_fail(L, err, detail);
  }
  lua_pushnumber(L, (lua_Number)f.count);
  lua_insert(L, -2);
  lua_pushnumber(L, pos + (lua_Number)f.size);
  return 4;
}

static int l_decode_value(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char errbuf[160] = "";
  ds_cursor_t c;
  int err = ds_codec_check(s, len, errbuf, sizeof errbuf);
  if (err != 0)
    return lds_fail(L, err, errbuf);
  ds_cursor_init(&c, s, len);
  err = push_value(L, &c);
  if (err != 0)
    return lds_fail(L, err, "");
  return 1;
}

void lds_open_codec(lua_State *L) {
  ds_buf_t *b = lua_newuserdata(L, sizeof *b);
  ds_buf_init(b);
  luaL_newmetatable(L, SCRATCH_META);
  lua_pushcfunction(L, scratch_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, l_encode, 1);
  lua_setfield(L, -3, "encode");
  lua_pushcclosure(L, l_encode_value, 1);
  lua_setfield(L, -2, "encode_value");
  lua_pushcfunction(L, l_decode);
  lua_setfield(L, -2, "decode");
  lua_pushcfunction(L, l_decode_value);
  lua_setfield(L, -2, "decode_value");
}

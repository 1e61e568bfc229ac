/* dstream.core: the C module behind the Lua modules. It only converts and
 * checks; the engine does the work. */
#include <limits.h>

#include "lds.h"

#include "dstream/error.h"

#define CHAIN_MT "dstream.block_chain"

int lds_fail(lua_State *L, int err, const char *detail) {
  lua_pushnil(L);
  if (detail != NULL && detail[0] != '\0')
    lua_pushfstring(L, "%s: %s (%s)", ds_err_name(err), ds_strerror(err), detail);
  else
    lua_pushfstring(L, "%s: %s", ds_err_name(err), ds_strerror(err));
  lua_pushstring(L, ds_err_name(err));
  return 3;
}

/* A block chain owned by a userdata while its records become Lua strings:
 * any string or table allocation may raise (out of memory), and the box's
 * __gc then frees the blocks not yet pushed instead of leaking them. */
typedef struct {
  ds_block_t *chain;
} lds_chain_t;

static int chain_gc(lua_State *L) {
  lds_chain_t *box = luaL_checkudata(L, 1, CHAIN_MT);
  ds_block_t *b = box->chain;
  box->chain = NULL;
  while (b != NULL) {
    ds_block_t *next = b->next;
    ds_block_free(b);
    b = next;
  }
  return 0;
}

ds_block_t **lds_chain_new(lua_State *L) {
  lds_chain_t *box = lua_newuserdata(L, sizeof *box);
  box->chain = NULL;
  luaL_getmetatable(L, CHAIN_MT);
  lua_setmetatable(L, -2);
  return &box->chain;
}

size_t lds_append_blocks(lua_State *L, int box_idx, int t, size_t n) {
  lds_chain_t *box = luaL_checkudata(L, box_idx, CHAIN_MT);
  t = t < 0 ? lua_gettop(L) + t + 1 : t;
  while (box->chain != NULL) {
    ds_block_t *b = box->chain;
    const char *rec;
    size_t len, off = 0;
    while (ds_block_next(b, &off, &rec, &len)) {
      if (n >= (size_t)INT_MAX)
        luaL_error(L, "more than %d records in one array", INT_MAX);
      lua_pushlstring(L, rec, len);
      lua_rawseti(L, t, (int)++n);
    }
    box->chain = b->next;
    ds_block_free(b);
  }
  return n;
}

size_t lds_push_blocks(lua_State *L) {
  const lds_chain_t *box = luaL_checkudata(L, -1, CHAIN_MT);
  size_t n, total = 0;
  for (const ds_block_t *b = box->chain; b != NULL; b = b->next)
    total += b->count;
  /* Sized once: a batch of a million lines must not rehash its array 20 times. */
  lua_createtable(L, total < (size_t)INT_MAX ? (int)total : 0, 0);
  n = lds_append_blocks(L, -2, -1, 0);
  lua_replace(L, -2);
  return n;
}

int luaopen_dstream_core(lua_State *L) {
  luaL_newmetatable(L, CHAIN_MT);
  lua_pushcfunction(L, chain_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_newtable(L);
  lds_open_engine(L);
  lds_open_codec(L);
  lds_open_socket(L);
  lds_open_rate(L);
  lds_open_fs(L);
  lds_open_window(L);
  lds_open_checkpoint(L);
  lds_open_wal(L);
  lds_open_http(L);
  lds_open_kafka(L);
  return 1;
}

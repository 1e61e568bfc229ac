/* dstream.core: the C module behind the Lua modules. It only converts and
 * checks; the engine does the work. */
#include <limits.h>

#include "lds.h"

#include "dstream/error.h"

int lds_fail(lua_State *L, int err, const char *detail) {
  lua_pushnil(L);
  if (detail != NULL && detail[0] != '\0')
    lua_pushfstring(L, "%s: %s (%s)", ds_err_name(err), ds_strerror(err), detail);
  else
    lua_pushfstring(L, "%s: %s", ds_err_name(err), ds_strerror(err));
  lua_pushstring(L, ds_err_name(err));
  return 3;
}

size_t lds_push_blocks(lua_State *L, ds_block_t *chain) {
  size_t n = 0, total = 0;
  for (const ds_block_t *b = chain; b != NULL; b = b->next)
    total += b->count;
  /* Sized once: a batch of a million lines must not rehash its array 20 times. */
  lua_createtable(L, total < (size_t)INT_MAX ? (int)total : 0, 0);
  while (chain != NULL) {
    ds_block_t *next = chain->next;
    const char *rec;
    size_t len, off = 0;
    while (ds_block_next(chain, &off, &rec, &len)) {
      lua_pushlstring(L, rec, len);
      lua_rawseti(L, -2, (int)++n);
    }
    ds_block_free(chain);
    chain = next;
  }
  return n;
}

int luaopen_dstream_core(lua_State *L) {
  lua_newtable(L);
  lds_open_engine(L);
  lds_open_codec(L);
  lds_open_socket(L);
  lds_open_fs(L);
  lds_open_window(L);
  return 1;
}

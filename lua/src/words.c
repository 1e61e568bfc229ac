/* Glue for the word counter (dstream/words.h): core.words_new() and the
 * methods of a "dstream.words" userdata. One call counts a whole batch - an
 * array of Lua strings, or a chain of C blocks whose records never become
 * Lua strings - and one call hands back its (word, count) pairs.
 *
 * The userdata holds the table itself (nothing outlives it), so __gc and
 * close() just free it. On any failure the counter is emptied: a batch is
 * counted whole or not at all, and its caller fails it. */
#include <limits.h>

#include "lds.h"

#include "dstream/error.h"
#include "dstream/words.h"

#define WORDS_MT "dstream.words"

static ds_words_t *lds_check_words(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, WORDS_MT);
}

/* core.words_new() -> an empty counter */
static int words_new(lua_State *L) {
  ds_words_t *w = lua_newuserdata(L, sizeof(*w));
  ds_words_init(w);
  luaL_getmetatable(L, WORDS_MT);
  lua_setmetatable(L, -2);
  return 1;
}

/* counter:add_strings(array, n) -> true | nil, "ETYPE: ...", "ETYPE", i: count
 * the words of array[1..n]; a record that is not a string fails the whole
 * call at its index i. */
static int words_add_strings(lua_State *L) {
  ds_words_t *w = lds_check_words(L, 1);
  lua_Number nn;
  int n, i, rc;
  luaL_checktype(L, 2, LUA_TTABLE);
  nn = luaL_checknumber(L, 3);
  luaL_argcheck(L, nn >= 0 && nn <= INT_MAX && nn == (lua_Number)(int)nn, 3,
                "n must be a whole number of records");
  n = (int)nn;
  for (i = 1; i <= n; i++) {
    size_t len;
    const char *s;
    lua_rawgeti(L, 2, i);
    if (lua_type(L, -1) != LUA_TSTRING) {
      const char *type = luaL_typename(L, -1);
      ds_words_clear(w);
      lua_pushnil(L);
      lua_pushfstring(L, "ETYPE: record %d is a %s, not a string", i, type);
      lua_pushliteral(L, "ETYPE");
      lua_pushinteger(L, i);
      return 4;
    }
    s = lua_tolstring(L, -1, &len);
    rc = ds_words_add(w, s, len);
    lua_pop(L, 1);
    if (rc != 0) {
      ds_words_clear(w);
      return lds_fail(L, rc, "counting words");
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* counter:add_blocks(chain) -> true | nil, err, ename: count the words of
 * every record of a block chain (socket:take_blocks()), freeing its blocks. */
static int words_add_blocks(lua_State *L) {
  ds_words_t *w = lds_check_words(L, 1);
  ds_block_t **box = lds_check_chain(L, 2);
  int rc = 0;
  while (*box != NULL && rc == 0) {
    ds_block_t *b = *box;
    rc = ds_words_add_block(w, b);
    if (rc == 0) {
      *box = b->next;
      ds_block_free(b);
    }
  }
  if (rc != 0) {
    ds_words_clear(w);
    return lds_fail(L, rc, "counting words");
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* counter:result() -> words, counts, m, total: the distinct words counted
 * since the last result (in order of first sight) and their counts, as two
 * arrays; the counter is empty after. */
static int words_result(lua_State *L) {
  ds_words_t *w = lds_check_words(L, 1);
  size_t m = ds_words_distinct(w), i;
  if (m > (size_t)INT_MAX) {
    ds_words_clear(w);
    return luaL_error(L, "more than %d distinct words in one batch", INT_MAX);
  }
  lua_createtable(L, (int)m, 0);
  lua_createtable(L, (int)m, 0);
  for (i = 0; i < m; i++) {
    const char *word;
    size_t len;
    uint64_t count;
    ds_words_get(w, i, &word, &len, &count);
    lua_pushlstring(L, word, len);
    lua_rawseti(L, -3, (int)i + 1);
    lua_pushnumber(L, (lua_Number)count);
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_pushnumber(L, (lua_Number)m);
  lua_pushnumber(L, (lua_Number)w->total);
  ds_words_clear(w);
  return 4;
}

/* counter:split(s) -> array of the words of s (the C split, for specs) */
static int words_split(lua_State *L) {
  size_t len, off = 0, start, wlen;
  const char *s;
  int n = 0;
  lds_check_words(L, 1);
  s = luaL_checklstring(L, 2, &len);
  lua_newtable(L);
  while (ds_words_next(s, len, &off, &start, &wlen)) {
    lua_pushlstring(L, s + start, wlen);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

/* counter:close(), also __gc: free the table; idempotent */
static int words_close(lua_State *L) {
  ds_words_close(lds_check_words(L, 1));
  return 0;
}

static int words_tostring(lua_State *L) {
  lua_pushfstring(L, "dstream.words (%d distinct)", (int)ds_words_distinct(lds_check_words(L, 1)));
  return 1;
}

static const luaL_Reg words_methods[] = {
  {"add_strings", words_add_strings},
  {"add_blocks", words_add_blocks},
  {"result", words_result},
  {"split", words_split},
  {"close", words_close},
  {NULL, NULL}
};

void lds_open_words(lua_State *L) {
  luaL_newmetatable(L, WORDS_MT);
  lua_newtable(L);
  luaL_register(L, NULL, words_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, words_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, words_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  lua_pushcfunction(L, words_new);
  lua_setfield(L, -2, "words_new");
}

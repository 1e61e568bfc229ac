/* The glue (dstream.core) when Lua runs out of memory half way through a call.
 *
 * Each case runs one call in a Lua state (lua_newstate, which LuaJIT's x64
 * GC64 build accepts with a custom allocator) whose allocator fails from its
 * Nth allocation on, for N = 1, 2, ... until the call succeeds. Every run must
 * end in either the complete result or LUA_ERRMEM, and once the state is
 * collected (before lua_close, so a finalizer that only runs at close does
 * not count) nothing the engine allocated (ds_malloc, counted by the
 * harness) may be left: a block chain half turned into Lua strings is owned
 * by Lua and freed by its __gc. Under ASan the same runs also check that
 * nothing is freed twice.
 */
#include <stdlib.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "dstream/block.h"
#include "dstream/fs.h"
#include "harness.h"
#include "lds.h"

int luaopen_dstream_core(lua_State *L);

/* Lua's allocator: counts growing calls and fails from the fail_at-th on. */
typedef struct {
  long calls;
  long fail_at; /* 0: never */
  long live;
} lalloc_t;

static void *lalloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  lalloc_t *a = ud;
  void *p;
  if (nsize == 0) {
    if (ptr != NULL)
      a->live--;
    free(ptr);
    return NULL;
  }
  /* Lua expects a shrinking call to succeed. */
  if ((ptr == NULL || nsize > osize) && a->fail_at > 0 && ++a->calls >= a->fail_at)
    return NULL;
  p = realloc(ptr, nsize);
  if (p != NULL && ptr == NULL)
    a->live++;
  return p;
}

static char dir[64];
static char file[96];

#define LINES 1000

/* A file of LINES lines "line <i>" (the same text rebuilds the expected). */
static void write_file(void) {
  char errbuf[256];
  size_t cap = LINES * 16, len = 0;
  char *data = malloc(cap);
  for (int i = 1; i <= LINES; i++)
    len += (size_t)snprintf(data + len, cap - len, "line %d\n", i);
  CHECK_EQ_INT(ds_fs_write(file, data, len, errbuf, sizeof errbuf), 0);
  free(data);
}

/* Check the array at -1 holds "line 1" .. "line <n>" (or, with prefix
 * NULL, only that it has n entries). */
static void check_lines(lua_State *L, int n, const char *prefix) {
  char want[32];
  int bad = 0;
  CHECK_EQ_INT(lua_objlen(L, -1), n);
  for (int i = 1; prefix != NULL && i <= n && !bad; i++) {
    lua_rawgeti(L, -1, i);
    snprintf(want, sizeof want, "%s %d", prefix, i);
    bad = lua_tostring(L, -1) == NULL || strcmp(lua_tostring(L, -1), want) != 0;
    lua_pop(L, 1);
  }
  CHECK(!bad);
}

/* core.fs_read_lines(file) -> lines, n, skipped */
static int call_read_lines(lua_State *L) {
  lua_getfield(L, 1, "fs_read_lines");
  lua_pushstring(L, file);
  lua_call(L, 1, 3);
  return 3;
}

static void check_read_lines(lua_State *L) {
  CHECK_EQ_INT(lua_tonumber(L, -2), LINES);
  lua_pop(L, 2);
  check_lines(L, LINES, "line");
}

/* core.fs_reader(file):read(t, 0, budget) -> t, n, eof */
static int call_reader_read(lua_State *L) {
  lua_settop(L, 1);
  lua_getfield(L, 1, "fs_reader");
  lua_pushstring(L, file);
  lua_call(L, 1, 1);
  lua_newtable(L);
  lua_getfield(L, 2, "read");
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_pushnumber(L, 0);
  lua_pushnumber(L, 1 << 20);
  lua_call(L, 4, 2);
  return 3;
}

static void check_reader_read(lua_State *L) {
  CHECK_EQ_INT(lua_tonumber(L, -2), LINES);
  CHECK(lua_toboolean(L, -1));
  lua_pop(L, 2);
  check_lines(L, LINES, "line");
}

/* core.fs_list(dir) -> names */
static int call_fs_list(lua_State *L) {
  lua_getfield(L, 1, "fs_list");
  lua_pushstring(L, dir);
  lua_call(L, 1, 1);
  return 1;
}

static void check_fs_list(lua_State *L) {
  check_lines(L, 200, NULL);
}

/* lds_push_blocks over a chain of 5 blocks of 200 records "rec <i>", as
 * socket:take() hands it a batch's blocks. */
static int call_push_chain(lua_State *L) {
  ds_block_t **slot = lds_chain_new(L), *tail = NULL;
  char rec[32];
  for (int b = 0; b < 5; b++) {
    ds_block_t *blk = ds_block_new(64);
    for (int i = 1; i <= 200; i++) {
      int len = snprintf(rec, sizeof rec, "rec %d", b * 200 + i);
      if (ds_block_append(blk, rec, (size_t)len) != 0)
        CHECK(!"ds_block_append failed");
    }
    if (tail == NULL)
      *slot = blk;
    else
      tail->next = blk;
    tail = blk;
  }
  lds_push_blocks(L);
  return 1;
}

static void check_push_chain(lua_State *L) {
  check_lines(L, 1000, "rec");
}

typedef struct {
  const char *name;
  lua_CFunction call;
  void (*check)(lua_State *L);
} case_t;

/* Run c with Lua failing from the n-th allocation; 1 once it succeeded. */
static int run_once(const case_t *c, long n) {
  lalloc_t a = {0, 0, 0};
  lua_State *L = lua_newstate(lalloc, &a);
  int rc, ok = 0;
  CHECK(L != NULL);
  if (L == NULL)
    return 1;
  luaL_openlibs(L);
  lua_pushcfunction(L, c->call);
  luaopen_dstream_core(L);
  lua_gc(L, LUA_GCCOLLECT, 0);
  a.fail_at = n;
  rc = lua_pcall(L, 1, LUA_MULTRET, 0);
  a.fail_at = 0;
  if (rc == 0) {
    c->check(L);
    ok = 1;
  } else if (rc != LUA_ERRMEM) {
    fprintf(stderr, "%s, failing from allocation %ld: %s\n", c->name, n, lua_tostring(L, -1));
    CHECK_EQ_INT(rc, LUA_ERRMEM);
  }
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT, 0);
  if (ds_test_live() != 0)
    fprintf(stderr, "%s, failing from allocation %ld: %ld engine allocations left\n",
            c->name, n, ds_test_live());
  CHECK_EQ_INT(ds_test_live(), 0);
  lua_close(L);
  CHECK_EQ_INT(a.live, 0);
  return ok;
}

/* Fail from every allocation the call makes in turn, then let it succeed. */
static void run_case(const case_t *c) {
  long n = 1;
  while (!run_once(c, n) && n < 100000)
    n++;
  printf("%s: %ld runs out of memory before the one that succeeded\n", c->name, n - 1);
  CHECK(n > 1);
}

int main(void) {
  static const case_t cases[] = {
    {"lds_push_blocks", call_push_chain, check_push_chain},
    {"fs_read_lines", call_read_lines, check_read_lines},
    {"reader:read", call_reader_read, check_reader_read},
    {"fs_list", call_fs_list, check_fs_list},
  };
  char errbuf[256], name[128];
  ds_test_begin();
  snprintf(dir, sizeof dir, "/tmp/ds_test_glue_XXXXXX");
  CHECK(mkdtemp(dir) != NULL);
  snprintf(file, sizeof file, "%s/lines", dir);
  write_file();
  for (int i = 1; i < 200; i++) {
    snprintf(name, sizeof name, "%s/name-%03d", dir, i);
    CHECK_EQ_INT(ds_fs_write(name, "", 0, errbuf, sizeof errbuf), 0);
  }
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    run_case(&cases[i]);
  CHECK_EQ_INT(ds_fs_remove_tree(dir, errbuf, sizeof errbuf), 0);
  return ds_test_end("test_glue");
}

/* state_mem: bytes per key and operations per second of the keyed state
 * store, against a plain LuaJIT table holding the same keys, in one run.
 *
 * Workloads (N keys, 2 000 000 by default):
 *   int   integer keys 1e9 + 3i (sparse, as keys of a hash part), numeric
 *         state;
 *   str   string keys of 8-16 bytes (i % 9 + 8), numeric state;
 * each in a store without a timeout and in one with a 30-minute timeout.
 *
 * For each it prints a JSON line with bytes per key three ways - what the
 * store says it holds (ds_state_memory), what it asked ds_malloc for (a
 * counting allocator), and the growth of the process's resident set - and
 * operations per second of a C loop: inserts, updates of present keys,
 * lookups in random order. Then, in an embedded LuaJIT, the baseline: a Lua
 * table with the same keys (bytes per key from collectgarbage("count"),
 * inserts, lookups), and the store driven from Lua through the FFI with the
 * declarations read from core/include/dstream/ffi.h (which checks that they
 * parse with ffi.cdef).
 *
 * Not part of the CMake build; from the repository root:
 *   cmake -S . -B build-state && cmake --build build-state --target dscore
 *   cc -O2 -D_GNU_SOURCE -Icore/include $(pkg-config --cflags luajit) \
 *     bench/state_mem.c build-state/libdscore.a $(pkg-config --libs luajit) \
 *     $(pkg-config --libs libuv) -lm -rdynamic -o build-state/state_mem
 *   build-state/state_mem [N]
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dstream/alloc.h"
#include "dstream/state.h"

#define TIMEOUT_MS (30 * 60 * 1000)
#define FFI_H "core/include/dstream/ffi.h"

/* --- a counting allocator: bytes asked for and not yet freed ------------- */

static size_t live_bytes;

static void *c_malloc(size_t n) {
  size_t *p = malloc(n + 16);
  if (p == NULL)
    return NULL;
  p[0] = n;
  live_bytes += n;
  return (char *)p + 16;
}

static void *c_realloc(void *ptr, size_t n) {
  size_t *p, old;
  if (ptr == NULL)
    return c_malloc(n);
  p = (size_t *)((char *)ptr - 16);
  old = p[0];
  p = realloc(p, n + 16);
  if (p == NULL)
    return NULL;
  p[0] = n;
  live_bytes = live_bytes - old + n;
  return (char *)p + 16;
}

static void c_free(void *ptr) {
  size_t *p;
  if (ptr == NULL)
    return;
  p = (size_t *)((char *)ptr - 16);
  live_bytes -= p[0];
  free(p);
}

static const ds_allocator_t counting = {c_malloc, c_realloc, c_free};

/* --- measuring ----------------------------------------------------------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static size_t rss_bytes(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f != NULL) {
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
      resident = 0;
    fclose(f);
  }
  return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* --- the keys ------------------------------------------------------------ */

#define KEY_MAX 17

static uint32_t scramble(uint32_t i) {
  return i * 2654435761u;
}

/* Key i of the str workload: 0-8 letters, then 8 hex digits of a bijection
 * of i, so every key differs. */
static uint32_t str_key(uint32_t i, char *out) {
  uint32_t len = 8 + i % 9;
  snprintf(out, KEY_MAX, "%.*s%08x", (int)(len - 8), "abcdefgh", scramble(i));
  return len;
}

static double int_key(uint32_t i) {
  return 1e9 + 3.0 * i;
}

/* --- the C loops --------------------------------------------------------- */

typedef struct {
  const char *workload;
  int64_t timeout;
  uint32_t n;
  char *keys; /* str: KEY_MAX bytes a key */
  uint32_t *lens;
  uint32_t *order; /* a random permutation, for lookups */
} run_t;

static int put(ds_state_t *s, const run_t *r, uint32_t i, double v) {
  if (r->keys == NULL)
    return ds_state_put_num_num(s, int_key(i), v, 1000);
  return ds_state_put_bytes_num(s, DS_STATE_STR, r->keys + (size_t)i * KEY_MAX,
                                r->lens[i], v, 1000);
}

static int get(ds_state_t *s, const run_t *r, uint32_t i,
               ds_state_item_t *v) {
  if (r->keys == NULL)
    return ds_state_get_num(s, int_key(i), v);
  return ds_state_get_bytes(s, DS_STATE_STR, r->keys + (size_t)i * KEY_MAX,
                            r->lens[i], v);
}

static void run_c(const run_t *r) {
  ds_state_item_t v;
  ds_state_t *s;
  size_t rss0, live0, mem;
  double t0, t_insert, t_update, t_get, sum = 0;
  uint32_t i;
  int ok = 1;
  malloc_trim(0);
  rss0 = rss_bytes();
  live0 = live_bytes;
  s = ds_state_new(r->timeout);
  t0 = now_s();
  for (i = 0; i < r->n; i++)
    ok &= put(s, r, i, i) >= 0;
  t_insert = now_s() - t0;
  mem = ds_state_memory(s);
  printf("{\"bench\":\"state_mem\",\"variant\":\"c_store\",\"workload\":\"%s\","
         "\"timeout_ms\":%lld,\"keys\":%u,\"bytes_per_key\":%.2f,"
         "\"malloc_bytes_per_key\":%.2f,\"rss_bytes_per_key\":%.2f,",
         r->workload, (long long)r->timeout, ds_state_count(s),
         (double)mem / r->n, (double)(live_bytes - live0) / r->n,
         (double)(rss_bytes() - rss0) / r->n);
  t0 = now_s();
  for (i = 0; i < r->n; i++)
    ok &= put(s, r, i, i + 1.0) >= 0;
  t_update = now_s() - t0;
  t0 = now_s();
  for (i = 0; i < r->n; i++) {
    ok &= get(s, r, r->order[i], &v) >= 0;
    sum += v.num;
  }
  t_get = now_s() - t0;
  printf("\"insert_per_s\":%.0f,\"update_per_s\":%.0f,\"get_random_per_s\":"
         "%.0f,\"ok\":%s,\"checksum\":%.0f}\n",
         r->n / t_insert, r->n / t_update, r->n / t_get,
         ok && sum == (double)r->n * (r->n + 1) / 2 ? "true" : "false", sum);
  fflush(stdout);
  ds_state_free(s);
}

/* --- the Lua side -------------------------------------------------------- */

/* Lua table baseline and FFI runs; N, CDEF and the workload come as
 * globals. Prints its own JSON lines. */
static const char *lua_bench =
    "local ffi = require('ffi')\n"
    "local bit = require('bit')\n"
    "local N, WORKLOAD, TIMEOUT = N, WORKLOAD, TIMEOUT\n"
    "local clock = os.clock\n"
    "local function key(i)\n"
    "  if WORKLOAD == 'int' then return 1e9 + 3 * i end\n"
    "  return ('abcdefgh'):sub(1, i % 9) ..\n"
    "    bit.tohex((i * 2654435761) % 4294967296, 8)\n"
    "end\n"
    "local function line(variant, fields)\n"
    "  io.write(('{\"bench\":\"state_mem\",\"variant\":\"%s\",\"workload\":"
    "\"%s\",\"timeout_ms\":%d,\"keys\":%d,%s}\\n'):format(variant, WORKLOAD, "
    "TIMEOUT, N, fields))\n"
    "  io.flush()\n"
    "end\n"
    "local t, bytes\n"
    "if TIMEOUT == 0 then\n"
    "  -- memory: a table built from keys made fresh, so their strings count\n"
    "  collectgarbage('collect'); collectgarbage('collect')\n"
    "  local before = collectgarbage('count')\n"
    "  t = {}\n"
    "  for i = 0, N - 1 do t[key(i)] = i end\n"
    "  collectgarbage('collect'); collectgarbage('collect')\n"
    "  bytes = (collectgarbage('count') - before) * 1024\n"
    "end\n"
    "local keys, order = {}, {}\n"
    "for i = 1, N do keys[i] = key(i - 1); order[i] = i end\n"
    "math.randomseed(42)\n"
    "for i = N, 2, -1 do local j = math.random(i); order[i], order[j] = "
    "order[j], order[i] end\n"
    "if TIMEOUT == 0 then\n"
    "  local t0 = clock()\n"
    "  local t2 = {}\n"
    "  for i = 1, N do t2[keys[i]] = i end\n"
    "  local t_insert = clock() - t0\n"
    "  t0 = clock()\n"
    "  local sum = 0\n"
    "  for i = 1, N do sum = sum + t2[keys[order[i]]] end\n"
    "  local t_get = clock() - t0\n"
    "  line('lua_table', ('\"bytes_per_key\":%.2f,\"insert_per_s\":%.0f,"
    "\"get_random_per_s\":%.0f,\"checksum\":%.0f'):format(bytes / N, N / "
    "t_insert, N / t_get, sum))\n"
    "  t, t2 = nil, nil\n"
    "end\n"
    "ffi.cdef(CDEF)\n"
    "local C = ffi.C\n"
    "local item = ffi.new('ds_state_item_t')\n"
    "local s = ffi.gc(C.ds_state_new(TIMEOUT), C.ds_state_free)\n"
    "local STR = C.DS_STATE_STR\n"
    "local t0 = clock()\n"
    "if WORKLOAD == 'int' then\n"
    "  for i = 1, N do C.ds_state_put_num_num(s, keys[i], i, 1000) end\n"
    "else\n"
    "  for i = 1, N do local k = keys[i]; C.ds_state_put_bytes_num(s, STR, k, "
    "#k, i, 1000) end\n"
    "end\n"
    "local t_insert = clock() - t0\n"
    "local sum = 0\n"
    "t0 = clock()\n"
    "if WORKLOAD == 'int' then\n"
    "  for i = 1, N do C.ds_state_get_num(s, keys[order[i]], item); sum = sum "
    "+ item.num end\n"
    "else\n"
    "  for i = 1, N do local k = keys[order[i]]; C.ds_state_get_bytes(s, STR, "
    "k, #k, item); sum = sum + item.num end\n"
    "end\n"
    "local t_get = clock() - t0\n"
    "-- mapWithState's step: look up, compute, update by slot\n"
    "t0 = clock()\n"
    "if WORKLOAD == 'int' then\n"
    "  for i = 1, N do local slot = C.ds_state_get_num(s, keys[order[i]], "
    "item); C.ds_state_set_num(s, slot, item.num + 1, 2000) end\n"
    "else\n"
    "  for i = 1, N do local k = keys[order[i]]; local slot = "
    "C.ds_state_get_bytes(s, STR, k, #k, item); C.ds_state_set_num(s, slot, "
    "item.num + 1, 2000) end\n"
    "end\n"
    "local t_step = clock() - t0\n"
    "line('luajit_ffi_store', ('\"bytes_per_key\":%.2f,\"insert_per_s\":%.0f,"
    "\"get_random_per_s\":%.0f,\"get_set_random_per_s\":%.0f,\"checksum\":"
    "%.0f'):format(tonumber(C.ds_state_memory(s)) / N, N / t_insert, N / "
    "t_get, N / t_step, sum))\n";

/* The declarations between the cdef markers of ffi.h; NULL if not found. */
static char *read_cdef(const char *path) {
  static const char begin[] = "/* cdef begin */", end[] = "/* cdef end */";
  char *text, *b, *e, *out;
  long len;
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  fseek(f, 0, SEEK_END);
  len = ftell(f);
  fseek(f, 0, SEEK_SET);
  text = malloc((size_t)len + 1);
  if (text == NULL || fread(text, 1, (size_t)len, f) != (size_t)len) {
    fclose(f);
    free(text);
    return NULL;
  }
  fclose(f);
  text[len] = '\0';
  b = strstr(text, begin);
  e = b != NULL ? strstr(b, end) : NULL;
  if (e == NULL) {
    free(text);
    return NULL;
  }
  b += sizeof begin - 1;
  out = malloc((size_t)(e - b) + 1);
  memcpy(out, b, (size_t)(e - b));
  out[e - b] = '\0';
  free(text);
  return out;
}

static int run_lua(const char *cdef, const run_t *r) {
  lua_State *L = luaL_newstate();
  int err;
  luaL_openlibs(L);
  lua_pushnumber(L, r->n);
  lua_setglobal(L, "N");
  lua_pushstring(L, r->workload);
  lua_setglobal(L, "WORKLOAD");
  lua_pushnumber(L, (lua_Number)r->timeout);
  lua_setglobal(L, "TIMEOUT");
  lua_pushstring(L, cdef);
  lua_setglobal(L, "CDEF");
  err = luaL_dostring(L, lua_bench);
  if (err != 0)
    fprintf(stderr, "state_mem: lua: %s\n", lua_tostring(L, -1));
  lua_close(L);
  return err;
}

int main(int argc, char **argv) {
  uint32_t n = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 2000000, i;
  const char *workloads[] = {"int", "str"};
  int64_t timeouts[] = {0, TIMEOUT_MS};
  char *cdef = read_cdef(FFI_H);
  int w, t, status = 0;
  run_t r;
  if (cdef == NULL) {
    fprintf(stderr, "state_mem: no cdef block in %s (run from the "
            "repository root)\n", FFI_H);
    return 1;
  }
  ds_set_allocator(&counting);
  r.n = n;
  r.order = malloc(n * sizeof *r.order);
  for (i = 0; i < n; i++)
    r.order[i] = i;
  srand(42);
  for (i = n - 1; i > 0; i--) {
    uint32_t j = (uint32_t)(((uint64_t)rand() << 31 | (uint64_t)rand()) %
                            (i + 1)), tmp = r.order[i];
    r.order[i] = r.order[j];
    r.order[j] = tmp;
  }
  for (w = 0; w < 2; w++) {
    r.workload = workloads[w];
    r.keys = NULL;
    r.lens = NULL;
    if (w == 1) {
      char buf[KEY_MAX + 1];
      r.keys = malloc((size_t)n * KEY_MAX);
      r.lens = malloc(n * sizeof *r.lens);
      for (i = 0; i < n; i++) {
        r.lens[i] = str_key(i, buf);
        memcpy(r.keys + (size_t)i * KEY_MAX, buf, r.lens[i]);
      }
    }
    for (t = 0; t < 2; t++) {
      r.timeout = timeouts[t];
      run_c(&r);
      status |= run_lua(cdef, &r);
    }
    free(r.keys);
    free(r.lens);
  }
  free(r.order);
  free(cdef);
  return status;
}

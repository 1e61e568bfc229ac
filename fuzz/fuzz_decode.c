/* Fuzz target: the value codec's two readers must agree on any bytes.
 *
 * Every input goes to the C reader (core.decode_value, the glue over
 * core/src/codec.c) and to the Lua reader (dstream.valuecodec.decode) in an
 * embedded LuaJIT whose traces compile as the run goes on, so the compiled
 * decoder is what gets fuzzed after the first thousand inputs. They must
 * refuse the same inputs with the same message, or decode the same value
 * (NaN equal to NaN, -0 unlike 0), and that value must re-encode to the
 * same canonical bytes in Lua and in C. A disagreement, a Lua error other
 * than a refusal, or a crash (ASan, UBSan) aborts the run with the input.
 *
 * Built by CMake with -DDS_FUZZ=ON under clang (-fsanitize=fuzzer); run by
 * scripts/test.sh for a bounded number of inputs:
 *     build-fuzz/fuzz_decode -runs=N   (from the project root)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

int luaopen_dstream_core(lua_State *L);

static const char CHECK[] =
    "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path\n"
    "local core = require 'dstream.core'\n"
    "local vc = require 'dstream.valuecodec'\n"
    "local function same(a, b)\n"
    "  if type(a) ~= type(b) then return false end\n"
    "  if type(a) == 'number' then\n"
    "    if a ~= a then return b ~= b end\n"
    "    return a == b and 1 / a == 1 / b\n"
    "  end\n"
    "  if type(a) ~= 'table' then return a == b end\n"
    "  local n = 0\n"
    "  local k, v = next(a)\n"
    "  while k ~= nil do\n"
    "    if not same(v, b[k]) then return false end\n"
    "    n = n + 1\n"
    "    k, v = next(a, k)\n"
    "  end\n"
    "  k = next(b)\n"
    "  while k ~= nil do n = n - 1; k = next(b, k) end\n"
    "  return n == 0\n"
    "end\n"
    "return function(s)\n"
    "  local v, msg = core.decode_value(s)\n"
    "  local ok, lv = pcall(vc.decode, s)\n"
    "  if v == nil then\n"
    "    if ok then error('Lua decoded what C refused: ' .. msg, 0) end\n"
    "    local want = msg:gsub('^E%u+: ', '')\n"
    "    if lv ~= want then\n"
    "      error('messages differ: C ' .. want .. ', Lua ' .. tostring(lv), 0)\n"
    "    end\n"
    "    return\n"
    "  end\n"
    "  if not ok then error('Lua refused what C decoded: ' .. tostring(lv), 0) end\n"
    "  if not same(v, lv) then error('the readers decoded different values', 0) end\n"
    "  if vc.encode(lv) ~= core.encode_value(v) then\n"
    "    error('the value re-encodes differently in Lua and in C', 0)\n"
    "  end\n"
    "end\n";

static lua_State *L;
static int check_ref;

/* The glue's scratch buffers are freed by the state's __gc: close it at
 * exit so that LeakSanitizer sees them freed. */
static void teardown(void) {
  lua_close(L);
}

static void setup(void) {
  L = luaL_newstate();
  if (L == NULL)
    abort();
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_dstream_core);
  lua_setfield(L, -2, "dstream.core");
  lua_pop(L, 2);
  if (luaL_loadstring(L, CHECK) != 0 || lua_pcall(L, 0, 1, 0) != 0) {
    fprintf(stderr, "fuzz_decode: setup failed (run from the project root): %s\n",
            lua_tostring(L, -1));
    abort();
  }
  check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  atexit(teardown);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (L == NULL)
    setup();
  lua_rawgeti(L, LUA_REGISTRYINDEX, check_ref);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != 0) {
    fprintf(stderr, "fuzz_decode: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, 0);
  return 0;
}

-- dstream from a checkout, for LuaJIT. From the top of the checkout:
--
--   luarocks --lua-version=5.1 make rocks/dstream-scm-1.rockspec LUA_INCDIR=/usr/include/luajit-2.1
--
-- (add --tree DIR or --local to choose where). Lua 5.1 is the language
-- LuaJIT speaks, so the modules go to share/lua/5.1 and lib/lua/5.1 of the
-- tree; LUA_INCDIR names LuaJIT's headers (CMake finds them itself through
-- pkg-config, LuaRocks only checks that they are there). CMakeLists.txt
-- builds the C module and installs it, the Lua modules and the `dstream`
-- command into the directories given below; the C tests and the benchmark
-- programs are not built, and warnings do not fail the build.
rockspec_format = "3.0"
package = "dstream"
version = "scm-1"

source = {
    -- `luarocks make` builds the checkout it runs in and fetches nothing.
    url = "git+file://.",
}

description = {
    summary = "Spark Streaming's discretized streams for LuaJIT",
    detailed = [[
A C engine (C11, libuv) does the batching, scheduling, sockets, files and the
record codec; a pipeline is a Lua script and its transformations are Lua
closures, fused into one LuaJIT-compiled loop per stage.]],
}

dependencies = {
    "lua == 5.1",
}

external_dependencies = {
    LUAJIT = {header = "luajit-2.1/luajit.h", library = "luajit-5.1"},
    LIBUV = {header = "uv.h", library = "uv"},
    -- the status server's HTTP parser (Debian: libhttp-parser-dev); its page
    -- loads Chart.js from /usr/share/javascript/chart.js (libjs-chart.js)
    HTTP_PARSER = {header = "http_parser.h", library = "http_parser"},
    -- Kafka's consumer, producer and admin client (Debian: librdkafka-dev)
    RDKAFKA = {header = "librdkafka/rdkafka.h", library = "rdkafka"},
}

build = {
    type = "cmake",
    variables = {
        CMAKE_BUILD_TYPE = "Release",
        DS_BUILD_TESTS = "OFF",
        DS_BUILD_BENCH = "OFF",
        DS_WERROR = "OFF",
        CMAKE_INSTALL_PREFIX = "$(PREFIX)",
        DS_INSTALL_LUADIR = "$(LUADIR)",
        DS_INSTALL_LIBDIR = "$(LIBDIR)",
        DS_INSTALL_BINDIR = "$(BINDIR)",
    },
}

-- bin/dstream is a LuaJIT script (`#!/usr/bin/env luajit`) and must stay
-- one: LuaRocks would otherwise replace it by a shell wrapper that runs it
-- with the interpreter LuaRocks was configured with (lua5.1 on Debian),
-- where dstream does not work.
deploy = {
    wrap_bin_scripts = false,
}

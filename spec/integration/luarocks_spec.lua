-- Installing with LuaRocks: `luarocks make rocks/dstream-scm-1.rockspec` into
-- a fresh tree, offline, from a copy of the checkout; then the installed
-- `dstream` runs a pipeline from a directory outside the source tree, with
-- LUA_PATH and LUA_CPATH pointing only into that tree.

local function shell_quote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs a shell command; returns its output (stdout and stderr) and exit status.
local function shell(cmd)
    local p = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"exit=$?\""))
    local out = p:read("*a")
    p:close()
    local body, code = out:match("^(.*)exit=(%d+)\n$")
    return body or out, tonumber(code)
end

local function read_file(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local data = f:read("*a")
    f:close()
    return data
end

local function write_file(path, data)
    local f = assert(io.open(path, "wb"))
    f:write(data)
    f:close()
end

local function realpath(path)
    return (shell("realpath -e " .. shell_quote(path)))
end

local ROOT = shell("cd " .. shell_quote(
    debug.getinfo(1, "S").source:sub(2):match("^(.*)/spec/integration/") or ".") .. " && pwd"):match("^[^\n]*")
local RULE = string.rep("-", 43)
local has_luarocks = select(2, shell("command -v luarocks")) == 0
-- Where the kernel lets us make a network namespace, luarocks runs with no network at all.
local offline = select(2, shell("unshare -rn true")) == 0 and "unshare -rn " or ""

describe("luarocks make rocks/dstream-scm-1.rockspec", function()
    if not has_luarocks then
        pending("luarocks is not installed")
        return
    end

    local tmp, tree, env

    -- luarocks for LuaJIT (Lua 5.1) on the tree, in the copy, with no user configuration.
    local function luarocks(args)
        return shell("cd " .. shell_quote(tmp .. "/src") .. " && env -u LUAROCKS_CONFIG -u LUAROCKS_CONFIG_5_1 "
            .. "-u XDG_CONFIG_HOME HOME=" .. shell_quote(tmp .. "/home") .. " " .. offline
            .. "luarocks --lua-version=5.1 --tree " .. shell_quote(tree) .. " " .. args)
    end

    -- The entries of a `luarocks path` list that lie inside the tree.
    local function tree_only(list)
        local kept = {}
        for entry in list:gsub("\n", ""):gmatch("[^;]+") do
            if entry:sub(1, #tree + 1) == tree .. "/" then kept[#kept + 1] = entry end
        end
        return table.concat(kept, ";")
    end

    -- Runs the installed dstream in tmp/work with env; returns output and status.
    local function installed_dstream(args)
        return shell("cd " .. shell_quote(tmp .. "/work") .. " && env " .. env .. " "
            .. shell_quote(tree .. "/bin/dstream") .. " " .. args)
    end

    lazy_setup(function()
        tmp = shell("mktemp -d"):match("^[^\n]*")
        tree = tmp .. "/tree"
        assert(shell("mkdir " .. shell_quote(tmp .. "/src") .. " " .. shell_quote(tmp .. "/home")
            .. " " .. shell_quote(tmp .. "/work")) == "")
        -- The checkout as a clone would have it: no build directories, nothing ignored.
        local out, status = shell("cd " .. shell_quote(ROOT)
            .. " && git ls-files -z --cached --others --exclude-standard"
            .. " | tar --null --ignore-failed-read -T - -cf - | tar -C " .. shell_quote(tmp .. "/src") .. " -xf -")
        assert(status == 0 and read_file(tmp .. "/src/rocks/dstream-scm-1.rockspec"),
            "copying the checkout (git ls-files | tar) failed:\n" .. out)
        out, status = luarocks("make rocks/dstream-scm-1.rockspec LUA_INCDIR=/usr/include/luajit-2.1")
        assert(status == 0, "luarocks make failed:\n" .. out)
        local lua_path = tree_only(luarocks("path --lr-path"))
        local lua_cpath = tree_only(luarocks("path --lr-cpath"))
        assert(lua_path ~= "" and lua_cpath ~= "", "luarocks path names nothing in the tree")
        env = "LUA_PATH=" .. shell_quote(lua_path) .. " LUA_CPATH=" .. shell_quote(lua_cpath)
    end)

    lazy_teardown(function()
        if tmp then shell("rm -rf " .. shell_quote(tmp)) end
    end)

    it("installs every Lua module, the C module and the dstream command into the tree", function()
        local listing = shell("cd " .. shell_quote(tmp .. "/src/lua/dstream") .. " && ls *.lua")
        local count = 0
        for name in listing:gmatch("[^\n]+") do
            count = count + 1
            assert.are.equal(read_file(tmp .. "/src/lua/dstream/" .. name),
                read_file(tree .. "/share/lua/5.1/dstream/" .. name), name)
        end
        assert.is_true(count > 0)
        local _, status = shell("test -f " .. shell_quote(tree .. "/lib/lua/5.1/dstream/core.so"))
        assert.are.equal(0, status)
        _, status = shell("test -x " .. shell_quote(tree .. "/bin/dstream"))
        assert.are.equal(0, status)
    end)

    it("builds the C module only: no C test or benchmark program, and warnings are not errors", function()
        -- LuaRocks' cmake back end builds in build.luarocks of the copy.
        local build = tmp .. "/src/build.luarocks"
        local _, status = shell("test -f " .. shell_quote(build .. "/dstream/core.so"))
        assert.are.equal(0, status, "no build.luarocks/dstream/core.so: LuaRocks built elsewhere")
        local programs = shell("cd " .. shell_quote(build) .. " && find . -path ./CMakeFiles -prune -o -type f"
            .. " -perm -u+x ! -name '*.so' -print")
        assert.are.equal("", programs)
        local cache = read_file(build .. "/CMakeCache.txt")
        assert.matches("\nDS_BUILD_TESTS:BOOL=OFF\n", cache, 1, true)
        assert.matches("\nDS_BUILD_BENCH:BOOL=OFF\n", cache, 1, true)
        assert.matches("\nDS_WERROR:BOOL=OFF\n", cache, 1, true)
        local flags = read_file(build .. "/CMakeFiles/dstream_core.dir/flags.make")
        assert.truthy(flags and flags:find("-Wall", 1, true), "no compile flags found for dstream_core")
        assert.falsy(flags:find("-Werror", 1, true), flags)
    end)

    it("installs dstream as the script itself, run by luajit, not wrapped for another interpreter", function()
        assert.are.equal(read_file(ROOT .. "/bin/dstream"), read_file(tree .. "/bin/dstream"))
        assert.are.equal("#!/usr/bin/env luajit", read_file(tree .. "/bin/dstream"):match("^[^\n]*"))
    end)

    it("runs a pipeline script with the installed dstream and modules only", function()
        write_file(tmp .. "/work/squares.lua", [[
local dstream = require "dstream"
local ssc = dstream.StreamingContext{batchInterval = 0.5, clock = "manual"}
ssc:queueStream({{1, 2, 3}, {4}}):map(function(x) return x * x end):print()
ssc:start()
ssc:advance(tonumber(arg[1]))
ssc:stop()
print(package.searchpath("dstream.core", package.cpath))
print(debug.getinfo(dstream.ms, "S").source)
]])
        local out, status = installed_dstream("run squares.lua 2")
        local batches, core, init = out:match("^(.*\n)([^\n]*)\n@([^\n]*)\n$")
        assert.are.equal(table.concat({
            RULE, "Time: 500 ms", RULE, "1", "4", "9", "",
            RULE, "Time: 1000 ms", RULE, "16", "", "",
        }, "\n"), batches, out)
        assert.are.equal(0, status)
        assert.are.equal(realpath(tree .. "/lib/lua/5.1/dstream/core.so"), realpath(core))
        assert.are.equal(realpath(tree .. "/share/lua/5.1/dstream/init.lua"), realpath(init))
    end)

    it("runs an example, copied out of the checkout, with the installed copy only", function()
        assert(shell("cp " .. shell_quote(ROOT .. "/examples/sessionize.lua") .. " "
            .. shell_quote(tmp .. "/work/sessionize.lua")) == "")
        local out, status = installed_dstream("run sessionize.lua 2")
        assert.are.equal(0, status, out)
        assert.matches("session closed: %d+%-%d+ min, %d+ clicks on %d+ pages", out)
    end)

    it("reports the version of the installed modules with dstream version", function()
        local out, status = installed_dstream("version")
        assert.are.equal("dstream " .. require("dstream")._VERSION .. "\n", out)
        assert.are.equal(0, status)
    end)

    it("fails with the script's error and status 1 when the pipeline raises", function()
        write_file(tmp .. "/work/broken.lua", 'error("no pipeline here")\n')
        local out, status = installed_dstream("run broken.lua")
        assert.truthy(out:find("broken.lua:1: no pipeline here", 1, true), out)
        assert.are.equal(1, status)
    end)
end)

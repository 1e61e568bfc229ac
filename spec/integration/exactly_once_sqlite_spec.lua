-- examples/exactly_once_sqlite.lua, killed and restarted for real: the
-- totals it adds to SQLite batch by batch end up exact. One kill lands at
-- the worst moment - the process kills itself with SIGKILL right after a
-- batch's transaction committed, before dstream's checkpoint says the
-- batch is done - so the restart re-runs a batch SQLite already holds.
local files = require("spec.helpers.files")
local core = require("dstream.core")
local tmpdir, read, write = files.tmpdir, files.read, files.write

local function sh(cmd)
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    return out
end

local function sleep(s) os.execute("sleep " .. s) end

-- The example, run through a wrapper that SIGKILLs the process right after
-- the COMMIT of its CRASH_AFTER_COMMITS-th batch that added rows (none if
-- unset), made by the real luasql module.
local WRAPPER = [[
local ffi = require "ffi"
ffi.cdef "int getpid(void); int kill(int pid, int sig);"
local real = require "luasql.sqlite3"
local crash_after, commits = tonumber(os.getenv("CRASH_AFTER_COMMITS")), 0
local function proxy(obj, hook)
    return setmetatable({}, {__index = function(_, name)
        local method = obj[name]
        if type(method) ~= "function" then return method end
        return function(_, ...)
            local r = {method(obj, ...)}
            if hook then hook(name, ...) end
            if name == "connect" then
                local inserted = false
                return proxy(r[1], function(m, sql)
                    if m ~= "execute" then return end
                    if sql:match("^INSERT INTO totals") then inserted = true end
                    if sql == "COMMIT" and inserted then
                        inserted, commits = false, commits + 1
                        if commits == crash_after then ffi.C.kill(ffi.C.getpid(), 9) end
                    end
                end)
            end
            return unpack(r)
        end
    end})
end
package.loaded["luasql.sqlite3"] = {sqlite3 = function() return proxy(real.sqlite3()) end}
dofile("examples/exactly_once_sqlite.lua")
]]

describe("examples/exactly_once_sqlite.lua", function()
    local dir, expected, dropped

    local function start(env, seconds)
        local pid = sh(string.format(
            "cd %q && %s bin/dstream run %s/wrapper.lua %s/in %s/totals.db %s/ckpt %s >>%s/log 2>&1 & echo $!",
            os.getenv("PWD") or ".", env or "", dir, dir, dir, dir, seconds or "", dir))
        return tonumber(pid)
    end

    local function alive(pid)
        return sh("kill -0 " .. pid .. " 2>/dev/null && echo alive") ~= ""
    end

    local function wait_exit(pid, seconds)
        for _ = 1, seconds * 20 do
            if not alive(pid) then return true end
            sleep(0.05)
        end
        return false
    end

    -- A new trade file, written elsewhere then renamed in (as textFileStream wants).
    local function drop(rng)
        dropped = dropped + 1
        local lines = {}
        for i = 1, 5 + rng(20) do
            local symbol = ({"ACME", "INITECH", "GLOBEX", "HOOLI"})[rng(4)]
            local qty = rng(1000)
            lines[i] = symbol .. " " .. qty
            local e = expected[symbol] or {0, 0}
            expected[symbol] = {e[1] + qty, e[2] + 1}
        end
        local tmp = string.format("%s/tmp-%d", dir, dropped)
        write(tmp, table.concat(lines, "\n") .. "\n")
        assert(core.fs_rename(tmp, string.format("%s/in/trades-%03d.txt", dir, dropped)))
    end

    local function totals()
        write(dir .. "/totals.lua", [[
            local env = require("luasql.sqlite3").sqlite3()
            local db = assert(env:connect(arg[1]))
            local cur = assert(db:execute("SELECT symbol, quantity, trades FROM totals ORDER BY symbol"))
            local row = cur:fetch({}, "n")
            while row do
                io.write(row[1], " ", row[2], " ", row[3], "\n")
                row = cur:fetch({}, "n")
            end
        ]])
        local out = sh(string.format("luajit %s/totals.lua %s/totals.db 2>&1", dir, dir))
        local got = {}
        for symbol, q, n in out:gmatch("(%S+) (%d+) (%d+)\n") do got[symbol] = {tonumber(q), tonumber(n)} end
        return got, out
    end

    before_each(function()
        dir = tmpdir()
        assert(core.fs_mkdirs(dir .. "/in"))
        write(dir .. "/wrapper.lua", WRAPPER)
        expected, dropped = {}, 0
    end)

    after_each(function()
        os.execute("rm -rf " .. dir)
    end)

    it("adds every trade exactly once through a crash after a commit and kill -9 at random moments", function()
        local seed = os.time()
        math.randomseed(seed)
        local rng = math.random
        local context = "seed " .. seed .. ", log:\n"
        -- 1. Killed by itself right after the first batch that added rows
        --    committed: a batch SQLite holds and the checkpoint does not. (Files
        --    there before the very first start are not read: newFilesOnly.)
        local pid = start("CRASH_AFTER_COMMITS=1")
        for _ = 1, 600 do
            if sh("ls " .. dir .. "/ckpt 2>/dev/null"):match("checkpoint%-") then break end
            sleep(0.05)
        end
        for _ = 1, 3 do drop(rng) end
        assert.is_true(wait_exit(pid, 30), context .. (read(dir .. "/log") or ""))
        -- 2. Files keep coming; kill -9 from outside at random moments.
        for _ = 1, 4 do
            pid = start()
            for _ = 1, 2 do
                drop(rng)
                sleep(0.2 + rng() * 0.6)
            end
            os.execute("kill -9 " .. pid)
            wait_exit(pid, 10)
        end
        drop(rng)
        -- 3. A last run reads what is left and stops by itself.
        pid = start(nil, 4)
        assert.is_true(wait_exit(pid, 60), context .. (read(dir .. "/log") or ""))
        local log = read(dir .. "/log") or ""
        local got, raw = totals()
        assert.are.same(expected, got, context .. log .. "\ntotals:\n" .. raw)
    end)
end)

-- The dstream command: run, explain, version, --help, and a clean stop on
-- SIGINT / SIGTERM. Real processes: bin/dstream run through a shell.
local function sh(cmd)
    local p = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
    local out = p:read("*a")
    p:close()
    return out, tonumber(out:match("exit=(%d+)%s*$"))
end

local function script(body)
    local path = os.tmpname() .. ".lua"
    local f = assert(io.open(path, "w"))
    f:write(body)
    f:close()
    return path
end

-- A pipeline that runs until stopped, printing each batch's count and, once
-- stopped, a last line saying so.
local FOREVER = [[
local dstream = require "dstream"
local ssc = dstream.StreamingContext{batchInterval = 0.05}
local n = 0
ssc:receiverStream{start = function() end, stop = function() end,
    poll = function() n = n + 1 return {n} end}:count():foreachRDD(function(rdd, t)
    io.write("batch ", rdd:first(), "\n") io.flush()
end)
ssc:start()
ssc:awaitTermination()
print("stopped cleanly")
]]

describe("dstream run", function()
    for _, signal in ipairs({"INT", "TERM"}) do
        it("stops a running pipeline cleanly on SIG" .. signal .. " and exits 0", function()
            local path = script(FOREVER)
            local log = os.tmpname()
            local out, code = sh(string.format([[(
bin/dstream run %s > %s 2>&1 &
pid=$!
for i in $(seq 200); do grep -q '^batch' %s && break; sleep 0.05; done
kill -%s $pid
wait $pid
status=$?
cat %s
exit $status)]], path, log, log, signal, log))
            os.remove(path)
            os.remove(log)
            assert.are.equal(0, code, out)
            assert.matches("batch %d+", out)
            assert.matches("stopped cleanly", out)
        end)
    end

    it("passes its arguments to the script as arg", function()
        local path = script('print(arg[0] ~= nil, arg[1], arg[2], select("#", ...))')
        local out, code = sh("bin/dstream run " .. path .. " one two")
        os.remove(path)
        assert.are.equal(0, code, out)
        assert.matches("true\tone\ttwo\t2", out)
    end)

    it("warns when the script never calls start(), and exits 0", function()
        local path = script('print("built nothing")')
        local out, code = sh("bin/dstream run " .. path)
        assert.are.equal(0, code, out)
        assert.matches("built nothing", out)
        assert.matches("dstream run: warning: " .. path:gsub("%p", "%%%0") .. " never called start%(%)", out)
        os.remove(path)
    end)

    it("does not warn when the script started a context", function()
        local path = script([[
local dstream = require "dstream"
local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
ssc:queueStream({{1}}):print()
ssc:start()
ssc:advance(1)
ssc:stop()
]])
        local out, code = sh("bin/dstream run " .. path)
        os.remove(path)
        assert.are.equal(0, code, out)
        assert.not_matches("warning", out)
    end)

    it("says which script is missing or unreadable", function()
        local out, code = sh("bin/dstream run /nonexistent/job.lua")
        assert.are.equal(2, code)
        assert.matches("/nonexistent/job.lua", out)
        out, code = sh("bin/dstream run")
        assert.are.equal(2, code)
        assert.matches("which script", out)
    end)
end)

-- Whether a process with this pid exists, even as a zombie.
local function exists(pid)
    local f = io.open("/proc/" .. pid .. "/stat")
    if f then f:close() end
    return f ~= nil
end

-- A script that starts a shell, which starts a sleep in the background
-- (a process tree of two), writes their pids to arg[1], then `rest`.
local function spawning_script(rest)
    return script([[
local dstream = require "dstream"
local child = io.popen("exec 2>/dev/null; sleep 300 >/dev/null & echo $!; echo $$; wait")
local grandchild, sh = child:read("*l"), child:read("*l")
local f = assert(io.open(arg[1], "w"))
f:write(sh, " ", grandchild, "\n")
f:close()
]] .. rest)
end

local function read_pids(path)
    local f = assert(io.open(path))
    local shell, grandchild = f:read("*l"):match("^(%d+) (%d+)$")
    f:close()
    return {tonumber(shell), tonumber(grandchild)}
end

describe("dstream explain", function()
    local START = [[
local ssc = dstream.StreamingContext{batchInterval = 1}
ssc:socketTextStream("127.0.0.1", 9):print()
ssc:start()
ssc:awaitTermination()
]]
    for _, case in ipairs({
        {"after explaining", START, 0},
        {"when the script fails before start()", 'error("no config")', 1},
    }) do
        it("leaves no process the script started behind, " .. case[1], function()
            if not io.open("/proc/self/task") then
                pending("no /proc: nothing to check")
                return
            end
            local path, pids = spawning_script(case[2]), os.tmpname()
            local out, code = sh("bin/dstream explain " .. path .. " " .. pids)
            os.remove(path)
            assert.are.equal(case[3], code, out)
            for _, pid in ipairs(read_pids(pids)) do
                assert.is_false(exists(pid), "process " .. pid .. " is still there:\n" .. out)
            end
            os.remove(pids)
        end)
    end

    it("fails clearly when the script never starts a context", function()
        local path = script("local x = 1")
        local out, code = sh("bin/dstream explain " .. path)
        os.remove(path)
        assert.are.equal(1, code)
        assert.matches("never called start", out)
    end)
end)

describe("dstream --help and version", function()
    it("prints the usage for --help on each command", function()
        for _, cmd in ipairs({"--help", "run --help", "explain --help"}) do
            local out, code = sh("bin/dstream " .. cmd)
            assert.are.equal(0, code, cmd)
            assert.matches("usage: dstream run SCRIPT", out)
            assert.matches("dstream explain SCRIPT", out)
        end
    end)

    it("prints the version for version and --version", function()
        for _, cmd in ipairs({"version", "--version"}) do
            local out, code = sh("bin/dstream " .. cmd)
            assert.are.equal(0, code, cmd)
            assert.matches("^dstream %d+%.%d+%.%d+\nexit", out)
        end
    end)

    it("prints the usage for version --help", function()
        local out, code = sh("bin/dstream version --help")
        assert.are.equal(0, code)
        assert.matches("usage: dstream run SCRIPT", out)
    end)

    it("refuses an unknown command with the usage", function()
        local out, code = sh("bin/dstream frobnicate")
        assert.are.equal(2, code)
        assert.matches("unknown command frobnicate", out)
    end)
end)

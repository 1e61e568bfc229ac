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

    -- Starts `bin/dstream run` on a script, waits for `ready` in its output,
    -- sends the signals (a list of names, 0.3 s apart), and waits up to 10 s
    -- for it to exit (then SIGKILL). Returns its output and exit status.
    local function signal_run(body, ready, signals, env)
        local path = script(body)
        local log = os.tmpname()
        local kills = {}
        for _, sig in ipairs(signals) do kills[#kills + 1] = "kill -" .. sig .. " $pid; sleep 0.3" end
        local out, code = sh(string.format([[(
%s bin/dstream run %s > %s 2>&1 &
pid=$!
for i in $(seq 200); do grep -q '%s' %s && break; sleep 0.05; done
%s
for i in $(seq 200); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
kill -0 $pid 2>/dev/null && { echo "still running 10 s after the signals"; kill -9 $pid; }
wait $pid
status=$?
cat %s
exit $status)]], env or "", path, log, ready, log, table.concat(kills, "\n"), log))
        os.remove(path)
        os.remove(log)
        return out, code
    end

    -- A map that never returns once it has seen its first record.
    local HUNG = [[
local dstream = require "dstream"
local ssc = dstream.StreamingContext{batchInterval = 0.05}
ssc:receiverStream{start = function() end, stop = function() end,
    poll = function() return {1} end}:map(function(x)
    io.write("busy\n") io.flush()
    local n = 0
    while true do n = n + x end
end):print()
ssc:start()
ssc:awaitTermination()
]]

    it("ends a pipeline whose map never returns at a second SIGTERM, saying so", function()
        local out, code = signal_run(HUNG, "^busy", {"TERM", "TERM"})
        assert.are.equal(128 + 15, code, out)
        assert.matches("second SIGTERM: exiting now", out, 1, true)
        assert.not_matches("still running", out, 1, true)
    end)

    it("ends a pipeline whose map never returns at a second SIGINT, saying so", function()
        local out, code = signal_run(HUNG, "^busy", {"INT", "INT"})
        assert.are.equal(128 + 2, code, out)
        assert.matches("second SIGINT: exiting now", out, 1, true)
    end)

    it("ends it DSTREAM_STOP_GRACE seconds after a single SIGTERM", function()
        local out, code = signal_run(HUNG, "^busy", {"TERM"}, "DSTREAM_STOP_GRACE=1")
        assert.are.equal(128 + 15, code, out)
        assert.matches("did not finish within its grace period", out, 1, true)
    end)

    it("refuses a DSTREAM_STOP_GRACE that is not a number of seconds", function()
        local path = script("print('ran')")
        local out, code = sh("DSTREAM_STOP_GRACE=soon bin/dstream run " .. path)
        os.remove(path)
        assert.are.equal(2, code)
        assert.matches("DSTREAM_STOP_GRACE must be a number of seconds", out, 1, true)
        assert.not_matches("ran", out, 1, true)
    end)

    it("stops cleanly on SIGTERM while every batch runs longer than the batch interval", function()
        -- Each batch takes three intervals: batches are always due, back to back.
        local out, code = signal_run([[
local dstream = require "dstream"
local ffi = require "ffi"
ffi.cdef "int poll(void *fds, unsigned long nfds, int timeout);"
local ssc = dstream.StreamingContext{batchInterval = 0.01}
ssc:receiverStream{start = function() end, stop = function() end,
    poll = function() return {1} end}:foreachRDD(function()
    ffi.C.poll(nil, 0, 30)
    io.write("batch\n") io.flush()
end)
ssc:start()
ssc:awaitTermination()
print("stopped cleanly")
]], "^batch", {"TERM"})
        assert.are.equal(0, code, out)
        assert.matches("stopped cleanly", out, 1, true)
    end)

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

    local PIPELINE = [[
assert(arg[1] == "3" and arg[0]:match("%.lua$"), "arguments: " .. tostring(arg[0]) .. " " .. tostring(arg[1]))
local dstream = require "dstream"
local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
ssc:queueStream({}):map(function(x) return x * tonumber(arg[1]) end):print()
ssc:start()
]]

    it("prints each stage's generated source with --source, the script keeping its arguments", function()
        local path = script(PIPELINE)
        local out, code = sh("bin/dstream explain --source " .. path .. " 3")
        os.remove(path)
        assert.are.equal(0, code, out)
        assert.matches("\nstages after fusion:\n  stage: #1 map, reading #0 queueStream\n", out)
        assert.matches("\nstage sources:\n  stage: #1 map, reading #0 queueStream\n"
            .. "    dstream:stage%d+:map  %(reads values, makes values%)\n       1  local fail, type, show = %.%.%.\n", out)
        assert.matches("\n      10              local x1 = f1%(x0%)\n", out)
    end)

    it("prints no source without --source", function()
        local path = script(PIPELINE)
        local out, code = sh("bin/dstream explain " .. path .. " 3")
        os.remove(path)
        assert.are.equal(0, code, out)
        assert.matches("stage: #1 map, reading #0 queueStream", out)
        assert.not_matches("stage sources", out)
    end)

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

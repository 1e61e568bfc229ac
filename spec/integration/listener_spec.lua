-- ssc:addStreamingListener, and starting, stopping and awaiting a context:
-- what a user's listener sees per batch, and how a context ends.
local dstream = require("dstream")

local function manual()
    return dstream.StreamingContext{batchInterval = 1, clock = "manual"}
end

-- A listener that logs every event as {event, info}.
local function recorder()
    local log = {}
    local l = {log = log}
    for _, event in ipairs({"onBatchSubmitted", "onBatchStarted", "onBatchCompleted", "onReceiverError"}) do
        l[event] = function(info) log[#log + 1] = {event, info} end
    end
    return l
end

local function shell_quote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local ROOT = debug.getinfo(1, "S").source:match("^@(.-)spec/integration/listener_spec%.lua$") or "./"

-- Runs a Lua script in a new luajit with dstream on its paths; returns its
-- exit status, stdout and stderr.
local function run_script(source)
    local script, err_path = os.tmpname(), os.tmpname()
    local f = assert(io.open(script, "wb"))
    f:write(source)
    f:close()
    local cmd = string.format("LUA_PATH=%s LUA_CPATH=%s luajit %s 2>%s; echo \"exit=$?\"",
        shell_quote(ROOT .. "lua/?.lua;" .. ROOT .. "lua/?/init.lua;;"),
        shell_quote(ROOT .. "build/?.so;;"), shell_quote(script), shell_quote(err_path))
    local p = assert(io.popen(cmd, "r"))
    local out = p:read("*a")
    p:close()
    local ef = assert(io.open(err_path, "rb"))
    local stderr = ef:read("*a")
    ef:close()
    os.remove(script)
    os.remove(err_path)
    local status = tonumber(out:match("exit=(%d+)\n$"))
    return status, out:gsub("exit=%d+\n$", ""), stderr
end

describe("ssc:addStreamingListener", function()
    it("tells a listener each batch was submitted, started and completed, in that order", function()
        local ssc = manual()
        local l = recorder()
        ssc:addStreamingListener(l)
        ssc:queueStream({{1, 2, 3}, {4}, {}}):foreachRDD(function() end)
        ssc:start()
        ssc:advance(3)
        ssc:stop()
        local events = {}
        for i, e in ipairs(l.log) do events[i] = e[1] .. "@" .. e[2].batchTime end
        assert.are.same({
            "onBatchSubmitted@1000", "onBatchStarted@1000", "onBatchCompleted@1000",
            "onBatchSubmitted@2000", "onBatchStarted@2000", "onBatchCompleted@2000",
            "onBatchSubmitted@3000", "onBatchStarted@3000", "onBatchCompleted@3000",
        }, events)
    end)

    it("counts in numRecords the records every source gave the batch", function()
        local ssc = manual()
        local l = recorder()
        ssc:addStreamingListener(l)
        local a = ssc:queueStream({{1, 2, 3}, {4}, {}})
        local b = ssc:queueStream({{"x"}, {}, {"y", "z"}})
        -- Only a has an output: b's records are taken and counted all the same.
        a:filter(function(x) return x > 1 end):foreachRDD(function() end)
        b:map(function(x) return x end)
        ssc:start()
        ssc:advance(3)
        ssc:stop()
        local counts = {}
        for _, e in ipairs(l.log) do
            if e[1] == "onBatchCompleted" then counts[#counts + 1] = e[2].numRecords end
        end
        assert.are.same({4, 1, 2}, counts)
    end)

    it("gives a completed batch its times and delays, none negative", function()
        local ssc = dstream.StreamingContext{batchInterval = 0.05}
        local completed = {}
        ssc:addStreamingListener{onBatchCompleted = function(info)
            completed[#completed + 1] = info
            if #completed >= 3 then ssc:stop() end
        end}
        ssc:queueStream({{"a"}, {"b", "c"}}):foreachRDD(function(rdd) rdd:count() end)
        ssc:start()
        assert.is_true(ssc:awaitTerminationOrTimeout(10))
        assert.is_true(#completed >= 3)
        local last
        for _, info in ipairs(completed) do
            for _, field in ipairs({"batchTime", "numRecords", "submissionTime", "processingStartTime",
                    "processingEndTime", "schedulingDelay", "processingDelay", "totalDelay"}) do
                assert.are.equal("number", type(info[field]), field)
                assert.is_true(info[field] >= 0, field)
            end
            assert.are.equal(0, info.batchTime % 50)
            assert.is_true(info.processingStartTime >= info.submissionTime)
            assert.is_true(info.processingEndTime >= info.processingStartTime)
            if last then assert.are.equal(last + 50, info.batchTime) end
            last = info.batchTime
        end
        assert.are.same({1, 2, 0}, {completed[1].numRecords, completed[2].numRecords, completed[3].numRecords})
    end)

    it("counts the time spent reading a batch's input as processing, not scheduling", function()
        local ffi = require("ffi")
        pcall(ffi.cdef, "int poll(void *fds, unsigned long nfds, int timeout);")
        pcall(ffi.cdef, "typedef struct { long sec; long usec; } listener_timeval;")
        pcall(ffi.cdef, "int gettimeofday(void *tv, void *tz);")
        local tv = ffi.new("listener_timeval")
        local function now_ms() -- the wall clock, as the info's times are
            ffi.C.gettimeofday(tv, nil)
            return tonumber(tv.sec) * 1000 + math.floor(tonumber(tv.usec) / 1000)
        end
        local ssc = dstream.StreamingContext{batchInterval = 0.05}
        local completed = {}
        local reads = {}
        ssc:addStreamingListener{onBatchCompleted = function(info)
            completed[#completed + 1] = info
            if #completed >= 3 then ssc:stop() end
        end}
        local input = ssc:queueStream({{"a"}, {"b"}, {"c"}})
        input:foreachRDD(function() end)
        -- This source takes 20 ms to read its input, as a socket's millions
        -- of received records do; reads notes the wall clock around it.
        local take = input.take
        input.take = function(...)
            local before = now_ms()
            ffi.C.poll(nil, 0, 20)
            local r = take(...)
            reads[#reads + 1] = {before, now_ms()}
            return r
        end
        ssc:start()
        assert.is_true(ssc:awaitTerminationOrTimeout(10))
        for i, info in ipairs(completed) do
            local before, after = reads[i][1], reads[i][2]
            assert.is_true(info.processingStartTime <= before, "processing started after the input was read")
            assert.is_true(info.processingEndTime >= after)
            assert.are.equal(info.batchTime, info.submissionTime)
            assert.are.equal(info.processingStartTime - info.submissionTime, info.schedulingDelay)
            assert.are.equal(info.processingEndTime - info.processingStartTime, info.processingDelay)
            assert.are.equal(info.processingEndTime - info.submissionTime, info.totalDelay)
        end
    end)

    it("gives a batch's three events the same batch, records and submission, with times that add up", function()
        local line_server = require("spec.helpers.line_server")
        local lines = {}
        for i = 1, 500 do lines[i] = "record " .. i end
        local server = line_server.start{lines = lines, mode = "hold"}
        local ssc = dstream.StreamingContext{batchInterval = dstream.ms(20)}
        local l = recorder()
        ssc:addStreamingListener(l)
        local counted, total = {}, 0
        ssc:socketTextStream(server.host, server.port):foreachRDD(function(rdd, t)
            counted[t] = rdd:count()
            total = total + counted[t]
        end)
        ssc:addStreamingListener{onBatchCompleted = function()
            if total >= #lines then ssc:stop() end
        end}
        ssc:start()
        assert.is_true(ssc:awaitTerminationOrTimeout(10))
        server:close()
        local by_time = {}
        for _, e in ipairs(l.log) do
            if e[1] ~= "onReceiverError" then
                by_time[e[2].batchTime] = by_time[e[2].batchTime] or {}
                by_time[e[2].batchTime][e[1]] = e[2]
            end
        end
        local sum, batches = 0, 0
        for t, ev in pairs(by_time) do
            local sub, st, done = ev.onBatchSubmitted, ev.onBatchStarted, ev.onBatchCompleted
            assert.is_table(sub, "submitted " .. t)
            assert.is_table(st, "started " .. t)
            assert.is_table(done, "completed " .. t)
            batches = batches + 1
            for _, info in ipairs({sub, st, done}) do
                assert.are.equal(t, info.batchTime)
                assert.are.equal(counted[t], info.numRecords)
                assert.are.equal(t, info.submissionTime)
            end
            assert.are.equal(st.processingStartTime, done.processingStartTime)
            assert.are.equal(st.schedulingDelay, done.schedulingDelay)
            assert.are.equal(done.processingStartTime - done.submissionTime, done.schedulingDelay)
            assert.are.equal(done.processingEndTime - done.processingStartTime, done.processingDelay)
            assert.are.equal(done.schedulingDelay + done.processingDelay, done.totalDelay)
            assert.is_true(done.schedulingDelay >= 0 and done.processingDelay >= 0)
            assert.is_false(done.failed)
            sum = sum + done.numRecords
        end
        assert.are.equal(#lines, sum)
        assert.is_true(batches >= 1)
    end)

    it("gives onReceiverError the source, the message and the wall-clock time of a receiver's error", function()
        local ffi = require("ffi")
        pcall(ffi.cdef, "typedef struct { long sec; long usec; } listener_timeval;")
        pcall(ffi.cdef, "int gettimeofday(void *tv, void *tz);")
        local tv = ffi.new("listener_timeval")
        local function now_ms()
            ffi.C.gettimeofday(tv, nil)
            return tonumber(tv.sec) * 1000 + math.floor(tonumber(tv.usec) / 1000)
        end
        local line_server = require("spec.helpers.line_server")
        local server = line_server.start{data = "a\n" .. ("y"):rep(50) .. "\nb\n", mode = "hold"}
        local ssc = dstream.StreamingContext{batchInterval = dstream.ms(10)}
        local errs, got = {}, 0
        local r = {}
        function r.start() end
        function r.poll(_, ctx)
            if not r.reported then
                r.reported = true
                ctx:reportError("the device is warming up")
            end
            return {}
        end
        function r.stop() end
        ssc:addStreamingListener{onReceiverError = function(err)
            errs[#errs + 1] = err
        end}
        ssc:socketTextStream(server.host, server.port, {maxLineBytes = 8}):foreachRDD(function(rdd)
            got = got + rdd:count()
            if got >= 2 and #errs >= 2 then ssc:stop() end
        end)
        ssc:receiverStream(r):foreachRDD(function() end)
        local before = now_ms()
        ssc:start()
        assert.is_true(ssc:awaitTerminationOrTimeout(10))
        local after = now_ms()
        server:close()
        local by_source = {}
        for _, err in ipairs(errs) do by_source[err.source] = err end
        local sock = by_source[string.format("socketTextStream(%s:%d)", server.host, server.port)]
        assert.is_table(sock, "no error from the socket")
        assert.matches("maxLineBytes 8", sock.message, 1, true)
        local custom = by_source["receiverStream(receiver)"]
        assert.is_table(custom, "no error from the custom receiver")
        assert.are.equal("the device is warming up", custom.message)
        for _, err in ipairs({sock, custom}) do
            assert.are.equal("number", type(err.time))
            assert.is_true(err.time >= before and err.time <= after, err.source .. " at " .. err.time)
        end
    end)

    it("calls every listener added, in the order they were added", function()
        local ssc = manual()
        local order = {}
        for i = 1, 3 do
            ssc:addStreamingListener{onBatchCompleted = function(info)
                order[#order + 1] = i .. "@" .. info.batchTime
            end}
        end
        -- A listener without any of the callbacks is allowed.
        ssc:addStreamingListener{}
        ssc:queueStream({{1}, {2}}):foreachRDD(function() end)
        ssc:start()
        ssc:advance(2)
        ssc:stop()
        assert.are.same({"1@1000", "2@1000", "3@1000", "1@2000", "2@2000", "3@2000"}, order)
    end)

    it("keeps running the batch when a listener raises, and says so on stderr", function()
        local status, stdout, stderr = run_script([[
local dstream = require "dstream"
local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
ssc:addStreamingListener{onBatchStarted = function() error("listener broke") end}
local completed = 0
ssc:addStreamingListener{onBatchCompleted = function() completed = completed + 1 end}
ssc:queueStream({{"a", "b"}, {"c"}}):foreachRDD(function(rdd, t)
    io.write(t, ": ", table.concat(rdd:collect(), ","), "\n")
end)
ssc:start()
ssc:advance(2)
ssc:stop()
io.write("completed ", completed, "\n")
]])
        assert.are.equal(0, status, stderr)
        assert.are.equal("1000: a,b\n2000: c\ncompleted 2\n", stdout)
        local reports = 0
        for line in stderr:gmatch("[^\n]+") do
            if line:find("listener onBatchStarted raised", 1, true) then
                reports = reports + 1
                assert.matches("listener broke", line, 1, true)
            end
        end
        assert.are.equal(2, reports, stderr)
    end)

    it("raises at the call when the listener is not a table", function()
        local ssc = manual()
        local ok, err = pcall(ssc.addStreamingListener, ssc, function() end)
        assert.is_false(ok)
        assert.matches("addStreamingListener: argument #1 (listener) must be a table", err, 1, true)
        ssc:stop()
    end)
end)

describe("ssc:awaitTerminationOrTimeout", function()
    it("returns false when the time runs out and the context is still running", function()
        local ssc = dstream.StreamingContext{batchInterval = 0.05}
        local seen = 0
        ssc:queueStream({}, true, {"tick"}):foreachRDD(function(rdd) seen = seen + rdd:count() end)
        ssc:start()
        assert.is_false(ssc:awaitTerminationOrTimeout(0.2))
        -- Batches ran meanwhile, and keep running on the next call.
        local before = seen
        assert.is_false(ssc:awaitTerminationOrTimeout(0.2))
        ssc:stop()
        assert.is_true(seen > before)
        assert.is_true(ssc:awaitTerminationOrTimeout(0))
    end)

    it("returns when the time runs out while every batch runs longer than the interval", function()
        local ffi = require("ffi")
        pcall(ffi.cdef, "int poll(void *fds, unsigned long nfds, int timeout);")
        local ssc = dstream.StreamingContext{batchInterval = 0.01}
        local batches, started = 0, os.time()
        ssc:queueStream({}, true, {"tick"}):foreachRDD(function()
            batches = batches + 1
            ffi.C.poll(nil, 0, 30) -- three intervals: batches are always due
            -- Bounds a broken driver that never returns (the assert below then fails).
            if os.time() - started > 10 then ssc:stop() end
        end)
        ssc:start()
        assert.is_false(ssc:awaitTerminationOrTimeout(0.3))
        assert.is_true(batches >= 2)
        ssc:stop()
    end)

    it("returns true once foreachRDD called stop()", function()
        local ssc = dstream.StreamingContext{batchInterval = 0.05}
        local batches = 0
        ssc:queueStream({}, true, {}):foreachRDD(function()
            batches = batches + 1
            if batches == 3 then ssc:stop() end
        end)
        ssc:start()
        assert.is_true(ssc:awaitTerminationOrTimeout(10))
        assert.are.equal(3, batches)
    end)

    it("re-raises the error of a failed batch", function()
        local ssc = dstream.StreamingContext{batchInterval = 0.05}
        ssc:queueStream({{"boom"}}):foreachRDD(function(rdd)
            if rdd:count() > 0 then error("user code failed") end
        end)
        ssc:start()
        local ok, err = pcall(ssc.awaitTerminationOrTimeout, ssc, 10)
        ssc:stop()
        assert.is_false(ok)
        assert.matches("foreachRDD", err, 1, true)
        assert.matches("user code failed", err, 1, true)
        assert.matches("failed at batch time %d+ ms", err)
    end)

    it("raises on a manual clock, which never moves by itself", function()
        local ssc = manual()
        ssc:queueStream({}):foreachRDD(function() end)
        ssc:start()
        local ok, err = pcall(ssc.awaitTerminationOrTimeout, ssc, 1)
        assert.is_false(ok)
        assert.matches("advance", err, 1, true)
        ssc:stop()
    end)
end)

describe("ssc:stop", function()
    it("stops a context that was never started, which then cannot start", function()
        local ssc = manual()
        ssc:queueStream({{1}}):foreachRDD(function() end)
        ssc:stop()
        assert.is_true(ssc:awaitTerminationOrTimeout(0))
        local ok, err = pcall(ssc.start, ssc)
        assert.is_false(ok)
        assert.matches("a stopped context cannot be restarted", err, 1, true)
    end)

    it("does not restart a stopped context, but a new one can be made and run at once", function()
        local ssc = manual()
        local out = ssc:queueStream({{1}, {2}}):collectBatches()
        ssc:start()
        ssc:advance(1)
        ssc:stop()
        ssc:stop() -- a second stop does nothing
        local ok, err = pcall(ssc.start, ssc)
        assert.is_false(ok)
        assert.matches("a stopped context cannot be restarted; make a new StreamingContext", err, 1, true)
        ok, err = pcall(ssc.advance, ssc, 1)
        assert.is_false(ok)
        assert.matches("stopped", err, 1, true)
        assert.are.same({{1}}, out)
        local ssc2 = manual()
        local out2 = ssc2:queueStream({{"again"}}):collectBatches()
        ssc2:start()
        ssc2:advance(1)
        ssc2:stop()
        assert.are.same({{"again"}}, out2)
    end)

    it("refuses to add to the graph of a stopped context", function()
        local ssc = manual()
        ssc:stop()
        local ok, err = pcall(ssc.queueStream, ssc, {})
        assert.is_false(ok)
        assert.matches("cannot add to the graph of a context that is stopped", err, 1, true)
    end)

    it("raises on an unknown option, listing the allowed ones", function()
        local ssc = manual()
        local ok, err = pcall(ssc.stop, ssc, {gracefull = true})
        assert.is_false(ok)
        assert.matches("stop: unknown option \"gracefull\" (allowed: graceful", err, 1, true)
        ssc:stop()
    end)
end)

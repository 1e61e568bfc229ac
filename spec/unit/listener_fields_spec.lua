-- What a listener's callbacks receive under the manual clock, field by field
-- (API.md: info has batchTime, numRecords, submissionTime,
-- processingStartTime, processingEndTime, schedulingDelay, processingDelay,
-- totalDelay; err has source, message, time). On a manual clock time stands
-- still while a batch runs, so every value is exact.
local dstream = require("dstream")
local line_server = require("spec.helpers.line_server")
local wait = require("spec.helpers.wait")
local ffi = require("ffi")
pcall(ffi.cdef, "int poll(void *fds, unsigned long nfds, int timeout);")

local FIELDS = {"batchTime", "numRecords", "submissionTime", "processingStartTime", "processingEndTime",
    "schedulingDelay", "processingDelay", "totalDelay"}

local function manual(seconds)
    return dstream.StreamingContext{batchInterval = seconds or 1, clock = "manual"}
end

-- A listener logging every event: log[i] = {event, info or err}.
local function recorder()
    local log = {}
    local l = {log = log}
    for _, event in ipairs({"onBatchSubmitted", "onBatchStarted", "onBatchCompleted", "onReceiverError"}) do
        l[event] = function(x) log[#log + 1] = {event, x} end
    end
    return l
end

local function events_of(log, event)
    local out = {}
    for _, e in ipairs(log) do
        if e[1] == event then out[#out + 1] = e[2] end
    end
    return out
end

-- A custom receiver giving `per_poll` records a poll, reporting an error on
-- its second poll.
local function receiver(per_poll)
    local r = {polls = 0}
    function r.start(_, ctx) r.ctx = ctx end
    function r.poll(_, ctx)
        r.polls = r.polls + 1
        if r.polls == 2 then ctx:reportError("the sensor hiccuped") end
        local out = {}
        for i = 1, per_poll do out[i] = r.polls * 100 + i end
        return out
    end
    function r.stop() end
    return r
end

describe("a listener under the manual clock", function()
    it("gets at onBatchCompleted every field of info, each with the batch's exact value", function()
        local ssc = manual(2)
        local l = recorder()
        ssc:addStreamingListener(l)
        local q = ssc:queueStream({{1, 2, 3}, {}, {4}})
        local r = ssc:receiverStream(receiver(2))
        local seen = {}
        q:union(r):foreachRDD(function(rdd, t) seen[t] = rdd:count() end)
        ssc:start()
        ssc:advance(3)
        ssc:stop()
        local completed = events_of(l.log, "onBatchCompleted")
        assert.are.equal(3, #completed)
        for i, info in ipairs(completed) do
            local t = 2000 * i
            for _, f in ipairs(FIELDS) do assert.are.equal("number", type(info[f]), f) end
            assert.are.same({t, seen[t], t, t, t, 0, 0, 0},
                {info.batchTime, info.numRecords, info.submissionTime, info.processingStartTime,
                 info.processingEndTime, info.schedulingDelay, info.processingDelay, info.totalDelay})
            assert.is_false(info.failed)
        end
        -- The queue's records and the receiver's two a poll (one poll a batch).
        assert.are.same({5, 2, 3}, {completed[1].numRecords, completed[2].numRecords, completed[3].numRecords})
    end)

    it("gives onBatchSubmitted what is known at submission and onBatchStarted the start too", function()
        local ssc = manual()
        local l = recorder()
        ssc:addStreamingListener(l)
        ssc:queueStream({{"a", "b"}, {"c"}}):foreachRDD(function() end)
        ssc:start()
        ssc:advance(2)
        ssc:stop()
        local submitted, started = events_of(l.log, "onBatchSubmitted"), events_of(l.log, "onBatchStarted")
        assert.are.equal(2, #submitted)
        assert.are.equal(2, #started)
        for i = 1, 2 do
            local t, n = 1000 * i, 3 - i
            local s = submitted[i]
            assert.are.same({t, n, t}, {s.batchTime, s.numRecords, s.submissionTime})
            -- Not started yet: no start, end or delay to tell.
            for _, f in ipairs({"processingStartTime", "processingEndTime", "schedulingDelay",
                    "processingDelay", "totalDelay"}) do
                assert.is_nil(s[f], f)
            end
            local st = started[i]
            assert.are.same({t, n, t, t, 0}, {st.batchTime, st.numRecords, st.submissionTime,
                st.processingStartTime, st.schedulingDelay})
            assert.is_nil(st.processingEndTime)
            assert.is_nil(st.totalDelay)
        end
    end)

    it("still gives a failed batch every field, with failed = true", function()
        local ssc = manual()
        local l = recorder()
        ssc:addStreamingListener(l)
        ssc:queueStream({{"x", "y"}}):foreachRDD(function() error("sink broke") end)
        ssc:start()
        local ok = pcall(ssc.advance, ssc, 1)
        ssc:stop()
        assert.is_false(ok)
        local info = events_of(l.log, "onBatchCompleted")[1]
        assert.is_true(info.failed)
        assert.are.same({1000, 2, 1000, 1000, 1000, 0, 0, 0},
            {info.batchTime, info.numRecords, info.submissionTime, info.processingStartTime,
             info.processingEndTime, info.schedulingDelay, info.processingDelay, info.totalDelay})
    end)

    it("stamps a custom receiver's reported error with the manual clock's time", function()
        local ssc = manual()
        local l = recorder()
        ssc:addStreamingListener(l)
        ssc:receiverStream(receiver(1)):foreachRDD(function() end)
        ssc:start()
        ssc:advance(3)
        ssc:stop()
        local errs = events_of(l.log, "onReceiverError")
        assert.are.equal(1, #errs)
        assert.matches("receiverStream", errs[1].source, 1, true)
        assert.are.equal("the sensor hiccuped", errs[1].message)
        -- The second poll runs as the second batch is taken, at 2000 ms...
        -- or the first's pump at 1000 ms: either way a time of this clock.
        assert.is_true(errs[1].time == 1000 or errs[1].time == 2000, tostring(errs[1].time))
    end)

    it("stamps a socket receiver's error with the manual clock's time, not the wall clock's", function()
        local server = line_server.start{data = "ok\n" .. ("x"):rep(64) .. "\nafter\n", mode = "hold"}
        local ssc = manual()
        local l = recorder()
        ssc:addStreamingListener(l)
        local got = {}
        ssc:socketTextStream(server.host, server.port, {maxLineBytes = 16}):foreachRDD(function(rdd)
            for _, x in ipairs(rdd:collect()) do got[#got + 1] = x end
        end)
        ssc:start()
        -- The socket's bytes arrive when they do; each advance collects
        -- what is there (bounded: a broken receiver fails the assert below).
        local deadline = wait.now() + 10
        while #got < 2 and wait.now() < deadline do
            ssc:advance(1)
            ffi.C.poll(nil, 0, 5)
        end
        local now = ssc.engine:now()
        ssc:stop()
        server:close()
        assert.are.same({"ok", "after"}, got)
        local errs = events_of(l.log, "onReceiverError")
        assert.are.equal(1, #errs)
        assert.are.equal(string.format("socketTextStream(%s:%d)", server.host, server.port), errs[1].source)
        assert.matches("maxLineBytes 16", errs[1].message, 1, true)
        assert.are.equal(0, errs[1].time % 1000)
        assert.is_true(errs[1].time >= 1000 and errs[1].time <= now, tostring(errs[1].time))
    end)
end)

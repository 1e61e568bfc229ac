-- batchInterval = dstream.ms(1) under the system clock, with a real socket
-- source (examples/wordgen.lua through spec/helpers/line_server.lua): every
-- batch time falls due once, in order, none skipped, and a batch that runs
-- late shows as scheduling delay. No assertion here is on how long anything
-- took: the specs stop once they have seen what they wait for, and
-- awaitTerminationOrTimeout only bounds a broken spec.
local dstream = require("dstream")
local line_server = require("spec.helpers.line_server")

local ffi = require("ffi")
pcall(ffi.cdef, "int poll(void *fds, unsigned long nfds, int timeout);")

local LINES, BATCHES = 3000, 400

local function lines()
    local t = {}
    for i = 1, LINES do t[i] = "line " .. i end
    return t
end

-- Runs a 1 ms pipeline on a socket holding LINES lines until it has seen
-- every line and at least BATCHES batches; `each(t, records)` runs in
-- foreachRDD. Returns the infos of the completed batches, the batch times
-- foreachRDD saw, the lines received, and whether it stopped by itself.
local function run_ms(each)
    local server = line_server.start{lines = lines(), mode = "hold"}
    local ssc = dstream.StreamingContext{batchInterval = dstream.ms(1)}
    local infos, times, got = {}, {}, {}
    ssc:addStreamingListener{onBatchCompleted = function(info)
        infos[#infos + 1] = info
        if #infos >= BATCHES and #got >= LINES then ssc:stop() end
    end}
    ssc:socketTextStream(server.host, server.port):foreachRDD(function(rdd, t)
        times[#times + 1] = t
        local records = rdd:collect()
        for _, r in ipairs(records) do got[#got + 1] = r end
        if each then each(t, records) end
    end)
    ssc:start()
    local stopped = ssc:awaitTerminationOrTimeout(30)
    ssc:stop()
    server:close()
    return infos, times, got, stopped
end

describe("batchInterval = dstream.ms(1)", function()
    it("runs every batch time from the first to the last exactly once, in order, losing no line", function()
        local infos, times, got, stopped = run_ms()
        assert.is_true(stopped, "the pipeline never saw every line and " .. BATCHES .. " batches")
        assert.is_true(#infos >= BATCHES)
        local first = infos[1].batchTime
        for i, info in ipairs(infos) do
            assert.are.equal(first + (i - 1), info.batchTime, "batch " .. i)
            assert.are.equal(info.batchTime, times[i])
        end
        assert.are.equal(#infos, #times)
        local want = lines()
        assert.are.same(want, got)
        local n = 0
        for _, info in ipairs(infos) do n = n + info.numRecords end
        assert.are.equal(LINES, n)
    end)

    it("shows a batch that runs late as scheduling delay and skips none after it", function()
        local slow
        local infos, _, got, stopped = run_ms(function(t)
            -- One batch blocks the driver 20 ms: 20 batch times pass meanwhile.
            if slow == nil and t then
                slow = t
                ffi.C.poll(nil, 0, 20)
            end
        end)
        assert.is_true(stopped)
        assert.are.equal(LINES, #got)
        local first, after = infos[1].batchTime, nil
        for i, info in ipairs(infos) do
            assert.are.equal(first + (i - 1), info.batchTime, "batch " .. i)
            if info.batchTime == slow + 1 then after = info end
        end
        assert.is_not_nil(after, "the batch after the slow one never ran")
        -- It could not start before the slow batch ended, 20 ms after that
        -- batch's time at least (the clock's ms are truncated: 19).
        assert.is_true(after.schedulingDelay >= 19, "schedulingDelay " .. after.schedulingDelay)
        assert.are.equal(after.processingStartTime - after.submissionTime, after.schedulingDelay)
        assert.are.equal(after.processingEndTime - after.submissionTime, after.totalDelay)
    end)
end)

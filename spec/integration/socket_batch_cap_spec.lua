-- socketTextStream against a producer far faster than the pipeline: a
-- batch never holds more than the socket's cap (a batch interval's worth at
-- 500 000 lines/s, at least 10 000 lines: lua/dstream/sources.lua), and
-- every line arrives once, in order. The sink is slow on purpose (it
-- blocks the driver), so batches fall behind and run back to back.
local dstream = require("dstream")
local line_server = require("spec.helpers.line_server")

local ffi = require("ffi")
pcall(ffi.cdef, "int poll(void *fds, unsigned long nfds, int timeout);")
local function sleep(seconds)
    ffi.C.poll(nil, 0, math.floor(seconds * 1000))
end

describe("a socketTextStream fed faster than it processes", function()
    it("cuts batches of at most 10 000 lines at a 10 ms interval, losing nothing, in order", function()
        local lines = {}
        for i = 1, 60000 do lines[i] = "line " .. i end
        local server = line_server.start{lines = lines, mode = "hold", seconds = 30}
        local ssc = dstream.StreamingContext{batchInterval = 0.01}
        local got, largest, batches = {}, 0, 0
        ssc:socketTextStream(server.host, server.port):foreachRDD(function(rdd)
            local n = rdd:count()
            if n > 0 then
                batches = batches + 1
                sleep(0.05) -- five intervals: the producer gets ahead
            end
            if n > largest then largest = n end
            for _, r in ipairs(rdd:collect()) do got[#got + 1] = r end
            if #got >= #lines then ssc:stop() end
        end)
        ssc:start()
        local stopped = ssc:awaitTerminationOrTimeout(20)
        ssc:stop()
        server:close()
        assert.is_true(stopped, "stopped after " .. #got .. " lines")
        assert.is_true(largest <= 10000, "a batch held " .. largest .. " lines")
        assert.is_true(batches >= 6, "only " .. batches .. " batches with lines")
        assert.are.equal(#lines, #got)
        for i = 1, #lines do
            if got[i] ~= lines[i] then assert.are.equal(lines[i], got[i], "line " .. i) end
        end
    end)
end)

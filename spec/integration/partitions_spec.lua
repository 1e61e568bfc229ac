-- Blocks are partitions: each block a receiver cuts (one per blockInterval)
-- is one partition of the batch's RDD, as in Spark, and glom, mapPartitions
-- and foreachPartition see them. Real sockets and the system clock: only a
-- running loop cuts blocks by time.
local dstream = require("dstream")
local line_server = require("spec.helpers.line_server")
local wait = require("spec.helpers.wait")

local function context(extra)
    local opts = {batchInterval = 0.4, blockInterval = 0.1}
    for k, v in pairs(extra or {}) do opts[k] = v end
    return dstream.StreamingContext(opts)
end

-- A receiver handing out one numbered record per poll.
local function numbers()
    local r = {next = 1}
    function r.start() end
    function r.stop() end
    function r:poll()
        self.next = self.next + 1
        return {self.next - 1}
    end
    return r
end

describe("blocks as partitions", function()
    it("makes each block interval's lines of a socket one partition of the batch", function()
        -- 200 lines over about a second: several blocks per 0.4 s batch.
        local server = line_server.spawn{"--port", "0", "--rate", "200", "--lines", "200",
            "--lines-then-hold", "--connections", "1", "--seconds", "10", "--seed", "7"}
        local ssc = context()
        local got, most, empty = 0, 0, 0
        ssc:socketTextStream(server.host, server.port):glom():foreachRDD(function(rdd)
            local parts = rdd:collect()
            if rdd:count() > 0 and #parts > most then most = #parts end
            for _, p in ipairs(parts) do
                got = got + #p
                if #p == 0 and #parts > 1 then empty = empty + 1 end
            end
        end)
        ssc:start()
        assert.is_true(wait.until_done(ssc, function() return got >= 200 end), "got " .. got .. " lines")
        ssc:stop()
        server:close()
        assert.are.equal(200, got)
        assert.is_true(most >= 2, "no batch held more than one block")
        assert.are.equal(0, empty)
    end)

    it("makes each poll of a custom receiver one partition, in order", function()
        local ssc = context()
        local seen, most = {}, 0
        ssc:receiverStream(numbers()):glom():foreachRDD(function(rdd)
            local parts = rdd:collect()
            if #parts > most then most = #parts end
            for _, p in ipairs(parts) do
                assert.are.equal(1, #p)
                seen[#seen + 1] = p[1]
            end
        end)
        ssc:start()
        assert.is_true(wait.until_done(ssc, function() return most >= 2 and #seen >= 8 end))
        ssc:stop()
        for i = 1, #seen do assert.are.equal(i, seen[i]) end
    end)

    it("shows mapPartitions and foreachPartition the blocks", function()
        local ssc = context()
        local sizes, calls = {}, 0
        local src = ssc:receiverStream(numbers())
        src:mapPartitions(function(arr) return {#arr} end):foreachRDD(function(rdd)
            for _, n in ipairs(rdd:collect()) do sizes[#sizes + 1] = n end
        end)
        src:foreachRDD(function(rdd) rdd:foreachPartition(function() calls = calls + 1 end) end)
        ssc:start()
        assert.is_true(wait.until_done(ssc, function() return #sizes >= 4 end))
        ssc:stop()
        for _, n in ipairs(sizes) do assert.are.equal(1, n) end
        assert.is_true(calls >= 4)
    end)

    it("keeps one partition per poll under the manual clock: one a batch", function()
        local ssc = dstream.StreamingContext{batchInterval = 1, blockInterval = 0.25, clock = "manual"}
        local out = ssc:receiverStream(numbers()):glom():collectBatches()
        ssc:start()
        ssc:advance(2)
        ssc:stop()
        assert.are.same({{{1}}, {{2}}}, out)
    end)

    it("keeps one partition per queueStream entry", function()
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
        local out = ssc:queueStream({{1, 2}, {3}, {}}, false):glom():collectBatches()
        ssc:start()
        ssc:advance(1)
        assert.are.same({{{1, 2}, {3}, {}}}, out)
    end)
end)

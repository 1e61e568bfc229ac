-- The driver: each batch runs the plan the C graph makes (what to compute, in
-- which order, what to forget); the driver keeps no scheduling rule itself.
local dstream = require "dstream"

local StreamingContext = dstream.StreamingContext

local function manual(batch)
    return StreamingContext{batchInterval = batch or 1, clock = "manual"}
end

describe("the batch plan", function()
    it("computes a window's parent batch by batch, as its data arrives", function()
        local ssc = manual()
        local events = {}
        local src = ssc:queueStream({{1}, {2}, {3}, {4}})
        local seen = src:transform(function(r, t)
            events[#events + 1] = "parent " .. t
            return r
        end)
        seen:window(3, 3):foreachRDD(function(r, t)
            events[#events + 1] = "window " .. t .. ": " .. r:count()
        end)
        src:foreachRDD(function(_, t) events[#events + 1] = "batch " .. t end)
        ssc:start()
        ssc:advance(3)
        assert.same({"parent 1000", "batch 1000", "parent 2000", "batch 2000",
            "parent 3000", "window 3000: 3", "batch 3000"}, events)
    end)

    it("never computes the parent batches a window sliding past its length skips", function()
        local ssc = manual()
        local computed = {}
        local src = ssc:queueStream({{1}, {2}, {3}, {4}, {5}, {6}})
        local out = src:transform(function(r, t)
            computed[#computed + 1] = t
            return r
        end):window(1, 3):collectBatches()
        ssc:start()
        ssc:advance(6)
        assert.same({{3}, {6}}, out)
        assert.same({3000, 6000}, computed)
    end)

    it("never computes a stream that no output or stateful stream reads", function()
        local ssc = manual()
        local calls = 0
        local src = ssc:queueStream({{1}, {2}})
        src:map(function(x) calls = calls + 1; return x end)
        local out = src:collectBatches()
        ssc:start()
        ssc:advance(2)
        assert.same({{1}, {2}}, out)
        assert.equal(0, calls)
    end)

    it("computes a stream read by two outputs once per batch", function()
        local ssc = manual()
        local calls = 0
        local shared = ssc:queueStream({{1, 2}, {3}}):map(function(x) calls = calls + 1; return x * 10 end)
        local a, b = shared:collectBatches(), shared:collectBatches()
        ssc:start()
        ssc:advance(2)
        assert.same({{10, 20}, {30}}, a)
        assert.same(a, b)
        assert.equal(3, calls)
    end)

    it("runs a stateful stream every batch though no output reads it then", function()
        local ssc = manual()
        local src = ssc:queueStream({{"a"}, {"a"}, {"a"}, {"a"}})
        local totals = src:mapToPair(function(w) return w, 1 end):updateStateByKey(function(vs, s)
            return (s or 0) + #vs
        end)
        local out = totals:window(2, 2):collectBatches()
        ssc:start()
        ssc:advance(4)
        assert.same({{{"a", 1}, {"a", 2}}, {{"a", 3}, {"a", 4}}}, out)
    end)

    it("forgets a batch once no later batch reads it", function()
        local ssc = manual()
        local queue = {}
        for i = 1, 20 do queue[i] = {i} end
        local src = ssc:queueStream(queue)
        local sums = src:reduceByWindow(function(x, y) return x + y end, 3, 1)
        local out = sums:collectBatches()
        ssc:start()
        ssc:advance(20)
        assert.same({18 + 19 + 20}, out[20])
        local kept, oldest = 0, math.huge
        for t in pairs(src.generated) do
            kept = kept + 1
            oldest = math.min(oldest, t)
        end
        assert.is_true(kept <= 3, "the source kept " .. kept .. " batches")
        assert.is_true(oldest > 17000, "the source kept the batch at " .. oldest)
    end)

    it("runs the later nodes of a batch when one fails, and their outputs see no batch from it", function()
        local ssc = manual()
        local src = ssc:queueStream({{1}, {2}})
        local broken = src:map(function(x)
            if x == 1 then error("bad record") end
            return x
        end)
        local fromBroken = broken:collectBatches()
        local fine = src:collectBatches()
        ssc:start()
        local ok, err = pcall(ssc.advance, ssc, 2)
        assert.is_false(ok)
        assert.matches("map", tostring(err), 1, true)
        assert.matches("bad record", tostring(err), 1, true)
        assert.matches("batch time 1000 ms", tostring(err), 1, true)
        assert.same({{1}, {2}}, fine)
        assert.same({{2}}, fromBroken)
    end)
end)

describe("ssc:_fingerprint()", function()
    local function pipeline(f, len, name)
        local ssc = manual()
        local words = ssc:queueStream({}):flatMap(f)
        if name then words:name(name) end
        words:countByValueAndWindow(len, 1):print()
        return ssc
    end
    local split = function(line) return line:gmatch("%S+") end
    local other = function(line) return {line} end

    it("is the same for the same graph, whatever its functions", function()
        local fp = pipeline(split, 3):_fingerprint()
        assert.matches("^%x+$", fp)
        assert.equal(16, #fp)
        assert.equal(fp, pipeline(other, 3):_fingerprint())
    end)

    it("changes with the window, a name or an operator", function()
        local fp = pipeline(split, 3):_fingerprint()
        assert.not_equal(fp, pipeline(split, 4):_fingerprint())
        assert.not_equal(fp, pipeline(split, 3, "words"):_fingerprint())
        local ssc = manual()
        ssc:queueStream({}):map(split):countByValueAndWindow(3, 1):print()
        assert.not_equal(fp, ssc:_fingerprint())
    end)

    it("is the same before and after start()", function()
        local ssc = pipeline(split, 3)
        local fp = ssc:_fingerprint()
        ssc:start()
        assert.equal(fp, ssc:_fingerprint())
        ssc:stop()
    end)
end)

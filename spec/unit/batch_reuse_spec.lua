-- Tables reused from batch to batch (a fused reduceByKey's hash tables,
-- see shuffle.reducer) never reach what a user keeps: RDDs kept from
-- foreachRDD, windows, cached streams and collected batches hold their own
-- batch's records after any number of later batches. And a queue entry is
-- copied into its batch: changing the array afterwards changes nothing kept.
local batches = require "helpers.batches"

-- Batches of words: batch b holds "w1".."w<b+2>", word wi i times.
local function word_batches(n)
    local out = {}
    for b = 1, n do
        local words = {}
        for i = 1, b + 2 do
            for _ = 1, i do words[#words + 1] = "w" .. i end
        end
        out[b] = {table.concat(words, " ")}
    end
    return out
end

local function counts_of(b)
    local out = {}
    for i = 1, b + 2 do out[#out + 1] = {"w" .. i, i} end
    return out
end

local function word_count(s)
    return s:flatMap(function(line) return line:gmatch("%S+") end)
        :mapToPair(function(w) return w, 1 end)
        :reduceByKey(function(a, b) return a + b end)
end

describe("a fused reduceByKey's batches", function()
    it("keep their own counts in RDDs a user keeps, after later batches", function()
        local kept = {}
        local ssc = batches.context()
        word_count(ssc:queueStream(word_batches(5))):foreachRDD(function(rdd) kept[#kept + 1] = rdd end)
        ssc:start()
        ssc:advance(5)
        ssc:stop()
        assert.equal(5, #kept)
        for b = 1, 5 do
            assert.same(counts_of(b), batches.sorted(kept[b]:collect()))
        end
    end)

    it("keep their own counts in a window over them and in a cached stream", function()
        local ssc = batches.context()
        local counts = word_count(ssc:queueStream(word_batches(4))):cache()
        local windows = counts:window(3, 1):collectBatches()
        local cached = {}
        counts:foreachRDD(function(rdd) cached[#cached + 1] = rdd end)
        ssc:start()
        ssc:advance(4)
        ssc:stop()
        for b = 1, 4 do
            local expected = {}
            for c = math.max(1, b - 2), b do
                for _, p in ipairs(counts_of(c)) do expected[#expected + 1] = p end
            end
            assert.same(batches.sorted(expected), batches.sorted(windows[b]))
            assert.same(counts_of(b), batches.sorted(cached[b]:collect()))
        end
    end)

    it("count right after a batch whose reduce function failed midway", function()
        local ssc = batches.context()
        local fail_now = false
        local out = ssc:queueStream({{"a a b"}, {"a a a c"}, {"a b b"}})
            :flatMap(function(line) return line:gmatch("%S+") end)
            :mapToPair(function(w) return w, 1 end)
            :reduceByKey(function(a, b)
                if fail_now then error("reduce failed") end
                return a + b
            end):collectBatches()
        ssc:start()
        ssc:advance(1)
        fail_now = true
        assert.is_false(pcall(ssc.advance, ssc, 1))
        fail_now = false
        ssc:advance(1)
        ssc:stop()
        assert.same({{{"a", 2}, {"b", 1}}, {{"a", 1}, {"b", 2}}}, batches.sorted_all(out))
    end)
end)

describe("a queueStream batch", function()
    it("is a copy of the queued array: changing the array later changes no batch kept", function()
        local entry = {"x", "y"}
        local kept
        local ssc = batches.context()
        ssc:queueStream({entry}):foreachRDD(function(rdd) kept = rdd end)
        ssc:start()
        ssc:advance(1)
        entry[1], entry[3] = "changed", "added"
        ssc:stop()
        assert.same({"x", "y"}, kept:collect())
    end)

    it("keeps each entry a partition when it takes them all, RDDs and arrays", function()
        local parts = {}
        local rdd = require("dstream.rdd").new(3, {"r1", "r2", "r3"}, nil, {2, 3})
        local ssc = batches.context()
        ssc:queueStream({{"a"}, rdd, {}, {"b", "c"}}, false):foreachRDD(function(r)
            r:foreachPartition(function(p) parts[#parts + 1] = p end)
        end)
        ssc:start()
        ssc:advance(1)
        ssc:stop()
        assert.same({{"a"}, {"r1", "r2"}, {"r3"}, {}, {"b", "c"}}, parts)
    end)
end)

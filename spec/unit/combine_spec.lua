-- reduceByKey right after a fused chain combines inside the stage's loop
-- (map-side combine); these specs check it gives what the unfused path gives.
local dstream = require "dstream"

local function split(line)
    local out = {}
    for w in line:gmatch("%S+") do out[#out + 1] = w end
    return out
end

local function sorted_pairs(batch)
    local out = {}
    for i, p in ipairs(batch) do out[i] = p[1] .. "=" .. p[2] end
    table.sort(out)
    return out
end

local function word_counts(cache_words, input)
    local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
    local pairs_ = ssc:queueStream(input):flatMap(split):mapToPair(function(w) return w, 1 end)
    if cache_words then pairs_:cache() end
    local got = pairs_:reduceByKey(function(a, b) return a + b end):collectBatches()
    ssc:start()
    ssc:advance(#input)
    ssc:stop()
    return got, pairs_
end

describe("reduceByKey after a fused chain", function()
    it("counts the same words as the unfused path, batch by batch", function()
        local input = {{"a b a", "c"}, {}, {"b b", "a"}}
        local fused = word_counts(false, {input[1], input[2], input[3]})
        local unfused = word_counts(true, {input[1], input[2], input[3]})
        assert.are.same({{"a=2", "b=1", "c=1"}, {}, {"a=1", "b=2"}}, {
            sorted_pairs(fused[1]), sorted_pairs(fused[2]), sorted_pairs(fused[3])})
        for i = 1, 3 do assert.are.same(sorted_pairs(unfused[i]), sorted_pairs(fused[i])) end
    end)

    it("folds into the stage: the explain output says map-side combine", function()
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
        ssc:queueStream({}):flatMap(split):mapToPair(function(w) return w, 1 end)
            :reduceByKey(function(a, b) return a + b end):print()
        local text = dstream.util and require("dstream.explain").text(ssc)
        assert.matches("reduceByKey %(map%-side combine%)", text)
        ssc:stop()
    end)

    it("keeps composite keys by content", function()
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
        local got = ssc:queueStream({{1, 2, 3, 4}}):mapToPair(function(x) return {"parity", x % 2}, x end)
            :reduceByKey(function(a, b) return a + b end):collectBatches()
        ssc:start()
        ssc:advance(1)
        local sums = {}
        for _, p in ipairs(got[1]) do sums[p[1][2]] = p[2] end
        assert.are.same({[0] = 6, [1] = 4}, sums)
        assert.are.equal(2, #got[1])
    end)

    it("names reduceByKey when the reducer raises, with the batch time", function()
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
        ssc:queueStream({{"a a"}}):flatMap(split):mapToPair(function(w) return w, 1 end)
            :reduceByKey(function() error("boom in reducer") end):name("counts"):print()
        ssc:start()
        local ok, err = pcall(ssc.advance, ssc, 1)
        assert.is_false(ok)
        assert.matches("reduceByKey", err)
        assert.matches('"counts"', err)
        assert.matches("1000 ms", err)
        assert.matches("boom in reducer", err)
    end)

    it("names reduceByKey for a key it cannot hold", function()
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
        ssc:queueStream({{"a"}}):mapToPair(function(w) return print, w end)
            :reduceByKey(function(a, b) return a + b end):print()
        ssc:start()
        local ok, err = pcall(ssc.advance, ssc, 1)
        assert.is_false(ok)
        assert.matches("reduceByKey", err)
        assert.matches("function", err)
    end)

    it("raises when the reducer returns nil, naming the key", function()
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
        ssc:queueStream({{"a a"}}):flatMap(split):mapToPair(function(w) return w, 1 end)
            :reduceByKey(function() return nil end):print()
        ssc:start()
        local ok, err = pcall(ssc.advance, ssc, 1)
        assert.is_false(ok)
        assert.matches('returned nil for key "a"', err)
    end)
end)

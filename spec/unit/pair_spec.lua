-- Operations of pair streams: input batches in, expected batches out, under
-- a manual clock. Shuffled outputs come in no defined order, so they are
-- sorted before comparing; the order of values within a key is checked
-- where API.md promises one (groupByKey: arrival order).
local batches = require "helpers.batches"

local run, run2, sorted_all, plain_all = batches.run, batches.run2, batches.sorted_all, batches.plain_all

local function add(a, b) return a + b end

-- A pair stream from records {k, v}.
local function pairs_of(s)
    return s:mapToPair(function(kv) return kv[1], kv[2] end)
end

describe("DStream:mapValues", function()
    it("applies the function to the values and keeps the keys", function()
        local out = run({{{"a", 1}, {"b", 2}}, {}}, function(s)
            return pairs_of(s):mapValues(function(v) return v * 10 end)
        end)
        assert.same({{{"a", 10}, {"b", 20}}, {}}, plain_all(out))
    end)

    it("gives the function the value only", function()
        local args
        run({{{"a", 1}}}, function(s)
            return pairs_of(s):mapValues(function(...) args = {n = select("#", ...), ...} return 0 end)
        end)
        assert.same({n = 1, 1}, args)
    end)
end)

describe("DStream:flatMapValues", function()
    it("emits one pair per element of the array, with the record's key", function()
        local out = run({{{"a", 2}, {"b", 0}, {"c", 1}}}, function(s)
            return pairs_of(s):flatMapValues(function(n)
                local vs = {}
                for i = 1, n do vs[i] = i * 100 end
                return vs
            end)
        end)
        assert.same({{{"a", 100}, {"a", 200}, {"c", 100}}}, plain_all(out))
    end)
end)

describe("DStream:keys and DStream:values", function()
    it("keep the keys, or the values, as single records", function()
        local ks = run({{{"a", 1}, {"b", 2}}}, function(s) return pairs_of(s):keys() end)
        local vs = run({{{"a", 1}, {"b", 2}}}, function(s) return pairs_of(s):values() end)
        assert.same({{"a", "b"}}, ks)
        assert.same({{1, 2}}, vs)
    end)

    it("give streams of single values", function()
        local out = run({{{"a", 1}, {"a", 2}}}, function(s)
            return pairs_of(s):keys():map(function(k) return k .. "!" end)
        end)
        assert.same({{"a!", "a!"}}, out)
    end)
end)

describe("DStream:reduceByKey", function()
    it("reduces the values of each key within each batch", function()
        local out = run({{{"a", 1}, {"b", 2}, {"a", 3}}, {{"b", 5}}, {}}, function(s)
            return pairs_of(s):reduceByKey(add)
        end)
        assert.same({{{"a", 4}, {"b", 2}}, {{"b", 5}}, {}}, sorted_all(out))
    end)

    it("keeps a key with one value as it is, without calling the function", function()
        local calls = 0
        local out = run({{{"a", "x"}}}, function(s)
            return pairs_of(s):reduceByKey(function(a, b) calls = calls + 1 return a .. b end)
        end)
        assert.same({{{"a", "x"}}}, plain_all(out))
        assert.equal(0, calls)
    end)

    it("counts words (the word count)", function()
        local out = run({{"to be or", "not to be"}, {"be"}}, function(s)
            return s:flatMap(function(line)
                local ws = {}
                for w in line:gmatch("%a+") do ws[#ws + 1] = w end
                return ws
            end):mapToPair(function(w) return w, 1 end):reduceByKey(add)
        end)
        assert.same({{{"be", 2}, {"not", 1}, {"or", 1}, {"to", 2}}, {{"be", 1}}}, sorted_all(out))
    end)

    it("spreads the keys over numPartitions partitions, each key in one", function()
        local seen = {}
        local ssc = batches.context()
        local input = {}
        for i = 1, 40 do input[i] = {i % 10, 1} end
        local reduced = pairs_of(ssc:queueStream({input})):reduceByKey(add, 4)
        local out = reduced:collectBatches()
        reduced:foreachRDD(function(rdd)
            local parts = rdd:glom():collect()
            seen.parts = #parts
            seen.keys = {}
            for p, part in ipairs(parts) do
                for _, kv in ipairs(part) do
                    assert.is_nil(seen.keys[kv[1]])
                    seen.keys[kv[1]] = p
                end
            end
        end)
        ssc:start()
        ssc:advance(1)
        local expected = {}
        for k = 0, 9 do expected[#expected + 1] = {k, 4} end
        assert.same({expected}, sorted_all(out))
        assert.equal(4, seen.parts)
    end)

    it("raises unless numPartitions is a whole number >= 1", function()
        local s = pairs_of(batches.context():queueStream({}))
        for _, bad in ipairs({0, 2.5, "3"}) do
            local ok, err = pcall(s.reduceByKey, s, add, bad)
            assert.is_false(ok)
            assert.matches("reduceByKey: numPartitions must be a whole number >= 1", err, 1, true)
        end
    end)
end)

describe("DStream:groupByKey", function()
    it("gives each key the array of its values in arrival order", function()
        local out = run({{{"a", 1}, {"b", 2}, {"a", 3}, {"a", 2}}, {}}, function(s)
            return pairs_of(s):groupByKey()
        end)
        assert.same({{{"a", {1, 3, 2}}, {"b", {2}}}, {}}, sorted_all(out))
    end)

    it("groups within each batch only", function()
        local out = run({{{"a", 1}}, {{"a", 2}}}, function(s) return pairs_of(s):groupByKey() end)
        assert.same({{{"a", {1}}}, {{"a", {2}}}}, sorted_all(out))
    end)
end)

describe("DStream:combineByKey", function()
    it("builds a combiner per key from createCombiner, mergeValue and mergeCombiners", function()
        local out = run({{{"a", 1}, {"b", 5}, {"a", 3}}}, function(s)
            return pairs_of(s):combineByKey(
                function(v) return {sum = v, n = 1} end,
                function(c, v) return {sum = c.sum + v, n = c.n + 1} end,
                function(c1, c2) return {sum = c1.sum + c2.sum, n = c1.n + c2.n} end)
        end)
        assert.same({{{"a", {sum = 4, n = 2}}, {"b", {sum = 5, n = 1}}}}, sorted_all(out))
    end)

    it("merges the combiners of different partitions with mergeCombiners", function()
        local merges = 0
        local out = run({{{"a", 1}, {"a", 2}, {"a", 3}, {"a", 4}}}, function(s)
            return pairs_of(s):repartition(2):combineByKey(
                function(v) return {v} end,
                function(c, v) c[#c + 1] = v return c end,
                function(c1, c2)
                    merges = merges + 1
                    for _, v in ipairs(c2) do c1[#c1 + 1] = v end
                    return c1
                end)
        end)
        assert.same({{{"a", {1, 2, 3, 4}}}}, plain_all(out))
        assert.equal(1, merges)
    end)

    it("raises when one of the three functions is missing", function()
        local s = pairs_of(batches.context():queueStream({}))
        local f = function(v) return v end
        local ok, err = pcall(s.combineByKey, s, f, f)
        assert.is_false(ok)
        assert.matches("combineByKey: argument #3 (mergeCombiners) must be a function, got nil", err, 1, true)
    end)
end)

-- Join specs: left {a: 1, 2; b: 3; c: 4}, right {a: x; b: y, z; d: w}.
local LEFT = {{{"a", 1}, {"b", 3}, {"a", 2}, {"c", 4}}}
local RIGHT = {{{"a", "x"}, {"b", "y"}, {"d", "w"}, {"b", "z"}}}

local function joined(op)
    local left, right = {}, {}
    for i, kv in ipairs(LEFT[1]) do left[i] = kv end
    for i, kv in ipairs(RIGHT[1]) do right[i] = kv end
    return sorted_all(run2({left}, {right}, function(a, b)
        return pairs_of(a)[op](pairs_of(a), pairs_of(b))
    end))
end

describe("DStream:join", function()
    it("pairs every value of a key on the left with every value on the right", function()
        assert.same({{
            {"a", {1, "x"}}, {"a", {2, "x"}},
            {"b", {3, "y"}}, {"b", {3, "z"}},
        }}, joined("join"))
    end)

    it("gives no record for a batch where one side is empty", function()
        local out = run2({{{"a", 1}}, {}}, {{}, {{"a", 2}}}, function(a, b)
            return pairs_of(a):join(pairs_of(b))
        end)
        assert.same({{}, {}}, out)
    end)
end)

describe("DStream:leftOuterJoin", function()
    it("keeps the keys of the left side, with nil for a missing right value", function()
        assert.same({{
            {"a", {1, "x"}}, {"a", {2, "x"}},
            {"b", {3, "y"}}, {"b", {3, "z"}},
            {"c", {4, nil}},
        }}, joined("leftOuterJoin"))
    end)
end)

describe("DStream:rightOuterJoin", function()
    it("keeps the keys of the right side, with nil for a missing left value", function()
        assert.same({{
            {"a", {1, "x"}}, {"a", {2, "x"}},
            {"b", {3, "y"}}, {"b", {3, "z"}},
            {"d", {nil, "w"}},
        }}, joined("rightOuterJoin"))
    end)
end)

describe("DStream:fullOuterJoin", function()
    it("keeps the keys of both sides, with nil for the missing one", function()
        assert.same({{
            {"a", {1, "x"}}, {"a", {2, "x"}},
            {"b", {3, "y"}}, {"b", {3, "z"}},
            {"c", {4, nil}},
            {"d", {nil, "w"}},
        }}, joined("fullOuterJoin"))
    end)
end)

describe("DStream:cogroup", function()
    it("gives every key of either side the arrays of both sides' values", function()
        assert.same({{
            {"a", {{1, 2}, {"x"}}},
            {"b", {{3}, {"y", "z"}}},
            {"c", {{4}, {}}},
            {"d", {{}, {"w"}}},
        }}, joined("cogroup"))
    end)
end)

describe("joins", function()
    it("raise when the other side is not a stream", function()
        local s = pairs_of(batches.context():queueStream({}))
        for _, op in ipairs({"join", "leftOuterJoin", "rightOuterJoin", "fullOuterJoin", "cogroup"}) do
            local ok, err = pcall(s[op], s, {})
            assert.is_false(ok)
            assert.matches(op .. ": argument #1 must be a DStream, got table", err, 1, true)
        end
    end)

    it("raise when the other side is not a pair stream", function()
        local ssc = batches.context()
        local p = pairs_of(ssc:queueStream({}))
        local v = ssc:queueStream({}):name("plain")
        local ok, err = pcall(p.join, p, v)
        assert.is_false(ok)
        assert.matches("join: queueStream[plain] is not a pair stream", err, 1, true)
    end)
end)

describe("functions given to operations of a pair stream", function()
    it("receive the key and the value as two arguments", function()
        local out = run({{{"a", 1}, {"b", 2}}}, function(s)
            local p = pairs_of(s)
            return p:map(function(k, v) return k .. "=" .. v end)
        end)
        assert.same({{"a=1", "b=2"}}, out)
    end)

    it("receive (k, v) in filter, which keeps the pairs", function()
        local out = run({{{"a", 1}, {"b", 2}}}, function(s)
            return pairs_of(s):filter(function(k, v) return k == "b" and v == 2 end)
        end)
        assert.same({{{"b", 2}}}, plain_all(out))
    end)

    it("receive (k, v) in flatMap, mapToPair and flatMapToPair", function()
        local fm = run({{{"a", 2}}}, function(s)
            return pairs_of(s):flatMap(function(k, v) return {k, v} end)
        end)
        local mp = run({{{"a", 2}}}, function(s)
            return pairs_of(s):mapToPair(function(k, v) return v, k end)
        end)
        local fmp = run({{{"a", 2}}}, function(s)
            return pairs_of(s):flatMapToPair(function(k, v) return {{k, v}, {v, k}} end)
        end)
        assert.same({{"a", 2}}, fm)
        assert.same({{{2, "a"}}}, plain_all(mp))
        assert.same({{{"a", 2}, {2, "a"}}}, plain_all(fmp))
    end)

    it("receive (k, v) after a shuffle too", function()
        local out = run({{{"a", 1}, {"a", 2}}}, function(s)
            return pairs_of(s):reduceByKey(add):map(function(k, v) return k .. v end)
        end)
        assert.same({{"a3"}}, out)
    end)
end)

describe("composite keys", function()
    it("compare by content, not identity", function()
        local out = run({{{"x", 1, 5}, {"x", 1, 6}, {"x", 2, 7}, {"y", 1, 8}}}, function(s)
            return s:mapToPair(function(r) return {r[1], r[2]}, r[3] end):reduceByKey(add)
        end)
        assert.same({{{{"x", 1}, 11}, {{"x", 2}, 7}, {{"y", 1}, 8}}}, sorted_all(out))
    end)

    it("join with keys built separately on each side", function()
        local out = run2({{{"a", 1}}}, {{{"a", 1}}}, function(a, b)
            local pa = a:mapToPair(function(r) return {r[1], r[2]}, "left" end)
            local pb = b:mapToPair(function(r) return {r[1], r[2]}, "right" end)
            return pa:join(pb)
        end)
        assert.same({{{{"a", 1}, {"left", "right"}}}}, plain_all(out))
    end)

    it("keep 1 and \"1\" apart", function()
        local out = run({{{1, "n"}, {"1", "s"}, {1, "n2"}}}, function(s)
            return pairs_of(s):groupByKey()
        end)
        assert.same({{{1, {"n", "n2"}}, {"1", {"s"}}}}, sorted_all(out))
    end)
end)

describe("pair operations on a stream of single values", function()
    it("raise when the graph is built, naming the operator", function()
        local s = batches.context():queueStream({})
        local f = function(v) return v end
        local cases = {
            {"mapValues", f}, {"flatMapValues", f}, {"keys"}, {"values"},
            {"reduceByKey", f}, {"groupByKey"}, {"combineByKey", f, f, f},
        }
        for _, case in ipairs(cases) do
            local op = case[1]
            local ok, err = pcall(s[op], s, case[2], case[3], case[4])
            assert.is_false(ok, op)
            assert.matches(op .. ": queueStream is not a pair stream (make pairs with mapToPair)", err, 1, true)
        end
    end)
end)

local shuffle = require "dstream.shuffle"
local key = require "dstream.key"

local NaN = 0 / 0
local RULES = " (keys are strings, numbers, booleans or arrays of those)"

-- Packs a pair result (m, oks, ovs, oends) as { pairs = {{k, v}...}, ends = oends }.
local function pairs_of(m, oks, ovs, oends)
    local out = {}
    for i = 1, m do
        out[i] = { oks[i], ovs[i] }
    end
    return { pairs = out, ends = oends }
end

-- Packs a non-pair result (m, oxs, oends) as { xs = {...}, ends = oends }.
local function records_of(m, oxs, oends)
    local out = {}
    for i = 1, m do
        out[i] = oxs[i]
    end
    return { xs = out, ends = oends }
end

local function add(a, b)
    return a + b
end

describe("shuffle.reduce_by_key", function()
    it("sums the values of each key, keys in first-seen order", function()
        local ks = { "a", "b", "a", "c", "b", "a" }
        local vs = { 1, 2, 3, 4, 5, 6 }
        assert.same({ pairs = { { "a", 10 }, { "b", 7 }, { "c", 4 } }, ends = { 3 } },
            pairs_of(shuffle.reduce_by_key("reduceByKey", 6, ks, vs, { 2, 4, 6 }, add)))
    end)

    it("folds the values from the left in arrival order", function()
        local ks = { "a", "b", "a", "a", "b" }
        local vs = { "1", "2", "3", "4", "5" }
        local concat = function(x, y) return "(" .. x .. y .. ")" end
        assert.same({ pairs = { { "a", "((13)4)" }, { "b", "(25)" } }, ends = { 2 } },
            pairs_of(shuffle.reduce_by_key("reduceByKey", 5, ks, vs, { 5 }, concat)))
    end)

    it("does not call the function for a key seen once", function()
        local f = function() error("called") end
        assert.same({ pairs = { { "x", 1 }, { "y", 2 } }, ends = { 2 } },
            pairs_of(shuffle.reduce_by_key("reduceByKey", 2, { "x", "y" }, { 1, 2 }, { 2 }, f)))
    end)

    it("keeps 1, \"1\", true and \"true\" apart", function()
        local ks = { 1, "1", true, "true", 1, "1", true, "true", 1 }
        local vs = { 1, 10, 100, 1000, 1, 10, 100, 1000, 1 }
        assert.same({ pairs = { { 1, 3 }, { "1", 20 }, { true, 200 }, { "true", 2000 } }, ends = { 4 } },
            pairs_of(shuffle.reduce_by_key("reduceByKey", 9, ks, vs, { 9 }, add)))
    end)

    it("compares composite keys by content and keeps the first key table", function()
        local first = { "eu", 7 }
        local ks = { first, { "us", 7 }, { "eu", 7 }, { 7, "eu" }, { "eu", 7 } }
        local vs = { 1, 2, 3, 4, 5 }
        local m, oks, ovs, oends = shuffle.reduce_by_key("reduceByKey", 5, ks, vs, { 2, 5 }, add)
        assert.same({ pairs = { { { "eu", 7 }, 9 }, { { "us", 7 }, 2 }, { { 7, "eu" }, 4 } }, ends = { 3 } },
            pairs_of(m, oks, ovs, oends))
        assert.equal(first, oks[1])
    end)

    it("never merges a composite key with a plain key", function()
        local canon = key.check({ "a" })
        local ks = { { "a" }, canon, "a", { "a" } }
        assert.same({ pairs = { { { "a" }, 5 }, { canon, 2 }, { "a", 3 } }, ends = { 3 } },
            pairs_of(shuffle.reduce_by_key("reduceByKey", 4, ks, { 1, 2, 3, 4 }, { 4 }, add)))
    end)

    it("splits keys into numPartitions partitions by their hash", function()
        local ks = { 1, 2, 3, 4, 5, 6, 1 }
        local vs = { 1, 1, 1, 1, 1, 1, 1 }
        -- integer keys hash to themselves: partition k % 3 + 1
        assert.same({ pairs = { { 3, 1 }, { 6, 1 }, { 1, 2 }, { 4, 1 }, { 2, 1 }, { 5, 1 } },
                      ends = { 2, 4, 6 } },
            pairs_of(shuffle.reduce_by_key("reduceByKey", 7, ks, vs, { 7 }, add, 3)))
    end)

    it("puts each string key in the partition its hash names, first-seen order within", function()
        local ks = { "apple", "pear", "fig", "kiwi", "plum", "lime", "pear", "date" }
        local vs = { 1, 1, 1, 1, 1, 1, 1, 1 }
        local m, oks, ovs, oends = shuffle.reduce_by_key("reduceByKey", 8, ks, vs, { 8 }, add, 4)
        local expected, want_ends = {}, {}
        for p = 1, 4 do
            for _, k in ipairs({ "apple", "pear", "fig", "kiwi", "plum", "lime", "date" }) do
                if key.hash(k) % 4 + 1 == p then
                    expected[#expected + 1] = { k, k == "pear" and 2 or 1 }
                end
            end
            want_ends[p] = #expected
        end
        assert.same({ pairs = expected, ends = want_ends }, pairs_of(m, oks, ovs, oends))
    end)

    it("leaves partitions without keys empty", function()
        assert.same({ pairs = { { 3, 1 }, { 6, 1 } }, ends = { 2, 2, 2 } },
            pairs_of(shuffle.reduce_by_key("reduceByKey", 2, { 3, 6 }, { 1, 1 }, { 2 }, add, 3)))
    end)

    it("returns an empty batch for an empty batch", function()
        assert.same({ pairs = {}, ends = { 0 } },
            pairs_of(shuffle.reduce_by_key("reduceByKey", 0, {}, {}, { 0 }, add)))
        assert.same({ pairs = {}, ends = { 0, 0 } },
            pairs_of(shuffle.reduce_by_key("reduceByKey", 0, {}, {}, { 0 }, add, 2)))
    end)

    it("raises when the function returns nil, naming the key", function()
        local f = function() return nil end
        assert.has_error(function()
            shuffle.reduce_by_key("reduceByKey", 2, { "a", "a" }, { 1, 2 }, { 2 }, f)
        end, 'reduceByKey: function returned nil for key "a"')
        assert.has_error(function()
            shuffle.reduce_by_key("reduceByKey", 2, { 1, 1 }, { 1, 2 }, { 2 }, f)
        end, "reduceByKey: function returned nil for key 1")
        assert.has_error(function()
            shuffle.reduce_by_key("reduceByKey", 2, { { "a", 1 }, { "a", 1 } }, { 1, 2 }, { 2 }, f)
        end, 'reduceByKey: function returned nil for key {"a", 1}')
    end)

    it("lets errors of the function through", function()
        local f = function() error("boom", 0) end
        assert.has_error(function()
            shuffle.reduce_by_key("reduceByKey", 2, { "a", "a" }, { 1, 2 }, { 2 }, f)
        end, "boom")
    end)

    it("raises for keys that are not keys, naming the operator", function()
        local function run(ks, n)
            shuffle.reduce_by_key("reduceByKey", n or #ks, ks, { 1, 2, 3 }, { n or #ks }, add)
        end
        assert.has_error(function() run({ "a", print }) end,
            "reduceByKey: key of type function is not allowed" .. RULES)
        assert.has_error(function() run({ "a", nil, "b" }, 3) end, "reduceByKey: key is nil" .. RULES)
        assert.has_error(function() run({ "a", NaN }) end, "reduceByKey: key is NaN" .. RULES)
        assert.has_error(function() run({ { "a", { 1 } } }) end,
            "reduceByKey: composite key member 2 of type table is not allowed" .. RULES)
        assert.has_error(function() run({ { "a", print } }) end,
            "reduceByKey: composite key member 2 of type function is not allowed" .. RULES)
        assert.has_error(function() run({ { user = "a" } }) end,
            "reduceByKey: key table is not an array (it has holes or non-integer keys)" .. RULES)
        assert.has_error(function() run({ { "a", NaN } }) end,
            "reduceByKey: composite key member 2 is NaN" .. RULES)
    end)

    it("rejects a numPartitions that is not a positive integer", function()
        for _, bad in ipairs({ 0, -1, 1.5, "2" }) do
            assert.has_error(function()
                shuffle.reduce_by_key("reduceByKey", 1, { "a" }, { 1 }, { 1 }, add, bad)
            end, "reduceByKey: numPartitions must be a positive integer (got " .. tostring(bad) .. ")")
        end
    end)
end)

describe("shuffle.group_by_key", function()
    it("collects each key's values in arrival order across partitions", function()
        local ks = { "a", "b", "a", "a", "c", "b" }
        local vs = { 1, 2, 3, 4, 5, 6 }
        assert.same({ pairs = { { "a", { 1, 3, 4 } }, { "b", { 2, 6 } }, { "c", { 5 } } }, ends = { 3 } },
            pairs_of(shuffle.group_by_key("groupByKey", 6, ks, vs, { 2, 3, 6 })))
    end)

    it("groups composite keys by content", function()
        local first = { "x", true }
        local ks = { first, { "x", false }, { "x", true } }
        local m, oks, ovs, oends = shuffle.group_by_key("groupByKey", 3, ks, { "p", "q", "r" }, { 3 })
        assert.same({ pairs = { { { "x", true }, { "p", "r" } }, { { "x", false }, { "q" } } }, ends = { 2 } },
            pairs_of(m, oks, ovs, oends))
        assert.equal(first, oks[1])
    end)

    it("keeps table values as they are", function()
        local v1, v2 = { 1 }, { 2 }
        local _, _, ovs = shuffle.group_by_key("groupByKey", 2, { "k", "k" }, { v1, v2 }, { 2 })
        assert.equal(v1, ovs[1][1])
        assert.equal(v2, ovs[1][2])
    end)

    it("splits keys into numPartitions partitions", function()
        assert.same({ pairs = { { 2, { "b", "d" } }, { 1, { "a" } }, { 3, { "c" } } }, ends = { 1, 3 } },
            pairs_of(shuffle.group_by_key("groupByKey", 4, { 1, 2, 3, 2 }, { "a", "b", "c", "d" }, { 4 }, 2)))
    end)

    it("raises for a bad key naming the operator", function()
        assert.has_error(function()
            shuffle.group_by_key("groupByKey", 1, { print }, { 1 }, { 1 })
        end, "groupByKey: key of type function is not allowed" .. RULES)
    end)
end)

describe("shuffle.combine_by_key", function()
    local create = function(v) return "c(" .. v .. ")" end
    local merge_value = function(c, v) return c .. "+" .. v end
    local merge_combiners = function(c1, c2) return c1 .. " & " .. c2 end

    it("combines within each input partition, then merges partitions in order", function()
        local ks = { "a", "b", "a", "a", "b", "a" }
        local vs = { 1, 2, 3, 4, 5, 6 }
        assert.same({ pairs = { { "a", "c(1)+3 & c(4) & c(6)" }, { "b", "c(2) & c(5)" } }, ends = { 2 } },
            pairs_of(shuffle.combine_by_key("combineByKey", 6, ks, vs, { 3, 5, 6 },
                create, merge_value, merge_combiners)))
    end)

    it("never calls mergeCombiners for a key in one partition", function()
        local ks = { "a", "a", "b" }
        assert.same({ pairs = { { "a", "c(1)+2" }, { "b", "c(3)" } }, ends = { 2 } },
            pairs_of(shuffle.combine_by_key("combineByKey", 3, ks, { 1, 2, 3 }, { 3 },
                create, merge_value, function() error("called") end)))
    end)

    it("computes per-key averages the Spark way", function()
        local ks = { "x", "y", "x", "x" }
        local vs = { 2, 10, 4, 6 }
        local m, oks, ovs = shuffle.combine_by_key("combineByKey", 4, ks, vs, { 2, 4 },
            function(v) return { v, 1 } end,
            function(c, v) return { c[1] + v, c[2] + 1 } end,
            function(c1, c2) return { c1[1] + c2[1], c1[2] + c2[2] } end)
        assert.same({ pairs = { { "x", { 12, 3 } }, { "y", { 10, 1 } } }, ends = { 2 } },
            pairs_of(m, oks, ovs, { 2 }))
    end)

    it("skips empty partitions", function()
        assert.same({ pairs = { { "a", "c(1) & c(2)" } }, ends = { 1 } },
            pairs_of(shuffle.combine_by_key("combineByKey", 2, { "a", "a" }, { 1, 2 }, { 0, 1, 1, 2 },
                create, merge_value, merge_combiners)))
    end)

    it("raises naming the function that returned nil", function()
        local none = function() return nil end
        assert.has_error(function()
            shuffle.combine_by_key("combineByKey", 1, { "a" }, { 1 }, { 1 }, none, merge_value, merge_combiners)
        end, 'combineByKey: createCombiner returned nil for key "a"')
        assert.has_error(function()
            shuffle.combine_by_key("combineByKey", 2, { "a", "a" }, { 1, 2 }, { 2 }, create, none, merge_combiners)
        end, 'combineByKey: mergeValue returned nil for key "a"')
        assert.has_error(function()
            shuffle.combine_by_key("combineByKey", 2, { 5, 5 }, { 1, 2 }, { 1, 2 }, create, merge_value, none)
        end, "combineByKey: mergeCombiners returned nil for key 5")
    end)

    it("raises when the partitions do not cover the records", function()
        assert.has_error(function()
            shuffle.combine_by_key("combineByKey", 3, { "a", "b", "c" }, { 1, 2, 3 }, { 2 },
                create, merge_value, merge_combiners)
        end, "combineByKey: partition ends cover 2 of 3 records")
    end)
end)

describe("shuffle.join", function()
    local A = { n = 4, ks = { "a", "b", "a", "c" }, vs = { 1, 2, 3, 4 }, ends = { 2, 4 } }
    local B = { n = 4, ks = { "a", "d", "a", "b" }, vs = { "x", "y", "z", "w" }, ends = { 4 } }
    local matches = {
        { "a", { 1, "x" } }, { "a", { 1, "z" } }, { "a", { 3, "x" } }, { "a", { 3, "z" } },
        { "b", { 2, "w" } },
    }
    local function with(...)
        local out = {}
        for i = 1, #matches do
            out[i] = matches[i]
        end
        for _, p in ipairs({ ... }) do
            out[#out + 1] = p
        end
        return out
    end

    it("pairs every value of a key on the left with every one on the right", function()
        assert.same({ pairs = with(), ends = { 5 } }, pairs_of(shuffle.join("inner", "join", A, B)))
    end)

    it("keeps left keys without a match with a nil right side", function()
        assert.same({ pairs = with({ "c", { 4, nil } }), ends = { 6 } },
            pairs_of(shuffle.join("left", "leftOuterJoin", A, B)))
    end)

    it("keeps right keys without a match with a nil left side", function()
        local m, oks, ovs = shuffle.join("right", "rightOuterJoin", A, B)
        assert.same({ pairs = with({ "d", { nil, "y" } }), ends = { 6 } }, pairs_of(m, oks, ovs, { m }))
        assert.is_nil(ovs[6][1])
        assert.equal("y", ovs[6][2])
    end)

    it("keeps unmatched keys of both sides in a full outer join", function()
        assert.same({ pairs = with({ "c", { 4, nil } }, { "d", { nil, "y" } }), ends = { 7 } },
            pairs_of(shuffle.join("full", "fullOuterJoin", A, B)))
    end)

    it("matches composite keys by content and keeps the left key table", function()
        local left_key = { "u", 1 }
        local L = { n = 2, ks = { left_key, { "u", 2 } }, vs = { "l1", "l2" }, ends = { 2 } }
        local R = { n = 2, ks = { { "u", 1 }, { "u", "1" } }, vs = { "r1", "r2" }, ends = { 1, 2 } }
        local m, oks, ovs, oends = shuffle.join("full", "fullOuterJoin", L, R)
        assert.same({ pairs = { { { "u", 1 }, { "l1", "r1" } }, { { "u", 2 }, { "l2", nil } },
                                { { "u", "1" }, { nil, "r2" } } }, ends = { 3 } },
            pairs_of(m, oks, ovs, oends))
        assert.equal(left_key, oks[1])
    end)

    it("returns nothing when one side is empty, except the other side's outer rows", function()
        local E = { n = 0, ks = {}, vs = {}, ends = { 0 } }
        assert.same({ pairs = {}, ends = { 0 } }, pairs_of(shuffle.join("inner", "join", A, E)))
        assert.same({ pairs = { { "a", { nil, "x" } }, { "a", { nil, "z" } }, { "d", { nil, "y" } },
                                { "b", { nil, "w" } } }, ends = { 4 } },
            pairs_of(shuffle.join("full", "fullOuterJoin", E, B)))
        assert.same({ pairs = {}, ends = { 0 } }, pairs_of(shuffle.join("right", "rightOuterJoin", A, E)))
    end)

    it("raises for a bad key on either side naming the operator", function()
        local bad = { n = 1, ks = { NaN }, vs = { 1 }, ends = { 1 } }
        assert.has_error(function() shuffle.join("inner", "join", A, bad) end, "join: key is NaN" .. RULES)
        assert.has_error(function() shuffle.join("left", "leftOuterJoin", bad, B) end,
            "leftOuterJoin: key is NaN" .. RULES)
    end)

    it("rejects an unknown kind of join", function()
        assert.has_error(function() shuffle.join("outer", "join", A, B) end,
            "join: unknown join kind outer (inner, left, right or full)")
    end)
end)

describe("shuffle.cogroup", function()
    it("gives every key of either side its values from both, in arrival order", function()
        local A = { n = 4, ks = { "a", "b", "a", "c" }, vs = { 1, 2, 3, 4 }, ends = { 4 } }
        local B = { n = 4, ks = { "a", "d", "a", "b" }, vs = { "x", "y", "z", "w" }, ends = { 2, 4 } }
        assert.same({ pairs = { { "a", { { 1, 3 }, { "x", "z" } } }, { "b", { { 2 }, { "w" } } },
                                { "c", { { 4 }, {} } }, { "d", { {}, { "y" } } } }, ends = { 4 } },
            pairs_of(shuffle.cogroup("cogroup", A, B)))
    end)

    it("returns an empty batch for two empty sides", function()
        local E = { n = 0, ks = {}, vs = {}, ends = { 0 } }
        assert.same({ pairs = {}, ends = { 0 } }, pairs_of(shuffle.cogroup("cogroup", E, E)))
    end)

    it("raises for a bad key naming the operator", function()
        local A = { n = 1, ks = { print }, vs = { 1 }, ends = { 1 } }
        local E = { n = 0, ks = {}, vs = {}, ends = { 0 } }
        assert.has_error(function() shuffle.cogroup("cogroup", E, A) end,
            "cogroup: key of type function is not allowed" .. RULES)
    end)
end)

describe("shuffle.distinct", function()
    it("keeps the first of equal records, in first-seen order", function()
        local pair1, rec = { 1, 2 }, { name = "x" }
        local xs = { "a", 1, "1", "a", true, pair1, { 1, 2 }, rec, rec, { name = "x" }, NaN, NaN, 1, "true" }
        local m, oxs, oends = shuffle.distinct("distinct", #xs, xs, { 7, #xs })
        assert.equal(9, m)
        assert.same({ 9 }, oends)
        assert.same({ "a", 1, "1", true, { 1, 2 } }, { oxs[1], oxs[2], oxs[3], oxs[4], oxs[5] })
        assert.equal(pair1, oxs[5])
        assert.equal(rec, oxs[6])
        assert.same({ name = "x" }, oxs[7])
        assert.are_not.equal(rec, oxs[7])
        assert.is_true(oxs[8] ~= oxs[8])
        assert.equal("true", oxs[9])
    end)

    it("returns an empty batch for an empty batch", function()
        assert.same({ xs = {}, ends = { 0 } }, records_of(shuffle.distinct("distinct", 0, {}, { 0 })))
    end)

    it("raises for a nil record naming the operator", function()
        assert.has_error(function() shuffle.distinct("distinct", 2, { "a" }, { 2 }) end,
            "distinct: key is nil" .. RULES)
    end)
end)

describe("shuffle.distinct_pairs", function()
    it("drops pairs whose key and value both match an earlier pair", function()
        local k1 = { "x", 1 }
        local ks = { "a", "a", "a", k1, { "x", 1 }, "b", 1 }
        local vs = { 1, "1", 1, "v", "v", { 9 }, 1 }
        local m, oks, ovs, oends = shuffle.distinct_pairs("distinct", 7, ks, vs, { 3, 7 })
        assert.same({ pairs = { { "a", 1 }, { "a", "1" }, { { "x", 1 }, "v" }, { "b", { 9 } }, { 1, 1 } },
                      ends = { 5 } }, pairs_of(m, oks, ovs, oends))
        assert.equal(k1, oks[3])
    end)

    it("compares values that are not keys by identity", function()
        local v = { name = "x" }
        local ks = { "a", "a", "a" }
        local vs = { v, v, { name = "x" } }
        local m, _, ovs = shuffle.distinct_pairs("distinct", 3, ks, vs, { 3 })
        assert.equal(2, m)
        assert.equal(v, ovs[1])
        assert.equal(vs[3], ovs[2])
    end)
end)

describe("shuffle.count_by_value", function()
    it("counts each distinct record", function()
        local xs = { "a", "b", "a", 1, "1", 1, true, { "p", 1 }, { "p", 1 } }
        assert.same({ pairs = { { "a", 2 }, { "b", 1 }, { 1, 2 }, { "1", 1 }, { true, 1 }, { { "p", 1 }, 2 } },
                      ends = { 6 } },
            pairs_of(shuffle.count_by_value("countByValue", #xs, xs, { 4, #xs })))
    end)

    it("raises for a record that cannot be a key, naming the operator", function()
        assert.has_error(function()
            shuffle.count_by_value("countByValue", 2, { "a", { name = "x" } }, { 2 })
        end, "countByValue: key table is not an array (it has holes or non-integer keys)" .. RULES)
    end)
end)

describe("shuffle.count_by_value_pairs", function()
    it("counts each distinct pair under the key {k, v}", function()
        local ks = { "a", "a", "b", "a", 1 }
        local vs = { 1, 1, 1, 2, "1" }
        assert.same({ pairs = { { { "a", 1 }, 2 }, { { "b", 1 }, 1 }, { { "a", 2 }, 1 }, { { 1, "1" }, 1 } },
                      ends = { 4 } },
            pairs_of(shuffle.count_by_value_pairs("countByValue", 5, ks, vs, { 2, 5 })))
    end)

    it("raises when the pair cannot be a key, naming the operator", function()
        local prefix = "countByValue: counting pairs makes {k, v} a key, so k and v must be"
            .. " strings, numbers (not NaN) or booleans; the pair's "
        assert.has_error(function()
            shuffle.count_by_value_pairs("countByValue", 1, { { "a" } }, { 1 }, { 1 })
        end, prefix .. "key is of type table")
        assert.has_error(function()
            shuffle.count_by_value_pairs("countByValue", 1, { "a" }, { print }, { 1 })
        end, prefix .. "value is of type function")
        assert.has_error(function()
            shuffle.count_by_value_pairs("countByValue", 1, { "a" }, { NaN }, { 1 })
        end, prefix .. "value is NaN")
    end)
end)

describe("shuffle.sort_by", function()
    local first_char = function(s) return s:sub(1, 1) end

    it("sorts by the function's result, keeping equal records in order", function()
        local xs = { "b1", "a1", "b2", "c1", "a2" }
        assert.same({ xs = { "a1", "a2", "b1", "b2", "c1" }, ends = { 5 } },
            records_of(shuffle.sort_by("sortBy", 5, xs, { 2, 5 }, first_char)))
    end)

    it("sorts descending when ascending is false, still stable", function()
        local xs = { "b1", "a1", "b2", "c1", "a2" }
        assert.same({ xs = { "c1", "b1", "b2", "a1", "a2" }, ends = { 5 } },
            records_of(shuffle.sort_by("sortBy", 5, xs, { 5 }, first_char, false)))
    end)

    it("sorts numbers numerically", function()
        local xs = { 10, 9, -1, 100, 2.5 }
        local id = function(x) return x end
        assert.same({ xs = { -1, 2.5, 9, 10, 100 }, ends = { 5 } },
            records_of(shuffle.sort_by("sortBy", 5, xs, { 5 }, id)))
    end)

    it("sorts a large batch stably in both directions", function()
        local xs = {}
        for i = 1, 1000 do
            xs[i] = { (i * 37) % 11, i }
        end
        local by_group = function(x) return x[1] end
        for _, ascending in ipairs({ true, false }) do
            local expected = {}
            for i = 1, 1000 do
                expected[i] = xs[i]
            end
            table.sort(expected, function(a, b)
                if a[1] ~= b[1] then
                    if ascending then return a[1] < b[1] end
                    return a[1] > b[1]
                end
                return a[2] < b[2]
            end)
            assert.same({ xs = expected, ends = { 1000 } },
                records_of(shuffle.sort_by("sortBy", 1000, xs, { 500, 1000 }, by_group, ascending)))
        end
    end)

    it("returns an empty batch for an empty batch", function()
        assert.same({ xs = {}, ends = { 0 } }, records_of(shuffle.sort_by("sortBy", 0, {}, { 0 }, first_char)))
    end)

    it("raises for sort keys that are mixed, nil, NaN or not numbers or strings", function()
        local function sort(ks)
            shuffle.sort_by("sortBy", #ks, ks, { #ks }, function(x) if x ~= "nil" then return x end end)
        end
        assert.has_error(function() sort({ 1, "a" }) end,
            "sortBy: sort keys must be all numbers or all strings (got number and string)")
        assert.has_error(function() sort({ "a", 1 }) end,
            "sortBy: sort keys must be all numbers or all strings (got string and number)")
        assert.has_error(function() sort({ 1, "nil" }) end,
            "sortBy: function returned nil (sort keys are numbers or strings)")
        assert.has_error(function() sort({ 1, NaN }) end,
            "sortBy: function returned NaN (sort keys are numbers or strings)")
        assert.has_error(function() sort({ {} }) end,
            "sortBy: function returned a table (sort keys are numbers or strings)")
        assert.has_error(function() sort({ true }) end,
            "sortBy: function returned a boolean (sort keys are numbers or strings)")
    end)

    it("rejects an ascending that is not a boolean", function()
        assert.has_error(function() shuffle.sort_by("sortBy", 1, { "a" }, { 1 }, first_char, "no") end,
            "sortBy: ascending must be a boolean (got no)")
    end)
end)

describe("shuffle.sort_by_pairs", function()
    it("sorts pairs by f(k, v), stable, keys and values moving together", function()
        local ks = { "x", "y", "z", "w" }
        local vs = { 3, 1, 3, 2 }
        local by_value = function(_, v) return v end
        assert.same({ pairs = { { "y", 1 }, { "w", 2 }, { "x", 3 }, { "z", 3 } }, ends = { 4 } },
            pairs_of(shuffle.sort_by_pairs("sortBy", 4, ks, vs, { 2, 4 }, by_value)))
        assert.same({ pairs = { { "x", 3 }, { "z", 3 }, { "w", 2 }, { "y", 1 } }, ends = { 4 } },
            pairs_of(shuffle.sort_by_pairs("sortBy", 4, ks, vs, { 4 }, by_value, false)))
    end)

    it("passes the key and the value to the function", function()
        local ks = { "b", "a", "c" }
        local vs = { "2", "9", "1" }
        assert.same({ pairs = { { "c", "1" }, { "b", "2" }, { "a", "9" } }, ends = { 3 } },
            pairs_of(shuffle.sort_by_pairs("sortBy", 3, ks, vs, { 3 }, function(k, v) return v .. k end)))
    end)
end)

describe("shuffle.repartition", function()
    it("splits records as evenly as possible, earlier partitions taking the extra", function()
        assert.same({ 4, 7, 10 }, shuffle.repartition(10, { 10 }, 3))
        assert.same({ 1, 2, 2, 2 }, shuffle.repartition(2, { 2 }, 4))
        assert.same({ 0, 0 }, shuffle.repartition(0, { 0 }, 2))
        assert.same({ 5 }, shuffle.repartition(5, { 1, 1, 5 }, 1))
    end)

    it("evens out the current number of partitions by default", function()
        assert.same({ 3, 6, 9 }, shuffle.repartition(9, { 1, 1, 9 }))
    end)

    it("rejects a number of partitions that is not a positive integer", function()
        assert.has_error(function() shuffle.repartition(3, { 3 }, 0) end,
            "repartition: numPartitions must be a positive integer (got 0)")
    end)
end)

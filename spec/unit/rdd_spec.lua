-- The RDD API of one batch, as user code sees it inside foreachRDD and
-- transform; static RDDs from ssc:parallelize / parallelizePairs.
local batches = require "helpers.batches"

local sorted, plain = batches.sorted, batches.plain

local function add(a, b) return a + b end

-- Runs one batch per entry of input through foreachRDD and returns what fn
-- returned for each batch (fn runs inside the batch; asserts run outside).
local function per_batch(input, fn, pairs_)
    local ssc = batches.context()
    local s = ssc:queueStream(input)
    if pairs_ then s = s:mapToPair(function(kv) return kv[1], kv[2] end) end
    local results = {}
    s:foreachRDD(function(rdd, t) results[#results + 1] = fn(rdd, t, ssc) end)
    ssc:start()
    ssc:advance(#input)
    ssc:stop()
    return results
end

-- What fn returns for the RDD of a single batch.
local function with_rdd(records, fn)
    return per_batch({records}, fn)[1]
end

-- The same for a pair RDD of records {k, v}.
local function with_pairs(records, fn)
    return per_batch({records}, fn, true)[1]
end

describe("rdd:map, rdd:flatMap, rdd:filter", function()
    it("transform the records of the batch", function()
        assert.same({2, 4, 6}, with_rdd({1, 2, 3}, function(rdd)
            return rdd:map(function(x) return x * 2 end):collect()
        end))
        assert.same({1, 1, 3, 3}, with_rdd({1, 3}, function(rdd)
            return rdd:flatMap(function(x) return {x, x} end):collect()
        end))
        assert.same({2}, with_rdd({1, 2, 3}, function(rdd)
            return rdd:filter(function(x) return x % 2 == 0 end):collect()
        end))
    end)

    it("give functions on a pair RDD the key and the value", function()
        assert.same({"a1", "b2"}, with_pairs({{"a", 1}, {"b", 2}}, function(rdd)
            return rdd:map(function(k, v) return k .. v end):collect()
        end))
        assert.same({{"b", 2}}, with_pairs({{"a", 1}, {"b", 2}}, function(rdd)
            return plain(rdd:filter(function(_, v) return v > 1 end):collect())
        end))
    end)

    it("leave the RDD they are called on unchanged", function()
        assert.same({{1, 2}, {10, 20}}, with_rdd({1, 2}, function(rdd)
            local doubled = rdd:map(function(x) return x * 10 end)
            return {rdd:collect(), doubled:collect()}
        end))
    end)
end)

describe("rdd:mapToPair and rdd:mapValues", function()
    it("make pairs and change their values", function()
        assert.same({{"a", 10}, {"bb", 20}}, with_rdd({"a", "bb"}, function(rdd)
            return plain(rdd:mapToPair(function(w) return w, #w end)
                :mapValues(function(n) return n * 10 end):collect())
        end))
    end)

    it("raise for mapValues on an RDD of single values", function()
        local err = with_rdd({1}, function(rdd)
            local ok, e = pcall(rdd.mapValues, rdd, tostring)
            return not ok and e
        end)
        assert.matches("mapValues: not a pair RDD (make pairs with mapToPair)", err, 1, true)
    end)
end)

describe("rdd:reduceByKey and rdd:groupByKey", function()
    it("reduce and group the values of each key", function()
        local input = {{"a", 1}, {"b", 2}, {"a", 3}}
        assert.same({{"a", 4}, {"b", 2}}, with_pairs(input, function(rdd)
            return sorted(rdd:reduceByKey(add):collect())
        end))
        input = {{"a", 1}, {"b", 2}, {"a", 3}}
        assert.same({{"a", {1, 3}}, {"b", {2}}}, with_pairs(input, function(rdd)
            return sorted(rdd:groupByKey():collect())
        end))
    end)

    it("raise on an RDD of single values", function()
        local errs = with_rdd({1}, function(rdd)
            local _, e1 = pcall(rdd.reduceByKey, rdd, add)
            local _, e2 = pcall(rdd.groupByKey, rdd)
            return {e1, e2}
        end)
        assert.matches("reduceByKey: not a pair RDD", errs[1], 1, true)
        assert.matches("groupByKey: not a pair RDD", errs[2], 1, true)
    end)
end)

describe("rdd joins", function()
    local function both(op)
        local ssc = batches.context()
        local left = ssc:parallelizePairs{{"a", 1}, {"b", 2}}
        local right = ssc:parallelizePairs{{"a", "x"}, {"c", "z"}}
        return sorted(left[op](left, right):collect())
    end

    it("join, leftOuterJoin, rightOuterJoin, fullOuterJoin and cogroup like the stream ones", function()
        assert.same({{"a", {1, "x"}}}, both("join"))
        assert.same({{"a", {1, "x"}}, {"b", {2, nil}}}, both("leftOuterJoin"))
        assert.same({{"a", {1, "x"}}, {"c", {nil, "z"}}}, both("rightOuterJoin"))
        assert.same({{"a", {1, "x"}}, {"b", {2, nil}}, {"c", {nil, "z"}}}, both("fullOuterJoin"))
        assert.same({{"a", {{1}, {"x"}}}, {"b", {{2}, {}}}, {"c", {{}, {"z"}}}}, both("cogroup"))
    end)

    it("raise when the other side is not an RDD", function()
        local ssc = batches.context()
        local left = ssc:parallelizePairs{a = 1}
        local ok, err = pcall(left.join, left, {})
        assert.is_false(ok)
        assert.matches("join: argument #1 must be an RDD, got table", err, 1, true)
    end)
end)

describe("rdd:union", function()
    it("holds the records of both RDDs", function()
        assert.same({1, 2, 3, 4}, with_rdd({1, 2}, function(rdd, _, ssc)
            return sorted(rdd:union(ssc:parallelize({3, 4})):collect())
        end))
    end)
end)

describe("rdd:distinct", function()
    it("keeps one of each record", function()
        assert.same({1, 2, "2"}, with_rdd({1, 2, 1, "2", 2}, function(rdd)
            return sorted(rdd:distinct():collect())
        end))
    end)

    it("keeps one of each pair of a pair RDD", function()
        assert.same({{"a", 1}, {"a", 2}}, with_pairs({{"a", 1}, {"a", 2}, {"a", 1}}, function(rdd)
            return sorted(rdd:distinct():collect())
        end))
    end)
end)

describe("rdd:sortBy", function()
    it("sorts by the function's value, ascending by default", function()
        assert.same({"c", "bb", "aaa"}, with_rdd({"aaa", "c", "bb"}, function(rdd)
            return rdd:sortBy(function(w) return #w end):collect()
        end))
    end)

    it("sorts descending when ascending is false, keeping ties in order", function()
        assert.same({"ab", "cd", "e"}, with_rdd({"e", "ab", "cd"}, function(rdd)
            return rdd:sortBy(function(w) return #w end, false):collect()
        end))
    end)

    it("gives the function (k, v) on a pair RDD", function()
        assert.same({{"b", 1}, {"a", 2}}, with_pairs({{"a", 2}, {"b", 1}}, function(rdd)
            return plain(rdd:sortBy(function(_, v) return v end):collect())
        end))
    end)
end)

describe("rdd:count, rdd:isEmpty, rdd:collect, rdd:take, rdd:first", function()
    it("read the records of the batch", function()
        local got = with_rdd({"a", "b", "c"}, function(rdd)
            return {rdd:count(), rdd:isEmpty(), rdd:collect(), rdd:take(2), rdd:take(10), rdd:first()}
        end)
        assert.same({3, false, {"a", "b", "c"}, {"a", "b"}, {"a", "b", "c"}, "a"}, got)
    end)

    it("see an empty batch as empty", function()
        local got = with_rdd({}, function(rdd)
            return {rdd:count(), rdd:isEmpty(), rdd:collect(), rdd:take(3)}
        end)
        assert.same({0, true, {}, {}}, got)
    end)

    it("show pairs as {k, v} tables shown (k,v)", function()
        local got = with_pairs({{"a", 1}}, function(rdd)
            local first = rdd:first()
            return {first[1], first[2], tostring(first), tostring(rdd:collect()[1])}
        end)
        assert.same({"a", 1, "(a,1)", "(a,1)"}, got)
    end)

    it("raise for first() of an empty RDD", function()
        local err = with_rdd({}, function(rdd)
            local ok, e = pcall(rdd.first, rdd)
            return not ok and e
        end)
        assert.matches("first: the RDD is empty", err, 1, true)
    end)
end)

describe("rdd:reduce", function()
    it("reduces all records in arrival order", function()
        assert.equal("abc", with_rdd({"a", "b", "c"}, function(rdd)
            return rdd:reduce(function(x, y) return x .. y end)
        end))
    end)

    it("raises for an empty RDD", function()
        local err = with_rdd({}, function(rdd)
            local ok, e = pcall(rdd.reduce, rdd, add)
            return not ok and e
        end)
        assert.matches("reduce: the RDD is empty", err, 1, true)
    end)
end)

describe("rdd:countByValue", function()
    it("gives a table from each record to its count", function()
        assert.same({a = 2, b = 1}, with_rdd({"a", "b", "a"}, function(rdd)
            return rdd:countByValue()
        end))
    end)
end)

describe("rdd:foreach and rdd:foreachPartition", function()
    it("call the function per record, with (k, v) for pairs", function()
        local got = with_pairs({{"a", 1}, {"b", 2}}, function(rdd)
            local seen = {}
            rdd:foreach(function(k, v) seen[#seen + 1] = k .. v end)
            return seen
        end)
        assert.same({"a1", "b2"}, got)
    end)

    it("call the function per partition with its array of records", function()
        local got = with_rdd({1, 2, 3, 4, 5}, function(rdd)
            local seen = {}
            rdd:repartition(2):foreachPartition(function(part) seen[#seen + 1] = part end)
            return seen
        end)
        assert.same({{1, 2, 3}, {4, 5}}, got)
    end)
end)

describe("rdd.time", function()
    it("is the batch time in ms", function()
        local got = per_batch({{1}, {}, {2}}, function(rdd, t) return {rdd.time, t} end)
        assert.same({{1000, 1000}, {2000, 2000}, {3000, 3000}}, got)
    end)
end)

describe("rdd.time of a stream made by transform", function()
    it("is the batch time, even when the function returns a static RDD", function()
        local ssc = batches.context()
        local static = ssc:parallelize({"ref"})
        local times = {}
        ssc:queueStream({{1}, {2}}):transform(function() return static end)
            :foreachRDD(function(rdd, t) times[#times + 1] = {rdd.time, t, rdd:collect()} end)
        ssc:start()
        ssc:advance(2)
        assert.same({{1000, 1000, {"ref"}}, {2000, 2000, {"ref"}}}, times)
    end)

    it("is the batch time for ssc:transform and transformWith too", function()
        local ssc = batches.context()
        local static = ssc:parallelize({"ref"})
        local a, b = ssc:queueStream({{1}}), ssc:queueStream({{2}})
        local times = {}
        ssc:transform({a, b}, function() return static end)
            :foreachRDD(function(rdd) times.transform = rdd.time end)
        a:transformWith(b, function() return static end)
            :foreachRDD(function(rdd) times.transformWith = rdd.time end)
        ssc:start()
        ssc:advance(1)
        assert.same({transform = 1000, transformWith = 1000}, times)
    end)
end)

describe("rdd:id", function()
    it("is the same for every output of one stream at one batch, and differs between batches", function()
        local ssc = batches.context()
        local s = ssc:queueStream({{1}, {2}}):map(function(x) return x end)
        local a, b = {}, {}
        s:foreachRDD(function(rdd) a[#a + 1] = rdd:id() end)
        s:foreachRDD(function(rdd) b[#b + 1] = rdd:id() end)
        ssc:start()
        ssc:advance(2)
        assert.same(a, b)
        assert.equal(2, #a)
        assert.not_equal(a[1], a[2])
    end)

    it("differs between two streams at one batch", function()
        local ssc = batches.context()
        local s = ssc:queueStream({{1}})
        local ids = {}
        s:foreachRDD(function(rdd) ids.source = rdd:id() end)
        s:map(tostring):foreachRDD(function(rdd) ids.mapped = rdd:id() end)
        s:transform(function(rdd) return rdd end):foreachRDD(function(rdd) ids.transformed = rdd:id() end)
        ssc:start()
        ssc:advance(1)
        assert.not_equal(ids.source, ids.mapped)
        assert.not_equal(ids.source, ids.transformed)
        assert.not_equal(ids.mapped, ids.transformed)
    end)

    it("differs between a transformWith stream and its inputs", function()
        local ssc = batches.context()
        local a, b = ssc:queueStream({{1}}), ssc:queueStream({{2}})
        local ids = {}
        a:foreachRDD(function(rdd) ids.a = rdd:id() end)
        a:transformWith(b, function(r1) return r1 end):foreachRDD(function(rdd) ids.with = rdd:id() end)
        ssc:start()
        ssc:advance(1)
        assert.is_string(ids.a)
        assert.not_equal(ids.a, ids.with)
    end)

    it("is the same when the same graph is built again (the key for idempotent writes)", function()
        local function ids_of_run()
            local ssc = batches.context()
            local ids = {}
            ssc:queueStream({{1}, {2}}):map(tostring):name("out")
                :foreachRDD(function(rdd) ids[#ids + 1] = rdd:id() end)
            ssc:start()
            ssc:advance(2)
            ssc:stop()
            return ids
        end
        local first, second = ids_of_run(), ids_of_run()
        assert.equal(2, #first)
        assert.same(first, second)
    end)
end)

describe("tostring(rdd)", function()
    it("names the RDD's id and its number of records and partitions", function()
        local got = with_rdd({1, 2, 3}, function(rdd) return {tostring(rdd), rdd:id()} end)
        assert.matches(got[2], got[1], 1, true)
        assert.matches("3 records in 1 partition", got[1], 1, true)
    end)

    it("says when it holds pairs", function()
        local got = with_pairs({{"a", 1}}, function(rdd) return tostring(rdd) end)
        assert.matches("1 pairs", got, 1, true)
    end)
end)

describe("StreamingContext:parallelize", function()
    it("makes a static RDD of the array's records", function()
        local ssc = batches.context()
        local rdd = ssc:parallelize({3, 1, 2})
        assert.same({3, 1, 2}, rdd:collect())
        assert.equal(3, rdd:count())
    end)

    it("copies the array", function()
        local ssc = batches.context()
        local arr = {1, 2}
        local rdd = ssc:parallelize(arr)
        arr[3] = 3
        assert.same({1, 2}, rdd:collect())
    end)

    it("raises for a non-table", function()
        local ssc = batches.context()
        local ok, err = pcall(ssc.parallelize, ssc, 5)
        assert.is_false(ok)
        assert.matches("parallelize: argument #1 (array) must be a table, got number", err, 1, true)
    end)
end)

describe("StreamingContext:parallelizePairs", function()
    it("makes a pair RDD from a table {k = v}", function()
        local ssc = batches.context()
        local rdd = ssc:parallelizePairs{a = 1, b = 2}
        assert.same({{"a", 1}, {"b", 2}}, sorted(rdd:collect()))
        assert.same({{"a", 10}, {"b", 20}}, sorted(rdd:mapValues(function(v) return v * 10 end):collect()))
    end)

    it("makes a pair RDD from an array of {k, v}, keeping repeated keys", function()
        local ssc = batches.context()
        local rdd = ssc:parallelizePairs{{"a", 1}, {"a", 2}, {{"x", 1}, 3}}
        assert.same({{"a", 1}, {"a", 2}, {{"x", 1}, 3}}, plain(rdd:collect()))
    end)

    it("raises for an element that is not a {k, v} pair", function()
        local ssc = batches.context()
        local ok, err = pcall(ssc.parallelizePairs, ssc, {{"a", 1}, {"b"}})
        assert.is_false(ok)
        assert.matches("parallelizePairs: element 2 must be a {key, value} pair", err, 1, true)
    end)
end)

describe("a stream joined with a static RDD through transform", function()
    it("looks every batch's keys up in the reference data", function()
        local ssc = batches.context()
        local names = ssc:parallelizePairs{{1, "one"}, {2, "two"}}
        local out = ssc:queueStream({{1, 2, 3}, {2}})
            :mapToPair(function(x) return x, x * x end)
            :transform(function(rdd) return rdd:join(names) end)
            :collectBatches()
        ssc:start()
        ssc:advance(2)
        assert.same({{{1, {1, "one"}}, {2, {4, "two"}}}, {{2, {4, "two"}}}}, batches.sorted_all(out))
    end)

    it("works with a static RDD as the left side of a leftOuterJoin", function()
        local ssc = batches.context()
        local users = ssc:parallelizePairs{{"ann", "admin"}, {"bob", "user"}}
        local out = ssc:queueStream({{"ann"}, {}})
            :mapToPair(function(u) return u, 1 end)
            :transform(function(rdd) return users:leftOuterJoin(rdd) end)
            :collectBatches()
        ssc:start()
        ssc:advance(2)
        assert.same({
            {{"ann", {"admin", 1}}, {"bob", {"user", nil}}},
            {{"ann", {"admin", nil}}, {"bob", {"user", nil}}},
        }, batches.sorted_all(out))
    end)
end)

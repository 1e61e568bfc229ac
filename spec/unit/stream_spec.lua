-- DStream operations on any stream: input batches in, expected batches out,
-- under a manual clock.
local batches = require "helpers.batches"

local run, run2, sorted_all = batches.run, batches.run2, batches.sorted_all

local function add(a, b) return a + b end

describe("DStream:map", function()
    it("applies the function to every record of every batch", function()
        local out = run({{1, 2, 3}, {4}, {}}, function(s)
            return s:map(function(x) return x * 10 end)
        end)
        assert.same({{10, 20, 30}, {40}, {}}, out)
    end)

    it("may turn records into any non-nil value", function()
        local out = run({{"a", "bb"}}, function(s)
            return s:map(function(x) return {word = x, len = #x} end)
        end)
        assert.same({{{word = "a", len = 1}, {word = "bb", len = 2}}}, out)
    end)

    it("keeps false as a record", function()
        local out = run({{1, 2}}, function(s)
            return s:map(function(x) return x == 2 end)
        end)
        assert.same({{false, true}}, out)
    end)
end)

describe("DStream:flatMap", function()
    it("emits every element of the array the function returns, in order", function()
        local out = run({{"a b", "c"}, {""}}, function(s)
            return s:flatMap(function(line)
                local words = {}
                for w in line:gmatch("%S+") do words[#words + 1] = w end
                return words
            end)
        end)
        assert.same({{"a", "b", "c"}, {}}, out)
    end)

    it("emits nothing for a record mapped to an empty array", function()
        local out = run({{1, 2, 3}}, function(s)
            return s:flatMap(function(x) if x == 2 then return {} end return {x, x} end)
        end)
        assert.same({{1, 1, 3, 3}}, out)
    end)
end)

describe("DStream:filter", function()
    it("keeps the records for which the function returns a true value", function()
        local out = run({{1, 2, 3, 4, 5}, {7}}, function(s)
            return s:filter(function(x) return x % 2 == 1 end)
        end)
        assert.same({{1, 3, 5}, {7}}, out)
    end)

    it("treats nil and false as false and anything else as true", function()
        local out = run({{1, 2, 3}}, function(s)
            return s:filter(function(x)
                if x == 1 then return nil elseif x == 2 then return false end
                return 0
            end)
        end)
        assert.same({{3}}, out)
    end)
end)

describe("DStream:mapToPair", function()
    it("makes a pair stream from the two values the function returns", function()
        local out = run({{"a", "bb"}}, function(s)
            return s:mapToPair(function(w) return w, #w end)
        end)
        assert.same({{{"a", 1}, {"bb", 2}}}, batches.plain_all(out))
    end)

    it("shows collected pairs as (k,v)", function()
        local out = run({{"a"}}, function(s)
            return s:mapToPair(function(w) return w, 1 end)
        end)
        assert.equal("(a,1)", tostring(out[1][1]))
    end)
end)

describe("DStream:flatMapToPair", function()
    it("emits every {k, v} of the array the function returns as a pair", function()
        local out = run({{2, 0, 1}}, function(s)
            return s:flatMapToPair(function(n)
                local kvs = {}
                for i = 1, n do kvs[i] = {n, i} end
                return kvs
            end)
        end)
        assert.same({{{2, 1}, {2, 2}, {1, 1}}}, batches.plain_all(out))
    end)

    it("gives a stream the pair operations accept", function()
        local out = run({{"a b a"}}, function(s)
            return s:flatMapToPair(function(line)
                local kvs = {}
                for w in line:gmatch("%S+") do kvs[#kvs + 1] = {w, 1} end
                return kvs
            end):reduceByKey(add)
        end)
        assert.same({{{"a", 2}, {"b", 1}}}, sorted_all(out))
    end)
end)

describe("DStream:mapPartitions", function()
    it("calls the function once per partition with the partition's records", function()
        local calls = 0
        local out = run({{1, 2, 3, 4}, {}}, function(s)
            return s:mapPartitions(function(part)
                calls = calls + 1
                local sum = 0
                for _, x in ipairs(part) do sum = sum + x end
                return {sum, #part}
            end)
        end)
        assert.same({{10, 4}, {0, 0}}, out)
        assert.equal(2, calls)
    end)

    it("runs per partition after repartition", function()
        local out = run({{1, 2, 3, 4, 5}}, function(s)
            return s:repartition(2):mapPartitions(function(part) return {#part} end)
        end)
        assert.same({{3, 2}}, out)
    end)
end)

describe("DStream:glom", function()
    it("gives one array per partition", function()
        local out = run({{1, 2, 3}, {}}, function(s) return s:glom() end)
        assert.same({{{1, 2, 3}}, {{}}}, out)
    end)

    it("shows pairs of a pair stream as {k, v}", function()
        local out = run({{1, 2}}, function(s)
            return s:mapToPair(function(x) return x, x * x end):glom()
        end)
        assert.same({{{{1, 1}, {2, 4}}}}, batches.plain_all(out))
    end)
end)

describe("DStream:reduce", function()
    it("reduces each batch to one record", function()
        local out = run({{1, 2, 3}, {10}}, function(s) return s:reduce(add) end)
        assert.same({{6}, {10}}, out)
    end)

    it("gives an empty batch for an empty batch", function()
        local out = run({{}, {1, 1}}, function(s) return s:reduce(add) end)
        assert.same({{}, {2}}, out)
    end)

    it("folds the records in arrival order", function()
        local out = run({{"a", "b", "c"}}, function(s)
            return s:reduce(function(x, y) return x .. y end)
        end)
        assert.same({{"abc"}}, out)
    end)
end)

describe("DStream:count", function()
    it("gives the number of records of each batch, 0 for an empty one", function()
        local out = run({{"a", "b"}, {}, {"c"}}, function(s) return s:count() end)
        assert.same({{2}, {0}, {1}}, out)
    end)
end)

describe("DStream:countByValue", function()
    it("gives a pair (record, count) per distinct record", function()
        local out = run({{"a", "b", "a", "a"}, {}}, function(s) return s:countByValue() end)
        assert.same({{{"a", 3}, {"b", 1}}, {}}, sorted_all(out))
    end)

    it("counts the pairs of a pair stream as {k, v}", function()
        local out = run({{1, 2, 3, 1}}, function(s)
            return s:mapToPair(function(x) return "k", x % 2 end):countByValue()
        end)
        assert.same({{{{"k", 0}, 1}, {{"k", 1}, 3}}}, sorted_all(out))
    end)

    it("gives a pair stream", function()
        local out = run({{"x", "y", "x"}}, function(s)
            return s:countByValue():mapValues(function(n) return n * 100 end)
        end)
        assert.same({{{"x", 200}, {"y", 100}}}, sorted_all(out))
    end)
end)

describe("DStream:union", function()
    it("holds the records of both streams in each batch", function()
        local out = run2({{1, 2}, {3}}, {{10}, {}}, function(a, b) return a:union(b) end)
        assert.same({{1, 2, 10}, {3}}, sorted_all(out))
    end)

    it("keeps a union of pair streams a pair stream", function()
        local out = run2({{"a"}}, {{"a", "b"}}, function(a, b)
            local pa = a:mapToPair(function(w) return w, 1 end)
            local pb = b:mapToPair(function(w) return w, 10 end)
            return pa:union(pb):reduceByKey(add)
        end)
        assert.same({{{"a", 11}, {"b", 10}}}, sorted_all(out))
    end)

    it("raises when the argument is not a stream", function()
        local ssc = batches.context()
        local s = ssc:queueStream({})
        assert.has_error(function() s:union({}) end)
        assert.has_error(function() s:union(5) end)
    end)

    it("raises for streams of two different contexts", function()
        local s1 = batches.context():queueStream({})
        local s2 = batches.context():queueStream({})
        local ok, err = pcall(s1.union, s1, s2)
        assert.is_false(ok)
        assert.matches("union: cannot combine streams of two different StreamingContexts", err, 1, true)
    end)
end)

describe("StreamingContext:union", function()
    it("holds the records of every stream of the array", function()
        local ssc = batches.context()
        local a = ssc:queueStream({{1}, {2}})
        local b = ssc:queueStream({{10}, {}})
        local c = ssc:queueStream({{100}, {200, 300}})
        local out = ssc:union({a, b, c}):collectBatches()
        ssc:start()
        ssc:advance(2)
        assert.same({{1, 10, 100}, {2, 200, 300}}, sorted_all(out))
    end)

    it("raises for an empty array and for a non-table", function()
        local ssc = batches.context()
        local ok, err = pcall(ssc.union, ssc, {})
        assert.is_false(ok)
        assert.matches("union: needs at least one stream", err, 1, true)
        ok, err = pcall(ssc.union, ssc, "streams")
        assert.is_false(ok)
        assert.matches("union: argument #1 (streams) must be a table, got string", err, 1, true)
    end)
end)

describe("DStream:repartition", function()
    it("keeps every record and spreads them over n partitions", function()
        local parts = {}
        local ssc = batches.context()
        local s = ssc:queueStream({{1, 2, 3, 4, 5, 6, 7}}):repartition(3)
        local out = s:collectBatches()
        s:foreachRDD(function(rdd) parts[#parts + 1] = #rdd:glom():collect() end)
        ssc:start()
        ssc:advance(1)
        assert.same({{1, 2, 3, 4, 5, 6, 7}}, sorted_all(out))
        assert.same({3}, parts)
    end)

    it("raises unless n is a whole number >= 1", function()
        local s = batches.context():queueStream({})
        for _, bad in ipairs({0, -1, 1.5, "2"}) do
            local ok, err = pcall(s.repartition, s, bad)
            assert.is_false(ok)
            assert.matches("repartition: numPartitions must be a whole number >= 1", err, 1, true)
        end
        local ok, err = pcall(s.repartition, s)
        assert.is_false(ok)
        assert.matches("repartition: argument #1 (numPartitions) is required", err, 1, true)
    end)
end)

describe("DStream:transform", function()
    it("gives the function each batch's RDD and time and uses the RDD it returns", function()
        local times = {}
        local out = run({{1, 2}, {3}}, function(s)
            return s:transform(function(rdd, t)
                times[#times + 1] = t
                return rdd:map(function(x) return x + t end)
            end)
        end)
        assert.same({{1001, 1002}, {2003}}, out)
        assert.same({1000, 2000}, times)
    end)

    it("may change the shape of the records", function()
        local out = run({{"a", "b", "a"}}, function(s)
            return s:transform(function(rdd)
                return rdd:mapToPair(function(w) return w, 1 end)
            end):reduceByKey(add)
        end)
        assert.same({{{"a", 2}, {"b", 1}}}, sorted_all(out))
    end)

    it("raises when fn is not a function", function()
        local s = batches.context():queueStream({})
        local ok, err = pcall(s.transform, s, {})
        assert.is_false(ok)
        assert.matches("transform: argument #1 (fn) must be a function, got table", err, 1, true)
    end)
end)

describe("DStream:transformWith", function()
    it("gives the function one batch of each stream and the time", function()
        local times = {}
        local out = run2({{1, 2}, {3}}, {{10}, {20, 30}}, function(a, b)
            return a:transformWith(b, function(r1, r2, t)
                times[#times + 1] = t
                return r1:union(r2:map(function(x) return -x end))
            end)
        end)
        assert.same({{-10, 1, 2}, {-30, -20, 3}}, sorted_all(out))
        assert.same({1000, 2000}, times)
    end)

    it("raises when fn is not a function", function()
        local ssc = batches.context()
        local a, b = ssc:queueStream({}), ssc:queueStream({})
        local ok, err = pcall(a.transformWith, a, b, nil)
        assert.is_false(ok)
        assert.matches("transformWith: argument #2 (fn) must be a function, got nil", err, 1, true)
    end)
end)

describe("StreamingContext:transform", function()
    it("gives the function an array with one RDD per stream, and the time", function()
        local ssc = batches.context()
        local a = ssc:queueStream({{1}, {2}})
        local b = ssc:queueStream({{"x"}, {"y"}})
        local seen = {}
        local out = ssc:transform({a, b}, function(rdds, t)
            seen[#seen + 1] = {#rdds, t}
            return rdds[1]:union(rdds[2])
        end):collectBatches()
        ssc:start()
        ssc:advance(2)
        assert.same({{1, "x"}, {2, "y"}}, out)
        assert.same({{2, 1000}, {2, 2000}}, seen)
    end)

    it("raises a named error when the function does not return an RDD", function()
        local ssc = batches.context()
        ssc:transform({ssc:queueStream({{1}})}, function() return {1} end):collectBatches()
        ssc:start()
        local ok, err = pcall(ssc.advance, ssc, 1)
        assert.is_false(ok)
        assert.matches("transform", err, 1, true)
        assert.matches("function must return an RDD, got table", err, 1, true)
    end)
end)

describe("DStream:cache", function()
    it("returns the stream itself", function()
        local s = batches.context():queueStream({})
        local m = s:map(tostring)
        assert.equal(m, m:cache())
        assert.equal(m, m:persist())
    end)

    it("computes a cached stream once per batch for all its consumers", function()
        local calls = 0
        local ssc = batches.context()
        local m = ssc:queueStream({{1, 2, 3}, {4}}):map(function(x)
            calls = calls + 1
            return x * 2
        end):cache()
        local a = m:map(function(x) return x + 1 end):collectBatches()
        local b = m:filter(function(x) return x > 2 end):collectBatches()
        ssc:start()
        ssc:advance(2)
        assert.same({{3, 5, 7}, {9}}, a)
        assert.same({{4, 6}, {8}}, b)
        assert.equal(4, calls)
    end)

    it("gives the same records whether or not the stream is cached", function()
        local function build(cached)
            return function(s)
                local m = s:map(function(x) return x * x end)
                if cached then m:cache() end
                return m:filter(function(x) return x > 1 end)
            end
        end
        local input = {{1, 2, 3}, {0, 5}}
        local plain = run({{1, 2, 3}, {0, 5}}, build(false))
        local cached = run(input, build(true))
        assert.same({{4, 9}, {25}}, plain)
        assert.same(plain, cached)
    end)

    it("raises once the context has started", function()
        local ssc = batches.context()
        local s = ssc:queueStream({})
        s:print()
        ssc:start()
        local ok, err = pcall(s.cache, s)
        assert.is_false(ok)
        assert.matches("cache: cannot add to the graph of a context that is active", err, 1, true)
    end)
end)

describe("DStream:name", function()
    it("sets the label and returns the stream", function()
        local s = batches.context():queueStream({})
        local m = s:map(tostring)
        assert.equal(m, m:name("words"))
        assert.equal("words", m:name())
    end)

    it("labels an unnamed stream by its operator", function()
        local s = batches.context():queueStream({})
        assert.matches("^map#%d+$", s:map(tostring):name())
        assert.matches("^queueStream#%d+$", s:name())
    end)

    it("raises unless the name is a non-empty string", function()
        local s = batches.context():queueStream({})
        for _, bad in ipairs({"", 5, true}) do
            local ok, err = pcall(s.name, s, bad)
            assert.is_false(ok)
            assert.matches("name: argument #1 must be a non-empty string", err, 1, true)
        end
    end)
end)

describe("DStream:checkpoint", function()
    it("accepts a multiple of the batch interval and returns the stream", function()
        local s = batches.context():queueStream({})
        assert.equal(s, s:checkpoint(10))
    end)

    it("raises for an interval that is not a multiple of the batch interval", function()
        local s = batches.context({batchInterval = 2}):queueStream({}):name("events")
        local ok, err = pcall(s.checkpoint, s, 3)
        assert.is_false(ok)
        assert.matches("checkpoint: interval 3 s of", err, 1, true)
        assert.matches("events", err, 1, true)
        assert.matches("is not a multiple of the batch interval 2 s", err, 1, true)
    end)

    it("raises for a missing, non-number or non-positive interval", function()
        local s = batches.context():queueStream({})
        for _, bad in ipairs({0, -5}) do
            local ok, err = pcall(s.checkpoint, s, bad)
            assert.is_false(ok)
            assert.matches("checkpoint: interval must be positive", err, 1, true)
        end
        for _, bad in ipairs({"10", false}) do
            local ok, err = pcall(s.checkpoint, s, bad)
            assert.is_false(ok)
            assert.matches("checkpoint: interval must be a number of seconds", err, 1, true)
        end
        local ok, err = pcall(s.checkpoint, s)
        assert.is_false(ok)
        assert.matches("checkpoint: interval must be a number of seconds, got nil", err, 1, true)
    end)
end)

describe("tostring(stream)", function()
    it("shows the lineage from the stream back to its source", function()
        local s = batches.context():queueStream({})
        local m = s:map(tostring):filter(tostring)
        assert.equal("filter <- map <- queueStream", tostring(m))
    end)

    it("shows names next to operators", function()
        local s = batches.context():queueStream({}):name("lines")
        local m = s:flatMap(tostring):name("words"):mapToPair(tostring)
        assert.equal("mapToPair <- flatMap[words] <- queueStream[lines]", tostring(m))
    end)

    it("shows every branch of a union", function()
        local ssc = batches.context()
        local a = ssc:queueStream({})
        local b = ssc:queueStream({}):map(tostring)
        assert.equal("count <- union <- (queueStream | map <- queueStream)", tostring(a:union(b):count()))
    end)
end)

describe("DStream operations", function()
    it("run nothing until an output operation's batch falls due", function()
        local calls = 0
        local ssc = batches.context()
        local s = ssc:queueStream({{1, 2}}):map(function(x) calls = calls + 1 return x end)
        s:collectBatches()
        assert.equal(0, calls)
        ssc:start()
        assert.equal(0, calls)
        ssc:advance(1)
        assert.equal(2, calls)
    end)

    it("raise when an operator's function is not a function", function()
        local s = batches.context():queueStream({})
        for _, op in ipairs({"map", "flatMap", "filter", "mapToPair", "flatMapToPair", "mapPartitions", "reduce"}) do
            local ok, err = pcall(s[op], s, 5)
            assert.is_false(ok)
            assert.matches(op .. ": argument #1 (f) must be a function, got number", err, 1, true)
        end
    end)
end)

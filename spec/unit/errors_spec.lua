-- The error promises of API.md's conventions: an error raised in a batch
-- names the operator (or the stream's name), the batch time in ms, and
-- carries the traceback of the user function that failed; graph errors are
-- raised when the graph is built, at the user's line.
local dstream = require "dstream"
local batches = require "helpers.batches"

local THIS_FILE = "errors_spec.lua"

-- The line this function is called from.
local function here()
    return debug.getinfo(2, "l").currentline
end

-- Starts ssc, advances one batch and returns the error it raised.
local function first_batch_error(ssc)
    ssc:start()
    local ok, err = pcall(ssc.advance, ssc, 1)
    assert.is_false(ok, "the batch should have failed")
    return tostring(err)
end

-- The message of the error fn(...) raises.
local function error_of(fn, ...)
    local ok, err = pcall(fn, ...)
    assert.is_false(ok, "expected an error")
    return tostring(err)
end

local function has(text, err)
    assert.matches(text, err, 1, true)
end

describe("an error raised by a user function in a batch", function()
    it("names the exact operator of a fused stage that raised, not the last of the chain", function()
        local ssc = batches.context()
        local line
        ssc:queueStream({{1, 2, 3}})
            :flatMap(function(x) return {x, x * 10} end)
            :filter(function(x) line = here() if x == 20 then error("no twenties") end return true end)
            :map(function(x) return x + 1 end)
            :collectBatches()
        local err = first_batch_error(ssc)
        has("dstream: filter (stream \"filter#", err)
        assert.not_matches("^dstream: map", err)
        assert.not_matches("^dstream: flatMap", err)
        has("failed at batch time 1000 ms", err)
        has(THIS_FILE .. ":" .. line .. ": no twenties", err)
        has("user traceback", err)
        has(THIS_FILE .. ":" .. line .. ":", err:match("user traceback.*$"))
    end)

    it("names the first op of a fused stage when it raised there", function()
        local ssc = batches.context()
        local line
        ssc:queueStream({{1}})
            :flatMap(function() line = here() error("flat boom") end)
            :filter(function() return true end)
            :map(function(x) return x end)
            :collectBatches()
        local err = first_batch_error(ssc)
        has("dstream: flatMap (stream", err)
        has(THIS_FILE .. ":" .. line .. ": flat boom", err)
    end)

    it("names the stream by the name given with :name()", function()
        local ssc = batches.context()
        ssc:queueStream({{1, 2}})
            :map(function(x) return x end)
            :filter(function(x) if x == 2 then error("bad record") end return true end):name("evens")
            :map(function(x) return x end)
            :collectBatches()
        local err = first_batch_error(ssc)
        has("filter (stream \"evens\")", err)
        has("bad record", err)
    end)

    it("says where the failing operator was created", function()
        local ssc = batches.context()
        local s = ssc:queueStream({{1}})
        local created = here() + 1
        local m = s:map(function() error("x") end)
        m:collectBatches()
        local err = first_batch_error(ssc)
        has("created at ", err)
        has(THIS_FILE .. ":" .. created, err:match("created at [^ ]+"))
    end)

    it("says where an operator made by a helper that returns it was created: the helper's line", function()
        local ssc = batches.context()
        local made_at
        -- A tail call: Lua keeps no frame of the helper while map runs.
        local function shout(s)
            made_at = here() return s:map(function(w) error("cannot shout " .. w) end)
        end
        local function quiet(s, f)
            return s:filter(f)
        end
        local helper_called = here() + 1
        shout(ssc:queueStream({{"hi"}})):collectBatches()
        local err = first_batch_error(ssc)
        has("dstream: map (stream", err)
        has(THIS_FILE .. ":" .. made_at .. " failed", err:match("created at [^ ]+ failed"))

        ssc = batches.context()
        local written = here() + 1
        local picky = function() error("too picky") end
        quiet(ssc:queueStream({{1}}), picky):collectBatches()
        err = first_batch_error(ssc)
        has("dstream: filter (stream", err)
        has(THIS_FILE .. ":" .. written .. " failed", err:match("created at [^ ]+ failed"))
        assert.is_nil(err:find(THIS_FILE .. ":" .. helper_called .. " ", 1, true))
    end)

    it("says where a reduce or a window made by a helper that returns it was created", function()
        local ssc = batches.context()
        local reduce_at, window_at
        local function total(s)
            reduce_at = here() return s:reduce(function() error("cannot add") end)
        end
        local function windowed(s)
            window_at = here() return s:reduceByKeyAndWindow(function() error("cannot add either") end, 2, 1)
        end
        total(ssc:queueStream({{1, 2}})):collectBatches()
        local err = first_batch_error(ssc)
        has("dstream: reduce (stream", err)
        has(THIS_FILE .. ":" .. reduce_at .. " failed", err:match("created at [^ ]+ failed"))

        ssc = batches.context()
        windowed(ssc:queueStream({{1, 1}}):mapToPair(function(x) return x, x end)):collectBatches()
        err = first_batch_error(ssc)
        has("dstream: reduceByKeyAndWindow", err)
        has(THIS_FILE .. ":" .. window_at .. " failed", err:match("created at [^ ]+ failed"))
    end)

    it("names reduceByKey and the reducer's line when the reducer raises", function()
        local ssc = batches.context()
        local line
        ssc:queueStream({{1, 2}, {3}})
            :mapToPair(function(x) return "k", x end)
            :reduceByKey(function(a, b) line = here() error("cannot add " .. a .. " and " .. b) end)
            :collectBatches()
        local err = first_batch_error(ssc)
        has("dstream: reduceByKey (stream", err)
        has("failed at batch time 1000 ms", err)
        has(THIS_FILE .. ":" .. line .. ": cannot add 1 and 2", err)
        has(THIS_FILE .. ":" .. line .. ":", err:match("user traceback.*$"))
    end)

    it("names foreachRDD and the function's line when it raises", function()
        local ssc = batches.context()
        local line
        ssc:queueStream({{1}}):name("events"):foreachRDD(function(_, t)
            line = here() error("sink down at " .. t)
        end)
        local err = first_batch_error(ssc)
        has("dstream: foreachRDD", err)
        has("failed at batch time 1000 ms", err)
        has(THIS_FILE .. ":" .. line .. ": sink down at 1000", err)
        has(THIS_FILE .. ":" .. line .. ":", err:match("user traceback.*$"))
    end)

    it("names transform and the function's line when it raises", function()
        local ssc = batches.context()
        local line
        ssc:queueStream({{1}}):transform(function()
            line = here() error("no rdd today")
        end):name("enriched"):collectBatches()
        local err = first_batch_error(ssc)
        has("dstream: transform (stream \"enriched\")", err)
        has("failed at batch time 1000 ms", err)
        has(THIS_FILE .. ":" .. line .. ": no rdd today", err)
        has(THIS_FILE .. ":" .. line .. ":", err:match("user traceback.*$"))
    end)

    it("names the RDD method and the transform stream when a function given to an RDD method raises", function()
        local ssc = batches.context()
        local line
        ssc:queueStream({{1}}):transform(function(rdd)
            return rdd:map(function() line = here() error("inner") end)
        end):name("enriched"):collectBatches()
        local err = first_batch_error(ssc)
        has("rdd.map", err)
        has("(stream \"enriched\")", err)
        has(THIS_FILE .. ":" .. line .. ": inner", err)
    end)

    it("names transform when its function does not return an RDD", function()
        local ssc = batches.context()
        ssc:queueStream({{1}}):transform(function(rdd) return rdd:collect() end):collectBatches()
        local err = first_batch_error(ssc)
        has("dstream: transform (stream", err)
        has("function must return an RDD, got table", err)
    end)
end)

-- Whatever a user function raises, the batch's error names the operator,
-- the stream and the batch time, and the next batch runs with its own data.
describe("an error raised with a value that is not a string", function()
    local raising = {
        {"error(nil)", function() error(nil) end, "error(nil): the function raised an error with no message"},
        {"error() with no value", function() error() end, "error(nil)"},
        {"a table without __tostring", function() error({code = 42, why = "quota"}) end,
            "an error table {code=42, why=quota}"},
        {"a table with __tostring", function()
            error(setmetatable({}, {__tostring = function() return "quota exceeded" end}))
        end, "quota exceeded"},
        {"a table whose __tostring raises", function()
            error(setmetatable({}, {__tostring = function() error("cannot print me", 0) end}))
        end, "an error object whose __tostring raised: cannot print me"},
        {"a table whose __tostring returns no string", function()
            error(setmetatable({}, {__tostring = function() return 42 end}))
        end, "an error object whose __tostring returned a number"},
        {"a boolean", function() error(false) end, "false"},
        {"out of memory", function(x) return string.rep("x", 2 ^ 31 - 100) .. x end, "not enough memory"},
    }
    for _, case in ipairs(raising) do
        it("names the operator, stream and batch time for " .. case[1], function()
            local ssc = batches.context()
            local f = case[2]
            local got = ssc:queueStream({{"boom"}, {"fine"}})
                :map(function(w) if w == "boom" then return f(w) end return w end):name("shouts")
                :collectBatches()
            local err = first_batch_error(ssc)
            assert.are.equal("string", type(err))
            has('dstream: map (stream "shouts"), created at ', err)
            has("failed at batch time 1000 ms: " .. case[3], err)
            ssc:advance(1)
            assert.are.same({"fine"}, got[#got])
        end)
    end

    it("names foreachRDD and the batch time when an output raises a table", function()
        local ssc = batches.context()
        ssc:queueStream({{1}}):foreachRDD(function() error({status = 503}) end)
        local err = first_batch_error(ssc)
        has("dstream: foreachRDD", err)
        has("failed at batch time 1000 ms: an error table {status=503}", err)
    end)

    it("names reduceByKey and the batch time when the reducer runs out of memory", function()
        local ssc = batches.context()
        ssc:queueStream({{1, 2}}):mapToPair(function(x) return "k", x end)
            :reduceByKey(function() return string.rep("x", 2 ^ 31 - 100) end):name("totals"):collectBatches()
        local err = first_batch_error(ssc)
        has('reduceByKey (stream "totals")', err)
        has("failed at batch time 1000 ms: not enough memory", err)
    end)
end)

describe("a function that must return a record", function()
    it("raises naming map when map's function returns nil", function()
        local ssc = batches.context()
        ssc:queueStream({{1, 2}}):map(function(x) if x == 2 then return nil end return x end)
            :name("halves"):collectBatches()
        local err = first_batch_error(ssc)
        has("dstream: map (stream \"halves\")", err)
        has("failed at batch time 1000 ms: function returned nil", err)
        has("user traceback", err)
    end)

    it("raises naming mapToPair when the key is nil", function()
        local ssc = batches.context()
        ssc:queueStream({{1}}):mapToPair(function(x) return nil, x end):collectBatches()
        local err = first_batch_error(ssc)
        has("dstream: mapToPair (stream", err)
        has("failed at batch time 1000 ms: function returned a nil key", err)
    end)

    it("raises naming mapToPair when the value is nil", function()
        local ssc = batches.context()
        ssc:queueStream({{1}}):mapToPair(function(x) return x end):collectBatches()
        local err = first_batch_error(ssc)
        has("dstream: mapToPair (stream", err)
        has("failed at batch time 1000 ms: function returned a nil value (return key, value)", err)
    end)

    it("raises naming flatMap when its function returns neither an array nor an iterator", function()
        local ssc = batches.context()
        ssc:queueStream({{"a b"}}):map(function(x) return x end)
            :flatMap(function(line) return #line end):collectBatches()
        local err = first_batch_error(ssc)
        has("dstream: flatMap (stream", err)
        has("failed at batch time 1000 ms: function must return an array or an iterator function, got number", err)
    end)

    it("raises naming mapValues when its function returns nil", function()
        local ssc = batches.context()
        ssc:queueStream({{1}}):mapToPair(function(x) return x, x end)
            :mapValues(function() return nil end):collectBatches()
        local err = first_batch_error(ssc)
        has("dstream: mapValues (stream", err)
        has("function returned nil", err)
    end)

    it("raises naming flatMapToPair when an element is not a {k, v} pair", function()
        local ssc = batches.context()
        ssc:queueStream({{1}}):flatMapToPair(function(x) return {x} end):collectBatches()
        local err = first_batch_error(ssc)
        has("dstream: flatMapToPair (stream", err)
        has("function must return an array of {key, value} pairs, got an element of type number", err)
    end)
end)

describe("a queue entry that is not an array", function()
    it("raises naming queueStream and the batch time", function()
        local ssc = batches.context()
        ssc:queueStream({{1}, 5}):name("nums"):collectBatches()
        ssc:start()
        ssc:advance(1)
        local ok, err = pcall(ssc.advance, ssc, 1)
        assert.is_false(ok)
        has("dstream: queueStream (stream \"nums\")", err)
        has("failed at batch time 2000 ms", err)
        has("the queue's front entry is a number, not an array of records", err)
    end)

    it("says where the queueStream was created", function()
        local ssc = batches.context()
        local created = here() + 1
        local s = ssc:queueStream({5})
        s:collectBatches()
        local err = first_batch_error(ssc)
        has(THIS_FILE .. ":" .. created, err:match("created at [^ ]+"))
    end)
end)

describe("a bad key", function()
    it("raises naming reduceByKey for a function key", function()
        local ssc = batches.context()
        ssc:queueStream({{1}}):mapToPair(function(x) return print, x end)
            :reduceByKey(function(a, b) return a + b end):collectBatches()
        local err = first_batch_error(ssc)
        has("dstream: reduceByKey (stream", err)
        has("failed at batch time 1000 ms", err)
        has("key of type function is not allowed (keys are strings, numbers, booleans or arrays of those)", err)
    end)

    it("raises naming reduceByKey for a NaN key", function()
        local ssc = batches.context()
        ssc:queueStream({{1}}):mapToPair(function(x) return 0 / 0, x end)
            :reduceByKey(function(a, b) return a + b end):collectBatches()
        local err = first_batch_error(ssc)
        has("dstream: reduceByKey (stream", err)
        has("key is NaN", err)
    end)

    it("raises naming groupByKey for a table key that is not an array", function()
        local ssc = batches.context()
        ssc:queueStream({{1}}):mapToPair(function(x) return {a = 1}, x end):groupByKey():collectBatches()
        local err = first_batch_error(ssc)
        has("dstream: groupByKey (stream", err)
        has("key table is not an array", err)
    end)
end)

describe("StreamingContext:advance after a failed batch", function()
    it("re-raises the error, and the next advance runs the next batch with its own data", function()
        local ssc = batches.context()
        local out = ssc:queueStream({{1, "bad"}, {2}, {3}})
            :map(function(x) if x == "bad" then error("bad record") end return x * 2 end)
            :collectBatches()
        ssc:start()
        local ok, err = pcall(ssc.advance, ssc, 1)
        assert.is_false(ok)
        has("failed at batch time 1000 ms", err)
        ssc:advance(1)
        ssc:advance(1)
        assert.same({{4}, {6}}, out)
    end)

    it("runs the later batches before re-raising, so time ends n intervals later", function()
        local ssc = batches.context()
        local times = {}
        ssc:queueStream({{"bad"}, {2}, {3}})
            :map(function(x) if x == "bad" then error("bad record") end return x end)
            :foreachRDD(function(rdd, t) times[#times + 1] = {t, rdd:collect()} end)
        ssc:start()
        local ok = pcall(ssc.advance, ssc, 3)
        assert.is_false(ok)
        assert.same({{2000, {2}}, {3000, {3}}}, times)
        ssc:advance(1)
        assert.same({{2000, {2}}, {3000, {3}}, {4000, {}}}, times)
    end)

    it("runs the other outputs of the failed batch", function()
        local ssc = batches.context()
        local s = ssc:queueStream({{1}})
        s:foreachRDD(function() error("first output fails") end)
        local out = s:collectBatches()
        first_batch_error(ssc)
        assert.same({{1}}, out)
    end)
end)

describe("pair operations on a stream that is not a pair stream", function()
    it("raise when the graph is built, at the user's line", function()
        local s = batches.context():queueStream({}):map(tostring)
        local line = here() + 1
        local ok, err = pcall(function() s:reduceByKey(function(a, b) return a + b end) end)
        assert.is_false(ok)
        has(THIS_FILE .. ":" .. line .. ": reduceByKey: map <- queueStream is not a pair stream", err)
    end)

    it("raise for joins when either side is not a pair stream", function()
        local ssc = batches.context()
        local p = ssc:queueStream({}):mapToPair(function(x) return x, x end)
        local v = ssc:queueStream({})
        has("leftOuterJoin: queueStream is not a pair stream", error_of(v.leftOuterJoin, v, p))
        has("cogroup: queueStream is not a pair stream", error_of(p.cogroup, p, v))
    end)
end)

describe("a union of a pair stream and a stream of single values", function()
    it("raises when the graph is built", function()
        local ssc = batches.context()
        local values = ssc:queueStream({{1}})
        local pairs_ = ssc:queueStream({{2}}):mapToPair(function(x) return x, x end)
        local ok, err = pcall(function() values:union(pairs_):collectBatches() end)
        local later
        if ok then
            ssc:start()
            local ran, batch_err = pcall(ssc.advance, ssc, 1)
            later = ran and "no error at all" or tostring(batch_err)
        end
        assert.is_nil(later, "not raised when the graph was built")
        has("union: cannot mix a pair stream and a stream of single values", err)
    end)
end)

describe("an operation given an argument of the wrong type", function()
    it("raises at the user's line, naming the operator and the argument", function()
        local s = batches.context():queueStream({})
        local line = here() + 1
        local ok, err = pcall(function() s:map(5) end)
        assert.is_false(ok)
        has(THIS_FILE .. ":" .. line .. ": map: argument #1 (f) must be a function, got number", err)
    end)

    it("raises for print(\"x\") and reduceByKey(nil)", function()
        local s = batches.context():queueStream({})
        local p = s:mapToPair(function(x) return x, 1 end)
        has("print: argument #1 (n) must be a whole number >= 0", error_of(s.print, s, "x"))
        has("print: argument #1 (n) must be a whole number >= 0", error_of(s.print, s, -1))
        has("reduceByKey: argument #1 (f) must be a function, got nil", error_of(p.reduceByKey, p, nil))
        has("foreachRDD: argument #1 (fn) must be a function, got string", error_of(s.foreachRDD, s, "f"))
    end)

    it("accepts a callable table as a function", function()
        local double = setmetatable({}, {__call = function(_, x) return x * 2 end})
        local out = batches.run({{1, 2}}, function(s) return s:map(double) end)
        assert.same({{2, 4}}, out)
    end)
end)

describe("a duration that is not positive", function()
    it("raises naming what it is for", function()
        has("StreamingContext: batchInterval must be positive, got 0 seconds",
            error_of(dstream.StreamingContext, {batchInterval = 0}))
        has("StreamingContext: blockInterval must be positive, got -0.2 seconds",
            error_of(dstream.StreamingContext, {batchInterval = 1, blockInterval = -0.2}))
        local ssc = batches.context()
        local s = ssc:queueStream({})
        has("checkpoint: interval must be positive, got 0 seconds", error_of(s.checkpoint, s, 0))
        has("remember: duration must be positive, got -1 seconds", error_of(ssc.remember, ssc, -1))
        has("awaitTerminationOrTimeout: argument #1 must be a number of seconds >= 0",
            error_of(ssc.awaitTerminationOrTimeout, ssc, -1))
    end)

    it("raises for a duration too long for the engine's clock, math.huge included", function()
        has("StreamingContext: batchInterval must be at most 9007199254740 seconds (2^53 ms), got inf seconds",
            error_of(dstream.StreamingContext, {batchInterval = math.huge, clock = "manual"}))
        has("StreamingContext: batchInterval must be at most 9007199254740 seconds (2^53 ms), got 1e+300 seconds",
            error_of(dstream.StreamingContext, {batchInterval = 1e300, clock = "manual"}))
        local s = batches.context():queueStream({})
        has("window: window length must be at most 9007199254740 seconds",
            error_of(s.window, s, math.huge))
    end)

    it("raises for durations finer than a millisecond", function()
        has("StreamingContext: batchInterval must be a whole number of milliseconds",
            error_of(dstream.StreamingContext, {batchInterval = 0.0005}))
    end)

    it("raises in dstream.ms and friends for a non-number", function()
        has("ms: argument #1 must be a number", error_of(dstream.ms, "100"))
        has("minutes: argument #1 must be a number", error_of(dstream.minutes, nil))
    end)
end)

describe("adding to the graph after start", function()
    local function started()
        local ssc = batches.context()
        local s = ssc:queueStream({})
        local p = s:mapToPair(function(x) return x, 1 end)
        p:print()
        ssc:start()
        return ssc, s, p
    end

    it("raises naming the operation and telling to build the graph first", function()
        local ssc, s, p = started()
        has("map: cannot add to the graph of a context that is active (build the whole graph before start())",
            error_of(s.map, s, tostring))
        has("reduceByKey: cannot add to the graph of a context that is active",
            error_of(p.reduceByKey, p, tostring))
        has("print: cannot add to the graph of a context that is active", error_of(s.print, s))
        has("queueStream: cannot add to the graph of a context that is active",
            error_of(ssc.queueStream, ssc, {}))
        has("union: cannot add to the graph of a context that is active", error_of(ssc.union, ssc, {s, s}))
    end)

    it("raises at the user's line", function()
        local _, s = started()
        local line = here() + 1
        local ok, err = pcall(function() local m = s:map(tostring) return m end)
        assert.is_false(ok)
        has(THIS_FILE .. ":" .. line .. ": map: cannot add", err)
    end)

    it("raises after stop too", function()
        local ssc, s = started()
        ssc:stop()
        has("filter: cannot add to the graph of a context that is stopped", error_of(s.filter, s, tostring))
    end)
end)

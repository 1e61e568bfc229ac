-- The stage planner (lua/dstream/planner.lua): which streams run as one
-- generated loop, the records the batches run and explain prints.
local dstream = require "dstream"
local planner = require "dstream.planner"
local batches = require "helpers.batches"

local ident = function(x) return x end
local add = function(a, b) return a + b end
local pair = function(x) return x, 1 end

local function plan_lines(ssc)
    local stages, host = planner.plan(ssc)
    local shown, fused = {}, {}
    for i, st in ipairs(stages) do shown[i] = planner.show(st) end
    for _, s in ipairs(ssc.streams) do
        if host[s] then fused[#fused + 1] = "#" .. s.id .. " in #" .. host[s].id end
    end
    return shown, fused
end

describe("planner.plan", function()
    local cases = {
        {"a chain read by an output",
            function(s) s:map(ident):filter(ident):print() end,
            {"#1 map -> #2 filter, reading #0 queueStream"}, {"#1 in #2"}},
        {"a chain ending in reduceByKey",
            function(s) s:flatMap(function(x) return {x} end):mapToPair(pair):reduceByKey(add):print() end,
            {"#1 flatMap -> #2 mapToPair -> #3 reduceByKey (map-side combine), reading #0 queueStream"},
            {"#1 in #2", "#2 in #3"}},
        {"a narrow stream with two consumers",
            function(s)
                local m = s:map(ident)
                m:filter(ident):print()
                m:map(ident):print()
            end,
            {"#1 map, reading #0 queueStream", "#2 filter, reading #1 map", "#4 map, reading #1 map"}, {}},
        {"a cached narrow stream",
            function(s) s:map(ident):cache():map(ident):print() end,
            {"#1 map, reading #0 queueStream", "#2 map, reading #1 map"}, {}},
        {"a chain read by a window",
            function(s) s:mapToPair(pair):reduceByKeyAndWindow(add, 2, 1):print() end,
            {"#1 mapToPair, reading #0 queueStream"}, {}},
        {"a reduceByKey reading a stream of its own (no narrow op before it)",
            function(s) s:mapToPair(pair):cache():reduceByKey(add):mapValues(ident):print() end,
            {"#1 mapToPair, reading #0 queueStream", "#3 mapValues, reading #2 reduceByKey"}, {}},
        {"no narrow operation",
            function(s) s:count():print() end, {}, {}},
    }
    for _, case in ipairs(cases) do
        it("plans the stages of " .. case[1], function()
            local ssc = batches.context()
            case[2](ssc:queueStream({}))
            local shown, fused = plan_lines(ssc)
            assert.are.same(case[3], shown)
            assert.are.same(case[4], fused)
            ssc:stop()
        end)
    end
end)

describe("planner.stage", function()
    it("keeps one record per stage: the one explain printed is the one the batches run", function()
        local ssc = batches.context()
        local last = ssc:queueStream({{1, 2, 3}}):map(function(x) return x * 2 end):filter(function(x) return x > 2 end)
        local got = last:collectBatches()
        local st = planner.stage(last)
        local src = planner.source(st, "v")
        ssc:start()
        ssc:advance(1)
        assert.are.same({{4, 6}}, got)
        assert.are.equal(st, planner.stage(last))
        assert.are.equal(src, st.sources.v)
        assert.are.equal(src.name, debug.getinfo(st.runs.v, "S").source)
        ssc:stop()
    end)

    it("plans again when the graph grows after it was planned (explain, then more, in the REPL)", function()
        local ssc = batches.context()
        local calls = 0
        local first = ssc:queueStream({{1, 2}}):map(function(x) calls = calls + 1 return x end)
        local second = first:map(function(x) return x + 10 end)
        local got = second:collectBatches()
        assert.are.equal("#1 map -> #2 map, reading #0 queueStream", planner.show(planner.stage(second)))
        local other = first:filter(function() return true end):collectBatches()
        assert.are.equal("#2 map, reading #1 map", planner.show(planner.stage(second)))
        ssc:start()
        ssc:advance(1)
        assert.are.same({{11, 12}}, got)
        assert.are.same({{1, 2}}, other)
        assert.are.equal(2, calls)
        ssc:stop()
    end)

    it("plans no stage for a stream that runs no generated loop", function()
        local ssc = batches.context()
        local s = ssc:queueStream({})
        assert.is_nil(planner.stage(s))
        assert.is_nil(planner.stage(s:count()))
        assert.is_nil(planner.stage(s:mapToPair(pair):cache():reduceByKey(add)))
        ssc:stop()
    end)
end)

describe("planner.source", function()
    it("makes the source for each shape an input of any shape may hold, and says which op refuses the other", function()
        local ssc = batches.context()
        local any = ssc:queueStream({}):transform(function(rdd) return rdd end)
        local both, pairs_only = any:map(ident), any:mapValues(ident)
        assert.are.same({"v", "p"}, planner.shapes(planner.stage(both)))
        local st = planner.stage(pairs_only)
        assert.are.same({"p"}, planner.shapes(st))
        local src, bad = planner.source(st, "v")
        assert.is_nil(src)
        assert.are.equal(pairs_only, bad)
        ssc:stop()
    end)

    it("fails the batch naming the op when the input's records do not fit the chain", function()
        local ssc = batches.context()
        ssc:queueStream({{1}}):transform(function(rdd) return rdd end):mapValues(ident):name("vals"):print()
        ssc:start()
        local ok, err = pcall(ssc.advance, ssc, 1)
        assert.is_false(ok)
        assert.matches('mapValues %(stream "vals"%).-mapValues needs a pair stream, but its input holds single values',
            tostring(err))
        ssc:stop()
    end)
end)

-- dstream is required for its side effect (the FFI library, loaded once).
assert(dstream)

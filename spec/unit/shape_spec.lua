-- getOrCreate's graph check: a checkpoint is restored into the graph
-- createFn builds again only when that graph has the same shape (operators,
-- parents, windows and slides, names; never closures). Otherwise the error
-- names each stream that differs and how.
local dstream = require "dstream"
local files = require "helpers.files"

local function context(dir, batch)
    return dstream.StreamingContext{batchInterval = batch or 1, clock = "manual", checkpoint = dir}
end

-- Run `build` for two batches in a checkpointed context, then stop it; returns the directory.
local function checkpointed(build)
    local dir = files.tmpdir()
    local ssc = context(dir)
    build(ssc, ssc:queueStream({{"a b"}, {"b c"}}))
    ssc:start()
    ssc:advance(2)
    ssc:stop()
    return dir
end

-- The error getOrCreate raises when createFn builds with `build` (nil if none).
local function recover_error(dir, build, batch)
    local made
    local ok, err = pcall(dstream.StreamingContext.getOrCreate, dir, function()
        made = context(dir, batch)
        build(made, made:queueStream({}))
        return made
    end)
    if ok then
        err:stop()
        return nil
    end
    assert.are.equal("stopped", made.state) -- the rejected context is closed
    return err
end

local function words(line)
    local out = {}
    for w in line:gmatch("%S+") do out[#out + 1] = w end
    return out
end

local function pairs_of(lines)
    return lines:flatMap(words):mapToPair(function(w) return w, 1 end)
end

local function totals(lines)
    return pairs_of(lines):updateStateByKey(function(vs, s)
        s = s or 0
        for i = 1, #vs do s = s + vs[i] end
        return s
    end)
end

describe("getOrCreate's graph check", function()
    it("recovers a graph whose closures changed but whose shape did not", function()
        local dir = checkpointed(function(_, lines) totals(lines):foreachRDD(function() end) end)
        assert.is_nil(recover_error(dir, function(_, lines)
            pairs_of(lines):updateStateByKey(function(vs, s) return (s or 0) + #vs * 10 end):foreachRDD(function() end)
        end))
    end)

    it("restores each named stream's state into the stream of that name, whatever the creation order", function()
        local dir = files.tmpdir()
        local queue = {{"a b"}, {"a"}, {"b b"}}
        local got = {}
        local function sums(lines)
            return pairs_of(lines):updateStateByKey(function(vs, s) return (s or 0) + #vs end)
        end
        local function maxes(lines)
            return pairs_of(lines):updateStateByKey(function(vs, s) return math.max(s or 0, #vs) end)
        end
        local function build(first_sums)
            return function()
                local ssc = context(dir)
                local lines = ssc:queueStream(queue)
                local s, m
                if first_sums then
                    s, m = sums(lines):name("sums"), maxes(lines):name("maxes")
                else
                    m, s = maxes(lines):name("maxes"), sums(lines):name("sums")
                end
                got.sums, got.maxes = s:collectBatches(), m:collectBatches()
                return ssc
            end
        end
        local ssc = dstream.StreamingContext.getOrCreate(dir, build(true))
        ssc:start()
        ssc:advance(2)
        ssc:stop()
        ssc = dstream.StreamingContext.getOrCreate(dir, build(false))
        ssc:start()
        ssc:advance(1)
        ssc:stop()
        local batches = require "helpers.batches"
        assert.are.same({{{"a", 2}, {"b", 3}}}, batches.sorted_all(got.sums))
        assert.are.same({{{"a", 1}, {"b", 2}}}, batches.sorted_all(got.maxes))
    end)

    it("names a stream that was added", function()
        local dir = checkpointed(function(_, lines) totals(lines):foreachRDD(function() end) end)
        local err = recover_error(dir, function(_, lines)
            totals(lines:filter(function(l) return l ~= "" end)):foreachRDD(function() end)
        end)
        assert.matches("the graph createFn built differs from the one checkpointed in " .. dir, err, 1, true)
        assert.matches("filter#1: added (filter)", err, 1, true)
    end)

    it("names a stream that was removed", function()
        local dir = checkpointed(function(_, lines)
            local t = totals(lines)
            t:foreachRDD(function() end)
            t:count():foreachRDD(function() end)
        end)
        local err = recover_error(dir, function(_, lines) totals(lines):foreachRDD(function() end) end)
        assert.matches("count#%d+: removed %(it was count%)", err)
        assert.matches("foreachRDD#%d+: removed %(it was foreachRDD%)", err)
    end)

    it("names a stream whose operator changed", function()
        local dir = checkpointed(function(_, lines) totals(lines):foreachRDD(function() end) end)
        local err = recover_error(dir, function(_, lines)
            pairs_of(lines):reduceByKey(dstream.sum):foreachRDD(function() end)
        end)
        assert.matches("updateStateByKey#3: a different operator: was updateStateByKey, now reduceByKey", err,
            1, true)
        assert.not_matches("added", err)
    end)

    it("names a window whose length or slide changed", function()
        local dir = checkpointed(function(_, lines)
            pairs_of(lines):reduceByKeyAndWindow(dstream.sum, dstream.subtract, 4, 2):foreachRDD(function() end)
        end)
        local err = recover_error(dir, function(_, lines)
            pairs_of(lines):reduceByKeyAndWindow(dstream.sum, dstream.subtract, 6, 2):foreachRDD(function() end)
        end)
        assert.matches("reduceByKeyAndWindow#3: a different window or slide: was reduceByKeyAndWindow(4 s, 2 s; "
            .. "sum in C), now reduceByKeyAndWindow(6 s, 2 s; sum in C)", err, 1, true)
    end)

    it("finds a named stream by its name and says what changed", function()
        local dir = checkpointed(function(_, lines)
            pairs_of(lines):reduceByKeyAndWindow(dstream.sum, 2, 1):name("recent"):foreachRDD(function() end)
            totals(lines):name("totals"):foreachRDD(function() end)
        end)
        local err = recover_error(dir, function(_, lines)
            totals(lines):name("totals"):foreachRDD(function() end)
            pairs_of(lines):reduceByKeyAndWindow(dstream.sum, 2, 2):name("recent"):foreachRDD(function() end)
        end)
        assert.matches('"recent" (reduceByKeyAndWindow): a different window or slide', err, 1, true)
        assert.not_matches('"totals"', err)
    end)

    it("names a stream whose parents changed", function()
        local dir = checkpointed(function(ssc, lines)
            local other = ssc:queueStream({})
            lines:union(other):foreachRDD(function() end)
        end)
        local err = recover_error(dir, function(ssc, lines)
            local other = ssc:queueStream({})
            other:union(lines):foreachRDD(function() end)
        end)
        assert.matches("union#2: different parents: was queueStream#0, queueStream#1, now queueStream#1, "
            .. "queueStream#0", err, 1, true)
    end)

    it("names an input whose arguments changed", function()
        local quiet = {onReceiverError = function() end} -- nothing listens on those ports
        local dir = checkpointed(function(ssc)
            ssc:addStreamingListener(quiet)
            ssc:socketTextStream("127.0.0.1", 9):foreachRDD(function() end)
        end)
        local err = recover_error(dir, function(ssc)
            ssc:addStreamingListener(quiet)
            ssc:socketTextStream("127.0.0.1", 10):foreachRDD(function() end)
        end)
        assert.matches("socketTextStream#1: different arguments: was socketTextStream(127.0.0.1:9), now "
            .. "socketTextStream(127.0.0.1:10)", err, 1, true)
    end)

    it("says when the batch interval changed", function()
        local dir = checkpointed(function(_, lines) totals(lines):foreachRDD(function() end) end)
        local err = recover_error(dir, function(_, lines) totals(lines):foreachRDD(function() end) end, 2)
        assert.matches("the batch interval: was 1 s, now 2 s", err, 1, true)
    end)
end)

describe("checkpoint.match", function()
    local checkpoint = require "dstream.checkpoint"
    local function stream(id, kind, parents, extra)
        local s = {id = id, kind = kind, desc = kind, parents = parents or {}, slide = 1000, window = 0}
        for k, v in pairs(extra or {}) do s[k] = v end
        return s
    end

    it("maps every stream to itself for the same shape", function()
        local g = {batch = 1000, streams = {stream(0, "queueStream"), stream(1, "map", {0}), stream(2, "print", {1})}}
        assert.are.same({[0] = 0, [1] = 1, [2] = 2}, (checkpoint.match(g, g)))
    end)

    it("maps named streams by name when they moved", function()
        local old = {batch = 1000, streams = {stream(0, "queueStream"), stream(1, "map", {0}, {name = "a"}),
            stream(2, "filter", {0}, {name = "b"})}}
        local new = {batch = 1000, streams = {stream(0, "queueStream"), stream(1, "filter", {0}, {name = "b"}),
            stream(2, "map", {0}, {name = "a"})}}
        assert.are.same({[0] = 0, [1] = 2, [2] = 1}, (checkpoint.match(old, new)))
    end)

    it("reports one line per difference", function()
        local old = {batch = 1000, streams = {stream(0, "queueStream"), stream(1, "map", {0}), stream(2, "print", {1})}}
        local new = {batch = 1000, streams = {stream(0, "queueStream"), stream(1, "filter", {0}),
            stream(2, "print", {1}), stream(3, "print", {1})}}
        local map, lines = checkpoint.match(old, new)
        assert.is_nil(map)
        assert.are.same({"map#1: a different operator: was map, now filter", "print#3: added (print)"}, lines)
    end)
end)

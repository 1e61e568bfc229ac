-- The changelog's records: what a batch of a grouped pipeline writes per
-- input partition (each changed key, then a marker with the input offset),
-- and the state a new owner rebuilds from them, with an unfinished batch
-- at the end and with records removed by compaction. No broker: records
-- are made by changelog.records from real state stores and read back by
-- changelog.replay, in offset order, as the topic would hold them.
local dstream = require "dstream"
local RDD = require "dstream.rdd"
local changelog = require "dstream.changelog"

local function context()
    return dstream.StreamingContext{batchInterval = 1, clock = "manual"}
end

-- A pair RDD of one partition per {tp, {k, v, ...}}.
local function kafka_rdd(parts)
    local a, b, ends, sp, n = {}, {}, {}, {}, 0
    for j, part in ipairs(parts) do
        for i = 1, #part[2], 2 do
            n = n + 1
            a[n], b[n] = part[2][i], part[2][i + 1]
        end
        ends[j], sp[j] = n, part[1]
    end
    local r = RDD.new(n, a, b, ends)
    r.srcparts, r.by_partition = sp, true
    return r
end

local function sum(values, total)
    total = total or 0
    for _, v in ipairs(values) do total = total + v end
    return total
end

-- A changelog topic in memory: append-only keys and values.
local function log()
    return {ks = {}, vs = {}, n = 0}
end

-- A grouped stateful pipeline over hand-made batches: after each batch
-- it appends to lg what changelog.write would send for partition tp
-- (input offset: records so far); returns the stream and a step function.
local function pipeline(batches, stateful)
    local ssc = context()
    local ticks = {}
    for i = 1, #batches + 5 do ticks[i] = {i} end
    local i = 0
    local input = ssc:queueStream(ticks):transform(function()
        i = i + 1
        return kafka_rdd(batches[i] or {})
    end)
    local s = stateful(input)
    s:foreachRDD(function() end)
    s.changes = {} -- group mode, as changelog.lua sets it
    ssc:start()
    return ssc, s
end

-- Every (key, value) of a store as {[shown key] = value}.
local function contents(st)
    local ks, vs = {}, {}
    local m = st:dump(ks, vs, 0)
    local out = {}
    for j = 1, m do out[type(ks[j]) == "table" and table.concat(ks[j], ",") or tostring(ks[j])] = vs[j] end
    return out
end

local function restored(topic, lg)
    local st, offset, redo = changelog.replay(topic, lg.ks, lg.vs, lg.n)
    local out = {}
    for j = 1, st.m do
        local k = st.ks[j]
        out[type(k) == "table" and table.concat(k, ",") or tostring(k)] = st.vs[j]
    end
    return out, offset, redo
end

describe("the changelog", function()
    it("rebuilds each partition's state and the input offset from its records", function()
        local batches = {
            {{"t/0", {"a", 1, "b", 2}}, {"t/1", {"c", 3}}},
            {{"t/0", {"a", 4}}, {"t/1", {"c", 1, 7, 7}}},
            {{"t/0", {{"x", 1}, 5}}, {"t/1", {}}},
        }
        local ssc, s = pipeline(batches, function(input) return input:updateStateByKey(sum) end)
        local logs, offsets = {["t/0"] = log(), ["t/1"] = log()}, {["t/0"] = 0, ["t/1"] = 0}
        for b = 1, #batches do
            ssc:advance(1)
            for _, part in ipairs(batches[b]) do
                local tp, lg = part[1], logs[part[1]]
                offsets[tp] = offsets[tp] + #part[2] / 2
                lg.n = changelog.records("t", s.stores[tp], s.changes[tp], offsets[tp], lg.ks, lg.vs, lg.n)
                s.changes[tp] = nil
            end
        end
        for _, tp in ipairs({"t/0", "t/1"}) do
            local state, offset, redo = restored("t", logs[tp])
            assert.are.same(contents(s.stores[tp]), state)
            assert.are.equal(offsets[tp], offset)
            assert.are.equal(0, redo.m)
        end
        assert.are.same({a = 5, b = 2, ["x,1"] = 5}, (restored("t", logs["t/0"])))
        -- Only the keys a batch changed are written: batch 3 wrote x,1 (and its marker) alone.
        assert.are.equal(2 + 1 + 1 + 1 + 1 + 1, logs["t/0"].n)
        ssc:stop()
    end)

    it("writes a removed key as removed, and keeps 1 and \"1\" apart", function()
        local batches = {{{"t/0", {1, 1, "1", 10}}}, {{"t/0", {1, -1}}}}
        local ssc, s = pipeline(batches, function(input)
            return input:updateStateByKey(function(values, total)
                total = sum(values, total)
                if total == 0 then return nil end
                return total
            end)
        end)
        local lg = log()
        for b = 1, 2 do
            ssc:advance(1)
            lg.n = changelog.records("t", s.stores["t/0"], s.changes["t/0"], b * 10, lg.ks, lg.vs, lg.n)
            s.changes["t/0"] = nil
        end
        local state, offset = restored("t", lg)
        assert.are.equal(20, offset)
        local st = changelog.replay("t", lg.ks, lg.vs, lg.n)
        assert.are.equal(1, st.m)
        assert.are.equal("1", st.ks[1])
        assert.are.equal(10, state["1"])
        ssc:stop()
    end)

    it("ignores a batch that never wrote its marker, applying the values from before it", function()
        local lg = log()
        local function put(k, new, had, old)
            lg.n = lg.n + 1
            lg.ks[lg.n], lg.vs[lg.n] = changelog.data_key("t", k), changelog.change_value(new, had, old)
        end
        local function mark(o)
            lg.n = lg.n + 1
            lg.ks[lg.n], lg.vs[lg.n] = changelog.marker_key("t"), changelog.marker_value(o)
        end
        put("a", 1, false)
        put("b", 2, false)
        mark(5)
        put("a", 3, true, 1) -- the unfinished batch: killed before its marker
        put("c", 9, false)
        local state, offset, redo = restored("t", lg)
        assert.are.same({a = 1, b = 2}, state)
        assert.are.equal(5, offset)
        -- Its keys are written again after the new owner's first batch.
        assert.are.same({"a", "c"}, redo.ks)
        assert.are.same({1}, {redo.vs[1], redo.vs[2]})
    end)

    it("keeps the state exact when compaction removed a record the unfinished batch superseded", function()
        local lg = log()
        local function put(k, new, had, old)
            lg.n = lg.n + 1
            lg.ks[lg.n], lg.vs[lg.n] = changelog.data_key("t", k), changelog.change_value(new, had, old)
        end
        -- The record a=1 of the first batch is gone (compacted: a later record has key a).
        put("b", 2, false)
        lg.n = lg.n + 1
        lg.ks[lg.n], lg.vs[lg.n] = changelog.marker_key("t"), changelog.marker_value(5)
        put("a", 3, true, 1)
        local state, offset = restored("t", lg)
        assert.are.same({a = 1, b = 2}, state)
        assert.are.equal(5, offset)
    end)

    it("applies the rewrite of an unfinished batch's keys once a new owner's marker follows", function()
        local lg = log()
        local function put(k, new, had, old)
            lg.n = lg.n + 1
            lg.ks[lg.n], lg.vs[lg.n] = changelog.data_key("t", k), changelog.change_value(new, had, old)
        end
        local function mark(o)
            lg.n = lg.n + 1
            lg.ks[lg.n], lg.vs[lg.n] = changelog.marker_key("t"), changelog.marker_value(o)
        end
        put("a", 1, false)
        mark(5)
        put("a", 3, true, 1) -- unfinished
        put("c", 9, false)   -- unfinished
        put("a", 1, true, 1) -- the new owner's first batch: the rewrite
        put("c", nil, false)
        mark(5)
        local state, offset, redo = restored("t", lg)
        assert.are.same({a = 1}, state)
        assert.are.equal(5, offset)
        assert.are.equal(0, redo.m)
    end)

    it("reads only the records of its input topic, and no marker means no offset", function()
        local lg = log()
        lg.ks[1], lg.vs[1] = changelog.data_key("u", "a"), changelog.change_value(7, false)
        lg.ks[2], lg.vs[2] = changelog.marker_key("u"), changelog.marker_value(3)
        lg.ks[3], lg.vs[3] = changelog.data_key("t", "b"), changelog.change_value(1, false)
        lg.n = 3
        local state, offset = restored("t", lg)
        assert.are.same({}, state)
        assert.is_nil(offset)
        assert.are.same({a = 7}, (restored("u", lg)))
    end)

    it("notes mapWithState's changes and timeouts with the value from before the batch", function()
        local batches = {{{"t/0", {"a", 1, "a", 2, "b", 5}}}, {{"t/0", {}}}, {{"t/0", {}}}}
        local ssc, s = pipeline(batches, function(input)
            return input:mapWithState(dstream.StateSpec(function(k, v, st)
                if st:isTimingOut() then return nil end
                st:update((st:getOption() or 0) + v)
                return k
            end):timeout(2))
        end)
        ssc:advance(1)
        local c = s.changes["t/0"]
        assert.are.same({k = "a", had = false}, c["sa"])
        local lg = log()
        lg.n = changelog.records("t", s.stores["t/0"], c, 3, lg.ks, lg.vs, lg.n)
        s.changes["t/0"] = nil
        assert.are.same({a = 3, b = 5}, (restored("t", lg)))
        ssc:advance(2)
        assert.are.same({k = "b", had = true, old = 5}, s.changes["t/0"]["sb"])
        lg.n = changelog.records("t", s.stores["t/0"], s.changes["t/0"], 3, lg.ks, lg.vs, lg.n)
        assert.are.same({}, (restored("t", lg)))
        ssc:stop()
    end)
end)

-- Keyed state: mapWithState (with exact timeouts), stateSnapshots,
-- updateStateByKey, and the built-in reducers, batch by batch under the
-- manual clock.
local dstream = require "dstream"

local function context()
    return dstream.StreamingContext{batchInterval = 1, clock = "manual"}
end

-- Input batches of "key value" strings as a pair stream of (key, number).
local function pairs_of(ssc, batches)
    return ssc:queueStream(batches):mapToPair(function(line)
        local k, v = line:match("^(%S+) (%S+)$")
        return k, tonumber(v) or v
    end)
end

local function shown(batch)
    local out = {}
    for i, r in ipairs(batch) do out[i] = type(r) == "table" and tostring(r[1]) .. "=" .. tostring(r[2]) or tostring(r) end
    table.sort(out)
    return out
end

local function run(ssc, stream, n)
    local got = stream:collectBatches()
    ssc:start()
    ssc:advance(n)
    local out = {}
    for i = 1, #got do out[i] = shown(got[i]) end
    return out
end

local function running_sum(key, value, state)
    local sum = (state:getOption() or 0) + value
    state:update(sum)
    return {key, sum}
end

describe("mapWithState", function()
    it("keeps a running sum per key and emits one record per input record", function()
        local ssc = context()
        local mapped = pairs_of(ssc, {{"a 1", "b 2", "a 3"}, {}, {"b 5"}})
            :mapWithState(dstream.StateSpec(running_sum))
        assert.are.same({{"a=1", "a=4", "b=2"}, {}, {"b=7"}}, run(ssc, mapped, 3))
    end)

    it("emits nothing for a record whose function returns nil", function()
        local ssc = context()
        local mapped = pairs_of(ssc, {{"a 1", "a 2", "b 3"}}):mapWithState(dstream.StateSpec(function(k, v, state)
            state:update(v)
            if k == "a" then return nil end
            return k
        end))
        assert.are.same({{"b"}}, run(ssc, mapped, 1))
    end)

    it("starts from the initial state", function()
        local ssc = context()
        local spec = dstream.StateSpec(running_sum):initialState(ssc:parallelizePairs{a = 100})
        local mapped = pairs_of(ssc, {{"a 1", "b 1"}}):mapWithState(spec)
        assert.are.same({{"a=101", "b=1"}}, run(ssc, mapped, 1))
    end)

    it("drops a key whose state was removed", function()
        local ssc = context()
        local mapped = pairs_of(ssc, {{"a 1", "b 1"}, {"a 0"}, {}})
            :mapWithState(dstream.StateSpec(function(k, v, state)
                if v == 0 then state:remove() else state:update(v) end
                return k
            end))
        local snaps = mapped:stateSnapshots()
        assert.are.same({{"a=1", "b=1"}, {"b=1"}, {"b=1"}}, run(ssc, snaps, 3))
    end)

    it("gives get() an error and getOption() nil for a key without state", function()
        local ssc = context()
        local seen = {}
        local mapped = pairs_of(ssc, {{"a 1"}}):mapWithState(dstream.StateSpec(function(k, _, state)
            seen.exists = state:exists()
            seen.option = state:getOption()
            seen.ok, seen.err = pcall(state.get, state)
            seen.timing_out = state:isTimingOut()
            return k
        end))
        run(ssc, mapped, 1)
        assert.is_false(seen.exists)
        assert.is_nil(seen.option)
        assert.is_false(seen.ok)
        assert.matches("no state", seen.err)
        assert.is_false(seen.timing_out)
    end)

    it("calls a key idle for the timeout once, in the first batch it has been idle that long, then removes it", function()
        local ssc = context()
        local calls = {}
        local spec = dstream.StateSpec(function(k, v, state)
            if state:isTimingOut() then
                calls[#calls + 1] = {k, state:getOption(), v}
                return k .. " timed out"
            end
            state:update((state:getOption() or 0) + v)
            return nil
        end):timeout(2)
        local mapped = pairs_of(ssc, {{"a 1", "b 1"}, {"b 1"}, {}, {}, {}})
            :mapWithState(spec)
        local snaps = mapped:stateSnapshots():collectBatches()
        local out = run(ssc, mapped, 5)
        -- a: last data at 1000 ms, idle 2 s at 3000 ms; b: last data at 2000 ms, at 4000 ms.
        assert.are.same({{}, {}, {"a timed out"}, {"b timed out"}, {}}, out)
        assert.are.same({{"a", 1}, {"b", 2}}, {{calls[1][1], calls[1][2]}, {calls[2][1], calls[2][2]}})
        assert.is_nil(calls[1][3])
        assert.are.same({"b=2"}, shown(snaps[3]))
        assert.are.same({}, shown(snaps[4]))
    end)

    it("resets a key's idle time when data arrives even if the state is not updated", function()
        local ssc = context()
        local timed = {}
        local spec = dstream.StateSpec(function(k, v, state)
            if state:isTimingOut() then timed[#timed + 1] = k return nil end
            if not state:exists() then state:update(v) end
            return nil
        end):timeout(2)
        local mapped = pairs_of(ssc, {{"a 1"}, {"a 1"}, {"a 1"}, {}, {}})
            :mapWithState(spec)
        local got = mapped:collectBatches()
        ssc:start()
        ssc:advance(4)
        assert.are.same({}, timed)
        ssc:advance(1)
        assert.are.same({"a"}, timed)
        assert.are.equal(5, #got)
    end)

    it("passes the batch time to the state function, the timeout call included", function()
        local ssc = context()
        local seen = {}
        local spec = dstream.StateSpec(function(k, v, state, timeMs)
            seen[#seen + 1] = k .. "@" .. tostring(timeMs) .. (state:isTimingOut() and "!" or "")
            if v then state:update(v) end
            return nil
        end):timeout(2)
        local mapped = pairs_of(ssc, {{"a 1"}, {"b 1"}, {}, {}}):mapWithState(spec)
        run(ssc, mapped, 4)
        assert.are.same({"a@1000", "b@2000", "a@3000!", "b@4000!"}, seen)
    end)

    it("keeps the stored state when the function changes a table from get() without update()", function()
        local ssc = context()
        local spec = dstream.StateSpec(function(k, v, state)
            if not state:exists() then
                state:update({n = v})
            else
                local t = state:get()
                t.n = t.n + v -- changes the copy only
            end
            return {k, state:get().n}
        end):timeout(10)
        local mapped = pairs_of(ssc, {{"a 1"}, {"a 5", "a 7"}, {"a 9"}}):mapWithState(spec)
        local snaps = mapped:stateSnapshots():collectBatches()
        assert.are.same({{"a=1"}, {"a=6", "a=8"}, {"a=10"}}, run(ssc, mapped, 3))
        for i = 1, 3 do assert.are.same({n = 1}, snaps[i][1][2]) end
    end)

    it("refuses update() and remove() while a key is timing out", function()
        local ssc = context()
        local results = {}
        local spec = dstream.StateSpec(function(_, v, state)
            if state:isTimingOut() then
                results.update = {pcall(state.update, state, 1)}
                results.remove = {pcall(state.remove, state)}
                return nil
            end
            state:update(v)
            return nil
        end):timeout(1)
        local mapped = pairs_of(ssc, {{"a 1"}, {}})
        mapped:mapWithState(spec):foreachRDD(function() end)
        ssc:start()
        ssc:advance(2)
        assert.is_false(results.update[1])
        assert.matches("timing out", results.update[2])
        assert.is_false(results.remove[1])
    end)

    it("keeps composite, boolean, number and string keys apart", function()
        local ssc = context()
        local input = ssc:queueStream({{1, 2, 3, 4}}):flatMapToPair(function(x)
            return {{{"k", x % 2}, 1}, {x % 2 == 0, 1}, {x % 2, 1}, {tostring(x % 2), 1}}
        end)
        local snaps = input:mapWithState(dstream.StateSpec(function(_, v, state)
            state:update((state:getOption() or 0) + v)
            return nil
        end)):stateSnapshots()
        local got = snaps:collectBatches()
        ssc:start()
        ssc:advance(1)
        local byshape = {}
        for _, p in ipairs(got[1]) do
            local k = p[1]
            local name = type(k) == "table" and ("{" .. k[1] .. "," .. k[2] .. "}") or (type(k) .. ":" .. tostring(k))
            byshape[name] = p[2]
        end
        assert.are.same({["{k,0}"] = 2, ["{k,1}"] = 2, ["boolean:true"] = 2, ["boolean:false"] = 2,
            ["number:0"] = 2, ["number:1"] = 2, ["string:0"] = 2, ["string:1"] = 2}, byshape)
    end)

    it("keeps table states, strings with NUL bytes and nested arrays as they were", function()
        local ssc = context()
        local mapped = pairs_of(ssc, {{"u 1"}, {"u 2"}}):mapWithState(dstream.StateSpec(function(_, v, state)
            local s = state:getOption() or {events = {}, tag = "a\0b"}
            s.events[#s.events + 1] = v
            state:update(s)
            return s
        end))
        local got = mapped:collectBatches()
        ssc:start()
        ssc:advance(2)
        assert.are.same({events = {1, 2}, tag = "a\0b"}, got[2][1])
    end)

    it("fails the batch with a clear error for a state the codec cannot hold", function()
        local ssc = context()
        pairs_of(ssc, {{"a 1"}}):mapWithState(dstream.StateSpec(function(_, _, state)
            state:update(print)
        end)):foreachRDD(function() end)
        ssc:start()
        local ok, err = pcall(ssc.advance, ssc, 1)
        assert.is_false(ok)
        assert.matches("mapWithState", err)
        assert.matches("1000 ms", err)
        assert.matches("function", err)
    end)

    it("raises at the call for a spec that is not a StateSpec or a stream that is not a pair stream", function()
        local ssc = context()
        local values = ssc:queueStream({})
        assert.has_error(function() values:mapToPair(function(x) return x, x end):mapWithState(function() end) end)
        local ok, err = pcall(values.mapWithState, values, dstream.StateSpec(running_sum))
        assert.is_false(ok)
        assert.matches("not a pair stream", err)
        assert.has_error(function() dstream.StateSpec(running_sum):timeout(0) end)
        assert.has_error(function() dstream.StateSpec(42) end)
    end)
end)

describe("updateStateByKey", function()
    local function total(values, old)
        local t = old or 0
        for i = 1, #values do t = t + values[i] end
        return t
    end

    it("runs for every key with new values or existing state, each batch", function()
        local ssc = context()
        local totals = pairs_of(ssc, {{"a 1", "b 2", "a 3"}, {"b 1"}, {}}):updateStateByKey(total)
        assert.are.same({{"a=4", "b=2"}, {"a=4", "b=3"}, {"a=4", "b=3"}}, run(ssc, totals, 3))
    end)

    it("removes a key whose function returns nil", function()
        local ssc = context()
        local totals = pairs_of(ssc, {{"a 1", "b 1"}, {"a 1"}, {}}):updateStateByKey(function(values, old)
            if #values == 0 then return nil end
            return total(values, old)
        end)
        assert.are.same({{"a=1", "b=1"}, {"a=2"}, {}}, run(ssc, totals, 3))
    end)

    it("starts from the initial RDD", function()
        local ssc = context()
        local totals = pairs_of(ssc, {{"a 1"}}):updateStateByKey(total, ssc:parallelizePairs{a = 10, z = 5})
        assert.are.same({{"a=11", "z=5"}}, run(ssc, totals, 1))
    end)

    it("raises at the call for a function that is missing", function()
        local ssc = context()
        assert.has_error(function() pairs_of(ssc, {}):updateStateByKey(nil) end)
    end)

    it("passes the batch time to the function", function()
        local ssc = context()
        local times = {}
        local totals = pairs_of(ssc, {{"a 1"}, {}}):updateStateByKey(function(values, old, timeMs)
            times[#times + 1] = timeMs
            return total(values, old)
        end)
        run(ssc, totals, 2)
        assert.are.same({1000, 2000}, times)
    end)

    it("calls the function for every key with state, whatever its kind, when another key's bytes equal its own", function()
        -- The key true is stored as its encoding, "\2": the string "\2" is another key.
        local ssc = context()
        local calls = {}
        local totals = ssc:queueStream({{{"\2", 1}, {true, 1}}, {{"\2", 1}}, {{true, 1}}})
            :mapToPair(function(r) return r[1], r[2] end)
            :updateStateByKey(function(values, old)
                calls[#calls + 1] = (type(old) == "nil" and "new" or "old") .. #values
                return total(values, old)
            end)
        local got = totals:collectBatches()
        ssc:start()
        ssc:advance(3)
        local function show(batch)
            local out = {}
            for i, r in ipairs(batch) do out[i] = string.format("%q=%d", tostring(r[1]), r[2]) end
            table.sort(out)
            return table.concat(out, " ")
        end
        assert.are.equal([["\2"=1 "true"=1]], show(got[1]))
        assert.are.equal([["\2"=2 "true"=1]], show(got[2]))
        assert.are.equal([["\2"=2 "true"=2]], show(got[3]))
        assert.are.equal(6, #calls)
    end)

    it("keeps the state when the function changes its argument but returns another value", function()
        local ssc = context()
        local totals = pairs_of(ssc, {{"a 1"}, {"a 1"}, {}}):updateStateByKey(function(values, old)
            old = old or {n = 0}
            if #values == 0 then return old end
            local copy = {n = old.n + #values}
            old.n = 1000 -- a copy: changing it changes nothing stored
            return copy
        end):mapValues(function(s) return s.n end)
        assert.are.same({{"a=1"}, {"a=2"}, {"a=2"}}, run(ssc, totals, 3))
    end)
end)

-- The seed's homework, 24-hour totals per product, with the state an hourly
-- ring {[h % 24 + 1] = {h, sum}}: sparse integer keys (slot 1 empty for the
-- first 23 hours) whose tables LuaJIT once mis-traversed in compiled code
-- (spec/unit/luajit_spec.lua). 1 500 one-minute batches, checked against a
-- plain recomputation.
describe("an hourly ring as keyed state over 1 500 batches", function()
    local BATCHES, PRODUCTS = 1500, 40

    local function batches()
        local seed, out = 7, {}
        for b = 1, BATCHES do
            local batch = {}
            for j = 1, 30 do
                seed = (seed * 1103515245 + 12345) % 2147483648
                local p = seed % PRODUCTS
                if (p + math.floor(b / 180)) % 7 ~= 0 then
                    batch[j] = string.format("P%02d %d", p, math.floor(seed / 4096) % 10000)
                end
            end
            local dense = {}
            for j = 1, 30 do if batch[j] then dense[#dense + 1] = batch[j] end end
            out[b] = dense
        end
        return out
    end

    local function hour_of(t) return math.ceil(t / 3600000) end

    local function add(ring, h, cents)
        local slot = h % 24 + 1
        local cur = ring[slot]
        if cur == nil or cur[1] ~= h then
            cur = {h, 0}
            ring[slot] = cur
        end
        cur[2] = cur[2] + cents
    end

    -- The rings every product has after the last batch, computed directly.
    local function expected(input)
        local rings = {}
        for b, batch in ipairs(input) do
            for _, line in ipairs(batch) do
                local p, cents = line:match("^(%S+) (%d+)$")
                rings[p] = rings[p] or {}
                add(rings[p], hour_of(b * 60000), tonumber(cents))
            end
        end
        return rings
    end

    local function same_rings(want, got)
        local n = 0
        for p, ring in pairs(want) do
            n = n + 1
            assert.are.same(ring, got[p], p)
        end
        for _ in pairs(got) do n = n - 1 end
        assert.are.equal(0, n)
    end

    local function lines(ssc, input)
        return ssc:queueStream(input):mapToPair(function(line)
            local p, cents = line:match("^(%S+) (%d+)$")
            return p, tonumber(cents)
        end)
    end

    -- Runs every batch; the (key, state) pairs of the last, as a table.
    local function last_batch(ssc, pairs_stream)
        local last = {}
        pairs_stream:foreachRDD(function(rdd)
            last = {}
            for _, kv in ipairs(rdd:collect()) do last[kv[1]] = kv[2] end
        end)
        ssc:start()
        ssc:advance(BATCHES)
        ssc:stop()
        return last
    end

    it("updateStateByKey keeps every product's ring exact", function()
        local input = batches()
        local want = expected(input)
        local ssc = dstream.StreamingContext{batchInterval = 60, clock = "manual"}
        same_rings(want, last_batch(ssc, lines(ssc, input):updateStateByKey(function(values, ring, timeMs)
            ring = ring or {}
            for i = 1, #values do add(ring, hour_of(timeMs), values[i]) end
            return ring
        end)))
    end)

    it("mapWithState keeps every product's ring exact", function()
        local input = batches()
        local want = expected(input)
        local ssc = dstream.StreamingContext{batchInterval = 60, clock = "manual"}
        local spec = dstream.StateSpec(function(_, cents, state, timeMs)
            local ring = state:getOption() or {}
            add(ring, hour_of(timeMs), cents)
            state:update(ring)
            return nil
        end)
        same_rings(want, last_batch(ssc, lines(ssc, input):mapWithState(spec):stateSnapshots()))
    end)
end)

describe("built-in reducers", function()
    it("sum, min and max reduce values per key", function()
        for name, expected in pairs({sum = {"a=9", "b=2"}, min = {"a=1", "b=2"}, max = {"a=5", "b=2"}}) do
            local ssc = context()
            local r = pairs_of(ssc, {{"a 5", "b 2", "a 1", "a 3"}}):reduceByKey(dstream[name])
            assert.are.same({expected}, run(ssc, r, 1), name)
        end
    end)

    it("count counts records per key, whatever their values", function()
        local ssc = context()
        local r = pairs_of(ssc, {{"a x", "b y", "a z"}}):reduceByKey(dstream.count)
        assert.are.same({{"a=2", "b=1"}}, run(ssc, r, 1))
    end)

    it("count with its inverse counts records in a sliding window", function()
        local ssc = context()
        local r = pairs_of(ssc, {{"a 1", "a 1"}, {"a 1"}, {}})
            :reduceByKeyAndWindow(dstream.count, dstream.count, 2, 1)
        assert.are.same({{"a=2"}, {"a=3"}, {"a=1"}}, run(ssc, r, 3))
    end)

    it("count reduces a whole stream to its number of records", function()
        local ssc = context()
        local r = ssc:queueStream({{"x", "y", "z"}}):reduce(dstream.count)
        assert.are.same({{"3"}}, run(ssc, r, 1))
    end)
end)

describe("a stateful stream", function()
    it("takes every batch into its state, even when its output only looks every few batches", function()
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
        local totals = pairs_of(ssc, {{"a 1"}, {"a 2"}, {"a 3"}, {"a 4"}})
            :updateStateByKey(function(values, old)
                local t = old or 0
                for i = 1, #values do t = t + values[i] end
                return t
            end)
        local got = totals:window(1, 2):collectBatches()
        ssc:start()
        ssc:advance(4)
        assert.are.same({{"a=3"}, {"a=10"}}, {shown(got[1]), shown(got[2])})
    end)
end)

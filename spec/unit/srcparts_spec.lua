-- Source partitions (rdd.srcparts, as a kafkaStream gives them): narrow
-- stages keep them, shuffles run per source partition, and keyed state is
-- kept in one store per source partition. RDDs are made by hand with
-- srcparts and fed through transform: no broker needed.
local dstream = require "dstream"
local RDD = require "dstream.rdd"
local state = require "dstream.state"
local files = require "helpers.files"

local function context()
    return dstream.StreamingContext{batchInterval = 1, clock = "manual"}
end

-- A pair RDD with one partition per {tp, {k, v, k, v, ...}} of parts.
local function kafka_rdd(parts)
    local a, b, ends, sp, n = {}, {}, {}, {}, 0
    for j, part in ipairs(parts) do
        local kv = part[2]
        for i = 1, #kv, 2 do
            n = n + 1
            a[n], b[n] = kv[i], kv[i + 1]
        end
        ends[j], sp[j] = n, part[1]
    end
    local r = RDD.new(n, a, b, ends)
    r.srcparts, r.by_partition = sp, true
    return r
end

-- A stream whose batch i is the RDD rdds[i] (empty after the last one).
local function stream_of(ssc, rdds)
    local ticks = {}
    for i = 1, #rdds + 20 do ticks[i] = {i} end
    local i = 0
    return ssc:queueStream(ticks):transform(function()
        i = i + 1
        return rdds[i] or kafka_rdd({})
    end)
end

-- The RDDs a stream makes, each as {parts = {tp = sorted "k=v" lines}, srcparts = the array}.
local function capture(stream)
    local got = {}
    stream:foreachRDD(function(r)
        local parts, lo = {}, 1
        for j = 1, #r.ends do
            local lines = {}
            for i = lo, r.ends[j] do
                local k, v = r.a[i], r.b and r.b[i]
                if type(k) == "table" then k = k[1] .. "," .. k[2] end
                lines[#lines + 1] = r.b and (tostring(k) .. "=" .. tostring(v)) or tostring(k)
            end
            table.sort(lines)
            parts[r.srcparts and r.srcparts[j] or ("#" .. j)] = lines
            lo = r.ends[j] + 1
        end
        got[#got + 1] = {parts = parts, srcparts = r.srcparts}
    end)
    return got
end

-- Every (key, value) of a batch's partitions as one map, erroring on a key seen twice.
local function merged(batch)
    local out = {}
    local tp, lines = next(batch.parts)
    while tp ~= nil do
        for _, line in ipairs(lines) do
            local k, v = line:match("^(.-)=(.*)$")
            assert(out[k] == nil, "key " .. k .. " is in two partitions")
            out[k] = v
        end
        tp, lines = next(batch.parts, tp)
    end
    return out
end

local function sum(values, total)
    total = total or 0
    for _, v in ipairs(values) do total = total + v end
    return total
end

describe("source partitions", function()
    it("are kept by a fused chain of narrow operations, partition by partition", function()
        local ssc = context()
        local got = capture(stream_of(ssc, {kafka_rdd{{"t/0", {"a", 1, "b", 2}}, {"t/1", {}}, {"t/2", {"c", 3}}}})
            :filter(function(k) return k ~= "b" end):mapValues(function(v) return v * 10 end))
        ssc:start()
        ssc:advance(1)
        assert.are.same({"t/0", "t/1", "t/2"}, got[1].srcparts)
        assert.are.same({["t/0"] = {"a=10"}, ["t/1"] = {}, ["t/2"] = {"c=30"}}, got[1].parts)
    end)

    it("make reduceByKey after a fused chain reduce within each source partition", function()
        local ssc = context()
        local got = capture(stream_of(ssc, {kafka_rdd{{"t/0", {"a", 1, "a", 2, "b", 1}}, {"t/1", {"c", 5, "c", 5}}}})
            :mapValues(function(v) return v end):reduceByKey(function(x, y) return x + y end, 4))
        ssc:start()
        ssc:advance(1)
        assert.are.same({"t/0", "t/1"}, got[1].srcparts)
        assert.are.same({["t/0"] = {"a=3", "b=1"}, ["t/1"] = {"c=10"}}, got[1].parts)
    end)

    it("make reduceByKey, groupByKey and combineByKey on an RDD keep one partition per source partition", function()
        local r = kafka_rdd{{"t/0", {"a", 1, "a", 2}}, {"t/1", {"b", 4}}, {"t/0", {"a", 3}}}
        local red = r:reduceByKey(function(x, y) return x + y end)
        assert.are.same({"t/0", "t/1"}, red.srcparts)
        assert.are.same({{"a", 6}, {"b", 4}}, red:collect())
        local grouped = r:groupByKey()
        assert.are.same({"t/0", "t/1"}, grouped.srcparts)
        assert.are.same({{"a", {1, 2, 3}}, {"b", {4}}}, grouped:collect())
        local comb = r:combineByKey(function(v) return {v} end,
            function(c, v) c[#c + 1] = v; return c end,
            function(c1, c2) for _, v in ipairs(c2) do c1[#c1 + 1] = v end return c1 end)
        assert.are.same({1, 2}, comb.ends)
        assert.are.same({{"a", {1, 2, 3}}, {"b", {4}}}, comb:collect())
    end)

    it("make countByValue count within each source partition", function()
        local ssc = context()
        local got = capture(stream_of(ssc, {kafka_rdd{{"t/0", {"a", 1, "a", 1}}, {"t/1", {"b", 1}}}})
            :keys():countByValue())
        ssc:start()
        ssc:advance(1)
        assert.are.same({"t/0", "t/1"}, got[1].srcparts)
        assert.are.same({["t/0"] = {"a=2"}, ["t/1"] = {"b=1"}}, got[1].parts)
    end)

    it("go through a union of two streams that both have them", function()
        local ssc = context()
        local one = stream_of(ssc, {kafka_rdd{{"t/0", {"a", 1}}}})
        local two = stream_of(ssc, {kafka_rdd{{"t/0", {"a", 2}}, {"t/1", {"b", 1}}}})
        local got = capture(one:union(two):reduceByKey(function(x, y) return x + y end))
        ssc:start()
        ssc:advance(1)
        assert.are.same({"t/0", "t/1"}, got[1].srcparts)
        assert.are.same({["t/0"] = {"a=3"}, ["t/1"] = {"b=1"}}, got[1].parts)
    end)

    it("are only descriptive on a kafkaStream's batch without a group: keys meet across partitions", function()
        local r = RDD.new(3, {"to", "be", "to"}, {1, 1, 1}, {2, 3})
        r.srcparts = {"t/0", "t/1"} -- as a kafkaStream without groupId gives them
        local red = r:reduceByKey(function(x, y) return x + y end)
        assert.are.same({{"to", 2}, {"be", 1}}, red:collect())
        assert.is_nil(red.srcparts)
    end)

    it("change nothing for RDDs without them, and are dropped by repartition", function()
        local r = RDD.new(3, {"a", "b", "a"}, {1, 1, 1}, {2, 3})
        local red = r:reduceByKey(function(x, y) return x + y end, 2)
        assert.is_nil(red.srcparts)
        assert.are.equal(2, #red.ends)
        local k = kafka_rdd{{"t/0", {"a", 1}}, {"t/1", {"b", 1}}}
        assert.is_nil(k:repartition(3).srcparts)
        assert.are.same({"t/0", "t/1"}, k:mapValues(function(v) return v end).srcparts)
        assert.are.same({"t/0", "t/1"}, k:keys().srcparts)
    end)
end)

describe("keyed state per source partition", function()
    local batches = {
        {{"t/0", {"a", 1, "b", 2}}, {"t/1", {"c", 3}}},
        {{"t/0", {"a", 4}}, {"t/1", {}}},
        {{"t/1", {"c", 1, "d", 7}}, {"t/0", {"b", 1}}},
    }
    local function rdds()
        local out = {}
        for i, b in ipairs(batches) do out[i] = kafka_rdd(b) end
        return out
    end

    it("keeps updateStateByKey's state in one store per partition, outputs one partition each", function()
        local ssc = context()
        local totals = stream_of(ssc, rdds()):updateStateByKey(sum)
        local got = capture(totals)
        ssc:start()
        ssc:advance(3)
        assert.are.same({"t/0", "t/1"}, got[3].srcparts)
        assert.are.same({["t/0"] = {"a=5", "b=3"}, ["t/1"] = {"c=4", "d=7"}}, got[3].parts)
        assert.are.equal(2, totals.stores["t/0"]:count())
        assert.are.equal(2, totals.stores["t/1"]:count())
        assert.is_nil(totals.store)
    end)

    it("makes no store of its own for empty batches before any partition is assigned", function()
        local ssc = context()
        local totals = stream_of(ssc, {RDD.new(0, {}, {}, {0}), kafka_rdd(batches[1])}):updateStateByKey(sum)
        local got = capture(totals)
        ssc:start()
        ssc:advance(2)
        assert.is_nil(totals.store)
        assert.are.same({"t/0", "t/1"}, got[2].srcparts)
    end)

    it("gives exactly the single store's results when no key spans two partitions", function()
        local function run(with_sp)
            local ssc = context()
            local input = stream_of(ssc, rdds())
            if not with_sp then
                input = input:transform(function(r) return RDD.new(r.n, r.a, r.b, r.ends) end)
            end
            local got = capture(input:updateStateByKey(sum))
            local mapped = capture(input:mapWithState(dstream.StateSpec(function(k, v, st)
                local s = (st:getOption() or 0) + v
                st:update(s)
                return k .. ":" .. s
            end)))
            ssc:start()
            ssc:advance(4)
            local out = {}
            for i = 1, 4 do
                local values = {}
                local tp, lines = next(mapped[i].parts)
                while tp ~= nil do
                    for _, l in ipairs(lines) do values[#values + 1] = l end
                    tp, lines = next(mapped[i].parts, tp)
                end
                table.sort(values)
                out[i] = {merged(got[i]), values}
            end
            return out
        end
        local single, parted = run(false), run(true)
        assert.are.same(single, parted)
        assert.are.same({a = "5", b = "3", c = "4", d = "7"}, parted[4][1])
    end)

    it("times keys out per partition store and snapshots every store", function()
        local ssc = context()
        local spec = dstream.StateSpec(function(k, v, st)
            if st:isTimingOut() then return k .. " expired" end
            st:update((st:getOption() or 0) + v)
            return nil
        end):timeout(2)
        local mapped = stream_of(ssc, {
            kafka_rdd{{"t/0", {"a", 1}}, {"t/1", {"b", 1}}},
            kafka_rdd{{"t/0", {}}, {"t/1", {"b", 1}}},
            kafka_rdd{{"t/0", {}}, {"t/1", {"b", 1}}},
        }):mapWithState(spec)
        local out = capture(mapped)
        local snaps = capture(mapped:stateSnapshots())
        ssc:start()
        ssc:advance(3)
        assert.are.same({["t/0"] = {"a=1"}, ["t/1"] = {"b=2"}}, snaps[2].parts)
        assert.are.same({["t/0"] = {"a expired"}, ["t/1"] = {}}, out[3].parts)
        assert.are.same({["t/0"] = {}, ["t/1"] = {"b=3"}}, snaps[3].parts)
        assert.are.same({"t/0", "t/1"}, snaps[3].srcparts)
    end)

    it("refuses an initial state, which cannot be split by partition, naming the batch", function()
        local ssc = context()
        local totals = stream_of(ssc, rdds()):updateStateByKey(sum, ssc:parallelizePairs{a = 1})
        capture(totals)
        ssc:start()
        local ok, err = pcall(ssc.advance, ssc, 1)
        assert.is_false(ok)
        assert.matches("initial state cannot be split by input partition", tostring(err))
    end)

    it("drops and replaces one partition's store without touching the others", function()
        local ssc = context()
        local totals = stream_of(ssc, rdds()):updateStateByKey(sum)
        local got = capture(totals)
        ssc:start()
        ssc:advance(1)
        state.set_partition_store(totals, "t/0", nil)
        ssc:advance(1)
        assert.are.same({["t/0"] = {"a=4"}, ["t/1"] = {"c=3"}}, got[2].parts)
    end)

    it("saves every partition's store in checkpoints and restores them", function()
        local dir = files.tmpdir()
        local queue = rdds()
        local outs = {}
        local function create()
            local ssc = context()
            ssc:checkpoint(dir)
            outs[#outs + 1] = capture(stream_of(ssc, queue):updateStateByKey(sum):name("totals"))
            return ssc
        end
        local ssc = dstream.StreamingContext.getOrCreate(dir, create)
        ssc:start()
        ssc:advance(2)
        ssc:stop()
        assert.are.same({["t/0"] = {"a=5", "b=2"}, ["t/1"] = {"c=3"}}, outs[1][2].parts)
        queue = {kafka_rdd(batches[3])}
        local ssc2 = dstream.StreamingContext.getOrCreate(dir, create)
        ssc2:start()
        ssc2:advance(1)
        ssc2:stop()
        assert.are.same({["t/0"] = {"a=5", "b=3"}, ["t/1"] = {"c=4", "d=7"}}, outs[2][1].parts)
    end)
end)

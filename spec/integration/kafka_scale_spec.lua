-- Scaling out with Kafka's consumer groups, with real processes: three
-- processes run one script with one groupId against the test broker and
-- keep per-key totals in updateStateByKey (state per input partition, in a
-- changelog topic). One is killed with kill -9 mid-stream: the survivors
-- take its partitions with their state, and their merged state equals the
-- exact totals of the topic, each key in exactly one process. A process
-- that joins later takes partitions over with their state.
local K = require("spec.helpers.kafka")
local crash = require("spec.helpers.crash")
local files = require("spec.helpers.files")

-- Each process writes its whole state (every key's total: updateStateByKey
-- emits all its keys each batch) to its own file after every batch.
local JOB = [=[
local dstream = require "dstream"
local brokers, topic, group, out = arg[1], arg[2], arg[3], arg[4]
local ssc = dstream.StreamingContext{batchInterval = 0.2}
local records = ssc:kafkaStream{brokers = brokers, topics = {topic}, groupId = group,
    startingOffsets = "earliest", options = {["session.timeout.ms"] = "6000",
    ["max.poll.interval.ms"] = "10000", ["socket.timeout.ms"] = "5000",
    ["reconnect.backoff.max.ms"] = "500"}}
local totals = records:mapValues(tonumber):updateStateByKey(function(vs, n)
    n = n or 0
    for i = 1, #vs do n = n + vs[i] end
    return n
end):name("totals")
totals:foreachRDD(function(rdd)
    local lines = {}
    rdd:foreach(function(k, n) lines[#lines + 1] = k .. " " .. n end)
    table.sort(lines)
    local f = assert(io.open(out .. ".tmp", "wb"))
    f:write(table.concat(lines, "\n"), "\n")
    f:close()
    assert(os.rename(out .. ".tmp", out))
end)
ssc:start()
ssc:awaitTermination()
]=]

local VOCAB = {}
for i = 1, 40 do VOCAB[i] = "key" .. i end

describe("processes sharing a topic through a consumer group", function()
    local broker, dir

    -- The input topic and the changelog of the stream "totals" of group g1
    -- are made with the broker: its mock cluster cannot create topics on
    -- request (a real cluster gets the changelog from the pipeline itself).
    local topic, group = "scale", "g1"
    setup(function()
        broker = K.start_broker({topic .. ":6", group .. "-totals-changelog:6"})
    end)

    teardown(function()
        if broker then broker:stop() end
    end)

    before_each(function()
        dir = files.tmpdir()
        files.write(dir .. "/job.lua", JOB)
    end)

    after_each(function()
        os.execute("rm -rf '" .. dir .. "'")
    end)

    it("keep exact per-key totals, each key in one process, through a kill -9 and a join", function()
        local seed = crash.seed()
        local rng = crash.random(seed)
        local producer = assert(require("dstream.core").kafka_producer{brokers = broker.brokers,
            options = K.CLIENT_OPTIONS})
        local expected, procs = {}, {}
        local function produce(n)
            local records = {}
            for i = 1, n do
                local k, v = VOCAB[rng(1, #VOCAB)], rng(1, 9)
                records[i] = {k, tostring(v)}
                expected[k] = (expected[k] or 0) + v
            end
            K.produce(broker.brokers, topic, records, producer)
        end
        local function start(name)
            procs[name] = crash.spawn({"bin/dstream", "run", dir .. "/job.lua", broker.brokers, topic, group,
                dir .. "/state-" .. name})
        end
        -- The merged state of the named processes, and the keys found in more than one.
        local function merged(names)
            local got, twice = {}, {}
            for _, name in ipairs(names) do
                for k, n in (files.read(dir .. "/state-" .. name) or ""):gmatch("(%S+) (%d+)\n") do
                    if got[k] ~= nil then twice[#twice + 1] = k .. " in " .. name end
                    got[k] = tonumber(n)
                end
            end
            return got, twice
        end
        local function output()
            local out = "seed " .. seed .. "\n"
            local name, p = next(procs)
            while name do
                out = out .. "--- " .. name .. ":\n" .. p:output()
                name, p = next(procs, name)
            end
            return out
        end
        -- Wait until the named processes' merged state is exact, each key in one of them.
        local function settle(names, seconds)
            local deadline = crash.now() + seconds
            local got, twice
            while crash.now() < deadline do
                got, twice = merged(names)
                if #twice == 0 and require("luassert.util").deepcompare(got, expected) then
                    -- a few more batches: the state must stay as it is (nothing counted twice)
                    crash.sleep(1)
                    got, twice = merged(names)
                    break
                end
                crash.sleep(0.2)
            end
            assert.are.same({}, twice, output())
            assert.are.same(expected, got, output())
        end

        start("a")
        start("b")
        start("c")
        produce(300)
        settle({"a", "b", "c"}, 40)
        -- Each of the three holds some of the keys.
        for _, name in ipairs({"a", "b", "c"}) do
            assert.is_truthy(next((merged({name}))), name .. " holds no key\n" .. output())
        end

        -- Killed mid-stream: records keep coming before and after.
        produce(100)
        crash.sleep(rng() * 0.4)
        procs.b:kill()
        produce(200)
        settle({"a", "c"}, 45)

        -- A process joining later takes partitions over, with their state.
        start("d")
        produce(100)
        local deadline = crash.now() + 30
        while crash.now() < deadline and next((merged({"d"}))) == nil do crash.sleep(0.2) end
        settle({"a", "c", "d"}, 40)
        assert.is_truthy(next((merged({"d"}))), "d took no partition\n" .. output())
        for _, name in ipairs({"a", "c", "d"}) do procs[name]:finish(10) end
        producer:close()
    end)
end)

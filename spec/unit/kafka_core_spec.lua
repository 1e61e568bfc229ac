-- The Kafka glue of dstream.core (core.kafka_consumer, core.kafka_producer,
-- core.kafka_create_topic) against a real Kafka protocol: build/ds_kafka_broker,
-- librdkafka's mock cluster in a process of its own. Waits loop until a
-- condition holds; the 30 s bound only stops a broken spec.
local core = require("dstream.core")
local wait = require("spec.helpers.wait")

local function sleep(s)
    os.execute("sleep " .. s)
end

local function until_true(what, f)
    local deadline = wait.now() + 30
    while true do
        local v = f()
        if v then return v end
        if wait.now() > deadline then error("timed out waiting for " .. what, 2) end
        sleep(0.01)
    end
end

-- Start ds_kafka_broker with the topics ("name:partitions"); returns its
-- bootstrap address and a function that stops it. `timeout` ends it even if
-- the spec dies before stopping it; LD_PRELOAD (the ASan run's) is not for it.
local function start_broker(...)
    local out = os.tmpname()
    os.remove(out)
    local args = {}
    for i, t in ipairs({...}) do args[i] = "--topic " .. t end
    local cmd = string.format("env -u LD_PRELOAD -u ASAN_OPTIONS timeout 300 build/ds_kafka_broker "
        .. "--brokers 1 --out %s %s >/dev/null 2>&1 & echo $!", out, table.concat(args, " "))
    local p = assert(io.popen(cmd))
    local pid = assert(tonumber(p:read("*l")), "no pid")
    p:close()
    local addr = until_true("the broker's address", function()
        local f = io.open(out)
        if not f then return nil end
        local line = f:read("*l")
        f:close()
        return line
    end)
    local broker = {
        -- The signals go to the broker, the child of that `timeout`.
        signal = function(sig) os.execute("pkill -" .. sig .. " -P " .. pid) end,
        stop = function()
            os.execute("kill " .. pid .. " 2>/dev/null")
            os.remove(out)
        end,
    }
    return addr, broker
end

local test_options = {
    ["session.timeout.ms"] = 6000, ["max.poll.interval.ms"] = 10000, ["heartbeat.interval.ms"] = 500,
}

describe("core.kafka_consumer, core.kafka_producer and core.kafka_create_topic", function()
    it("raise on bad arguments, naming the function and the argument", function()
        local cases = {
            {function() core.kafka_consumer("x") end, "core.kafka_consumer: expects a table"},
            {function() core.kafka_consumer{} end, "core.kafka_consumer: brokers must be a string"},
            {function() core.kafka_consumer{brokers = "h:1", grop = "g"} end,
                "core.kafka_consumer: unknown field 'grop' (allowed: brokers, group, topics, options)"},
            {function() core.kafka_consumer{brokers = "h:1", group = "g"} end,
                "core.kafka_consumer: a group needs topics to subscribe to"},
            {function() core.kafka_consumer{brokers = "h:1", topics = {1}} end,
                "core.kafka_consumer: topics[1] must be a string"},
            {function() core.kafka_consumer{brokers = "h:1", options = {x = {}}} end,
                "core.kafka_consumer: options value of 'x' must be a string, number or boolean"},
            {function() core.kafka_producer{brokers = 5} end, "core.kafka_producer: brokers must be a string"},
            {function() core.kafka_producer{brokers = "h:1", topic = "t"} end,
                "core.kafka_producer: unknown field 'topic' (allowed: brokers, options)"},
            {function() core.kafka_create_topic("h:1", "t", 0) end,
                "core.kafka_create_topic: partitions must be an integer >= 1"},
            {function() core.kafka_create_topic("h:1", nil, 1) end,
                "core.kafka_create_topic: topic must be a string"},
        }
        for i, case in ipairs(cases) do
            local ok, err = pcall(case[1])
            assert.is_false(ok, "case " .. i)
            assert.truthy(tostring(err):find(case[2], 1, true), "case " .. i .. ": " .. tostring(err))
        end

        local c = assert(core.kafka_consumer{brokers = "127.0.0.1:1"})
        local p = assert(core.kafka_producer{brokers = "127.0.0.1:1"})
        local method_cases = {
            {function() c:take("t", "x", 0, 1) end, "bad argument #2 to 'take'",
                "kafka consumer:take: partition must be a number"},
            {function() c:take("t", 0, 5, 1) end, "bad argument #4 to 'take'", "upto must be >= from"},
            {function() c:take(1, 0, 0, 1) end, "bad argument #1 to 'take'", "kafka consumer:take: topic must be a string"},
            {function() c:read("t", -1, 0, 1, 100) end, "bad argument #2 to 'read'", "partition must be an integer >= 0"},
            {function() c:assign({{topic = "t", partition = 0}}) end, "kafka consumer:assign: item 1 (t/0): offset must be"},
            {function() c:assign({{topic = "t", partition = 0, offset = "first"}}) end, "offset must be an integer >= 0"},
            {function() c:assign("t") end, "bad argument #1 to 'assign'", "kafka consumer:assign: expects an array"},
            {function() c:unassign({{partition = 0}}) end, "kafka consumer:unassign: item 1: topic must be a string"},
            {function() c:watermarks("t", 0, "soon") end, "kafka consumer:watermarks: timeout_ms must be a number"},
            {function() p:produce("t", 0, nil, 5) end, "kafka producer:produce: value must be a string"},
            {function() p:produce("t", 0, 1, "v") end, "kafka producer:produce: key must be a string or nil"},
            {function() p:produce("t", -2, nil, "v") end, "partition must be an integer >= 0 or -1"},
        }
        for i, case in ipairs(method_cases) do
            local ok, err = pcall(case[1])
            assert.is_false(ok, "method case " .. i)
            for j = 2, #case do
                assert.truthy(tostring(err):find(case[j], 1, true), "method case " .. i .. ": " .. tostring(err))
            end
        end
        -- A partition that is not assigned is a failure, not a raise.
        local ok, err, name = c:buffered("t", 0)
        assert.is_nil(ok)
        assert.are.equal("ENOENT: no such file or directory (t/0 is not assigned)", err)
        assert.are.equal("ENOENT", name)
        assert.are.equal("kafka consumer (open)", tostring(c))
        c:close()
        c:close()
        assert.are.equal("kafka consumer (closed)", tostring(c))
        assert.has_error(function() c:poll() end, "kafka consumer: used after close()")
        p:close()
        assert.has_error(function() p:flush() end, "kafka producer: used after close()")
    end)

    it("rejects librdkafka options it does not know", function()
        local c, err, name = core.kafka_consumer{brokers = "127.0.0.1:1", options = {["no.such"] = 1}}
        assert.is_nil(c)
        assert.are.equal("EINVAL", name)
        assert.truthy(err:find("no.such", 1, true), err)
    end)

    it("reports an unreachable broker through errors()", function()
        local c = assert(core.kafka_consumer{brokers = "127.0.0.1:1"})
        local errors = until_true("an error", function()
            c:poll()
            return c:errors()
        end)
        assert.truthy(errors[1]:find("127.0.0.1:1", 1, true) or errors[1]:find("BROKERS_DOWN", 1, true),
            errors[1])
        c:close()
    end)

    describe("against ds_kafka_broker", function()
        local addr, broker
        before_each(function() addr, broker = start_broker("rt:2") end)
        after_each(function() broker.stop() end)

        it("takes exactly the produced range, and replays it equal", function()
            local p = assert(core.kafka_producer{brokers = addr})
            for i = 0, 49 do
                assert.is_true(p:produce("rt", 0, i % 2 == 0 and ("k" .. i) or nil, "v" .. i))
            end
            assert.is_true(p:flush(10000))
            assert.is_nil(p:errors())

            local c = assert(core.kafka_consumer{brokers = addr})
            assert.are.equal(2, c:partitions("rt"))
            local _, err = c:partitions("nosuch")
            assert.truthy(err:find("nosuch", 1, true), err)
            assert.are.same({0, 0}, c:assign({
                {topic = "rt", partition = 0, offset = "earliest"},
                {topic = "rt", partition = 1, offset = "latest"},
            }))
            until_true("50 records buffered", function()
                c:poll()
                local _, upto = c:buffered("rt", 0)
                return upto == 50
            end)
            assert.are.same({0, 50}, {c:buffered("rt", 0)})
            assert.are.same({0, 0}, {c:buffered("rt", 1)})

            local keys, values, n = c:take("rt", 0, 10, 15)
            assert.are.equal(5, n)
            assert.are.same({"k10", "", "k12", "", "k14"}, keys)
            assert.are.same({"v10", "v11", "v12", "v13", "v14"}, values)
            -- Everything below 15 is freed; from moves to 15.
            assert.are.same({15, 50}, {c:buffered("rt", 0)})
            assert.are.same({{}, {}, 0}, {c:take("rt", 0, 0, 15)})

            local rk, rv, rn = c:read("rt", 0, 10, 15, 10000)
            assert.are.equal(5, rn)
            assert.are.same(keys, rk)
            assert.are.same(values, rv)
            assert.are.same({0, 50}, {c:watermarks("rt", 0, 10000)})

            -- Past the end, the read fails after its bound and says where.
            local none, rerr = c:read("rt", 0, 48, 60, 500)
            assert.is_nil(none)
            assert.truthy(rerr:find("rt/0: reading [48, 60) timed out after 500 ms at offset 50", 1, true), rerr)

            -- A partition that does not exist: the error names topic and partition.
            local ok, perr = p:produce("rt", 9, nil, "x")
            if ok then ok, perr = p:flush(10000) end
            assert.is_nil(ok)
            assert.truthy(perr:find("rt/9", 1, true), perr)

            assert.is_true(c:unassign({{topic = "rt", partition = 0}}))
            assert.is_nil((c:buffered("rt", 0)))
            assert.is_nil(c:errors())
            c:close()
            p:close()
        end)

        it("reports the broker going down and fetches again once it is back", function()
            local p = assert(core.kafka_producer{brokers = addr})
            for i = 0, 2 do assert.is_true(p:produce("rt", 0, nil, "v" .. i)) end
            assert.is_true(p:flush(10000))
            local c = assert(core.kafka_consumer{brokers = addr})
            assert.are.same({0}, c:assign({{topic = "rt", partition = 0, offset = 0}}))
            until_true("3 records", function()
                c:poll()
                return select(2, c:buffered("rt", 0)) == 3
            end)
            broker.signal("USR1")
            local errors = until_true("an error", function()
                c:poll()
                return c:errors()
            end)
            assert.truthy(errors[1]:find("127.0.0.1", 1, true), errors[1])
            broker.signal("USR2")
            for i = 3, 4 do assert.is_true(p:produce("rt", 0, nil, "v" .. i)) end
            assert.is_true(p:flush(30000))
            until_true("5 records", function()
                c:poll()
                return select(2, c:buffered("rt", 0)) == 5
            end)
            local _, values, n = c:take("rt", 0, 0, 5)
            assert.are.equal(5, n)
            assert.are.same({"v0", "v1", "v2", "v3", "v4"}, values)
            c:close()
            p:close()
        end)

        it("counts an existing topic as created", function()
            assert.is_true(core.kafka_create_topic(addr, "rt", 2, {["cleanup.policy"] = "compact"}, nil, 2000))
        end)

        it("delivers a group's partitions as events, assigned at the caller's offsets", function()
            local p = assert(core.kafka_producer{brokers = addr})
            for i = 0, 9 do assert.is_true(p:produce("rt", i % 2, "k" .. i, "v" .. i)) end
            assert.is_true(p:flush(10000))
            local c = assert(core.kafka_consumer{brokers = addr, group = "g", topics = {"rt"},
                options = test_options})
            local events = until_true("the group's assignment", function()
                c:poll()
                return c:events()
            end)
            assert.are.equal(1, #events)
            assert.are.equal("assigned", events[1].type)
            local tps = {}
            for i, tp in ipairs(events[1].partitions) do
                tps[i] = {topic = tp.topic, partition = tp.partition, offset = 2}
            end
            table.sort(tps, function(a, b) return a.partition < b.partition end)
            assert.are.same({{topic = "rt", partition = 0, offset = 2}, {topic = "rt", partition = 1, offset = 2}}, tps)
            assert.are.same({2, 2}, c:assign(tps))
            until_true("both partitions buffered", function()
                c:poll()
                return select(2, c:buffered("rt", 0)) == 5 and select(2, c:buffered("rt", 1)) == 5
            end)
            local keys, values, n = c:take("rt", 1, 2, 5)
            assert.are.equal(3, n)
            assert.are.same({"k5", "k7", "k9"}, keys)
            assert.are.same({"v5", "v7", "v9"}, values)

            assert.are.same({}, c:committed({{topic = "rt", partition = 1}}))
            assert.is_true(c:commit({{topic = "rt", partition = 1, offset = 5}}))
            until_true("the commit", function()
                c:poll()
                return (c:committed({{topic = "rt", partition = 1}}))[1] == 5
            end)
            c:close()
            p:close()
        end)
    end)
end)

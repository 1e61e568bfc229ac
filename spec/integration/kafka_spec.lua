-- kafkaStream and saveToKafka against a real Kafka protocol endpoint: the
-- test broker (librdkafka's mock cluster in a process of its own, see
-- spec/helpers/kafka.lua), one for the whole file.
local dstream = require("dstream")
local K = require("spec.helpers.kafka")
local wait = require("spec.helpers.wait")

local OPTS = K.CLIENT_OPTIONS

-- The words of a line, as an array.
local function split(line)
    local out = {}
    for w in line:gmatch("%S+") do out[#out + 1] = w end
    return out
end

-- A system-clock context with a listener recording receiver errors and
-- completed batches.
local function context(batch)
    local ssc = dstream.StreamingContext{batchInterval = batch or 0.1}
    local seen = {errors = {}, batches = 0}
    ssc:addStreamingListener{
        onReceiverError = function(e) seen.errors[#seen.errors + 1] = e end,
        onBatchCompleted = function() seen.batches = seen.batches + 1 end,
    }
    return ssc, seen
end

-- A stream's records gathered over batches: seen.records (values in order),
-- seen.n, seen.by_key.
local function gather(stream)
    local got = {records = {}, n = 0, ranges = {}, parts = {}}
    stream:foreachRDD(function(rdd)
        got.ranges[#got.ranges + 1] = rdd:offsetRanges()
        got.parts[#got.parts + 1] = {ends = rdd.ends, srcparts = rdd.srcparts}
        rdd:foreach(function(k, v)
            got.n = got.n + 1
            got.records[got.n] = {k, v}
        end)
    end)
    return got
end

describe("kafkaStream", function()
    local broker

    setup(function()
        broker = K.start_broker{"words:3", "ranges:3", "starting:2", "capped:2", "grouped:2", "pressed:2"}
    end)

    teardown(function()
        if broker then broker:stop() end
    end)

    it("counts the words of a topic with several partitions exactly", function()
        local topic = K.topic(broker, "words", 3)
        local vocab = {"apple", "pear", "fig", "plum", "kiwi", "lime", "date"}
        local expected, records, words = {}, {}, 0
        for i = 1, 600 do
            local line = {}
            for j = 1, 1 + i % 5 do
                local w = vocab[(i * 7 + j * 3) % #vocab + 1]
                line[j] = w
                expected[w] = (expected[w] or 0) + 1
                words = words + 1
            end
            records[i] = {"key" .. i % 11, table.concat(line, " ")}
        end
        K.produce(broker.brokers, topic, records)
        local ssc, seen = context()
        local counts, total = {}, 0
        ssc:kafkaStream{brokers = broker.brokers, topics = {topic}, startingOffsets = "earliest", options = OPTS}
            :values()
            :flatMap(split)
            :countByValue()
            :foreachRDD(function(rdd)
                rdd:foreach(function(w, n)
                    counts[w] = (counts[w] or 0) + n
                    total = total + n
                end)
            end)
        ssc:start()
        local done = wait.until_done(ssc, function() return total >= words end, 30)
        -- a few more batches: nothing is counted twice
        local after = seen.batches + 3
        wait.until_done(ssc, function() return seen.batches >= after end, 10)
        ssc:stop()
        assert.is_true(done, "counted " .. total .. " of " .. words .. " words")
        assert.are.same(expected, counts)
    end)

    it("gives offset ranges contiguous per partition, one RDD partition per Kafka partition", function()
        local topic = K.topic(broker, "ranges", 3)
        local records = {}
        for i = 1, 90 do records[i] = {"k" .. i, "v" .. i, i % 3} end
        local ssc = context()
        local got = gather(ssc:kafkaStream{brokers = broker.brokers, topics = {topic}, startingOffsets = "earliest",
            options = OPTS})
        ssc:start()
        -- produced while running, in three rounds
        for round = 1, 3 do
            local part = {}
            for i = 1, 30 do part[i] = records[(round - 1) * 30 + i] end
            K.produce(broker.brokers, topic, part)
            wait.until_done(ssc, function() return got.n >= round * 30 end, 20)
        end
        ssc:stop()
        assert.are.equal(90, got.n)
        local nexts = {[0] = 0, [1] = 0, [2] = 0}
        for b, ranges in ipairs(got.ranges) do
            assert.are.equal(3, #ranges)
            local parts = got.parts[b]
            assert.are.same({topic .. "/0", topic .. "/1", topic .. "/2"}, parts.srcparts)
            assert.are.equal(3, #parts.ends)
            local lo = 0
            for j, r in ipairs(ranges) do
                assert.are.equal(topic, r.topic)
                assert.are.equal(j - 1, r.partition)
                assert.are.equal(nexts[r.partition], r.fromOffset)
                assert.is_true(r.untilOffset >= r.fromOffset)
                -- each RDD partition holds exactly its range's records
                assert.are.equal(r.untilOffset - r.fromOffset, parts.ends[j] - lo)
                lo = parts.ends[j]
                nexts[r.partition] = r.untilOffset
            end
        end
        assert.are.same({[0] = 30, [1] = 30, [2] = 30}, nexts)
        assert.are.same(K.ends(broker.brokers, topic), nexts)
    end)

    it("starts at the end of the topic with startingOffsets latest (the default) and at its start with earliest",
        function()
        local topic = K.topic(broker, "starting", 2)
        K.produce(broker.brokers, topic, {{"a", "old1"}, {"b", "old2"}, {"c", "old3"}})
        local ssc = context()
        local latest = gather(ssc:kafkaStream{brokers = broker.brokers, topics = {topic}, options = OPTS})
        local earliest = gather(ssc:kafkaStream{brokers = broker.brokers, topics = topic,
            startingOffsets = "earliest", options = OPTS})
        ssc:start()
        K.produce(broker.brokers, topic, {{"d", "new1"}, {"e", "new2"}})
        wait.until_done(ssc, function() return latest.n >= 2 and earliest.n >= 5 end, 20)
        ssc:stop()
        local function values(got)
            local out = {}
            for i, r in ipairs(got.records) do out[i] = r[2] end
            table.sort(out)
            return out
        end
        assert.are.same({"new1", "new2"}, values(latest))
        assert.are.same({"new1", "new2", "old1", "old2", "old3"}, values(earliest))
    end)

    it("caps each batch's range per partition at maxRatePerPartition x the batch interval", function()
        local topic = K.topic(broker, "capped", 2)
        local records = {}
        for i = 1, 120 do records[i] = {"k", "v" .. i, i % 2} end
        K.produce(broker.brokers, topic, records)
        local ssc = context(0.1)
        local got = gather(ssc:kafkaStream{brokers = broker.brokers, topics = {topic}, startingOffsets = "earliest",
            maxRatePerPartition = 100, options = OPTS})
        ssc:start()
        wait.until_done(ssc, function() return got.n >= 120 end, 30)
        ssc:stop()
        assert.are.equal(120, got.n)
        local full = 0
        for _, ranges in ipairs(got.ranges) do
            for _, r in ipairs(ranges) do
                local size = r.untilOffset - r.fromOffset
                assert.is_true(size <= 10, "a range of " .. size .. " records")
                if size == 10 then full = full + 1 end
            end
        end
        assert.is_true(full >= 6, "batches at the cap: " .. full)
    end)

    it("with a groupId, reads the partitions the group assigns and commits its offsets after each batch",
        function()
        local topic = K.topic(broker, "grouped", 2)
        local group = {groupId = "spec-group", startingOffsets = "earliest", brokers = broker.brokers,
            topics = {topic}, options = {["session.timeout.ms"] = "6000", ["max.poll.interval.ms"] = "10000",
            ["heartbeat.interval.ms"] = "500", ["socket.timeout.ms"] = "5000"}}
        local records = {}
        for i = 1, 40 do records[i] = {"k" .. i, "v" .. i, i % 2} end
        K.produce(broker.brokers, topic, records)
        local ssc = context()
        local got = gather(ssc:kafkaStream(group))
        ssc:start()
        assert.is_true(wait.until_done(ssc, function() return got.n >= 40 end, 30), "read " .. got.n)
        ssc:stop()
        assert.are.equal(40, got.n)
        -- A new member of the group starts at the committed offsets, not at the earliest.
        K.produce(broker.brokers, topic, {{"new", "late1", 0}, {"new", "late2", 1}})
        local ssc2 = context()
        local got2 = gather(ssc2:kafkaStream(group))
        ssc2:start()
        wait.until_done(ssc2, function() return got2.n >= 2 end, 30)
        local batches = #got2.ranges + 3
        wait.until_done(ssc2, function() return #got2.ranges >= batches end, 10)
        ssc2:stop()
        local values = {}
        for i, r in ipairs(got2.records) do values[i] = r[2] end
        table.sort(values)
        assert.are.same({"late1", "late2"}, values)
    end)

    it("with backpressure, starts at initialRate split over the partitions", function()
        local topic = K.topic(broker, "pressed", 2)
        local records = {}
        for i = 1, 100 do records[i] = {"k", "v" .. i, i % 2} end
        K.produce(broker.brokers, topic, records)
        local ssc = dstream.StreamingContext{batchInterval = 0.1, backpressure = true, initialRate = 100}
        local rates = {}
        ssc:addStreamingListener{onBatchCompleted = function(info) rates[#rates + 1] = info.receiverRates end}
        local got = gather(ssc:kafkaStream{brokers = broker.brokers, topics = {topic}, startingOffsets = "earliest",
            options = OPTS})
        ssc:start()
        wait.until_done(ssc, function() return got.n >= 100 end, 30)
        ssc:stop()
        assert.are.equal(100, got.n)
        -- the first batch that took records took at most 100/s x 0.1 s
        for _, ranges in ipairs(got.ranges) do
            local n = 0
            for _, r in ipairs(ranges) do n = n + r.untilOffset - r.fromOffset end
            if n > 0 then
                assert.is_true(n <= 10, "the first batch took " .. n)
                break
            end
        end
        assert.are.equal(100, rates[1]["kafkaStream(" .. topic .. ")"])
    end)

    it("refuses bad arguments with errors that say what is wrong", function()
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
        local cases = {
            {nil, "argument #1 must be a table"},
            {{topics = {"t"}}, "brokers must be a non%-empty string"},
            {{brokers = "h:1"}, "topics must be a non%-empty array"},
            {{brokers = "h:1", topics = {1}}, "topics%[1%] must be a non%-empty string"},
            {{brokers = "h:1", topics = {"t"}, startingOffsets = "first"}, "startingOffsets must be \"earliest\" or"},
            {{brokers = "h:1", topics = {"t"}, maxRatePerPartition = 0}, "maxRatePerPartition must be a positive"},
            {{brokers = "h:1", topics = {"t"}, groupId = ""}, "groupId must be a non%-empty string"},
            {{brokers = "h:1", topics = {"t"}, options = {["fetch.min.bytes"] = {}}}, "options%[\"fetch.min.bytes\"%]"},
            {{brokers = "h:1", topics = {"t"}, topic = "t"}, "unknown option \"topic\" %(allowed: brokers, groupId"},
        }
        for _, case in ipairs(cases) do
            local ok, err = pcall(function() return ssc:kafkaStream(case[1]) end)
            assert.is_false(ok)
            assert.matches("kafkaStream: " .. case[2], err)
            assert.matches("kafka_spec%.lua:%d+", err)
        end
        local q = ssc:queueStream({})
        for _, case in ipairs({
            {nil, "argument #1 must be a table"},
            {{topic = "t"}, "brokers must be a non%-empty string"},
            {{brokers = "h:1"}, "topic must be a non%-empty string"},
            {{brokers = "h:1", topic = "t", topics = {}}, "unknown option \"topics\""},
        }) do
            local ok, err = pcall(function() return q:saveToKafka(case[1]) end)
            assert.is_false(ok)
            assert.matches("saveToKafka: " .. case[2], err)
            assert.matches("kafka_spec%.lua:%d+", err)
        end
        ssc:stop()
    end)

    it("shows in explain as an input naming its topics and group", function()
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
        ssc:kafkaStream{brokers = "h:1", topics = {"b", "a"}, groupId = "g"}:values():print()
        local text = require("dstream.explain").text(ssc)
        ssc:stop()
        assert.matches("#0 kafkaStream%(a,b, group g%)  pairs, every 1 s  %(input", text)
    end)

    it("says offsetRanges is for a kafkaStream's own batches", function()
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
        local err
        ssc:queueStream({{1}}):foreachRDD(function(rdd)
            local _
            _, err = pcall(rdd.offsetRanges, rdd)
        end)
        ssc:start()
        ssc:advance(1)
        ssc:stop()
        assert.matches("offsetRanges: this RDD is not a batch of a kafkaStream", err)
    end)

    it("keeps running while the broker is down, reports it, and resumes without losing or repeating a record",
        function()
        local down = K.start_broker{"outage:2"}
        local topic = K.topic(down, "outage", 2)
        local ok, err = pcall(function()
            local producer = assert(require("dstream.core").kafka_producer{brokers = down.brokers, options = OPTS})
            local function batch(from, to)
                local out = {}
                for i = from, to do out[#out + 1] = {"k" .. i % 5, tostring(i)} end
                return out
            end
            K.produce(down.brokers, topic, batch(1, 50), producer)
            local ssc, seen = context()
            local got = gather(ssc:kafkaStream{brokers = down.brokers, topics = {topic}, startingOffsets = "earliest",
                options = OPTS})
            ssc:start()
            assert.is_true(wait.until_done(ssc, function() return got.n >= 50 end, 20), "read before the outage")
            down:down()
            assert.is_true(wait.until_done(ssc, function() return #seen.errors > 0 end, 30), "no error reported")
            local batches = seen.batches
            assert.is_true(wait.until_done(ssc, function() return seen.batches >= batches + 5 end, 20),
                "batches stopped while the broker was down")
            down:up()
            K.produce(down.brokers, topic, batch(51, 100), producer)
            producer:close()
            assert.is_true(wait.until_done(ssc, function() return got.n >= 100 end, 60), "read after the outage")
            local after = seen.batches + 3
            wait.until_done(ssc, function() return seen.batches >= after end, 10)
            ssc:stop()
            local values = {}
            for i, r in ipairs(got.records) do values[i] = tonumber(r[2]) end
            table.sort(values)
            local want = {}
            for i = 1, 100 do want[i] = i end
            assert.are.same(want, values)
            assert.matches("^kafkaStream%(" .. topic:gsub("%-", "%%-"), seen.errors[1].source)
        end)
        down:stop()
        assert(ok, err)
    end)
end)

describe("saveToKafka", function()
    local broker

    setup(function()
        broker = K.start_broker{"out:2", "values:1", "rt-in:3", "rt-out:1", "never:1"}
    end)

    teardown(function()
        if broker then broker:stop() end
    end)

    it("writes every record of every batch to the topic: pairs as key and value, values with no key", function()
        local out = K.topic(broker, "out", 2)
        local values_out = K.topic(broker, "values", 1)
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
        local q = ssc:queueStream({{"a b a", "c"}, {}, {"b 12"}})
        local counts = q:flatMap(split):countByValue()
        counts:saveToKafka{brokers = broker.brokers, topic = out, options = OPTS}
        q:map(function(l) return #l end):saveToKafka{brokers = broker.brokers, topic = values_out, options = OPTS}
        ssc:start()
        ssc:advance(3)
        ssc:stop()
        local got = {}
        for _, m in ipairs(K.read(broker.brokers, out)) do got[#got + 1] = m[3] .. "=" .. m[4] end
        table.sort(got)
        assert.are.same({"12=1", "a=2", "b=1", "b=1", "c=1"}, got)
        local lens = {}
        for _, m in ipairs(K.read(broker.brokers, values_out)) do lens[#lens + 1] = m[3] .. "|" .. m[4] end
        assert.are.same({"|5", "|1", "|4"}, lens)
    end)

    it("round-trips a topic through kafkaStream, a map and saveToKafka", function()
        local input, output = K.topic(broker, "rt-in", 3), K.topic(broker, "rt-out", 1)
        local records = {}
        for i = 1, 200 do records[i] = {"k" .. i, "v" .. i} end
        K.produce(broker.brokers, input, records)
        local ssc = context()
        local n = 0
        local s = ssc:kafkaStream{brokers = broker.brokers, topics = {input}, startingOffsets = "earliest", options = OPTS}
        s:mapToPair(function(k, v) return v, k end):saveToKafka{brokers = broker.brokers, topic = output, options = OPTS}
        s:foreachRDD(function(rdd) n = n + rdd:count() end)
        ssc:start()
        wait.until_done(ssc, function() return n >= 200 end, 30)
        ssc:stop()
        local got = {}
        for _, m in ipairs(K.read(broker.brokers, output)) do got[#got + 1] = m[3] .. "=" .. m[4] end
        table.sort(got)
        local want = {}
        for i = 1, 200 do want[i] = "v" .. i .. "=k" .. i end
        table.sort(want)
        assert.are.same(want, got)
    end)

    it("fails the batch with an error naming the topic when a delivery fails", function()
        local down = K.start_broker{"lost:1"}
        local topic = K.topic(down, "lost", 1)
        down:down()
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
        ssc:queueStream({{"x", "y"}}):saveToKafka{brokers = down.brokers, topic = topic,
            options = {["message.timeout.ms"] = "1500", ["socket.timeout.ms"] = "1000"}}
        ssc:start()
        local ok, err = pcall(ssc.advance, ssc, 1)
        ssc:stop()
        down:stop()
        assert.is_false(ok)
        assert.matches("saveToKafka", err)
        assert.matches("1000 ms", err)
        assert.matches("delivery failed", err)
        assert.matches(topic, err, 1, true)
    end)

    it("fails the batch naming the stream and batch for a record that is not a string or number", function()
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
        ssc:queueStream({{}, {{1, 2}}}):name("tables")
            :saveToKafka{brokers = broker.brokers, topic = "never", options = OPTS}
        ssc:start()
        local ok, err = pcall(ssc.advance, ssc, 2)
        ssc:stop()
        assert.is_false(ok)
        assert.matches("stream tables, batch 2000 ms: record 1 has a table value", err, 1, true)
    end)
end)

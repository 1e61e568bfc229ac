-- StreamingContext: options, lifecycle, the manual clock, queueStream,
-- listeners.
local dstream = require "dstream"
local batches = require "helpers.batches"

local StreamingContext = dstream.StreamingContext

-- The message of the error fn(...) raises (fails the spec if it raises none).
local function error_of(fn, ...)
    local ok, err = pcall(fn, ...)
    assert.is_false(ok, "expected an error")
    return tostring(err)
end

describe("StreamingContext{...}", function()
    it("makes a context from a batch interval in seconds", function()
        local ssc = StreamingContext{batchInterval = 0.5, clock = "manual"}
        local out = ssc:queueStream({{1}, {2}}):collectBatches()
        local times = {}
        ssc:queueStream({}):foreachRDD(function(_, t) times[#times + 1] = t end)
        ssc:start()
        ssc:advance(2)
        assert.same({{1}, {2}}, out)
        assert.same({500, 1000}, times)
    end)

    it("takes durations from dstream.ms, seconds, minutes and hours", function()
        assert.equal(0.1, dstream.ms(100))
        assert.equal(3, dstream.seconds(3))
        assert.equal(120, dstream.minutes(2))
        assert.equal(7200, dstream.hours(2))
        local ssc = StreamingContext{batchInterval = dstream.ms(250), clock = "manual"}
        assert.matches("batch 250 ms", tostring(ssc), 1, true)
    end)

    it("requires batchInterval", function()
        assert.matches("StreamingContext: batchInterval (seconds) is required",
            error_of(StreamingContext, {clock = "manual"}), 1, true)
    end)

    it("rejects a batchInterval that is not a positive number", function()
        assert.matches("StreamingContext: batchInterval must be positive, got -1 seconds",
            error_of(StreamingContext, {batchInterval = -1}), 1, true)
        assert.matches("StreamingContext: batchInterval must be positive, got 0 seconds",
            error_of(StreamingContext, {batchInterval = 0}), 1, true)
        assert.matches("StreamingContext: batchInterval must be a number of seconds, got string",
            error_of(StreamingContext, {batchInterval = "1"}), 1, true)
        assert.matches("StreamingContext: batchInterval must be a number of seconds, got NaN",
            error_of(StreamingContext, {batchInterval = 0 / 0}), 1, true)
    end)

    it("rejects a clock other than \"system\" and \"manual\"", function()
        assert.matches("StreamingContext: clock must be \"system\" or \"manual\", got wall",
            error_of(StreamingContext, {batchInterval = 1, clock = "wall"}), 1, true)
    end)

    it("rejects an unknown option, listing the allowed ones", function()
        local err = error_of(StreamingContext, {batchInterval = 1, batchIntervall = 2})
        assert.matches("StreamingContext: unknown option \"batchIntervall\"", err, 1, true)
        for _, name in ipairs({"batchInterval", "clock", "blockInterval", "checkpoint", "backpressure",
                "initialRate", "maxRate", "wal", "ui", "name"}) do
            assert.matches(name, err:match("allowed: (.*)$"), 1, true)
        end
    end)

    it("rejects options that are not a table", function()
        assert.matches("StreamingContext: expects a table of options",
            error_of(StreamingContext, 1), 1, true)
    end)

    it("raises at the caller's line", function()
        local ok, err = pcall(function() local ssc = StreamingContext{} return ssc end)
        assert.is_false(ok)
        assert.matches("context_spec.lua:%d+: StreamingContext", err)
    end)
end)

describe("StreamingContext:start", function()
    it("raises when the graph has no output operation, saying what to add", function()
        local ssc = batches.context()
        ssc:queueStream({}):map(tostring)
        local err = error_of(ssc.start, ssc)
        assert.matches("start: the graph has no output operation", err, 1, true)
        for _, op in ipairs({"print", "foreachRDD", "saveAsTextFiles", "collectBatches"}) do
            assert.matches(op, err, 1, true)
        end
    end)

    it("raises when called twice", function()
        local ssc = batches.context()
        ssc:queueStream({}):print()
        ssc:start()
        assert.matches("start: the context is already started", error_of(ssc.start, ssc), 1, true)
    end)

    it("cannot restart a stopped context, but a new context can be made at once", function()
        local ssc = batches.context()
        ssc:queueStream({}):print()
        ssc:start()
        ssc:stop()
        assert.matches("start: a stopped context cannot be restarted; make a new StreamingContext",
            error_of(ssc.start, ssc), 1, true)
        local again = batches.context()
        local out = again:queueStream({{"x"}}):collectBatches()
        again:start()
        again:advance(1)
        assert.same({{"x"}}, out)
    end)
end)

describe("several StreamingContexts", function()
    it("live side by side in one Lua state, each with its own clock and graph", function()
        local a = batches.context()
        local b = batches.context({batchInterval = 2})
        local out_a = a:queueStream({{1}, {2}, {3}}):map(function(x) return x * 10 end):collectBatches()
        local out_b = b:queueStream({{"p"}, {"q"}}):collectBatches()
        local times_b = {}
        b:queueStream({}):foreachRDD(function(_, t) times_b[#times_b + 1] = t end)
        a:start()
        b:start()
        a:advance(1)
        b:advance(2)
        a:advance(2)
        assert.same({{10}, {20}, {30}}, out_a)
        assert.same({{"p"}, {"q"}}, out_b)
        assert.same({2000, 4000}, times_b)
        b:stop()
        a:advance(1)
        assert.same({{10}, {20}, {30}, {}}, out_a)
    end)
end)

describe("StreamingContext:advance", function()
    it("runs every batch that falls due, in order, before returning", function()
        local ssc = batches.context()
        local times = {}
        ssc:queueStream({}):foreachRDD(function(_, t) times[#times + 1] = t end)
        ssc:start()
        ssc:advance(3)
        assert.same({1000, 2000, 3000}, times)
        ssc:advance(0)
        assert.same({1000, 2000, 3000}, times)
        ssc:advance()
        assert.same({1000, 2000, 3000, 4000}, times)
    end)

    it("runs the batches after a failed one, ends at n intervals, then re-raises the failure", function()
        local ssc = batches.context()
        local seen = {}
        ssc:queueStream({{1}, {"boom"}, {3}, {4}}):foreachRDD(function(rdd, t)
            local x = rdd:first()
            if x == "boom" then error("bad record") end
            seen[#seen + 1] = t .. ":" .. x
        end)
        ssc:start()
        local err = error_of(ssc.advance, ssc, 3)
        assert.matches("bad record", err, 1, true)
        assert.matches("failed at batch time 2000 ms", err, 1, true)
        -- The results at n = 3 are all there, and the clock stands at 3 intervals.
        assert.same({"1000:1", "3000:3"}, seen)
        ssc:advance(1)
        assert.same({"1000:1", "3000:3", "4000:4"}, seen)
        ssc:stop()
    end)

    it("says how many later batches failed too when several fail", function()
        local ssc = batches.context()
        ssc:queueStream({{"a"}, {"b"}, {"c"}}):foreachRDD(function(rdd)
            error("failed on " .. rdd:first())
        end)
        ssc:start()
        local err = error_of(ssc.advance, ssc, 3)
        assert.matches("failed on a", err, 1, true)
        assert.matches("(2 later batches failed too)", err, 1, true)
        ssc:stop()
    end)

    it("raises on a context with the system clock", function()
        local ssc = StreamingContext{batchInterval = 1}
        ssc:queueStream({}):collectBatches()
        ssc:start()
        local err = error_of(ssc.advance, ssc, 1)
        ssc:stop()
        assert.matches("advance: only a context with clock = \"manual\" can be advanced by hand", err, 1, true)
    end)

    it("raises before start", function()
        local ssc = batches.context()
        ssc:queueStream({}):print()
        assert.matches("advance: the context is initialized; call start() first", error_of(ssc.advance, ssc, 1), 1, true)
    end)

    it("raises for a count that is not a whole number >= 0", function()
        local ssc = batches.context()
        ssc:queueStream({}):print()
        ssc:start()
        for _, bad in ipairs({-1, 1.5, "2"}) do
            assert.matches("advance: argument #1 must be a whole number of batch intervals >= 0",
                error_of(ssc.advance, ssc, bad), 1, true)
        end
    end)

    it("raises after stop", function()
        local ssc = batches.context()
        ssc:queueStream({}):print()
        ssc:start()
        ssc:stop()
        assert.matches("advance: the context is stopped", error_of(ssc.advance, ssc, 1), 1, true)
    end)
end)

describe("StreamingContext:queueStream", function()
    it("takes one entry per batch by default, then gives empty batches", function()
        local out = batches.run({{1, 2}, {}, {3}}, function(s) return s end, 5)
        assert.same({{1, 2}, {}, {3}, {}, {}}, out)
    end)

    it("takes every entry in one batch when oneAtATime is false", function()
        local ssc = batches.context()
        local queue = {{1, 2}, {3}, {4}}
        local out = ssc:queueStream(queue, false):collectBatches()
        ssc:start()
        ssc:advance(1)
        queue[#queue + 1] = {5}
        queue[#queue + 1] = {6}
        ssc:advance(2)
        assert.same({{1, 2, 3, 4}, {5, 6}, {}}, out)
        assert.same({}, queue)
    end)

    it("uses the default array when the queue is empty", function()
        local ssc = batches.context()
        local out = ssc:queueStream({{1}}, true, {"idle"}):collectBatches()
        ssc:start()
        ssc:advance(3)
        assert.same({{1}, {"idle"}, {"idle"}}, out)
    end)

    it("sees entries the user appends while it runs", function()
        local ssc = batches.context()
        local queue = {}
        local out = ssc:queueStream(queue):collectBatches()
        ssc:start()
        ssc:advance(1)
        queue[#queue + 1] = {"a"}
        queue[#queue + 1] = {"b"}
        ssc:advance(1)
        queue[#queue + 1] = {"c"}
        ssc:advance(2)
        assert.same({{}, {"a"}, {"b"}, {"c"}}, out)
        assert.same({}, queue)
    end)

    it("takes the front entry at every batch time even when no output needs the stream", function()
        local ssc = batches.context()
        local unused = {{1}, {2}, {3}}
        ssc:queueStream(unused)
        ssc:queueStream({}):collectBatches()
        ssc:start()
        ssc:advance(2)
        assert.same({{3}}, unused)
    end)

    it("raises for a queue that is not a table and a default that is not an array", function()
        local ssc = batches.context()
        assert.matches("queueStream: argument #1 (queue) must be a table, got string",
            error_of(ssc.queueStream, ssc, "q"), 1, true)
        assert.matches("queueStream: argument #3 (default) must be an array of records",
            error_of(ssc.queueStream, ssc, {}, true, 5), 1, true)
    end)
end)

describe("StreamingContext:addStreamingListener", function()
    it("tells the listener about each batch: submitted, started, completed", function()
        local ssc = batches.context()
        ssc:queueStream({{1, 2, 3}, {}}):collectBatches()
        local events = {}
        ssc:addStreamingListener{
            onBatchSubmitted = function(info) events[#events + 1] = {"submitted", info.batchTime, info.numRecords} end,
            onBatchStarted = function(info) events[#events + 1] = {"started", info.batchTime, info.numRecords} end,
            onBatchCompleted = function(info) events[#events + 1] = {"completed", info.batchTime, info.numRecords} end,
        }
        ssc:start()
        ssc:advance(2)
        assert.same({
            {"submitted", 1000, 3}, {"started", 1000, 3}, {"completed", 1000, 3},
            {"submitted", 2000, 0}, {"started", 2000, 0}, {"completed", 2000, 0},
        }, events)
    end)

    it("gives the completed batch's times and delays in ms", function()
        local ssc = batches.context()
        ssc:queueStream({{"a"}}):collectBatches()
        local info
        ssc:addStreamingListener{onBatchCompleted = function(i) info = i end}
        ssc:start()
        ssc:advance(1)
        assert.equal(1000, info.batchTime)
        assert.equal(1, info.numRecords)
        for _, field in ipairs({"submissionTime", "processingStartTime", "processingEndTime",
                "schedulingDelay", "processingDelay", "totalDelay"}) do
            assert.is_number(info[field], field)
        end
        assert.is_true(info.submissionTime <= info.processingStartTime)
        assert.is_true(info.processingStartTime <= info.processingEndTime)
        assert.equal(info.processingStartTime - info.batchTime, info.schedulingDelay)
        assert.equal(info.processingEndTime - info.processingStartTime, info.processingDelay)
        assert.equal(info.schedulingDelay + info.processingDelay, info.totalDelay)
    end)

    it("calls only the callbacks the listener has", function()
        local ssc = batches.context()
        ssc:queueStream({}):collectBatches()
        local completed = 0
        ssc:addStreamingListener{onBatchCompleted = function() completed = completed + 1 end}
        ssc:start()
        ssc:advance(2)
        assert.equal(2, completed)
    end)

    it("raises for a listener that is not a table", function()
        local ssc = batches.context()
        assert.matches("addStreamingListener: argument #1 (listener) must be a table, got function",
            error_of(ssc.addStreamingListener, ssc, print), 1, true)
    end)
end)

describe("StreamingContext:remember", function()
    it("accepts a duration before start", function()
        local ssc = batches.context()
        ssc:remember(60)
        local out = ssc:queueStream({{1}, {2}}):collectBatches()
        ssc:start()
        ssc:advance(2)
        assert.same({{1}, {2}}, out)
    end)

    it("raises for a duration that is not positive", function()
        local ssc = batches.context()
        assert.matches("remember: duration must be positive", error_of(ssc.remember, ssc, -1), 1, true)
        assert.matches("remember: duration must be a number of seconds", error_of(ssc.remember, ssc, "1m"), 1, true)
    end)

    it("raises once the context has started", function()
        local ssc = batches.context()
        ssc:queueStream({}):print()
        ssc:start()
        assert.matches("remember: cannot add to the graph of a context that is active",
            error_of(ssc.remember, ssc, 10), 1, true)
    end)
end)

describe("tostring(ssc)", function()
    it("names the context, its batch interval, clock, graph and state", function()
        local ssc = StreamingContext{batchInterval = 2, clock = "manual", name = "clicks"}
        ssc:queueStream({}):map(tostring):print()
        local before = tostring(ssc)
        assert.matches("clicks", before, 1, true)
        assert.matches("batch 2 s", before, 1, true)
        assert.matches("manual clock", before, 1, true)
        assert.matches("2 streams", before, 1, true)
        assert.matches("1 output", before, 1, true)
        assert.matches("initialized", before, 1, true)
        ssc:start()
        assert.matches("active", tostring(ssc), 1, true)
        ssc:stop()
        assert.matches("stopped", tostring(ssc), 1, true)
    end)
end)

describe("kafkaStream's arguments", function()
    it("raise a clear error at the user's call", function()

        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
        local ok, err = pcall(function() return ssc:kafkaStream{brokers = "localhost:9092", topics = {}} end)
        assert.is_false(ok)
        assert.matches("kafkaStream: topics must be a non%-empty array", err)
        assert.matches("context_spec%.lua:%d+", err)
    end)
end)

describe("dstream.ms", function()
    it("gives the double nearest n / 1000", function()

        assert.are.equal(0.1, dstream.ms(100))
        for n = 1, 5000 do assert.are.equal(n / 1000, dstream.ms(n)) end
        assert.are.equal(90, dstream.minutes(1.5))
        assert.are.equal(7200, dstream.hours(2))
        assert.has_error(function() dstream.ms("5") end)
    end)
end)

describe("StreamingContext:stop", function()
    -- A receiver handing out `per_poll` numbered records at each poll.
    local function numbers(per_poll)
        local r = {next = 1}
        function r.start() end
        function r.stop() end
        function r:poll()
            local out = {}
            for i = 1, per_poll do out[i] = self.next + i - 1 end
            self.next = self.next + per_poll
            return out
        end
        return r
    end

    it("gracefully, runs the batches a windowed output needs to see the last records", function()
        local ssc = batches.context()
        local r = numbers(5)
        local lines = ssc:receiverStream(r)
        local windowed = lines:window(4, 4):count():collectBatches()
        local plain = lines:count():collectBatches()
        ssc:start()
        ssc:advance(2) -- records in the batches at 1000 and 2000; the slide ends at 4000
        ssc:stop{graceful = true}
        assert.same({{10}}, windowed)
        local total = 0
        for _, b in ipairs(plain) do total = total + b[1] end
        assert.are.equal(r.next - 1, total)
    end)

    it("gracefully, runs no batch beyond the slide the last records fall in", function()
        local ssc = batches.context()
        local times = {}
        local lines = ssc:receiverStream(numbers(1))
        lines:window(2, 2):foreachRDD(function(_, t) times[#times + 1] = t end)
        ssc:start()
        ssc:advance(2)
        ssc:stop{graceful = true}
        -- 2000 ran in advance; the records polled for stop go to 3000, seen at 4000.
        assert.same({2000, 4000}, times)
    end)
end)

describe("StreamingContext:stop closing the engine", function()
    local line_server = require "spec.helpers.line_server"

    it("closes the receivers' sockets and the engine for real", function()
        local server = line_server.start{lines = {"a", "b"}, mode = "hold"}
        local ssc = StreamingContext{batchInterval = 1, clock = "manual"}
        ssc:socketTextStream(server.host, server.port):foreachRDD(function() end)
        ssc:start()
        ssc:advance(1)
        ssc:stop()
        assert.matches("(closed)", tostring(ssc.engine), 1, true)
        server:close()
    end)

    it("closes the engine of a context stopped before start()", function()
        local ssc = StreamingContext{batchInterval = 1, clock = "manual"}
        ssc:queueStream({}):print()
        ssc:stop()
        assert.matches("(closed)", tostring(ssc.engine), 1, true)
    end)
end)

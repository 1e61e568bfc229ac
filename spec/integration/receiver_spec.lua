-- ssc:receiverStream with receivers written in Lua, the way a user writes
-- one: the engine calls start, poll and stop; what poll returns becomes the
-- batch. Under the manual clock each advance(1) polls before the batch
-- takes its records, so a batch holds exactly what the polls since the
-- previous batch returned.
local dstream = require("dstream")
local wait = require("spec.helpers.wait")

-- A receiver that hands out numbered records, `per_poll` at a time, and logs
-- every call it gets.
local function counting_receiver(name, per_poll)
    local r = {name = name, calls = {}, polled = {}, maxes = {}, next = 1}
    function r:start(ctx)
        self.calls[#self.calls + 1] = "start"
        self.ctx = ctx
    end
    function r:poll(ctx, max)
        self.calls[#self.calls + 1] = "poll"
        self.maxes[#self.maxes + 1] = max
        assert(ctx == self.ctx, "poll got another ctx than start")
        local out = {}
        for _ = 1, math.min(per_poll or 1, max) do
            out[#out + 1] = string.format("%s-%d", self.name, self.next)
            self.polled[#self.polled + 1] = out[#out]
            self.next = self.next + 1
        end
        return out
    end
    function r:stop()
        self.calls[#self.calls + 1] = "stop"
    end
    return r
end

local function manual(opts)
    local o = {batchInterval = 1, clock = "manual"}
    for k, v in pairs(opts or {}) do o[k] = v end
    local ssc = dstream.StreamingContext(o)
    local errors = {}
    ssc:addStreamingListener{onReceiverError = function(err) errors[#errors + 1] = err end}
    return ssc, errors
end

local function count(calls, what)
    local n = 0
    for _, c in ipairs(calls) do if c == what then n = n + 1 end end
    return n
end

describe("ssc:receiverStream", function()
    it("calls start once when the context starts, then polls, then stop at ssc:stop()", function()
        local r = counting_receiver("ticks")
        local ssc = manual()
        ssc:receiverStream(r):foreachRDD(function() end)
        assert.are.same({}, r.calls)
        ssc:start()
        assert.are.same({"start"}, r.calls)
        assert.are.equal(1, r.ctx.batchInterval)
        ssc:advance(3)
        assert.is_true(count(r.calls, "poll") >= 3)
        assert.are.equal(0, count(r.calls, "stop"))
        ssc:stop()
        assert.are.equal("stop", r.calls[#r.calls])
        assert.are.equal(1, count(r.calls, "start"))
        assert.are.equal(1, count(r.calls, "stop"))
    end)

    it("makes the records poll returns the records of the next batch, none lost or repeated", function()
        local r = counting_receiver("rec", 3)
        local ssc = manual()
        local out = ssc:receiverStream(r):collectBatches()
        ssc:start()
        local expected = {}
        for i = 1, 4 do
            local before = #r.polled
            ssc:advance(1)
            local batch = {}
            for j = before + 1, #r.polled do batch[#batch + 1] = r.polled[j] end
            assert.is_true(#batch >= 3, "no poll before batch " .. i)
            expected[i] = batch
        end
        ssc:stop()
        assert.are.same(expected, out)
    end)

    it("hands poll the rate limit's share as max when maxRate is set", function()
        -- 50 records/s per receiver; a manual clock polls once per 1 s batch:
        -- at most 50 a poll, so no batch holds more than a second's worth.
        local capped = counting_receiver("capped", 1000)
        local ssc = manual{maxRate = 50, blockInterval = 0.2}
        local out = ssc:receiverStream(capped):collectBatches()
        ssc:start()
        ssc:advance(2)
        ssc:stop()
        assert.are.equal(2, #capped.maxes)
        for _, max in ipairs(capped.maxes) do assert.are.equal(50, max) end
        assert.are.same({50, 50}, {#out[1], #out[2]})
        -- Without maxRate, max is larger than that share.
        local free = counting_receiver("free", 1)
        local ssc2 = manual{blockInterval = 0.2}
        ssc2:receiverStream(free):foreachRDD(function() end)
        ssc2:start()
        ssc2:advance(1)
        ssc2:stop()
        assert.is_true(free.maxes[1] > 50)
    end)

    it("passes ctx:reportError messages to onReceiverError, naming the receiver", function()
        local r = counting_receiver("sensor")
        local inner_poll = r.poll
        function r:poll(ctx, max)
            ctx:reportError("sensor offline for a moment")
            return inner_poll(self, ctx, max)
        end
        local ssc, errors = manual()
        local out = ssc:receiverStream(r):collectBatches()
        ssc:start()
        ssc:advance(1)
        ssc:stop()
        assert.is_true(#errors >= 1)
        assert.are.equal("sensor offline for a moment", errors[1].message)
        assert.matches("sensor", errors[1].source, 1, true)
        assert.matches("receiverStream", errors[1].source, 1, true)
        assert.are.equal("number", type(errors[1].time))
        assert.is_true(#out[1] >= 1)
    end)

    it("reports a poll that raises and keeps polling", function()
        local r = counting_receiver("flaky")
        local inner_poll = r.poll
        local polls = 0
        function r:poll(ctx, max)
            polls = polls + 1
            if polls == 1 then error("device not ready") end
            return inner_poll(self, ctx, max)
        end
        local ssc, errors = manual()
        local out = ssc:receiverStream(r):collectBatches()
        ssc:start()
        ssc:advance(2)
        ssc:stop()
        assert.are.equal(1, #errors)
        assert.matches("flaky", errors[1].source, 1, true)
        assert.matches("device not ready", errors[1].message, 1, true)
        local got = {}
        for _, batch in ipairs(out) do for _, x in ipairs(batch) do got[#got + 1] = x end end
        assert.are.same(r.polled, got)
        assert.is_true(#got >= 1)
    end)

    it("reports a start that raises, and still polls and stops the receiver", function()
        local r = counting_receiver("cold")
        function r:start(ctx)
            self.ctx = ctx
            error("warming up failed")
        end
        local ssc, errors = manual()
        local out = ssc:receiverStream(r):collectBatches()
        ssc:start()
        ssc:advance(1)
        ssc:stop()
        assert.are.equal(1, #errors)
        assert.matches("cold", errors[1].source, 1, true)
        assert.matches("warming up failed", errors[1].message, 1, true)
        assert.are.same({r.polled}, out)
        assert.are.equal("stop", r.calls[#r.calls])
    end)

    it("reports a poll that returns something other than an array", function()
        local r = counting_receiver("odd")
        function r:poll() return "not an array" end
        local ssc, errors = manual()
        local out = ssc:receiverStream(r):collectBatches()
        ssc:start()
        ssc:advance(1)
        ssc:stop()
        assert.are.same({{}}, out)
        assert.is_true(#errors >= 1)
        assert.matches("odd", errors[1].source, 1, true)
        assert.matches("string", errors[1].message, 1, true)
    end)

    it("accepts any record but nil, tables included", function()
        local r = counting_receiver("mixed")
        local sent = false
        function r:poll()
            if sent then return {} end
            sent = true
            return {1, "two", true, {x = 3}, 4.5}
        end
        local ssc = manual()
        local out = ssc:receiverStream(r):collectBatches()
        ssc:start()
        ssc:advance(2)
        ssc:stop()
        assert.are.same({{1, "two", true, {x = 3}, 4.5}, {}}, out)
    end)

    it("polls and batches a receiver under the system clock", function()
        local r = counting_receiver("live", 2)
        local ssc = dstream.StreamingContext{batchInterval = 0.05}
        local got = {}
        ssc:receiverStream(r):foreachRDD(function(rdd)
            for _, x in ipairs(rdd:collect()) do got[#got + 1] = x end
        end)
        ssc:start()
        assert.is_true(wait.until_done(ssc, function() return #got >= 20 end))
        ssc:stop{graceful = true}
        -- Every record polled reached a batch, in order.
        assert.are.same(r.polled, got)
        assert.are.equal("stop", r.calls[#r.calls])
    end)

    it("says how many polled records an ungraceful stop dropped, and drops none when graceful", function()
        for _, graceful in ipairs({false, true}) do
            local r = counting_receiver("drop", 2)
            -- Batch times are multiples of the interval: the first one is
            -- almost surely not within the polls below.
            local ssc = dstream.StreamingContext{batchInterval = 3600, blockInterval = 0.01}
            local errors, processed = {}, 0
            ssc:addStreamingListener{onReceiverError = function(err) errors[#errors + 1] = err end}
            ssc:receiverStream(r):foreachRDD(function(rdd) processed = processed + rdd:count() end)
            ssc:start()
            assert.is_true(wait.until_done(ssc, function() return #r.polled >= 6 end))
            ssc:stop{graceful = graceful}
            if graceful then
                assert.are.equal(#r.polled, processed)
                assert.are.same({}, errors)
            else
                assert.are.equal(1, #errors)
                assert.are.equal("receiverStream(drop)", errors[1].source)
                assert.matches(string.format("stopped without finishing: %d records received and not "
                    .. "processed were dropped (stop{graceful = true} processes them)",
                    #r.polled - processed), errors[1].message, 1, true)
            end
        end
    end)

    it("raises at receiverStream() when the receiver lacks a method, naming it", function()
        local ssc = manual()
        for _, missing in ipairs({"start", "poll", "stop"}) do
            local r = counting_receiver("partial")
            r[missing] = nil
            local ok, err = pcall(ssc.receiverStream, ssc, r)
            assert.is_false(ok)
            assert.matches("receiverStream: the receiver has no " .. missing .. " method", err, 1, true)
        end
        local ok, err = pcall(ssc.receiverStream, ssc, "receiver")
        assert.is_false(ok)
        assert.matches("receiverStream: argument #1 must be a receiver table", err, 1, true)
        ssc:stop()
    end)
end)

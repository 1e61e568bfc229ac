-- Rate control under the manual clock: maxRate, initialRate and
-- backpressure (Spark's PID estimator) on a custom receiver that always has
-- more records than it is asked for. A manual clock measures no processing
-- time, so a synthetic cost model (an engine observer placed before the
-- rate control's) gives each batch the processing and scheduling delay a
-- pipeline costing FIXED_MS a batch plus PER_RECORD_MS a record would have.
local dstream = require("dstream")
local core = require("dstream.core")

local FIXED_MS, PER_RECORD_MS = 50, 0.5
-- The rate at which such a batch of 1 s takes exactly 1 s.
local CAPACITY = (1000 - FIXED_MS) / PER_RECORD_MS
local SOURCE = "receiverStream(flood)"

-- A receiver that returns as many records as it is asked for.
local function flood()
    local r = {name = "flood", maxes = {}, n = 0}
    function r.start() end
    function r.poll(_, _, max)
        r.maxes[#r.maxes + 1] = max
        local out = {}
        for i = 1, max do out[i] = r.n + i end
        r.n = r.n + max
        return out
    end
    function r.stop() end
    return r
end

-- The cost model: batches run one after another from their due time.
local function cost_model(batch_ms)
    local last_end = 0
    return function(info, t)
        local start = math.max(t, last_end)
        local proc = math.ceil(FIXED_MS + PER_RECORD_MS * info.numRecords)
        last_end = start + proc
        info.processingStartTime, info.processingEndTime = start, last_end
        info.schedulingDelay, info.processingDelay = start - t, proc
        info.totalDelay = last_end - t
        assert(batch_ms)
    end
end

-- Runs `batches` batches of a flood receiver; returns the infos the
-- listener saw and the receiver.
local function run(opts, batches)
    local o = {batchInterval = 1, clock = "manual"}
    for k, v in pairs(opts) do o[k] = v end
    local ssc = dstream.StreamingContext(o)
    local r = flood()
    local infos = {}
    ssc:receiverStream(r):foreachRDD(function() end)
    ssc:addStreamingListener{onBatchCompleted = function(info) infos[#infos + 1] = info end}
    ssc:start()
    table.insert(ssc.observers, 1, cost_model(1000))
    ssc:advance(batches)
    ssc:stop()
    return infos, r
end

-- Direction changes of a sequence larger than `tolerance` of its last value.
local function turns(xs, tolerance)
    local n = 0
    for i = 3, #xs do
        local a, b = xs[i - 1] - xs[i - 2], xs[i] - xs[i - 1]
        if a * b < 0 and math.abs(b) > tolerance * xs[#xs] then n = n + 1 end
    end
    return n
end

describe("backpressure under the manual clock", function()
    it("caps the first batch at the default rate when initialRate is not set", function()
        local infos = run({backpressure = true}, 1)
        assert.are.equal(1000, infos[1].numRecords) -- 1 s at DEFAULT_INITIAL_RATE
        assert.are.equal(1000, require("dstream.rate").DEFAULT_INITIAL_RATE)
        assert.are.same({[SOURCE] = 1000}, infos[1].receiverRates)
        assert.is_nil(infos[1].rateEstimate) -- the first batch only measures
    end)

    it("caps the first batch at initialRate", function()
        local infos = run({backpressure = true, initialRate = 300}, 2)
        assert.are.same({300, 300}, {infos[1].numRecords, infos[2].numRecords})
    end)

    it("settles at the pipeline's capacity without oscillating, and says so in info", function()
        local infos, r = run({backpressure = true}, 40)
        local counts, rates = {}, {}
        for i, info in ipairs(infos) do
            counts[i] = info.numRecords
            rates[i] = info.receiverRates[SOURCE]
            -- the receiver is asked for what the rate allows, never more
            assert.are.equal(r.maxes[i], info.numRecords)
            if i >= 2 then
                assert.is_number(info.rateEstimate)
                assert.are.equal(info.rateEstimate, rates[i])
            end
        end
        assert.are.equal(0, turns(rates, 0.01))
        assert.are.equal(0, turns(counts, 0.01))
        for i = 20, 40 do
            assert.is_true(math.abs(rates[i] - CAPACITY) < 0.05 * CAPACITY,
                "batch " .. i .. ": rate " .. rates[i] .. ", capacity " .. CAPACITY)
            assert.is_true(infos[i].schedulingDelay < 1000)
            assert.is_true(infos[i].processingDelay <= 1.2 * 1000)
        end
    end)

    it("never lets the estimate past maxRate", function()
        local infos = run({backpressure = true, maxRate = 700}, 10)
        for _, info in ipairs(infos) do
            assert.is_true(info.numRecords <= 700)
            assert.is_true(info.receiverRates[SOURCE] <= 700)
        end
        assert.is_true(infos[10].rateEstimate > 700) -- the estimate itself is not capped
        assert.are.equal(700, infos[10].numRecords)
    end)

    it("caps every batch at maxRate without backpressure, and reports no estimate", function()
        local infos = run({maxRate = 250}, 3)
        for i = 1, 3 do
            assert.are.equal(250, infos[i].numRecords)
            assert.are.same({[SOURCE] = 250}, infos[i].receiverRates)
            assert.is_nil(infos[i].rateEstimate)
        end
    end)

    it("reports an empty receiverRates when nothing is limited", function()
        local infos = run({}, 1)
        assert.are.same({}, infos[1].receiverRates)
        assert.is_nil(infos[1].rateEstimate)
    end)

    it("checks its options", function()
        local function err_of(opts)
            opts.batchInterval = 1
            local ok, err = pcall(dstream.StreamingContext, opts)
            assert.is_false(ok)
            return err
        end
        assert.matches("backpressure must be true or false", err_of{backpressure = "yes"})
        assert.matches("initialRate must be a positive number", err_of{backpressure = true, initialRate = 0})
        assert.matches("initialRate must be a positive number", err_of{backpressure = true, initialRate = "5"})
        assert.matches("needs backpressure = true; for a fixed cap use maxRate", err_of{initialRate = 100})
    end)
end)

describe("Spark's PID estimator in core", function()
    it("follows Spark's formula: the first batch measures, later ones estimate", function()
        local pid = core.pid_new(1000)
        assert.is_nil(pid:compute(1000, 1000, 500, 0))
        -- processing rate 3000, error 2000 - 3000, historical error 500 * 3000 / 1000
        assert.are.equal(2700, pid:compute(2000, 3000, 1000, 500))
        assert.is_nil(pid:compute(3000, 0, 1000, 0)) -- no records: nothing learnt
        assert.are.equal(100, pid:compute(4000, 1000, 1000, 1e6)) -- never below 100/s
        local latest, updates = pid:latest()
        assert.are.same({100, 2}, {latest, updates})
    end)

    it("grants a token bucket's rate, no more", function()
        local b = core.rate_new(100, 1000, 0)
        assert.are.equal(0, b:available(0))
        assert.are.equal(50, b:available(500))
        b:spend(50)
        assert.are.equal(100, b:available(100000)) -- at most one burst
        b:set(0, 100000)
        assert.are.equal(math.huge, b:available(100000))
        assert.has_error(function() core.rate_new(-1, 1000, 0) end)
    end)
end)

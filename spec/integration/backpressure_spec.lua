-- Backpressure against a real flooding producer: bench/backpressure.lua
-- --produce, a separate process sending numbered lines of 100 bytes as fast
-- as its socket takes them and writing how many the kernel accepted. The
-- pipeline is slow (it sleeps in proportion to its records), so only the
-- rate limit keeps dstream from reading the flood into memory: a receiver
-- out of tokens stops reading and TCP holds the producer back. Nothing here
-- depends on timing: the checks are bounds and counts.
local dstream = require("dstream")
local wait = require("spec.helpers.wait")
local ffi = require("ffi")

pcall(ffi.cdef, "int poll(void *fds, unsigned long nfds, int timeout);")
local function sleep_ms(ms) ffi.C.poll(nil, 0, ms) end

local LINE_BYTES = 100

local function interpreter()
    local i = -1
    while arg and arg[i - 1] ~= nil do i = i - 1 end
    return arg and arg[i] or "luajit"
end

local function start_producer()
    local status = os.tmpname()
    local p = assert(io.popen(string.format("exec %s bench/backpressure.lua --produce %s --seconds 60",
        interpreter(), status), "r"))
    local first = p:read("*l")
    local port, pid = (first or ""):match("listening on 127%.0%.0%.1:(%d+) pid (%d+)")
    assert(port, "the producer did not start: " .. tostring(first))
    return {port = tonumber(port), pid = tonumber(pid), pipe = p, status = status}
end

-- Bytes the producer's kernel accepted so far.
local function sent_bytes(p)
    local f = io.open(p.status)
    if not f then return 0 end
    local s = f:read("*a")
    f:close()
    return tonumber(s:match("^%d+ (%d+)")) or 0
end

local function stop_producer(p)
    os.execute("kill " .. p.pid .. " 2>/dev/null")
    p.pipe:close()
    os.remove(p.status)
end

-- The most a TCP connection on this machine buffers in its two kernels.
local function kernel_buffers()
    local total = 0
    for _, name in ipairs({"tcp_rmem", "tcp_wmem"}) do
        local f = io.open("/proc/sys/net/ipv4/" .. name)
        local max = f and tonumber(f:read("*a"):match("(%d+)%s*$")) or 8 * 1024 * 1024
        if f then f:close() end
        total = total + max
    end
    return total
end

-- Runs a slow pipeline (about 10 000 lines/s) of 0.2 s batches with
-- `opts` on a flooding producer until `enough(run)` holds; returns what it
-- saw: per batch rates, sizes, spans; the lines counted, the next number
-- expected, the lines out of sequence, the truncation reports, and the most
-- bytes the producer was ever ahead of what batches processed.
local function flood(opts, enough)
    local producer = start_producer()
    opts.batchInterval = 0.2
    local ssc = dstream.StreamingContext(opts)
    local source = "socketTextStream(127.0.0.1:" .. producer.port .. ")"
    local run = {expect = 0, bad = 0, counted = 0, estimates = 0, worst_excess = -math.huge,
        rates = {}, sizes = {}, spans = {}, truncated = 0}
    ssc:socketTextStream("127.0.0.1", producer.port):foreachRDD(function(rdd)
        local recs = rdd:collect()
        for i = 1, #recs do
            local r = recs[i]
            if #r == LINE_BYTES - 1 and tonumber(r:sub(1, 10)) == run.expect then
                run.expect = run.expect + 1
            else
                run.bad = run.bad + 1
            end
        end
        run.counted = run.counted + #recs
        sleep_ms(math.floor(#recs * 0.1))
    end)
    ssc:addStreamingListener{onReceiverError = function(err)
        if err.message:match("^ETRUNCATED") then run.truncated = run.truncated + 1 end
    end, onBatchCompleted = function(info)
        if run.stopping then return end -- a graceful stop reads what waits, whatever the rate
        if info.rateEstimate then run.estimates = run.estimates + 1 end
        run.rates[#run.rates + 1] = info.receiverRates[source]
        run.sizes[#run.sizes + 1] = info.numRecords
        run.spans[#run.spans + 1] = {info.processingStartTime, info.processingEndTime}
        -- What the producer got rid of, beyond what batches processed:
        -- without a limit dstream would read the flood into memory.
        local excess = sent_bytes(producer) - run.counted * LINE_BYTES
        if excess > run.worst_excess then run.worst_excess = excess end
    end}
    ssc:start()
    run.done = wait.until_done(ssc, function() return enough(run) end, 60)
    run.stopping = true
    ssc:stop{graceful = true}
    stop_producer(producer)
    return run
end

-- The checks both runs share.
local function check_limited(run)
    -- The producer stayed within the kernels' buffers and one read buffer
    -- of what the pipeline processed.
    assert.is_true(run.worst_excess <= kernel_buffers() + 2 * 65536,
        string.format("the producer got %d bytes ahead of the pipeline", run.worst_excess))
    for _, r in ipairs(run.rates) do assert.is_true(r >= 100 and r < math.huge) end
    -- Each batch held at most what the rate set after the batch before
    -- allows: a full bucket (one interval's worth) plus what accrued
    -- between that batch's end and this one's start (the socket is read
    -- only then: the loop does not run during a batch).
    for k = 2, #run.sizes do
        local gap = run.spans[k][1] - run.spans[k - 1][2]
        local allowed = run.rates[k - 1] * (200 + gap + 2) / 1000 + 1
        assert.is_true(run.sizes[k] <= allowed, string.format("batch %d held %d lines at a rate of %.0f/s "
            .. "(%d ms after the batch before)", k, run.sizes[k], run.rates[k - 1], gap))
    end
    -- Every line read was counted once, in order (a graceful stop may cut
    -- the last one short: it is reported, and is the only one allowed).
    assert.is_true(run.bad <= run.truncated and run.truncated <= 1, run.bad .. " lines out of sequence or cut")
end

describe("rate limits with a flooding socket producer", function()
    it("backpressure throttles the producer through TCP, drops nothing and counts every line once", function()
        local run = flood({backpressure = true}, function(r) return r.counted >= 20000 and r.estimates >= 5 end)
        assert.is_true(run.done, "the pipeline never took 20 000 lines in 5 estimated batches")
        -- The first batch ran under the default cap, the later ones under estimates.
        assert.are.equal(require("dstream.rate").DEFAULT_INITIAL_RATE, run.rates[1])
        check_limited(run)
        assert.is_true(run.expect >= 20000)
    end)

    it("maxRate caps a socket receiver's batches without backpressure", function()
        local run = flood({maxRate = 2000}, function(r) return r.counted >= 4000 end)
        assert.is_true(run.done, "the pipeline never took 4 000 lines")
        for _, r in ipairs(run.rates) do assert.are.equal(2000, r) end
        assert.are.equal(0, run.estimates)
        check_limited(run)
    end)
end)

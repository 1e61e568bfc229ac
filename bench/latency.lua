--[[ latency: how late batches start and end at 1, 10 and 100 ms intervals.

    luajit bench/latency.lua [--quick] [--seconds S] [--rate R] [--intervals 1,10,100]

Run from the project root with dstream on the paths:

    LUA_PATH="lua/?.lua;lua/?/init.lua;bench/?.lua;;" LUA_CPATH="build/?.so;;" \
        luajit bench/latency.lua

THE WORKLOAD (the issue's): a system-clock context per interval with one
socketTextStream fed by examples/wordgen.lua at R = 10 000 lines/s, and a
light pipeline: flatMap to words, countByValue, foreachRDD that counts the
distinct words. Each runs S seconds (10; 3 with --quick) after a 0.5 s
warm-up (the JIT compiles the batch's traces; those batches are not counted).

THE FIGURES, per interval, from every counted batch's listener info (ms, as
API.md's info has them, whole milliseconds truncated from the wall clock):
  sched_ms   schedulingDelay: batch time to processing start
  total_ms   totalDelay: batch time to the end of the batch
each as p50 / p99 / max. Besides them, finer than the info's whole ms:
  start_us   the wall clock in µs at onBatchSubmitted (after the batch's
             input was taken) minus the batch time: how late the driver woke,
             plus taking the input
  end_us     the wall clock in µs at onBatchCompleted minus the batch time
and batches (counted), skipped (batch times missing between the first and
the last: always 0), records (lines the counted batches processed).

THE BASELINE, measured in the same run: a plain LuaJIT loop that sleeps to
each interval boundary and notes how late it woke (late_us, p50/p99/max),
once with poll(2) and a millisecond timeout (what a libuv timer does: its
timeouts are whole milliseconds) and once with clock_nanosleep(2) to the
absolute boundary (the best the kernel gives a sleeping thread). A batch's
start_us cannot beat these.

Every case prints one JSON line.
]]
local ffi = require("ffi")
local json = require("json")
local stats = require("stats")

local args = {seconds = 10, rate = 10000, intervals = {1, 10, 100}}
do
    local i = 1
    while i <= #arg do
        local a = arg[i]
        if a == "--quick" then
            args.seconds = 3
        elseif a == "--seconds" then
            i = i + 1
            args.seconds = assert(tonumber(arg[i]), "--seconds needs a number")
        elseif a == "--rate" then
            i = i + 1
            args.rate = assert(tonumber(arg[i]), "--rate needs a number")
        elseif a == "--intervals" then
            i = i + 1
            args.intervals = {}
            for n in tostring(arg[i]):gmatch("[^,]+") do args.intervals[#args.intervals + 1] = assert(tonumber(n)) end
        else
            error("latency: unknown argument " .. a .. " (--quick, --seconds S, --rate R, --intervals 1,10,100)")
        end
        i = i + 1
    end
end

pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_nsec; } latency_timespec;
int clock_gettime(int clk, void *ts);
int clock_nanosleep(int clk, int flags, const void *req, void *rem);
int poll(void *fds, unsigned long nfds, int timeout);
]])
local CLOCK_REALTIME, TIMER_ABSTIME = 0, 1
local ts = ffi.new("latency_timespec")

-- The wall clock in µs since the epoch, as the engine's batch times are.
local function now_us()
    ffi.C.clock_gettime(CLOCK_REALTIME, ts)
    return tonumber(ts.tv_sec) * 1e6 + math.floor(tonumber(ts.tv_nsec) / 1e3)
end

local function quantiles(xs)
    local c = {}
    for i = 1, #xs do c[i] = xs[i] end
    table.sort(c)
    local function q(f) return c[math.max(1, math.ceil(#c * f))] end
    return {p50 = q(0.5), p99 = q(0.99), max = c[#c]}
end

local function emit(t, order)
    io.write(json.encode(t, order), "\n")
    io.flush()
end

local ORDER = {"bench", "case", "interval_ms", "seconds", "rate", "batches", "skipped", "records",
    "sched_ms", "total_ms", "start_us", "end_us", "late_us", "wakeups", "p50", "p99", "max"}

-- The baseline: sleep to each boundary of the interval, note the lateness.
local function baseline(interval_ms, how)
    local step = interval_ms * 1000
    local late = {}
    local stop = now_us() + math.min(args.seconds, 3) * 1e6
    local req = ffi.new("latency_timespec")
    local next_us = (math.floor(now_us() / step) + 1) * step
    while next_us < stop do
        if how == "poll" then
            local left = next_us - now_us()
            if left > 0 then ffi.C.poll(nil, 0, math.ceil(left / 1000)) end
        else
            req.tv_sec = math.floor(next_us / 1e6)
            req.tv_nsec = (next_us % 1e6) * 1000
            ffi.C.clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, req, nil)
        end
        late[#late + 1] = now_us() - next_us
        next_us = next_us + step
    end
    emit({bench = "latency", case = "baseline_" .. how, interval_ms = interval_ms, wakeups = #late,
        late_us = quantiles(late)}, ORDER)
end

local function start_wordgen()
    local cmd = string.format("%s examples/wordgen.lua --port 0 --rate %d --seconds %d 2>/dev/null",
        stats.interpreter(), args.rate, math.ceil(args.seconds) + 5)
    local p = assert(io.popen(cmd, "r"))
    local line = assert(p:read("*l"), "wordgen did not start")
    local port = assert(tonumber(line:match(":(%d+)")), "wordgen: " .. line)
    local pid = tonumber(line:match("pid (%d+)"))
    return p, port, pid
end

local function pipeline(interval_ms)
    local dstream = require("dstream")
    local p, port, pid = start_wordgen()
    local ssc = dstream.StreamingContext{batchInterval = dstream.ms(interval_ms)}
    local infos, start_us, end_us = {}, {}, {}
    local counting_from = nil
    ssc:addStreamingListener{
        onBatchSubmitted = function(info)
            if counting_from and info.batchTime >= counting_from then
                start_us[#start_us + 1] = now_us() - info.batchTime * 1000
            end
        end,
        onBatchCompleted = function(info)
            if counting_from and info.batchTime >= counting_from then
                infos[#infos + 1] = info
                end_us[#end_us + 1] = now_us() - info.batchTime * 1000
            end
        end,
    }
    local distinct = 0
    ssc:socketTextStream("127.0.0.1", port)
        :flatMap(function(line)
            local words = {}
            for w in line:gmatch("%S+") do words[#words + 1] = w end
            return words
        end)
        :countByValue()
        :foreachRDD(function(rdd) distinct = distinct + rdd:count() end)
    ssc:start()
    ssc:awaitTerminationOrTimeout(0.5)
    counting_from = math.floor(now_us() / 1000 / interval_ms + 1) * interval_ms
    ssc:awaitTerminationOrTimeout(args.seconds)
    ssc:stop{graceful = true}
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    p:close()
    local sched, total, records, skipped = {}, {}, 0, 0
    for i, info in ipairs(infos) do
        sched[i], total[i] = info.schedulingDelay, info.totalDelay
        records = records + info.numRecords
        if i > 1 then skipped = skipped + (info.batchTime - infos[i - 1].batchTime) / interval_ms - 1 end
    end
    emit({bench = "latency", case = "socket_wordcount", interval_ms = interval_ms, seconds = args.seconds,
        rate = args.rate, batches = #infos, skipped = skipped, records = records,
        sched_ms = quantiles(sched), total_ms = quantiles(total),
        start_us = quantiles(start_us), end_us = quantiles(end_us)}, ORDER)
end

for _, ms in ipairs(args.intervals) do
    baseline(ms, "poll")
    baseline(ms, "nanosleep")
    pipeline(ms)
end

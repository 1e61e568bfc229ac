--[[ backpressure: a flooding producer against a slow pipeline, with and
without `backpressure = true`.

    luajit bench/backpressure.lua [--seconds S] [--batch B] [--quick]
    luajit bench/backpressure.lua --produce STATUS [--rate R] [--seconds S]

Run from the project root with dstream on the paths:

    LUA_PATH="lua/?.lua;lua/?/init.lua;bench/?.lua;;" LUA_CPATH="build/?.so;;" \
        luajit bench/backpressure.lua

THE WORKLOAD: a producer process (this script with --produce) listens on a
free port of 127.0.0.1 and sends numbered lines of 100 bytes
("%010d" and 89 x) to the one client that connects, at --rate lines/s
(0: as fast as the socket takes them), blocking when the socket is full.
After every 64 KiB chunk it writes "lines bytes" (what the kernel accepted
so far) to the file STATUS. The pipeline, a socketTextStream with batches of
B = 0.5 s, costs 5 ms a batch plus 0.05 ms a record (it sleeps: a slow
sink), so it keeps up with about 19 000 lines/s; the producer sends
60 000 lines/s (3x that) so that the run without backpressure does not
exhaust memory.

Each run (backpressure on, then off) lasts S = 20 s and prints one JSON line
per second of run time: the median scheduling delay and processing time of
the batches that completed in that second, their records, and the
receiver's rate (info.receiverRates). A last line per run, variant
"summary": settled_s (the first second from which every later second has a
median scheduling delay below one interval and a median processing time
<= 1.2 intervals; null if never), the medians of the batches after 10 s, and
the lines counted, missing and duplicated (lines are numbered: every line
read must be counted exactly once; a graceful stop ends each run).

--produce: the producer alone (used by spec/integration/backpressure_spec.lua
too); it prints "listening on 127.0.0.1:<port> pid <pid>" and exits when the
client goes away or --seconds (default 60) pass.
]]

package.path = "bench/?.lua;" .. package.path

local ffi = require("ffi")
local bit = require("bit")

local LINE_BYTES = 100
local PAD = string.rep("x", LINE_BYTES - 11)

local function line(i) return string.format("%010d", i) .. PAD end

pcall(ffi.cdef, [[
typedef struct { uint16_t family; uint16_t port; uint32_t addr; uint8_t zero[8]; } bp_sockaddr_in;
typedef struct { long sec; long usec; } bp_timeval;
int socket(int domain, int type, int protocol);
int setsockopt(int fd, int level, int name, const void *value, unsigned len);
int bind(int fd, const void *addr, unsigned len);
int listen(int fd, int backlog);
int accept(int fd, void *addr, void *len);
long send(int fd, const void *buf, unsigned long n, int flags);
int getsockname(int fd, void *addr, unsigned *len);
int close(int fd);
int getpid(void);
int poll(void *fds, unsigned long nfds, int timeout);
]])

local function sleep_ms(ms) ffi.C.poll(nil, 0, ms) end

local function now_s()
    return os.time() -- coarse is enough for deadlines
end

-- The producer -------------------------------------------------------------

local function produce(status, rate, seconds)
    local C = ffi.C
    local fd = C.socket(2, 1, 0) -- AF_INET, SOCK_STREAM
    assert(fd >= 0, "socket failed")
    local one = ffi.new("int[1]", 1)
    C.setsockopt(fd, 1, 2, one, 4) -- SOL_SOCKET, SO_REUSEADDR
    local sa = ffi.new("bp_sockaddr_in")
    sa.family = 2
    sa.addr = 0x0100007F -- 127.0.0.1 in network order
    assert(C.bind(fd, sa, ffi.sizeof(sa)) == 0, "bind failed")
    assert(C.listen(fd, 1) == 0, "listen failed")
    local len = ffi.new("unsigned[1]", ffi.sizeof(sa))
    C.getsockname(fd, sa, len)
    local port = bit.rshift(bit.bswap(sa.port), 16)
    io.stdout:write(string.format("listening on 127.0.0.1:%d pid %d\n", port, C.getpid()))
    io.stdout:flush()
    local conn = C.accept(fd, nil, nil)
    assert(conn >= 0, "accept failed")
    -- A send blocked longer than 1 s returns, so the deadline is seen.
    local tv = ffi.new("bp_timeval", {1, 0})
    C.setsockopt(conn, 1, 21, tv, ffi.sizeof(tv)) -- SO_SNDTIMEO
    local deadline = now_s() + seconds
    local per_chunk = math.floor(65536 / LINE_BYTES)
    local sent_lines, sent_bytes, next_line = 0, 0, 0
    local started = os.clock()
    local t0 = ffi.new("bp_timeval")
    pcall(ffi.cdef, "int gettimeofday(void *tv, void *tz);")
    local function wall()
        C.gettimeofday(t0, nil)
        return tonumber(t0.sec) + tonumber(t0.usec) * 1e-6
    end
    local begin = wall()
    local function write_status()
        local tmp = status .. ".tmp"
        local f = io.open(tmp, "w")
        f:write(string.format("%d %d\n", sent_lines, sent_bytes))
        f:close()
        os.rename(tmp, status)
    end
    write_status()
    while now_s() < deadline do
        if rate > 0 then -- pace: never ahead of rate * elapsed
            local ahead = next_line - rate * (wall() - begin)
            if ahead > 0 then sleep_ms(math.ceil(ahead / rate * 1000)) end
        end
        local parts = {}
        for i = 1, per_chunk do parts[i] = line(next_line + i - 1) end
        parts[#parts + 1] = ""
        local chunk = table.concat(parts, "\n")
        local off, n = 0, #chunk
        local buf = ffi.cast("const char *", chunk)
        while off < n and now_s() < deadline do
            local w = C.send(conn, buf + off, n - off, 0x4000) -- MSG_NOSIGNAL
            if w > 0 then
                off = off + tonumber(w)
                sent_bytes = sent_bytes + tonumber(w)
            else
                local e = ffi.errno()
                if e ~= 11 and e ~= 4 then -- EAGAIN (the 1 s timeout), EINTR
                    write_status()
                    C.close(conn)
                    return 0
                end
            end
        end
        if off < n then break end
        next_line = next_line + per_chunk
        sent_lines = next_line
        write_status()
    end
    write_status()
    C.close(conn)
    assert(started)
    return 0
end

-- Arguments ----------------------------------------------------------------

local opts = {seconds = nil, batch = 0.5, rate = nil}
do
    local i = 1
    while arg[i] do
        local a = arg[i]
        if a == "--produce" then opts.produce = arg[i + 1]; i = i + 1
        elseif a == "--rate" then opts.rate = tonumber(arg[i + 1]); i = i + 1
        elseif a == "--seconds" then opts.seconds = tonumber(arg[i + 1]); i = i + 1
        elseif a == "--batch" then opts.batch = tonumber(arg[i + 1]); i = i + 1
        elseif a == "--quick" then opts.quick = true
        else
            io.stderr:write("usage: luajit bench/backpressure.lua [--seconds S] [--batch B] [--quick]\n"
                .. "       luajit bench/backpressure.lua --produce STATUS [--rate R] [--seconds S]\n")
            os.exit(1)
        end
        i = i + 1
    end
end

if opts.produce then
    os.exit(produce(opts.produce, opts.rate or 0, opts.seconds or 60))
end

-- The benchmark ------------------------------------------------------------

local dstream = require("dstream")
local json = require("json")
local stats = require("stats")

local FIXED_MS, PER_RECORD_MS = 5, 0.05
local CAPACITY = math.floor(1000 / PER_RECORD_MS) -- lines/s the sink keeps up with, roughly
local RATE = 3 * 20000
local SECONDS = opts.seconds or (opts.quick and 12 or 20)

local function start_producer(rate, seconds)
    local status = os.tmpname()
    local cmd = string.format("exec %s bench/backpressure.lua --produce %s --rate %d --seconds %d",
        stats.interpreter(), status, rate, seconds)
    local p = assert(io.popen(cmd, "r"))
    local first = p:read("*l")
    local port, pid = (first or ""):match("listening on 127%.0%.0%.1:(%d+) pid (%d+)")
    assert(port, "the producer did not start: " .. tostring(first))
    return {port = tonumber(port), pid = tonumber(pid), pipe = p, status = status}
end

local function stop_producer(p)
    os.execute("kill " .. p.pid .. " 2>/dev/null")
    p.pipe:close()
    os.remove(p.status)
end

local function run(backpressure)
    local producer = start_producer(RATE, SECONDS + 30)
    local ssc = dstream.StreamingContext{batchInterval = opts.batch, backpressure = backpressure}
    local batch_ms = opts.batch * 1000
    local t0
    local per_second = {}
    local counted, missing, dup, expect = 0, 0, 0, 0
    ssc:socketTextStream("127.0.0.1", producer.port):foreachRDD(function(rdd)
        local recs = rdd:collect()
        for i = 1, #recs do
            local n = tonumber(recs[i]:sub(1, 10))
            if n == expect then
                expect = expect + 1
            elseif n and n > expect then
                missing = missing + (n - expect)
                expect = n + 1
            else
                dup = dup + 1
            end
            counted = counted + 1
        end
        sleep_ms(math.floor(FIXED_MS + PER_RECORD_MS * #recs + 0.5))
    end)
    ssc:addStreamingListener{onBatchCompleted = function(info)
        t0 = t0 or info.batchTime - batch_ms
        local s = math.floor((info.processingEndTime - t0) / 1000)
        local b = per_second[s] or {sched = {}, proc = {}, records = 0}
        per_second[s] = b
        b.sched[#b.sched + 1] = info.schedulingDelay
        b.proc[#b.proc + 1] = info.processingDelay
        b.records = b.records + info.numRecords
        b.rate = info.receiverRates and info.receiverRates["socketTextStream(127.0.0.1:" .. producer.port .. ")"]
        b.estimate = info.rateEstimate
    end}
    ssc:start()
    ssc:awaitTerminationOrTimeout(SECONDS)
    ssc:stop{graceful = true}
    stop_producer(producer)
    local variant = backpressure and "backpressure" or "no_backpressure"
    local settled
    local last = -1
    for s in pairs(per_second) do last = math.max(last, s) end
    local late_sched, late_proc = {}, {}
    for s = 0, last do
        local b = per_second[s]
        if b then
            local ms, mp = stats.median(b.sched), stats.median(b.proc)
            print(json.encode({variant = variant, second = s, batches = #b.sched, median_scheduling_delay_ms = ms,
                median_processing_ms = mp, records = b.records, receiver_rate = b.rate,
                rate_estimate = b.estimate and math.floor(b.estimate + 0.5)},
                {"variant", "second", "batches", "median_scheduling_delay_ms", "median_processing_ms", "records"}))
            local good = ms < batch_ms and mp <= 1.2 * batch_ms
            if good and settled == nil then settled = s elseif not good then settled = nil end
            if s >= 10 then
                for _, x in ipairs(b.sched) do late_sched[#late_sched + 1] = x end
                for _, x in ipairs(b.proc) do late_proc[#late_proc + 1] = x end
            end
        end
    end
    print(json.encode({variant = "summary", run = variant, batch_ms = batch_ms, producer_lines_per_s = RATE,
        sink_capacity_lines_per_s = CAPACITY, settled_s = settled,
        median_scheduling_delay_after_10s_ms = #late_sched > 0 and stats.median(late_sched) or nil,
        median_processing_after_10s_ms = #late_proc > 0 and stats.median(late_proc) or nil,
        max_scheduling_delay_after_10s_ms = #late_sched > 0 and math.max(unpack(late_sched)) or nil,
        counted = counted, missing = missing, duplicated = dup},
        {"variant", "run", "batch_ms", "settled_s"}))
    io.stdout:flush()
end

run(true)
run(false)

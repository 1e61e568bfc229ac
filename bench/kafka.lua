--[[ kafka: records/s of kafkaStream -> count against a plain librdkafka
consumer in C reading the same topic, in the same run.

    luajit bench/kafka.lua [--quick] [--partitions P] [--per-partition N] [--value-bytes B]
                           [--batch S] [--repeat R]

Run from the project root with dstream on the paths, after building build/
(its ds_kafka_broker and kafka_consumer):

    LUA_PATH="lua/?.lua;lua/?/init.lua;bench/?.lua;;" LUA_CPATH="build/?.so;;" \
        luajit bench/kafka.lua

THE WORKLOAD: build/ds_kafka_broker (librdkafka's mock cluster, the tests'
broker, in a process of its own) holds one topic of P = 8 partitions with
N = 80 000 records each (the mock keeps about 100 000 a partition), keys
"k<i % 1000>", values of B = 100 bytes of made-up words, produced once before the runs (not
timed). Every variant then reads the whole topic from its start, as a
process of its own:

  plain_c   build/kafka_consumer (bench/kafka_consumer.c): every partition
            assigned from the beginning, rd_kafka_consumer_poll in a loop
            counting messages; timed from making the consumer to the last
            message.
  dstream   this script with --variant dstream: a system-clock
            StreamingContext with batches of S = 0.1 s,
            kafkaStream{startingOffsets = "earliest"}:count() and a
            foreachRDD adding the counts; timed from ssc:start() (which
            makes the consumer and assigns the partitions) to the batch that
            completes the count. The time includes the wait for that batch's
            time to come: at most one batch interval.

--repeat R runs the pair R times, interleaved, and keeps each variant's best.
--quick: 4 partitions of 20 000.

Each variant prints one JSON line (records, seconds, records_per_s); a last
line, variant "ratio", gives dstream's records/s over plain_c's (the
issue's target: >= 0.5).
]]

package.path = "bench/?.lua;" .. package.path

local json = require("json")
local stats = require("stats")
local ffi = require("ffi")

pcall(ffi.cdef, "int poll(void *fds, unsigned long nfds, int timeout);")
pcall(ffi.cdef, "int kill(int pid, int sig);")
if not pcall(ffi.typeof, "bk_timespec") then ffi.cdef "typedef struct { long sec; long nsec; } bk_timespec;" end
pcall(ffi.cdef, "int clock_gettime(int clk, void *ts);")

local ts = ffi.new("bk_timespec")
local function now()
    ffi.C.clock_gettime(1, ffi.cast("void *", ts))
    return tonumber(ts.sec) + tonumber(ts.nsec) * 1e-9
end

local function arg_value(name, default)
    for i = 1, #arg do
        if arg[i] == name then return arg[i + 1] end
    end
    return default
end

local function has(name)
    for i = 1, #arg do
        if arg[i] == name then return true end
    end
    return false
end

-- The dstream variant, in its own process ---------------------------------

local function run_dstream(brokers, topic, want, batch)
    local dstream = require("dstream")
    local ssc = dstream.StreamingContext{batchInterval = batch}
    local total, done_at = 0, nil
    ssc:kafkaStream{brokers = brokers, topics = {topic}, startingOffsets = "earliest"}
        :count()
        :foreachRDD(function(rdd)
            rdd:foreach(function(n) total = total + n end)
            if total >= want and not done_at then
                done_at = now()
                ssc:stop()
            end
        end)
    local t0 = now()
    ssc:start()
    ssc:awaitTerminationOrTimeout(120)
    if not done_at then
        io.stderr:write(string.format("kafka bench: dstream counted %d of %d records in 120 s\n", total, want))
        os.exit(1)
    end
    local secs = done_at - t0
    print(json.encode({bench = "kafka", variant = "dstream", records = total, seconds = math.floor(secs * 1e4 + 0.5) / 1e4,
        records_per_s = math.floor(total / secs), batch_interval = batch}, {"bench", "variant"}))
end

if arg_value("--variant") == "dstream" then
    run_dstream(arg_value("--brokers"), arg_value("--topic"), tonumber(arg_value("--records")),
        tonumber(arg_value("--batch", "0.1")))
    os.exit(0)
end

-- The driver ----------------------------------------------------------------

local core = require("dstream.core")
local quick = has("--quick")
local partitions = tonumber(arg_value("--partitions", quick and "4" or "12"))
local per_partition = tonumber(arg_value("--per-partition", quick and "20000" or "30000"))
local value_bytes = tonumber(arg_value("--value-bytes", "100"))
local batch = tonumber(arg_value("--batch", "0.1"))
local repeats = tonumber(arg_value("--repeat", "1"))
local records = partitions * per_partition

local function sh(cmd)
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    return out
end

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)
-- The mock cluster has no CreateTopics: the broker makes the topic.
local pid = tonumber(sh(string.format(
    "build/ds_kafka_broker --brokers 1 --out %s/bootstrap --topic bench:%d >%s/log 2>&1 & echo $!", dir, partitions, dir)))
local brokers
for _ = 1, 500 do
    local f = io.open(dir .. "/bootstrap")
    local line = f and f:read("*l")
    if f then f:close() end
    if line and line ~= "" then
        brokers = line
        break
    end
    ffi.C.poll(nil, 0, 20)
end
local function cleanup()
    if pid then ffi.C.kill(pid, 9) end
    os.execute("rm -rf " .. dir)
end
if not brokers then
    cleanup()
    error("kafka bench: the broker did not start")
end

local ok, err = pcall(function()
    local topic = "bench"
    local p = assert(core.kafka_producer{brokers = brokers, options = {["linger.ms"] = "20"}})
    local t0 = now()
    local x = 12345
    for i = 0, records - 1 do
        -- Text: words of 2-9 letters drawn by a Park-Miller generator, cut
        -- to value_bytes. (Values alike but for a counter at one end would
        -- measure LuaJIT's sparse string hash, not Kafka: every one of them
        -- collides in the string table.)
        local words, len = {}, 0
        while len < value_bytes do
            x = x * 16807 % 2147483647
            local w = string.rep(string.char(97 + x % 26), 1) .. string.format("%x", x % 65536 * (2 + x % 8))
            words[#words + 1] = w
            len = len + #w + 1
        end
        local v = table.concat(words, " "):sub(1, value_bytes)
        assert(p:produce(topic, i % partitions, "k" .. i % 1000, v))
    end
    assert(p:flush(120000))
    p:close()
    io.stderr:write(string.format("kafka bench: produced %d records in %.1f s\n", records, now() - t0))
    local best = {}
    local interp = stats.interpreter()
    for _ = 1, repeats do
        local c = sh(string.format("build/kafka_consumer %s %s %d", brokers, topic, records))
        local d = sh(string.format("%s bench/kafka.lua --variant dstream --brokers %s --topic %s --records %d --batch %s",
            interp, brokers, topic, records, batch))
        for _, line in ipairs({c, d}) do
            local ok_, r = pcall(json.decode, line)
            if not ok_ or type(r) ~= "table" then error("kafka bench: a variant failed: " .. line) end
            if r.records ~= records then error("kafka bench: " .. r.variant .. " read " .. tostring(r.records)) end
            if not best[r.variant] or r.records_per_s > best[r.variant].records_per_s then best[r.variant] = r end
        end
    end
    print(json.encode(best.plain_c, {"bench", "variant"}))
    print(json.encode(best.dstream, {"bench", "variant"}))
    print(json.encode({bench = "kafka", variant = "ratio", partitions = partitions, records = records,
        value_bytes = value_bytes, dstream_over_plain_c = stats.r2(best.dstream.records_per_s / best.plain_c.records_per_s)},
        {"bench", "variant"}))
end)
cleanup()
if not ok then
    io.stderr:write(tostring(err), "\n")
    os.exit(1)
end

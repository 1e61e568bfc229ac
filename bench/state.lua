--[[ state: mapWithState over millions of keys against a plain LuaJIT table.

    luajit bench/state.lua [--quick] [--keys N] [--batches B] [--updates U]
                           [--load batches|initial] [--only VARIANT,...]

Run from the project root with dstream on the paths:

    LUA_PATH="lua/?.lua;lua/?/init.lua;bench/?.lua;;" LUA_CPATH="build/?.so;;" \
        luajit bench/state.lua

THE WORKLOAD (the issue's): 1 s batches under the manual clock. A load
phase of N / U batches brings every key once (2 000 000 keys, batches of
100 000), then B timed batches (20) of U updates (100 000) each to keys
drawn uniformly from the N (a Park-Miller generator, the same draws for
every variant). Every record adds 1 to its key's number.

VARIANTS, each run by this script as a process of its own (a fresh heap and
a resident set of its own), two key types:
  dstream_int, dstream_str
      queueStream(queue):mapToPair(k -> k, 1):mapWithState(spec) with
      spec = StateSpec(function(k, v, state)
          state:update((state:getOption() or 0) + v) end)
      and a foreachRDD that does nothing (an output, so batches run): each
      batch is one queue entry, an array of the batch's keys.
  plain_int, plain_str
      the baseline, driven the same way per batch over the same arrays:
      for i = 1, #keys do local k = keys[i]; t[k] = (t[k] or 0) + 1 end.
  pipeline_int, pipeline_str
      dstream's pipeline without the state: queueStream(queue):mapToPair(
      k -> k, 1) and the foreachRDD, loaded by the same batches. What
      dstream_* costs beyond it is the state's own cost.
Integer keys are 1e9 + 3 * id (id 1..N): sparse, so the plain table keeps
them in its hash part as it would real ids. String keys are
string.format("k%07d", id) and 0-8 bytes of padding (id % 9): 8-16 bytes.

--load initial loads dstream's keys instead with
StateSpec:initialState(ssc:parallelizePairs{{k, 1}, ...}), in one batch
with no records (the plain variants load as before). mapWithState's
per-record loop is then first compiled by the JIT for keys that have a
state, which makes the timed batches faster than after a load by batches
(README.md: what it measured). The memory figures still count the store
only: the pairs are made before the first measurement.

WHAT IS TIMED, per batch: making the batch's array of keys (the records
arriving: the same code for every variant) and processing it. The plain
loop allocates nothing, so the collector runs only when the arrays are made;
timing both steps puts its traversals of the 2 000 000-key table in the
figure ("GC included"). make_ms and process_ms give the split: a collection
step is charged to whichever step allocated when it fell due. A full
collection runs before the load and before the timed batches.

Each variant prints one JSON line:
  load, load_batches        how the keys were loaded, in how many batches;
  load_ms                   mean time of one load batch (inserts);
  per_batch_ms, _median_ms  mean and median time of one timed batch;
  make_ms, process_ms       the means of its two steps;
  cpu_ms, cpu_process_ms    the same as per_batch_ms and process_ms in CPU
                            time (os.clock): on a shared machine, time the
                            process waited for a CPU is not counted;
  store_bytes_per_key       dstream: ds_state_memory / keys, the store's own
                            accounting;
  heap_bytes_per_key        growth of collectgarbage("count") over the load,
                            after full collections, / keys;
  rss_bytes_per_key         growth of the resident set (/proc/self/statm)
                            over the load / keys;
  keys_held, checksum       the keys in the state at the end and the sum of
                            state * (id % 13 + 1) over every 97th id: the
                            same for both variants of a key type (exit 2
                            otherwise).
A last line, variant "summary", sets the ratios against the issue's
targets: dstream / plain per-batch time <= 1.3 (issue 18) (*_time_ratio; the ratio of
process_ms beside it, and *_cpu_ratio the ratio of cpu_ms; with the
pipeline variants, *_pipeline_cpu_ms is pipeline_*'s cpu_process_ms and
*_state_cpu_ratio dstream_*'s cpu_process_ms less that, over plain_*'s:
the state's own cost against the plain loop, informative only), dstream's resident bytes per key (rss_bytes_per_key)
<= 32 for integer keys and <= 64 for string keys. It passes only when all
four variants ran and met every target.
]]

local BENCH_DIR = arg[0]:match("^(.-)[^/]*$")
package.path = BENCH_DIR .. "?.lua;" .. package.path

local ffi = require("ffi")
local common = require("wordcount_common")
local json = require("json")
local stats = require("stats")
local mean, median, ms, r2, interpreter = stats.mean, stats.median, stats.ms, stats.r2, stats.interpreter

local now = common.now
local floor, sformat = math.floor, string.format

ffi.cdef("long sysconf(int name);")
local PAGE = tonumber(ffi.C.sysconf(30)) -- _SC_PAGESIZE

local VARIANTS = {"dstream_int", "plain_int", "dstream_str", "plain_str", "pipeline_int", "pipeline_str"}
-- The variants the targets are checked on.
local TARGETED = {"dstream_int", "plain_int", "dstream_str", "plain_str"}

local function usage(msg)
    io.stderr:write("state: ", msg, "\n",
        "usage: luajit bench/state.lua [--quick] [--keys N] [--batches B] [--updates U] ",
        "[--load batches|initial] [--only VARIANT,...]\n")
    os.exit(1)
end

local function parse_args(argv)
    local o = {keys = 2000000, batches = 20, updates = 100000, load = "batches"}
    local names = {["--keys"] = "keys", ["--batches"] = "batches", ["--updates"] = "updates"}
    local i = 1
    while i <= #argv do
        local a = argv[i]
        if a == "--quick" then
            o.keys, o.updates = 200000, 10000
        elseif names[a] and tonumber(argv[i + 1]) then
            o[names[a]] = tonumber(argv[i + 1])
            i = i + 1
        elseif (a == "--only" or a == "--variant" or a == "--load") and argv[i + 1] then
            o[a:sub(3)] = argv[i + 1]
            i = i + 1
        else
            usage("unknown or incomplete argument " .. a)
        end
        i = i + 1
    end
    if o.keys % o.updates ~= 0 then usage("--keys must be a multiple of --updates") end
    if o.load ~= "batches" and o.load ~= "initial" then usage("--load must be batches or initial") end
    return o
end

local opts = parse_args(arg)

-- Keys ---------------------------------------------------------------------------

local PAD = {}
for p = 0, 8 do PAD[p] = string.rep("-", p) end

local function int_key(id) return 1e9 + 3 * id end
local function str_key(id) return sformat("k%07d", id) .. PAD[id % 9] end

-- Park-Miller: exact in doubles (products below 2^46).
local seed = 42
local function draw(n)
    seed = seed * 16807 % 2147483647
    return seed % n + 1
end

-- Load batch b: ids (b - 1) * U + 1 .. b * U, in order.
local function load_batch(keyf, b)
    local keys, base = {}, (b - 1) * opts.updates
    for i = 1, opts.updates do keys[i] = keyf(base + i) end
    return keys
end

-- A timed batch: U ids drawn from 1..N.
local function update_batch(keyf)
    local keys, n = {}, opts.keys
    for i = 1, opts.updates do keys[i] = keyf(draw(n)) end
    return keys
end

-- Measuring ------------------------------------------------------------------------

local function rss_bytes()
    local f = assert(io.open("/proc/self/statm"))
    local line = f:read("*l")
    f:close()
    return tonumber(line:match("^%d+%s+(%d+)")) * PAGE
end

local function full_gc()
    collectgarbage()
    collectgarbage()
end




-- Runs one variant: proc(keys) processes a batch, get(k) reads a key's
-- state, held() counts the keys; returns its JSON line's fields.
local function run(keyf, proc)
    full_gc()
    local heap0, rss0 = collectgarbage("count"), rss_bytes()
    local load_batches, l0 = opts.keys / opts.updates, now()
    if proc.load then
        proc.load(keyf)
        load_batches = 1
    else
        for b = 1, load_batches do proc.batch(load_batch(keyf, b)) end
    end
    local load_s = now() - l0
    full_gc()
    local heap1, rss1 = collectgarbage("count"), rss_bytes()
    local store_bytes = proc.store_bytes and proc.store_bytes()

    local make, process, total, cpu, cpu_process = {}, {}, {}, {}, {}
    for b = 1, opts.batches do
        local t0, c0 = now(), os.clock()
        local keys = update_batch(keyf)
        local t1, c1 = now(), os.clock()
        proc.batch(keys)
        local t2, c2 = now(), os.clock()
        make[b], process[b], total[b] = t1 - t0, t2 - t1, t2 - t0
        cpu[b], cpu_process[b] = c2 - c0, c2 - c1
    end

    local sum = proc.get and 0
    for id = 1, proc.get and opts.keys or 0, 97 do
        local v = proc.get(keyf(id))
        if v == nil then error(sformat("state: key %s has no state", keyf(id))) end
        sum = sum + v * (id % 13 + 1)
    end
    local n = opts.keys
    local line = {keys = n, batches = opts.batches, updates_per_batch = opts.updates,
        load = proc.load and "initial" or "batches", load_batches = load_batches,
        load_ms = ms(load_s / load_batches), per_batch_ms = ms(mean(total)), per_batch_median_ms = ms(median(total)),
        make_ms = ms(mean(make)), process_ms = ms(mean(process)),
        cpu_ms = ms(mean(cpu)), cpu_process_ms = ms(mean(cpu_process)),
        heap_bytes_per_key = r2((heap1 - heap0) * 1024 / n), rss_bytes_per_key = r2((rss1 - rss0) / n),
        keys_held = proc.held and proc.held(), checksum = sum}
    if store_bytes then line.store_bytes_per_key = r2(store_bytes / n) end
    return line
end

local function dstream_proc(keyf)
    local dstream = require("dstream")
    local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
    local queue = {}
    local spec = dstream.StateSpec(function(_, v, st)
        st:update((st:getOption() or 0) + v)
    end)
    if opts.load == "initial" then
        local kvs = {}
        for id = 1, opts.keys do kvs[id] = {keyf(id), 1} end
        spec:initialState(ssc:parallelizePairs(kvs))
    end
    local mapped = ssc:queueStream(queue):mapToPair(function(k) return k, 1 end):mapWithState(spec)
    mapped:foreachRDD(function() end)
    ssc:start()
    local function batch(keys)
        queue[1] = keys
        ssc:advance(1)
    end
    return {
        batch = batch,
        -- The store loads the initial state in its first batch: one with no records.
        load = opts.load == "initial" and function() batch({}) end or nil,
        get = function(k)
            local _, v = mapped.store:lookup(k)
            return v
        end,
        held = function() return mapped.store:count() end,
        store_bytes = function() return mapped.store:memory() end,
    }
end

local function pipeline_proc()
    local dstream = require("dstream")
    local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
    local queue = {}
    ssc:queueStream(queue):mapToPair(function(k) return k, 1 end):foreachRDD(function() end)
    ssc:start()
    return {batch = function(keys)
        queue[1] = keys
        ssc:advance(1)
    end}
end

local function plain_proc()
    local t, held = {}, 0
    return {
        batch = function(keys)
            for i = 1, #keys do
                local k = keys[i]
                t[k] = (t[k] or 0) + 1
            end
        end,
        get = function(k) return t[k] end,
        held = function()
            if held == 0 then for _ in pairs(t) do held = held + 1 end end
            return held
        end,
    }
end

local FIELDS = {"bench", "variant", "key_type", "keys", "batches", "updates_per_batch",
    "load", "load_batches", "load_ms", "per_batch_ms", "per_batch_median_ms", "make_ms", "process_ms",
    "cpu_ms", "cpu_process_ms", "store_bytes_per_key", "heap_bytes_per_key", "rss_bytes_per_key", "keys_held", "checksum"}

-- One variant, in this process.
local function variant_main(name)
    local system, key_type = name:match("^(%a+)_(%a+)$")
    local keyf = ({int = int_key, str = str_key})[key_type]
    local make = ({dstream = dstream_proc, plain = plain_proc, pipeline = pipeline_proc})[system]
    if not keyf or not make then usage("unknown variant " .. name) end
    local line = run(keyf, make(keyf))
    line.bench, line.variant, line.key_type = "state", name, key_type
    io.stdout:write(json.encode(line, FIELDS), "\n")
    io.stdout:flush()
end

-- The driver: each variant as a process of its own ---------------------------------


local function run_child(name)
    local cmd = sformat("%s %s --variant %s --keys %d --batches %d --updates %d --load %s", interpreter(),
        arg[0], name, opts.keys, opts.batches, opts.updates, opts.load)
    io.stderr:write("state: running ", name, "\n")
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close() -- LuaJIT does not hand back the exit status: a missing line tells
    local line = out:match("[^\n]+")
    if line == nil then
        io.stderr:write("state: variant ", name, " failed\n")
        os.exit(1)
    end
    io.stdout:write(line, "\n")
    io.stdout:flush()
    return json.decode(line)
end

local function driver()
    local wanted = {}
    for v in (opts.only or table.concat(VARIANTS, ",")):gmatch("[^,]+") do wanted[v] = true end
    local r = {}
    for _, v in ipairs(VARIANTS) do
        if wanted[v] then r[v] = run_child(v) end
    end
    local summary, pass, agree = {bench = "state", variant = "summary", time_target = 1.3,
        int_bytes_target = 32, str_bytes_target = 64}, true, true
    for _, kt in ipairs({"int", "str"}) do
        local d, p = r["dstream_" .. kt], r["plain_" .. kt]
        if d then
            local ok = d.rss_bytes_per_key <= summary[kt .. "_bytes_target"]
            summary[kt .. "_rss_bytes_per_key"] = d.rss_bytes_per_key
            summary[kt .. "_store_bytes_per_key"] = d.store_bytes_per_key
            summary[kt .. "_bytes_pass"] = ok
            pass = pass and ok
        end
        if d and p then
            local ratio = floor(d.per_batch_ms / p.per_batch_ms * 1000 + 0.5) / 1000
            summary[kt .. "_time_ratio"] = ratio
            summary[kt .. "_process_ratio"] = floor(d.process_ms / p.process_ms * 1000 + 0.5) / 1000
            summary[kt .. "_cpu_ratio"] = floor(d.cpu_ms / p.cpu_ms * 1000 + 0.5) / 1000
            summary[kt .. "_time_pass"] = ratio <= summary.time_target
            summary[kt .. "_plain_rss_bytes_per_key"] = p.rss_bytes_per_key
            summary[kt .. "_plain_heap_bytes_per_key"] = p.heap_bytes_per_key
            pass = pass and ratio <= summary.time_target
            local pl = r["pipeline_" .. kt]
            if pl then
                -- The state's own CPU time per batch over the plain loop's.
                summary[kt .. "_state_cpu_ratio"] =
                    floor((d.cpu_process_ms - pl.cpu_process_ms) / p.cpu_process_ms * 1000 + 0.5) / 1000
                summary[kt .. "_pipeline_cpu_ms"] = pl.cpu_process_ms
            end
            if d.checksum ~= p.checksum or d.keys_held ~= p.keys_held then
                agree = false
                io.stderr:write("state: dstream_", kt, " and plain_", kt, " hold different states\n")
            end
        end
    end
    -- A run of some variants only cannot pass: not every target was checked.
    local complete = true
    for _, v in ipairs(TARGETED) do complete = complete and r[v] ~= nil end
    summary.pass, summary.complete, summary.checksums_agree = pass and complete, complete, agree
    summary.load = opts.load
    io.stdout:write(json.encode(summary, {"bench", "variant", "time_target", "int_time_ratio",
        "int_process_ratio", "int_cpu_ratio", "int_pipeline_cpu_ms", "int_state_cpu_ratio", "int_time_pass",
        "str_time_ratio", "str_process_ratio", "str_cpu_ratio", "str_pipeline_cpu_ms", "str_state_cpu_ratio",
        "str_time_pass",
        "int_bytes_target", "int_rss_bytes_per_key", "int_store_bytes_per_key",
        "int_plain_rss_bytes_per_key", "int_plain_heap_bytes_per_key", "int_bytes_pass",
        "str_bytes_target", "str_rss_bytes_per_key", "str_store_bytes_per_key",
        "str_plain_rss_bytes_per_key", "str_plain_heap_bytes_per_key", "str_bytes_pass",
        "load", "complete", "pass", "checksums_agree"}), "\n")
    if not agree then os.exit(2) end
end

if opts.variant then
    variant_main(opts.variant)
else
    driver()
end

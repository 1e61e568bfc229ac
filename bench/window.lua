--[[ window: the per-batch cost and the memory of a long incremental window.

    luajit bench/window.lua [--quick] [--batches N] [--window S] [--late B]
                            [--products P] [--pairs N]

Run from the project root with dstream on the paths:

    LUA_PATH="lua/?.lua;lua/?/init.lua;bench/?.lua;;" LUA_CPATH="build/?.so;;" \
        luajit bench/window.lua

THE WORKLOAD (the issue's): 1 s batches under the manual clock, each of
2 000 (product, amount) pairs drawn uniformly from 1 000 products, and

    pairs:reduceByKeyAndWindow(sum, minus, 3600, 1):foreachRDD(consume)

for 3 800 batches: the window fills for an hour of batches, and in the last
200 batches the oldest ones leave it. `consume` reads every pair of each
window (count and sum of the values).

VARIANTS, one after the other in this process, fed the same batches:
  dstream       the pipeline above with sum and minus Lua closures; window
                buffers hold each batch's per-product sums in codec form,
                in C memory, and the running sums are in a C keyed store
                (dstream.store), each product of a batch leaving or
                entering looked up and set through the FFI around the call
                of the closure.
  dstream_builtin  the same with dstream.sum and dstream.subtract: each
                product of a batch entering or leaving folded into the
                store by one FFI call.
  plain_luajit  the baseline: one LuaJIT loop doing the same incremental
                window by hand - a {product = sum} table per batch kept in a
                Lua ring of 3 600, totals updated with the batch entering and
                the one leaving, and the window's keys and values copied into
                two arrays for `consume`, as the RDD dstream hands it.

Each variant prints one JSON line:
  early_ms, late_ms, full_ms  mean time of one batch over batches 100-200,
                              3 400-3 500 (--late), and the last 101 batches
                              (the window full: batches leave it);
  *_median_ms                 the same, medians;
  late_over_early             late_ms / early_ms: the issue's target is < 1.5
                              for dstream (cost independent of the window's
                              length);
  window_bytes, batches_held  dstream: the window buffer at the end;
  state_bytes                 dstream*: the C store of running sums;
  bytes_per_product_batch     window_bytes / (products * batches_held);
  bytes_per_pair_held         window_bytes / the (product, sum) pairs held;
  lua_heap_kib                the Lua heap after a full collection at the
                              end, with the window still alive;
  checksum                    the count and sum of the last window's pairs,
                              which must agree between the variants (exit 2
                              otherwise).
A last line, variant "summary", repeats the ratios against the target.

Times include the batch's whole job (queueStream, mapToPair, the window,
foreachRDD) for dstream, and the same steps written by hand for the
baseline; making the batch's array of records is not timed.
]]

local BENCH_DIR = arg[0]:match("^(.-)[^/]*$")
package.path = BENCH_DIR .. "?.lua;" .. package.path

local common = require("wordcount_common")
local json = require("json")
local dstream = require("dstream")
local window = require("dstream.window")

local now = common.now
local floor = math.floor

local function parse_args(argv)
    local o = {batches = 3800, window = 3600, late = 3500, products = 1000, pairs = 2000}
    local names = {["--batches"] = "batches", ["--window"] = "window", ["--late"] = "late",
        ["--products"] = "products", ["--pairs"] = "pairs"}
    local i = 1
    while i <= #argv do
        local a = argv[i]
        if a == "--quick" then
            o.batches, o.window, o.late = 500, 360, 350
        elseif names[a] and tonumber(argv[i + 1]) then
            o[names[a]] = tonumber(argv[i + 1])
            i = i + 1
        else
            io.stderr:write("window: unknown or incomplete argument ", a, "\n",
                "usage: luajit bench/window.lua [--quick] [--batches N] [--window S] [--late B] ",
                "[--products P] [--pairs N]\n")
            os.exit(1)
        end
        i = i + 1
    end
    if o.late > o.batches or o.late < 300 then
        io.stderr:write("window: --late must be between 300 and --batches\n")
        os.exit(1)
    end
    return o
end

local opts = parse_args(arg)

-- The records: a pool of {product, amount} pairs from a fixed LCG, and
-- batch b as opts.pairs consecutive entries of it, starting at a place
-- that moves with b. distinct[b] is the number of products of batch b.
local POOL = 64 * 1024
local pool = {}
do
    local x = 12345
    local function rand(n)
        x = (x * 1103515245 + 12345) % 2147483648
        return floor(x / 65536) % n
    end
    local names = {}
    for p = 1, opts.products do names[p] = "product-" .. p end
    for i = 1, POOL do pool[i] = {names[rand(opts.products) + 1], rand(100) + 1} end
end

local function batch_records(b)
    local out, start = {}, (b * 7919) % POOL
    for i = 1, opts.pairs do out[i] = pool[(start + i) % POOL + 1] end
    return out
end

local distinct = {}
for b = 1, opts.batches do
    local seen, n = {}, 0
    for _, r in ipairs(batch_records(b)) do
        if not seen[r[1]] then seen[r[1]], n = true, n + 1 end
    end
    distinct[b] = n
end

-- What every variant does with each window: count and sum its pairs.
local last_count, last_sum = 0, 0
local function consume(ks, vs, m)
    local sum = 0
    for i = 1, m do
        if ks[i] == nil then error("window with a hole") end
        sum = sum + vs[i]
    end
    last_count, last_sum = m, sum
end

local function add(a, b) return a + b end
local function sub(a, b) return a - b end

-- Runs feed(b) -> seconds for every batch; returns the per-batch times.
local function timed_batches(step)
    local times = {}
    for b = 1, opts.batches do
        local records = batch_records(b)
        local t0 = now()
        step(b, records)
        times[b] = now() - t0
    end
    return times
end

local function variant_dstream(f, inv)
    local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
    local queue = {}
    local totals = ssc:queueStream(queue)
        :mapToPair(function(r) return r[1], r[2] end)
        :reduceByKeyAndWindow(f, inv, opts.window, 1)
    totals:foreachRDD(function(rdd) consume(rdd.a, rdd.b, rdd.n) end)
    ssc:start()
    local times = timed_batches(function(_, records)
        queue[1] = records
        ssc:advance(1)
    end)
    collectgarbage()
    collectgarbage()
    local bytes, held = window.memory(totals)
    local result = {times = times, window_bytes = bytes, batches_held = held,
        state_bytes = window.state_memory(totals), lua_heap_kib = floor(collectgarbage("count"))}
    ssc:stop()
    return result
end

local function variant_plain()
    local W = opts.window
    local ring, totals = {}, {}
    local times = timed_batches(function(b, records)
        local part = {}
        for i = 1, #records do
            local r = records[i]
            local p = r[1]
            local s = part[p]
            if s == nil then part[p] = r[2] else part[p] = s + r[2] end
        end
        -- ring[b % W] holds batch b - W, which leaves the window now.
        local slot = b % W
        local old = ring[slot]
        if old ~= nil then
            for p, a in pairs(old) do totals[p] = totals[p] - a end
        end
        ring[slot] = part
        for p, a in pairs(part) do
            local s = totals[p]
            if s == nil then totals[p] = a else totals[p] = s + a end
        end
        local ks, vs, m = {}, {}, 0
        for p, v in pairs(totals) do
            m = m + 1
            ks[m], vs[m] = p, v
        end
        consume(ks, vs, m)
    end)
    collectgarbage()
    collectgarbage()
    local held = math.min(opts.batches, W)
    return {times = times, batches_held = held, lua_heap_kib = floor(collectgarbage("count"))}
end

local function mean(xs, lo, hi)
    local s = 0
    for i = lo, hi do s = s + xs[i] end
    return s / (hi - lo + 1)
end

local function median(xs, lo, hi)
    local c = {}
    for i = lo, hi do c[#c + 1] = xs[i] end
    table.sort(c)
    return c[floor((#c + 1) / 2)]
end

local function ms(x) return floor(x * 1e6 + 0.5) / 1e3 end

local FIELDS = {"bench", "variant", "batches", "window_s", "products", "pairs_per_batch",
    "early_ms", "late_ms", "full_ms", "late_over_early", "early_median_ms", "late_median_ms",
    "full_median_ms", "window_bytes", "batches_held", "state_bytes", "bytes_per_product_batch",
    "bytes_per_pair_held", "lua_heap_kib", "checksum"}

local function report(name, r)
    local t, n, late = r.times, opts.batches, opts.late
    local line = {bench = "window", variant = name, batches = n, window_s = opts.window,
        products = opts.products, pairs_per_batch = opts.pairs,
        early_ms = ms(mean(t, 100, 200)), late_ms = ms(mean(t, late - 100, late)),
        full_ms = ms(mean(t, n - 100, n)),
        early_median_ms = ms(median(t, 100, 200)), late_median_ms = ms(median(t, late - 100, late)),
        full_median_ms = ms(median(t, n - 100, n)),
        batches_held = r.batches_held, state_bytes = r.state_bytes, lua_heap_kib = r.lua_heap_kib,
        checksum = {last_count, last_sum}}
    line.late_over_early = floor(mean(t, late - 100, late) / mean(t, 100, 200) * 1000 + 0.5) / 1000
    if r.window_bytes then
        local pairs_held = 0
        for b = n - r.batches_held + 1, n do pairs_held = pairs_held + distinct[b] end
        line.window_bytes = r.window_bytes
        line.bytes_per_product_batch = floor(r.window_bytes / (opts.products * r.batches_held) * 100 + 0.5) / 100
        line.bytes_per_pair_held = floor(r.window_bytes / pairs_held * 100 + 0.5) / 100
    end
    io.stdout:write(json.encode(line, FIELDS), "\n")
    io.stdout:flush()
    return line
end

local function ratio(a, b) return floor(a / b * 1000 + 0.5) / 1000 end
local function same_sum(a, b) return a.checksum[1] == b.checksum[1] and a.checksum[2] == b.checksum[2] end

local d = report("dstream", variant_dstream(add, sub))
collectgarbage()
local c = report("dstream_builtin", variant_dstream(dstream.sum, dstream.subtract))
collectgarbage()
local p = report("plain_luajit", variant_plain())

local same = same_sum(d, p) and same_sum(c, p)
io.stdout:write(json.encode({bench = "window", variant = "summary",
    late_over_early = d.late_over_early, builtin_late_over_early = c.late_over_early, target = 1.5,
    pass = d.late_over_early < 1.5 and c.late_over_early < 1.5,
    plain_late_over_early = p.late_over_early,
    dstream_over_plain_late = ratio(d.late_ms, p.late_ms), dstream_over_plain_full = ratio(d.full_ms, p.full_ms),
    builtin_over_plain_late = ratio(c.late_ms, p.late_ms), builtin_over_plain_full = ratio(c.full_ms, p.full_ms),
    builtin_over_dstream_full = ratio(c.full_ms, d.full_ms),
    checksums_agree = same},
    {"bench", "variant", "late_over_early", "builtin_late_over_early", "target", "pass",
        "plain_late_over_early", "dstream_over_plain_late", "dstream_over_plain_full",
        "builtin_over_plain_late", "builtin_over_plain_full", "builtin_over_dstream_full",
        "checksums_agree"}), "\n")
if not same then
    io.stderr:write("window: the variants' last windows differ\n")
    os.exit(2)
end

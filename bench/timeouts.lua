--[[ timeouts: the cost of a batch's timeouts with millions of idle keys.

    luajit bench/timeouts.lua [--quick] [--keys N] [--small N] [--batches B]
                              [--expire X] [--warm W] [--timeout S]

Run from the project root with dstream on the paths:

    LUA_PATH="lua/?.lua;lua/?/init.lua;bench/?.lua;;" LUA_CPATH="build/?.so;;" \
        luajit bench/timeouts.lua

THE WORKLOAD (the issue's): 1 s batches under the manual clock,

    queueStream(queue):mapToPair(k -> k, 1):mapWithState(spec:timeout(S))

with S = 100 s and a state function that adds the value to the key's number
and, when the key is timing out (isTimingOut()), counts the call and returns
nil. B = 20 timed batches get no records at all; in each, X = 1 000 keys
time out (the state function is called for each). The state holds N idle
keys besides them that stay throughout: N = 2 000 000, and, the baseline,
N = 10 000 (--small). A key is a number, 1e9 + 3 * id.

HOW THE KEYS GET THEIR TIMES. A key times out in the first batch at which it
has been idle for S, so X keys must have last been updated at each of B
consecutive batch times, and the N others later. With G = W + B groups
(W = 5 warm-up groups):
  1. batches 1..G: batch j inserts the j-th G-th of all the ids: X keys of
     group j, spread evenly among N / G keys that will stay;
  2. batches G+1..2G: batch G+j updates the staying keys of batch j again
     (the N keys are now newer than every group);
  3. batches with no records up to time S: nothing is idle for S yet;
  4. W warm-up batches: groups 1..W time out (the expiry loop's trace is
     compiled here, as it would be in a long run), not timed;
  5. B timed batches: groups W+1..G time out, X keys each.
So the keys that time out sit among the others in the store's slots and
index (every (N + G*X) / (G*X)-th slot), not in a block of their own. The
store holds N + B*X keys when the timed batches start and N at the end.

Each size runs as a process of its own. Each prints one JSON line:
  per_batch_ms, _median_ms, min_ms, max_ms  the timed batches (advance(1):
                            the whole batch, queueStream to foreachRDD);
  idle_batch_median_ms      a batch of step 3 (no records, no timeouts):
                            what a batch costs besides its timeouts;
  expired_per_batch         the timeout calls of each timed batch, which
                            must all be X (exit 2 otherwise);
  load_s                    steps 1-3;
  keys_at_start, keys_held  the keys before the timed batches and after;
  store_bytes_per_key       ds_state_memory / keys_at_start.
A last line, variant "summary": per_batch_ms(N) / per_batch_ms(small), the
issue's target <= 2, and the same ratio of the medians.
]]

local BENCH_DIR = arg[0]:match("^(.-)[^/]*$")
package.path = BENCH_DIR .. "?.lua;" .. package.path

local common = require("wordcount_common")
local json = require("json")
local stats = require("stats")
local mean, median, ms, interpreter = stats.mean, stats.median, stats.ms, stats.interpreter

local now = common.now
local floor, sformat = math.floor, string.format

local function usage(msg)
    io.stderr:write("timeouts: ", msg, "\n",
        "usage: luajit bench/timeouts.lua [--quick] [--keys N] [--small N] [--batches B] ",
        "[--expire X] [--warm W] [--timeout S]\n")
    os.exit(1)
end

local function parse_args(argv)
    local o = {keys = 2000000, small = 10000, batches = 20, expire = 1000, warm = 5, timeout = 100}
    local names = {["--keys"] = "keys", ["--small"] = "small", ["--batches"] = "batches",
        ["--expire"] = "expire", ["--warm"] = "warm", ["--timeout"] = "timeout",
        ["--run"] = "run"}
    local i = 1
    while i <= #argv do
        local a = argv[i]
        if a == "--quick" then
            o.keys = 200000
        elseif names[a] and tonumber(argv[i + 1]) then
            o[names[a]] = tonumber(argv[i + 1])
            i = i + 1
        else
            usage("unknown or incomplete argument " .. a)
        end
        i = i + 1
    end
    local g = o.warm + o.batches
    if o.keys % g ~= 0 or o.small % g ~= 0 then
        usage(sformat("--keys and --small must be multiples of --warm + --batches (%d)", g))
    end
    if o.timeout <= 2 * g then usage(sformat("--timeout must be above 2 * (--warm + --batches) = %d", 2 * g)) end
    return o
end

local opts = parse_args(arg)




-- One size, in this process: n keys that stay.
local function run(n)
    local dstream = require("dstream")
    local G, X = opts.warm + opts.batches, opts.expire
    local stay = n / G -- staying keys per block
    local block = stay + X
    local expired = 0
    local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
    local queue = {}
    local spec = dstream.StateSpec(function(_, v, st)
        if st:isTimingOut() then
            expired = expired + 1
            return nil
        end
        st:update((st:getOption() or 0) + v)
    end):timeout(opts.timeout)
    local mapped = ssc:queueStream(queue):mapToPair(function(k) return k, 1 end):mapWithState(spec)
    mapped:foreachRDD(function() end)
    ssc:start()

    -- Block j holds ids (j - 1) * block + 1 .. j * block; position p of a
    -- block (1-based) is a group key when floor(p * X / block) moves.
    local function is_group(p) return floor(p * X / block) > floor((p - 1) * X / block) end
    local function batch(keys)
        queue[1] = keys
        ssc:advance(1)
    end

    local t0 = now()
    for j = 1, G do -- 1. inserts
        local keys, base = {}, (j - 1) * block
        for p = 1, block do keys[p] = 1e9 + 3 * (base + p) end
        batch(keys)
    end
    for j = 1, G do -- 2. the staying keys again
        local keys, m, base = {}, 0, (j - 1) * block
        for p = 1, block do
            if not is_group(p) then
                m = m + 1
                keys[m] = 1e9 + 3 * (base + p)
            end
        end
        assert(m == stay)
        batch(keys)
    end
    local idle = {} -- 3. idle, up to time S
    for b = 1, opts.timeout - 2 * G do
        local b0 = now()
        ssc:advance(1)
        idle[b] = now() - b0
    end
    local load_s = now() - t0
    if expired ~= 0 then error(sformat("timeouts: %d keys timed out before time %d", expired, opts.timeout)) end

    for _ = 1, opts.warm do ssc:advance(1) end -- 4. warm-up
    collectgarbage()
    collectgarbage()
    local store = mapped.store
    local at_start, bytes = store:count(), store:memory()

    local times, per = {}, {} -- 5. timed
    for b = 1, opts.batches do
        local e0 = expired
        local b0 = now()
        ssc:advance(1)
        times[b] = now() - b0
        per[b] = expired - e0
    end
    local held = store:count()
    ssc:stop()
    local all = true
    for b = 1, opts.batches do all = all and per[b] == X end
    return {bench = "timeouts", variant = n == opts.keys and "large" or "small", idle_keys = n,
        batches = opts.batches, expire_per_batch = X, timeout_s = opts.timeout,
        per_batch_ms = ms(mean(times)), per_batch_median_ms = ms(median(times)),
        min_ms = ms(math.min(unpack(times))), max_ms = ms(math.max(unpack(times))),
        idle_batch_median_ms = ms(median(idle)), expired_per_batch = all and X or per, load_s = floor(load_s * 1000 + 0.5) / 1000,
        keys_at_start = at_start, keys_held = held,
        store_bytes_per_key = floor(bytes / at_start * 100 + 0.5) / 100}, all
end

local FIELDS = {"bench", "variant", "idle_keys", "batches", "expire_per_batch", "timeout_s",
    "per_batch_ms", "per_batch_median_ms", "min_ms", "max_ms", "idle_batch_median_ms",
    "expired_per_batch", "load_s",
    "keys_at_start", "keys_held", "store_bytes_per_key"}


local function run_child(n)
    local cmd = sformat("%s %s --run %d --keys %d --small %d --batches %d --expire %d --warm %d --timeout %d",
        interpreter(), arg[0], n, opts.keys, opts.small, opts.batches, opts.expire, opts.warm, opts.timeout)
    io.stderr:write("timeouts: running ", n, " idle keys\n")
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close() -- LuaJIT does not hand back the exit status: the line says it all
    local line = out:match("[^\n]+")
    if line == nil then
        io.stderr:write("timeouts: the run with ", n, " keys failed\n")
        os.exit(1)
    end
    io.stdout:write(line, "\n")
    io.stdout:flush()
    local r = json.decode(line)
    return r, r.expired_per_batch == opts.expire
end

if opts.run then
    local line, all = run(opts.run)
    io.stdout:write(json.encode(line, FIELDS), "\n")
    io.stdout:flush()
    if not all then os.exit(2) end
else
    local large, ok_large = run_child(opts.keys)
    local small, ok_small = run_child(opts.small)
    local ratio = floor(large.per_batch_ms / small.per_batch_ms * 1000 + 0.5) / 1000
    local exact = ok_large and ok_small
        and large.keys_held == opts.keys and small.keys_held == opts.small
    io.stdout:write(json.encode({bench = "timeouts", variant = "summary",
        large_keys = opts.keys, small_keys = opts.small, ratio = ratio,
        median_ratio = floor(large.per_batch_median_ms / small.per_batch_median_ms * 1000 + 0.5) / 1000,
        target = 2, pass = exact and ratio <= 2, expiries_exact = exact},
        {"bench", "variant", "large_keys", "small_keys", "ratio", "median_ratio", "target",
            "pass", "expiries_exact"}), "\n")
    if not exact then
        io.stderr:write("timeouts: a run did not time out exactly ", opts.expire, " keys per batch\n")
        os.exit(2)
    end
end

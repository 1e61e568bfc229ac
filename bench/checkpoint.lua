--[[ checkpoint: what a batch's checkpoint of keyed state costs, and recovery.

    luajit bench/checkpoint.lua [--quick] [--keys N] [--small N] [--changes C]
                                [--batches B] [--dir DIR]

Run from the project root with dstream on the paths:

    LUA_PATH="lua/?.lua;lua/?/init.lua;bench/?.lua;;" LUA_CPATH="build/?.so;;" \
        luajit bench/checkpoint.lua

THE WORKLOAD (the issue's): a keyed store (dstream.store, the one
mapWithState and updateStateByKey keep their state in) of N numeric keys
(1 000 000; the baseline size --small 10 000) with a numeric value, tracking
its changes. Each of B = 50 timed batches (after 10 warm-up batches) sets
C = 1 000 keys drawn uniformly to new values (a Park-Miller generator), then
checkpoints:

    data = st:checkpoint(false, t)                      -- the delta
    cp:write("delta", t, {{"s1", data}})                -- core.checkpoint_*:
        -- a temporary file, write, fsync, rename, fsync of the directory

Keys are 1e9 + 3 * id (sparse integers).

Each size runs as a process of its own (a fresh heap); each prints one JSON
line:
  delta_ms, _median_ms          per batch: st:checkpoint(false) alone
  write_ms, _median_ms          per batch: cp:write of the delta, fsyncs included
  checkpoint_ms, _median_ms     per batch: the two together (the figure the
                                issue's ratio is about)
  delta_bytes                   bytes of a batch's delta (mean)
  file_bytes                    bytes cp:write reported per batch (mean)
  update_ms                     baseline: the batch's C updates through the
                                store (st:lookup + st:put per key)
  plain_update_ms               baseline: the same C updates to a plain
                                LuaJIT table of the same N keys
  plain_write_ms                baseline: the delta's bytes written with
                                io.open / io.write / close, no fsync
  full_ms, full_bytes           what a full checkpoint (a snapshot of all N
                                keys) costs: what every batch would pay
                                without deltas
  recover_ms                    recovery: cp:load() of the directory (the
                                newest full checkpoint and the deltas after
                                it) and st:restore() of each into a new store
  restore_ms                    of which st:restore() of the chain
  plain_load_ms                 baseline: filling a plain LuaJIT table with
                                the N keys and values (what merely having
                                the state in Lua costs)
  chain                         checkpoints in the chain recovered
  recovered_exact               the recovered store equals the live one
                                (every key and value; exit 2 otherwise)
A last line, variant "summary": checkpoint_ms(N) / checkpoint_ms(small)
and of the medians (target <= 2), and recover_ms(N) (target < 500).

The directory (--dir, default a new one under /tmp) is removed at the end.
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
    io.stderr:write("checkpoint: ", msg, "\n",
        "usage: luajit bench/checkpoint.lua [--quick] [--keys N] [--small N] [--changes C] ",
        "[--batches B] [--dir DIR]\n")
    os.exit(1)
end

local function parse_args(argv)
    local o = {keys = 1000000, small = 10000, changes = 1000, batches = 50, warm = 10}
    local names = {["--keys"] = "keys", ["--small"] = "small", ["--changes"] = "changes",
        ["--batches"] = "batches", ["--run"] = "run"}
    local i = 1
    while i <= #argv do
        local a = argv[i]
        if a == "--quick" then
            o.keys, o.batches = 200000, 20
        elseif a == "--dir" and argv[i + 1] then
            o.dir = argv[i + 1]
            i = i + 1
        elseif names[a] and tonumber(argv[i + 1]) then
            o[names[a]] = tonumber(argv[i + 1])
            i = i + 1
        else
            usage("unknown or incomplete argument " .. a)
        end
        i = i + 1
    end
    if o.changes > o.small then usage("--changes must be at most --small") end
    return o
end

local opts = parse_args(arg)

-- A Park-Miller generator: the same draws in every run.
local function rng(seed)
    local x = seed
    return function(n)
        x = x * 16807 % 2147483647
        return x % n
    end
end

local function key_of(id) return 1e9 + 3 * id end

local function remove_tree(dir)
    os.execute("rm -rf '" .. dir:gsub("'", "'\\''") .. "'")
end

-- One size, in this process.
local function run(n, dir)
    local core = require("dstream.core")
    local keystore = require("dstream.store")
    local draw = rng(12345)

    local st = keystore.new("bench")
    local plain = {}
    for id = 1, n do
        local k = key_of(id)
        local slot, _, kind, bytes = st:lookup(k)
        st:put(k, slot, kind, bytes, id, 1000)
        plain[k] = id
    end
    st:track()
    local cp = assert(core.checkpoint_open(dir))
    local f0 = now()
    local full = st:checkpoint(true, 1000)
    local full_s = now() - f0
    local full_bytes = #full
    assert(cp:write("full", 1000, {{"s1", full}}))

    local batch_keys = {}
    local delta_t, write_t, both_t, upd_t, plain_t, pw_t = {}, {}, {}, {}, {}, {}
    local dbytes, fbytes = {}, {}
    local scratch = dir .. "/plain-write"
    for b = 1, opts.warm + opts.batches do
        local t = (b + 1) * 1000
        for i = 1, opts.changes do batch_keys[i] = key_of(1 + draw(n)) end
        local u0 = now()
        for i = 1, opts.changes do
            local k = batch_keys[i]
            local slot, v, kind, bytes = st:lookup(k)
            st:put(k, slot, kind, bytes, v + b, t)
        end
        local u1 = now()
        for i = 1, opts.changes do
            local k = batch_keys[i]
            plain[k] = plain[k] + b
        end
        local c0 = now()
        local delta = st:checkpoint(false, t)
        local c1 = now()
        local written = assert(cp:write("delta", t, {{"s1", delta}}))
        local c2 = now()
        local fh = assert(io.open(scratch, "wb"))
        fh:write(delta)
        fh:close()
        local c3 = now()
        if b > opts.warm then
            local j = b - opts.warm
            upd_t[j], plain_t[j] = u1 - u0, c0 - u1
            delta_t[j], write_t[j], both_t[j], pw_t[j] = c1 - c0, c2 - c1, c2 - c0, c3 - c2
            dbytes[j], fbytes[j] = #delta, written
        end
    end
    os.remove(scratch)
    cp:close()
    full = nil -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()

    -- Recovery: load the directory and rebuild a store from the chain.
    local r0 = now()
    local cp2 = assert(core.checkpoint_open(dir))
    local res = assert(cp2:load())
    local r1 = now()
    local back = keystore.new("bench")
    for _, c in ipairs(res.chain) do back:restore(c.sections[1].data) end
    local r2 = now()
    cp2:close()
    local chain = #res.chain
    res = nil -- luacheck: ignore 311
    collectgarbage()
    local p0 = now()
    local fresh = {}
    for id = 1, n do fresh[key_of(id)] = id end
    local plain_load_s = now() - p0
    assert(fresh[key_of(n)] == n)

    local exact = back:count() == n
    for id = 1, n do
        local k = key_of(id)
        if select(2, back:lookup_num(k)) ~= plain[k] then
            exact = false
            break
        end
    end
    return {bench = "checkpoint", variant = n == opts.keys and "large" or "small", keys = n,
        changes_per_batch = opts.changes, batches = opts.batches,
        delta_ms = ms(mean(delta_t)), delta_median_ms = ms(median(delta_t)),
        write_ms = ms(mean(write_t)), write_median_ms = ms(median(write_t)),
        checkpoint_ms = ms(mean(both_t)), checkpoint_median_ms = ms(median(both_t)),
        delta_bytes = floor(mean(dbytes) + 0.5), file_bytes = floor(mean(fbytes) + 0.5),
        update_ms = ms(mean(upd_t)), plain_update_ms = ms(mean(plain_t)), plain_write_ms = ms(mean(pw_t)),
        full_ms = ms(full_s), full_bytes = full_bytes,
        recover_ms = ms(r2 - r0), restore_ms = ms(r2 - r1), plain_load_ms = ms(plain_load_s),
        chain = chain, recovered_exact = exact}, exact
end

local FIELDS = {"bench", "variant", "keys", "changes_per_batch", "batches",
    "delta_ms", "delta_median_ms", "write_ms", "write_median_ms", "checkpoint_ms", "checkpoint_median_ms",
    "delta_bytes", "file_bytes", "update_ms", "plain_update_ms", "plain_write_ms", "full_ms", "full_bytes",
    "recover_ms", "restore_ms", "plain_load_ms", "chain", "recovered_exact"}

local function run_child(n, dir)
    local cmd = sformat("%s %s --run %d --dir '%s' --keys %d --small %d --changes %d --batches %d",
        interpreter(), arg[0], n, dir, opts.keys, opts.small, opts.changes, opts.batches)
    io.stderr:write("checkpoint: running ", n, " keys\n")
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close() -- LuaJIT does not hand back the exit status: the line says it all
    local line = out:match("[^\n]+")
    if line == nil then
        io.stderr:write("checkpoint: the run with ", n, " keys failed\n")
        os.exit(1)
    end
    io.stdout:write(line, "\n")
    io.stdout:flush()
    local r = json.decode(line)
    return r, r.recovered_exact
end

if opts.run then
    local line, exact = run(opts.run, opts.dir)
    io.stdout:write(json.encode(line, FIELDS), "\n")
    io.stdout:flush()
    if not exact then os.exit(2) end
else
    local base = opts.dir or os.tmpname()
    if not opts.dir then os.remove(base) end
    local large, ok_large = run_child(opts.keys, base .. "-large")
    local small, ok_small = run_child(opts.small, base .. "-small")
    remove_tree(base .. "-large")
    remove_tree(base .. "-small")
    local function ratio(a, b) return floor(a / b * 1000 + 0.5) / 1000 end
    local exact = ok_large and ok_small
    local r = ratio(large.checkpoint_ms, small.checkpoint_ms)
    io.stdout:write(json.encode({bench = "checkpoint", variant = "summary",
        large_keys = opts.keys, small_keys = opts.small, ratio = r,
        median_ratio = ratio(large.checkpoint_median_ms, small.checkpoint_median_ms),
        delta_ratio = ratio(large.delta_ms, small.delta_ms), ratio_target = 2,
        recover_ms = large.recover_ms, recover_target_ms = 500,
        pass = exact and r <= 2 and large.recover_ms < 500, recovered_exact = exact},
        {"bench", "variant", "large_keys", "small_keys", "ratio", "median_ratio", "delta_ratio",
            "ratio_target", "recover_ms", "recover_target_ms", "pass", "recovered_exact"}), "\n")
    if not exact then
        io.stderr:write("checkpoint: a recovered store differs from the one checkpointed\n")
        os.exit(2)
    end
end

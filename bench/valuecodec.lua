--[[ valuecodec: is a second codec in Lua worth keeping? The Lua value
codec (per state, JIT-compiled) against the C codec called once per batch.

    LUA_PATH="lua/?.lua;lua/?/init.lua;bench/?.lua;;" LUA_CPATH="build/?.so;;" \
        luajit bench/valuecodec.lua [--quick]

Per state shape, a batch of 10 000 states (values differ, shape fixed, as
one stateful stream's are) is encoded and decoded, best of 7 rounds after
a warm-up that lets traces compile:
  lua_encode / lua_decode   valuecodec.encode / decode once per state, as
                            mapWithState and updateStateByKey do
  c_batch_encode / decode   core.encode(array, n) and core.decode(frame):
                            one classic-API call for the whole batch, the
                            cheapest a "C encode per batch" design could be
                            (it still needs one store call per key after)
  c_value_encode            core.encode_value once per state (for scale)
The baseline of each line is the plain LuaJIT loop that builds the batch's
tables (what a state function does anyway). One JSON line per shape and
variant: ns per state and the ratio to c_batch.
]]
local core = require "dstream.core"
local vc = require "dstream.valuecodec"
local json = require "json"
local stats = require "stats"

local quick = arg[1] == "--quick"
local N = quick and 1000 or 10000
local ROUNDS = quick and 3 or 7

local SHAPES = {
    number_array = function(i) return {i, i + 0.5, i * 2, 7, 8} end,
    record = function(i) return {count = i, last = i * 0.25, user = "u" .. i} end,
    hourly_ring = function(i)
        local r = {}
        for h = i % 24, i % 24 + 9 do r[h % 24 + 1] = {h, i * 3} end
        return r
    end,
    hours_and_sums = function(i)
        local r = {hours = {}, sums = {}}
        for s = 2, 13 do r.hours[s], r.sums[s] = s + i, i * s end
        return r
    end,
    session = function(i) return {start = 1700000000000 + i, clicks = i % 50, pages = {"/", "/a", "/b" .. i}} end,
}

local function best(f)
    local times = {}
    for r = 1, ROUNDS do
        local t0 = os.clock()
        f()
        times[r] = os.clock() - t0
    end
    table.sort(times)
    return times[1]
end

local names = {}
for name in pairs(SHAPES) do names[#names + 1] = name end
table.sort(names)

for _, name in ipairs(names) do
    local make = SHAPES[name]
    local values, encoded = {}, {}
    for i = 1, N do values[i] = make(i); encoded[i] = vc.encode(values[i]) end
    local frame = assert(core.encode(values, N))
    local sink
    local variants = {
        baseline_build = function() for i = 1, N do sink = make(i) end end,
        lua_encode = function() for i = 1, N do sink = vc.encode(values[i]) end end,
        lua_decode = function() for i = 1, N do sink = vc.decode(encoded[i]) end end,
        c_batch_encode = function() sink = core.encode(values, N) end,
        c_batch_decode = function() sink = core.decode(frame) end,
        c_value_encode = function() for i = 1, N do sink = core.encode_value(values[i]) end end,
    }
    local t = {}
    for v, f in pairs(variants) do best(f); t[v] = best(f) end
    for _, v in ipairs({"baseline_build", "lua_encode", "lua_decode", "c_batch_encode", "c_batch_decode",
                        "c_value_encode"}) do
        local against = v:match("decode") and t.c_batch_decode or t.c_batch_encode
        print(json.encode({bench = "valuecodec", shape = name, variant = v, states = N,
            ns_per_state = stats.r2(t[v] / N * 1e9), bytes = #encoded[1],
            ratio_to_c_batch = v == "baseline_build" and nil or stats.r2(t[v] / against)},
            {"bench", "shape", "variant", "states", "ns_per_state", "bytes", "ratio_to_c_batch"}))
    end
    assert(sink ~= nil)
end

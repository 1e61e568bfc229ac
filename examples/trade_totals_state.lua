--[[ trade_totals_state: the same 24-hour totals per product as
trade_totals_window.lua, with mapWithState instead of a window.

Each product's state is a ring of 24 hourly sums (which hour each slot
holds, and its sum). A trade adds its amount to the slot of its hour,
reusing a slot whose hour has left the day. Every hour the job reads the
state of every product (stateSnapshots) and adds up the slots of the last 24
hours. A product idle for a whole day times out (exactly: in the first batch
at which it has been idle 24 hours) and its state is dropped.

    bin/dstream run examples/trade_totals_state.lua [hours]

It replays the same 30 hours of synthetic trades as trade_totals_window.lua
under the manual clock, and prints the same totals.
]]
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local dstream = require "dstream"
local trades = require "trades"

local MINUTE, HOUR, DAY = 60, 3600, 86400
local HOUR_MS = HOUR * 1000

local M = {batchInterval = MINUTE, slide = HOUR}

-- The hour (1, 2, ...) a batch time belongs to: hour h covers (h-1 h, h h].
local function hour_of(t)
    return math.ceil(t / HOUR_MS)
end

local function add_trade(_, trade, state)
    if trade == nil then return nil end -- timed out: idle for a day, dropped
    local hour, cents = trade[1], trade[2]
    local ring = state:getOption() or {hours = {}, sums = {}}
    local slot = hour % 24 + 1
    if ring.hours[slot] ~= hour then
        ring.hours[slot], ring.sums[slot] = hour, 0
    end
    ring.sums[slot] = ring.sums[slot] + cents
    state:update(ring)
    return nil
end

local function total_at(ring, hour)
    local total = 0
    for slot = 1, 24 do
        local h = ring.hours[slot]
        if h and h > hour - 24 and h <= hour then total = total + ring.sums[slot] end
    end
    return total
end

--- (product, cents) pairs -> (product, total over the last 24 hours), hourly.
function M.totals(pairs_)
    -- The state function sees no batch time, so each trade carries its hour.
    local stamped = pairs_:transform(function(rdd, t)
        local hour = hour_of(t)
        return rdd:mapValues(function(cents) return {hour, cents} end)
    end)
    local rings = stamped:mapWithState(dstream.StateSpec(add_trade):timeout(DAY)):stateSnapshots()
    return rings:window(MINUTE, HOUR):transform(function(rdd, t)
        local hour = hour_of(t)
        return rdd:mapValues(function(ring) return total_at(ring, hour) end)
                  :filter(function(_, total) return total ~= 0 end)
    end)
end

local function main(hours)
    local batches = trades.batches{n_batches = hours * 60, per_batch = 40, products = 50}
    local ssc = dstream.StreamingContext{batchInterval = MINUTE, clock = "manual", name = "trade_totals_state"}
    local totals = M.totals(ssc:queueStream(batches):mapToPair(trades.parse))
    totals:transform(function(rdd) return rdd:sortBy(function(_, total) return total end, false) end):print(5)
    ssc:start()
    ssc:advance(#batches)
    ssc:stop()
end

if select("#", ...) == 1 and (...) == "--as-module" then return M end
main(tonumber(arg and arg[1]) or 30)

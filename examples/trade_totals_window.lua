--[[ trade_totals_window: the total traded per product over the last 24 hours,
with reduceByKeyAndWindow and its inverse.

Every batch is one minute of trading; every hour the job prints each
product's total over the 24 hours that end then. With the inverse function,
each hourly update adds the hour that entered the window and subtracts the
hour that left it: its cost follows the slide (an hour), not the window (a
day), and the window's past batches sit in a C buffer, not on the Lua heap.
Products that traded nothing for 24 hours fall to 0 and are dropped.

This run replays 30 hours of synthetic trades (examples/trades.lua) under
the manual clock, as a backtest would:

    bin/dstream run examples/trade_totals_window.lua [hours]

The pipeline itself is `totals` below; feed it any (product, amount) stream,
e.g. ssc:socketTextStream(...):mapToPair(parse) with a system clock.
]]
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local dstream = require "dstream"
local trades = require "trades"

local MINUTE, HOUR, DAY = 60, 3600, 86400

local M = {batchInterval = MINUTE, slide = HOUR}

--- (product, cents) pairs -> (product, total over the last 24 hours), hourly.
function M.totals(pairs_)
    return pairs_:reduceByKeyAndWindow(dstream.sum, dstream.subtract, DAY, HOUR,
        function(_, total) return total ~= 0 end)
end

local function main(hours)
    local batches = trades.batches{n_batches = hours * 60, per_batch = 40, products = 50}
    local ssc = dstream.StreamingContext{batchInterval = MINUTE, clock = "manual", name = "trade_totals_window"}
    local totals = M.totals(ssc:queueStream(batches):mapToPair(trades.parse))
    totals:transform(function(rdd) return rdd:sortBy(function(_, total) return total end, false) end):print(5)
    ssc:start()
    ssc:advance(#batches)
    ssc:stop()
end

if select("#", ...) == 1 and (...) == "--as-module" then return M end
main(tonumber(arg and arg[1]) or 30)

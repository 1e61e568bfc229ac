--- dstream: Spark Streaming's discretized streams for LuaJIT.
---
--- `local dstream = require "dstream"` loads everything and also sets the one
--- global `dstream`, so that `luajit -i -l dstream` gives a ready REPL.
local Context = require "dstream.context"
local DStream = require "dstream.stream"
require "dstream.window" -- adds the window operations to DStream
local state = require "dstream.state" -- adds mapWithState, updateStateByKey, stateSnapshots
local reducers = require "dstream.reducers"
local RDD = require "dstream.rdd"
local sinks = require "dstream.sinks"
local util = require "dstream.util"

local dstream = {_VERSION = "0.1.0"}

-- Output operations are methods of every stream.
for _, name in ipairs({"print", "foreachRDD", "saveAsTextFiles", "saveAsObjectFiles", "collectBatches"}) do
    DStream[name] = sinks[name]
end

local function duration(scale, name)
    return function(n)
        if type(n) ~= "number" then error(name .. ": argument #1 must be a number", 2) end
        return n * scale
    end
end

--- Durations in seconds: dstream.ms(100) == 0.1.
dstream.ms = duration(0.001, "ms")
dstream.seconds = duration(1, "seconds")
dstream.minutes = duration(60, "minutes")
dstream.hours = duration(3600, "hours")

--- StreamingContext{batchInterval = s, clock = "system"|"manual", ...}
dstream.StreamingContext = setmetatable({}, {
    __call = function(_, opts) return Context.new(opts) end,
    __index = Context,
    __tostring = function() return "dstream.StreamingContext" end,
})

--- StateSpec(f):timeout(s):initialState(rdd), for mapWithState.
dstream.StateSpec = state.StateSpec

--- Built-in reducers, usable wherever a reduce function is.
dstream.sum = reducers.sum
dstream.min = reducers.min
dstream.max = reducers.max
dstream.count = reducers.count
dstream.subtract = reducers.subtract

dstream.DStream = DStream
dstream.RDD = RDD
dstream.util = util

_G.dstream = dstream
return dstream

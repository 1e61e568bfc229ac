--- dstream: Spark Streaming's discretized streams for LuaJIT.
---
--- `local dstream = require "dstream"` loads everything and also sets the one
--- global `dstream`, so that `luajit -i -l dstream` gives a ready REPL.
require("dstream.jitopt").apply()
local Context = require "dstream.context"
local DStream = require "dstream.stream"
require "dstream.window" -- adds the window operations to DStream
local state = require "dstream.state" -- adds mapWithState, updateStateByKey, stateSnapshots
local reducers = require "dstream.reducers"
local builtins = require "dstream.builtins"
local RDD = require "dstream.rdd"
local sinks = require "dstream.sinks"
local util = require "dstream.util"

local dstream = {_VERSION = "0.1.0"}

-- Output operations are methods of every stream.
for _, name in ipairs({"print", "foreachRDD", "saveAsTextFiles", "saveAsObjectFiles", "collectBatches"}) do
    DStream[name] = sinks[name]
end

-- Seconds from n units of `per_second` (a division for ms, so that
-- dstream.ms(n) is the double nearest n / 1000, as n * 0.001 is not always).
local function duration(name, per_second, seconds_each)
    return function(n)
        if type(n) ~= "number" then error(name .. ": argument #1 must be a number", 2) end
        if per_second then return n / per_second end
        return n * seconds_each
    end
end

--- Durations in seconds: dstream.ms(100) == 0.1.
dstream.ms = duration("ms", 1000)
dstream.seconds = duration("seconds", nil, 1)
dstream.minutes = duration("minutes", nil, 60)
dstream.hours = duration("hours", nil, 3600)

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

--- dstream.words(line): the words of line as line:gmatch("%S+") gives them,
--- as an array; flatMap(dstream.words) before countByValue or
--- countByValueAndWindow runs in C.
dstream.words = builtins.words

dstream.DStream = DStream
dstream.RDD = RDD
dstream.util = util

_G.dstream = dstream
return dstream

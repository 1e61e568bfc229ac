--- Built-in reducers: dstream.sum, dstream.min, dstream.max, dstream.count,
--- and dstream.subtract, the inverse of sum (for reduceByKeyAndWindow and
--- reduceByWindow with an inverse).
---
--- sum, min, max and subtract are plain functions the JIT compiles into the
--- stage loops like any closure. The window operations recognise them
--- (reducers.name_of) and keep running values in a C keyed store, folded
--- by ds_state_fold_* (see lua/dstream/window.lua). count cannot be written as a left fold of
--- the values (the first value is not 1), so the engine recognises it: a
--- reduce with dstream.count counts records, by mapping each to 1 and summing
--- (its inverse, given as dstream.count or dstream.subtract, subtracts).
local DStream = require "dstream.stream"
local RDD = require "dstream.rdd"

local reducers = {}

--- a + b
function reducers.sum(a, b) return a + b end
--- a - b: the inverse of sum
function reducers.subtract(a, b) return a - b end
--- The smaller of a and b.
function reducers.min(a, b) if b < a then return b end return a end
--- The larger of a and b.
function reducers.max(a, b) if b > a then return b end return a end
--- Counts records (recognised by reduce, reduceByKey and the window reductions).
function reducers.count(a, b) return a + b end

local count, sum, subtract = reducers.count, reducers.sum, reducers.subtract

local function one() return 1 end

-- Ones in place of the records: values of a pair stream, else the records.
local function ones(x, keyed)
    if keyed then return x:mapValues(one) end
    return x:map(one)
end

-- Wrap method `name` of class so that a first argument of dstream.count
-- counts; `keyed` says whether it reduces values per key; `inverse_at` is the
-- position among the remaining arguments of an inverse function.
local function recognise(class, name, keyed, inverse_at)
    local method = class[name]
    class[name] = function(self, f, ...)
        if f ~= count then return method(self, f, ...) end
        local args = {n = select("#", ...), ...}
        if inverse_at and (args[inverse_at] == count or args[inverse_at] == subtract) then
            args[inverse_at] = subtract
        end
        return method(ones(self, keyed), sum, unpack(args, 1, args.n))
    end
end

recognise(DStream, "reduceByKey", true)
recognise(DStream, "reduce", false)
recognise(DStream, "reduceByKeyAndWindow", true, 1)
recognise(DStream, "reduceByWindow", false, 1)
recognise(RDD, "reduceByKey", true)
recognise(RDD, "reduce", false)

--- The name of a built-in reducer, or nil for any other function.
function reducers.name_of(f)
    local name, g = next(reducers)
    while name ~= nil do
        if g == f and name ~= "name_of" then return name end
        name, g = next(reducers, name)
    end
    return nil
end

return reducers

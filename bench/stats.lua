-- stats: the small measuring helpers the benchmarks share.
local stats = {}

local floor = math.floor

--- The mean of an array of numbers.
function stats.mean(xs)
    local s = 0
    for i = 1, #xs do s = s + xs[i] end
    return s / #xs
end

--- The median of an array of numbers (the array is left as it was).
function stats.median(xs)
    local c = {}
    for i = 1, #xs do c[i] = xs[i] end
    table.sort(c)
    return c[floor((#c + 1) / 2)]
end

--- Seconds as milliseconds with 3 decimals.
function stats.ms(x) return floor(x * 1e6 + 0.5) / 1e3 end

--- x with 2 decimals.
function stats.r2(x) return floor(x * 100 + 0.5) / 100 end

--- The interpreter running this script (arg[-1] or before), to run a child with.
function stats.interpreter()
    local i = -1
    while arg[i - 1] ~= nil do i = i - 1 end
    return arg[i] or "luajit"
end

return stats

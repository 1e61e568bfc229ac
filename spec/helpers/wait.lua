--[[ wait: drive a started system-clock context until something has happened.

Integration specs stop a context from foreachRDD or a listener once they have
seen what they expect; awaitTerminationOrTimeout(10) is only the safety bound
of a broken spec. Some specs need to act from the driver instead (call
stop{graceful = true} once the data is in): wait.until_done runs the loop in
short slices until done() holds.

    local wait = require("spec.helpers.wait")
    local ok = wait.until_done(ssc, function() return seen >= 3 end)  -- true
    assert.is_true(ok, "never saw 3 records")

wait.until_done(ssc, done, seconds = 10) returns true once done() is true
(checked before each slice of at most 0.05 s), false if `seconds` passed first
or the context stopped without done() becoming true. It never asserts on how
long anything took.
]]

local ffi = require("ffi")

local wait = {}

if not pcall(ffi.typeof, "wait_timespec") then
    ffi.cdef[[typedef struct { long tv_sec; long tv_nsec; } wait_timespec;]]
end
pcall(ffi.cdef, "int clock_gettime(int clk, void *ts);")

local ts = ffi.new("wait_timespec")
local function now()
    ffi.C.clock_gettime(1, ffi.cast("void *", ts)) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end
wait.now = now

function wait.until_done(ssc, done, seconds)
    local deadline = now() + (seconds or 10)
    while not done() do
        if now() > deadline then return false end
        if ssc:awaitTerminationOrTimeout(0.05) then return done() and true or false end
    end
    return true
end

return wait

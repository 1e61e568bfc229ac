-- Trace aborts inside generated stage chunks, collected with jit.attach.
--
-- Fused-stage specs run a batch under collect() and assert the list is
-- empty: the stage's loop compiled, checked without timing anything.
-- Only traces that start in a chunk named "=dstream:stage<N>:<label>" (see
-- lua/dstream/stage.lua) count, wherever they abort: a trace started at a
-- stage's loop may abort inside an inlined user function. A trace that
-- starts elsewhere (busted, the driver, a hot user function) and runs into
-- a stage's loop is not that loop failing to compile.
local jutil = require "jit.util"
local vmdef = require "jit.vmdef"

local jit_aborts = {}

local STAGE_PREFIX = "=dstream:stage"

local function chunk_of(func)
    local info = func and jutil.funcinfo(func)
    return info and info.source or "?"
end

local function line_of(func, pc)
    local info = func and jutil.funcinfo(func, pc)
    return info and info.currentline or 0
end

-- The abort reason as jit.dump shows it: the traceerr template filled in
-- with its extra argument (a function is shown by its chunk and line).
local function reason(otr, oex)
    if type(otr) ~= "number" then return tostring(otr) end
    local template = vmdef.traceerr[otr] or ("trace error " .. otr)
    if type(oex) == "function" then
        local info = jutil.funcinfo(oex)
        oex = info.loc or info.source or "?"
    end
    local ok, msg = pcall(string.format, template, oex)
    return ok and msg or template
end

-- LuaJIT's hot counters are shared by all loops and functions (a small
-- table indexed by a hash of the bytecode address), so what ran before -
-- other specs - could make a trace start at any iteration of a stage's
-- loop, e.g. its last, and abort by leaving the loop. Flushing the traces
-- and setting hotloop (to LuaJIT's default) resets every counter, so a
-- stage is watched from the same start in any run order.
local function reset_jit()
    jit.flush()
    jit.opt.start("hotloop=56")
end

local function in_stage(chunk)
    return chunk:sub(1, #STAGE_PREFIX) == STAGE_PREFIX
end

--- Runs fn() with a trace handler attached; returns the array of aborted
--- traces started in a stage chunk, each {trace, started, chunk, line,
--- reason} (chunk and line: where the trace aborted), and the number of
--- traces started in a stage chunk that compiled.
function jit_aborts.collect(fn)
    local aborts, started, compiled = {}, {}, 0
    local function on_trace(what, tr, func, pc, otr, oex)
        if what == "start" then
            started[tr] = chunk_of(func)
        elseif what == "stop" then
            if in_stage(started[tr] or "?") then compiled = compiled + 1 end
        elseif what == "abort" then
            local start = started[tr] or "?"
            if in_stage(start) then
                local chunk = chunk_of(func)
                aborts[#aborts + 1] = {trace = tr, started = start, chunk = chunk,
                    line = line_of(func, pc), reason = reason(otr, oex)}
            end
        end
    end
    reset_jit()
    jit.attach(on_trace, "trace")
    local ok, err = pcall(fn)
    jit.attach(on_trace)
    if not ok then error(err, 0) end
    return aborts, compiled
end

--- The aborts as text, one per line, for an assertion message.
function jit_aborts.show(aborts)
    local lines = {}
    for i, a in ipairs(aborts) do
        lines[i] = string.format("trace %d (started in %s) aborted at %s:%d: %s",
            a.trace, a.started, a.chunk, a.line, a.reason)
    end
    return table.concat(lines, "\n")
end

return jit_aborts

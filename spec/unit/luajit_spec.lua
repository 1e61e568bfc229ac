-- dstream's Lua code against the LuaJIT it runs on.
--
-- Debian 12's LuaJIT (2.1.0~beta3+git20220320) has a compiler bug in
-- table traversal: once a `for k, v in pairs(t)` (or `in next, t`) loop is
-- blacklisted, its specialised bytecode (ITERN) falls back to a plain call
-- and a compiled trace may then end the traversal early (LuaJIT issues
-- #827 and #1510, fixed upstream in 2022 and 2026). It corrupted keyed
-- state: the value codec counted a map's entries with such a loop and
-- wrote more entries than it counted. dstream therefore never iterates a
-- table with a generic `for` over pairs or next: it calls next() itself,
-- which compiles correctly.
local jutil = require "jit.util"
local vmdef = require "jit.vmdef"

-- Lines of fn (and of every function nested in it) holding the bytecodes
-- of a specialised traversal.
local function traversal_lines(fn, out)
    local pc = 1
    while true do
        local ins = jutil.funcbc(fn, pc)
        if ins == nil then break end
        local op = bit.band(ins, 0xff)
        local name = vmdef.bcnames:sub(op * 6 + 1, op * 6 + 6):gsub(" ", "")
        if name == "ISNEXT" or name == "ITERN" then
            out[#out + 1] = jutil.funcinfo(fn, pc).currentline
        end
        pc = pc + 1
    end
    local i = -1
    while true do
        local k = jutil.funck(fn, i)
        if k == nil then break end
        if type(k) == "proto" then traversal_lines(k, out) end
        i = i - 1
    end
    return out
end

local function modules()
    local names = {}
    local ls = assert(io.popen("ls lua/dstream/*.lua"))
    for path in ls:lines() do names[#names + 1] = path end
    ls:close()
    return names
end

describe("dstream's Lua code on Debian's LuaJIT", function()
    it("finds the specialised traversal in a pairs() loop (the check works)", function()
        local fn = assert(load("local t = ... for k in pairs(t) do end"))
        assert.are.equal(1, #traversal_lines(fn, {}) > 0 and 1 or 0)
    end)

    it("never iterates a table with a generic for over pairs or next", function()
        local found = {}
        local paths = modules()
        assert.is_true(#paths > 10)
        for _, path in ipairs(paths) do
            local lines = traversal_lines(assert(loadfile(path)), {})
            if #lines > 0 then
                found[#found + 1] = path .. ":" .. table.concat(lines, ",")
            end
        end
        assert.are.same({}, found)
    end)

    it("keeps more than LuaJIT's default 1000 traces without flushing them", function()
        local flushes, traces = 0, 0
        local function on_trace(what)
            if what == "flush" then flushes = flushes + 1 elseif what == "stop" then traces = traces + 1 end
        end
        jit.flush()
        jit.attach(on_trace, "trace")
        -- Some loops never get hot (LuaJIT's hot counters are shared by hash),
        -- so more functions than the limit are loaded.
        local live = {} -- a trace of a collected function is freed with it
        local ok, err = pcall(function()
            for i = 1, 2500 do
                local f = assert(load("local s = 0 for j = 1, 200 do s = s + j * " .. i .. " end return s"))
                live[i] = f
                assert(f() == 20100 * i)
            end
        end)
        jit.attach(on_trace)
        assert(ok, err)
        assert.are.equal(2500, #live)
        assert.is_true(traces > 1000, traces .. " traces compiled")
        assert.are.equal(0, flushes)
    end)
end)

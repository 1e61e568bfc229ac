--- explain(): the graph of a context as text — its streams, the stages the
--- compiler fuses them into, and its outputs — without running anything.
local util = require "dstream.util"
local DStream = require "dstream.stream"

local explain = {}

local sformat, concat = string.format, table.concat

local function shape(s)
    if s.pairs == true then return "pairs" end
    if s.pairs == false then return "values" end
    return "any"
end

local function parents_of(s)
    local ids = {}
    for i, p in ipairs(s.parents) do ids[i] = "#" .. p.id end
    return concat(ids, ", ")
end

-- Each stream's one consumer (none when it has several: it is then computed
-- once per batch and kept for them).
local function sole_consumers(ctx)
    local count, consumer = {}, {}
    for _, s in ipairs(ctx.streams) do
        for _, p in ipairs(s.parents) do
            count[p] = (count[p] or 0) + 1
            consumer[p] = s
        end
    end
    local p, n = next(count) -- not a generic for: spec/unit/luajit_spec.lua
    while p ~= nil do
        if n ~= 1 then consumer[p] = nil end
        p, n = next(count, p)
    end
    return consumer
end

-- The stages after fusion, as stream.lua's fusion rule makes them: each
-- stream that runs a generated loop, with the narrow streams folded into it.
local function stages(ctx, fused)
    local out = {}
    for _, s in ipairs(ctx.streams) do
        local combines = s.kind == "reduceByKey" and fused(s.parents[1])
        if (s.narrow and not fused(s)) or combines then
            local chain = {}
            local p = s
            if combines then
                chain[1] = "#" .. s.id .. " reduceByKey (map-side combine)"
                p = s.parents[1]
            end
            while true do
                table.insert(chain, 1, "#" .. p.id .. " " .. p.kind)
                local up = p.parents[1]
                if not fused(up) then
                    out[#out + 1] = sformat("  stage: %s, reading #%d %s", concat(chain, " -> "), up.id, up.desc or up.kind)
                    break
                end
                p = up
            end
        end
    end
    return out
end

--- The explanation of ctx as a string.
function explain.text(ctx)
    local consumer = sole_consumers(ctx)
    local function fused(p)
        return consumer[p] ~= nil and DStream.fused_into(p, consumer[p])
    end
    local lines = {tostring(ctx), "streams:"}
    for _, s in ipairs(ctx.streams) do
        if not s.output then
            local extra = {}
            if s.input then extra[#extra + 1] = "input" end
            if s.cached then extra[#extra + 1] = "cached" end
            if fused(s) then extra[#extra + 1] = "fused into the stage of #" .. consumer[s].id end
            if s.window_ms then extra[#extra + 1] = "window " .. util.show_ms(s.window_ms) end
            if s.remember_ms then extra[#extra + 1] = "remembers " .. util.show_ms(s.remember_ms) end
            lines[#lines + 1] = sformat("  #%d %s%s%s  %s, every %s%s", s.id, s.desc or s.kind,
                s._name and (" [" .. s._name .. "]") or "",
                #s.parents > 0 and (" <- " .. parents_of(s)) or "", shape(s), util.show_ms(s.slide_ms),
                #extra > 0 and ("  (" .. concat(extra, ", ") .. ")") or "")
        end
    end
    lines[#lines + 1] = "stages after fusion:"
    local st = stages(ctx, fused)
    if #st == 0 then st[1] = "  (none: no narrow operations)" end
    for _, l in ipairs(st) do lines[#lines + 1] = l end
    lines[#lines + 1] = "outputs:"
    if #ctx.outputs == 0 then lines[#lines + 1] = "  (none: start() will refuse to run)" end
    for _, o in ipairs(ctx.outputs) do
        lines[#lines + 1] = sformat("  #%d %s <- %s, every %s", o.id, o.desc or o.kind, parents_of(o), util.show_ms(o.slide_ms))
    end
    return concat(lines, "\n") .. "\n"
end

return explain

--- explain(): the graph of a context as text — its streams, the stages the
--- planner fuses them into, and its outputs — without running anything;
--- with {source = true}, each stage's generated Lua source too. Both are
--- the records the batches run (planner.lua, stage.lua), by their printers.
local util = require "dstream.util"
local planner = require "dstream.planner"
local stage = require "dstream.stage"

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

local OPTIONS = {source = true}

-- Each stage's source records, for every input shape it may read, by
-- stage.show: the chunks the batches load, made now if no batch made them.
local function sources(lines, stages)
    lines[#lines + 1] = "stage sources:"
    if #stages == 0 then lines[#lines + 1] = "  (none: no narrow operations)" end
    for _, st in ipairs(stages) do
        lines[#lines + 1] = "  stage: " .. planner.show(st)
        if st.builtin then
            lines[#lines + 1] = "    (runs in C: no generated Lua)"
        else
            for _, in_shape in ipairs(planner.shapes(st)) do
                lines[#lines + 1] = stage.show(planner.source(st, in_shape), "    ")
            end
        end
    end
end

--- The explanation of ctx as a string; opts.source adds the stages' sources.
function explain.text(ctx, opts)
    opts = util.check_options("explain", opts, OPTIONS, 3)
    local stages, host = planner.plan(ctx)
    local lines = {tostring(ctx), "streams:"}
    for _, s in ipairs(ctx.streams) do
        if not s.output then
            local extra = {}
            if s.input then extra[#extra + 1] = "input" end
            if s.cached then extra[#extra + 1] = "cached" end
            if host[s] then extra[#extra + 1] = "fused into the stage of #" .. host[s].id end
            if planner.counts_words(s) then extra[#extra + 1] = "runs in C: words counted" end
            if s.window_ms then extra[#extra + 1] = "window " .. util.show_ms(s.window_ms) end
            if s.remember_ms then extra[#extra + 1] = "remembers " .. util.show_ms(s.remember_ms) end
            lines[#lines + 1] = sformat("  #%d %s%s%s  %s, every %s%s", s.id, s.desc or s.kind,
                s._name and (" [" .. s._name .. "]") or "",
                #s.parents > 0 and (" <- " .. parents_of(s)) or "", shape(s), util.show_ms(s.slide_ms),
                #extra > 0 and ("  (" .. concat(extra, ", ") .. ")") or "")
        end
    end
    lines[#lines + 1] = "stages after fusion:"
    if #stages == 0 then lines[#lines + 1] = "  (none: no narrow operations)" end
    for _, st in ipairs(stages) do lines[#lines + 1] = "  stage: " .. planner.show(st) end
    lines[#lines + 1] = "outputs:"
    if #ctx.outputs == 0 then lines[#lines + 1] = "  (none: start() will refuse to run)" end
    for _, o in ipairs(ctx.outputs) do
        lines[#lines + 1] = sformat("  #%d %s <- %s, every %s", o.id, o.desc or o.kind, parents_of(o), util.show_ms(o.slide_ms))
    end
    if opts.source then sources(lines, stages) end
    return concat(lines, "\n") .. "\n"
end

return explain

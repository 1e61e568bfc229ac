--- The stage planner: which streams of the graph run as one generated loop.
---
--- Phase 1 of the stage compiler (graph -> stage records -> source records
--- -> loaded functions; stage.lua does the last two). The runtime computes
--- a batch from a stage record (planner.stage, planner.run) and explain()
--- prints the same records (planner.plan, planner.show): the fusion rule is
--- decided here and nowhere else.
---
--- FUSION RULE: a narrow stream whose only consumer is another narrow
--- stream, or a reduceByKey, is never computed on its own: the consumer's
--- stage runs the whole chain in one loop (a reduceByKey's stage ends in its
--- map-side combine). A narrow stream with several consumers, or cached, is
--- computed once per batch and kept for its consumers.
---
--- STAGE RECORD (one per stream that ends a stage, kept in that stream's one
--- field `_stage`):
---   stream    the stream whose batches the stage makes
---   ops       the narrow streams folded into it, as ops {kind, label,
---             stream, f}, the one reading `input` first
---   tail      nil, or the op of the reduceByKey the stage ends in
---   input     the stream whose batches the stage reads
---   sources   [input shape "v" | "p"] = the source record (stage.generate),
---             made once, by explain or by the first batch of that shape
---   runs      [input shape] = the loaded function, the user's closures bound
---
--- BUILT-INS IN C: a stage that is exactly `flatMap(dstream.words)` (the
--- function itself, by identity), read by nothing but one countByValue or
--- countByValueAndWindow, runs as a C loop (builtins.word_counter): its
--- batch is the words counted, pairs (word, count), which those operators
--- take as they are. Over an input whose only reader it is, the batch may
--- stay in C blocks until then (planner.reads_blocks). The record says so
--- in its field `builtin` ("words").
---
--- WHY RECORDS ARE CHECKED, NOT TRUSTED: until start() the graph can grow
--- (explain, then more consumers or cache(), in the REPL), which changes the
--- chains. planner.stage re-walks the chain (a few field reads per batch,
--- nothing allocated) and keeps the record while the chain is the same.
local stage = require "dstream.stage"
local builtins = require "dstream.builtins"

local planner = {}

local sformat, concat = string.format, table.concat

--- The fusion rule: whether p's records are made inside the stage of c, its
--- consumer, rather than kept as a batch of their own.
function planner.fused_into(p, c)
    return p.narrow and p.consumers == 1 and not p.cached and (c.narrow or c.kind == "reduceByKey") or false
end
local fused_into = planner.fused_into

-- The operators that take flatMap(dstream.words)'s batch as words counted.
local COUNTERS = {countByValue = true, countByValueAndWindow = true}

--- Whether s is a flatMap(dstream.words) whose stage runs in C: the whole
--- stage (nothing fused into it), read by one counting operator only. Its
--- batches are then pairs (word, count).
function planner.counts_words(s)
    if s.kind ~= "flatMap" or not builtins.is_words(s.f) or s.consumers ~= 1 or s.cached then return false end
    if not COUNTERS[s.consumer.kind] then return false end
    return not fused_into(s.parents[1], s)
end
local counts_words = planner.counts_words

--- Whether the batches of s (an input) may stay in C blocks: the one
--- stream reading them counts their words in C.
function planner.reads_blocks(s)
    return s.consumers == 1 and not s.cached and counts_words(s.consumer)
end

-- The stream a stage ending at s runs its narrow chain up to, and its tail
-- (the reduceByKey), or nil when no stage ends at s.
local function chain_end(s)
    if s.narrow then return s, nil end
    if s.kind == "reduceByKey" and fused_into(s.parents[1], s) then return s.parents[1], s end
    return nil
end

-- Whether the record st still describes the chain ending at last.
local function current(st, last)
    local k, s = #st.ops, last
    while true do
        if k < 1 or st.ops[k].stream ~= s then return false end
        local up = s.parents[1]
        if not fused_into(up, s) then return k == 1 and st.input == up end
        s, k = up, k - 1
    end
end

local function op_of(s)
    return {kind = s.kind, label = s.kind, stream = s, f = s.f}
end

--- The stage record of the stage ending at s, or nil when s ends none (it
--- is not narrow, or a reduceByKey not fed by a fused chain).
function planner.stage(s)
    local last, tail = chain_end(s)
    if not last then return nil end
    local st = s._stage
    local builtin = counts_words(s) and "words" or nil
    if st and st.builtin == builtin and current(st, last) then return st end
    local ops, p = {}, last
    while true do
        table.insert(ops, 1, op_of(p))
        local up = p.parents[1]
        if not fused_into(up, p) then break end
        p = up
    end
    st = {stream = s, ops = ops, tail = tail and op_of(tail), input = p.parents[1], sources = {}, runs = {},
        builtin = builtin}
    s._stage = st
    return st
end

-- The stream of st that cannot take input records of shape (nil: none).
local function misfit(st, shape)
    for _, op in ipairs(st.ops) do
        shape = stage.out_shape(op.kind, shape)
        if not shape then return op.stream end
    end
    if st.tail and shape ~= "p" then return st.tail.stream end
    return nil
end

--- The source record of st for input records of shape ("v" or "p"), made
--- once; nil and the stream that cannot take them when the chain does not
--- apply to that shape. A stage running in C has none.
function planner.source(st, shape)
    if st.builtin then return nil end
    local src = st.sources[shape]
    if src then return src end
    local bad = misfit(st, shape)
    if bad then return nil, bad end
    src = stage.generate(st.ops, shape, st.tail)
    st.sources[shape] = src
    return src
end

--- The loaded function of st for input records of shape: run(n, a, b, ends
--- [, by_key, add]). Raises a stage.Failure naming the stream when the
--- chain does not apply to that shape.
function planner.run(st, shape)
    local run = st.runs[shape]
    if run then return run end
    if st.builtin then
        run = builtins.word_counter()
        st.runs[shape] = run
        return run
    end
    local src, bad = planner.source(st, shape)
    if not src then
        error(setmetatable({stage_op = {stream = bad}, cause = sformat(
            "%s needs a pair stream, but its input holds single values", bad.kind)}, stage.Failure), 0)
    end
    local fns = {}
    for i, op in ipairs(st.ops) do fns[i] = op.f end
    if st.tail then fns[#fns + 1] = st.tail.f end
    run = stage.load(src)(unpack(fns, 1, #st.ops + (st.tail and 1 or 0)))
    st.runs[shape] = run
    return run
end

--- The input shapes st is planned for: the input's, or both when the input
--- may hold either (those the chain applies to).
function planner.shapes(st)
    local p = st.input.pairs
    if p ~= nil then return {p and "p" or "v"} end
    local out = {}
    for _, shape in ipairs({"v", "p"}) do
        if not misfit(st, shape) then out[#out + 1] = shape end
    end
    return out
end

--- Phase 1 over the whole graph: the stage records in stream order, and
--- host[s] = c for each stream s fused into the stage of its consumer c.
function planner.plan(ctx)
    local consumer = {} -- fused_into needs p.consumers == 1: then this is the one
    for _, s in ipairs(ctx.streams) do
        for _, p in ipairs(s.parents) do consumer[p] = s end
    end
    local stages, host = {}, {}
    for _, s in ipairs(ctx.streams) do
        local c = consumer[s]
        if c and fused_into(s, c) then host[s] = c end
    end
    for _, s in ipairs(ctx.streams) do
        if not host[s] then
            local st = planner.stage(s)
            if st then stages[#stages + 1] = st end
        end
    end
    return stages, host
end

--- The printer of a stage record: "#1 flatMap -> #2 mapToPair -> #3
--- reduceByKey (map-side combine), reading #0 queueStream".
function planner.show(st)
    local input = st.input
    if st.builtin then
        local s = st.stream
        return sformat("#%d flatMap(dstream.words) -> #%d %s: runs in C (split and count, no Lua call per "
            .. "record; its batch is the words counted), reading #%d %s%s", s.id, s.consumer.id, s.consumer.kind,
            input.id, input.desc or input.kind,
            input.blocks and not input.ctx.wal_wanted and " (its lines stay in C blocks)" or "")
    end
    local chain = {}
    for i, op in ipairs(st.ops) do chain[i] = "#" .. op.stream.id .. " " .. op.kind end
    if st.tail then chain[#chain + 1] = "#" .. st.tail.stream.id .. " reduceByKey (map-side combine)" end
    return sformat("%s, reading #%d %s", concat(chain, " -> "), input.id, input.desc or input.kind)
end

return planner

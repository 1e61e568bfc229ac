--- The stage compiler's back end: a stage's ops become Lua source, and the
--- source a loaded function. The front end (which streams form a stage) is
--- planner.lua; the phases, as in LPeg, are
---
---   graph -> stage records (planner.lua) -> source records -> loaded functions
---
--- and explain() prints the first two with planner.show and stage.show.
---
--- SOURCE RECORD (what stage.generate returns; the exact text that runs):
---   name       the chunk name, "=dstream:stage<N>:<ops>" (N counts the
---              chunks made by this process, so a name is never reused);
---              tracebacks and jit.v show it
---   source     the Lua text: a chunk returning factory(f1, ..., fn[, rf])
---              -> run(n, a, b, ends[, by_key, add]) -> m, oa, ob, oends
---   lines      [line of source] = index in ops of the op whose user
---              function that line calls, for naming the failing operator
---   ops        the ops, {kind, label[, stream]}, the tail op last if any
---   tail       whether the last op is a map-side combine (reduceByKey)
---   in_shape, out_shape   "v" (values) or "p" (pairs)
---
--- The loaded function (stage.load) binds the user's closures as upvalues:
--- no intermediate array per operator, pairs travel as two locals and two
--- parallel output arrays, and nothing is allocated per record unless a
--- user function allocates. Each user call sits on a line of its own, so
--- that `lines` names the operator of an error at no cost per record.
local stage = {}

local key = require "dstream.key"

local concat, format = table.concat, string.format

--- The shape of records before and after each kind of narrow op:
--- "v" values, "p" pairs; `any` accepts both.
local SHAPES = {
    map           = {v = "v", p = "v"},
    filter        = {v = "v", p = "p"},
    flatMap       = {v = "v", p = "v"},
    mapToPair     = {v = "p", p = "p"},
    flatMapToPair = {v = "p", p = "p"},
    mapValues     = {p = "p"},
    flatMapValues = {p = "p"},
    keys          = {p = "v"},
    values        = {p = "v"},
}

--- The shape after applying kind to records of shape `shape` (nil if not allowed).
function stage.out_shape(kind, shape)
    return SHAPES[kind] and SHAPES[kind][shape]
end

-- Chunks made so far: the N of the next chunk name. Names must be unique
-- because failing_op finds a chunk's source record by its name.
local chunk_count = 0
local by_chunk = setmetatable({}, {__mode = "v"})

-- Emits the ops of one segment of the chain, from op index i on, with the
-- current record in locals named by `cur` ({x = name} or {k = name, v = name}).
-- g is the chunk being generated ({ops, tail}); seg receives {text, op index
-- or nil} per line. A flat op ends the segment: it stores what its function
-- returned, an iterator in it<i> or an array in arr<i> (j<i>, n<i> walk
-- it), and the segment after it runs once per element. Returns that op's
-- index, or nil when the segment ends by storing the record (or, with a
-- tail, by combining it).
local function emit_ops(g, i, cur, shape, seg, depth)
    local ops = g.ops
    local function line(s, op)
        seg[#seg + 1] = {string.rep("    ", depth) .. s, op}
    end
    if i > #ops and g.tail then
        local r = #ops + 1
        line(format("local acc = by_key[%s]", cur.k))
        line("if acc ~= nil then")
        line(format("    local r = rf(acc, %s)", cur.v), r)
        line(format("    if r == nil then fail(%d, 'function returned nil for key ' .. show(%s)) end", r, cur.k), r)
        line(format("    by_key[%s] = r", cur.k))
        line("else")
        line(format("    add(%s, %s)", cur.k, cur.v), r)
        line("end")
        return nil
    end
    if i > #ops then
        line("m = m + 1")
        if shape == "v" then
            line(format("oa[m] = %s", cur.x))
        else
            line(format("oa[m] = %s; ob[m] = %s", cur.k, cur.v))
        end
        return nil
    end
    local op = ops[i]
    local f = "f" .. i
    local kind = op.kind
    local args = shape == "v" and cur.x or (cur.k .. ", " .. cur.v)
    if kind == "map" then
        local x = "x" .. i
        line(format("local %s = %s(%s)", x, f, args), i)
        line(format("if %s == nil then fail(%d, 'function returned nil') end", x, i), i)
        return emit_ops(g, i + 1, {x = x}, "v", seg, depth)
    elseif kind == "filter" then
        line(format("if %s(%s) then", f, args), i)
        local flat = emit_ops(g, i + 1, cur, shape, seg, depth + 1)
        line("end")
        return flat
    elseif kind == "mapToPair" then
        local k, v = "k" .. i, "v" .. i
        line(format("local %s, %s = %s(%s)", k, v, f, args), i)
        line(format("if %s == nil then fail(%d, 'function returned a nil key') end", k, i), i)
        line(format("if %s == nil then fail(%d, 'function returned a nil value (return key, value)') end", v, i), i)
        return emit_ops(g, i + 1, {k = k, v = v}, "p", seg, depth)
    elseif kind == "mapValues" then
        local v = "v" .. i
        line(format("local %s = %s(%s)", v, f, cur.v), i)
        line(format("if %s == nil then fail(%d, 'function returned nil') end", v, i), i)
        return emit_ops(g, i + 1, {k = cur.k, v = v}, "p", seg, depth)
    elseif kind == "keys" then
        return emit_ops(g, i + 1, {x = cur.k}, "v", seg, depth)
    elseif kind == "values" then
        return emit_ops(g, i + 1, {x = cur.v}, "v", seg, depth)
    end
    -- The flat kinds: keep what f returned (and, for flatMapValues, the
    -- key) in the level's cursor: an iterator in it<i> (with its state and
    -- control value), an array in arr<i> walked by j<i> up to n<i>.
    local r = "r" .. i
    line(format("local %s, rs%d, rc%d = %s(%s)", r, i, i, f, kind == "flatMapValues" and cur.v or args), i)
    line(format("if type(%s) == 'function' then it%d, st%d, c%d = %s, rs%d, rc%d", r, i, i, i, r, i, i))
    line(format("elseif type(%s) == 'table' then arr%d, j%d, n%d = %s, 0, #%s", r, i, i, i, r, r))
    line(format("else fail(%d, 'function must return an array or an iterator function, got ' .. type(%s)) end",
        i, r), i)
    if kind == "flatMapValues" then line(format("fk%d = %s", i, cur.k)) end
    return i
end

-- Emits the two segments that run once per element of flat op i: iseg
-- for the next value of its iterator, aseg for the next element of its
-- array (each followed by the ops after op i). An iterator is called as a
-- generic for calls it, it(s, c), c being its previous first result; its
-- nil ends the level: it<i> = done (fail, a function no user's f can
-- return, in a local the JIT keeps in a register) marks "no iterator" (a nil would change the slot's type at the loop's
-- head, and LuaJIT aborts a loop whose types keep changing). Returns the
-- index of the next flat op.
local function emit_element(g, i, iseg, aseg, depth)
    local kind, arr, j = g.ops[i].kind, "arr" .. i, "j" .. i
    local it, c = "it" .. i, "c" .. i
    local function line(seg, s, op)
        seg[#seg + 1] = {string.rep("    ", depth) .. s, op}
    end
    local next_cur, next_shape
    if kind == "flatMapToPair" then
        local kv, k, v = "kv" .. i, "k" .. i, "v" .. i
        line(iseg, format("local %s, %s = %s(st%d, %s)", k, v, it, i, c), i)
        line(iseg, format("if %s == nil then %s = done", k, it))
        line(iseg, format("elseif %s == nil then fail(%d, 'the iterator returned a key without a value "
            .. "(return key, value)')", v, i), i)
        line(iseg, "else")
        line(iseg, format("    %s = %s", c, k))
        line(aseg, format("%s = %s + 1", j, j))
        line(aseg, format("local %s = %s[%s]", kv, arr, j))
        line(aseg, format("if type(%s) ~= 'table' then fail(%d, 'function must return an array of {key, value} pairs, "
            .. "got an element of type ' .. type(%s)) end", kv, i, kv), i)
        line(aseg, format("local %s, %s = %s[1], %s[2]", k, v, kv, kv))
        line(aseg, format("if %s == nil or %s == nil then fail(%d, 'a pair {key, value} has a nil key or value') end",
            k, v, i), i)
        next_cur, next_shape = {k = k, v = v}, "p"
    else
        local x = kind == "flatMap" and "x" .. i or "v" .. i
        line(iseg, format("local %s = %s(st%d, %s)", x, it, i, c), i)
        line(iseg, format("if %s == nil then %s = done", x, it))
        line(iseg, "else")
        line(iseg, format("    %s = %s", c, x))
        line(aseg, format("%s = %s + 1", j, j))
        line(aseg, format("local %s = %s[%s]", x, arr, j))
        if kind == "flatMap" then
            next_cur, next_shape = {x = x}, "v"
        else
            next_cur, next_shape = {k = "fk" .. i, v = x}, "p"
        end
    end
    local flat = emit_ops(g, i + 1, next_cur, next_shape, iseg, depth + 1)
    line(iseg, "end")
    emit_ops(g, i + 1, next_cur, next_shape, aseg, depth)
    return flat
end

-- Appends the lines of seg to out, recording which op each user call is for.
local function append(out, lines, seg)
    for _, l in ipairs(seg) do
        out[#out + 1] = l[1]
        lines[#out] = l[2]
    end
end

-- The loop over the input's partitions: one numeric for when the chain has
-- no flat op, else one while loop over a cursor per flat op (see generate).
local function emit_loop(g, first, out, lines)
    local flat = emit_ops(g, 1, g.cur, g.in_shape, first, 0)
    if not flat then
        out[#out + 1] = "        for i = lo, hi do"
        for _, l in ipairs(first) do l[1] = "            " .. l[1] end
        append(out, lines, first)
        return
    end
    local levels = {}
    while flat do
        local iseg, aseg = {}, {}
        levels[#levels + 1] = {i = flat, iseg = iseg, aseg = aseg}
        flat = emit_element(g, flat, iseg, aseg, 0)
    end
    out[#out + 1] = "        local i, done = lo - 1, fail"
    for _, level in ipairs(levels) do
        local q = level.i
        out[#out + 1] = format("        local arr%d, it%d, st%d, c%d, j%d, n%d%s = nil, done, nil, nil, 0, 0",
            q, q, q, q, q, q, g.ops[q].kind == "flatMapValues" and ", fk" .. q or "")
    end
    out[#out + 1] = "        while true do"
    for d = #levels, 1, -1 do
        local q = levels[d].i
        out[#out + 1] = format("            %s it%d ~= done then", d == #levels and "if" or "elseif", q)
        for _, l in ipairs(levels[d].iseg) do l[1] = "                " .. l[1] end
        append(out, lines, levels[d].iseg)
        out[#out + 1] = format("            elseif j%d < n%d then", q, q)
        for _, l in ipairs(levels[d].aseg) do l[1] = "                " .. l[1] end
        append(out, lines, levels[d].aseg)
    end
    out[#out + 1] = "            elseif i < hi then"
    out[#out + 1] = "                i = i + 1"
    for _, l in ipairs(first) do l[1] = "                " .. l[1] end
    append(out, lines, first)
    out[#out + 1] = "            else"
    out[#out + 1] = "                break"
    out[#out + 1] = "            end"
end

--- Phase 2: the source record of a stage running ops ({kind, label[,
--- stream]}, all narrow) over input records of shape in_shape ("v" or "p"),
--- ending in output arrays, or with tail (an op {kind = "reduceByKey", ...})
--- in that op's map-side combine: run(n, a, b, ends, by_key, add) then
--- feeds a shuffle.reducer. label names the chunk (default: the ops' kinds).
---
--- WHY ONE LOOP EVEN WITH flatMap: a loop nested per flatMap runs a few
--- times per record, and LuaJIT aborts every trace that starts in such a
--- short inner loop ("leaving loop in root trace"). So a chain with flat ops
--- is one `while` loop over a cursor per level: each turn takes the next
--- value of the deepest iterator or array not yet walked, else the next
--- input record, and runs the segment of ops that follows it. The JIT sees
--- one loop whose branches become side traces; an iterator level is a
--- branch of its own, so `string.gmatch`'s iterator (a C function) is
--- called from the loop itself and LuaJIT stitches a trace around the call,
--- as it does in a plain `for w in line:gmatch(...)` loop.
function stage.generate(ops, in_shape, tail, label)
    local all_ops, kinds, shape = {}, {}, in_shape
    for i, op in ipairs(ops) do
        all_ops[i], kinds[i] = op, op.kind
        shape = assert(stage.out_shape(op.kind, shape), "op does not apply to this shape")
    end
    local out_shape = shape
    if tail then
        assert(out_shape == "p", "a combining stage needs pairs")
        all_ops[#ops + 1], kinds[#ops + 1] = tail, tail.kind
    end
    chunk_count = chunk_count + 1
    local name = format("=dstream:stage%d:%s", chunk_count, label or concat(kinds, ","))
    local fnames = {}
    for i = 1, #ops do fnames[i] = "f" .. i end
    if tail then fnames[#fnames + 1] = "rf" end
    local out, lines = {
        "local fail, type, show = ...",
        "return function(" .. concat(fnames, ", ") .. ")",
        "return function(n, a, b, ends, by_key, add)",
        "    local oa, ob, oends = {}, " .. (out_shape == "p" and "{}" or "nil") .. ", {}",
        "    local m, lo = 0, 1",
        "    for p = 1, #ends do",
        "        local hi = ends[p]",
    }, {}
    local g = {ops = ops, tail = tail, in_shape = in_shape,
        cur = in_shape == "v" and {x = "x0"} or {k = "k0", v = "v0"}}
    emit_loop(g, {{in_shape == "v" and "local x0 = a[i]" or "local k0, v0 = a[i], b[i]"}}, out, lines)
    out[#out + 1] = "        end"
    out[#out + 1] = "        oends[p] = m"
    out[#out + 1] = "        lo = hi + 1"
    out[#out + 1] = "    end"
    out[#out + 1] = "    return m, oa, ob, oends"
    out[#out + 1] = "end"
    out[#out + 1] = "end"
    local src = {name = name, source = concat(out, "\n"), lines = lines, ops = all_ops, tail = tail ~= nil,
        in_shape = in_shape, out_shape = out_shape}
    by_chunk[name] = src
    return src
end

--- Raised by generated code for a contract violation (nil record, bad array).
stage.Failure = {__tostring = function(e) return e.cause end}

--- Fail the batch with msg; the driver names the operator and the batch time.
function stage.fail(msg)
    error(setmetatable({cause = msg}, stage.Failure), 0)
end

--- Phase 3: load a source record; returns its factory(f1, ..., fn[, rf]) -> run.
function stage.load(src)
    local ops = src.ops
    local function fail(i, msg)
        error(setmetatable({stage_op = ops[i], cause = msg}, stage.Failure), 0)
    end
    local chunk = assert(loadstring(src.source, src.name))
    return chunk(fail, type, key.show)
end

local SHAPE_NAMES = {v = "values", p = "pairs"}

--- The printer of a source record: a header naming the chunk and its
--- shapes, then the source with line numbers (those of tracebacks).
function stage.show(src, indent)
    indent = indent or ""
    local out = {format("%s%s  (reads %s, %s)", indent, src.name:sub(2), SHAPE_NAMES[src.in_shape],
        src.tail and "combines its pairs by key" or "makes " .. SHAPE_NAMES[src.out_shape])}
    local n = 0
    for l in (src.source .. "\n"):gmatch("([^\n]*)\n") do
        n = n + 1
        out[#out + 1] = format("%s%4d  %s", indent, n, l)
    end
    return concat(out, "\n")
end

--- The op whose user function was running when an error was raised: searched
--- from the error handler's caller outwards, as a frame of a generated chunk.
function stage.failing_op(level)
    for l = level or 3, 60 do
        local info = debug.getinfo(l, "Sl")
        if not info then return nil end
        local src = by_chunk[info.source]
        if src then
            local i = src.lines[info.currentline]
            return i and src.ops[i] or nil
        end
    end
end

-- "kind:shape" -> {src, run}. The single-op loops live as long as the
-- module, and so must their source records: by_chunk holds them weakly,
-- and failing_op needs them to name the op.
local cache = {}

--- A compiled single-op loop for RDD methods, shared by every call with the
--- same kind and input shape: run(f, n, a, b, ends).
function stage.single(kind, in_shape)
    local id = kind .. ":" .. in_shape
    local entry = cache[id]
    if not entry then
        local src = stage.generate({{kind = kind, label = kind}}, in_shape, nil, "rdd." .. kind)
        local factory = stage.load(src)
        entry = {src = src, run = function(f, n, a, b, ends) return factory(f)(n, a, b, ends) end}
        cache[id] = entry
    end
    return entry.run
end

return stage

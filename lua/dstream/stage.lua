--- The stage compiler: a chain of narrow operations becomes one Lua loop.
---
--- Phases, as in LPeg: the chain of ops (IR: {kind, f, label}) -> Lua source
--- (one numeric loop per stage, one nested loop per flatMap) -> a loaded
--- function whose upvalues are the user's closures. No intermediate array per
--- operator, pairs travel as two locals and two parallel output arrays, and
--- nothing is allocated per record unless a user function allocates.
---
--- Each user call sits on a line of its own; `lines` maps a line of the
--- generated chunk back to the op, so that an error raised inside a user
--- function names the operator that called it, at no cost per record.
local stage = {}

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
stage.SHAPES = SHAPES

--- Whether kind is a narrow op the compiler fuses.
function stage.is_narrow(kind)
    return SHAPES[kind] ~= nil
end

--- The shape after applying kind to records of shape `shape` (nil if not allowed).
function stage.out_shape(kind, shape)
    return SHAPES[kind] and SHAPES[kind][shape]
end

local chunk_count = 0
local by_chunk = setmetatable({}, {__mode = "v"})

-- Emits the body of the chain from op index i on, with the current record in
-- locals named by `cur` ({x = name} or {k = name, v = name}).
local function emit_ops(ops, i, cur, shape, out, lines, depth, out_shape)
    local function line(s, op)
        out[#out + 1] = string.rep("    ", depth) .. s
        if op then lines[#out] = op end
    end
    if i > #ops then
        line("m = m + 1")
        if shape == "v" then
            line(format("oa[m] = %s", cur.x))
        else
            line(format("oa[m] = %s; ob[m] = %s", cur.k, cur.v))
        end
        return
    end
    local op = ops[i]
    local f = "f" .. i
    local kind = op.kind
    local args = shape == "v" and cur.x or (cur.k .. ", " .. cur.v)
    if kind == "map" then
        local x = "x" .. i
        line(format("local %s = %s(%s)", x, f, args), i)
        line(format("if %s == nil then fail(%d, 'function returned nil') end", x, i), i)
        return emit_ops(ops, i + 1, {x = x}, "v", out, lines, depth, out_shape)
    elseif kind == "filter" then
        line(format("if %s(%s) then", f, args), i)
        emit_ops(ops, i + 1, cur, shape, out, lines, depth + 1, out_shape)
        line("end")
        return
    elseif kind == "mapToPair" then
        local k, v = "k" .. i, "v" .. i
        line(format("local %s, %s = %s(%s)", k, v, f, args), i)
        line(format("if %s == nil then fail(%d, 'function returned a nil key') end", k, i), i)
        line(format("if %s == nil then fail(%d, 'function returned a nil value (return key, value)') end", v, i), i)
        return emit_ops(ops, i + 1, {k = k, v = v}, "p", out, lines, depth, out_shape)
    elseif kind == "mapValues" then
        local v = "v" .. i
        line(format("local %s = %s(%s)", v, f, cur.v), i)
        line(format("if %s == nil then fail(%d, 'function returned nil') end", v, i), i)
        return emit_ops(ops, i + 1, {k = cur.k, v = v}, "p", out, lines, depth, out_shape)
    elseif kind == "keys" then
        return emit_ops(ops, i + 1, {x = cur.k}, "v", out, lines, depth, out_shape)
    elseif kind == "values" then
        return emit_ops(ops, i + 1, {x = cur.v}, "v", out, lines, depth, out_shape)
    end
    -- The flat kinds: a nested loop over the array the user function returned.
    local arr, j = "arr" .. i, "j" .. i
    local callargs = kind == "flatMapValues" and cur.v or args
    line(format("local %s = %s(%s)", arr, f, callargs), i)
    line(format("if type(%s) ~= 'table' then fail(%d, 'function must return an array, got ' .. type(%s)) end", arr, i, arr), i)
    line(format("for %s = 1, #%s do", j, arr))
    local nxt
    if kind == "flatMap" then
        local x = "x" .. i
        line(format("    local %s = %s[%s]", x, arr, j))
        nxt = {x = x}
        emit_ops(ops, i + 1, nxt, "v", out, lines, depth + 1, out_shape)
    elseif kind == "flatMapToPair" then
        local kv, k, v = "kv" .. i, "k" .. i, "v" .. i
        line(format("    local %s = %s[%s]", kv, arr, j))
        line(format("    if type(%s) ~= 'table' then fail(%d, 'function must return an array of {key, value} pairs, got an element of type ' .. type(%s)) end", kv, i, kv), i)
        line(format("    local %s, %s = %s[1], %s[2]", k, v, kv, kv))
        line(format("    if %s == nil or %s == nil then fail(%d, 'a pair {key, value} has a nil key or value') end", k, v, i), i)
        emit_ops(ops, i + 1, {k = k, v = v}, "p", out, lines, depth + 1, out_shape)
    else -- flatMapValues
        local v = "v" .. i
        line(format("    local %s = %s[%s]", v, arr, j))
        emit_ops(ops, i + 1, {k = cur.k, v = v}, "p", out, lines, depth + 1, out_shape)
    end
    line("end")
end

--- Compile a chain of ops over input records of shape in_shape ("v" or "p").
--- Returns a factory: factory(f1, ..., fn) -> run(n, a, b, ends) returning
--- m, oa, ob (nil for values), oends; plus the stage info (name, source, lines, out_shape).
function stage.compile(ops, in_shape, label)
    chunk_count = chunk_count + 1
    local kinds, shape = {}, in_shape
    for i, op in ipairs(ops) do
        kinds[i] = op.kind
        shape = assert(stage.out_shape(op.kind, shape), "op does not apply to this shape")
    end
    local out_shape = shape
    local name = format("=dstream:stage%d:%s", chunk_count, label or concat(kinds, ","))
    local out, lines = {}, {}
    local fnames = {}
    for i = 1, #ops do fnames[i] = "f" .. i end
    out[1] = "local fail, type = ..."
    out[2] = "return function(" .. concat(fnames, ", ") .. ")"
    out[3] = "return function(n, a, b, ends)"
    out[4] = "    local oa, ob, oends = {}, " .. (out_shape == "p" and "{}" or "nil") .. ", {}"
    out[5] = "    local m, lo = 0, 1"
    out[6] = "    for p = 1, #ends do"
    out[7] = "        local hi = ends[p]"
    out[8] = "        for i = lo, hi do"
    if in_shape == "v" then
        out[9] = "            local x0 = a[i]"
        emit_ops(ops, 1, {x = "x0"}, "v", out, lines, 3, out_shape)
    else
        out[9] = "            local k0, v0 = a[i], b[i]"
        emit_ops(ops, 1, {k = "k0", v = "v0"}, "p", out, lines, 3, out_shape)
    end
    out[#out + 1] = "        end"
    out[#out + 1] = "        oends[p] = m"
    out[#out + 1] = "        lo = hi + 1"
    out[#out + 1] = "    end"
    out[#out + 1] = "    return m, oa, ob, oends"
    out[#out + 1] = "end"
    out[#out + 1] = "end"
    local source = concat(out, "\n")
    local info = {name = name, source = source, lines = lines, ops = ops, out_shape = out_shape}
    local function fail(i, msg)
        error(setmetatable({stage_op = ops[i], cause = msg}, stage.Failure), 0)
    end
    local chunk = assert(loadstring(source, name))
    local factory = chunk(fail, type)
    by_chunk[name] = info
    return factory, info
end

--- Raised by generated code for a contract violation (nil record, bad array).
stage.Failure = {__tostring = function(e) return e.cause end}

--- The op whose user function was running when an error was raised: searched
--- from the error handler's caller outwards, as a frame of a generated chunk.
function stage.failing_op(level)
    for l = level or 3, 60 do
        local info = debug.getinfo(l, "Sl")
        if not info then return nil end
        local st = by_chunk[info.source]
        if st then
            local i = st.lines[info.currentline]
            return i and st.ops[i] or nil
        end
    end
end

local cache = {}

--- A compiled single-op loop for RDD methods, shared by every call with the
--- same kind and input shape: run(f, n, a, b, ends).
function stage.single(kind, in_shape)
    local key = kind .. ":" .. in_shape
    local entry = cache[key]
    if not entry then
        local factory = stage.compile({{kind = kind, label = kind}}, in_shape, "rdd." .. kind)
        entry = function(f, n, a, b, ends) return factory(f)(n, a, b, ends) end
        cache[key] = entry
    end
    return entry
end

--- Print the generated source of a stage (for explain()).
function stage.source(info)
    return info.source
end

return stage

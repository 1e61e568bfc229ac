--- Output operations: the sinks of the graph. Each registers an output node
--- whose job runs once per batch the stream produces.
local core = require "dstream.core"
local format = require "dstream.format"
local util = require "dstream.util"
local RDD = require "dstream.rdd"

local sinks = {}

local show, show_pair = format.record, format.pair
local sformat, concat = string.format, table.concat

local RULE = string.rep("-", 43)

local function output(stream, kind, desc, run)
    local DStream = getmetatable(stream)
    local node = DStream.new(stream.ctx, {kind = kind, desc = desc, parents = {stream}, output = true,
        flags = core.NODE_OUTPUT, pairs = stream.pairs})
    node.run = function(t)
        local r = stream:_rdd(t)
        if r ~= nil then run(r, t) end
    end
    stream.ctx.outputs[#stream.ctx.outputs + 1] = node
    return node
end

local function lines_of(r, lo, hi, out)
    local a, b = r.a, r.b
    if b then
        for i = lo, hi do out[#out + 1] = show_pair(a[i], b[i]) end
    else
        for i = lo, hi do out[#out + 1] = show(a[i]) end
    end
    return out
end

--- print(n = 10): Spark's format, the first n records of every batch.
function sinks.print(stream, n)
    if n == nil then n = 10 end
    if type(n) ~= "number" or n < 0 or n ~= math.floor(n) then
        error("print: argument #1 (n) must be a whole number >= 0", 2)
    end
    output(stream, "print", "print", function(r, t)
        local out = {RULE, sformat("Time: %d ms", t), RULE}
        lines_of(r, 1, math.min(n, r.n), out)
        if r.n > n then out[#out + 1] = "..." end
        out[#out + 1] = ""
        out[#out + 1] = ""
        io.write(concat(out, "\n"))
        io.flush()
    end)
    return nil
end

--- foreachRDD(fn(rdd, timeMs)): user code per batch.
function sinks.foreachRDD(stream, fn)
    util.check_function("foreachRDD", 1, "fn", fn, 2)
    output(stream, "foreachRDD", "foreachRDD", function(r, t) fn(r, t) end)
    return nil
end

--- collectBatches(): a table receiving, per batch, the array of its records.
function sinks.collectBatches(stream)
    local batches = {}
    output(stream, "collectBatches", "collectBatches", function(r)
        batches[#batches + 1] = r:collect()
    end)
    return batches
end

local function parent_dir(path)
    return path:match("^(.*)/[^/]*$") or "."
end

-- Write one directory per batch: part files into a temporary directory,
-- each fsynced, then _SUCCESS, then one rename and an fsync of the parent.
local function write_batch_dir(dir, parts, op)
    local function must(ok, err)
        if not ok then error(sformat("%s: %s", op, err), 0) end
    end
    local parent = parent_dir(dir)
    must(core.fs_mkdirs(parent))
    local tmp = sformat("%s._tmp", dir)
    if core.fs_stat(tmp) then must(core.fs_remove_tree(tmp)) end
    must(core.fs_mkdirs(tmp))
    for p, data in ipairs(parts) do
        must(core.fs_write(sformat("%s/part-%05d", tmp, p - 1), data))
    end
    must(core.fs_write(tmp .. "/_SUCCESS", ""))
    must(core.fs_fsync_dir(tmp))
    -- A batch written before (a batch re-run after recovery) is replaced
    -- whole and atomically: the two names are swapped, so a reader sees the
    -- old directory or the new one, never neither; then the old one goes.
    if core.fs_stat(dir) then
        local swapped, msg, name = core.fs_exchange(tmp, dir)
        if swapped then
            must(core.fs_fsync_dir(parent))
            must(core.fs_remove_tree(tmp))
            return
        end
        if name ~= "EINVAL" then must(swapped, msg) end
        must(core.fs_remove_tree(dir)) -- a file system that cannot swap names
    end
    must(core.fs_rename(tmp, dir))
    must(core.fs_fsync_dir(parent))
end

local function batch_dir(prefix, suffix, t)
    local dir = sformat("%s-%d", prefix, t)
    if suffix ~= nil then dir = dir .. "." .. suffix end
    return dir
end

local function check_prefix(op, prefix, suffix)
    if type(prefix) ~= "string" or prefix == "" then
        error(op .. ": argument #1 (prefix) must be a non-empty string", 3)
    end
    if suffix ~= nil and type(suffix) ~= "string" then
        error(op .. ": argument #2 (suffix) must be a string", 3)
    end
end

local function each_partition(r, fn)
    local lo = 1
    for p = 1, #r.ends do
        local hi = r.ends[p]
        fn(p, lo, hi)
        lo = hi + 1
    end
end

-- An output writing one directory per batch, a part file per partition
-- whose bytes part(r, lo, hi) makes.
local function save_batches(op, stream, prefix, suffix, part)
    check_prefix(op, prefix, suffix)
    output(stream, op, sformat("%s(%s)", op, prefix), function(r, t)
        local parts = {}
        each_partition(r, function(p, lo, hi) parts[p] = part(r, lo, hi) end)
        write_batch_dir(batch_dir(prefix, suffix, t), parts, op)
    end)
    return nil
end

local function text_part(r, lo, hi)
    if hi < lo then return "" end
    local lines = lines_of(r, lo, hi, {})
    lines[#lines + 1] = ""
    return concat(lines, "\n")
end

local function slice(arr, lo, hi)
    local out = {}
    for i = lo, hi do out[i - lo + 1] = arr[i] end
    return out
end

local function object_part(r, lo, hi)
    local data, err = core.encode(slice(r.a, lo, hi), hi - lo + 1, r.b and slice(r.b, lo, hi) or nil)
    if not data then error("saveAsObjectFiles: " .. err, 0) end
    return data
end

--- saveAsTextFiles(prefix, suffix): one directory of text part files per batch.
function sinks.saveAsTextFiles(stream, prefix, suffix)
    return save_batches("saveAsTextFiles", stream, prefix, suffix, text_part)
end

--- saveAsObjectFiles(prefix, suffix): the same layout in the codec's format.
function sinks.saveAsObjectFiles(stream, prefix, suffix)
    return save_batches("saveAsObjectFiles", stream, prefix, suffix, object_part)
end

--- Read a directory written by saveAsObjectFiles back as an RDD.
function sinks.objectFile(path)
    if type(path) ~= "string" then error("objectFile: argument #1 (path) must be a string", 3) end
    local names, err = core.fs_list(path)
    if not names then error("objectFile: " .. err, 3) end
    local has_success, parts = false, {}
    for _, name in ipairs(names) do
        if name == "_SUCCESS" then has_success = true end
        if name:match("^part%-%d+$") then parts[#parts + 1] = name end
    end
    if not has_success then
        error(sformat("objectFile: %s is not a complete batch directory (no _SUCCESS)", path), 3)
    end
    local n, a, b, ends, pairs_ = 0, {}, nil, {}, nil
    for _, name in ipairs(parts) do
        local file = path .. "/" .. name
        local f, oerr = io.open(file, "rb")
        if not f then error("objectFile: " .. oerr, 3) end
        local data, rerr = f:read("*a")
        f:close()
        if not data then error(sformat("objectFile: %s: %s", file, rerr), 3) end
        local pos = 1
        while pos <= #data do
            local xs, m, ys, nextpos = core.decode(data, pos)
            if not xs then error(sformat("objectFile: %s: %s", file, m), 3) end
            if pairs_ == nil then
                pairs_ = ys and true or false
                if pairs_ then b = {} end
            elseif pairs_ ~= (ys and true or false) then
                error(sformat("objectFile: %s mixes pairs and single values", path), 3)
            end
            for i = 1, m do
                a[n + i] = xs[i]
                if b then b[n + i] = ys[i] end
            end
            n, pos = n + m, nextpos
        end
        ends[#ends + 1] = n
    end
    if #ends == 0 then ends[1] = 0 end
    return RDD.new(n, a, b, ends, nil, "objectFile:" .. path)
end

return sinks

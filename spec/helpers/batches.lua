-- Helpers for specs written as input batches in, expected batches out:
-- run a graph under a manual clock, and compare shuffled outputs (which come
-- in no defined order) after sorting them.
local dstream = require "dstream"

local batches = {}

local function plain(x)
    if type(x) ~= "table" then return x end
    local out = {}
    for k, v in pairs(x) do out[k] = plain(v) end
    return out
end
--- A deep copy without metatables: a collected pair {k, v} becomes a plain table.
batches.plain = plain

local show

local function show_table(t)
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
        if type(a) == type(b) and type(a) ~= "boolean" then return a < b end
        return type(a) < type(b)
    end)
    local parts = {}
    for i, k in ipairs(keys) do parts[i] = show(k) .. "=" .. show(t[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
end

-- One text per record, equal texts for equal records: the sort key.
show = function(x)
    local tx = type(x)
    if tx == "table" then return show_table(x) end
    if tx == "string" then return string.format("%q", x) end
    if tx == "number" then return string.format("%.17g", x) end
    return tostring(x)
end
batches.show = show

-- The order records are sorted in: by type, numbers and strings by value,
-- arrays member by member (a missing member first), then by their text.
local function before(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == "number" or ta == "string" then return a < b end
    if ta == "table" then
        for i = 1, math.max(#a, #b) do
            local x, y = a[i], b[i]
            if x == nil or y == nil then
                if x ~= y then return x == nil end
            elseif before(x, y) then
                return true
            elseif before(y, x) then
                return false
            end
        end
    end
    return show(a) < show(b)
end
batches.before = before

--- The records of one batch as plain tables, sorted (see before).
function batches.sorted(batch)
    local out = {}
    for i, x in ipairs(batch) do out[i] = plain(x) end
    table.sort(out, before)
    return out
end

--- Every batch of a collectBatches() table, each sorted.
function batches.sorted_all(list)
    local out = {}
    for i, batch in ipairs(list) do out[i] = batches.sorted(batch) end
    return out
end

--- Every batch as plain tables, in the order the records came.
function batches.plain_all(list)
    local out = {}
    for i, batch in ipairs(list) do out[i] = plain(batch) end
    return out
end

--- A manual-clock context with a 1 s batch interval (opts override).
function batches.context(opts)
    local o = {batchInterval = 1, clock = "manual"}
    for k, v in pairs(opts or {}) do o[k] = v end
    return dstream.StreamingContext(o)
end

--- Runs build(ssc, stream) over a queueStream of `input` (one array per
--- batch) for #input batches (or n) and returns what the stream build
--- returned collected, batch by batch.
function batches.run(input, build, n)
    local ssc = batches.context()
    local out = build(ssc:queueStream(input), ssc):collectBatches()
    ssc:start()
    ssc:advance(n or #input)
    ssc:stop()
    return out
end

--- The same for two queue streams: build(s1, s2, ssc).
function batches.run2(input1, input2, build, n)
    local ssc = batches.context()
    local out = build(ssc:queueStream(input1), ssc:queueStream(input2), ssc):collectBatches()
    ssc:start()
    ssc:advance(n or math.max(#input1, #input2))
    ssc:stop()
    return out
end

return batches

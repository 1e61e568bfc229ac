--- How records are shown as text: by print(), saveAsTextFiles() and tostring
--- of a collected pair. Strings as they are, whole numbers without a
--- fraction, arrays as {a, b, c}, maps as {k=v} in key order, pairs as (k,v).
---
--- Spark prints a Tuple2 as (a,b), and a Lua pipeline makes its tuples as
--- two-element arrays (mapWithState's `return {key, sum}`), so a record of a
--- value stream that is exactly a two-element array prints as (a,b) too. Only
--- the record itself: an array inside it, or a pair's value made by the user
--- (groupByKey's {1, 2}), stays {a, b}. Values the engine builds as tuples
--- (a join's {v, w}, cogroup's {vs, ws}) carry the Pair metatable and print
--- as (v,w) wherever they are.
local format = {}

local type, tostring, floor, concat, sort = type, tostring, math.floor, table.concat, table.sort
local sformat = string.format

local show

local function show_number(x)
    if x == floor(x) and x > -2^63 and x < 2^63 then return sformat("%d", x) end
    return tostring(x)
end

local function show_table(t, depth)
    local mt = getmetatable(t)
    if mt and mt.__tostring then return tostring(t) end
    if depth > 8 then return "{...}" end
    local n, parts = #t, {}
    for i = 1, n do parts[i] = show(t[i], depth + 1) end
    local keys = {}
    local k = next(t)
    while k ~= nil do
        if not (type(k) == "number" and k >= 1 and k <= n and k == floor(k)) then keys[#keys + 1] = k end
        k = next(t, k)
    end
    if #keys > 0 then
        sort(keys, function(a, b)
            if type(a) == type(b) and type(a) ~= "boolean" then return a < b end
            return type(a) < type(b)
        end)
        for _, key in ipairs(keys) do parts[#parts + 1] = show(key, depth + 1) .. "=" .. show(t[key], depth + 1) end
    end
    return "{" .. concat(parts, ", ") .. "}"
end

show = function(x, depth)
    local tx = type(x)
    if tx == "string" then return x end
    if tx == "number" then return show_number(x) end
    if tx == "table" then return show_table(x, depth or 0) end
    return tostring(x)
end

-- Whether t is a plain table holding exactly t[1] and t[2].
local function is_tuple(t)
    if getmetatable(t) ~= nil or t[1] == nil or t[2] == nil then return false end
    local k = next(t)
    local n = 0
    while k ~= nil do
        n = n + 1
        if n > 2 then return false end
        k = next(t, k)
    end
    return true
end

--- One record of a value stream as text: a two-element array as (a,b).
function format.record(x)
    if type(x) == "table" and is_tuple(x) then
        return "(" .. show(x[1], 1) .. "," .. show(x[2], 1) .. ")"
    end
    return show(x, 0)
end

--- Any value as text, by the nested rules (a two-element array as {a, b}).
format.value = show

--- One pair as text: (k,v).
function format.pair(k, v)
    return "(" .. show(k) .. "," .. show(v) .. ")"
end

--- The metatable of a pair (or a tuple the engine builds) as one table:
--- {k, v}, shown (k,v) by tostring and print.
local Pair = {}
Pair.__tostring = function(p) return format.pair(p[1], p[2]) end
format.Pair = Pair

--- A pair as one value: the table {k, v}, shown as (k,v).
function format.as_pair(k, v)
    return setmetatable({k, v}, Pair)
end

return format

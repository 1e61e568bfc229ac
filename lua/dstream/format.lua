--- How records are shown as text: by print(), saveAsTextFiles() and tostring
--- of a collected pair. Strings as they are, whole numbers without a
--- fraction, arrays as {a, b}, maps as {k=v} in key order, pairs as (k,v).
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

--- One record as text.
format.record = show

--- One pair as text: (k,v).
function format.pair(k, v)
    return "(" .. show(k) .. "," .. show(v) .. ")"
end

local Pair = {}
Pair.__tostring = function(p) return format.pair(p[1], p[2]) end
format.Pair = Pair

--- A pair as one value: the table {k, v}, shown as (k,v).
function format.as_pair(k, v)
    return setmetatable({k, v}, Pair)
end

return format

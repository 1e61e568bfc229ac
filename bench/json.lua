--[[ json: the little JSON the benchmarks need.

Every benchmark prints its measurements as JSON lines, and the driver reads
back the lines that other programs (the C baseline) print. This is enough
for that and no more:

    json.encode(value, key_order)  one line of JSON. Tables with keys 1..n
                                   (n > 0) are arrays, other tables objects;
                                   object keys listed in key_order come first
                                   in that order, the rest sorted. Integers
                                   print without a fraction, other numbers in
                                   the fewest digits that read back exactly;
                                   NaN, infinities and functions raise.
    json.decode(text)              the value of one JSON text; null becomes
                                   nil. Raises "json: <what> at byte <n>".
]]

local json = {}

local ESCAPES = {
    ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
    ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function encode_string(s)
    return '"' .. s:gsub('[%c"\\]', function(c)
        return ESCAPES[c] or string.format("\\u%04x", c:byte())
    end) .. '"'
end

local function encode_number(n)
    if n ~= n or n == math.huge or n == -math.huge then
        error("json: cannot encode " .. tostring(n), 3)
    end
    if n % 1 == 0 and math.abs(n) < 2 ^ 53 then
        return string.format("%.0f", n)
    end
    local s = string.format("%.15g", n)
    if tonumber(s) ~= n then
        s = string.format("%.17g", n)
    end
    return s
end

local function is_array(t)
    local n = #t
    if n == 0 then
        return false
    end
    local count = 0
    for _ in pairs(t) do
        count = count + 1
    end
    return count == n
end

local encode_value

local function encode_table(t, key_order, out)
    if is_array(t) then
        out[#out + 1] = "["
        for i = 1, #t do
            if i > 1 then
                out[#out + 1] = ","
            end
            encode_value(t[i], key_order, out)
        end
        out[#out + 1] = "]"
        return
    end
    local keys, rank = {}, {}
    for i, k in ipairs(key_order or {}) do
        rank[k] = i
    end
    for k in pairs(t) do
        if type(k) ~= "string" then
            error("json: object keys must be strings, got " .. type(k), 4)
        end
        keys[#keys + 1] = k
    end
    table.sort(keys, function(a, b)
        local ra, rb = rank[a] or math.huge, rank[b] or math.huge
        if ra ~= rb then
            return ra < rb
        end
        return a < b
    end)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
        if i > 1 then
            out[#out + 1] = ","
        end
        out[#out + 1] = encode_string(k)
        out[#out + 1] = ":"
        encode_value(t[k], key_order, out)
    end
    out[#out + 1] = "}"
end

function encode_value(v, key_order, out)
    local kind = type(v)
    if kind == "string" then
        out[#out + 1] = encode_string(v)
    elseif kind == "number" then
        out[#out + 1] = encode_number(v)
    elseif kind == "boolean" then
        out[#out + 1] = tostring(v)
    elseif kind == "table" then
        encode_table(v, key_order, out)
    else
        error("json: cannot encode a " .. kind, 3)
    end
end

function json.encode(value, key_order)
    local out = {}
    encode_value(value, key_order, out)
    return table.concat(out)
end

-- Decoding ------------------------------------------------------------------------

local function fail(pos, what)
    error(string.format("json: %s at byte %d", what, pos), 0)
end

local function skip_space(text, pos)
    return text:find("[^ \t\r\n]", pos) or #text + 1
end

local function utf8_char(code)
    if code < 0x80 then
        return string.char(code)
    elseif code < 0x800 then
        return string.char(0xC0 + math.floor(code / 0x40), 0x80 + code % 0x40)
    elseif code < 0x10000 then
        return string.char(0xE0 + math.floor(code / 0x1000),
            0x80 + math.floor(code / 0x40) % 0x40, 0x80 + code % 0x40)
    end
    return string.char(0xF0 + math.floor(code / 0x40000), 0x80 + math.floor(code / 0x1000) % 0x40,
        0x80 + math.floor(code / 0x40) % 0x40, 0x80 + code % 0x40)
end

local UNESCAPES = {['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f",
    n = "\n", r = "\r", t = "\t"}

local function decode_string(text, pos)
    local parts = {}
    local i = pos + 1
    while true do
        local j = text:find('["\\%c]', i)
        if j == nil then
            fail(pos, "unterminated string")
        end
        parts[#parts + 1] = text:sub(i, j - 1)
        local c = text:sub(j, j)
        if c == '"' then
            return table.concat(parts), j + 1
        elseif c ~= "\\" then
            fail(j, "control character in string")
        end
        local e = text:sub(j + 1, j + 1)
        if UNESCAPES[e] then
            parts[#parts + 1] = UNESCAPES[e]
            i = j + 2
        elseif e == "u" then
            local code = tonumber(text:match("^%x%x%x%x", j + 2), 16)
            if code == nil then
                fail(j, "bad \\u escape")
            end
            i = j + 6
            local low = code >= 0xD800 and code < 0xDC00
                and tonumber(text:match("^\\u(%x%x%x%x)", i), 16)
            if low and low >= 0xDC00 and low < 0xE000 then
                code = 0x10000 + (code - 0xD800) * 0x400 + (low - 0xDC00)
                i = i + 6
            end
            parts[#parts + 1] = utf8_char(code)
        else
            fail(j, "bad escape")
        end
    end
end

local decode_value

local function decode_array(text, pos)
    local array, n = {}, 0
    pos = skip_space(text, pos + 1)
    if text:sub(pos, pos) == "]" then
        return array, pos + 1
    end
    while true do
        local v
        v, pos = decode_value(text, pos)
        n = n + 1
        array[n] = v
        pos = skip_space(text, pos)
        local c = text:sub(pos, pos)
        if c == "]" then
            return array, pos + 1
        elseif c ~= "," then
            fail(pos, "expected ',' or ']'")
        end
        pos = pos + 1
    end
end

local function decode_object(text, pos)
    local object = {}
    pos = skip_space(text, pos + 1)
    if text:sub(pos, pos) == "}" then
        return object, pos + 1
    end
    while true do
        pos = skip_space(text, pos)
        if text:sub(pos, pos) ~= '"' then
            fail(pos, "expected a string key")
        end
        local k
        k, pos = decode_string(text, pos)
        pos = skip_space(text, pos)
        if text:sub(pos, pos) ~= ":" then
            fail(pos, "expected ':'")
        end
        object[k], pos = decode_value(text, pos + 1)
        pos = skip_space(text, pos)
        local c = text:sub(pos, pos)
        if c == "}" then
            return object, pos + 1
        elseif c ~= "," then
            fail(pos, "expected ',' or '}'")
        end
        pos = pos + 1
    end
end

function decode_value(text, pos)
    pos = skip_space(text, pos)
    local c = text:sub(pos, pos)
    if c == "{" then
        return decode_object(text, pos)
    elseif c == "[" then
        return decode_array(text, pos)
    elseif c == '"' then
        return decode_string(text, pos)
    end
    local number = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
    if number and tonumber(number) then
        return tonumber(number), pos + #number
    end
    local word = text:match("^%a+", pos)
    if word == "true" then
        return true, pos + 4
    elseif word == "false" then
        return false, pos + 5
    elseif word == "null" then
        return nil, pos + 4
    end
    fail(pos, "unexpected " .. (c == "" and "end of text" or string.format("%q", c)))
end

function json.decode(text)
    local value, pos = decode_value(text, 1)
    pos = skip_space(text, pos)
    if pos <= #text then
        fail(pos, "trailing characters")
    end
    return value
end

return json

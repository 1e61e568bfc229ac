--[[ prometheus: a strict parser of the Prometheus text exposition format 0.0.4.

    local prometheus = require("spec.helpers.prometheus")
    local families = prometheus.parse(text)   -- raises on anything off-format
    families.dstream_records_total.type       -- "counter"
    families.dstream_records_total.samples[1] -- {name =, labels = {source = ...}, value = 12}
    prometheus.value(families, "dstream_records_total", {source = "x"})  -- 12 or nil

Strict on what promtool and scrapers rely on: every line is a HELP, a TYPE
or a sample; a family has one HELP and one TYPE, both before its samples,
and its samples are together; names and label names are valid; label values
are quoted with only \\, \" and \n escaped; values are numbers; no series
twice; counters are >= 0 and end in _total; a histogram has cumulative
buckets in increasing le order ending with le="+Inf", equal to its _count,
and a _sum; the text ends with a newline.
]]

local prometheus = {}

local NAME = "^[a-zA-Z_:][a-zA-Z0-9_:]*$"
local LABEL = "^[a-zA-Z_][a-zA-Z0-9_]*$"

local function fail(n, line, why)
    error(string.format("metrics line %d (%s): %s", n, line, why), 0)
end

local function number(s)
    if s == "+Inf" then return math.huge end
    if s == "-Inf" then return -math.huge end
    if s == "NaN" then return 0 / 0 end
    -- decimal only (tonumber would take hex and spaces too)
    local mantissa, exponent = s:match("^([-+]?[%d.]+)(.*)$")
    if not mantissa or not mantissa:match("%d") or select(2, mantissa:gsub("%.", "")) > 1 then return nil end
    if exponent ~= "" and not exponent:match("^[eE][-+]?%d+$") then return nil end
    return tonumber(s)
end

-- {a="x",b="y"} at the start of s: labels, the rest of s.
local function parse_labels(s, n, line)
    local labels, i = {}, 2
    while true do
        if s:sub(i, i) == "}" then return labels, s:sub(i + 1) end
        local name, eq = s:match("^([^=]*)()=", i)
        if not name or not name:match(LABEL) then fail(n, line, "bad label name") end
        if labels[name] then fail(n, line, "label " .. name .. " twice") end
        i = eq + 1
        if s:sub(i, i) ~= '"' then fail(n, line, "label value not quoted") end
        i = i + 1
        local value = {}
        while true do
            local c = s:sub(i, i)
            if c == "" then fail(n, line, "unterminated label value") end
            if c == '"' then break end
            if c == "\\" then
                local e = s:sub(i + 1, i + 1)
                if e == "n" then value[#value + 1] = "\n"
                elseif e == "\\" or e == '"' then value[#value + 1] = e
                else fail(n, line, "bad escape \\" .. e) end
                i = i + 2
            else
                value[#value + 1] = c
                i = i + 1
            end
        end
        labels[name] = table.concat(value)
        i = i + 1
        local sep = s:sub(i, i)
        if sep == "," then i = i + 1 elseif sep ~= "}" then fail(n, line, "expected , or } after a label") end
    end
end

local function series_key(name, labels)
    local keys = {}
    for k in pairs(labels) do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = {name}
    for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. labels[k] end
    return table.concat(parts, "\0")
end

local function family_of(families, name)
    if families[name] then return families[name], "" end
    for _, suffix in ipairs({"_bucket", "_sum", "_count"}) do
        local base = name:sub(1, -#suffix - 1)
        if name:sub(-#suffix) == suffix and families[base] and families[base].type == "histogram" then
            return families[base], suffix
        end
    end
end

local function check_histogram(f)
    local groups = {}
    for _, s in ipairs(f.samples) do
        local labels = {}
        for k, v in pairs(s.labels) do
            if k ~= "le" then labels[k] = v end
        end
        local key = series_key("", labels)
        local g = groups[key] or {buckets = {}}
        groups[key] = g
        if s.suffix == "_bucket" then
            if not s.labels.le then error(f.name .. ": a bucket without le", 0) end
            g.buckets[#g.buckets + 1] = {le = number(s.labels.le), count = s.value}
        elseif s.suffix == "_sum" then
            g.sum = s.value
        elseif s.suffix == "_count" then
            g.count = s.value
        else
            error(f.name .. ": a histogram sample " .. s.name .. " that is not a bucket, sum or count", 0)
        end
    end
    for _, g in pairs(groups) do
        local b = g.buckets
        if #b == 0 or b[#b].le ~= math.huge then error(f.name .. ": no le=\"+Inf\" bucket last", 0) end
        for i = 2, #b do
            if b[i].le <= b[i - 1].le then error(f.name .. ": buckets not in increasing le order", 0) end
            if b[i].count < b[i - 1].count then error(f.name .. ": bucket counts not cumulative", 0) end
        end
        if g.sum == nil or g.count == nil then error(f.name .. ": no _sum or _count", 0) end
        if g.count ~= b[#b].count then error(f.name .. ": _count differs from the +Inf bucket", 0) end
    end
end

--- Parse text; raises with the line and what is wrong.
function prometheus.parse(text)
    assert(type(text) == "string", "metrics text expected")
    if text:sub(-1) ~= "\n" then error("the metrics text does not end with a newline", 0) end
    local families, order, seen, current = {}, {}, {}, nil
    local n = 0
    for line in text:gmatch("([^\n]*)\n") do
        n = n + 1
        if line:match("^#") then
            local kind, name, rest = line:match("^# (%u+) (%S+) ?(.*)$")
            if kind == "HELP" or kind == "TYPE" then
                if not name:match(NAME) then fail(n, line, "bad metric name") end
                local f = families[name]
                if not f then
                    f = {name = name, samples = {}}
                    families[name] = f
                    order[#order + 1] = name
                elseif #f.samples > 0 then
                    fail(n, line, kind .. " after the family's samples")
                end
                if current ~= f then
                    if f.closed then fail(n, line, "family " .. name .. " seen before") end
                    if current then current.closed = true end
                    current = f
                end
                if kind == "HELP" then
                    if f.help then fail(n, line, "second HELP") end
                    f.help = rest
                else
                    if f.type then fail(n, line, "second TYPE") end
                    if not ({counter = 1, gauge = 1, histogram = 1, summary = 1, untyped = 1})[rest] then
                        fail(n, line, "unknown type " .. rest)
                    end
                    f.type = rest
                end
            end
        elseif line ~= "" then
            local name, rest = line:match("^([^%s{]+)(.*)$")
            if not name or not name:match(NAME) then fail(n, line, "bad sample name") end
            local labels = {}
            if rest:sub(1, 1) == "{" then labels, rest = parse_labels(rest, n, line) end
            local value, ts = rest:match("^ (%S+) ?(%S*)$")
            if not value or not number(value) then fail(n, line, "bad value") end
            if ts ~= "" and not ts:match("^%-?%d+$") then fail(n, line, "bad timestamp") end
            local f, suffix = family_of(families, name)
            if not f or not f.type then fail(n, line, "sample before its family's TYPE") end
            if not f.help then fail(n, line, "sample of a family without HELP") end
            if f ~= current then fail(n, line, "samples of " .. f.name .. " are not together") end
            local key = series_key(name, labels)
            if seen[key] then fail(n, line, "series twice") end
            seen[key] = true
            local v = number(value)
            if f.type == "counter" then
                if not name:match("_total$") then fail(n, line, "a counter's name must end in _total") end
                if v < 0 then fail(n, line, "negative counter") end
            end
            f.samples[#f.samples + 1] = {name = name, suffix = suffix, labels = labels, value = v}
        end
    end
    for _, name in ipairs(order) do
        local f = families[name]
        if not f.type then error(name .. ": no TYPE", 0) end
        if f.type == "histogram" then check_histogram(f) end
    end
    return families
end

--- The value of the sample name{labels} (all labels given must match), or nil.
function prometheus.value(families, name, labels)
    local f = family_of(families, name)
    if not f then return nil end
    for _, s in ipairs(f.samples) do
        if s.name == name then
            local ok = true
            for k, v in pairs(labels or {}) do
                if s.labels[k] ~= v then ok = false end
            end
            if ok then return s.value end
        end
    end
    return nil
end

return prometheus

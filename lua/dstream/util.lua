--- Small shared helpers: durations, argument checks, and the error type that
--- carries an operator, a stream and a batch time up to the user.
local util = {}

local type, floor, format = type, math.floor, string.format

--- Seconds to whole milliseconds; raises at the caller's caller when not a positive duration.
function util.duration_ms(what, s, level)
    if type(s) ~= "number" or s ~= s then
        error(format("%s must be a number of seconds, got %s", what, type(s) == "number" and "NaN" or type(s)), (level or 2) + 1)
    end
    if s <= 0 then
        error(format("%s must be positive, got %s seconds", what, tostring(s)), (level or 2) + 1)
    end
    local ms = s * 1000
    local whole = floor(ms + 0.5)
    if math.abs(ms - whole) > 1e-6 then
        error(format("%s must be a whole number of milliseconds, got %s seconds", what, tostring(s)), (level or 2) + 1)
    end
    return whole
end

--- Milliseconds to a readable duration for messages ("1.5 s", "200 ms").
function util.show_ms(ms)
    if ms % 1000 == 0 then return format("%d s", ms / 1000) end
    if ms >= 1000 then return format("%g s", ms / 1000) end
    return format("%d ms", ms)
end

local function callable(f)
    if type(f) == "function" then return true end
    local mt = getmetatable(f)
    return type(mt) == "table" and mt.__call ~= nil
end
util.callable = callable

--- Raises "op: argument #i (name) must be a function" at the user's call site.
function util.check_function(op, i, name, f, level)
    if not callable(f) then
        error(format("%s: argument #%d (%s) must be a function, got %s", op, i, name, type(f)), (level or 2) + 1)
    end
    return f
end

--- Raises unless t is a table.
function util.check_table(op, i, name, t, level)
    if type(t) ~= "table" then
        error(format("%s: argument #%d (%s) must be a table, got %s", op, i, name, type(t)), (level or 2) + 1)
    end
    return t
end

--- Raises unless opts only has keys listed in allowed (a set); lists the allowed keys.
function util.check_options(op, opts, allowed, level)
    if opts == nil then return {} end
    if type(opts) ~= "table" then
        error(format("%s: options must be a table, got %s", op, type(opts)), (level or 2) + 1)
    end
    local k = next(opts)
    while k ~= nil do
        if not allowed[k] then
            local names = {}
            local name = next(allowed)
            while name ~= nil do
                names[#names + 1] = name
                name = next(allowed, name)
            end
            table.sort(names)
            error(format("%s: unknown option %q (allowed: %s)", op, tostring(k), table.concat(names, ", ")), (level or 2) + 1)
        end
        k = next(opts, k)
    end
    return opts
end

--- Raise msg at the first stack frame outside dstream's own modules: the
--- user's line, however many (tail) calls inside dstream led here.
function util.raise_at_user(msg)
    for l = 2, 20 do
        local info = debug.getinfo(l, "S")
        if not info then break end
        if info.what ~= "C" and not (info.short_src or ""):find("dstream/[%w_]+%.lua$") then
            error(msg, l)
        end
    end
    error(msg, 0)
end

--- Where the user called an operation from ("wordcount.lua:12"), for messages.
function util.caller_site(level)
    for l = level or 3, 12 do
        local info = debug.getinfo(l, "Sl")
        if not info then break end
        local src = info.short_src or "?"
        if info.what ~= "C" and not src:find("dstream/[%w_]+%.lua$") then
            return format("%s:%d", src, info.currentline or 0)
        end
    end
    return "?"
end

--- An error raised inside a batch: the message the user sees, built once.
local BatchError = {}
BatchError.__index = BatchError
BatchError.__tostring = function(e) return e.message end
util.BatchError = BatchError

function util.batch_error(fields)
    local where = fields.op or "?"
    if fields.stream_name then where = format("%s (stream %q)", where, fields.stream_name) end
    if fields.site then where = format("%s, created at %s", where, fields.site) end
    local msg = format("dstream: %s failed at batch time %s ms: %s", where,
        fields.time and format("%d", fields.time) or "?", tostring(fields.cause))
    if fields.traceback then msg = msg .. "\n" .. fields.traceback end
    fields.message = msg
    return setmetatable(fields, BatchError)
end

return util

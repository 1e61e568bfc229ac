--- Small shared helpers: durations, argument checks, and the error type that
--- carries an operator, a stream and a batch time up to the user.
local util = {}

local type, floor, format = type, math.floor, string.format

local MAX_SECONDS = floor(2 ^ 53 / 1000)

--- Seconds to whole milliseconds; raises at the caller's caller when not a positive duration.
function util.duration_ms(what, s, level)
    if type(s) ~= "number" or s ~= s then
        error(format("%s must be a number of seconds, got %s", what, type(s) == "number" and "NaN" or type(s)), (level or 2) + 1)
    end
    if s <= 0 then
        error(format("%s must be positive, got %s seconds", what, tostring(s)), (level or 2) + 1)
    end
    -- The engine keeps times as 64-bit integers of milliseconds: a longer
    -- duration (math.huge included) has no such value.
    if s > MAX_SECONDS then
        error(format("%s must be at most %d seconds (2^53 ms), got %s seconds", what, MAX_SECONDS, tostring(s)),
            (level or 2) + 1)
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

local function ours(src)
    return src:find("dstream/[%w_]+%.lua$") ~= nil
end

-- Whether the user's call at stack level `level` names an operation of the
-- API (s:map(f), DStream.map(s, f)), as the stack shows it. When a user's
-- helper ends in `return s:map(f)`, Lua reuses the helper's frame for map (a
-- tail call): the stack then shows map called from the helper's caller, under
-- the helper's name, and the line of the call inside the helper is gone.
local function api_name(level)
    local info = debug.getinfo(level, "n")
    if not info or not info.name then return true end
    for _, module in ipairs({"dstream.stream", "dstream.context"}) do
        local t = package.loaded[module]
        if type(t) == "table" and rawget(t, info.name) ~= nil then return true end
    end
    return false
end

-- Where the first user function reachable from f is written: f itself, or
-- through the upvalues of dstream's own closures (an operator's compute
-- function holds the user's function), at most `depth` closures deep.
local function user_function_site(f, depth)
    if type(f) ~= "function" then return nil end
    local info = debug.getinfo(f, "S")
    if info.what ~= "Lua" then return nil end
    if not ours(info.short_src or "") then
        return info.linedefined > 0 and format("%s:%d", info.short_src, info.linedefined) or nil
    end
    if depth == 0 then return nil end
    for i = 1, 16 do
        local name, value = debug.getupvalue(f, i)
        if name == nil then break end
        local site = user_function_site(value, depth - 1)
        if site then return site end
    end
end

--- Where the user called an operation from ("wordcount.lua:12"), for
--- messages. After a tail call (`return s:map(f)` ending a helper) the call's
--- own line is gone from the stack: then the line where the operator's
--- function (found in `hint`, the new stream's fields) is written stands for
--- it, which is the call's line when the function is written inline; without
--- one, the line that called the helper.
function util.caller_site(level, hint)
    for l = level or 3, 20 do
        local info = debug.getinfo(l, "Sl")
        if not info then break end
        local src = info.short_src or "?"
        if info.what ~= "C" and not ours(src) then
            -- l - 1 is the dstream function the user's line called; l is
            -- one more from inside api_name.
            if hint and l > 2 and not api_name(l) then
                local site = user_function_site(hint.f, 0)
                for frame = l - 1, 2, -1 do -- the user's function among our frames' locals
                    for i = 1, 8 do
                        if site then break end
                        local name, value = debug.getlocal(frame, i)
                        if name == nil then break end
                        site = user_function_site(value, 0)
                    end
                end
                site = site or user_function_site(hint._compute, 3)
                if site then return site end
            end
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

-- What the user raised, as text, whatever it is: a string as it is; a
-- table by its __tostring, or by its contents ({code=42}) when it has none;
-- never raising, even when a __tostring raises or returns no string.
local function describe_cause(cause)
    local t = type(cause)
    if t == "string" then return cause end
    if t == "nil" then return "error(nil): the function raised an error with no message" end
    if t ~= "table" then return tostring(cause) end
    local mt = getmetatable(cause)
    if type(mt) == "table" and rawget(mt, "__tostring") ~= nil then
        local ok, text = pcall(tostring, cause)
        if ok and type(text) == "string" then return text end
        if ok then return "an error object whose __tostring returned a " .. type(text) end
        return "an error object whose __tostring raised: " .. (type(text) == "string" and text or type(text))
    end
    local ok, text = pcall(require("dstream.format").value, cause)
    return "an error table " .. (ok and text or "(unprintable)")
end
util.describe_cause = describe_cause

function util.batch_error(fields)
    local where = fields.op or "?"
    if fields.stream_name then where = format("%s (stream %q)", where, fields.stream_name) end
    if fields.site then where = format("%s, created at %s", where, fields.site) end
    local msg = format("dstream: %s failed at batch time %s ms: %s", where,
        fields.time and format("%d", fields.time) or "?", describe_cause(fields.cause))
    if fields.traceback then msg = msg .. "\n" .. fields.traceback end
    fields.message = msg
    return setmetatable(fields, BatchError)
end

--- The error of a failed job of the batch at t, as a BatchError: err itself
--- when the job's error handler made one, else (the handler never ran, as
--- for out of memory, or itself failed) one naming `stream`, the stream
--- that was computing when it failed.
function util.batch_failure(err, t, stream)
    if getmetatable(err) == BatchError then return err end
    local name = stream and (stream._name or (stream.label and stream:label()))
    return util.batch_error{op = stream and stream.kind, stream_name = name, site = stream and stream.site,
        time = t, cause = err}
end

return util

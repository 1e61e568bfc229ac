--- Sources: the input streams of a context. Each is a DStream flagged as an
--- input node, with a take(t) that hands the engine the batch at time t, and
--- optionally start / poll / stop / drain_errors for receivers.
local core = require "dstream.core"
local util = require "dstream.util"
local RDD = require "dstream.rdd"
local DStream = require "dstream.stream"

local sources = {}

local sformat = string.format

local function input(ctx, fields)
    fields.flags = core.NODE_INPUT
    fields.parents = {}
    fields.input = true
    fields.site = util.caller_site(2)
    local s = DStream.new(ctx, fields)
    s._compute = function() return nil end
    ctx.inputs[#ctx.inputs + 1] = s
    return s
end

-- queueStream ---------------------------------------------------------------

local function queue_entry(e, where)
    if RDD.is(e) then return e end
    if type(e) ~= "table" then
        error(sformat("queueStream: %s is a %s, not an array of records", where, type(e)), 0)
    end
    return RDD.from_array(e)
end

--- queueStream(queue, oneAtATime = true, default): one queue entry per batch.
function sources.queueStream(ctx, queue, oneAtATime, default)
    util.check_table("queueStream", 1, "queue", queue, 3)
    if oneAtATime == nil then oneAtATime = true end
    if default ~= nil and type(default) ~= "table" then
        error("queueStream: argument #3 (default) must be an array of records", 3)
    end
    return input(ctx, {kind = "queueStream", desc = "queueStream", pairs = false, take = function(s, t)
        local entries = {}
        if #queue > 0 then
            if oneAtATime then
                entries[1] = queue_entry(table.remove(queue, 1), "the queue's front entry")
            else
                for i = 1, #queue do entries[i] = queue_entry(queue[i], sformat("queue entry %d", i)) end
                for i = #queue, 1, -1 do queue[i] = nil end
            end
        elseif default ~= nil then
            entries[1] = queue_entry(default, "the default entry")
        end
        local r = RDD.concat(entries, t, s:_rdd_id(t))
        if r.pairs then -- records of a pair RDD in the queue become {k, v} values
            r = RDD.from_array(r:collect(), t, s:_rdd_id(t))
        end
        return r
    end})
end

-- socketTextStream ----------------------------------------------------------

local SOCKET_OPTS = {maxLineBytes = true, backoffInitial = true, backoffMax = true}

--- socketTextStream(host, port, opts): lines of a TCP connection.
function sources.socketTextStream(ctx, host, port, opts)
    if type(host) ~= "string" or host == "" then
        error("socketTextStream: argument #1 (host) must be a non-empty string", 3)
    end
    if type(port) ~= "number" or port < 1 or port > 65535 or port ~= math.floor(port) then
        error(sformat("socketTextStream: argument #2 (port) must be a whole number from 1 to 65535, got %s", tostring(port)), 3)
    end
    opts = util.check_options("socketTextStream", opts, SOCKET_OPTS, 3)
    local max_line = opts.maxLineBytes or 1024 * 1024
    if type(max_line) ~= "number" or max_line < 1 then
        error("socketTextStream: maxLineBytes must be a positive number of bytes", 3)
    end
    local desc = sformat("socketTextStream(%s:%d)", host, port)
    local sock
    local taken = 0
    return input(ctx, {kind = "socketTextStream", desc = desc, pairs = false, receiver = true,
        start = function()
            local err
            sock, err = core.socket_new(ctx.engine, host, port, {maxLineBytes = max_line,
                blockInterval = ctx.block_ms,
                backoffInitial = opts.backoffInitial and util.duration_ms("backoffInitial", opts.backoffInitial),
                backoffMax = opts.backoffMax and util.duration_ms("backoffMax", opts.backoffMax)})
            if not sock then error(desc .. ": " .. err, 0) end
            sock:start()
        end,
        take = function(s, t)
            if not sock then return RDD.empty(t, s:_rdd_id(t)) end
            local arr, n = sock:take()
            taken = taken + n
            return RDD.new(n, arr, nil, {n}, t, s:_rdd_id(t))
        end,
        drain_errors = function(report)
            if not sock then return end
            local errs = sock:errors()
            for i = 1, #errs do report(desc, errs[i].message, errs[i].time) end
        end,
        drain = function()
            if sock then sock:drain() end
        end,
        stop = function()
            if sock then sock:stop() end
        end,
        undelivered = function()
            return sock and sock:stats().records - taken or 0
        end,
        close = function()
            if sock then sock:close() end
        end,
        closed = function()
            return sock == nil or sock:closed()
        end,
    })
end

-- textFileStream ------------------------------------------------------------

local FILE_OPTS = {newFilesOnly = true, filter = true, maxLineBytes = true}

local function hidden(name)
    local c = name:sub(1, 1)
    return c == "." or c == "_"
end

--- textFileStream(dir, opts): lines of the files that appear in dir.
function sources.textFileStream(ctx, dir, opts)
    if type(dir) ~= "string" or dir == "" then
        error("textFileStream: argument #1 (dir) must be a non-empty string", 3)
    end
    opts = util.check_options("textFileStream", opts, FILE_OPTS, 3)
    if opts.filter ~= nil then util.check_function("textFileStream", 2, "opts.filter", opts.filter, 3) end
    local new_only = opts.newFilesOnly ~= false
    local max_line = opts.maxLineBytes or 1024 * 1024
    local desc = sformat("textFileStream(%s)", dir)
    local seen = {}
    local s
    local function report(msg)
        ctx:_receiver_error(desc, msg)
    end
    s = input(ctx, {kind = "textFileStream", desc = desc, pairs = false,
        start = function()
            local names, err = core.fs_list(dir)
            if not names then error(desc .. ": " .. err, 0) end
            if new_only then
                for _, name in ipairs(names) do seen[name] = true end
            end
        end,
        take = function(_, t)
            local names, err = core.fs_list(dir)
            local n, a, ends = 0, {}, {}
            if not names then
                report(err)
                names = {}
            end
            for _, name in ipairs(names) do
                local path = dir .. "/" .. name
                if not seen[name] and not hidden(name) and (opts.filter == nil or opts.filter(path)) then
                    seen[name] = true
                    local st, why = core.fs_stat(path)
                    if not st then
                        report(sformat("%s skipped: %s", path, why))
                    elseif not st.dir then
                        local lines, m, skipped = core.fs_read_lines(path, max_line)
                        if not lines then
                            report(sformat("%s skipped: %s", path, m))
                        else
                            for i = 1, m do a[n + i] = lines[i] end
                            n = n + m
                            ends[#ends + 1] = n
                            if skipped and skipped > 0 then
                                report(sformat("%s: %d line%s longer than maxLineBytes (%d) skipped",
                                    path, skipped, skipped == 1 and "" or "s", max_line))
                            end
                        end
                    end
                end
            end
            if #ends == 0 then ends[1] = 0 end
            return RDD.new(n, a, nil, ends, t, s:_rdd_id(t))
        end,
    })
    return s
end

-- receiverStream ------------------------------------------------------------

local POLL_MAX = 65536

--- receiverStream(r): a custom receiver polled by the engine.
function sources.receiverStream(ctx, r)
    if type(r) ~= "table" then error("receiverStream: argument #1 must be a receiver table", 3) end
    for _, m in ipairs({"start", "poll", "stop"}) do
        if not util.callable(r[m]) then
            error(sformat("receiverStream: the receiver has no %s method (needs start, poll and stop)", m), 3)
        end
    end
    local desc = sformat("receiverStream(%s)", tostring(r.name or "receiver"))
    local pending, npending = {}, 0
    local stopped = false
    local rctx = {batchInterval = ctx.batch_ms / 1000}
    function rctx.reportError(_, msg)
        ctx:_receiver_error(desc, tostring(msg))
    end
    local function guarded(method, ...)
        local ok, err = xpcall(r[method], debug.traceback, r, ...)
        if not ok then ctx:_receiver_error(desc, sformat("%s raised: %s", method, tostring(err))) end
        return ok, err
    end
    local s
    s = input(ctx, {kind = "receiverStream", desc = desc, pairs = false, receiver = true,
        start = function() guarded("start", rctx) end,
        poll = function(span_ms)
            if stopped then return end
            local max = ctx:_poll_max(span_ms, POLL_MAX)
            local ok, recs = guarded("poll", rctx, max)
            if not ok or recs == nil then return end
            if type(recs) ~= "table" then
                ctx:_receiver_error(desc, "poll must return an array of records, got " .. type(recs))
                return
            end
            local n = #recs
            if n > max then
                ctx:_receiver_error(desc, sformat("poll returned %d records, more than the %d asked for; all were kept", n, max))
            end
            for i = 1, n do pending[npending + i] = recs[i] end
            npending = npending + n
        end,
        take = function(_, t)
            local arr, n = pending, npending
            pending, npending = {}, 0
            return RDD.new(n, arr, nil, {n}, t, s:_rdd_id(t))
        end,
        pending = function() return npending > 0 end,
        undelivered = function() return npending end,
        stop = function()
            if not stopped then
                stopped = true
                guarded("stop")
            end
        end,
    })
    return s
end

return sources

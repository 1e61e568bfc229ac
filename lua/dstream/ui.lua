--- The status page and metrics (API.md, "Status page and metrics"): the
--- context's `ui` option. The engine's C server (core.http_new) serves on
--- the engine's loop what this module renders: after every completed batch
--- (an observer) and every receiver error (an error observer) it renders
--- /metrics, /api/batches and /api/status and hands their bytes to C; the
--- page and Chart.js are given once at start. C never calls Lua, so a
--- request costs the pipeline no Lua time at all.
local core = require "dstream.core"
local explain = require "dstream.explain"

local ui = {}

local sformat, concat, floor = string.format, table.concat, math.floor

--- How many batches /api/batches and the page keep.
ui.KEEP_BATCHES = 100
--- How many receiver errors the page keeps.
ui.KEEP_ERRORS = 50
--- The buckets of the delay histograms, in seconds.
ui.BUCKETS = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
--- Where Debian's libjs-chart.js puts Chart.js.
ui.CHART_JS = "/usr/share/javascript/chart.js/chart.min.js"

--- Check the `ui` option: a port (0 = any free one) on 127.0.0.1, or
--- "host:port" ("[v6]:port" for IPv6); returns host, port or raises at level.
function ui.parse(opt, level)
    level = (level or 1) + 1
    local function bad(why)
        error("StreamingContext: ui must be a port from 0 to 65535 (on 127.0.0.1) or \"host:port\""
            .. (why and (", " .. why) or ""), level)
    end
    local host, port
    if type(opt) == "number" then
        host, port = "127.0.0.1", opt
    elseif type(opt) == "string" then
        local h, p = opt:match("^%[([^%]]+)%]:(%d+)$")
        if not h then h, p = opt:match("^([^:]+):(%d+)$") end
        if not h then bad(sformat("got %q", opt)) end
        host, port = h, tonumber(p)
    else
        bad(sformat("got a %s", type(opt)))
    end
    if port ~= floor(port) or port < 0 or port > 65535 then bad(sformat("got port %s", tostring(port))) end
    return host, port
end

-- JSON ------------------------------------------------------------------------

local escapes = {['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f', ['\n'] = '\\n',
    ['\r'] = '\\r', ['\t'] = '\\t'}

local function json_string(s)
    return '"' .. s:gsub('[%c"\\]', function(c)
        return escapes[c] or sformat("\\u%04x", c:byte())
    end) .. '"'
end

local function json(v, out)
    local t = type(v)
    if t == "number" then
        if v ~= v or v == math.huge or v == -math.huge then
            out[#out + 1] = "null"
        elseif v == floor(v) and v > -2^53 and v < 2^53 then
            out[#out + 1] = sformat("%d", v)
        else
            out[#out + 1] = sformat("%.17g", v)
        end
    elseif t == "string" then
        out[#out + 1] = json_string(v)
    elseif t == "boolean" then
        out[#out + 1] = tostring(v)
    elseif t == "table" then
        if #v > 0 or next(v) == nil and getmetatable(v) == ui.ARRAY then
            out[#out + 1] = "["
            for i = 1, #v do
                if i > 1 then out[#out + 1] = "," end
                json(v[i], out)
            end
            out[#out + 1] = "]"
        else
            local keys = {}
            local k = next(v) -- not pairs(): a generic for stops LuaJIT's traces (luajit_spec)
            while k ~= nil do
                if type(k) == "string" then keys[#keys + 1] = k end
                k = next(v, k)
            end
            table.sort(keys)
            out[#out + 1] = "{"
            for i, key in ipairs(keys) do
                if i > 1 then out[#out + 1] = "," end
                out[#out + 1] = json_string(key)
                out[#out + 1] = ":"
                json(v[key], out)
            end
            out[#out + 1] = "}"
        end
    else
        out[#out + 1] = "null"
    end
end

--- The metatable that marks an empty table as a JSON array.
ui.ARRAY = {}

--- v as JSON text (tables with a [1] or marked ui.ARRAY are arrays).
function ui.json(v)
    local out = {}
    json(v, out)
    return concat(out)
end

-- Metrics ---------------------------------------------------------------------

local function new_histogram()
    local counts = {}
    for i = 1, #ui.BUCKETS do counts[i] = 0 end
    return {counts = counts, sum = 0, count = 0}
end

local function observe(h, seconds)
    local b = ui.BUCKETS
    for i = 1, #b do
        if seconds <= b[i] then h.counts[i] = h.counts[i] + 1 end
    end
    h.sum = h.sum + seconds
    h.count = h.count + 1
end

-- A label value as the exposition format writes it.
local function label(v)
    return (tostring(v):gsub("[\\\"\n]", {["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n"}))
end

local function number(v)
    if v == floor(v) and v > -2^53 and v < 2^53 then return sformat("%d", v) end
    return sformat("%.15g", v)
end

local function histogram_text(out, name, help, h)
    out[#out + 1] = sformat("# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
    for i, le in ipairs(ui.BUCKETS) do
        out[#out + 1] = sformat('%s_bucket{le="%s"} %d\n', name, number(le), h.counts[i])
    end
    out[#out + 1] = sformat('%s_bucket{le="+Inf"} %d\n%s_sum %s\n%s_count %d\n', name, h.count, name,
        number(h.sum), name, h.count)
end

-- The keyed state's size of each stateful stream, by name().
local function state_sizes(ctx)
    local sizes = {}
    for _, s in ipairs(ctx.streams) do
        if s.stateful then
            sizes[#sizes + 1] = {stream = s:label(), keys = s.store and s.store:count() or 0}
        end
    end
    return sizes
end

--- The Prometheus text (format 0.0.4) of the context's metrics m.
function ui.metrics_text(ctx, m)
    local out = {}
    out[#out + 1] = "# HELP dstream_batches_completed_total Batches completed (failed ones too).\n"
        .. "# TYPE dstream_batches_completed_total counter\n"
        .. sformat("dstream_batches_completed_total %d\n", m.batches)
    out[#out + 1] = "# HELP dstream_records_total Records of completed batches, per source.\n"
        .. "# TYPE dstream_records_total counter\n"
    for _, src in ipairs(m.sources) do
        out[#out + 1] = sformat('dstream_records_total{source="%s"} %d\n', label(src), m.records[src])
    end
    out[#out + 1] = "# HELP dstream_receiver_errors_total Errors the receivers and sources reported.\n"
        .. "# TYPE dstream_receiver_errors_total counter\n"
        .. sformat("dstream_receiver_errors_total %d\n", m.errors)
    histogram_text(out, "dstream_batch_scheduling_delay_seconds",
        "Time a batch waited from its batch time to the start of its processing.", m.scheduling)
    histogram_text(out, "dstream_batch_processing_seconds", "Time a batch's processing took.", m.processing)
    histogram_text(out, "dstream_batch_total_delay_seconds",
        "Time from a batch's time to the end of its processing.", m.total)
    out[#out + 1] = "# HELP dstream_state_keys Keys held in the state of a stateful stream, by its name().\n"
        .. "# TYPE dstream_state_keys gauge\n"
    for _, st in ipairs(state_sizes(ctx)) do
        out[#out + 1] = sformat('dstream_state_keys{stream="%s"} %d\n', label(st.stream), st.keys)
    end
    return concat(out)
end

--- New, empty metrics for ctx (its sources known, at zero).
function ui.new_metrics(ctx)
    local m = {batches = 0, errors = 0, sources = {}, records = {},
        scheduling = new_histogram(), processing = new_histogram(), total = new_histogram()}
    for _, s in ipairs(ctx.inputs) do
        local src = s.desc or s:label()
        if m.records[src] == nil then
            m.sources[#m.sources + 1] = src
            m.records[src] = 0
        end
    end
    return m
end

--- Count batch t (its info) into m; returns the records per source of t.
function ui.count_batch(ctx, m, info, t)
    m.batches = m.batches + 1
    local per = {}
    for _, s in ipairs(ctx.inputs) do
        local src = s.desc or s:label()
        local r = s.generated and s.generated[t]
        local n = r and r.n or 0
        if m.records[src] == nil then
            m.sources[#m.sources + 1] = src
            m.records[src] = 0
        end
        m.records[src] = m.records[src] + n
        per[src] = (per[src] or 0) + n
    end
    observe(m.scheduling, (info.schedulingDelay or 0) / 1000)
    observe(m.processing, (info.processingDelay or 0) / 1000)
    observe(m.total, (info.totalDelay or 0) / 1000)
    return per
end

-- The server ------------------------------------------------------------------

local function read_file(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local data = f:read("*a")
    f:close()
    return data
end

local function copy_info(info, per)
    local c = {}
    local k, v = next(info)
    while k ~= nil do
        local t = type(v)
        if type(k) == "string" and (t == "number" or t == "string" or t == "boolean") then c[k] = v end
        k, v = next(info, k)
    end
    c.records = per
    return c
end

-- Render what changes and hand it to the server.
local function publish(ctx)
    local u = ctx._ui
    local server = u.server
    if not u.explain or (not u.explained_active and ctx.state == "active") then
        -- again once started: its first line says the context's state
        local ok, text = pcall(explain.text, ctx)
        u.explain = ok and text or ("explain failed: " .. tostring(text))
        u.explained_active = ctx.state == "active"
    end
    server:set("/metrics", "text/plain; version=0.0.4; charset=utf-8", ui.metrics_text(ctx, u.metrics))
    server:set("/api/batches", "application/json", "[" .. concat(u.batches_json, ",") .. "]")
    local receivers = {}
    for _, src in ipairs(u.metrics.sources) do
        receivers[#receivers + 1] = {source = src, records = u.metrics.records[src], errors = u.errors_by[src] or 0}
    end
    server:set("/api/status", "application/json", ui.json{
        name = ctx.name, batchInterval = ctx.batch_ms, state = ctx.state, explain = u.explain,
        batches = u.metrics.batches, receiverErrors = u.metrics.errors,
        receivers = setmetatable(receivers, ui.ARRAY), errors = setmetatable(u.errors, ui.ARRAY),
        stateSizes = setmetatable(state_sizes(ctx), ui.ARRAY),
    })
end

local function on_batch(ctx, info, t)
    local u = ctx._ui
    local per = ui.count_batch(ctx, u.metrics, info, t)
    local b, bj = u.batches, u.batches_json
    b[#b + 1] = copy_info(info, per)
    bj[#bj + 1] = ui.json(b[#b]) -- once per batch, not once per batch kept
    if #b > ui.KEEP_BATCHES then
        table.remove(b, 1)
        table.remove(bj, 1)
    end
    publish(ctx)
end

local function on_error(ctx, err)
    local u = ctx._ui
    u.metrics.errors = u.metrics.errors + 1
    local src = tostring(err.source)
    u.errors_by[src] = (u.errors_by[src] or 0) + 1
    local e = u.errors
    e[#e + 1] = {source = src, message = tostring(err.message), time = err.time}
    if #e > ui.KEEP_ERRORS then table.remove(e, 1) end
    publish(ctx)
end

--- Start serving ctx's status (host, port from ui.parse); raises on failure.
function ui.start(ctx, host, port)
    local server, err = core.http_new(ctx.engine, host, port)
    if not server then
        error(sformat("start: the status page (ui = %s): %s", host .. ":" .. port, err), 0)
    end
    local u = {server = server, host = host, batches = {}, batches_json = {}, errors = {}, errors_by = {},
        metrics = ui.new_metrics(ctx)}
    ctx._ui = u
    local shown = host:find(":", 1, true) and ("[" .. host .. "]") or host
    u.url = sformat("http://%s:%d/", shown, server:port())
    server:set("/", "text/html; charset=utf-8", require("dstream.ui.page"))
    local chart = read_file(ui.CHART_JS)
    if chart then
        server:set("/chart.js", "text/javascript; charset=utf-8", chart)
    else -- the page says so where the charts would be
        server:set("/chart.js", "text/javascript; charset=utf-8", "/* " .. ui.CHART_JS
            .. " is not installed (Debian: libjs-chart.js) */\n")
    end
    publish(ctx)
    ctx.observers[#ctx.observers + 1] = function(info, t) on_batch(ctx, info, t) end
    ctx.error_observers[#ctx.error_observers + 1] = function(e) on_error(ctx, e) end
    -- The engine closes only once every handle on its loop is: the server's go first.
    ctx.closers[#ctx.closers + 1] = function() ui.close(ctx) end
end

--- Close ctx's server; its handles finish closing on the engine's loop.
function ui.close(ctx)
    local u = ctx._ui
    if not u or u.closed then return end
    u.closed = true
    u.server:close()
    for _ = 1, 100 do
        if u.server:closed() then break end
        ctx.engine:run(0)
    end
end

return ui

--- StreamingContext: the user-facing API of one graph, one clock and one
--- engine. The graph lives in the C engine; driver.lua runs its plans, batch
--- by batch, when advance() or awaitTermination*() pump the engine.
local core = require "dstream.core"
local util = require "dstream.util"
local stage = require "dstream.stage"
local RDD = require "dstream.rdd"
local DStream = require "dstream.stream"
local driver = require "dstream.driver"
local sources = require "dstream.sources"
local sinks = require "dstream.sinks"
local explain = require "dstream.explain"
local checkpoint = require "dstream.checkpoint"
local ui = require "dstream.ui"

local Context = {}
Context.__index = Context

local sformat = string.format

local OPTIONS = {
    batchInterval = true, clock = true, blockInterval = true, checkpoint = true,
    backpressure = true, initialRate = true, maxRate = true, wal = true, ui = true, name = true,
}

local contexts_made = 0

--- Set by the dstream command: signals (stop cleanly on SIGINT / SIGTERM; a
--- second one ends the process), stop_grace (seconds after the first signal
--- at which the process ends anyway; nil: none) and on_start(ctx) (dstream
--- explain prints the graph instead of running).
Context.hooks = {}

--- StreamingContext{batchInterval = s, clock = "system"|"manual", ...}
function Context.new(opts)
    if type(opts) ~= "table" then
        error("StreamingContext: expects a table of options, e.g. StreamingContext{batchInterval = 1}", 2)
    end
    util.check_options("StreamingContext", opts, OPTIONS, 2)
    if opts.batchInterval == nil then
        error("StreamingContext: batchInterval (seconds) is required", 2)
    end
    local batch_ms = util.duration_ms("StreamingContext: batchInterval", opts.batchInterval, 2)
    local clock = opts.clock or "system"
    if clock ~= "system" and clock ~= "manual" then
        error(sformat("StreamingContext: clock must be \"system\" or \"manual\", got %s", tostring(clock)), 2)
    end
    local block_ms = batch_ms
    if opts.blockInterval ~= nil then
        block_ms = math.min(util.duration_ms("StreamingContext: blockInterval", opts.blockInterval, 2), batch_ms)
    elseif batch_ms > 200 then
        block_ms = 200
    end
    if opts.maxRate ~= nil and (type(opts.maxRate) ~= "number" or opts.maxRate <= 0) then
        error("StreamingContext: maxRate must be a positive number of records per second", 2)
    end
    if opts.wal ~= nil and type(opts.wal) ~= "boolean" then
        error("StreamingContext: wal must be true or false", 2)
    end
    if opts.backpressure ~= nil and type(opts.backpressure) ~= "boolean" then
        error("StreamingContext: backpressure must be true or false", 2)
    end
    if opts.initialRate ~= nil then
        if type(opts.initialRate) ~= "number" or opts.initialRate <= 0 then
            error("StreamingContext: initialRate must be a positive number of records per second", 2)
        end
        if not opts.backpressure then
            error("StreamingContext: initialRate caps the rate until backpressure's first estimate and needs "
                .. "backpressure = true; for a fixed cap use maxRate", 2)
        end
    end
    local ui_host, ui_port
    if opts.ui ~= nil then ui_host, ui_port = ui.parse(opts.ui, 2) end
    if opts.name ~= nil and type(opts.name) ~= "string" then
        error("StreamingContext: name must be a string", 2)
    end
    local engine, err = core.engine_new{batch = batch_ms, manual = clock == "manual"}
    if not engine then error("StreamingContext: the engine could not be made: " .. err, 2) end
    contexts_made = contexts_made + 1
    local ctx = setmetatable({
        engine = engine, batch_ms = batch_ms, block_ms = block_ms, clock = clock,
        name = opts.name or "dstream", max_rate = opts.maxRate,
        backpressure = opts.backpressure == true, initial_rate = opts.initialRate,
        streams = {}, inputs = {}, outputs = {}, listeners = {}, observers = {}, error_observers = {}, closers = {},
        state = "initialized", checkpoint_dir = nil, static_count = 0, wal_wanted = opts.wal,
        ui_host = ui_host, ui_port = ui_port,
    }, Context)
    if opts.checkpoint ~= nil then ctx:checkpoint(opts.checkpoint) end
    return ctx
end

function Context:__tostring()
    return sformat("StreamingContext(%s: batch %s, %s clock, %d stream%s, %d output%s, %s)",
        self.name, util.show_ms(self.batch_ms), self.clock, #self.streams - #self.outputs,
        #self.streams - #self.outputs == 1 and "" or "s", #self.outputs, #self.outputs == 1 and "" or "s",
        self.state)
end

function Context:_check_building(op)
    if self.state ~= "initialized" then
        util.raise_at_user(sformat(
            "%s: cannot add to the graph of a context that is %s (build the whole graph before start())",
            op, self.state))
    end
end

-- Sources and sinks are defined in their own modules; the context forwards.

--- queueStream(queue, oneAtATime = true, default)
function Context:queueStream(queue, oneAtATime, default)
    local result = sources.queueStream(self, queue, oneAtATime, default) -- not a tail call: errors point at the caller's line
    return result
end
--- socketTextStream(host, port, opts)
function Context:socketTextStream(host, port, opts)
    local result = sources.socketTextStream(self, host, port, opts) -- not a tail call: errors point at the caller's line
    return result
end
--- textFileStream(dir, opts)
function Context:textFileStream(dir, opts)
    local result = sources.textFileStream(self, dir, opts) -- not a tail call: errors point at the caller's line
    return result
end
--- receiverStream(r)
function Context:receiverStream(r)
    local result = sources.receiverStream(self, r) -- not a tail call: errors point at the caller's line
    return result
end
--- objectFile(path): the RDD written by saveAsObjectFiles into path
function Context:objectFile(path)
    local result = sinks.objectFile(path) -- not a tail call: errors point at the caller's line
    return result
end

--- kafkaStream{brokers, topics, groupId, startingOffsets, maxRatePerPartition, options}
function Context:kafkaStream(opts)
    local result = require("dstream.kafka").stream(self, opts) -- not a tail call: errors point at the caller's line
    return result
end

-- A directory's path without trailing slashes, for comparing two.
local function dir_key(d)
    local k = d:gsub("/+$", "")
    if k == "" then return "/" end
    return k
end

--- StreamingContext.getOrCreate(dir, createFn): the context createFn builds,
--- restored from the newest good checkpoint in dir if there is one; not
--- started (the caller calls start()).
function Context.getOrCreate(dir, createFn)
    if type(dir) ~= "string" or dir == "" then
        error("getOrCreate: argument #1 (dir) must be a non-empty string", 2)
    end
    util.check_function("getOrCreate", 2, "createFn", createFn, 2)
    if core.checkpoint_open == nil then
        error("getOrCreate: checkpoint files are not available in this build of dstream", 2)
    end
    local cp, err = core.checkpoint_open(dir)
    if not cp then error(sformat("getOrCreate: the checkpoint directory %s: %s", dir, err), 2) end
    local loaded
    loaded, err = cp:load()
    if loaded == nil and err ~= nil then
        cp:close()
        error(sformat("getOrCreate: no checkpoint in %s can be used (%s); move the directory away to start "
            .. "afresh", dir, err), 2)
    end
    local ctx = createFn()
    if getmetatable(ctx) ~= Context then
        cp:close()
        error(sformat("getOrCreate: createFn must return a StreamingContext, got %s", type(ctx)), 2)
    end
    local function fail(msg)
        if not ctx._ckpt then cp:close() end
        pcall(ctx.stop, ctx)
        error(msg, 3)
    end
    if ctx.state ~= "initialized" then fail("getOrCreate: createFn must return a context that is not started") end
    if ctx.checkpoint_dir == nil then
        local ok, cerr = pcall(ctx.checkpoint, ctx, dir)
        if not ok then fail("getOrCreate: " .. tostring(cerr)) end
    elseif dir_key(ctx.checkpoint_dir) ~= dir_key(dir) then
        fail(sformat("getOrCreate: the context createFn returned checkpoints to %s, not to %s", ctx.checkpoint_dir, dir))
    end
    checkpoint.attach(ctx, cp)
    if loaded then
        local ok, rerr = pcall(checkpoint.restore, ctx, loaded, dir)
        if not ok then fail(tostring(rerr)) end
        for _, w in ipairs(loaded.warnings or {}) do ctx:_report_at_start("checkpoint", w) end
        if loaded.warnings and #loaded.warnings > 0 then
            ctx:_report_at_start("checkpoint", sformat("recovered from checkpoint %d (batch time %d ms) in %s",
                loaded.seq or -1, loaded.time, dir))
        end
    end
    return ctx
end

--- union(streams): the records of every stream of the array.
function Context:union(streams)
    util.check_table("union", 1, "streams", streams, 2)
    if #streams == 0 then error("union: needs at least one stream", 2) end
    local shape = streams[1].pairs
    for i, s in ipairs(streams) do
        if not DStream.is(s) then error(sformat("union: element %d is a %s, not a DStream", i, type(s)), 2) end
        if s.pairs ~= shape and s.pairs ~= nil and shape ~= nil then
            error(sformat("union: cannot mix a pair stream and a stream of single values (pairs: %s; values: %s)",
                tostring(shape and streams[1] or s), tostring(shape and s or streams[1])), 2)
        end
        if shape == nil then shape = s.pairs end
    end
    return DStream.new(self, {kind = "union", parents = streams, pairs = shape,
        _compute = function(s, t)
            local rdds = s:_parent_rdds(t)
            return rdds and RDD.concat(rdds, t, s:_rdd_id(t))
        end})
end

--- transform(streams, fn(rdds, timeMs)): an RDD built from one batch of each stream.
function Context:transform(streams, fn, kind)
    util.check_table("transform", 1, "streams", streams, 2)
    util.check_function("transform", 2, "fn", fn, 2)
    return DStream.new(self, {kind = kind or "transform", parents = streams, _compute = function(s, t)
        local rdds = s:_parent_rdds(t)
        if rdds == nil then return nil end
        local out = fn(rdds, t)
        if not RDD.is(out) then
            stage.fail("function must return an RDD, got " .. type(out))
        end
        return RDD.new(out.n, out.a, out.b, out.ends, t, s:_rdd_id(t))
    end})
end

--- parallelize(array): a static RDD of values.
function Context:parallelize(array)
    util.check_table("parallelize", 1, "array", array, 2)
    self.static_count = self.static_count + 1
    return RDD.from_array(array, nil, "parallelize#" .. self.static_count)
end

--- parallelizePairs(t): a static pair RDD from {k = v} or {{k, v}, ...}.
function Context:parallelizePairs(t)
    util.check_table("parallelizePairs", 1, "t", t, 2)
    local ks, vs, n = {}, {}, 0
    if #t > 0 then
        for i = 1, #t do
            local kv = t[i]
            if type(kv) ~= "table" or kv[1] == nil or kv[2] == nil then
                error(sformat("parallelizePairs: element %d must be a {key, value} pair", i), 2)
            end
            n = n + 1
            ks[n], vs[n] = kv[1], kv[2]
        end
        local k = next(t)
        while k ~= nil do
            if type(k) ~= "number" then
                error("parallelizePairs: mixes an array of {key, value} pairs with named keys", 2)
            end
            k = next(t, k)
        end
    else
        local keys = {}
        local k = next(t)
        while k ~= nil do
            keys[#keys + 1] = k
            k = next(t, k)
        end
        table.sort(keys, function(a, b)
            if type(a) == type(b) and type(a) ~= "boolean" then return a < b end
            return tostring(a) < tostring(b)
        end)
        for _, key in ipairs(keys) do
            n = n + 1
            ks[n], vs[n] = key, t[key]
        end
    end
    self.static_count = self.static_count + 1
    return RDD.new(n, ks, vs, {n}, nil, "parallelizePairs#" .. self.static_count)
end

--- uiUrl(): after start(), with ui set, the status page's address; else nil.
function Context:uiUrl()
    return self._ui and self._ui.url
end

--- addStreamingListener(l): l.onBatchSubmitted / onBatchStarted / onBatchCompleted / onReceiverError.
function Context:addStreamingListener(l)
    util.check_table("addStreamingListener", 1, "listener", l, 2)
    self.listeners[#self.listeners + 1] = l
end

--- remember(s): keep generated batches at least s seconds.
function Context:remember(s)
    local ms = util.duration_ms("remember: duration", s, 2)
    self:_check_building("remember")
    self.engine:set_min_remember(ms)
end

--- checkpoint(dir): set the checkpoint directory.
function Context:checkpoint(dir)
    if type(dir) ~= "string" or dir == "" then
        error("checkpoint: argument #1 (dir) must be a non-empty string", 2)
    end
    local ok, err = core.fs_mkdirs(dir)
    if not ok then error("checkpoint: " .. err, 2) end
    if self._ckpt and dir_key(dir) ~= dir_key(self.checkpoint_dir) then
        error(sformat("checkpoint: this context already checkpoints to %s", self.checkpoint_dir), 2)
    end
    self.checkpoint_dir = dir
    if self.wal_wanted and not self.wal then self:_open_wal(2) end
end

-- Open the write-ahead log at <checkpoint dir>/wal (sources append to
-- ctx.wal) and report what its opening cut.
function Context:_open_wal(level)
    if core.wal_open == nil then
        error("StreamingContext: wal = true: the write-ahead log is not available in this build of dstream", level + 1)
    end
    local path = dir_key(self.checkpoint_dir) .. "/wal"
    local wal, err = core.wal_open(path, {})
    if not wal then error(sformat("StreamingContext: the write-ahead log %s: %s", path, err), level + 1) end
    self.wal = wal
    for _, w in ipairs(wal:warnings()) do self:_report_at_start("write-ahead log", w) end
end

-- What opening the checkpoint or the log found damaged: reported now when a
-- listener hears receiver errors already, else at start(), to the listeners
-- added by then (or stderr).
function Context:_report_at_start(source, message)
    for _, l in ipairs(self.listeners) do
        if l.onReceiverError then return self:_receiver_error(source, message) end
    end
    self.startup_reports = self.startup_reports or {}
    self.startup_reports[#self.startup_reports + 1] = {source, message}
end

--- explain{source = false}: print the graph (streams, stages after fusion,
--- outputs; with source, each stage's generated Lua); also returns it.
function Context:explain(opts)
    local text = explain.text(self, opts)
    io.write(text)
    io.flush()
    return text
end

-- Listeners and receiver errors --------------------------------------------

function Context:_notify(event, arg)
    for _, l in ipairs(self.listeners) do
        local f = l[event]
        if f ~= nil then
            local ok, err = xpcall(f, debug.traceback, arg)
            if not ok then
                io.stderr:write(sformat("dstream: listener %s raised: %s\n", event, tostring(err)))
            end
        end
    end
end

function Context:_receiver_error(source, message, time)
    local err = {source = source, message = message, time = time or self.engine:now()}
    self.receiver_errors = (self.receiver_errors or 0) + 1
    for _, observe in ipairs(self.error_observers) do observe(err) end
    local heard = false
    for _, l in ipairs(self.listeners) do
        if l.onReceiverError then heard = true end
    end
    if heard then
        self:_notify("onReceiverError", err)
    else
        io.stderr:write(sformat("dstream: %s: %s\n", source, message))
    end
end

-- Start ---------------------------------------------------------------------

local function graph_error(self, msg, name, bad)
    if name == "ENOOUTPUT" then
        return "start: the graph has no output operation: register one (print, foreachRDD, saveAsTextFiles, "
            .. "saveAsObjectFiles, collectBatches) before start()"
    end
    local s = bad and self.streams[bad + 1]
    if name == "ENOTMULTIPLE" and s then
        return sformat("start: %s (%s): its slide %s%s is not a multiple of the batch interval %s",
            s:label(), tostring(s), util.show_ms(s.slide_ms),
            s.window_ms and (" or window " .. util.show_ms(s.window_ms)) or "", util.show_ms(self.batch_ms))
    end
    return "start: " .. msg
end

--- start(): validate the graph, start the receivers and the batch timer.
function Context:start()
    if self.state == "active" then error("start: the context is already started", 2) end
    if self.state == "stopped" then
        error("start: a stopped context cannot be restarted; make a new StreamingContext", 2)
    end
    self:_declare_stateful()
    local ok, msg, name, bad = self.engine:graph_validate()
    if not ok then error(graph_error(self, msg, name, bad), 2) end
    if self.wal_wanted and not self.checkpoint_dir then
        error("start: wal = true needs a checkpoint directory (the option checkpoint = dir, ssc:checkpoint(dir) "
            .. "or StreamingContext.getOrCreate(dir, createFn)): the write-ahead log is kept there", 2)
    end
    local hooks = Context.hooks
    if hooks.on_start then hooks.on_start(self) end
    if self.checkpoint_dir then
        local attached, aerr = pcall(checkpoint.attach, self)
        if not attached then error("start: " .. tostring(aerr), 2) end
    end
    for _, r in ipairs(self.startup_reports or {}) do self:_receiver_error(r[1], r[2]) end
    self.startup_reports = nil
    for _, s in ipairs(self.streams) do s.remember_ms = self.engine:remember(s.id) end
    driver.prepare(self)
    if self.ui_host then
        local served, err = pcall(ui.start, self, self.ui_host, self.ui_port)
        if not served then
            driver.close_engine(self)
            driver.close_durable(self)
            self.state = "stopped"
            error(tostring(err), 2)
        end
    end
    for _, s in ipairs(self.inputs) do
        if s.start then
            local started, err = pcall(s.start)
            if not started then
                for _, other in ipairs(self.inputs) do
                    if other.stop then pcall(other.stop) end
                    if other.close then pcall(other.close) end
                end
                local _, close_err = driver.close_engine(self)
                driver.close_durable(self)
                self.state = "stopped"
                error("start: " .. tostring(err) .. (close_err and ("; " .. close_err) or ""), 2)
            end
        end
    end
    local started, err = self.engine:start(self._recovered and self._recovered.time)
    if started and hooks.signals then
        started, err = self.engine:watch_signals((hooks.stop_grace or 0) * 1000)
        err = err and ("watching SIGINT and SIGTERM: " .. err)
    end
    if not started then
        for _, s in ipairs(self.inputs) do
            if s.stop then pcall(s.stop) end
        end
        local _, close_err = driver.close_engine(self)
        driver.close_durable(self)
        self.state = "stopped"
        error("start: the engine could not start: " .. err .. (close_err and ("; " .. close_err) or ""), 2)
    end
    self.state = "active"
    self.next_poll = 0
    -- A first start writes a checkpoint before any batch: the inputs'
    -- positions as they start (the files a textFileStream leaves unread), so
    -- a crash before the first batch completes still recovers, rather than
    -- starting afresh and taking the files that arrived meanwhile for old ones.
    if self._ckpt and not self._recovered then
        self._ckpt:completed(self.engine:next_batch() - self.batch_ms, true)
        self._ckpt.force_full = true -- the first batch's is full too: this one holds next to nothing
    end
end

-- state.lua marks a stream stateful after making it; the graph hears it
-- here, before it validates or hashes the shape.
function Context:_declare_stateful()
    for _, s in ipairs(self.streams) do
        if s.stateful then
            local ok, err = self.engine:graph_add_flags(s.id, core.NODE_STATEFUL)
            if not ok then error(sformat("%s: %s", s:label(), err), 3) end
        end
    end
end

--- The graph's fingerprint (16 hex digits): a hash of its shape (operators,
--- parents, windows and slides, names), never of closures. For checkpoints.
function Context:_fingerprint()
    if self.state == "stopped" then error("_fingerprint: the context is stopped", 2) end
    self:_declare_stateful()
    return self.engine:fingerprint()
end

--- advance(n = 1): manual clock only; move time n intervals, running every
--- batch that falls due. A failed batch does not stop the clock: the later
--- batches run too (as Spark runs them), time ends at n intervals, and the
--- first failure is re-raised once there.
function Context:advance(n)
    if n == nil then n = 1 end
    if type(n) ~= "number" or n < 0 or n ~= math.floor(n) then
        error("advance: argument #1 must be a whole number of batch intervals >= 0", 2)
    end
    if self.clock ~= "manual" then
        error("advance: only a context with clock = \"manual\" can be advanced by hand", 2)
    end
    if self.state ~= "active" then
        error(sformat("advance: the context is %s; call start() first", self.state), 2)
    end
    local first_err, failed = driver.advance(self, n)
    if first_err then
        local more = failed > 1 and sformat("\n(%d later batches failed too)", failed - 1) or ""
        error(first_err.message .. more, 0)
    end
end

-- Check that the context can loop, then run the driver's loop.
function Context:_loop(deadline, caller)
    if self.state == "initialized" then
        error(caller .. ": the context has not been started; call start() first", 3)
    end
    if self.clock == "manual" and self.state == "active" then
        error(caller .. ": a manual clock never moves by itself; use advance(n)", 3)
    end
    return driver.loop(self, deadline)
end

--- awaitTermination(): run until stop(); re-raises the error of a failed batch.
function Context:awaitTermination()
    self:_loop(nil, "awaitTermination")
end

--- awaitTerminationOrTimeout(s): the same for at most s seconds; true if stopped.
function Context:awaitTerminationOrTimeout(s)
    if type(s) ~= "number" or s < 0 then
        error("awaitTerminationOrTimeout: argument #1 must be a number of seconds >= 0", 2)
    end
    if self.state == "stopped" then return true end
    if self.state ~= "active" then return self:_loop(0, "awaitTerminationOrTimeout") end
    return self:_loop(self.engine:now() + s * 1000, "awaitTerminationOrTimeout")
end

-- Stop ----------------------------------------------------------------------

--- stop{graceful = false}: stop; graceful first finishes the data already received.
function Context:stop(opts)
    local graceful = false
    if opts ~= nil then
        util.check_options("stop", opts, {graceful = true, stopSparkContext = true}, 2)
        graceful = opts.graceful and true or false
    end
    if self.state == "stopped" then return end
    if self.state == "initialized" then
        self.state = "stopped"
        local closed, err = driver.close_engine(self)
        driver.close_durable(self)
        if not closed then error("stop: " .. err, 2) end
        return
    end
    self.stop_graceful = graceful
    if self.in_batch then
        self.stop_requested = true -- called from a job: stop once the batch is done
        return
    end
    driver.finish_stop(self)
end

return Context

--- The driver: runs the plans the C graph makes, one batch at a time, and
--- pumps the engine between them.
---
--- The graph lives once, in C (core/src/graph.c): for each batch time that
--- falls due, engine:plan(t) gives the nodes to compute, inputs first and
--- parents before children, and the batches no later plan reads. The driver
--- runs that plan and keeps no scheduling rule of its own: it never asks
--- whether a stream produces at t, nor how long a batch is kept.
---
--- The loop: run libuv for at most the time until the next batch (or the
--- next receiver poll; without waiting when a batch is due; to the µs, so a
--- 1 ms batch does not wake a millisecond late), check signals
--- and deadlines, then run one batch that has fallen due. Between two due
--- batches there is always one non-blocking I/O step, so an overloaded
--- pipeline keeps reading and stays stoppable. C never calls Lua; errors
--- raised by user code are caught per node, named (operator, stream, batch
--- time, user traceback) and re-raised from advance() / awaitTermination*().
local util = require "dstream.util"
local stage = require "dstream.stage"
local RDD = require "dstream.rdd"

local driver = {}

local sformat = string.format

-- What running a planned node means, decided once at start from what the
-- node is: an input takes its data, an output runs its job, a stream fused
-- into its consumer's stage is run by that consumer, any other is computed.
local TAKE, OUTPUT, FUSED, COMPUTE = 1, 2, 3, 4

-- The error handler of node `job`'s step, made once at start: the batch
-- time is the one running (ctx.batch_time).
local function job_handler(ctx, job)
    return function(e)
        if getmetatable(e) == util.BatchError then return e end
        local t = ctx.batch_time
        local current = ctx._current
        local op_name, stream = job.kind, job
        local cause = e
        if type(e) == "table" and getmetatable(e) == stage.Failure then
            cause = e.cause
            if e.stage_op and e.stage_op.stream then stream = e.stage_op.stream end
            if stream == job and current then stream = current end
            op_name = stream.kind
        else
            local op = stage.failing_op(3)
            if op and op.stream then
                stream = op.stream
                op_name = stream.kind
            elseif op then
                if current then stream = current end
                op_name = "rdd." .. op.kind .. " in " .. stream.kind
            elseif current then
                stream = current
                op_name = current.kind
            end
        end
        return util.batch_error{op = op_name, stream_name = stream._name or stream:label(), site = stream.site,
            time = t, cause = cause, traceback = debug.traceback("user traceback:", 2)}
    end
end

--- Prepare ctx's plans (after the graph is validated): the step of every
--- node and the arrays engine:plan() fills, allocated once.
function driver.prepare(ctx)
    local steps, handlers = {}, {}
    for i, s in ipairs(ctx.streams) do
        assert(s.id == i - 1, "streams are kept in the graph's id order")
        handlers[i] = job_handler(ctx, s)
        if s.input then
            steps[i] = TAKE
        elseif s.output then
            steps[i] = OUTPUT
        elseif s:_fused() then
            steps[i] = FUSED
        else
            steps[i] = COMPUTE
        end
    end
    ctx.plan = {steps = steps, handlers = handlers, nodes = {}, forget_ids = {}, forget_times = {}}
end

-- Take every input's data for t (or, for a batch recovery re-runs, what the
-- pending file says it took); returns the records taken and the first
-- error. With checkpoints, what each input took is written to t's pending
-- file before any other node runs.
local function take_inputs(ctx, t, nodes, ninputs)
    local streams, handlers, records, first_err = ctx.streams, ctx.plan.handlers, 0, nil
    local ck = ctx._ckpt
    local replay = ctx._replay and ctx._replay[t]
    local took
    for i = 1, ninputs do
        local id = nodes[i]
        local s = streams[id + 1]
        local data = replay and replay[id]
        local ok, r
        if data ~= nil then
            ok, r = xpcall(s._ckpt_replay, handlers[id + 1], s, t, data)
        else
            ok, r = xpcall(s.take, handlers[id + 1], s, t)
        end
        if ok then
            s.generated[t] = r
            records = records + r.n
            if ck and data == nil and s._ckpt_input then
                local got
                ok, got = xpcall(s._ckpt_input, handlers[id + 1], s, t)
                if not ok then
                    first_err = first_err or util.batch_failure(got, t, s)
                elseif got ~= nil then
                    took = took or {}
                    took["s" .. id] = got
                end
            end
        else
            s.generated[t] = RDD.empty(t, s:_rdd_id(t))
            first_err = first_err or util.batch_failure(r, t, s)
        end
    end
    if ck then
        if took then ck:pending(t, took) end
        if ctx.wal then ck:wal_mark(t, driver.wal_covered(ctx, replay ~= nil)) end
    end
    return records, first_err
end

--- The WAL sequence number up to which every block has been taken by a
--- batch: the least an input says (_ckpt_wal_covered); else, but for a
--- re-run batch (which took old blocks, not the new ones), the WAL's last.
function driver.wal_covered(ctx, replayed)
    local covered
    for _, s in ipairs(ctx.inputs) do
        if s._ckpt_wal_covered then
            local c = s:_ckpt_wal_covered()
            if c ~= nil and (covered == nil or c < covered) then covered = c end
        end
    end
    if covered == nil and not replayed then covered = ctx.wal:last_seq() end
    return covered
end

-- Run the planned nodes after the inputs; returns the first error. A node
-- whose parent failed finds no batch there and makes none.
local function run_nodes(ctx, t, nodes, from, n)
    local streams, steps, handlers, first_err = ctx.streams, ctx.plan.steps, ctx.plan.handlers, nil
    for i = from, n do
        local id = nodes[i]
        local step, s = steps[id + 1], streams[id + 1]
        if step ~= FUSED then
            ctx._current = nil
            local ok, err
            if step == OUTPUT then
                ok, err = xpcall(s.run, handlers[id + 1], t)
            else
                ok, err = xpcall(s._materialize, handlers[id + 1], s, t)
            end
            if not ok then first_err = first_err or util.batch_failure(err, t, ctx._current or s) end
        end
    end
    ctx._current = nil
    return first_err
end

--- Run the batch at time t as the graph plans it; returns the first error
--- raised by a node, if any. Taking the sources' data (turning received
--- blocks into Lua values) is part of the batch's processing:
--- processingStartTime is taken before it, so schedulingDelay is only the
--- time the batch waited for the driver.
function driver.run_batch(ctx, t)
    local engine, plan = ctx.engine, ctx.plan
    local nodes, fids, ftimes = plan.nodes, plan.forget_ids, plan.forget_times
    local n, ninputs, nforget = engine:plan(t, nodes, fids, ftimes)
    if not n then -- out of memory: nothing taken, the receivers keep the data for the next batch
        return util.batch_error{op = "the driver", time = t, cause = "the batch's plan could not be made: " .. ninputs}
    end
    ctx.in_batch, ctx.batch_time = true, t
    local started_at = engine:now()
    local records, first_err = take_inputs(ctx, t, nodes, ninputs)
    ctx:_notify("onBatchSubmitted", engine:submit(t, records))
    ctx:_notify("onBatchStarted", engine:started(t, started_at))
    local err = run_nodes(ctx, t, nodes, ninputs + 1, n)
    first_err = first_err or err
    -- The checkpoint is part of the batch: onBatchCompleted means it is on
    -- disk. A failed batch writes none (checkpoint.lua says why).
    if ctx._ckpt and first_err == nil then ctx._ckpt:completed(t) end
    if ctx._replay then ctx._replay[t] = nil end
    local info = engine:completed(t, first_err ~= nil)
    -- The engine's own observers (rate control, the status page) see the
    -- batch first, so what they add to info reaches the listeners too.
    local observers = ctx.observers
    for i = 1, #observers do observers[i](info, t) end
    ctx:_notify("onBatchCompleted", info)
    local streams = ctx.streams
    for i = 1, nforget do
        streams[fids[i] + 1].generated[ftimes[i]] = nil
    end
    ctx.last_batch, ctx.last_batch_failed = t, first_err ~= nil
    ctx.in_batch = false
    return first_err
end

--- Report the receivers' errors.
function driver.drain_errors(ctx)
    -- Made once: at 1 ms batches this runs a thousand times a second.
    local report = ctx._report_receiver_error
    if report == nil then
        if ctx.clock == "manual" then
            -- A receiver stamps its errors with the wall clock; on a manual
            -- clock the error's time is the context's, as its batches' are.
            report = function(source, message) ctx:_receiver_error(source, message) end
        else
            report = function(...) ctx:_receiver_error(...) end
        end
        ctx._report_receiver_error = report
    end
    local inputs = ctx.inputs
    for i = 1, #inputs do
        local s = inputs[i]
        if s.drain_errors then s.drain_errors(report) end
    end
end

--- Run I/O, report receiver errors, and poll custom receivers: every
--- blockInterval on a system clock, once per batch (span = the batch
--- interval) on a manual one, so maxRate holds either way.
function driver.pump(ctx, timeout_ms, poll_span_ms)
    local engine = ctx.engine
    engine:run(timeout_ms)
    driver.drain_errors(ctx)
    local now = engine:now()
    if poll_span_ms or now >= ctx.next_poll then
        for _, s in ipairs(ctx.inputs) do
            if s.poll then s.poll(poll_span_ms or ctx.block_ms) end
        end
        ctx.next_poll = now + ctx.block_ms
    end
end

--- Manual clock: move time n intervals, running every batch that falls due;
--- the later batches run after a failed one. Returns the first error and how
--- many batches failed.
function driver.advance(ctx, n)
    local engine = ctx.engine
    local first_err, failed = nil, 0
    for _ = 1, n do
        driver.pump(ctx, 0, ctx.batch_ms)
        local ok, err = engine:advance_to(engine:next_batch())
        if not ok then error("advance: " .. err, 0) end
        local t = engine:due()
        while t and ctx.state == "active" do
            local batch_err = driver.run_batch(ctx, t)
            if batch_err then
                failed = failed + 1
                first_err = first_err or batch_err
            end
            if ctx.stop_requested then break end
            t = engine:due()
        end
        if ctx.stop_requested then
            driver.finish_stop(ctx)
            break
        end
    end
    return first_err, failed
end

--- Run the loop until stopped or until the deadline (ms since the epoch).
--- One batch at most per turn (what arrives during batch k goes into the
--- next batch due). Returns true once stopped, false at the deadline.
function driver.loop(ctx, deadline)
    local engine = ctx.engine
    while ctx.state == "active" do
        local wait = math.min(engine:wait_ms(), ctx.block_ms)
        if deadline then
            local left = deadline - engine:now()
            if left <= 0 then return false end
            wait = math.min(wait, left)
        end
        driver.pump(ctx, wait)
        if engine:signaled() then
            ctx:stop{graceful = true}
            return true
        end
        local t = engine:due()
        if t then
            local err = driver.run_batch(ctx, t)
            if err then error(err.message, 0) end
        end
        if ctx.stop_requested then driver.finish_stop(ctx) end
    end
    return true
end

-- Loop turns close_engine gives the inputs' handles to finish closing, each
-- waiting at most CLOSE_WAIT_MS for I/O (a name lookup in libuv's thread
-- pool cannot be cancelled: its handle closes when the lookup ends).
local CLOSE_TURNS, CLOSE_WAIT_MS = 500, 10

--- Close the inputs and then the engine; true, or nil and a message naming
--- the inputs whose handles never finished closing (the engine then stays
--- allocated rather than freed under them).
function driver.close_engine(ctx)
    local engine = ctx.engine
    for _, close in ipairs(ctx.closers) do close() end -- the engine's own servers (the status page)
    for _, s in ipairs(ctx.inputs) do
        if s.close then s.close() end
    end
    local open, err
    for _ = 1, CLOSE_TURNS do
        open = {}
        for _, s in ipairs(ctx.inputs) do
            if s.closed and not s.closed() then open[#open + 1] = s.desc or s:label() end
        end
        if #open == 0 then
            local closed
            closed, err = engine:close()
            if closed then return true end
            engine:run(0) -- the engine's own handles close on the next turn
        else
            engine:run(CLOSE_WAIT_MS)
        end
    end
    if #open > 0 then err = table.concat(open, ", ") .. " still open" end
    return nil, sformat("the engine could not be closed (%s): its memory stays allocated", err)
end

-- Graceful: read what the receivers' sockets already hold, stop them, put
-- every record received into the next batch, then run the batches up to the
-- time by which every output (windowed ones too) has seen that batch, at
-- once rather than waiting for their time. Returns the first error.
local function finish_graceful(ctx)
    local engine = ctx.engine
    for _, s in ipairs(ctx.inputs) do
        if s.drain then s.drain() end
    end
    for _, s in ipairs(ctx.inputs) do
        if s.stop then s.stop() end
    end
    driver.pump(ctx, 0)
    local first_err
    local t = engine:due_by(engine:next_batch())
    local settle = t and engine:settle_time(t)
    while t do
        if ctx.clock == "manual" then
            local ok, err = engine:advance_to(t)
            if not ok then error("stop: " .. err, 0) end
        end
        first_err = first_err or driver.run_batch(ctx, t)
        t = engine:due_by(settle)
    end
    return first_err
end

-- Ungraceful: say how many received records no batch will process.
local function report_dropped(ctx)
    for _, s in ipairs(ctx.inputs) do
        if s.stop then s.stop() end
    end
    driver.pump(ctx, 0)
    for _, s in ipairs(ctx.inputs) do
        local n = s.undelivered and s.undelivered() or 0
        if n > 0 then
            ctx:_receiver_error(s.desc, sformat(
                "stopped without finishing: %d record%s received and not processed %s dropped "
                .. "(stop{graceful = true} processes them)", n, n == 1 and "" or "s", n == 1 and "was" or "were"))
        end
    end
end

--- Close the checkpoint directory and the write-ahead log, after the inputs.
function driver.close_durable(ctx)
    if ctx._ckpt then ctx._ckpt:close() end
    if ctx.wal then
        ctx.wal:close()
        ctx.wal = nil
    end
end

--- Stop a started context: gracefully (ctx.stop_graceful) or not, then close
--- the engine; raises the first error of the batches a graceful stop ran, or
--- the failure to close.
function driver.finish_stop(ctx)
    local graceful = ctx.stop_graceful
    ctx.stop_requested = false
    local has_receivers = false
    for _, s in ipairs(ctx.inputs) do
        if s.receiver then has_receivers = true end
    end
    local err
    local was_active = ctx.state == "active"
    if was_active and has_receivers then
        if graceful then
            err = finish_graceful(ctx)
        else
            report_dropped(ctx)
        end
    else
        for _, s in ipairs(ctx.inputs) do
            if s.stop then s.stop() end
        end
    end
    driver.drain_errors(ctx)
    -- A graceful stop leaves a full checkpoint of the last batch (unless a
    -- batch failed: its pending file makes recovery re-run it).
    local ck = ctx._ckpt
    local last = ctx.last_batch or (ctx._recovered and ctx._recovered.time)
    if ck and graceful and was_active and err == nil and not ctx.last_batch_failed and last then
        ck:completed(last, true)
    end
    ctx.state = "stopped"
    local closed, close_err = driver.close_engine(ctx)
    driver.close_durable(ctx)
    if err then error(err.message, 0) end
    if not closed then error("stop: " .. close_err, 0) end
end

return driver

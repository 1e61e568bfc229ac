--- Rate control of receivers: maxRate, initialRate and backpressure.
---
--- Each receiver (socket or custom) registers with its context's control at
--- start, giving a function that applies a limit in records/s (0: none) to
--- its token bucket in C (dstream/rate.h). Without backpressure the limit is
--- maxRate, or none. With backpressure every receiver has Spark's PID
--- estimator (core/src/rate.c), fed after each completed batch with the
--- records that receiver put in the batch and the batch's processing and
--- scheduling delays; the new estimate, capped by maxRate, becomes its
--- limit. Until the first estimate (the second batch with records: the
--- first only measures, as in Spark) the limit is initialRate, or
--- DEFAULT_INITIAL_RATE when initialRate is not set, so the first batches
--- are never unbounded.
---
--- What the listeners see (added to every completed batch's info):
---   receiverRates  {[source] = records/s}: each limited receiver's limit now
---                  (the source as onReceiverError names it; an unlimited
---                  receiver is absent)
---   rateEstimate   records/s: the newest PID estimates summed over the
---                  receivers (backpressure only; absent before the first)
local core = require "dstream.core"

local rate = {}

--- The first batches' limit per receiver with backpressure and no
--- initialRate: 1000 records/s, ten times Spark's minimum rate. A pipeline
--- that spends even 1 ms a record keeps up with it at batch intervals of a
--- second and more, and the estimator measures the real processing rate
--- from the first batch, so a fast pipeline leaves this cap after two
--- batches: it costs little and never floods a slow pipeline at start.
rate.DEFAULT_INITIAL_RATE = 1000

local Control = {}
Control.__index = Control

-- The limit to apply for wanted (0: none), capped by maxRate.
function Control:cap(wanted)
    local max = self.ctx.max_rate
    if max and (wanted == 0 or wanted > max) then return max end
    return wanted
end

--- The context's rate control, made (and its observer registered) at the
--- first receiver's start.
function rate.control(ctx)
    local c = ctx._rate_control
    if c then return c end
    c = setmetatable({ctx = ctx, receivers = {}}, Control)
    ctx._rate_control = c
    ctx.observers[#ctx.observers + 1] = function(info, t) c:observe(info, t) end
    return c
end

--- Register the receiver named desc; set(records_per_s) applies a limit (0:
--- none) and is called at once with the starting one. Returns its entry, to
--- which the receiver reports what each batch took: entry:took(t, n).
function Control:add(desc, set)
    local ctx = self.ctx
    local r = {desc = desc, set = set, t = nil, n = 0}
    function r.took(_, t, n) r.t, r.n = t, n end
    if ctx.backpressure then
        r.pid = core.pid_new(ctx.batch_ms)
        r.rate = self:cap(ctx.initial_rate or rate.DEFAULT_INITIAL_RATE)
    else
        r.rate = self:cap(0)
    end
    set(r.rate)
    self.receivers[#self.receivers + 1] = r
    return r
end

--- After each completed batch: update the estimates, apply them, and add
--- receiverRates and rateEstimate to info.
function Control:observe(info, t)
    local rates, estimate, estimated = {}, 0, false
    local update = not info.failed and info.processingDelay ~= nil
    for _, r in ipairs(self.receivers) do
        if r.pid and update then
            local n = r.t == t and r.n or 0
            local new = r.pid:compute(info.processingEndTime or t, n, info.processingDelay,
                info.schedulingDelay or 0)
            if new then
                r.estimate = new
                local limit = self:cap(new)
                if limit ~= r.rate then
                    r.rate = limit
                    r.set(limit)
                end
            end
        end
        if r.estimate then estimate, estimated = estimate + r.estimate, true end
        if r.rate > 0 then rates[r.desc] = r.rate end
    end
    info.receiverRates = rates
    if estimated then info.rateEstimate = estimate end
end

return rate

--- Kafka: the direct source (ssc:kafkaStream) and the sink (saveToKafka).
---
--- THE DIRECT STREAM, as Spark's (spark-streaming-kafka-0-10): no receiver.
--- The consumer (core.kafka_consumer, librdkafka under it) fetches in the
--- background into per-partition C buffers; each batch is, per assigned
--- partition in (topic, partition) order, an offset range [from, until):
--- `from` is the partition's position, `until` what is buffered now, capped
--- by maxRatePerPartition x the batch interval and by backpressure's
--- estimate (split over the partitions by their lag). The ranges are what
--- the batch took for the checkpoint (_ckpt_input), so they are on disk
--- before the batch's nodes run; a batch re-run after a crash reads exactly
--- those ranges again (c:read), whatever arrived since. The position saved
--- with a checkpoint is the next offset per partition. A position comes,
--- in order, from a replayed batch, the checkpoint, (with a group) the
--- group's committed offset, and last startingOffsets.
---
--- The batch's RDD is a pair RDD (key, value; a missing key is "") with one
--- partition per Kafka partition, empty ones included, and two fields:
--- `_ranges` (what rdd:offsetRanges() returns) and `srcparts` (RDD
--- partition j -> "topic/partition").
---
--- WITH A GROUP (groupId), Kafka's group protocol decides which process
--- reads which partitions; positions still come from dstream (checkpoint,
--- or the hooks ctx:_kafka_assigned / ctx:_kafka_revoked when the keyed
--- state module provides them). Rebalances arrive as events during polls,
--- between batches. After every completed batch the untils are committed
--- to the group, for a new owner that has nothing better.
local core = require "dstream.core"
local util = require "dstream.util"
local RDD = require "dstream.rdd"
local DStream = require "dstream.stream"
local rate = require "dstream.rate"

local kafka = {}

local sformat, concat = string.format, table.concat

-- How long a synchronous metadata, watermark or committed-offsets request
-- may wait, and how long a replayed range may take to read.
local META_TIMEOUT_MS = 10000
local REPLAY_TIMEOUT_MS = 60000

local function available(op)
    if core.kafka_consumer == nil then
        util.raise_at_user(op .. ": Kafka is not available in this build of dstream (it needs librdkafka)")
    end
end

local function bad(op, msg)
    util.raise_at_user(sformat("%s: %s", op, msg))
end

-- brokers: "h:p,h:p" or an array of "h:p"; returns the string.
local function check_brokers(op, brokers)
    if type(brokers) == "table" and #brokers > 0 then
        for i = 1, #brokers do
            if type(brokers[i]) ~= "string" or brokers[i] == "" then
                bad(op, sformat("brokers[%d] must be a non-empty string \"host:port\"", i))
            end
        end
        return concat(brokers, ",")
    end
    if type(brokers) ~= "string" or brokers == "" then
        bad(op, sformat("brokers must be a non-empty string \"host:port[,host:port...]\", got %s", type(brokers)))
    end
    return brokers
end

-- options: librdkafka settings, string keys, values strings/numbers/booleans
-- passed as strings.
local function check_librdkafka_options(op, options)
    if options == nil then return {} end
    if type(options) ~= "table" then bad(op, "options must be a table of librdkafka settings, got " .. type(options)) end
    local out = {}
    local k, v = next(options)
    while k ~= nil do
        if type(k) ~= "string" then bad(op, "options: the librdkafka setting names must be strings") end
        local tv = type(v)
        if tv ~= "string" and tv ~= "number" and tv ~= "boolean" then
            bad(op, sformat("options[%q] must be a string, number or boolean, got %s", k, tv))
        end
        out[k] = tostring(v)
        k, v = next(options, k)
    end
    return out
end

local STREAM_OPTS = {brokers = true, topics = true, groupId = true, startingOffsets = true,
    maxRatePerPartition = true, options = true}

-- The arguments of kafkaStream, checked: a table of what start() needs.
local function stream_args(opts)
    local op = "kafkaStream"
    if type(opts) ~= "table" then
        bad(op, sformat("argument #1 must be a table {brokers = ..., topics = {...}, ...}, got %s", type(opts)))
    end
    local ok, err = pcall(util.check_options, op, opts, STREAM_OPTS, 1)
    if not ok then util.raise_at_user(err) end
    local args = {brokers = check_brokers(op, opts.brokers)}
    local topics = opts.topics
    if type(topics) == "string" then topics = {topics} end
    if type(topics) ~= "table" or #topics == 0 then
        bad(op, "topics must be a non-empty array of topic names")
    end
    args.topics = {}
    local seen = {}
    for i = 1, #topics do
        local name = topics[i]
        if type(name) ~= "string" or name == "" then bad(op, sformat("topics[%d] must be a non-empty string", i)) end
        if not seen[name] then
            seen[name] = true
            args.topics[#args.topics + 1] = name
        end
    end
    table.sort(args.topics)
    if opts.groupId ~= nil and (type(opts.groupId) ~= "string" or opts.groupId == "") then
        bad(op, "groupId must be a non-empty string")
    end
    args.group = opts.groupId
    local so = opts.startingOffsets
    if so == nil then so = "latest" end
    if so ~= "earliest" and so ~= "latest" then
        bad(op, sformat("startingOffsets must be \"earliest\" or \"latest\", got %s", tostring(so)))
    end
    args.starting = so
    local mr = opts.maxRatePerPartition
    if mr ~= nil and (type(mr) ~= "number" or mr <= 0 or mr ~= mr) then
        bad(op, "maxRatePerPartition must be a positive number of records per second per partition")
    end
    args.max_rate = mr
    args.options = check_librdkafka_options(op, opts.options)
    return args
end

-- A topic-partition's string form, as srcparts and the hooks use it.
local function tp_key(topic, partition) return topic .. "/" .. partition end

local function by_tp(x, y)
    if x.topic ~= y.topic then return x.topic < y.topic end
    return x.partition < y.partition
end

--[[ The source's state:
  c         the consumer (after start)
  parts     the assigned partitions, sorted: {topic, partition, key}
  pos       key -> the next offset to take (assigned partitions, and the
            checkpoint's for those not assigned yet)
  took      what the last take took: {t, ranges = {{topic, partition, from, until}...}}
  untils    batch time -> the ranges' untils, for the commit after it ]]
local Source = {}
Source.__index = Source

function Source:report(msg)
    self.ctx:_receiver_error(self.desc, msg)
end

-- Start offsets for tps (array of {topic, partition, key}) that have no
-- position from a hook: the checkpoint's, else the group's committed
-- offset, else startingOffsets. Fills e.offset.
function Source:choose_offsets(tps, given)
    local need = {}
    for _, e in ipairs(tps) do
        local o = given and given[e.key]
        if o == nil then o = self.pos[e.key] end
        e.offset = o
        if o == nil then need[#need + 1] = e end
    end
    if #need > 0 and self.group then
        local list = {}
        for i, e in ipairs(need) do list[i] = {topic = e.topic, partition = e.partition} end
        local committed, err = self.c:committed(list, META_TIMEOUT_MS)
        if not committed then
            self:report("the group's committed offsets could not be read (" .. tostring(err)
                .. "): startingOffsets (" .. self.starting .. ") is used")
        else
            for i, e in ipairs(need) do
                local o = committed[i]
                if type(o) == "number" and o >= 0 then e.offset = o end
            end
        end
    end
    for _, e in ipairs(tps) do
        if e.offset == nil then e.offset = self.starting end
    end
end

-- Assign tps (after choose_offsets) and note their absolute positions.
function Source:assign(tps)
    if #tps == 0 then return end
    local list = {}
    for i, e in ipairs(tps) do list[i] = {topic = e.topic, partition = e.partition, offset = e.offset} end
    local starts, err = self.c:assign(list)
    if not starts then error(sformat("%s: the partitions could not be assigned: %s", self.desc, tostring(err)), 0) end
    local assigned = {}
    for _, e in ipairs(self.parts) do assigned[e.key] = true end
    for i, e in ipairs(tps) do
        self.pos[e.key] = starts[i]
        if not assigned[e.key] then
            self.parts[#self.parts + 1] = {topic = e.topic, partition = e.partition, key = e.key}
            assigned[e.key] = true
        end
    end
    table.sort(self.parts, by_tp)
end

-- Without a group: every partition of the topics, at start.
function Source:assign_all()
    local tps = {}
    for _, topic in ipairs(self.topics) do
        local n, err = self.c:partitions(topic)
        if not n then error(sformat("%s: the partitions of topic %q could not be listed: %s", self.desc, topic,
            tostring(err)), 0) end
        for p = 0, n - 1 do tps[#tps + 1] = {topic = topic, partition = p, key = tp_key(topic, p)} end
    end
    self:choose_offsets(tps)
    self:assign(tps)
end

local function tp_list(partitions)
    local tps, keys = {}, {}
    for i, p in ipairs(partitions) do
        tps[i] = {topic = p.topic, partition = p.partition, key = tp_key(p.topic, p.partition)}
        keys[i] = tps[i].key
    end
    table.sort(tps, by_tp)
    table.sort(keys)
    return tps, keys
end

-- A group's rebalance events: revoked partitions leave (the hook first),
-- assigned ones get their positions (the hook's, else choose_offsets).
function Source:handle_events()
    local events = self.c:events()
    if events == nil then return end
    local ctx = self.ctx
    for _, ev in ipairs(events) do
        local tps, keys = tp_list(ev.partitions or {})
        if ev.type == "revoked" then
            if ctx._kafka_revoked then ctx:_kafka_revoked(self.stream, keys) end
            self.c:unassign(ev.partitions)
            local gone = {}
            for _, k in ipairs(keys) do
                gone[k] = true
                self.pos[k] = nil
            end
            local kept = {}
            for _, e in ipairs(self.parts) do
                if not gone[e.key] then kept[#kept + 1] = e end
            end
            self.parts = kept
        elseif ev.type == "assigned" then
            local given
            if ctx._kafka_assigned then given = ctx:_kafka_assigned(self.stream, keys) end
            self:choose_offsets(tps, given)
            self:assign(tps)
        end
    end
end

function Source:start()
    local c, err = core.kafka_consumer{brokers = self.brokers, group = self.group,
        topics = self.group and self.topics or nil, options = self.options}
    if not c then error(sformat("%s: %s", self.desc, tostring(err)), 0) end
    self.c = c
    if not self.group then self:assign_all() end
    local ctx = self.ctx
    if ctx.backpressure then
        -- The estimate is for the whole stream, split over its partitions.
        self.limited = rate.control(ctx):add(self.desc, function(r) self.limit = r end)
    end
    if self.group then
        ctx.observers[#ctx.observers + 1] = function(info, t) self:commit(info, t) end
    end
end

-- After a completed batch (group mode): commit its untils.
function Source:commit(info, t)
    local untils = self.untils[t]
    self.untils[t] = nil
    if info.failed or not untils or not self.c then return end
    local held, list = {}, {}
    for _, e in ipairs(self.parts) do held[e.key] = true end
    for _, r in ipairs(untils) do
        if held[tp_key(r[1], r[2])] and r[4] > r[3] then
            list[#list + 1] = {topic = r[1], partition = r[2], offset = r[4]}
        end
    end
    if #list > 0 then
        local ok, err = self.c:commit(list)
        if ok == nil and err then self:report("the offsets of batch " .. t .. " ms could not be committed: " .. err) end
    end
end

-- Per-partition caps of batch t's ranges (nil: none): maxRatePerPartition
-- x batch seconds, and backpressure's limit split by lag.
function Source:caps(lags, total_lag)
    local secs = self.ctx.batch_ms / 1000
    local per = self.max_rate and math.max(1, math.floor(self.max_rate * secs)) or nil
    local limit = self.limit
    if not limit or limit <= 0 or total_lag == 0 then
        if not per then return nil end
        return function() return per end
    end
    return function(i)
        local share = math.max(1, math.floor(limit * secs * lags[i] / total_lag))
        if per and per < share then return per end
        return share
    end
end

function Source:take(t)
    local c, parts, pos = self.c, self.parts, self.pos
    local np = #parts
    local ranges, srcparts, ends = {}, {}, {}
    if np == 0 then
        self.took = {t = t, ranges = {}}
        local r = RDD.new(0, {}, {}, {0}, t, self.stream:_rdd_id(t))
        r._ranges, r.srcparts = ranges, srcparts
        return r
    end
    c:poll()
    local froms, uptos, lags, total_lag = {}, {}, {}, 0
    for i = 1, np do
        local e = parts[i]
        local from = pos[e.key]
        local bfrom, upto = c:buffered(e.topic, e.partition)
        froms[i], uptos[i] = bfrom, upto
        local lag = upto > from and upto - from or 0
        lags[i] = lag
        total_lag = total_lag + lag
    end
    local cap = self:caps(lags, total_lag)
    local n, a, b = 0, nil, nil
    local took = {}
    for i = 1, np do
        local e = parts[i]
        local from = pos[e.key]
        local untl = uptos[i]
        if untl < from then untl = from end
        if cap then
            local m = cap(i)
            if untl - from > m then untl = from + m end
        end
        -- Records below the position (a replay moved it past what the
        -- consumer had fetched) are dropped by the same call.
        if untl > from or froms[i] < from then
            local ks, vs, m = c:take(e.topic, e.partition, from, untl)
            if m > 0 then
                if a == nil then
                    a, b = ks, vs
                else
                    for j = 1, m do
                        a[n + j] = ks[j]
                        b[n + j] = vs[j]
                    end
                end
                n = n + m
            end
        end
        ends[i] = n
        srcparts[i] = e.key
        ranges[i] = {topic = e.topic, partition = e.partition, fromOffset = from, untilOffset = untl}
        took[i] = {e.topic, e.partition, from, untl}
        pos[e.key] = untl
    end
    self.took = {t = t, ranges = took}
    if self.group then self.untils[t] = took end
    if self.limited then self.limited:took(t, n) end
    local r = RDD.new(n, a or {}, b or {}, ends, t, self.stream:_rdd_id(t))
    r._ranges, r.srcparts = ranges, srcparts
    return r
end

--- What batch t took (its ranges), encoded; nil when it took nothing.
function Source:input(t)
    local took = self.took
    if took == nil or took.t ~= t then return nil end
    for _, r in ipairs(took.ranges) do
        if r[4] > r[3] then return core.encode_value(took.ranges) end
    end
    return nil
end

--- Batch t re-read from Kafka: exactly the ranges it took before the crash.
function Source:replay(t, data)
    local ranges = core.decode_value(data)
    if type(ranges) ~= "table" then
        error(sformat("%s: batch %d ms: the checkpoint's offset ranges cannot be read", self.desc, t), 0)
    end
    local c = self.c
    if c == nil then error(sformat("%s: batch %d ms: the consumer is not started", self.desc, t), 0) end
    local n, a, b, ends, out, srcparts = 0, {}, {}, {}, {}, {}
    for i, rg in ipairs(ranges) do
        local topic, partition, from, untl = rg[1], rg[2], rg[3], rg[4]
        if untl > from then
            local ks, vs, m = c:read(topic, partition, from, untl, REPLAY_TIMEOUT_MS)
            if not ks then
                error(sformat("%s: batch %d ms: the offsets [%d, %d) of %s/%d could not be read again: %s",
                    self.desc, t, from, untl, topic, partition, tostring(vs)), 0)
            end
            for j = 1, m do
                a[n + j] = ks[j]
                b[n + j] = vs[j]
            end
            n = n + m
        end
        ends[i] = n
        local key = tp_key(topic, partition)
        srcparts[i] = key
        out[i] = {topic = topic, partition = partition, fromOffset = from, untilOffset = untl}
        local p = self.pos[key]
        if p == nil or p < untl then self.pos[key] = untl end
    end
    if #ends == 0 then ends[1] = 0 end
    self.took = {t = t, ranges = ranges}
    if self.group then self.untils[t] = ranges end
    local r = RDD.new(n, a, b, ends, t, self.stream:_rdd_id(t))
    r._ranges, r.srcparts = out, srcparts
    return r
end

--- The position: the next offset per partition ({["topic/partition"] = offset}).
function Source:position()
    local out = {}
    local k, v = next(self.pos)
    while k ~= nil do
        out[k] = v
        k, v = next(self.pos, k)
    end
    return core.encode_value(out)
end

--- Restore the position (before start).
function Source:resume(data)
    local p = core.decode_value(data)
    if type(p) ~= "table" then error(sformat("%s: the checkpoint's offsets cannot be read", self.desc), 0) end
    local k, v = next(p)
    while k ~= nil do
        if type(k) ~= "string" or type(v) ~= "number" then
            error(sformat("%s: the checkpoint's offsets cannot be read", self.desc), 0)
        end
        local cur = self.pos[k]
        if cur == nil or cur < v then self.pos[k] = v end
        k, v = next(p, k)
    end
end

--- ssc:kafkaStream{brokers, topics, groupId, startingOffsets, maxRatePerPartition, options}
function kafka.stream(ctx, opts)
    local args = stream_args(opts)
    available("kafkaStream")
    local desc = sformat("kafkaStream(%s%s)", concat(args.topics, ","), args.group and (", group " .. args.group) or "")
    local src = setmetatable({ctx = ctx, desc = desc, brokers = args.brokers, topics = args.topics,
        group = args.group, starting = args.starting, max_rate = args.max_rate, options = args.options,
        parts = {}, pos = {}, untils = {}}, Source)
    local s = DStream.new(ctx, {kind = "kafkaStream", desc = desc, pairs = true, input = true,
        flags = core.NODE_INPUT, parents = {}, site = util.caller_site(3),
        start = function() src:start() end,
        poll = function()
            if src.c then
                src.c:poll()
                if src.group then src:handle_events() end
            end
        end,
        take = function(_, t)
            if not src.c then return RDD.empty(t, src.stream:_rdd_id(t), true) end
            return src:take(t)
        end,
        drain_errors = function(report)
            if not src.c then return end
            local errs = src.c:errors()
            if errs then
                for i = 1, #errs do report(desc, errs[i]) end
            end
        end,
        _ckpt_input = function(_, t) return src:input(t) end,
        _ckpt_replay = function(_, t, data) return src:replay(t, data) end,
        _ckpt_position = function() return next(src.pos) ~= nil and src:position() or nil end,
        _ckpt_resume = function(_, data) src:resume(data) end,
        stop = function() src.stopped = true end,
        close = function()
            if src.c then
                src.c:close()
                src.c = nil
            end
        end,
        kafka_source = src,
    })
    s._compute = function() return nil end
    src.stream = s
    ctx.inputs[#ctx.inputs + 1] = s
    return s
end

-- saveToKafka ----------------------------------------------------------------

local SINK_OPTS = {brokers = true, topic = true, options = true}

local function as_text(x)
    local tx = type(x)
    if tx == "string" then return x end
    if tx == "number" then return tostring(x) end
    return nil, tx
end

--- stream:saveToKafka{brokers, topic, options}: every record of each batch
--- to topic; the batch's output is done once all are acknowledged.
function kafka.saveToKafka(stream, opts)
    local op = "saveToKafka"
    if type(opts) ~= "table" then
        bad(op, sformat("argument #1 must be a table {brokers = ..., topic = ...}, got %s", type(opts)))
    end
    local ok, err = pcall(util.check_options, op, opts, SINK_OPTS, 1)
    if not ok then util.raise_at_user(err) end
    local brokers = check_brokers(op, opts.brokers)
    local topic = opts.topic
    if type(topic) ~= "string" or topic == "" then bad(op, "topic must be a non-empty string") end
    local options = check_librdkafka_options(op, opts.options)
    available(op)
    -- A flush waits for every acknowledgement or failure: librdkafka fails a
    -- message after message.timeout.ms (delivery.timeout.ms), so a little more.
    local msg_timeout = tonumber(options["message.timeout.ms"] or options["delivery.timeout.ms"] or "") or 300000
    local flush_ms = msg_timeout + 10000
    local ctx = stream.ctx
    local producer
    local label = stream._name or stream:label()
    local function run(r, t)
        if producer == nil then
            local p, perr = core.kafka_producer{brokers = brokers, options = options}
            if not p then error(sformat("saveToKafka(%s): the producer could not be made: %s", topic, tostring(perr)), 0) end
            producer = p
        end
        local a, b, n = r.a, r.b, r.n
        for i = 1, n do
            local key, value, kt, vt
            if b then
                key, kt = as_text(a[i])
                value, vt = as_text(b[i])
            else
                value, vt = as_text(a[i])
            end
            if kt or vt then
                error(sformat("saveToKafka(%s): stream %s, batch %d ms: record %d has a %s %s; Kafka messages "
                    .. "take strings or numbers (map the records to those first)", topic, label, t, i,
                    kt or vt, kt and "key" or "value"), 0)
            end
            local sent, perr = producer:produce(topic, -1, key, value)
            if not sent then
                error(sformat("saveToKafka(%s): stream %s, batch %d ms: a message could not be queued: %s",
                    topic, label, t, tostring(perr)), 0)
            end
        end
        local flushed, ferr = producer:flush(flush_ms)
        if not flushed then
            error(sformat("saveToKafka(%s): stream %s, batch %d ms: delivery failed: %s", topic, label, t,
                tostring(ferr)), 0)
        end
    end
    local DS = getmetatable(stream)
    local node = DS.new(ctx, {kind = "saveToKafka", desc = sformat("saveToKafka(%s)", topic), parents = {stream},
        output = true, flags = core.NODE_OUTPUT, pairs = stream.pairs, site = util.caller_site(3)})
    node.run = function(t)
        local r = stream:_rdd(t)
        if r ~= nil then run(r, t) end
    end
    ctx.outputs[#ctx.outputs + 1] = node
    ctx.closers[#ctx.closers + 1] = function()
        if producer then
            producer:close()
            producer = nil
        end
    end
    return nil
end

return kafka

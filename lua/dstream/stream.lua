--- DStream: the template of the batches a stream produces over time.
---
--- Every operation returns a new DStream and runs nothing; each DStream is a
--- node of the context's graph, which lives in the C engine (core/src/graph.c:
--- ids, parents, slides, windows, names, and for each batch the plan of what
--- to compute and what to forget). A stream knows how to compute its RDD for
--- a batch time and keeps the RDDs it made until the plan says to forget them;
--- when and in which order is the graph's decision, run by driver.lua.
---
--- FUSION: a narrow stream (and a reduceByKey right after one) computes its
--- batch with the stage planner.lua plans for it, which folds the narrow
--- streams upstream into one generated loop, by planner.lua's fusion rule.
local stage = require "dstream.stage"
local planner = require "dstream.planner"
local RDD = require "dstream.rdd"
local util = require "dstream.util"
local shuffle = require "dstream.shuffle"
local srcparts = require "dstream.srcparts"

local DStream = {}
DStream.__index = DStream

local sformat = string.format

--- A new stream of ctx (internal): fields name the kind, label, parents, shape.
function DStream.new(ctx, fields)
    ctx:_check_building(fields.kind)
    local s = setmetatable(fields, DStream)
    s.ctx = ctx
    s.site = s.site or util.caller_site(2, fields)
    s.generated = {}
    s.consumers = 0
    local pids, parent_slide = {}, nil
    for i, p in ipairs(s.parents) do
        if getmetatable(p) ~= DStream then
            error(sformat("%s: argument must be a DStream, got %s", s.kind, type(p)), 4)
        end
        if p.ctx ~= ctx then
            error(sformat("%s: cannot combine streams of two different StreamingContexts", s.kind), 4)
        end
        if parent_slide == nil then
            parent_slide = p.slide_ms
        elseif p.slide_ms ~= parent_slide then
            error(sformat("%s: the streams have different slide durations (%s and %s)", s.kind,
                util.show_ms(parent_slide), util.show_ms(p.slide_ms)), 4)
        end
        pids[i] = p.id
        p.consumers = p.consumers + 1
        p.consumer = s -- the one that matters when it is the only one (fusion)
    end
    local slide = s.slide_ms or parent_slide
    s.slide_ms = slide or ctx.batch_ms
    -- desc names the operator with its arguments (window lengths): part of the shape.
    local id, err = ctx.engine:graph_add(s.desc or s.kind, pids, s.slide_ms, s.window_ms or 0, s.flags or 0)
    if not id then error(sformat("%s: the graph could not take the stream: %s", s.kind, err), 4) end
    s.id = id
    ctx.streams[#ctx.streams + 1] = s
    return s
end

--- Whether x is a DStream.
function DStream.is(x)
    return getmetatable(x) == DStream
end

--- The label of this stream in errors, the UI and the checkpoint.
function DStream:label()
    return self._name or sformat("%s#%d", self.kind, self.id)
end

--- name(s) sets the stream's name and returns the stream; name() returns it.
function DStream:name(s)
    if s == nil then return self:label() end
    if type(s) ~= "string" or s == "" then error("name: argument #1 must be a non-empty string", 2) end
    if self.ctx.state ~= "stopped" then -- the graph (and its fingerprint) knows streams by name
        local ok, err = self.ctx.engine:graph_set_name(self.id, s)
        if not ok then error("name: " .. err, 2) end
    end
    self._name = s
    return self
end

local function lineage(s, depth)
    local own = s.desc or s.kind
    if s._name then own = sformat("%s[%s]", own, s._name) end
    if depth > 12 then return own .. " <- ..." end
    local ps = s.parents
    if #ps == 0 then return own end
    if #ps == 1 then return own .. " <- " .. lineage(ps[1], depth + 1) end
    local parts = {}
    for i, p in ipairs(ps) do parts[i] = lineage(p, depth + 1) end
    return own .. " <- (" .. table.concat(parts, " | ") .. ")"
end

function DStream:__tostring()
    return lineage(self, 0)
end

function DStream:_rdd_id(t)
    return sformat("%s@%d", self._name or tostring(self.id), t)
end

--- The RDD this stream made for batch time t, or nil if it made none (the
--- graph did not plan it then, or it failed). Parents run before their
--- children in a plan, so a consumer finds its parents' batches here.
function DStream:_rdd(t)
    return self.generated[t]
end

--- Compute and keep this stream's RDD for batch time t (the plan says when).
function DStream:_materialize(t)
    local ctx = self.ctx
    local prev = ctx._current
    ctx._current = self
    local r = self:_compute(t)
    ctx._current = prev
    if r ~= nil then
        if not RDD.is(r) then
            stage.fail("function must return an RDD, got " .. type(r))
        end
        self.generated[t] = r
    end
    return r
end

--- Whether the stream is computed inside its consumer's stage rather than on
--- its own (the fusion rule is planner.fused_into; this only names the consumer).
function DStream:_fused()
    return self.consumers == 1 and planner.fused_into(self, self.consumer)
end

--- The RDD of every parent at time t, or nil if one of them has none then.
function DStream:_parent_rdds(t)
    local rdds = {}
    for i, p in ipairs(self.parents) do
        local r = p:_rdd(t)
        if r == nil then return nil end
        rdds[i] = r
    end
    return rdds
end

-- Narrow streams: fused into one stage ending at the stream that is asked.

-- The batch at t of the stage ending at s (planner.stage(s)), or nil when
-- its input has none then. A stage ending in a map-side combine feeds a
-- reducer and returns its pairs.
local function compute_stage(s, st, t)
    local src = st.input:_rdd(t)
    if src == nil then return nil end
    local run = planner.run(st, src.pairs and "p" or "v")
    if not st.tail then
        local m, a, b, ends = run(src.n, src.a, src.b, src.ends)
        local r = RDD.new(m, a, b, ends, t, s:_rdd_id(t))
        srcparts.set(r, srcparts.of(src)) -- the loop keeps the partitions
        return r
    end
    if srcparts.of(src) then -- one reducer per source partition
        local m, ks, vs, ends, sp = srcparts.per_source(src, function(n, a, b, e)
            local by_key, add, finish = shuffle.reducer("reduceByKey", s.f)
            run(n, a, b, e, by_key, add)
            return finish(1)
        end)
        local r = RDD.new(m, ks, vs, ends, t, s:_rdd_id(t))
        srcparts.set(r, sp)
        return r
    end
    -- The reducer's hash tables live as long as the stage record (see shuffle.reducer).
    st.scratch = st.scratch or {by_key = {}}
    local by_key, add, finish = shuffle.reducer("reduceByKey", s.f, st.scratch)
    run(src.n, src.a, src.b, src.ends, by_key, add)
    local m, ks, vs, ends = finish(s.num_partitions)
    return RDD.new(m, ks, vs, ends, t, s:_rdd_id(t))
end

function DStream:_compute_narrow(t)
    return compute_stage(self, planner.stage(self), t)
end

local function narrow_op(kind)
    return function(self, f)
        util.check_function(kind, 1, "f", f, 2)
        local in_shape = self.pairs
        local out
        if in_shape ~= nil then
            out = stage.out_shape(kind, in_shape and "p" or "v")
            if not out then
                error(sformat("%s: %s is not a pair stream (make pairs with mapToPair)", kind, tostring(self)), 2)
            end
        end
        local pairs_ = nil
        if out then pairs_ = out == "p" end
        return DStream.new(self.ctx, {kind = kind, parents = {self}, f = f, narrow = true,
            pairs = pairs_, _compute = DStream._compute_narrow})
    end
end

--- Narrow operations (fused into one loop per stage).
DStream.map = narrow_op("map")
DStream.flatMap = narrow_op("flatMap")
DStream.filter = narrow_op("filter")
DStream.mapToPair = narrow_op("mapToPair")
DStream.flatMapToPair = narrow_op("flatMapToPair")
DStream.mapValues = narrow_op("mapValues")
DStream.flatMapValues = narrow_op("flatMapValues")

local keep_f = function() end
--- The keys of a pair stream.
function DStream:keys() return narrow_op("keys")(self, keep_f) end
--- The values of a pair stream.
function DStream:values() return narrow_op("values")(self, keep_f) end

-- Streams computed from their parents' RDDs by an RDD method.

local function require_pairs(self, op, level)
    if self.pairs == false then
        error(sformat("%s: %s is not a pair stream (make pairs with mapToPair)", op, tostring(self)), level + 1)
    end
end

local function per_batch(self, kind, pairs_, compute, extra)
    local fields = {kind = kind, parents = {self}, pairs = pairs_, _compute = function(s, t)
        local r = s.parents[1]:_rdd(t)
        if r == nil then return nil end
        return compute(s, r, t)
    end}
    extra = extra or {}
    local k, v = next(extra)
    while k ~= nil do
        fields[k] = v
        k, v = next(extra, k)
    end
    return DStream.new(self.ctx, fields)
end

local function check_partitions(op, n, level)
    if n ~= nil and (type(n) ~= "number" or n < 1 or n ~= math.floor(n)) then
        error(sformat("%s: numPartitions must be a whole number >= 1, got %s", op, tostring(n)), level + 1)
    end
end

local function restamp(r, s, t)
    r.time, r._id = t, s:_rdd_id(t)
    return r
end

--- f(array) per partition returns the partition's new records.
function DStream:mapPartitions(f)
    util.check_function("mapPartitions", 1, "f", f, 2)
    return per_batch(self, "mapPartitions", false, function(s, r, t) return restamp(r:mapPartitions(f), s, t) end)
end

--- One array per partition.
function DStream:glom()
    return per_batch(self, "glom", false, function(s, r, t) return restamp(r:glom(), s, t) end)
end

--- The same records spread over n partitions.
function DStream:repartition(n)
    check_partitions("repartition", n, 2)
    if n == nil then error("repartition: argument #1 (numPartitions) is required", 2) end
    return per_batch(self, "repartition", self.pairs, function(s, r, t) return restamp(r:repartition(n), s, t) end)
end

--- One record per batch: all records reduced with f (no record for an empty batch).
function DStream:reduce(f)
    util.check_function("reduce", 1, "f", f, 2)
    return per_batch(self, "reduce", false, function(s, r, t)
        if r.n == 0 then return RDD.new(0, {}, nil, {0}, t, s:_rdd_id(t)) end
        return RDD.new(1, {r:reduce(f)}, nil, {1}, t, s:_rdd_id(t))
    end)
end

--- One record per batch: the number of records (0 for an empty batch).
function DStream:count()
    return per_batch(self, "count", false, function(s, r, t)
        return RDD.new(1, {r.n}, nil, {1}, t, s:_rdd_id(t))
    end)
end

--- Pairs (record, count) per batch.
function DStream:countByValue(numPartitions)
    check_partitions("countByValue", numPartitions, 2)
    return per_batch(self, "countByValue", true, function(s, r, t)
        -- flatMap(dstream.words) right before counted its words in C (planner.counts_words).
        if planner.counts_words(s.parents[1]) then return RDD.new(r.n, r.a, r.b, {r.n}, t, s:_rdd_id(t)) end
        local count = r.pairs and shuffle.count_by_value_pairs or shuffle.count_by_value
        local m, ks, vs, ends, sp
        if srcparts.of(r) then
            m, ks, vs, ends, sp = srcparts.per_source(r, function(n, a, b, e)
                if b then return count("countByValue", n, a, b, e) end
                return count("countByValue", n, a, e)
            end)
        elseif r.pairs then
            m, ks, vs, ends = count("countByValue", r.n, r.a, r.b, r.ends)
        else
            m, ks, vs, ends = count("countByValue", r.n, r.a, r.ends)
        end
        local out = RDD.new(m, ks, vs, ends, t, s:_rdd_id(t))
        srcparts.set(out, sp)
        return out
    end)
end

--- fn(rdd, timeMs) returns the RDD of the new stream.
function DStream:transform(fn)
    util.check_function("transform", 1, "fn", fn, 2)
    return per_batch(self, "transform", nil, function(s, r, t)
        local out = fn(r, t)
        if not RDD.is(out) then
            stage.fail("function must return an RDD, got " .. type(out))
        end
        -- The records of the RDD fn returned, with this stream's id and time.
        local made = RDD.new(out.n, out.a, out.b, out.ends, t, s:_rdd_id(t))
        srcparts.set(made, srcparts.of(out))
        return made
    end)
end

--- fn(rdd1, rdd2, timeMs) over this stream's and other's batches.
function DStream:transformWith(other, fn)
    util.check_function("transformWith", 2, "fn", fn, 2)
    return self.ctx:transform({self, other}, function(rdds, t) return fn(rdds[1], rdds[2], t) end, "transformWith")
end

--- Both streams' records.
function DStream:union(other)
    return self.ctx:union({self, other})
end

--- Keep computed batches for every consumer instead of recomputing the chain.
function DStream:cache()
    self.ctx:_check_building("cache")
    self.cached = true
    return self
end
DStream.persist = DStream.cache

--- How often (seconds, a multiple of the batch interval) the stream's data is checkpointed.
function DStream:checkpoint(interval)
    local ms = util.duration_ms("checkpoint: interval", interval, 2)
    if ms % self.ctx.batch_ms ~= 0 then
        error(sformat("checkpoint: interval %s of %s is not a multiple of the batch interval %s",
            util.show_ms(ms), tostring(self), util.show_ms(self.ctx.batch_ms)), 2)
    end
    self.checkpoint_ms = ms
    return self
end

-- Pair operations.

--- Per-key reduction with f(v1, v2).
function DStream:reduceByKey(f, numPartitions)
    util.check_function("reduceByKey", 1, "f", f, 2)
    require_pairs(self, "reduceByKey", 2)
    check_partitions("reduceByKey", numPartitions, 2)
    local s = per_batch(self, "reduceByKey", true, function(s, r, t)
        return restamp(r:reduceByKey(f, numPartitions), s, t)
    end, {f = f, num_partitions = numPartitions})
    -- Right after a fused chain, the chain's stage folds each pair into the
    -- reducer as it makes it (Spark's map-side combine): no array of pairs
    -- is built between the two.
    local by_rdd = s._compute
    s._compute = function(self_, t)
        local st = planner.stage(self_)
        if st then return compute_stage(self_, st, t) end
        return by_rdd(self_, t)
    end
    return s
end

--- Per key, the array of its values in arrival order.
function DStream:groupByKey(numPartitions)
    require_pairs(self, "groupByKey", 2)
    check_partitions("groupByKey", numPartitions, 2)
    return per_batch(self, "groupByKey", true, function(s, r, t)
        return restamp(r:groupByKey(numPartitions), s, t)
    end)
end

--- Spark's combineByKey.
function DStream:combineByKey(create, mergeValue, mergeCombiners, numPartitions)
    util.check_function("combineByKey", 1, "createCombiner", create, 2)
    util.check_function("combineByKey", 2, "mergeValue", mergeValue, 2)
    util.check_function("combineByKey", 3, "mergeCombiners", mergeCombiners, 2)
    require_pairs(self, "combineByKey", 2)
    check_partitions("combineByKey", numPartitions, 2)
    return per_batch(self, "combineByKey", true, function(s, r, t)
        return restamp(r:combineByKey(create, mergeValue, mergeCombiners, numPartitions), s, t)
    end)
end

local function join_op(name)
    return function(self, other)
        require_pairs(self, name, 2)
        if not DStream.is(other) then
            error(sformat("%s: argument #1 must be a DStream, got %s", name, type(other)), 2)
        end
        require_pairs(other, name, 2)
        return DStream.new(self.ctx, {kind = name, parents = {self, other}, pairs = true,
            _compute = function(s, t)
                local r1, r2 = self:_rdd(t), other:_rdd(t)
                if r1 == nil or r2 == nil then return nil end
                return restamp(r1[name](r1, r2), s, t)
            end})
    end
end

--- Joins: values {v, w}, a missing side nil.
DStream.join = join_op("join")
DStream.leftOuterJoin = join_op("leftOuterJoin")
DStream.rightOuterJoin = join_op("rightOuterJoin")
DStream.fullOuterJoin = join_op("fullOuterJoin")
--- Per key, {vs, ws}: the arrays of both sides' values.
DStream.cogroup = join_op("cogroup")

--- saveToKafka{brokers, topic, options}: each batch's records to a Kafka topic (dstream/kafka.lua).
function DStream:saveToKafka(opts)
    local result = require("dstream.kafka").saveToKafka(self, opts) -- not a tail call: errors point at the caller's line
    return result
end

return DStream

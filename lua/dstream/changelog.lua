--- The changelog: keyed state per input partition, kept in a compacted
--- Kafka topic so that it follows its partition when the consumer group
--- moves the partition to another process (as Kafka Streams does).
---
--- WHICH STREAMS: every stateful stream (updateStateByKey, mapWithState)
--- downstream of a kafkaStream with a groupId. It keeps one store per input
--- partition (state.lua, srcparts.lua) and its changelog is the topic
--- `<groupId>-<stream name or id>-changelog`, compacted, with as many
--- partitions as the input topics; input partition topic/p writes to
--- changelog partition p.
---
--- AFTER EVERY BATCH (an observer that runs before the kafkaStream's commit
--- of the batch's offsets, and before the next batch): for each input
--- partition, one record per key the batch changed — Kafka key
--- `<topic> NUL "k" <codec bytes of the key>`, value the codec bytes of
--- {n = the new value (absent: removed), o = the value before the batch
--- (absent: none)} — then a marker record, key `<topic> NUL "m"`, value
--- {u = the batch's untilOffset for that partition}; then one flush. A
--- failed flush raises: the process stops before the offsets are committed.
---
--- ON ASSIGNMENT (ctx:_kafka_assigned, before the partition is fetched):
--- the changelog partition is read to its end. Records before the last
--- marker of the input partition are applied in order (the new value);
--- records after it are a batch that never finished: for them the value
--- before the batch is applied (what the state was at the marker, which
--- compaction may have removed in favour of the unfinished record), and
--- those keys are written again after the new owner's first batch, so that
--- the unfinished records, once followed by a marker, are superseded. The
--- input starts at the marker's offset: the records of the unfinished
--- batch are read and counted again, once.
---
--- ON REVOCATION (ctx:_kafka_revoked): the partition's stores are dropped;
--- what they held is in the changelog up to the last completed batch.
local core = require "dstream.core"
local Context = require "dstream.context"
local srcparts = require "dstream.srcparts"

local changelog = {}

local sformat = string.format
local encode_value, decode_value = core.encode_value, core.decode_value

-- Reading a changelog partition, creating its topic, a flush: bounded waits.
local READ_TIMEOUT_MS = 60000
local META_TIMEOUT_MS = 10000
local FLUSH_TIMEOUT_MS = 60000

--- The changelog's Kafka key of key k of input topic `topic`.
function changelog.data_key(topic, k)
    return topic .. "\0k" .. encode_value(k)
end

--- The changelog's Kafka key of the markers of input topic `topic`.
function changelog.marker_key(topic)
    return topic .. "\0m"
end

--- The value of a change record: new (nil: the key was removed) and old
--- (had: whether the key had a value before the batch).
function changelog.change_value(new, had, old)
    return encode_value({n = new, o = had and old or nil})
end

--- The value of a marker: the input offset the state holds up to.
function changelog.marker_value(offset)
    return encode_value({u = offset})
end

--- The state of input topic `topic` in n changelog records (keys ks,
--- values vs, in offset order): {ks, vs, m} (every key with a value),
--- the last marker's offset (nil when none), and the keys written after it
--- as {ks, vs, m} (vs[i] nil: the key has no value), to be written again.
function changelog.replay(topic, ks, vs, n)
    local prefix = topic .. "\0"
    local plen = #prefix
    local state, order = {}, {} -- id (the key's bytes) -> {k, v}; ids in first-seen order
    local pending, np = {}, 0
    local offset = nil
    local function set(id, k, v)
        local e = state[id]
        if e == nil then
            e = {k = k}
            state[id] = e
            order[#order + 1] = id
        end
        e.v = v
    end
    for i = 1, n do
        local key = ks[i]
        if key:sub(1, plen) == prefix then
            local kind = key:sub(plen + 1, plen + 1)
            if kind == "m" then
                for j = 1, np do
                    local p = pending[j]
                    set(p.id, p.k, p.rec.n)
                end
                pending, np = {}, 0
                offset = decode_value(vs[i]).u
            elseif kind == "k" then
                local id = key:sub(plen + 2)
                np = np + 1
                pending[np] = {id = id, k = decode_value(id), rec = decode_value(vs[i])}
            end
        end
    end
    local redo, seen = {ks = {}, vs = {}, m = 0}, {}
    for j = 1, np do
        local p = pending[j]
        set(p.id, p.k, p.rec.o)
        if not seen[p.id] then
            seen[p.id] = true
            redo.m = redo.m + 1
            redo.ks[redo.m] = p.k
        end
    end
    for i = 1, redo.m do redo.vs[i] = state[encode_value(redo.ks[i])].v end
    local out = {ks = {}, vs = {}, m = 0}
    for _, id in ipairs(order) do
        local e = state[id]
        if e.v ~= nil then
            out.m = out.m + 1
            out.ks[out.m], out.vs[out.m] = e.k, e.v
        end
    end
    return out, offset, redo
end

-- "topic/partition" -> topic, partition number.
local function split_tp(tp)
    local topic, p = tp:match("^(.*)/(%d+)$")
    return topic, tonumber(p)
end
changelog.split_tp = split_tp

-- Whether stream s reads (through its parents) from stream src.
local function downstream_of(s, src)
    if s == src then return true end
    for _, p in ipairs(s.parents) do
        if downstream_of(p, src) then return true end
    end
    return false
end

-- r, kept by source partition when it has srcparts.
local function mark(r)
    if r ~= nil and r.srcparts ~= nil then srcparts.set(r, r.srcparts) end
    return r
end

-- The changelogs of ctx's stateful streams downstream of kafkaStream
-- `source` (made, with their topics, on the first call): array of
-- {stream, source, src (the kafka source object), topic}.
local function changelogs_of(ctx, source)
    ctx._changelogs = ctx._changelogs or {}
    local made = ctx._changelogs[source]
    if made then return made end
    local src = source.kafka_source
    -- A grouped source's batches are kept by partition (srcparts.lua):
    -- its shuffles and state run per input partition, so that the state
    -- can move with its partition.
    local take, replay = source.take, source._ckpt_replay
    source.take = function(...) return mark(take(...)) end
    if replay then source._ckpt_replay = function(...) return mark(replay(...)) end end
    made = {}
    for _, s in ipairs(ctx.streams) do
        if s.stateful and s ~= source and downstream_of(s, source) then
            made[#made + 1] = {stream = s, source = source, src = src,
                topic = sformat("%s-%s-changelog", src.group, s._name or tostring(s.id))}
            s.changes = s.changes or {}
        end
    end
    ctx._changelogs[source] = made
    if #made == 0 then return made end
    -- One reader for the changelogs (no group: its own assignments).
    local reader, err = core.kafka_consumer{brokers = src.brokers, options = src.options}
    if not reader then error(sformat("%s: the changelog reader could not be made: %s", src.desc, tostring(err)), 0) end
    made.reader = reader
    ctx.closers[#ctx.closers + 1] = function() reader:close() end
    local parts = 1
    for _, topic in ipairs(src.topics) do
        local n, perr = reader:partitions(topic)
        if not n then
            error(sformat("%s: the partitions of topic %q could not be listed for its changelog: %s", src.desc,
                topic, tostring(perr)), 0)
        end
        if n > parts then parts = n end
    end
    for _, cl in ipairs(made) do
        -- A topic made beforehand (by an administrator, or by the test
        -- broker, whose mock cluster has no CreateTopics) is used as it is.
        local have = reader:partitions(cl.topic)
        if have == nil then
            local ok, cerr = core.kafka_create_topic(src.brokers, cl.topic, parts, {["cleanup.policy"] = "compact"},
                src.options)
            if not ok then
                error(sformat("%s: the changelog topic %s of %s could not be created: %s", src.desc, cl.topic,
                    cl.stream:label(), tostring(cerr)), 0)
            end
        elseif have < parts then
            error(sformat("%s: the changelog topic %s of %s has %d partitions, fewer than the input's %d",
                src.desc, cl.topic, cl.stream:label(), have, parts), 0)
        end
    end
    -- Before the kafkaStream's commit observer: the changelog is written
    -- before the batch's offsets become the group's position.
    table.insert(ctx.observers, 1, function(_, t) changelog.write(ctx, t) end)
    return made
end

-- The store of partition tp of stream s, restored from changelog cl.
local function restore(ctx, cl, reader, tp)
    local state = require "dstream.state"
    local s = cl.stream
    local topic, partition = split_tp(tp)
    local low, high = reader:watermarks(cl.topic, partition, META_TIMEOUT_MS)
    if not low then
        error(sformat("%s: the changelog %s (partition %d) of %s could not be read: %s", cl.src.desc, cl.topic,
            partition, s:label(), tostring(high)), 0)
    end
    local ks, vs, n = {}, {}, 0
    if high > low then
        ks, vs, n = reader:read(cl.topic, partition, low, high, READ_TIMEOUT_MS)
        if not ks then
            error(sformat("%s: the changelog %s (partition %d, offsets [%d, %d)) of %s could not be read: %s",
                cl.src.desc, cl.topic, partition, low, high, s:label(), tostring(vs)), 0)
        end
    end
    local restored, offset, redo = changelog.replay(topic, ks, vs, n)
    local store = state.new_store(s)
    local t = ctx.last_batch or 0
    for i = 1, restored.m do
        local k = restored.ks[i]
        local slot, _, kind, bytes = store:lookup(k)
        store:put(k, slot, kind, bytes, restored.vs[i], t)
    end
    state.set_partition_store(s, tp, store)
    for i = 1, redo.m do
        local v = redo.vs[i]
        state.note_change(s, tp, redo.ks[i], v ~= nil, v)
    end
    return offset
end

--- ctx:_kafka_assigned(source, tps): restore each partition's state from
--- the changelogs; returns {[tp] = the offset to start at} (the last
--- marker's; none for a partition without one).
function Context:_kafka_assigned(source, tps)
    local cls = changelogs_of(self, source)
    local offsets = {}
    if #cls == 0 then return offsets end
    for _, tp in ipairs(tps) do
        local start
        for _, cl in ipairs(cls) do
            local o = restore(self, cl, cls.reader, tp)
            if o ~= nil and (start == nil or o < start) then start = o end
        end
        offsets[tp] = start
    end
    return offsets
end

--- ctx:_kafka_revoked(source, tps): drop those partitions' state.
function Context:_kafka_revoked(source, tps)
    local state = require "dstream.state"
    local cls = changelogs_of(self, source)
    for _, cl in ipairs(cls) do
        for _, tp in ipairs(tps) do state.set_partition_store(cl.stream, tp, nil) end
    end
end

--- The records a batch writes for one input partition of `topic`: one per
--- key of c (state.lua's changes: id -> {k, had, old}; nil: none), with
--- the value store holds now, then the marker of offset; appended to ks, vs
--- from n + 1 on. Returns the new n.
function changelog.records(topic, store, c, offset, ks, vs, n)
    if c ~= nil then
        local id, ch = next(c)
        while id ~= nil do
            local _, cur = store:lookup(ch.k)
            n = n + 1
            ks[n], vs[n] = changelog.data_key(topic, ch.k), changelog.change_value(cur, ch.had, ch.old)
            id, ch = next(c, id)
        end
    end
    n = n + 1
    ks[n], vs[n] = changelog.marker_key(topic), changelog.marker_value(offset)
    return n
end

--- After batch t: write the changed keys and a marker per input partition
--- of every changelog of ctx, then flush; raises when that fails.
function changelog.write(ctx, t)
    local producer = ctx._changelog_producer
    local wrote = false
    local by_source = ctx._changelogs
    local source, cls = next(by_source)
    while source ~= nil do
        local r = source:_rdd(t)
        local ranges = r and r._ranges or {}
        for _, cl in ipairs(cls) do
            local s = cl.stream
            local changes = s.changes
            for _, rg in ipairs(ranges) do
                local tp = rg.topic .. "/" .. rg.partition
                local store = s.stores and s.stores[tp]
                local c = changes[tp]
                if store and (c ~= nil or rg.untilOffset > rg.fromOffset) then
                    if producer == nil then
                        local err
                        producer, err = core.kafka_producer{brokers = cl.src.brokers, options = cl.src.options}
                        if not producer then
                            error(sformat("%s: batch %d ms: the changelog producer could not be made: %s", s:label(),
                                t, tostring(err)), 0)
                        end
                        ctx._changelog_producer = producer
                        ctx.closers[#ctx.closers + 1] = function() producer:close() end
                    end
                    local ks, vs = {}, {}
                    local n = changelog.records(rg.topic, store, c, rg.untilOffset, ks, vs, 0)
                    changes[tp] = nil
                    for i = 1, n do
                        local ok, err = producer:produce(cl.topic, rg.partition, ks[i], vs[i])
                        if not ok then
                            error(sformat("%s: batch %d ms: the changelog %s (partition %d) could not take a record: %s",
                                s:label(), t, cl.topic, rg.partition, tostring(err)), 0)
                        end
                    end
                    wrote = true
                end
            end
        end
        source, cls = next(by_source, source)
    end
    if wrote then
        local ok, err = producer:flush(FLUSH_TIMEOUT_MS)
        if not ok then
            error(sformat("the changelog of batch %d ms could not be written: %s", t, tostring(err)), 0)
        end
    end
end

return changelog

--- Keyed state: mapWithState and updateStateByKey over a keyed store.
---
--- WHERE STATE LIVES: in a keyed store (dstream.store: a ds_state_t in C
--- memory, off the Lua heap, reached per record through the FFI): number
--- keys and number states unboxed, string keys as their bytes, other keys
--- and states in the codec's canonical form. A state read is a copy.
---
--- TIMEOUTS ARE EXACT: the store keeps keys in update order, so a batch asks
--- it only for the keys idle for at least the timeout at that batch time; the
--- cost of a batch follows the keys it touches and the keys that expire, not
--- the size of the state. A key that receives data has its idle time reset,
--- whether or not the function updates its state (as in Spark).
---
--- STATE PER INPUT PARTITION: when the input RDD says which source
--- partition each of its partitions came from (rdd.srcparts: a kafkaStream's
--- "topic/partition"), the stream keeps one store per source partition
--- (s.stores[tp]) and the records of RDD partition j go to the store of
--- srcparts[j]: state that a consumer group can move with its partition
--- (changelog.lua). Each store has its own timeouts; outputs come one
--- partition per store, with srcparts. Without srcparts there is one store
--- (s.store), as before. In group mode (s.changes, set by changelog.lua) a
--- batch notes, per partition, each key it changes and the value it had
--- before the batch: the changelog writes them after the batch.
local keystore = require "dstream.store"
local shuffle = require "dstream.shuffle"
local util = require "dstream.util"
local stage = require "dstream.stage"
local RDD = require "dstream.rdd"
local DStream = require "dstream.stream"
local srcparts = require "dstream.srcparts"
local valuecodec = require "dstream.valuecodec"
local core = require "dstream.core"

local state = {}

local sformat = string.format
local NUM, STR = keystore.NUM, keystore.STR

local fail = stage.fail

-- State: the object a mapWithState function sees ---------------------------

local State = {}
State.__index = State

local function state_error(op, msg)
    error(sformat("State:%s(): %s", op, msg), 3)
end

-- THE PROTOCOL, per record: the loop sets _value (nil: no state) and _op
-- (0); update() sets _op 1, remove() 2; _timing_out is set per batch, and
-- per call only for timeout calls. A state is never nil, so _value says
-- whether the key has one: two writes per record, one read after.

--- Whether the key has a state.
function State:exists()
    return self._value ~= nil
end

--- The state; an error if there is none.
function State:get()
    local v = self._value
    if v == nil then state_error("get", "the key has no state (check exists() or use getOption())") end
    return v
end

--- The state, or nil if there is none.
function State:getOption()
    return self._value
end

--- Set the state (not allowed while the key is timing out).
function State:update(v)
    if self._timing_out then state_error("update", "the key is timing out and will be removed; it cannot be updated") end
    if v == nil then state_error("update", "the new state is nil (use remove() to drop the key)") end
    self._value, self._op = v, 1
end

--- Remove the state (not allowed while the key is timing out).
function State:remove()
    if self._timing_out then state_error("remove", "the key is timing out and is removed already") end
    self._value, self._op = nil, 2
end

--- Whether this call is the key's timeout call (its value is nil).
function State:isTimingOut()
    return self._timing_out
end

function State:__tostring()
    if self._timing_out then return sformat("State(timing out: %s)", tostring(self._value)) end
    if self._value ~= nil then return sformat("State(%s)", tostring(self._value)) end
    return "State(none)"
end

-- StateSpec ---------------------------------------------------------------------

local StateSpec = {}
StateSpec.__index = StateSpec

--- StateSpec(f): f(key, value, state, timeMs) returns the mapped record (nil emits nothing).
function state.StateSpec(f)
    util.check_function("StateSpec", 1, "f", f, 2)
    return setmetatable({f = f}, StateSpec)
end

--- timeout(s): a key idle for at least s seconds gets one timeout call, then is removed.
function StateSpec:timeout(s)
    self.timeout_ms = util.duration_ms("StateSpec:timeout", s, 2)
    return self
end

--- initialState(rdd): the state of some keys before the first batch (a pair RDD).
function StateSpec:initialState(rdd)
    if not RDD.is(rdd) or not rdd.pairs then
        error("StateSpec:initialState: argument #1 must be a pair RDD (e.g. ssc:parallelizePairs{...})", 2)
    end
    self.initial = rdd
    return self
end

function StateSpec:__tostring()
    return sformat("StateSpec(timeout %s%s)", self.timeout_ms and util.show_ms(self.timeout_ms) or "none",
        self.initial and ", initial state" or "")
end

-- mapWithState ------------------------------------------------------------------

local function new_store(s)
    return keystore.new(s.kind, {timeout_ms = s.spec and s.spec.timeout_ms})
end

local function store_of(s, t)
    local store = s.store
    if not store then
        store = new_store(s)
        if s.initial then store:load(s.initial, t) end
        s.store = store
    end
    return store
end

--- A new empty store for stateful stream s (changelog.lua restores into one).
state.new_store = new_store

--- The store of source partition tp of s, made empty when it has none.
function state.partition_store(s, tp)
    local stores = s.stores
    if stores == nil then
        stores = {}
        s.stores = stores
    end
    local store = stores[tp]
    if store == nil then
        if s.initial then
            fail(sformat("%s keeps its state per input partition (its input comes from %s), and an initial "
                .. "state cannot be split by input partition: drop the initial state, or feed it as input",
                s.kind, tp))
        end
        store = new_store(s)
        stores[tp] = store
    end
    return store
end

--- Set (or, with nil, drop) the store of source partition tp of s.
function state.set_partition_store(s, tp, store)
    if s.stores == nil then s.stores = {} end
    s.stores[tp] = store
    if s.changes then s.changes[tp] = nil end
    if s.ckpt_parts then s.ckpt_parts[tp] = nil end
end

-- The identity of key k in a table of changes: numbers as themselves,
-- strings and encoded keys apart ("\2" and true are two keys).
local function change_id(k)
    local tk = type(k)
    if tk == "number" then return k end
    if tk == "string" then return "s" .. k end
    return "e" .. valuecodec.encode_key(k)
end

-- Group mode: note that key k of partition tp is changing, and the value
-- it had before this batch (the first change of the batch says it).
local function note_change(s, tp, k, had, old)
    local changes = s.changes
    if changes == nil or tp == nil then return end
    local c = changes[tp]
    if c == nil then
        c = {}
        changes[tp] = c
    end
    local id = change_id(k)
    if c[id] == nil then c[id] = {k = k, had = had, old = old} end
end
--- Note that key k of partition tp of s changes, and what it held before (changelog.lua).
state.note_change = note_change

-- The work of a batch over stateful stream s: one job per store that runs,
-- {store, tp (nil for the one store), n, a, b} (the records going to it),
-- in a fixed order, and whether outputs carry srcparts.
local function jobs_of(s, r, t)
    local jobs = {}
    local sp = srcparts.of(r)
    -- Records without srcparts go to the one store; an empty batch without
    -- them (a kafkaStream with no partition assigned yet) makes none, but
    -- for an initial state.
    if s.store ~= nil or (sp == nil and (r.n > 0 or s.initial ~= nil)) then
        jobs[1] = {store = store_of(s, t), n = sp == nil and r.n or 0, a = r.a, b = r.b}
    end
    local stores = s.stores
    if sp == nil and stores == nil then return jobs, false end
    local given = {}
    if sp ~= nil then
        local tps, members = srcparts.groups(r)
        for i = 1, #tps do
            local n, a, b = srcparts.slice(r, members[i])
            given[tps[i]] = {n = n, a = a, b = b}
            state.partition_store(s, tps[i])
        end
        stores = s.stores
    end
    local tps = {}
    local tp = next(stores)
    while tp ~= nil do
        tps[#tps + 1] = tp
        tp = next(stores, tp)
    end
    table.sort(tps)
    for i = 1, #tps do
        local g = given[tps[i]]
        jobs[#jobs + 1] = {store = stores[tps[i]], tp = tps[i], n = g and g.n or 0, a = g and g.a, b = g and g.b}
    end
    return jobs, #jobs > 0 and jobs[1].tp ~= nil
end

-- An RDD of the outputs of jobs, one partition per job.
local function jobs_rdd(s, t, jobs, with_sp, m, a, b, ends)
    if #ends == 0 then ends[1] = 0 end
    local out = RDD.new(m, a, b, ends, t, s:_rdd_id(t))
    if with_sp then
        local sp = {}
        for i = 1, #jobs do sp[i] = jobs[i].tp end
        srcparts.set(out, sp)
    end
    return out
end

-- Checkpoints (dstream.checkpoint): the keyed store, a snapshot the first
-- time and when asked for a full one, else its changes since the previous
-- save. Before the first batch there is no store yet, and nothing to save:
-- recovery then leaves the initial state to be loaded at the first batch, as
-- it would be. So in a chain of checkpoints (a full one and the deltas after
-- it) a stream's first string is always a snapshot.

--
-- With state per input partition the string is PARTS followed by the
-- codec's bytes of {d = the one store's string, p = {[tp] = string}}, each
-- store's string a snapshot or a delta as above (a store's first is a
-- snapshot). In group mode (s.changes) the partitions' stores are not
-- saved: the changelog topic holds them, and a restarted process gets them
-- from there with the partitions the group gives it.
local PARTS = "PARTS\1"

local function save_one(store, tracked, full, t)
    if not tracked then
        store:track()
        full = true
    end
    return store:checkpoint(full, t)
end

local function ckpt_save(s, full, t)
    local store = s.store
    if s.stores == nil or s.changes ~= nil then
        if store == nil then return nil end
        local data = save_one(store, s.ckpt_tracked, full, t)
        s.ckpt_tracked = true
        return data
    end
    local saved = {p = {}}
    if store ~= nil then
        saved.d = save_one(store, s.ckpt_tracked, full, t)
        s.ckpt_tracked = true
    end
    s.ckpt_parts = s.ckpt_parts or {}
    local tp, st = next(s.stores)
    while tp ~= nil do
        saved.p[tp] = save_one(st, s.ckpt_parts[tp], full, t)
        s.ckpt_parts[tp] = true
        tp, st = next(s.stores, tp)
    end
    return PARTS .. core.encode_value(saved)
end

-- The store as it was saved; the initial state is not loaded again.
local function ckpt_restore(s, datas)
    for i = 1, #datas do
        local data = datas[i]
        if data:sub(1, #PARTS) == PARTS then
            local saved = core.decode_value(data:sub(#PARTS + 1))
            if saved.d then
                s.store = s.store or new_store(s)
                s.store:restore(saved.d)
            end
            s.stores, s.ckpt_parts = s.stores or {}, s.ckpt_parts or {}
            local tp, part = next(saved.p)
            while tp ~= nil do
                local st = s.stores[tp] or new_store(s)
                st:restore(part)
                st:track()
                s.stores[tp], s.ckpt_parts[tp] = st, true
                tp, part = next(saved.p, tp)
            end
        else
            s.store = s.store or new_store(s)
            s.store:restore(data)
        end
    end
    if s.store then
        s.store:track()
        s.ckpt_tracked = true
    end
end

-- The timeout call of key k, whose last state was v, in batch b.
local function timed_out(k, v, b)
    note_change(b.s, b.tp, k, true, v)
    local st = b.st
    st._value, st._op, st._timing_out = v, 0, true
    local mapped = b.f(k, nil, st, b.t)
    if mapped ~= nil then
        local m = b.m + 1
        b.m, b.out[m] = m, mapped
    end
end

-- The n records of a batch, with the slots (and cells) store:find gave for
-- them, or none (nil): f called for each, what it maps appended to out
-- after m; returns the new m. In group mode note is state.note_change,
-- told (s, tp, key, had, old) of each key changing. It uses no upvalue,
-- so that it can be loaded twice (below).
local function map_records(store, f, st, ks, vs, n, t, out, m, timeout, slots, cells, note, s, tp)
    local writable = store:cells_writable()
    for i = 1, n do
        local k = ks[i]
        local slot, cur, kind, bytes, cell = -1
        if slots then slot = slots[i - 1] end
        if slot >= 0 then
            cell = cells[i - 1]
            -- Read as a number only when it holds one (dstream/ffi.h).
            if cell.half[1] < 0xfff00000 then
                cur = cell.num
            else
                cur, cell = store:value(slot), nil
            end
        else
            -- Absent before the batch, or any key once a key was removed.
            slot, cur, kind, bytes = store:lookup(k)
        end
        st._value, st._op = cur, 0
        local mapped = f(k, vs[i], st, t)
        local op = st._op
        if note ~= nil and op ~= 0 then note(s, tp, k, slot >= 0, cur) end
        if op == 1 then
            local v = st._value
            if cell and writable and type(v) == "number" and v == v then
                cell.num = v
            else
                store:put(k, slot, kind, bytes, v, t)
            end
        elseif op == 2 then
            -- A slot freed may be reused by a key inserted later: no slot
            -- or cell found before the batch holds any more.
            slots = nil
            if slot >= 0 then store:remove(slot) end
        elseif slot >= 0 and timeout then
            -- Data arrived: the key is not idle. Its stored state stays as it
            -- was, even if f changed the table get() gave it (a copy).
            store:touch(slot, t)
        end
        if mapped ~= nil then
            m = m + 1
            out[m] = mapped
        end
    end
    return m
end

-- WHY TWO COPIES: LuaJIT compiles the loop for the path its records take
-- when it becomes hot, and other paths become side traces that go back
-- through the loop's entry: compiled while keys are mostly new (the first
-- batches), it ran batches of mostly existing keys 2x slower. Each copy
-- (its own bytecode, so its own traces) runs the batches of one kind,
-- chosen by how many keys store:find found.
local map_new = map_records
local map_found = load(string.dump(map_records), "=dstream.state(map_records)")

-- The records n, ks, vs of one store's job, their outputs from out[m + 1]
-- on; returns the new m.
local function map_one(s, store, tp, n, ks, vs, t, out, m)
    local f, st, timeout = s.spec.f, s.state_obj, s.spec.timeout_ms
    local note = (s.changes ~= nil and tp ~= nil) and note_change or nil
    local slots, cells, found
    if n > 0 then slots, cells, found = store:find(ks, n) end
    st._timing_out = false
    local run = (slots and 2 * found >= n) and map_found or map_new
    m = run(store, f, st, ks, vs, n, t, out, m, timeout, slots, cells, note, s, tp)
    if timeout then
        local batch = {f = f, st = st, t = t, out = out, m = m, s = s, tp = tp}
        store:expire(t, timed_out, batch)
        m = batch.m
    end
    return m
end

local function map_with_state(s, r, t)
    if not r.pairs then fail("mapWithState needs a pair stream, but its input holds single values") end
    local jobs, with_sp = jobs_of(s, r, t)
    local out, m, ends = {}, 0, {}
    for i = 1, #jobs do
        local job = jobs[i]
        m = map_one(s, job.store, job.tp, job.n, job.a, job.b, t, out, m)
        ends[i] = m
    end
    return jobs_rdd(s, t, jobs, with_sp, m, out, nil, ends)
end

--- mapWithState(spec): per record f(key, value, state, timeMs) -> mapped record.
function DStream:mapWithState(spec)
    if getmetatable(spec) ~= StateSpec then
        error("mapWithState: argument #1 must be a dstream.StateSpec(f)", 2)
    end
    if self.pairs == false then
        error(sformat("mapWithState: %s is not a pair stream (make pairs with mapToPair)", tostring(self)), 2)
    end
    local s = DStream.new(self.ctx, {kind = "mapWithState", parents = {self}, pairs = false,
        spec = spec, initial = spec.initial, state_obj = setmetatable({}, State),
        _ckpt_save = ckpt_save, _ckpt_restore = ckpt_restore,
        _compute = function(s, t)
            local r = s.parents[1]:_rdd(t)
            if r == nil then return nil end
            return map_with_state(s, r, t)
        end})
    s.stateful = true
    return s
end

--- stateSnapshots(): a pair stream of every key's state, each batch.
function DStream:stateSnapshots()
    if self.kind ~= "mapWithState" then
        error("stateSnapshots: only a stream made by mapWithState has state snapshots", 2)
    end
    local mapped = self
    return DStream.new(self.ctx, {kind = "stateSnapshots", parents = {self}, pairs = true,
        _compute = function(s, t)
            if mapped:_rdd(t) == nil then return nil end
            local ks, vs = {}, {}
            if mapped.stores == nil then
                local m = store_of(mapped, t):dump(ks, vs, 0)
                return RDD.new(m, ks, vs, {m}, t, s:_rdd_id(t))
            end
            local jobs, with_sp = jobs_of(mapped, RDD.empty(t), t)
            local m, ends = 0, {}
            for i = 1, #jobs do
                m = jobs[i].store:dump(ks, vs, m)
                ends[i] = m
            end
            return jobs_rdd(s, t, jobs, with_sp, m, ks, vs, ends)
        end})
end

-- updateStateByKey -------------------------------------------------------------

-- The records rn, ra, rb of one store's job; their outputs into oks, ovs
-- from n + 1 on; returns the new n.
local function update_one(s, store, tp, rn, ra, rb, t, oks, ovs, n)
    local f = s.f
    local noting = s.changes ~= nil and tp ~= nil
    local m, ks, groups = shuffle.group_by_key("updateStateByKey", rn, ra, rb, {rn})
    -- Keys with new values, by kind: the string "\2" and the key true
    -- (encoded "\2") are two keys.
    local seen_num, seen_str, seen_enc = {}, {}, {}
    -- Keys with new values, in arrival order.
    for i = 1, m do
        local k = ks[i]
        local slot, cur, kind, bytes = store:lookup(k)
        if kind == NUM then
            seen_num[k] = true
        elseif kind == STR then
            seen_str[bytes] = true
        else
            seen_enc[bytes] = true
        end
        local new = f(groups[i], cur, t)
        if noting and (new ~= nil or slot >= 0) then note_change(s, tp, k, slot >= 0, cur) end
        if new == nil then
            if slot >= 0 then store:remove(slot) end
        else
            store:put(k, slot, kind, bytes, new, t)
            n = n + 1
            oks[n], ovs[n] = k, new
        end
    end
    -- Keys with state but no new values: f(values = {}, state).
    local slot = store:next(-1)
    while slot >= 0 do
        local kind, id = store:key_id(slot)
        local seen
        if kind == NUM then
            seen = seen_num[id]
        else
            seen = (kind == STR and seen_str or seen_enc)[id]
        end
        local nxt = store:next(slot)
        if not seen then
            local k = id
            if kind ~= NUM and kind ~= STR then k = store:key(slot) end
            local cur = store:value(slot)
            local new = f({}, cur, t)
            if noting and (new ~= cur or type(new) == "table") then note_change(s, tp, k, true, cur) end
            if new == nil then
                store:remove(slot)
            else
                -- A number, string or boolean state that stays as it was is
                -- not written again: a checkpoint's delta holds only the keys
                -- that changed. (A table may have been changed in place.)
                if new ~= cur or type(new) == "table" then store:put(k, slot, kind, nil, new, t) end
                n = n + 1
                oks[n], ovs[n] = k, new
            end
        end
        slot = nxt
    end
    return n
end

local function update_state(s, r, t)
    if not r.pairs then fail("updateStateByKey needs a pair stream, but its input holds single values") end
    local jobs, with_sp = jobs_of(s, r, t)
    local oks, ovs, n, ends = {}, {}, 0, {}
    for i = 1, #jobs do
        local job = jobs[i]
        n = update_one(s, job.store, job.tp, job.n, job.a, job.b, t, oks, ovs, n)
        ends[i] = n
    end
    return jobs_rdd(s, t, jobs, with_sp, n, oks, ovs, ends)
end

--- updateStateByKey(f, initialRDD): f(newValues, oldState, timeMs) -> newState, nil removes the key.
function DStream:updateStateByKey(f, initialRDD)
    util.check_function("updateStateByKey", 1, "f", f, 2)
    if self.pairs == false then
        error(sformat("updateStateByKey: %s is not a pair stream (make pairs with mapToPair)", tostring(self)), 2)
    end
    if initialRDD ~= nil and (not RDD.is(initialRDD) or not initialRDD.pairs) then
        error("updateStateByKey: argument #2 (initialRDD) must be a pair RDD (e.g. ssc:parallelizePairs{...})", 2)
    end
    local s = DStream.new(self.ctx, {kind = "updateStateByKey", parents = {self}, pairs = true,
        f = f, initial = initialRDD, _ckpt_save = ckpt_save, _ckpt_restore = ckpt_restore,
        _compute = function(s, t)
            local r = s.parents[1]:_rdd(t)
            if r == nil then return nil end
            return update_state(s, r, t)
        end})
    s.stateful = true
    return s
end

-- The changelog adds the consumer-group hooks to the context.
require "dstream.changelog"

return state

--- Keyed state: mapWithState and updateStateByKey over the C state store.
---
--- WHERE STATE LIVES: in a ds_state_t (core/src/state.c), off the Lua heap:
--- number keys and number states unboxed, string keys as their bytes, other
--- keys (booleans, composite keys) and other states in the codec's canonical
--- form, written and read per record in Lua (dstream.valuecodec) through the
--- FFI: no classic C API call per record, no table per lookup.
---
--- TIMEOUTS ARE EXACT: the store keeps keys in update order, so a batch asks
--- it only for the keys idle for at least the timeout at that batch time; the
--- cost of a batch follows the keys it touches and the keys that expire, not
--- the size of the state. A key that receives data has its idle time reset,
--- whether or not the function updates its state (as in Spark).
local ffi = require "ffi"
local C = require("dstream.cdef").C
local valuecodec = require "dstream.valuecodec"
local key = require "dstream.key"
local shuffle = require "dstream.shuffle"
local util = require "dstream.util"
local stage = require "dstream.stage"
local RDD = require "dstream.rdd"
local DStream = require "dstream.stream"

local state = {}

local type, error, sformat = type, error, string.format
local NUM, STR, ENC = C.DS_STATE_NUM, C.DS_STATE_STR, C.DS_STATE_ENC

local function fail(msg)
    error(setmetatable({cause = msg}, stage.Failure), 0)
end

-- Store -----------------------------------------------------------------------

local Store = {}
Store.__index = Store

-- The store's limits, as core/src/state.c sets them (MAX_SLOTS, MAX_SLABS).
local MAX_KEYS = 2 ^ 25 - 1

local function check(rc, what, store)
    if rc < 0 then
        local name = ffi.string(C.ds_err_name(rc))
        if name == "ERANGE" and store then
            fail(sformat("%s: the state store is full: it holds %d keys, and %d keys (or 32 GiB of states "
                .. "under 1 KiB each) is the most one stateful stream can keep (ERANGE)", what,
                store:count(), MAX_KEYS))
        end
        fail(sformat("%s: %s: %s", what, name, ffi.string(C.ds_strerror(rc))))
    end
    return rc
end

function Store.new(timeout_ms, opname)
    local p = C.ds_state_new(timeout_ms or 0)
    if p == nil then error(opname .. ": out of memory creating the state store", 0) end
    return setmetatable({p = ffi.gc(p, C.ds_state_free), item = ffi.new("ds_state_item_t"),
        kitem = ffi.new("ds_state_item_t"), opname = opname}, Store)
end

local function item_value(item)
    local kind = item.kind
    if kind == NUM then return item.num end
    if kind == STR then return ffi.string(item.ptr, item.len) end
    return valuecodec.decode(item.ptr, item.len)
end

-- The bytes a non-number key goes to the store as, and their kind.
local function key_bytes(opname, k)
    if type(k) == "string" then return STR, k end
    local canon, reason = key.check(k)
    if canon == nil then
        fail(sformat("%s: %s (keys are strings, numbers, booleans or arrays of those)", opname, reason))
    end
    return ENC, valuecodec.encode_key(k)
end

--- Look up k: its slot (or -1), its state (or nil), and its key kind and bytes for a later put.
function Store:lookup(k)
    local item = self.item
    local slot, kind, bytes
    if type(k) == "number" then
        if k ~= k then fail(self.opname .. ": key is NaN (keys are strings, numbers, booleans or arrays of those)") end
        slot = C.ds_state_get_num(self.p, k, item)
        kind = NUM
    else
        kind, bytes = key_bytes(self.opname, k)
        slot = C.ds_state_get_bytes(self.p, kind, bytes, #bytes, item)
    end
    if slot < 0 then return -1, nil, kind, bytes end
    return slot, item_value(item), kind, bytes
end

local function encode_state(opname, v)
    local ok, bytes = pcall(valuecodec.encode, v)
    if not ok then fail(sformat("%s: the state cannot be stored: %s", opname, tostring(bytes))) end
    return bytes
end

--- Set the state of k (slot from lookup, or -1) to v at batch time t.
function Store:put(k, slot, kind, bytes, v, t)
    local p, opname = self.p, self.opname
    if slot >= 0 then
        if type(v) == "number" then return check(C.ds_state_set_num(p, slot, v, t), opname, self) end
        local enc = encode_state(opname, v)
        return check(C.ds_state_set_enc(p, slot, enc, #enc, t), opname, self)
    end
    if type(v) == "number" then
        if kind == NUM then return check(C.ds_state_put_num_num(p, k, v, t), opname, self) end
        return check(C.ds_state_put_bytes_num(p, kind, bytes, #bytes, v, t), opname, self)
    end
    local enc = encode_state(opname, v)
    if kind == NUM then return check(C.ds_state_put_num_enc(p, k, enc, #enc, t), opname, self) end
    return check(C.ds_state_put_bytes_enc(p, kind, bytes, #bytes, enc, #enc, t), opname, self)
end

--- Mark slot's key as used at batch time t, its state unchanged.
function Store:touch(slot, t)
    return check(C.ds_state_touch(self.p, slot, t), self.opname, self)
end

function Store:remove(slot)
    C.ds_state_remove_slot(self.p, slot)
end

--- Every (key, state) into arrays ks, vs from index m + 1; returns the new m.
function Store:dump(ks, vs, m)
    local p, kitem, item = self.p, self.kitem, self.item
    local slot = C.ds_state_next(p, -1)
    while slot >= 0 do
        C.ds_state_key(p, slot, kitem)
        C.ds_state_value(p, slot, item)
        m = m + 1
        ks[m], vs[m] = item_value(kitem), item_value(item)
        slot = C.ds_state_next(p, slot)
    end
    return m
end

function Store:count()
    return C.ds_state_count(self.p)
end

--- Bytes the store holds.
function Store:memory()
    return tonumber(C.ds_state_memory(self.p))
end

-- Load an initial state RDD (pairs) at batch time t.
function Store:load(rdd, t)
    for i = 1, rdd.n do
        local k = rdd.a[i]
        local slot, _, kind, bytes = self:lookup(k)
        self:put(k, slot, kind, bytes, rdd.b[i], t)
    end
end

state.Store = Store

-- State: the object a mapWithState function sees ---------------------------

local State = {}
State.__index = State

local function state_error(op, msg)
    error(sformat("State:%s(): %s", op, msg), 3)
end

--- Whether the key has a state.
function State:exists()
    return self._exists
end

--- The state; an error if there is none.
function State:get()
    if not self._exists then state_error("get", "the key has no state (check exists() or use getOption())") end
    return self._value
end

--- The state, or nil if there is none.
function State:getOption()
    if self._exists then return self._value end
    return nil
end

--- Set the state (not allowed while the key is timing out).
function State:update(v)
    if self._timing_out then state_error("update", "the key is timing out and will be removed; it cannot be updated") end
    if v == nil then state_error("update", "the new state is nil (use remove() to drop the key)") end
    self._value, self._exists, self._updated, self._removed = v, true, true, false
end

--- Remove the state (not allowed while the key is timing out).
function State:remove()
    if self._timing_out then state_error("remove", "the key is timing out and is removed already") end
    self._value, self._exists, self._updated, self._removed = nil, false, false, true
end

--- Whether this call is the key's timeout call (its value is nil).
function State:isTimingOut()
    return self._timing_out
end

function State:__tostring()
    if self._timing_out then return sformat("State(timing out: %s)", tostring(self._value)) end
    if self._exists then return sformat("State(%s)", tostring(self._value)) end
    return "State(none)"
end

local function reset(st, exists, value, timing_out)
    st._exists, st._value, st._timing_out, st._updated, st._removed = exists, value, timing_out, false, false
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

local function store_of(s, t)
    local store = s.store
    if not store then
        store = Store.new(s.spec and s.spec.timeout_ms or 0, s.kind)
        if s.initial then store:load(s.initial, t) end
        s.store = store
    end
    return store
end

-- Scratch arrays for a batch's number keys and their slots, grown as needed.
local keys_buf, slots_buf, buf_cap = nil, nil, 0

-- When every key of the batch is a number (not NaN): the slot of each, found
-- by one C call whose cache misses overlap (ds_state_find_nums); else nil.
local function batch_slots(store, ks, n)
    for i = 1, n do
        local k = ks[i]
        if type(k) ~= "number" or k ~= k then return nil end
    end
    if n > buf_cap then
        buf_cap = math.max(n, 2 * buf_cap)
        keys_buf, slots_buf = ffi.new("double[?]", buf_cap), ffi.new("int32_t[?]", buf_cap)
    end
    for i = 1, n do keys_buf[i - 1] = ks[i] end
    C.ds_state_find_nums(store.p, keys_buf, n, slots_buf)
    return slots_buf
end

local function map_with_state(s, r, t)
    if not r.pairs then fail("mapWithState needs a pair stream, but its input holds single values") end
    local store = store_of(s, t)
    local f, st, timeout = s.spec.f, s.state_obj, s.spec.timeout_ms
    local ks, vs = r.a, r.b
    local out, m = {}, 0
    -- Slots never move while their key lives, so the slots found before the
    -- batch hold until its first removal; a key inserted since (found -1
    -- here) is looked up again.
    local slots = batch_slots(store, ks, r.n)
    local p, item = store.p, store.item
    for i = 1, r.n do
        local k = ks[i]
        local slot, cur, kind, bytes
        if slots then
            slot, kind = slots[i - 1], NUM
            if slot < 0 then
                slot = C.ds_state_get_num(p, k, item)
            else
                C.ds_state_value(p, slot, item)
            end
            if slot >= 0 then cur = item_value(item) end
        else
            slot, cur, kind, bytes = store:lookup(k)
        end
        reset(st, slot >= 0, cur, false)
        local mapped = f(k, vs[i], st, t)
        if st._removed then
            slots = nil
            if slot >= 0 then store:remove(slot) end
        elseif st._updated then
            store:put(k, slot, kind, bytes, st._value, t)
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
    if timeout then
        local kitem = store.kitem
        while true do
            local rc = C.ds_state_expire(p, t, kitem, item)
            if rc == 0 then break end
            check(rc, "mapWithState")
            local k = item_value(kitem)
            reset(st, true, item_value(item), true)
            local mapped = f(k, nil, st, t)
            if mapped ~= nil then
                m = m + 1
                out[m] = mapped
            end
        end
    end
    return RDD.new(m, out, nil, {m}, t, s:_rdd_id(t))
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
            local m = store_of(mapped, t):dump(ks, vs, 0)
            return RDD.new(m, ks, vs, {m}, t, s:_rdd_id(t))
        end})
end

-- updateStateByKey -------------------------------------------------------------

local function update_state(s, r, t)
    if not r.pairs then fail("updateStateByKey needs a pair stream, but its input holds single values") end
    local store = store_of(s, t)
    local f = s.f
    local m, ks, groups = shuffle.group_by_key("updateStateByKey", r.n, r.a, r.b, r.ends)
    -- Keys with new values, by kind: the string "\2" and the key true
    -- (encoded "\2") are two keys.
    local seen_num, seen_str, seen_enc = {}, {}, {}
    local oks, ovs, n = {}, {}, 0
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
        if new == nil then
            if slot >= 0 then store:remove(slot) end
        else
            store:put(k, slot, kind, bytes, new, t)
            n = n + 1
            oks[n], ovs[n] = k, new
        end
    end
    -- Keys with state but no new values: f(values = {}, state).
    local p, kitem, item = store.p, store.kitem, store.item
    local slot = C.ds_state_next(p, -1)
    while slot >= 0 do
        C.ds_state_key(p, slot, kitem)
        local kind = kitem.kind
        local seen
        if kind == NUM then
            seen = seen_num[kitem.num]
        else
            seen = (kind == STR and seen_str or seen_enc)[ffi.string(kitem.ptr, kitem.len)]
        end
        local nxt = C.ds_state_next(p, slot)
        if not seen then
            C.ds_state_value(p, slot, item)
            local k = item_value(kitem)
            local new = f({}, item_value(item), t)
            if new == nil then
                store:remove(slot)
            else
                store:put(k, slot, kind, nil, new, t)
                n = n + 1
                oks[n], ovs[n] = k, new
            end
        end
        slot = nxt
    end
    return RDD.new(n, oks, ovs, {n}, t, s:_rdd_id(t))
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
        f = f, initial = initialRDD,
        _compute = function(s, t)
            local r = s.parents[1]:_rdd(t)
            if r == nil then return nil end
            return update_state(s, r, t)
        end})
    s.stateful = true
    return s
end

return state

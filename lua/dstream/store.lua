--- Keyed stores: the one keyed store of dstream, a map from keys to values in
--- C memory (a ds_state_t, core/src/state.c), reached per record through the
--- FFI. mapWithState and updateStateByKey keep their state in one, the
--- incremental keyed windows their running values.
---
--- WHERE KEYS AND VALUES LIVE: off the Lua heap (DESIGN.md rule 5). Number
--- keys and number values are kept unboxed; a string key as its bytes; any
--- other key (a boolean, a composite key) and any other value in the codec's
--- canonical form, written and read in Lua (dstream.valuecodec), so a record
--- costs FFI calls the JIT compiles and no classic C API call. A value read
--- back is a copy: changing it changes nothing stored.
---
--- SLOTS: a live key keeps its slot until it is removed, so a lookup's slot
--- can be set, touched or removed later without hashing the key again.
---
--- THE JOURNAL (opts.journal): a window changes its running values while
--- user functions run, and a function that raises must leave them as they
--- were. A journaled store notes, for each change, the slot and what it held
--- before (its number, its codec bytes, or false for a key the change
--- inserted); rollback() undoes the changes newest first, commit() forgets
--- them. Nothing catches the error (its traceback stays the user's): the
--- next begin() finds the journal of the evaluation that raised and rolls
--- it back first. Keys are removed only once an evaluation can no longer
--- fail, so undoing never needs a removed key back.
---
--- KEYS BY SLOT (opts.keys): a window emits every key at every evaluation,
--- so it keeps the Lua key of each live slot in an array and reads only the
--- value from C: no string made per key and evaluation. It also keeps the
--- slot of each string key in a table, so looking one up is a Lua table
--- read (an interned string: ~5 ns) and one value read, not a C hash and
--- compare of its bytes (~37 ns); a window with Lua reducers looks up every
--- key entering and leaving. Those two tables are the one thing such a
--- store keeps on the Lua heap: the keys, not the values.
local ffi = require "ffi"
local C = require("dstream.cdef").C
local valuecodec = require "dstream.valuecodec"
local key = require "dstream.key"
local stage = require "dstream.stage"

local store = {}

local type, error, tostring, sformat = type, error, tostring, string.format
local NUM, STR, ENC = C.DS_STATE_NUM, C.DS_STATE_STR, C.DS_STATE_ENC
local get_num, get_bytes, value_at, key_at, next_slot = C.ds_state_get_num, C.ds_state_get_bytes,
    C.ds_state_value, C.ds_state_key, C.ds_state_next
local set_num, set_enc, remove_slot = C.ds_state_set_num, C.ds_state_set_enc, C.ds_state_remove_slot
local fold_num, fold_bytes = C.ds_state_fold_num, C.ds_state_fold_bytes

--- Key kinds, as ds_state_kind_t has them.
store.NUM, store.STR, store.ENC = NUM, STR, ENC

--- The built-in reducers a store folds numbers with, by name.
store.FOLD = {sum = C.DS_FOLD_SUM, min = C.DS_FOLD_MIN, max = C.DS_FOLD_MAX}

-- The store's limits, as core/src/state_internal.h sets them (MAX_SLOTS, MAX_SLABS).
local MAX_KEYS = 2 ^ 25 - 1

local fail = stage.fail

local Store = {}
Store.__index = Store

local function check(rc, st)
    if rc < 0 then
        local name = ffi.string(C.ds_err_name(rc))
        if name == "ERANGE" then
            fail(sformat("%s: the state store is full: it holds %d keys, and %d keys (or 32 GiB of states "
                .. "under 1 KiB each) is the most one stateful stream can keep (ERANGE)", st.opname,
                st:count(), MAX_KEYS))
        end
        fail(sformat("%s: %s: %s", st.opname, name, ffi.string(C.ds_strerror(rc))))
    end
    return rc
end

--- A new empty store for operator opname; opts: timeout_ms (keys idle that
--- long expire; none if absent), journal and keys (see above).
function store.new(opname, opts)
    opts = opts or {}
    local p = C.ds_state_new(opts.timeout_ms or 0)
    if p == nil then error(opname .. ": out of memory creating the state store", 0) end
    local st = setmetatable({p = ffi.gc(p, C.ds_state_free), item = ffi.new("ds_state_item_t"),
        kitem = ffi.new("ds_state_item_t"), jitem = ffi.new("ds_state_item_t"), opname = opname}, Store)
    if opts.journal then st.jslot, st.jold, st.nj = {}, {}, 0 end
    -- Cells are written in place only where nothing else must see the change.
    st.writable = not opts.timeout_ms and not opts.journal
    if opts.keys then
        -- Expiry removes keys in C, behind the two tables' back.
        assert(not opts.timeout_ms, "a store that keeps keys by slot has no timeout")
        st.keys, st.slots, st.top = {}, {}, 0
    end
    return st
end

function Store:__tostring()
    return sformat("Store(%s, %d keys)", self.opname, self:count())
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

local function nan_key(opname)
    fail(opname .. ": key is NaN (keys are strings, numbers, booleans or arrays of those)")
end

--- Look up k: its slot (or -1), its value (or nil), and its key kind and bytes for a later put.
function Store:lookup(k)
    local item = self.item
    local slot, kind, bytes
    local slots = self.slots
    if slots and type(k) == "string" then
        slot = slots[k]
        if slot == nil then return -1, nil, STR, k end
        value_at(self.p, slot, item)
        return slot, item_value(item), STR, k
    end
    if type(k) == "number" then
        if k ~= k then nan_key(self.opname) end
        slot = get_num(self.p, k, item)
        kind = NUM
    else
        kind, bytes = key_bytes(self.opname, k)
        slot = get_bytes(self.p, kind, bytes, #bytes, item)
    end
    if slot < 0 then return -1, nil, kind, bytes end
    return slot, item_value(item), kind, bytes
end

-- Scratch arrays for a batch's keys (numbers, or string pointers and
-- lengths), their slots and value cells, grown as needed.
local nums_buf, strs_buf, lens_buf, slots_buf, cells_buf, buf_cap = nil, nil, nil, nil, nil, 0

local function grow_bufs(n)
    buf_cap = math.max(n, 2 * buf_cap)
    nums_buf, strs_buf = ffi.new("double[?]", buf_cap), ffi.new("const char *[?]", buf_cap)
    lens_buf, slots_buf = ffi.new("uint32_t[?]", buf_cap), ffi.new("int32_t[?]", buf_cap)
    cells_buf = ffi.new("ds_state_cell_t *[?]", buf_cap)
end

--- BATCH LOOKUPS: when every key of ks[1..n] is a number (not NaN), or
--- every key a string: the slot of each (-1 if absent) and its value cell
--- (a ds_state_cell_t *, NULL if absent), in scratch arrays indexed from 0 valid
--- until the next call, and how many were found; found by one C call whose
--- cache misses overlap (dstream/ffi.h: ds_state_find_nums). Else nil.
--- A cell whose half[1] is below 0xfff00000 holds a number, its num (else
--- ask value(slot), never read num). When cells_writable(), a number other
--- than NaN may be written into a cell that holds a number, in place of
--- put().
--- Slots and cells hold until the first removal: a key inserted since (found
--- -1) is looked up again, and a removed key's slot may be reused.
function Store:find(ks, n)
    if n > buf_cap then grow_bufs(n) end
    local k1 = ks[1]
    if type(k1) == "number" then
        for i = 1, n do
            local k = ks[i]
            if type(k) ~= "number" or k ~= k then return nil end
            nums_buf[i - 1] = k
        end
        return slots_buf, cells_buf, C.ds_state_find_nums(self.p, nums_buf, n, slots_buf, cells_buf)
    elseif type(k1) == "string" then
        for i = 1, n do
            local k = ks[i]
            if type(k) ~= "string" then return nil end
            -- The pointers are the strings' own bytes: ks keeps them alive.
            strs_buf[i - 1], lens_buf[i - 1] = k, #k
        end
        return slots_buf, cells_buf, C.ds_state_find_strs(self.p, strs_buf, lens_buf, n, slots_buf, cells_buf)
    end
    return nil
end

--- Whether cells may be written: a store with no timeout, no journal and no
--- record of changes (ds_state_set_num does more then).
function Store:cells_writable()
    return self.writable
end

--- The slot of number key k and its value (-1 and nil when absent).
function Store:lookup_num(k)
    local item = self.item
    local slot = get_num(self.p, k, item)
    if slot < 0 then return -1, nil end
    return slot, item_value(item)
end

--- The value of a live slot.
function Store:value(slot)
    local item = self.item
    value_at(self.p, slot, item)
    return item_value(item)
end

--- The key of a live slot.
function Store:key(slot)
    local keys = self.keys
    if keys then return keys[slot] end
    local kitem = self.kitem
    key_at(self.p, slot, kitem)
    return item_value(kitem)
end

--- The key of a live slot as its kind and a number (NUM) or its bytes:
--- equal for equal keys, without decoding a composite key.
function Store:key_id(slot)
    local kitem = self.kitem
    key_at(self.p, slot, kitem)
    local kind = kitem.kind
    if kind == NUM then return NUM, kitem.num end
    return kind, ffi.string(kitem.ptr, kitem.len)
end

--- The first live slot after slot (-1 to start), or -1 at the end.
function Store:next(slot)
    return next_slot(self.p, slot)
end

local function encode_value(st, v)
    local ok, bytes = pcall(valuecodec.encode, v)
    if not ok then fail(sformat("%s: the state cannot be stored: %s", st.opname, tostring(bytes))) end
    return bytes
end

-- Note in the journal what a live slot holds before it changes: cur, the
-- value lookup gave, when it is a number, else the stored bytes.
local function journal_old(st, slot, cur)
    local nj = st.nj + 1
    st.nj, st.jslot[nj] = nj, slot
    if type(cur) == "number" then
        st.jold[nj] = cur
        return
    end
    local jitem = st.jitem
    value_at(st.p, slot, jitem)
    if jitem.kind == NUM then st.jold[nj] = jitem.num else st.jold[nj] = ffi.string(jitem.ptr, jitem.len) end
end

-- Note a key just inserted at slot (k, its Lua key).
local function inserted(st, slot, k)
    local keys = st.keys
    if keys then
        keys[slot] = k
        if type(k) == "string" then st.slots[k] = slot end
        if slot >= st.top then st.top = slot + 1 end
    end
    if st.jslot then
        local nj = st.nj + 1
        st.nj, st.jslot[nj], st.jold[nj] = nj, slot, false
    end
    return slot
end

--- Set the value of k (slot, kind and bytes from lookup) to v at batch
--- time t; returns its slot. cur (optional): the value lookup gave.
function Store:put(k, slot, kind, bytes, v, t, cur)
    local p = self.p
    if slot >= 0 then
        if self.jslot then journal_old(self, slot, cur) end
        if type(v) == "number" then
            check(set_num(p, slot, v, t), self)
        else
            local enc = encode_value(self, v)
            check(set_enc(p, slot, enc, #enc, t), self)
        end
        return slot
    end
    if type(v) == "number" then
        if kind == NUM then return inserted(self, check(C.ds_state_put_num_num(p, k, v, t), self), k) end
        return inserted(self, check(C.ds_state_put_bytes_num(p, kind, bytes, #bytes, v, t), self), k)
    end
    local enc = encode_value(self, v)
    if kind == NUM then return inserted(self, check(C.ds_state_put_num_enc(p, k, enc, #enc, t), self), k) end
    return inserted(self, check(C.ds_state_put_bytes_enc(p, kind, bytes, #bytes, enc, #enc, t), self), k)
end

--- Fold the number v into k's number value with op (a store.FOLD), at
--- batch time t: an absent key is inserted with v, unless `only_present`,
--- which leaves it absent.
function Store:fold(k, v, op, only_present, t)
    local p, old = self.p, self.jitem
    local slot
    if type(k) == "string" then
        slot = fold_bytes(p, STR, k, #k, v, op, t, old)
    elseif type(k) == "number" then
        if k ~= k then nan_key(self.opname) end
        slot = fold_num(p, k, v, op, t, old)
    else
        local kind, bytes = key_bytes(self.opname, k)
        slot = fold_bytes(p, kind, bytes, #bytes, v, op, t, old)
    end
    check(slot, self)
    if old.kind < 0 then
        if only_present then
            remove_slot(p, slot)
            return
        end
        inserted(self, slot, k)
        return
    end
    if self.jslot then
        local nj = self.nj + 1
        self.nj, self.jslot[nj], self.jold[nj] = nj, slot, old.num
    end
end

--- Mark slot's key as used at batch time t, its value unchanged.
function Store:touch(slot, t)
    return check(C.ds_state_touch(self.p, slot, t), self)
end

--- Remove the key of a live slot.
function Store:remove(slot)
    remove_slot(self.p, slot)
    local keys = self.keys
    if keys then
        local k = keys[slot]
        if type(k) == "string" then self.slots[k] = nil end
        keys[slot] = nil
    end
end

--- Start an evaluation: undo the changes of one that raised, if any.
function Store:begin(t)
    if self.nj > 0 then self:rollback(t) end
end

--- Undo the journaled changes, newest first.
function Store:rollback(t)
    local p, jslot, jold = self.p, self.jslot, self.jold
    for i = self.nj, 1, -1 do
        local slot, old = jslot[i], jold[i]
        if old == false then
            self:remove(slot)
        elseif type(old) == "number" then
            set_num(p, slot, old, t)
        else
            -- Out of memory here raises with the journal kept: undoing
            -- again sets the same values, so the next begin() can retry.
            check(set_enc(p, slot, old, #old, t), self)
        end
    end
    self.nj = 0
end

--- Keep the journaled changes.
function Store:commit()
    self.nj = 0
end

--- The keys and values for which keep(k, v) is true (every key when keep
--- is nil), into new arrays; the slots of the others in a third: m, ks,
--- vs, drop, nd. For a store that keeps keys by slot.
function Store:select(keep)
    -- The live slots are those below top with a key: found without a C
    -- call each.
    local keys = self.keys
    local p, item = self.p, self.item
    local ks, vs, m = {}, {}, 0
    local drop, nd = {}, 0
    for slot = 0, self.top - 1 do
        local k = keys[slot]
        if k ~= nil then
            value_at(p, slot, item)
            local v = item.num
            if item.kind ~= NUM then v = item_value(item) end
            if keep == nil or keep(k, v) then
                m = m + 1
                ks[m], vs[m] = k, v
            else
                nd = nd + 1
                drop[nd] = slot
            end
        end
    end
    return m, ks, vs, drop, nd
end

--- Every (key, value) into arrays ks, vs from index m + 1; returns the new m.
function Store:dump(ks, vs, m)
    local p, kitem, item = self.p, self.kitem, self.item
    local slot = next_slot(p, -1)
    while slot >= 0 do
        key_at(p, slot, kitem)
        value_at(p, slot, item)
        m = m + 1
        ks[m], vs[m] = item_value(kitem), item_value(item)
        slot = next_slot(p, slot)
    end
    return m
end

--- Remove each key idle for the timeout at batch time t, oldest first, and
--- call fn(key, last value, arg) for it once it is removed.
function Store:expire(t, fn, arg)
    -- The loop and the C call stay here, in one trace: a method returning
    -- one key per call is first compiled on the batches where no key is
    -- idle, and then runs its common path outside any trace.
    local p, kitem, item = self.p, self.kitem, self.item
    while true do
        local rc = C.ds_state_expire(p, t, kitem, item)
        if rc == 0 then return end
        check(rc, self)
        fn(item_value(kitem), item_value(item), arg)
    end
end

--- Live keys.
function Store:count()
    return C.ds_state_count(self.p)
end

--- Bytes the store holds.
function Store:memory()
    return tonumber(C.ds_state_memory(self.p))
end

--- Load the pairs of rdd at batch time t.
function Store:load(rdd, t)
    for i = 1, rdd.n do
        local k = rdd.a[i]
        local slot, _, kind, bytes = self:lookup(k)
        self:put(k, slot, kind, bytes, rdd.b[i], t)
    end
end

--- CHECKPOINTS (dstream/state.h: SNAPSHOT FORMAT, DELTA FORMAT): a full
--- checkpoint is a snapshot of every key; once track() has been called, a
--- delta holds the keys set since the previous checkpoint (with their
--- times, in a store with a timeout) and the keys removed, expired ones
--- included. restore() applies a snapshot onto an empty store, or a delta
--- onto the store the checkpoints before it rebuilt.

local ckpt_data, ckpt_len = ffi.new("const char *[1]"), ffi.new("size_t[1]")
local applied_slots = ffi.new("const int32_t *[1]")
local errbuf_len = 512
local errbuf = ffi.new("char[?]", errbuf_len)

--- Start recording changes for delta checkpoints (idempotent).
function Store:track()
    check(C.ds_state_track(self.p), self)
    self.writable = false
end

--- A checkpoint at batch time t_ms, as a string: a snapshot of every key
--- when full, else the changes since the previous checkpoint (or since
--- track()). Either way the record of changes starts again. Raises on
--- out of memory.
function Store:checkpoint(full, t_ms)
    local p = self.p
    local rc = C.ds_state_checkpoint(p, full and 1 or 0, t_ms, ckpt_data, ckpt_len)
    if rc < 0 then
        if ffi.string(C.ds_err_name(rc)) == "ESTATE" then
            error(sformat("%s: a delta checkpoint of a state store that does not track its changes "
                .. "(track() first)", self.opname), 2)
        end
        check(rc, self)
    end
    local data = ffi.string(ckpt_data[0], ckpt_len[0])
    C.ds_state_checkpoint_free(p)
    return data
end

-- A store that keeps keys by slot: its two tables made again from C.
local function rebuild_keys(st)
    local keys, slots, top = {}, {}, 0
    local p, kitem = st.p, st.kitem
    local slot = next_slot(p, -1)
    while slot >= 0 do
        key_at(p, slot, kitem)
        local k = item_value(kitem)
        keys[slot] = k
        if type(k) == "string" then slots[k] = slot end
        top = slot + 1
        slot = next_slot(p, slot)
    end
    st.keys, st.slots, st.top = keys, slots, top
end

-- A store that keeps keys by slot, after a delta: its two tables updated
-- for the n slots at slots whose key the delta removed or inserted.
local function update_keys(st, slots, n)
    local keys, by_key = st.keys, st.slots
    for i = 0, n - 1 do
        local slot = slots[i]
        local k = keys[slot]
        if k ~= nil then
            if type(k) == "string" and by_key[k] == slot then by_key[k] = nil end
            keys[slot] = nil
        end
    end
    local p, kitem = st.p, st.kitem
    for i = 0, n - 1 do
        local slot = slots[i]
        if keys[slot] == nil and key_at(p, slot, kitem) >= 0 then
            local k = item_value(kitem)
            keys[slot] = k
            if type(k) == "string" then by_key[k] = slot end
            if slot >= st.top then st.top = slot + 1 end
        end
    end
end

--- Apply a checkpoint's string: a snapshot (the store must be empty) or a
--- delta (onto the state the checkpoints before it gave). Raises with what
--- went wrong and at which byte offset; a bad delta changes nothing. A store
--- that keeps keys by slot updates its tables for the keys a delta removed
--- or inserted (all of them after a snapshot).
function Store:restore(data)
    if type(data) ~= "string" then
        error(sformat("%s: restore wants a checkpoint string, got %s", self.opname, type(data)), 2)
    end
    errbuf[0] = 0
    local rc = C.ds_state_apply(self.p, data, #data, errbuf, errbuf_len)
    if self.keys then
        local n = C.ds_state_applied(self.p, applied_slots)
        if n < 0 then rebuild_keys(self) else update_keys(self, applied_slots[0], n) end
    end
    if self.jslot then self.nj = 0 end
    if rc < 0 then
        local why = errbuf[0] ~= 0 and ffi.string(errbuf) or ffi.string(C.ds_strerror(rc))
        error(sformat("%s: cannot restore the state from its checkpoint (%d bytes): %s (%s)", self.opname,
            #data, why, ffi.string(C.ds_err_name(rc))), 2)
    end
end

--- Free the store's memory now (it is freed when collected otherwise).
function Store:free()
    C.ds_state_free(ffi.gc(self.p, nil))
    self.p = nil
end

store.Store = Store

return store

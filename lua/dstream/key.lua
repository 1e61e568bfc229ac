-- Keys: what may be a key, when two keys are the same, and the index that
-- maps keys to dense slots for the shuffling operators.
--
-- A key is a string, a number (not NaN), a boolean, or an array of those
-- (a composite key, one level deep). Primitive keys are the same when Lua's
-- table lookup says so (1 and "1" differ, true and "true" differ, 0 and -0
-- are one key). Composite keys are the same when their members are: two
-- tables {"a", 1} are one key, and the first table seen stands for it.
--
-- HOW KEYS ARE KEPT APART: a primitive key is its own table key, in the
-- index's `prim` table. A composite key is looked up in a separate trie,
-- `comp`: comp[#t] is the node for arrays of that length, and each member in
-- turn selects the next node, the last one giving the slot. Lua's own table
-- lookup compares the members, so 1, "1" and true stay apart inside
-- composite keys too, and because the trie is not `prim`, a composite key
-- never collides with a plain key. No string is built per record.
--
-- CANONICAL FORM: key.check gives a composite key a canonical string (each
-- member tagged with its type, strings prefixed with their length, so the
-- encoding is a prefix code and two different arrays never give the same
-- string) for callers that need one value per key, e.g. to hash it or to
-- keep it as a table key next to (never in the same table as) plain keys.
-- The index builds it once per distinct composite key.
--
-- WHY THE FAST PATH IS ONE LOOKUP: the per-record loops in shuffle.lua read
-- `idx.prim[k]` first. Only validated primitive keys are ever stored there,
-- so a hit needs no type check; a miss (a new key, a composite key, a bad
-- key, nil or NaN - indexing with those reads nil) takes key.slot_slow.
--
-- LOOSE INDEXES (for distinct): records that are valid keys compare by the
-- rules above; any other non-nil value (a table that is not an array of
-- primitives, a function, a userdata) compares by identity, and every NaN is
-- one value.
--
-- COSTS: a primitive key costs one hash lookup per record; a composite key
-- of length L costs a walk over its fields (to check it is an array) and L+1
-- lookups, about ten times a primitive key. Trie nodes: one per distinct
-- proper prefix of the composite keys.

local key = {}

local type, next, tostring = type, next, tostring
local format, byte, sub = string.format, string.byte, string.sub
local concat = table.concat
local setmetatable = setmetatable

local RULES = "(keys are strings, numbers, booleans or arrays of those)"
key.RULES = RULES

local scratch = {}

-- Why t is not a composite key, or nil when it is one: an array (keys
-- 1..#t only) of strings, numbers other than NaN and booleans.
local function composite_problem(t)
    local len = #t
    local count = 0
    local k = next(t)
    while k ~= nil do
        count = count + 1
        k = next(t, k)
    end
    if count ~= len then
        return "key table is not an array (it has holes or non-integer keys)"
    end
    for i = 1, len do
        local x = t[i]
        local tx = type(x)
        if tx == "number" then
            if x ~= x then
                return "composite key member " .. i .. " is NaN"
            end
        elseif tx ~= "string" and tx ~= "boolean" then
            return "composite key member " .. i .. " of type " .. tx .. " is not allowed"
        end
    end
    return nil
end

-- The canonical string of a composite key (composite_problem(t) == nil).
local function composite_canon(t)
    local len = #t
    for i = 1, len do
        local x = t[i]
        local tx = type(x)
        if tx == "string" then
            scratch[i] = "s" .. #x .. ":" .. x
        elseif tx == "number" then
            scratch[i] = x == 0 and "n0;" or "n" .. format("%.17g", x) .. ";"
        else
            scratch[i] = x and "t" or "f"
        end
    end
    return concat(scratch, "", 1, len)
end

--- Checks that k is a key. Returns its canonical form and whether it is
--- composite (the canonical form is then a string to be kept apart from
--- plain string keys), or nil and the reason it is not a key.
function key.check(k)
    local tk = type(k)
    if tk == "string" or tk == "boolean" then
        return k, false
    elseif tk == "number" then
        if k ~= k then
            return nil, "key is NaN"
        end
        return k, false
    elseif tk == "table" then
        local reason = composite_problem(k)
        if reason ~= nil then
            return nil, reason
        end
        return composite_canon(k), true
    elseif tk == "nil" then
        return nil, "key is nil"
    end
    return nil, "key of type " .. tk .. " is not allowed"
end

--- Like key.check, but raises "<opname>: <reason> (keys are ...)".
function key.validate(opname, k)
    local canon, composite = key.check(k)
    if canon == nil then
        error(opname .. ": " .. composite .. " " .. RULES, 0)
    end
    return canon, composite
end

local function show_primitive(x)
    if type(x) == "string" then
        if #x > 60 then
            x = sub(x, 1, 57) .. "..."
        end
        return format("%q", x)
    end
    return tostring(x)
end

--- A short printable form of a key for error messages: strings quoted,
--- composite keys as {a, b} (members shown one level deep).
function key.show(k)
    if type(k) == "table" then
        local parts = {}
        for i = 1, #k do
            parts[i] = show_primitive(k[i])
        end
        return "{" .. concat(parts, ", ") .. "}"
    end
    return show_primitive(k)
end

--- A non-negative integer hash of a canonical key (what key.check returns),
--- the same in every process: used to assign keys to partitions.
function key.hash(canon)
    local tc = type(canon)
    if tc == "number" then
        if canon % 1 == 0 and canon > -2^53 and canon < 2^53 then
            return canon % 2147483647
        end
        canon = format("%.17g", canon)
    elseif tc == "boolean" then
        return canon and 1 or 0
    end
    local h = #canon
    for i = 1, #canon do
        h = (h * 31 + byte(canon, i)) % 2147483647
    end
    return h
end

local Index = {}
Index.__index = Index

function Index:__tostring()
    return format("key index of %s (%d keys%s)", self.opname, self.m,
        self.loose and ", loose" or "")
end

--- An index mapping keys to dense slots 1..m in first-seen order. opname
--- names the operator in errors. With loose = true, values that are not
--- keys compare by identity instead of raising (see the top of this file).
function key.index(opname, loose)
    return setmetatable({
        opname = opname,
        loose = loose == true,
        prim = {},          -- primitive key -> slot
        comp = {},          -- composite keys: comp[#t][t[1]]...[t[#t]] -> slot
        empty_slot = nil,   -- the slot of the composite key {}
        ident = {},         -- loose only: value compared by identity -> slot
        nan_slot = nil,     -- loose only: the slot shared by every NaN
        keys = {},          -- slot -> first key (or record) seen
        canon = {},         -- slot -> canonical string, composite keys only
        m = 0,              -- number of slots
    }, Index)
end

local function add(idx, k, canon)
    local s = idx.m + 1
    idx.m = s
    idx.keys[s] = k
    idx.canon[s] = canon
    return s
end

local function reject(idx, reason)
    error(idx.opname .. ": " .. reason .. " " .. RULES, 0)
end

-- The slot of composite key t (composite_problem(t) == nil), new or not.
local function composite_slot(idx, t)
    local len = #t
    if len == 0 then
        local s = idx.empty_slot
        if s ~= nil then
            return s, false
        end
        s = add(idx, t, "")
        idx.empty_slot = s
        return s, true
    end
    local comp = idx.comp
    local node = comp[len]
    if node == nil then
        node = {}
        comp[len] = node
    end
    for i = 1, len - 1 do
        local x = t[i]
        local child = node[x]
        if child == nil then
            child = {}
            node[x] = child
        end
        node = child
    end
    local last = t[len]
    local s = node[last]
    if s ~= nil then
        return s, false
    end
    s = add(idx, t, composite_canon(t))
    node[last] = s
    return s, true
end

--- key.slot_slow(idx, k): the slot of k and whether it is new, for callers
--- that have already missed in idx.prim (new keys, composite keys, loose
--- values); raises for a value that is not a key (unless loose).
local function slot_slow(idx, k)
    local tk = type(k)
    if tk == "string" or tk == "boolean" or (tk == "number" and k == k) then
        local s = idx.prim[k]
        if s ~= nil then
            return s, false
        end
        s = add(idx, k, nil)
        idx.prim[k] = s
        return s, true
    elseif tk == "table" then
        local reason = composite_problem(k)
        if reason == nil then
            return composite_slot(idx, k)
        end
        if not idx.loose then
            reject(idx, reason)
        end
    elseif tk == "number" then
        if not idx.loose then
            reject(idx, "key is NaN")
        end
        local s = idx.nan_slot
        if s ~= nil then
            return s, false
        end
        s = add(idx, k, nil)
        idx.nan_slot = s
        return s, true
    elseif tk == "nil" then
        reject(idx, "key is nil")
    elseif not idx.loose then
        reject(idx, "key of type " .. tk .. " is not allowed")
    end
    local s = idx.ident[k]
    if s ~= nil then
        return s, false
    end
    s = add(idx, k, nil)
    idx.ident[k] = s
    return s, true
end
key.slot_slow = slot_slow

--- The slot of k and whether k was new; raises for a value that is not a
--- key (unless loose).
function Index:slot(k)
    local s = self.prim[k]
    if s ~= nil then
        return s, false
    end
    return slot_slow(self, k)
end

--- The first key seen for slot s.
function Index:key(s)
    return self.keys[s]
end

--- The number of distinct keys.
function Index:count()
    return self.m
end

--- The partition (1..num_parts) of the key in slot s, from key.hash (not
--- for loose indexes, whose values need not be keys).
function Index:partition(s, num_parts)
    local k = self.canon[s]
    if k == nil then
        k = self.keys[s]
    end
    return key.hash(k) % num_parts + 1
end

return key

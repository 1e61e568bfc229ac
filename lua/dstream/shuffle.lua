-- The shuffle: the wide operations that bring together records by key
-- (reduceByKey, groupByKey, combineByKey, joins, cogroup, distinct,
-- countByValue) or reorder a whole batch (sortBy, repartition).
--
-- A batch arrives as parallel arrays: n records, keys ks[1..n] and values
-- vs[1..n] (xs[1..n] for a stream that is not a pair stream), cut into
-- partitions by `ends` (partition p holds ends[p-1]+1 .. ends[p], ends[0]
-- being 0). Results come back in the same form: m, oks, ovs, oends.
--
-- HOW KEYS MEET: every operator builds one key.index, which maps each key to
-- a dense slot 1..m in first-seen order, and keeps per-slot state in plain
-- arrays (the group, the combiner). The per-record loop reads `prim[k]`
-- directly - one table lookup for a key seen before - and calls
-- key.slot_slow only for a new key, a composite key or a bad one.
-- reduce_by_key goes one step further and keeps the running value of a
-- primitive key in a table keyed by the key itself.
-- No table is made per record unless the output holds it (groups, join
-- pairs, cogroup arrays).
--
-- ORDER: outputs keep keys in first-seen order (for a join or a cogroup: the
-- keys of the left side first, then the right side's new ones). With
-- num_parts > 1 each key goes to partition key.hash(canonical key) %
-- num_parts + 1, the same in every run, keeping first-seen order within a
-- partition. Joins, cogroup, distinct, countByValue and sortBy return one
-- partition.
--
-- COSTS: reduceByKey over primitive keys is one lookup, one call of the
-- user's function and one store per record; memory is O(distinct keys).
-- sortBy is a stable merge sort of record indices: O(n log n), two index
-- arrays of n.

-- Every function takes the batch's `ends` so that all share one signature;
-- only combine_by_key and repartition need it.
-- luacheck: no unused args

local key = require "dstream.key"
local Pair = require("dstream.format").Pair

local shuffle = {}

local type, error, tostring, setmetatable = type, error, tostring, setmetatable
local min = math.min
local tnew, tclear = require "table.new", require "table.clear"
local slot_slow, show = key.slot_slow, key.show

local function check_parts(opname, num_parts)
    if num_parts == nil then
        return 1
    end
    if type(num_parts) ~= "number" or num_parts < 1 or num_parts % 1 ~= 0 then
        error(opname .. ": numPartitions must be a positive integer (got "
            .. tostring(num_parts) .. ")", 0)
    end
    return num_parts
end

local function returned_nil(opname, what, k)
    error(opname .. ": " .. what .. " returned nil for key " .. show(k), 0)
end

-- Lays the slots of idx out in num_parts partitions. vals[s] is the output
-- value of slot s. Returns m, oks, ovs, oends.
local function emit(idx, vals, num_parts)
    local m, keys = idx.m, idx.keys
    if num_parts == 1 then
        return m, keys, vals, { m }
    end
    local part, starts, oends = {}, {}, {}
    for p = 1, num_parts do
        oends[p] = 0
    end
    for s = 1, m do
        local p = idx:partition(s, num_parts)
        part[s] = p
        oends[p] = oends[p] + 1
    end
    local total = 0
    for p = 1, num_parts do
        starts[p] = total
        total = total + oends[p]
        oends[p] = total
    end
    local oks, ovs = {}, {}
    for s = 1, m do
        local p = part[s]
        local j = starts[p] + 1
        starts[p] = j
        oks[j] = keys[s]
        ovs[j] = vals[s]
    end
    return m, oks, ovs, oends
end

-- Folds v into the running value of composite key slot s (or starts it).
local function fold_composite(opname, acc, s, is_new, v, f, k)
    if is_new then
        acc[s] = v
        return
    end
    local r = f(acc[s], v)
    if r == nil then
        returned_nil(opname, "function", k)
    end
    acc[s] = r
end

--- Per-key left fold of the values with f(v1, v2), in arrival order.
--- Returns m, oks, ovs, oends (num_parts partitions, default 1).
---
--- The running value of a primitive key lives in a table keyed by the key
--- itself, so a record costs the same one hash lookup as a plain
--- `t[k] = t[k] + v` loop (the JIT shares it between the load and the
--- store); the index is consulted only for new and composite keys.
function shuffle.reduce_by_key(opname, n, ks, vs, ends, f, num_parts)
    num_parts = check_parts(opname, num_parts)
    local by_key, add, finish = shuffle.reducer(opname, f)
    for i = 1, n do
        local k = ks[i]
        local a = by_key[k]
        if a ~= nil then
            local r = f(a, vs[i])
            if r == nil then
                returned_nil(opname, "function", k)
            end
            by_key[k] = r
        else
            add(k, vs[i])
        end
    end
    return finish(num_parts)
end

--- The state of one reduceByKey that a caller feeds record by record - the
--- fused stage's map-side combine, or reduce_by_key above. Returns by_key,
--- add, finish: a primitive key seen before has its running value in
--- by_key[k] (the caller folds it with f), any other record goes through
--- add(k, v); finish(num_parts) returns m, oks, ovs, oends.
---
--- A new primitive key (a string, a boolean, a number not NaN) only takes
--- the next slot: by_key itself tells a key seen before, so the index's
--- primitive map is not kept, and canon[s] stays nil for its slot.
---
--- scratch (optional, kept by the caller from batch to batch): its hash
--- table by_key is cleared and reused instead of made anew: it grows to the
--- batch's distinct keys, and growing it again every batch costs rehashes
--- and, past LuaJIT's mmap threshold (128 KiB), fresh pages. It never
--- leaves the reducer: the output arrays (keys and values) are new per call,
--- made at the size the previous batch needed.
function shuffle.reducer(opname, f, scratch)
    local idx = key.index(opname)
    local by_key
    if scratch then
        by_key = scratch.by_key
        if scratch.used then tclear(by_key) end
        scratch.used = true
        local m = scratch.m or 0
        if m > 0 then idx.keys = tnew(m, 0) end
    else
        by_key = {}
    end
    local keys, canon = idx.keys, idx.canon
    local acc = scratch and scratch.m and tnew(scratch.m, 0) or {}
    local function add(k, v)
        local tk = type(k)
        if tk == "string" or (tk == "number" and k == k) or tk == "boolean" then
            local s = idx.m + 1
            idx.m = s
            keys[s] = k
            by_key[k] = v
            return
        end
        local s, is_new = slot_slow(idx, k)
        if canon[s] == nil then
            by_key[k] = v
        else
            fold_composite(opname, acc, s, is_new, v, f, keys[s])
        end
    end
    local function finish(num_parts)
        num_parts = check_parts(opname, num_parts)
        if scratch then scratch.m = idx.m end
        for s = 1, idx.m do
            if canon[s] == nil then
                acc[s] = by_key[keys[s]]
            end
        end
        return emit(idx, acc, num_parts)
    end
    return by_key, add, finish
end

--- Per-key arrays of the values in arrival order.
--- Returns m, oks, ovs, oends (num_parts partitions, default 1).
function shuffle.group_by_key(opname, n, ks, vs, ends, num_parts)
    num_parts = check_parts(opname, num_parts)
    local idx = key.index(opname)
    local prim = idx.prim
    local groups, counts = {}, {}
    for i = 1, n do
        local k = ks[i]
        local s = prim[k]
        if s == nil then
            s = slot_slow(idx, k)
        end
        local c = counts[s]
        if c == nil then
            groups[s] = { vs[i] }
            counts[s] = 1
        else
            c = c + 1
            groups[s][c] = vs[i]
            counts[s] = c
        end
    end
    return emit(idx, groups, num_parts)
end

--- Spark's combineByKey: in each input partition, create(v) for a key's
--- first value and merge_value(c, v) for the next ones; then the partitions'
--- combiners are merged in partition order with merge_combiners(c1, c2).
--- Returns m, oks, ovs, oends (num_parts partitions, default 1).
function shuffle.combine_by_key(opname, n, ks, vs, ends, create, merge_value,
                                merge_combiners, num_parts)
    num_parts = check_parts(opname, num_parts)
    local idx = key.index(opname)
    local prim, keys = idx.prim, idx.keys
    local acc, part_acc, touched = {}, {}, {}
    local first = 1
    for p = 1, #ends do
        local last = ends[p]
        local nt = 0
        for i = first, last do
            local k = ks[i]
            local s = prim[k]
            if s == nil then
                s = slot_slow(idx, k)
            end
            local c = part_acc[s]
            if c == nil then
                c = create(vs[i])
                if c == nil then
                    returned_nil(opname, "createCombiner", keys[s])
                end
                nt = nt + 1
                touched[nt] = s
            else
                c = merge_value(c, vs[i])
                if c == nil then
                    returned_nil(opname, "mergeValue", keys[s])
                end
            end
            part_acc[s] = c
        end
        for t = 1, nt do
            local s = touched[t]
            local c, total = part_acc[s], acc[s]
            part_acc[s] = nil
            if total ~= nil then
                c = merge_combiners(total, c)
                if c == nil then
                    returned_nil(opname, "mergeCombiners", keys[s])
                end
            end
            acc[s] = c
        end
        first = last + 1
    end
    if first <= n then
        error(opname .. ": partition ends cover " .. (first - 1) .. " of "
            .. n .. " records", 0)
    end
    return emit(idx, acc, num_parts)
end

-- Threads the records of one side onto per-slot chains in arrival order:
-- head[s] is the first record of key s, nxt[i] the one after record i.
local function chain(idx, n, ks, head, nxt)
    local prim = idx.prim
    local tail = {}
    for i = 1, n do
        local k = ks[i]
        local s = prim[k]
        if s == nil then
            s = slot_slow(idx, k)
        end
        local t = tail[s]
        if t == nil then
            head[s] = i
        else
            nxt[t] = i
        end
        tail[s] = i
    end
end

local KEEP_LEFT = { inner = false, left = true, right = false, full = true }
local KEEP_RIGHT = { inner = false, left = false, right = true, full = true }

--- Joins two pair RDDs A and B ({n =, ks =, vs =, ends =}). kind is
--- "inner", "left", "right" or "full". Every matching (v, w) gives a record
--- (k, {v, w}), v in A's arrival order then w in B's; a missing side of an
--- outer join is nil. {v, w} is a tuple (the Pair metatable): it prints
--- (v,w), as Spark prints a join's values. Returns m, oks, ovs, oends (one partition).
function shuffle.join(kind, opname, A, B)
    local keep_left, keep_right = KEEP_LEFT[kind], KEEP_RIGHT[kind]
    if keep_left == nil then
        error(opname .. ": unknown join kind " .. tostring(kind)
            .. " (inner, left, right or full)", 0)
    end
    local idx = key.index(opname)
    local ahead, anext, bhead, bnext = {}, {}, {}, {}
    chain(idx, A.n, A.ks, ahead, anext)
    chain(idx, B.n, B.ks, bhead, bnext)
    local avs, bvs, keys = A.vs, B.vs, idx.keys
    local oks, ovs, m = {}, {}, 0
    for s = 1, idx.m do
        local k, i, j0 = keys[s], ahead[s], bhead[s]
        if i ~= nil and j0 ~= nil then
            while i ~= nil do
                local v, j = avs[i], j0
                while j ~= nil do
                    m = m + 1
                    oks[m] = k
                    ovs[m] = setmetatable({ v, bvs[j] }, Pair)
                    j = bnext[j]
                end
                i = anext[i]
            end
        elseif i ~= nil then
            if keep_left then
                while i ~= nil do
                    m = m + 1
                    oks[m] = k
                    ovs[m] = setmetatable({ avs[i], nil }, Pair)
                    i = anext[i]
                end
            end
        elseif keep_right then
            local j = j0
            while j ~= nil do
                m = m + 1
                oks[m] = k
                ovs[m] = setmetatable({ nil, bvs[j] }, Pair)
                j = bnext[j]
            end
        end
    end
    return m, oks, ovs, { m }
end

local function collect_chain(head, nxt, vals)
    local out, c, i = {}, 0, head
    while i ~= nil do
        c = c + 1
        out[c] = vals[i]
        i = nxt[i]
    end
    return out
end

--- Every key of A or B with {vs, ws}: its values on each side in arrival
--- order (an empty array for a side without the key), a tuple (the Pair
--- metatable) that prints ({..},{..}). Keys of A first.
--- Returns m, oks, ovs, oends (one partition).
function shuffle.cogroup(opname, A, B)
    local idx = key.index(opname)
    local ahead, anext, bhead, bnext = {}, {}, {}, {}
    chain(idx, A.n, A.ks, ahead, anext)
    chain(idx, B.n, B.ks, bhead, bnext)
    local avs, bvs = A.vs, B.vs
    local ovs = {}
    for s = 1, idx.m do
        ovs[s] = setmetatable({ collect_chain(ahead[s], anext, avs),
                   collect_chain(bhead[s], bnext, bvs) }, Pair)
    end
    return idx.m, idx.keys, ovs, { idx.m }
end

--- The distinct records of a non-pair RDD, first occurrence kept, in
--- first-seen order. Records that are valid keys compare by the key rules,
--- other records by identity. Returns m, oxs, oends (one partition).
function shuffle.distinct(opname, n, xs, ends)
    local idx = key.index(opname, true)
    local prim = idx.prim
    for i = 1, n do
        local x = xs[i]
        if prim[x] == nil then
            slot_slow(idx, x)
        end
    end
    return idx.m, idx.keys, { idx.m }
end

--- The distinct (k, v) pairs: both k and v compare as in distinct. The first
--- key and value seen for each stand for them. Returns m, oks, ovs, oends
--- (one partition).
function shuffle.distinct_pairs(opname, n, ks, vs, ends)
    local kidx, vidx = key.index(opname, true), key.index(opname, true)
    local kprim, vprim = kidx.prim, vidx.prim
    local seen = {}
    local oks, ovs, m = {}, {}, 0
    for i = 1, n do
        local k, v = ks[i], vs[i]
        local sk, sv = kprim[k], vprim[v]
        if sk == nil then
            sk = slot_slow(kidx, k)
        end
        if sv == nil then
            sv = slot_slow(vidx, v)
        end
        local vals = seen[sk]
        if vals == nil then
            vals = {}
            seen[sk] = vals
        end
        if vals[sv] == nil then
            vals[sv] = true
            m = m + 1
            oks[m] = kidx.keys[sk]
            ovs[m] = vidx.keys[sv]
        end
    end
    return m, oks, ovs, { m }
end

--- (value, count) for every distinct record; records must be keys.
--- Returns m, oks, ovs, oends (one partition).
function shuffle.count_by_value(opname, n, xs, ends)
    local idx = key.index(opname)
    local prim = idx.prim
    local counts = {}
    for i = 1, n do
        local x = xs[i]
        local s = prim[x]
        if s ~= nil then
            counts[s] = counts[s] + 1
        else
            local is_new
            s, is_new = slot_slow(idx, x)
            counts[s] = is_new and 1 or counts[s] + 1
        end
    end
    return idx.m, idx.keys, counts, { idx.m }
end

local function pair_member(idx, x, which)
    local tx = type(x)
    if tx == "string" or tx == "boolean" or (tx == "number" and x == x) then
        return slot_slow(idx, x)
    end
    error(idx.opname .. ": counting pairs makes {k, v} a key, so k and v must be"
        .. " strings, numbers (not NaN) or booleans; the pair's " .. which
        .. " is " .. (tx == "number" and "NaN" or "of type " .. tx), 0)
end

--- ({k, v}, count) for every distinct pair: the pair becomes a composite
--- key, so k and v must be strings, numbers or booleans. One new {k, v}
--- table per distinct pair. Returns m, oks, ovs, oends (one partition).
function shuffle.count_by_value_pairs(opname, n, ks, vs, ends)
    local kidx, vidx = key.index(opname), key.index(opname)
    local kprim, vprim = kidx.prim, vidx.prim
    local pair_slot = {}
    local oks, counts, m = {}, {}, 0
    for i = 1, n do
        local k, v = ks[i], vs[i]
        local sk, sv = kprim[k], vprim[v]
        if sk == nil then
            sk = pair_member(kidx, k, "key")
        end
        if sv == nil then
            sv = pair_member(vidx, v, "value")
        end
        local slots = pair_slot[sk]
        if slots == nil then
            slots = {}
            pair_slot[sk] = slots
        end
        local j = slots[sv]
        if j == nil then
            m = m + 1
            slots[sv] = m
            oks[m] = { kidx.keys[sk], vidx.keys[sv] }
            counts[m] = 1
        else
            counts[j] = counts[j] + 1
        end
    end
    return m, oks, counts, { m }
end

-- Raises the error for a bad sort key sk: nil, NaN, neither a number nor a
-- string, or not of type `want` (the first sort key's type).
local function bad_sort_key(opname, sk, want)
    local t = type(sk)
    if sk == nil then
        error(opname .. ": function returned nil (sort keys are numbers or strings)", 0)
    elseif t == "number" and sk ~= sk then
        error(opname .. ": function returned NaN (sort keys are numbers or strings)", 0)
    elseif t ~= "number" and t ~= "string" then
        error(opname .. ": function returned a " .. t
            .. " (sort keys are numbers or strings)", 0)
    end
    error(opname .. ": sort keys must be all numbers or all strings (got "
        .. want .. " and " .. t .. ")", 0)
end

-- Runs this short are insertion-sorted before merging.
local RUN = 32

-- Stable bottom-up merge sort of the indices 1..n by sks[i]: insertion sort
-- of short runs, then merges that take from the right run only when its
-- key is strictly before the left one's. Returns the sorted index array.
local function sort_indices(sks, n, ascending)
    local src, dst = {}, {}
    for i = 1, n do
        src[i] = i
    end
    for lo = 1, n, RUN do
        local hi = min(lo + RUN - 1, n)
        for i = lo + 1, hi do
            local x = src[i]
            local kx = sks[x]
            local j = i - 1
            while j >= lo do
                local ky = sks[src[j]]
                if ascending then
                    if kx >= ky then break end
                elseif kx <= ky then
                    break
                end
                src[j + 1] = src[j]
                j = j - 1
            end
            src[j + 1] = x
        end
    end
    local width = RUN
    while width < n do
        for lo = 1, n, 2 * width do
            local mid, hi = min(lo + width - 1, n), min(lo + 2 * width - 1, n)
            local a, b = lo, mid + 1
            for o = lo, hi do
                local take_b
                if a > mid then
                    take_b = true
                elseif b > hi then
                    take_b = false
                elseif ascending then
                    take_b = sks[src[b]] < sks[src[a]]
                else
                    take_b = sks[src[b]] > sks[src[a]]
                end
                if take_b then
                    dst[o] = src[b]
                    b = b + 1
                else
                    dst[o] = src[a]
                    a = a + 1
                end
            end
        end
        src, dst = dst, src
        width = 2 * width
    end
    return src
end

-- Checks the sort keys sks[1..n]: all numbers (no NaN) or all strings.
local function check_sort_keys(opname, sks, n)
    if n == 0 then
        return
    end
    local want = type(sks[1])
    if want ~= "number" and want ~= "string" then
        bad_sort_key(opname, sks[1], want)
    end
    for i = 1, n do
        local sk = sks[i]
        if type(sk) ~= want or sk ~= sk then
            bad_sort_key(opname, sk, want)
        end
    end
end

local function check_ascending(opname, ascending)
    if ascending == nil then
        return true
    end
    if type(ascending) ~= "boolean" then
        error(opname .. ": ascending must be a boolean (got "
            .. tostring(ascending) .. ")", 0)
    end
    return ascending
end

--- The records sorted by f(x) (numbers or strings), stable, ascending unless
--- ascending is false. Returns n, oxs, oends (one partition).
function shuffle.sort_by(opname, n, xs, ends, f, ascending)
    ascending = check_ascending(opname, ascending)
    local sks = {}
    for i = 1, n do
        sks[i] = f(xs[i])
    end
    check_sort_keys(opname, sks, n)
    local order = sort_indices(sks, n, ascending)
    local oxs = {}
    for i = 1, n do
        oxs[i] = xs[order[i]]
    end
    return n, oxs, { n }
end

--- The pairs sorted by f(k, v), as sort_by. Returns n, oks, ovs, oends.
function shuffle.sort_by_pairs(opname, n, ks, vs, ends, f, ascending)
    ascending = check_ascending(opname, ascending)
    local sks = {}
    for i = 1, n do
        sks[i] = f(ks[i], vs[i])
    end
    check_sort_keys(opname, sks, n)
    local order = sort_indices(sks, n, ascending)
    local oks, ovs = {}, {}
    for i = 1, n do
        local j = order[i]
        oks[i] = ks[j]
        ovs[i] = vs[j]
    end
    return n, oks, ovs, { n }
end

--- New partition ends for n records in num_parts partitions (default: as
--- many as `ends` has), as even as possible, records keeping their order:
--- the first n % num_parts partitions hold one record more.
function shuffle.repartition(n, ends, num_parts)
    if num_parts == nil then
        num_parts = #ends
    end
    num_parts = check_parts("repartition", num_parts)
    local base, extra = (n - n % num_parts) / num_parts, n % num_parts
    local oends, total = {}, 0
    for p = 1, num_parts do
        total = total + base + (p <= extra and 1 or 0)
        oends[p] = total
    end
    return oends
end

return shuffle

--- Windows: window, countByWindow, reduceByWindow, countByValueAndWindow,
--- reduceByKeyAndWindow and groupByKeyAndWindow, added to DStream.
---
--- A window of length L sliding by S over a parent whose batches come P
--- apart (the parent's slide: the batch interval, unless the parent is itself
--- a window) produces a batch at every multiple t of S, covering the
--- parent's batches in (t - L, t]. L and S must be multiples of P; a window
--- at a time before L has elapsed simply holds the batches there are.
---
--- WHERE THE PAST LIVES: when a parent batch enters the window, its partial
--- result - the batch itself for window and groupByKeyAndWindow, the batch
--- reduced by key for reduceByKeyAndWindow, its count for countByWindow,
--- its counts by value for countByValueAndWindow, the batch reduced for
--- reduceByWindow - is encoded once (core.encode) and kept in a C window
--- buffer (core/src/window.c) until no later window reads it (an
--- incremental window reads it once more, as it leaves). The graph is told that the
--- window reads one slide of its parent's past, not L, so the parent keeps
--- its own batches only a slide or two: a 24-hour window costs the Lua GC
--- nothing but the batches of one slide.
---
--- TWO WAYS TO EVALUATE:
---   whole        decode every held batch of the window, add the entering
---                ones and combine them all (Spark's window then reduce):
---                O(L / P) batches per evaluation.
---   incremental  (an inverse function; countByWindow and
---                countByValueAndWindow use + and -) keep the previous
---                window's result - per key in a keyed store, or one value -
---                reduce the batches entering (from the parent) and leaving
---                (decoded from the buffer) and fold them in with f and out
---                with invF, as Spark's ReducedWindowedDStream does:
---                O(S / P) batches per evaluation, plus one pass over the
---                window's keys to emit them. Like Spark, a key whose values
---                have all left stays, with invF's result (a count of 0),
---                unless filterF drops it.
--- When S > L, the batches leaving are the whole previous window (Spark
--- would also subtract batches that never entered).
---
--- RUNNING VALUES OFF THE LUA HEAP: the running value of each key of an
--- incremental keyed window lives in a keyed store (dstream.store, in C):
--- numbers unboxed, other values in codec form, so f and invF get a copy
--- and an emitted value is a copy too. With a Lua f and invF each key of
--- the reduced batches leaving is looked up, taken out with invF and set;
--- each key entering is looked up and added with f. The store keeps each
--- live key's Lua key by slot, so emitting reads one value per key from C
--- and makes no string.
---
--- COMMIT: an evaluation that raises leaves the window as it was, and the
--- next evaluation takes in the same batches again (the parent remembers one
--- slide more than the window reads, so the batches of one failed
--- evaluation are still there at the next). The buffer takes the entering
--- batches only once every user function has returned; the running values
--- change in place, journaled, and the next evaluation begins by undoing
--- the changes of one that raised (nothing catches the error, so its
--- traceback stays the user function's). Keys filterF drops are removed
--- only after the buffer took the entering batches.
--- Only a buffer that runs out of memory half way through its pushes marks
--- the window failed: every later evaluation raises that error.
---
--- BUILT-IN REDUCERS IN C: reduceByKeyAndWindow with dstream.sum (and
--- dstream.subtract, or dstream.count for both) and countByValueAndWindow
--- fold each record of a batch entering into the same store by one FFI call
--- (ds_state_fold_num/_bytes: find, add, store); each record of a batch
--- leaving is folded out the same way with -v - a key that filterF has
--- dropped is not there, and is not brought back, as Spark does not.
--- reduceByKeyAndWindow with dstream.sum, min or max and no inverse folds
--- every batch of the window into a store made for the evaluation. Values
--- must be numbers (checked as each batch enters; anything else raises,
--- naming the key); any other function - a Lua closure, or a built-in with
--- an inverse that is not its own - is called from Lua as above.
--- countByWindow and reduceByWindow keep one value, so they keep it in Lua.
--- Sums are added in another order than the Lua path adds them: the same
--- for integers, possibly not to the last bit for fractions.
local core = require "dstream.core"
local keystore = require "dstream.store"
local DStream = require "dstream.stream"
local planner = require "dstream.planner"
local RDD = require "dstream.rdd"
local shuffle = require "dstream.shuffle"
local key = require "dstream.key"
local util = require "dstream.util"

local encode, decode = core.encode, core.decode
local encode_value, decode_value = core.encode_value, core.decode_value
local reduce_by_key = shuffle.reduce_by_key
local type, error, select = type, error, select
local sformat = string.format
local show_ms, show_key = util.show_ms, key.show

local window = {}

local EMPTY = {}

local FOLD_OPS = keystore.FOLD
-- The running values of a keyed incremental window: changes journaled, keys
-- kept by slot to emit them.
local RUNNING = {journal = true, keys = true}

local function add(a, b) return a + b end
local function sub(a, b) return a - b end
local function nonzero(_, v) return v ~= 0 end

-- Build time: arguments and durations --------------------------------------

-- Window length and slide in ms (slide defaulting to the batch interval);
-- raises at `level`, naming the stream, unless both are multiples of the
-- batch interval and of the stream's slide.
local function durations(self, op, len, slide, level)
    local ctx = self.ctx
    local len_ms = util.duration_ms(op .. ": window length", len, level + 1)
    local slide_ms = ctx.batch_ms
    if slide ~= nil then slide_ms = util.duration_ms(op .. ": slide", slide, level + 1) end
    local unit
    if len_ms % ctx.batch_ms ~= 0 or slide_ms % ctx.batch_ms ~= 0 then
        unit = "the batch interval " .. show_ms(ctx.batch_ms)
    elseif len_ms % self.slide_ms ~= 0 or slide_ms % self.slide_ms ~= 0 then
        unit = sformat("that stream's slide %s", show_ms(self.slide_ms))
    end
    if unit then
        error(sformat("%s: the window %s and slide %s of %s (%s) must be multiples of %s", op,
            show_ms(len_ms), show_ms(slide_ms), self:label(), tostring(self), unit), level + 1)
    end
    return len_ms, slide_ms
end

local function require_pairs(self, op, level)
    if self.pairs == false then
        error(sformat("%s: %s is not a pair stream (make pairs with mapToPair)", op, tostring(self)), level + 1)
    end
end

local function check_optional_function(op, i, name, f, level)
    if f ~= nil then util.check_function(op, i, name, f, level + 1) end
end

-- The arguments after f of reduceByWindow / reduceByKeyAndWindow: either
-- (len, slide) or (invF, len, slide, filterF), invF nil for none.
local function inverse_args(op, ...)
    local second = select(1, ...)
    if type(second) == "number" then return nil, second, select(2, ...), nil end
    if second ~= nil and not util.callable(second) then
        error(sformat("%s: argument #2 (invF) must be a function (or the window length in seconds), got %s",
            op, type(second)), 3)
    end
    return second, select(2, ...)
end

-- The fields of a windowed stream; `w` describes its evaluation.
local function node(self, op, pairs_, len_ms, slide_ms, w)
    w.op, w.len_ms, w.slide_ms, w.step_ms = op, len_ms, slide_ms, self.slide_ms
    local buf, err = core.window_new(self.slide_ms, len_ms)
    if buf == nil then
        util.raise_at_user(sformat("%s: cannot make the window buffer (window %s, step %s): %s", op,
            util.show_ms(len_ms), util.show_ms(self.slide_ms), err))
    end
    w.buf = buf
    local how = ""
    if w.cop then how = sformat("; %s in C", w.builtin) end
    return {kind = op, desc = sformat("%s(%s, %s%s)", op, show_ms(len_ms), show_ms(slide_ms), how),
        parents = {self}, pairs = pairs_, slide_ms = slide_ms,
        -- The graph hears "reads one slide of the parent's past" (the rest
        -- of the window is in the buffer), or the window when it is shorter:
        -- the graph computes the parent's batches the window reads, no
        -- others. s.window_ms is set to L after.
        window_ms = math.min(slide_ms, len_ms),
        _win = w, _compute = window.compute, _ckpt_save = window.ckpt_save, _ckpt_restore = window.ckpt_restore}
end

local function with_length(s)
    s.window_ms = s._win.len_ms
    return s
end

-- Partial results: what one parent batch leaves in the window --------------

local function needs_pairs(w, r)
    if not r.pairs then
        error(sformat("%s needs a pair stream, but its input holds single values", w.op), 0)
    end
end

local function records(_, r)
    return r.n, r.a, r.b
end

local function pair_records(w, r)
    needs_pairs(w, r)
    return r.n, r.a, r.b
end

-- A built-in reducer's values must be numbers.
local function not_number(w, got)
    error(sformat("%s: dstream.%s needs numbers, got %s", w.op, w.builtin, got), 0)
end

local function reduced_by_key(w, r)
    needs_pairs(w, r)
    if w.builtin then
        local ks, vs = r.a, r.b
        for i = 1, r.n do
            local v = vs[i]
            if type(v) ~= "number" then
                not_number(w, sformat("a %s value for key %s", type(v), show_key(ks[i])))
            end
        end
    end
    local m, ks, vs = reduce_by_key(w.op, r.n, r.a, r.b, r.ends, w.f)
    return m, ks, vs
end

local function counted_by_value(w, r)
    -- flatMap(dstream.words) right before counted its words in C (planner.counts_words).
    if w.source and planner.counts_words(w.source) then return r.n, r.a, r.b end
    if r.pairs then
        local m, ks, vs = shuffle.count_by_value_pairs(w.op, r.n, r.a, r.b, r.ends)
        return m, ks, vs
    end
    local m, ks, vs = shuffle.count_by_value(w.op, r.n, r.a, r.ends)
    return m, ks, vs
end

local function reduced(w, r)
    if r.n == 0 then return 0, EMPTY end
    if w.builtin then
        if r.pairs then not_number(w, "a pair stream") end
        local a = r.a
        for i = 1, r.n do
            if type(a[i]) ~= "number" then not_number(w, sformat("a %s record", type(a[i]))) end
        end
    end
    return 1, {r:reduce(w.f)}
end

local function counted(_, r)
    if r.n == 0 then return 0, EMPTY end
    return 1, {r.n}
end

-- Batches in and out of the buffer -------------------------------------------

-- The batch at tb as a part {n =, a =, b =, bytes =} (from its parent RDD).
local function entering_part(w, parent, tb)
    local r = parent:_rdd(tb)
    if r == nil and w.restored then r = w.restored[tb] end
    local n, a, b = 0, EMPTY, nil
    if r ~= nil then n, a, b = w.partial(w, r) end
    local bytes = ""
    if n > 0 then
        local err
        bytes, err = encode(a, n, b)
        if bytes == nil then
            error(sformat("%s: the batch at %d ms cannot be kept in the window: %s "
                .. "(windows keep strings, numbers, booleans and tables of those)", w.op, tb, err), 0)
        end
    end
    return {n = n, a = a, b = b, bytes = bytes}
end

-- The held batch at tb as a part, or nil when the buffer has none there.
local function held_part(w, tb)
    local bytes = w.buf:get(tb)
    if bytes == nil then return nil end
    if bytes == "" then return {n = 0, a = EMPTY} end
    local a, n, b = decode(bytes)
    if a == nil then error(sformat("%s: window buffer at %d ms: %s", w.op, tb, n), 0) end
    return {n = n, a = a, b = b or nil}
end

-- The held parts of the times in (from, to], oldest first.
local function held_parts(w, from, to)
    local parts = {}
    for tb = from + w.step_ms, to, w.step_ms do
        local p = held_part(w, tb)
        if p ~= nil then parts[#parts + 1] = p end
    end
    return parts
end

-- Parts appended into one n, a, b, ends (one partition per part); pairs
-- when pairs_ is true or a part holds pairs.
local function concat(parts, pairs_)
    local n, a, b, ends = 0, {}, nil, {}
    for i = 1, #parts do
        if parts[i].b ~= nil then pairs_ = true end
    end
    if pairs_ then b = {} end
    for i = 1, #parts do
        local p = parts[i]
        local pa, pb = p.a, p.b
        if p.n > 0 and pb == nil and b ~= nil then
            error("a window cannot mix batches of pairs and batches of single values", 0)
        end
        for j = 1, p.n do a[n + j] = pa[j] end
        if pb ~= nil then
            for j = 1, p.n do b[n + j] = pb[j] end
        end
        n = n + p.n
        ends[#ends + 1] = n
    end
    if #ends == 0 then ends[1] = 0 end
    return n, a, b, ends
end

-- Push the entering parts; a failure here leaves the window incomplete, so
-- it marks the window failed.
local function push_all(w, t, enter, first)
    local buf = w.buf
    for i = 1, #enter do
        local ok, err = buf:push(first + (i - 1) * w.step_ms, enter[i].bytes)
        if not ok then
            w.failed = sformat("%s: the window buffer failed at batch time %d ms (%s); its contents are "
                .. "incomplete, so the window stops here", w.op, t, err)
            error(w.failed, 0)
        end
    end
end

-- Evaluation ------------------------------------------------------------------

local function returned_nil(op, what, k)
    error(sformat("%s: %s returned nil for key %s", op, what, show_key(k)), 0)
end

-- Left fold of a[1..n] with f; nil when n == 0.
local function fold(op, f, what, n, a)
    local acc = a[1]
    for i = 2, n do
        acc = f(acc, a[i])
        if acc == nil then error(sformat("%s: %s returned nil", op, what), 0) end
    end
    return acc
end

-- The parts of one side reduced by key: a single part already has one
-- record per key; several are reduced with f, oldest first.
local function reduce_parts(w, parts)
    if #parts == 1 then return parts[1].n, parts[1].a, parts[1].b end
    local n, a, b, ends = concat(parts, true)
    if n == 0 then return 0, EMPTY, EMPTY end
    local m, ks, vs = reduce_by_key(w.op, n, a, b, ends, w.f)
    return m, ks, vs
end

-- Incremental, one value for the whole window.
local function eval_scalar(w, t, leaving, enter, first)
    local op, f = w.op, w.f
    local v = w.value
    local n, a = concat(leaving, false)
    if n > 0 and v ~= nil then
        v = w.invF(v, fold(op, f, "the function", n, a))
        if v == nil then error(op .. ": the inverse function returned nil", 0) end
    end
    n, a = concat(enter, false)
    if n > 0 then
        local new = fold(op, f, "the function", n, a)
        if v == nil then
            v = new
        else
            v = f(v, new)
            if v == nil then error(op .. ": the function returned nil", 0) end
        end
    end
    push_all(w, t, enter, first)
    w.value = v
    if v == nil then return 0, {}, nil, {0} end
    return 1, {v}, nil, {1}
end

-- Whole: every batch of the window combined by w.finish. The buffer then
-- drops what the next window, at t + S, does not read: with S >= L it holds
-- nothing between evaluations.
local function eval_whole(w, t, from, enter, first)
    local parts = held_parts(w, t - w.len_ms, from)
    for i = 1, #enter do parts[#parts + 1] = enter[i] end
    local m, a, b, ends = w.finish(w, concat(parts, w.pairs))
    push_all(w, t, enter, first)
    w.buf:evict(t + w.slide_ms)
    return m, a, b, ends
end

-- Incremental, per key: running values in a keyed store ---------------------

-- Each key of ks, vs (one record per key) taken out of its running value
-- with invF; a key not there (dropped by filterF) stays absent.
local function fold_out(w, st, t, m, ks, vs)
    local inv, op = w.invF, w.op
    for i = 1, m do
        local k = ks[i]
        local slot, cur, kind, bytes = st:lookup(k)
        if slot >= 0 then
            local v = inv(cur, vs[i])
            if v == nil then returned_nil(op, "the inverse function", k) end
            st:put(k, slot, kind, bytes, v, t, cur)
        end
    end
end

-- Each key of ks, vs (one record per key) added to its running value with
-- f; a key not there starts with its value.
local function fold_in(w, st, t, m, ks, vs)
    local f, op = w.f, w.op
    for i = 1, m do
        local k = ks[i]
        local slot, cur, kind, bytes = st:lookup(k)
        local v = vs[i]
        if slot >= 0 then
            v = f(cur, v)
            if v == nil then returned_nil(op, "the function", k) end
        end
        st:put(k, slot, kind, bytes, v, t, cur)
    end
end

-- Every record of parts folded in (or out: -v, leaving a key that is not
-- there absent) with the built-in reducer w.cop, one FFI call each.
local function fold_parts(w, st, parts, out, t)
    local op = w.cop
    for i = 1, #parts do
        local p = parts[i]
        local ks, vs = p.a, p.b
        if out then
            for j = 1, p.n do st:fold(ks[j], -vs[j], op, true, t) end
        else
            for j = 1, p.n do st:fold(ks[j], vs[j], op, false, t) end
        end
    end
end

-- The store is changed in place, its journal noting each change; an
-- evaluation that raises leaves that journal for the next one's begin() to
-- undo. Keys filterF drops are removed once nothing can fail.
local function eval_keyed(w, t, leaving, enter, first)
    local st = w.store
    st:begin(t)
    if w.cop then
        fold_parts(w, st, leaving, true, t)
        fold_parts(w, st, enter, false, t)
    else
        local mo, oks, ovs = reduce_parts(w, leaving)
        local mn, nks, nvs = reduce_parts(w, enter)
        fold_out(w, st, t, mo, oks, ovs)
        fold_in(w, st, t, mn, nks, nvs)
    end
    local m, ks, vs, drop, nd = st:select(w.filterF)
    push_all(w, t, enter, first)
    for i = 1, nd do st:remove(drop[i]) end
    st:commit()
    return m, ks, vs, {m}
end

-- Whole, per key, in C: every batch of the window folded into a new store.
local function eval_whole_c(w, t, from, enter, first)
    local parts = held_parts(w, t - w.len_ms, from)
    for i = 1, #enter do parts[#parts + 1] = enter[i] end
    local st = keystore.new(w.op, {keys = true})
    fold_parts(w, st, parts, false, t)
    local m, ks, vs = st:select(w.filterF)
    st:free()
    push_all(w, t, enter, first)
    w.buf:evict(t + w.slide_ms)
    return m, ks, vs, {m}
end

--- The RDD of windowed stream s at time t (a multiple of its slide).
function window.compute(s, t)
    local w = s._win
    if w.failed then error(w.failed, 0) end
    local parent, step = s.parents[1], w.step_ms
    local last = w.last
    -- Entering: (from, t], from the parent, which has nothing at or before
    -- t - its remember duration (before the first evaluation, or after
    -- several failed ones: those batches count as empty). Leaving
    -- (incremental): the previous window's batches that are not in this
    -- one, (last - L, min(last, t - L)].
    local from = t - w.len_ms
    if last ~= nil and last > from then from = last end
    if t - parent.remember_ms > from then from = t - parent.remember_ms end
    local enter = {}
    for tb = from + step, t, step do
        enter[#enter + 1] = entering_part(w, parent, tb)
    end
    local m, a, b, ends
    if w.mode == "whole" then
        m, a, b, ends = eval_whole(w, t, from, enter, from + step)
    elseif w.mode == "whole_c" then
        m, a, b, ends = eval_whole_c(w, t, from, enter, from + step)
    else
        local leaving = {}
        if last ~= nil then
            local to = t - w.len_ms
            if last < to then to = last end
            leaving = held_parts(w, last - w.len_ms, to)
        end
        local eval = eval_scalar
        if w.mode == "keyed" then eval = eval_keyed end
        m, a, b, ends = eval(w, t, leaving, enter, from + step)
    end
    w.last = t
    -- The parent batches a checkpoint gave back are in the window now.
    w.restored = nil
    return RDD.new(m, a, b, ends, t, s:_rdd_id(t))
end

-- Checkpoints (dstream.checkpoint) ---------------------------------------------
--
-- A window keeps, between two evaluations: its buffer (the partial results
-- of the batches in it), its running values (a keyed store, or one value),
-- the time of its last evaluation - and the parent batches that came since
-- it, which it takes in at its next one (with a slide longer than the
-- parent's). Those live in the parent's memory of its batches (generated),
-- so they are saved here, as records. A delta holds what came since the
-- previous save: the buffer's batches newer than the last evaluation then
-- (buf:checkpoint; restored, the buffer drops what it had dropped),
-- the running values' changes, the parent batches newer than that save.

-- The parent batches at times in (after, t] that the window has not taken
-- in, with their times, ascending.
local function waiting_batches(w, parent, after, t)
    local times = {}
    local function waiting(tb)
        if tb > after and tb <= t then times[#times + 1] = tb end
    end
    local gen = parent.generated
    local tb = next(gen)
    while tb ~= nil do
        waiting(tb)
        tb = next(gen, tb)
    end
    local restored = w.restored
    if restored then
        tb = next(restored)
        while tb ~= nil do
            if gen[tb] == nil then waiting(tb) end
            tb = next(restored, tb)
        end
    end
    table.sort(times)
    local datas = {}
    for i, at in ipairs(times) do
        local r = gen[at] or restored[at]
        local bytes, err = encode(r.a, r.n, r.pairs and r.b or nil)
        if bytes == nil then
            error(sformat("%s: the parent's batch at %d ms cannot be saved: %s", w.op, at, err), 0)
        end
        datas[i] = bytes
    end
    return times, datas
end

--- The window's part of the checkpoint after batch t (full: all of it).
function window.ckpt_save(s, full, t)
    local w = s._win
    local st = w.store
    -- An evaluation that raised left its changes journaled, for the next
    -- one to undo: undo them now, so that the state saved is the one the
    -- next evaluation starts from.
    if st and st.nj > 0 then st:rollback(t) end
    if w.ckpt_t == nil then
        full = true
        if st then st:track() end
    end
    local lo = w.last or -math.huge
    if not full and w.ckpt_t > lo then lo = w.ckpt_t end
    local times, batches = waiting_batches(w, s.parents[1], lo, t)
    local data = {full = full, last = w.last, failed = w.failed, times = times, batches = batches,
        buf = w.buf:checkpoint((not full and w.ckpt_last) or nil)}
    if w.mode == "scalar" then data.value = {w.value} end
    if st then data.store = st:checkpoint(full, t) end
    w.ckpt_t, w.ckpt_last = t, w.last
    return encode_value(data)
end

--- Restore the window from its strings of a checkpoint chain, oldest first.
function window.ckpt_restore(s, datas)
    local w = s._win
    local decoded, from = {}, nil
    for i, bytes in ipairs(datas) do
        local d, err = decode_value(bytes)
        if d == nil then error(sformat("%s: its window data cannot be read: %s", w.op, tostring(err)), 0) end
        decoded[i] = d
        if d.full then from = i end
    end
    if from == nil then error(w.op .. ": the checkpoint holds changes of the window but no snapshot", 0) end
    local last = decoded[#decoded]
    for i = from, #decoded do
        local d = decoded[i]
        local ok, err = w.buf:restore(d.buf)
        if not ok then error(sformat("%s: its window buffer cannot be restored: %s", w.op, tostring(err)), 0) end
        if d.store then w.store:restore(d.store) end
    end
    if w.store then w.store:track() end
    w.last, w.failed = last.last, last.failed
    if w.mode == "scalar" then w.value = last.value and last.value[1] end
    -- The parent batches still to be taken in: newer than the last evaluation.
    local restored, any = {}, false
    local after = w.last or -math.huge
    for i = from, #decoded do
        local d = decoded[i]
        for j, tb in ipairs(d.times or EMPTY) do
            if tb > after then
                local a, n, b = decode(d.batches[j])
                if a == nil then error(sformat("%s: the parent's batch at %d ms cannot be read: %s", w.op, tb, n), 0) end
                restored[tb] = RDD.new(n, a, b or nil, {n}, tb, s.parents[1]:_rdd_id(tb))
                any = true
            end
        end
    end
    w.restored = any and restored or nil
    w.ckpt_t = nil
end

-- Finishing a whole window --------------------------------------------------

local function finish_records(_, n, a, b, ends)
    return n, a, b, ends
end

local function finish_groups(w, n, a, b, ends)
    if n == 0 then return 0, {}, {}, {0} end
    return shuffle.group_by_key(w.op, n, a, b, ends)
end

local function finish_reduce_by_key(w, n, a, b, ends)
    if n == 0 then return 0, {}, {}, {0} end
    local m, ks, vs = reduce_by_key(w.op, n, a, b, ends, w.f)
    local keep = w.filterF
    if keep == nil then return m, ks, vs, {m} end
    local oks, ovs, j = {}, {}, 0
    for i = 1, m do
        if keep(ks[i], vs[i]) then
            j = j + 1
            oks[j], ovs[j] = ks[i], vs[i]
        end
    end
    return j, oks, ovs, {j}
end

local function finish_reduce(w, n, a)
    if n == 0 then return 0, {}, nil, {0} end
    return 1, {fold(w.op, w.f, "the function", n, a)}, nil, {1}
end

-- The window operations -------------------------------------------------------

--- window(len, slide): every record of the batches in (t - len, t].
function DStream:window(len, slide)
    local len_ms, slide_ms = durations(self, "window", len, slide, 2)
    return with_length(DStream.new(self.ctx, node(self, "window", self.pairs, len_ms, slide_ms,
        {mode = "whole", partial = records, finish = finish_records, pairs = self.pairs})))
end

--- countByWindow(len, slide): one record per window, its number of records.
function DStream:countByWindow(len, slide)
    local len_ms, slide_ms = durations(self, "countByWindow", len, slide, 2)
    return with_length(DStream.new(self.ctx, node(self, "countByWindow", false, len_ms, slide_ms,
        {mode = "scalar", partial = counted, f = add, invF = sub, value = 0})))
end

-- The name of f if it is a built-in reducer ("sum", "min", ...), else nil.
-- dstream.reducers loads after this file (it wraps the methods below).
local function builtin(f)
    return require("dstream.reducers").name_of(f)
end

--- reduceByWindow(f, len, slide) or reduceByWindow(f, invF, len, slide):
--- one record per window holding records, all of them reduced with f.
function DStream:reduceByWindow(f, ...)
    util.check_function("reduceByWindow", 1, "f", f, 2)
    local inv, len, slide = inverse_args("reduceByWindow", ...)
    local len_ms, slide_ms = durations(self, "reduceByWindow", len, slide, 2)
    local w = {f = f, invF = inv, partial = reduced, builtin = builtin(f)}
    if inv then w.mode = "scalar" else w.mode, w.finish, w.pairs = "whole", finish_reduce, false end
    return with_length(DStream.new(self.ctx, node(self, "reduceByWindow", false, len_ms, slide_ms, w)))
end

--- countByValueAndWindow(len, slide): pairs (record, count in the window);
--- a record whose count falls to 0 is dropped.
function DStream:countByValueAndWindow(len, slide)
    local len_ms, slide_ms = durations(self, "countByValueAndWindow", len, slide, 2)
    local s = with_length(DStream.new(self.ctx, node(self, "countByValueAndWindow", true, len_ms, slide_ms,
        {mode = "keyed", partial = counted_by_value, f = add, invF = sub, filterF = nonzero,
            builtin = "count", cop = FOLD_OPS.sum, source = self})))
    s._win.store = keystore.new("countByValueAndWindow", RUNNING)
    return s
end

--- reduceByKeyAndWindow(f, len, slide) or
--- reduceByKeyAndWindow(f, invF, len, slide, filterF): per key, its values
--- in the window reduced with f; with invF incrementally, keeping a key
--- only while filterF(k, v) (if given) returns true.
function DStream:reduceByKeyAndWindow(f, ...)
    local op = "reduceByKeyAndWindow"
    util.check_function(op, 1, "f", f, 2)
    require_pairs(self, op, 2)
    local inv, len, slide, keep = inverse_args(op, ...)
    local len_ms, slide_ms = durations(self, op, len, slide, 2)
    check_optional_function(op, 5, "filterF", keep, 2)
    local name = builtin(f)
    local w = {f = f, invF = inv, filterF = keep, partial = reduced_by_key, builtin = name}
    if inv then
        w.mode = "keyed"
        if name == "sum" and builtin(inv) == "subtract" then w.cop = FOLD_OPS.sum end
    elseif FOLD_OPS[name] then
        w.mode, w.cop = "whole_c", FOLD_OPS[name]
    else
        w.mode, w.finish, w.pairs = "whole", finish_reduce_by_key, true
    end
    local s = with_length(DStream.new(self.ctx, node(self, op, true, len_ms, slide_ms, w)))
    if w.mode == "keyed" then w.store = keystore.new(op, RUNNING) end
    return s
end

--- groupByKeyAndWindow(len, slide): per key, the array of its values in the
--- window, oldest batch first, arrival order within a batch.
function DStream:groupByKeyAndWindow(len, slide)
    require_pairs(self, "groupByKeyAndWindow", 2)
    local len_ms, slide_ms = durations(self, "groupByKeyAndWindow", len, slide, 2)
    return with_length(DStream.new(self.ctx, node(self, "groupByKeyAndWindow", true, len_ms, slide_ms,
        {mode = "whole", partial = pair_records, finish = finish_groups, pairs = true})))
end

--- Bytes and batches the window buffer of windowed stream s holds (for
--- benchmarks and the status page).
function window.memory(s)
    local w = s._win
    return w.buf:bytes(), w.buf:count()
end

--- Bytes of the C store holding the running values of windowed stream s
--- (per key, with an inverse function), or nil when it keeps none.
function window.state_memory(s)
    local st = s._win.store
    if st == nil then return nil end
    return st:memory()
end

return window

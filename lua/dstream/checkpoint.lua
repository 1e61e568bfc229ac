--- Checkpoints of a context and recovery from them (getOrCreate).
---
--- WHAT IS WRITTEN: after every batch that completed, one file in the
--- checkpoint directory (core/src/checkpoint.c writes it atomically, CRC per
--- frame): a section "meta" (the batch time), "graph" (the shape: per stream
--- its operator, name, parents, window and slide; in full checkpoints), and
--- per stream that keeps something between batches a section "s<id>" its
--- _ckpt_save made (keyed state, window contents, the parent batches a
--- window has not taken in yet), per input with a position a section "p<id>"
--- (files seen, the last WAL block taken). Before a batch's nodes run, the
--- inputs that can say what the batch took (_ckpt_input: file names, a WAL
--- range) have it written to a "pending" file, so that recovery re-runs
--- exactly that batch.
---
--- FULL OR DELTA: a stream's section in a delta holds what changed since the
--- previous checkpoint (keys set and removed, window batches in), so a
--- checkpoint costs what the batch changed. A full one is written first, and
--- whenever the deltas since the last full one add up to more bytes than it:
--- recovery then reads at most about twice the state, and the writes stay
--- within twice what the changes cost.
---
--- A FAILED BATCH (a user function raised) writes no checkpoint: its pending
--- file stays, so a process that ends on that error (awaitTermination raises
--- it) re-runs the batch on recovery, with the script's fixed closures. When
--- later batches run (advance() carries on after a failure), the next
--- checkpoint covers the failed batch's effects as the running process has
--- them.
---
--- THE PROTOCOL (a stream implements what applies to it):
---   s:_ckpt_save(full, t) -> string|nil        after batch t; full: everything
---   s:_ckpt_restore(datas)                     its strings of the chain, oldest first
---   s:_ckpt_input(t) -> string|nil             (inputs) what batch t took
---   s:_ckpt_replay(t, data) -> RDD             (inputs) take exactly that again
---   s:_ckpt_position() -> string|nil           (inputs) the source's position
---   s:_ckpt_resume(data)                       (inputs) restore it before start
local core = require "dstream.core"
local util = require "dstream.util"

local checkpoint = {}

local sformat = string.format
local encode_value, decode_value = core.encode_value, core.decode_value

local Ckpt = {}
Ckpt.__index = Ckpt

-- The graph's shape --------------------------------------------------------

-- Per stream: what makes its shape (never a closure).
local function shape(ctx)
    local streams = {}
    for i, s in ipairs(ctx.streams) do
        local parents = {}
        for j, p in ipairs(s.parents) do parents[j] = p.id end
        streams[i] = {id = s.id, kind = s.kind, desc = s.desc or s.kind, name = s._name, parents = parents,
            slide = s.slide_ms, window = s.window_ms or 0}
    end
    return {batch = ctx.batch_ms, streams = streams}
end

local function label(x)
    if x.name then return sformat("%q (%s)", x.name, x.kind) end
    return sformat("%s#%d", x.kind, x.id)
end

local function timing(x)
    if x.window > 0 and x.desc ~= x.kind then return x.desc end
    return sformat("slide %s", util.show_ms(x.slide))
end

-- The longest common subsequence of a and b by kind: pairs (i, j), in order.
local function align(a, b)
    local n, m = #a, #b
    local L = {}
    for i = 0, n do
        L[i] = {}
        for j = 0, m do L[i][j] = 0 end
    end
    for i = n - 1, 0, -1 do
        for j = m - 1, 0, -1 do
            if a[i + 1].kind == b[j + 1].kind then
                L[i][j] = L[i + 1][j + 1] + 1
            else
                L[i][j] = math.max(L[i + 1][j], L[i][j + 1])
            end
        end
    end
    local pairs_, i, j = {}, 0, 0
    while i < n and j < m do
        if a[i + 1].kind == b[j + 1].kind then
            pairs_[#pairs_ + 1] = {i + 1, j + 1}
            i, j = i + 1, j + 1
        elseif L[i + 1][j] >= L[i][j + 1] then
            i = i + 1
        else
            j = j + 1
        end
    end
    return pairs_
end

-- Give every stream of g a signature: a number equal for two streams (of
-- either graph) exactly when their operators, names, windows and whole
-- lineages are the same. `intern` is shared by both graphs.
local function signatures(g, intern)
    local sig, inputs = {}, 0
    for _, x in ipairs(g.streams) do
        local parts = {x.desc, x.name or "", x.slide, x.window}
        for k, p in ipairs(x.parents) do parts[4 + k] = sig[p] end
        if #x.parents == 0 then -- inputs are told apart by their order
            inputs = inputs + 1
            parts[5] = "input " .. inputs
        end
        local text = table.concat(parts, "\0")
        local n = intern[text]
        if n == nil then
            intern.n = intern.n + 1
            n = intern.n
            intern[text] = n
        end
        sig[x.id] = n
    end
    return sig
end

--- Match the saved shape `old` with `new` (both from shape()): returns a map
--- old id -> new id when they are the same shape, else nil and the lines
--- naming each stream that differs and how. Named streams are found by
--- name; the others by their lineage (in creation order among equals); the
--- rest are aligned in creation order by operator, to say which changed
--- operator and which were added or removed.
function checkpoint.match(old, new)
    local lines = {}
    if old.batch ~= new.batch then
        lines[#lines + 1] = sformat("the batch interval: was %s, now %s", util.show_ms(old.batch),
            util.show_ms(new.batch))
    end
    local intern = {n = 0}
    local old_sig, new_sig = signatures(old, intern), signatures(new, intern)
    local map, taken = {}, {}
    local pairs_ = {}
    local function pair(x, y)
        map[x.id], taken[y.id] = y.id, true
        pairs_[#pairs_ + 1] = {x, y}
    end
    -- Named streams by name.
    local new_by_name = {}
    for _, y in ipairs(new.streams) do
        if y.name then new_by_name[y.name] = y end
    end
    for _, x in ipairs(old.streams) do
        local y = x.name and new_by_name[x.name]
        if y then pair(x, y) end
    end
    -- The others by lineage, the first of equals with the first.
    local by_sig = {}
    for _, x in ipairs(old.streams) do
        if map[x.id] == nil then
            local list = by_sig[old_sig[x.id]]
            if list == nil then
                list = {next = 1}
                by_sig[old_sig[x.id]] = list
            end
            list[#list + 1] = x
        end
    end
    for _, y in ipairs(new.streams) do
        local list = not taken[y.id] and by_sig[new_sig[y.id]]
        if list and list[list.next] then
            pair(list[list.next], y)
            list.next = list.next + 1
        end
    end
    -- What is left differs: aligned in creation order by operator.
    local old_rest, new_rest = {}, {}
    for _, x in ipairs(old.streams) do
        if map[x.id] == nil then old_rest[#old_rest + 1] = x end
    end
    for _, y in ipairs(new.streams) do
        if not taken[y.id] then new_rest[#new_rest + 1] = y end
    end
    local aligned = align(old_rest, new_rest)
    -- Between two aligned pairs, streams left on both sides pair up as a
    -- different operator; the rest were added or removed.
    local changed, added, removed = {}, {}, {}
    local pi, pj = 0, 0
    local function gap(i_to, j_to)
        local k = 0
        while pi + k + 1 < i_to and pj + k + 1 < j_to do
            k = k + 1
            changed[#changed + 1] = {old_rest[pi + k], new_rest[pj + k]}
        end
        for i = pi + k + 1, i_to - 1 do removed[#removed + 1] = old_rest[i] end
        for j = pj + k + 1, j_to - 1 do added[#added + 1] = new_rest[j] end
    end
    for _, ij in ipairs(aligned) do
        gap(ij[1], ij[2])
        pair(old_rest[ij[1]], new_rest[ij[2]])
        pi, pj = ij[1], ij[2]
    end
    gap(#old_rest + 1, #new_rest + 1)
    -- A stream whose parent changed operator still has that parent.
    local corr = {}
    for _, xy in ipairs(changed) do corr[xy[1].id] = xy[2].id end
    for _, xy in ipairs(changed) do
        lines[#lines + 1] = sformat("%s: a different operator: was %s, now %s", label(xy[1]), xy[1].desc,
            xy[2].desc)
    end
    for _, x in ipairs(removed) do
        lines[#lines + 1] = sformat("%s: removed (it was %s)", label(x), x.desc)
    end
    for _, y in ipairs(added) do
        lines[#lines + 1] = sformat("%s: added (%s)", label(y), y.desc)
    end
    table.sort(pairs_, function(a, b) return a[2].id < b[2].id end)
    local function names(ps, streams)
        local out = {}
        for k, id in ipairs(ps) do out[k] = label(streams[id + 1]) end
        return table.concat(out, ", ")
    end
    for _, xy in ipairs(pairs_) do
        local x, y = xy[1], xy[2]
        if x.kind ~= y.kind then
            lines[#lines + 1] = sformat("%s: a different operator: was %s, now %s", label(y), x.desc, y.desc)
        elseif x.desc ~= y.desc and (x.window ~= y.window or x.slide ~= y.slide) then
            lines[#lines + 1] = sformat("%s: a different window or slide: was %s, now %s", label(y),
                timing(x), timing(y))
        elseif x.desc ~= y.desc or x.window ~= y.window then
            lines[#lines + 1] = sformat("%s: different arguments: was %s, now %s", label(y), x.desc, y.desc)
        else
            -- (A slide that differs alone comes from a parent, which says so.)
            local same = #x.parents == #y.parents
            for k = 1, #x.parents do
                local p, q = x.parents[k], y.parents[k]
                if q == nil or (old_sig[p] ~= new_sig[q] and (map[p] or corr[p]) ~= q) then same = false end
            end
            if not same then
                lines[#lines + 1] = sformat("%s: different parents: was %s, now %s", label(y),
                    names(x.parents, old.streams), names(y.parents, new.streams))
            end
        end
    end
    if #lines > 0 then return nil, lines end
    return map
end

-- Opening and writing --------------------------------------------------------

-- Report a checkpoint problem the way receivers' errors are: to the
-- listeners' onReceiverError, else stderr.
local function report(ctx, msg, t)
    ctx:_receiver_error("checkpoint", msg, t)
end
checkpoint.report = report

--- Make ctx write checkpoints to its directory through cp (an open
--- core.checkpoint_open handle; opened here when nil). Raises when the
--- directory cannot be opened.
function checkpoint.attach(ctx, cp)
    if ctx._ckpt then return ctx._ckpt end
    if cp == nil then
        if core.checkpoint_open == nil then
            error("checkpoint files are not available in this build of dstream (core.checkpoint_open)", 0)
        end
        local err
        cp, err = core.checkpoint_open(ctx.checkpoint_dir)
        if not cp then error(sformat("the checkpoint directory %s: %s", ctx.checkpoint_dir, err), 0) end
    end
    local ck = setmetatable({ctx = ctx, cp = cp, full_bytes = nil, delta_bytes = 0, force_full = true,
        positions = {}}, Ckpt)
    ctx._ckpt = ck
    return ck
end

--- After batch t's inputs took their data: write what each took to the
--- pending file of t (only when one of them says), so that a crash during the
--- batch re-runs exactly it. `took` holds the inputs' _ckpt_input strings by
--- section name.
function Ckpt:pending(t, took)
    local sections = {}
    local name, data = next(took)
    while name ~= nil do
        sections[#sections + 1] = {name, data}
        name, data = next(took, name)
    end
    if #sections == 0 then return end
    table.sort(sections, function(a, b) return a[1] < b[1] end)
    local ok, err = self.cp:write("pending", t, sections)
    if not ok then
        report(self.ctx, sformat("the inputs of batch %d ms could not be recorded (%s): a crash before it "
            .. "completes would not re-run it", t, err), t)
    end
end

-- Every stream's section for the checkpoint of batch t; raises naming the
-- stream whose state could not be saved. An input's position goes into a
-- delta only when it differs from the one last written (`written`, by id;
-- the positions of this one are put in `now`): recovery takes the newest in
-- the chain.
local function sections_of(ctx, full, t, graph_bytes, written, now)
    local sections = {{"meta", encode_value({time = t, batch = ctx.batch_ms, full = full})}}
    if full then sections[2] = {"graph", graph_bytes} end
    for _, s in ipairs(ctx.streams) do
        if s._ckpt_save then
            local ok, data = pcall(s._ckpt_save, s, full, t)
            if not ok then
                error(sformat("%s (%s): its state could not be saved: %s", s:label(), s.kind, tostring(data)), 0)
            end
            if data ~= nil then sections[#sections + 1] = {"s" .. s.id, data} end
        end
        if s.input and s._ckpt_position then
            local ok, data = pcall(s._ckpt_position, s)
            if not ok then
                error(sformat("%s: its position could not be saved: %s", s:label(), tostring(data)), 0)
            end
            if data ~= nil then
                now[s.id] = data
                if full or written[s.id] ~= data then sections[#sections + 1] = {"p" .. s.id, data} end
            end
        end
    end
    return sections
end

--- Write the checkpoint of completed batch t (full when `full` or when the
--- policy says so), then let the WAL drop what it covers. A failure is
--- reported (the pipeline carries on) and makes the next one full.
function Ckpt:completed(t, full)
    local ctx = self.ctx
    if not full then
        full = self.force_full or (self.full_bytes ~= nil and self.delta_bytes > self.full_bytes)
    end
    if full and not self.graph_bytes then self.graph_bytes = encode_value(shape(ctx)) end
    local now = {}
    local ok, sections = pcall(sections_of, ctx, full, t, self.graph_bytes, self.positions, now)
    local n, err
    if ok then
        n, err = self.cp:write(full and "full" or "delta", t, sections)
    else
        err = sections
    end
    if not n then
        self.force_full = true
        report(ctx, sformat("the checkpoint of batch %d ms could not be written: %s (the next one will be "
            .. "a full one)", t, tostring(err)), t)
        return nil, err
    end
    self.positions = now
    if full then
        self.full_bytes, self.delta_bytes, self.force_full = n, 0, false
    else
        self.delta_bytes = self.delta_bytes + n
    end
    self.last_time = t
    local mark = self.wal_marks and self.wal_marks[t]
    if mark and ctx.wal then
        -- The log keeps what this checkpoint covers until the next one is
        -- written: if this one is found damaged, recovery falls back to the
        -- one before and re-runs batch t from its pending file (kept one step
        -- longer for that) - and from these blocks.
        local prev = self.wal_prev
        self.wal_prev = mark
        if prev then ctx.wal:release(prev) end
        local marks, kept = self.wal_marks, {}
        local tm, seq = next(marks)
        while tm ~= nil do
            if tm > t then kept[tm] = seq end
            tm, seq = next(marks, tm)
        end
        self.wal_marks = kept
    end
    return n
end

--- Note the WAL's last sequence number once batch t's inputs took their
--- data: every block up to it is covered once t's checkpoint is written.
function Ckpt:wal_mark(t, seq)
    self.wal_marks = self.wal_marks or {}
    self.wal_marks[t] = seq
end

--- Stop writing; closes the directory's handle.
function Ckpt:close()
    if self.cp then self.cp:close() end
    self.cp = nil
end

-- Recovery -----------------------------------------------------------------------

local function section_map(list)
    local m = {}
    for _, sec in ipairs(list or {}) do m[sec.name or sec[1]] = sec.data or sec[2] end
    return m
end

--- Restore ctx (a new context whose graph createFn built) from `loaded`, what
--- cp:load() returned: compare the shapes (raises naming the streams that
--- differ), restore every stream, set the recovered batch time and the
--- pending batches start() re-runs. `dir` names the directory in errors.
function checkpoint.restore(ctx, loaded, dir)
    local chain = loaded.chain
    local files = {}
    for i, c in ipairs(chain) do files[i] = section_map(c.sections) end
    local graph_bytes = files[1] and files[1].graph
    if graph_bytes == nil then
        error(sformat("getOrCreate: the checkpoint of batch %d ms in %s has no graph section", loaded.time, dir), 0)
    end
    local old = decode_value(graph_bytes)
    if old == nil then error(sformat("getOrCreate: the graph section in %s cannot be read", dir), 0) end
    local new = shape(ctx)
    local map, lines = checkpoint.match(old, new)
    if not map then
        error(sformat("getOrCreate: the graph createFn built differs from the one checkpointed in %s "
            .. "(batch time %d ms), so its state cannot be restored:\n  %s\n(build the same graph - closures may "
            .. "change - or use another checkpoint directory)", dir, loaded.time, table.concat(lines, "\n  ")), 0)
    end
    local back = {}
    local oid, nid = next(map)
    while oid ~= nil do
        back[nid] = oid
        oid, nid = next(map, oid)
    end
    for _, s in ipairs(ctx.streams) do
        local old_id = back[s.id]
        local datas, position = {}, nil
        for _, f in ipairs(files) do
            local d = f["s" .. old_id]
            if d ~= nil then datas[#datas + 1] = d end
            local p = f["p" .. old_id]
            if p ~= nil then position = p end
        end
        if #datas > 0 then
            if not s._ckpt_restore then
                error(sformat("getOrCreate: %s (%s) has state in the checkpoint in %s but cannot restore it",
                    s:label(), s.kind, dir), 0)
            end
            local ok, err = pcall(s._ckpt_restore, s, datas, loaded.time)
            if not ok then
                error(sformat("getOrCreate: %s (%s): its state in the checkpoint in %s (batch time %d ms) "
                    .. "cannot be restored: %s", s:label(), s.kind, dir, loaded.time, tostring(err)), 0)
            end
        end
        if position ~= nil and s._ckpt_resume then
            local ok, err = pcall(s._ckpt_resume, s, position)
            if not ok then
                error(sformat("getOrCreate: %s: its position in the checkpoint in %s cannot be restored: %s",
                    s:label(), dir, tostring(err)), 0)
            end
        end
    end
    -- Batches started and not completed, by time: the input sections under
    -- the new ids.
    local replay = {}
    for _, p in ipairs(loaded.pending or {}) do
        local secs = section_map(p.sections or p[2])
        local by_id = {}
        local name, data = next(secs)
        while name ~= nil do
            local from_id = tonumber(name:match("^s(%d+)$"))
            local to_id = from_id and map[from_id]
            if to_id then by_id[to_id] = data end
            name, data = next(secs, name)
        end
        replay[p.time or p[1]] = by_id
    end
    ctx._replay = replay
    ctx._recovered = {time = loaded.time, seq = loaded.seq}
end

return checkpoint

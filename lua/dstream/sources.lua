--- Sources: the input streams of a context. Each is a DStream flagged as an
--- input node, with a take(t) that hands the engine the batch at time t, and
--- optionally start / poll / stop / drain_errors for receivers.
---
--- PARTITIONS: as in Spark, each block a receiver cut is one partition of
--- the batch's RDD (what mapPartitions, glom and foreachPartition see): a
--- socket's block per blockInterval, a custom receiver's block per poll
--- (every blockInterval on a system clock, once per batch on a manual one),
--- a file per file read, a queueStream entry per entry.
local core = require "dstream.core"
local util = require "dstream.util"
local RDD = require "dstream.rdd"
local DStream = require "dstream.stream"
local rate = require "dstream.rate"
local format = require "dstream.format"
local planner = require "dstream.planner"

local sources = {}

local sformat = string.format
local tnew = require "table.new"

local function input(ctx, fields)
    fields.flags = core.NODE_INPUT
    fields.parents = {}
    fields.input = true
    fields.site = util.caller_site(2)
    local s = DStream.new(ctx, fields)
    s._compute = function() return nil end
    ctx.inputs[#ctx.inputs + 1] = s
    return s
end

-- queueStream ---------------------------------------------------------------

local function check_entry(e, where)
    if not RDD.is(e) and type(e) ~= "table" then
        error(sformat("queueStream: %s is a %s, not an array of records", where, type(e)), 0)
    end
    return e
end

-- The batch of the entries taken: each array or RDD entry's records copied
-- once into the batch's arrays, each entry a partition (a pair RDD's
-- records become {k, v} values, as collect() gives them). One RDD entry is
-- borrowed, not copied: an RDD's arrays are never written after it is made.
local function queue_batch(entries, t, id)
    local e = entries[1]
    if #entries == 1 and RDD.is(e) and not e.pairs then
        return RDD.new(e.n, e.a, nil, e.ends, t, id)
    end
    local total = 0
    for i = 1, #entries do
        e = entries[i]
        total = total + (RDD.is(e) and e.n or #e)
    end
    local n, a, ends = 0, tnew(total, 0), {}
    for i = 1, #entries do
        e = entries[i]
        if RDD.is(e) then
            local ea, eb, lo = e.a, e.b, 1
            for p = 1, #e.ends do
                local hi = e.ends[p]
                if eb then
                    for j = lo, hi do a[n + j - lo + 1] = format.as_pair(ea[j], eb[j]) end
                else
                    for j = lo, hi do a[n + j - lo + 1] = ea[j] end
                end
                n = n + hi - lo + 1
                ends[#ends + 1] = n
                lo = hi + 1
            end
        else
            local m = #e
            for j = 1, m do a[n + j] = e[j] end
            n = n + m
            ends[#ends + 1] = n
        end
    end
    if #ends == 0 then ends[1] = 0 end
    return RDD.new(n, a, nil, ends, t, id)
end

--- queueStream(queue, oneAtATime = true, default): one queue entry per batch.
function sources.queueStream(ctx, queue, oneAtATime, default)
    util.check_table("queueStream", 1, "queue", queue, 3)
    if oneAtATime == nil then oneAtATime = true end
    if default ~= nil and type(default) ~= "table" then
        error("queueStream: argument #3 (default) must be an array of records", 3)
    end
    return input(ctx, {kind = "queueStream", desc = "queueStream", pairs = false, take = function(s, t)
        local entries = {}
        if #queue > 0 then
            if oneAtATime then
                entries[1] = check_entry(table.remove(queue, 1), "the queue's front entry")
            else
                for i = 1, #queue do entries[i] = check_entry(queue[i], sformat("queue entry %d", i)) end
                for i = #queue, 1, -1 do queue[i] = nil end
            end
        elseif default ~= nil then
            entries[1] = check_entry(default, "the default entry")
        end
        return queue_batch(entries, t, s:_rdd_id(t))
    end})
end

-- Receiver data in the write-ahead log -----------------------------------

--[[ With wal = true (ctx.wal, opened by the checkpointing at D/wal), every
block a receiver accepts - a socket's block per blockInterval, a custom
receiver's block per poll - is appended to the WAL under the stream's id,
and fsynced, before it counts as received. The WAL's seq numbers grow
across all its streams, so the blocks batch t took are the stream's blocks
in (after, upto], after being the last seq the batch before took: that
range (and the number of records, to check a replay) is what the pending
file of batch t records, and a replay reads exactly those blocks back.

Blocks are logged under a stream number: the stream's id when the WAL first
saw it, kept in the position and in what a batch took, so a graph rebuilt
with its streams created in another order (recovery matches them by name)
still reads its own blocks.

The position saved with a checkpoint is the last seq taken. At start the
WAL's last seq is noted before the receiver runs: the stream's blocks after
the position (or after what replayed batches took) up to it are the data
that waited when the process died, and go into the first batch. Blocks the
receiver appends after start have higher seqs and come through take(). ]]
local WalInput = {}
WalInput.__index = WalInput

local function wal_input(s, desc)
    return setmetatable({s = s, desc = desc, taken = 0, backlog_end = 0}, WalInput)
end

-- The WAL: the one opened at start, or before it (a replay) the context's.
function WalInput:log() return self.wal or self.s.ctx.wal end

--- The stream number its blocks are logged under.
function WalInput:stream() return self.number or self.s.id end

--- At start, before the receiver appends anything: note where the backlog ends.
function WalInput:open(wal)
    self.wal = wal
    self.backlog_end = wal:last_seq()
end

-- Records of this stream's blocks in (after, upto]; raises naming the batch.
function WalInput:read(t, after, upto)
    local arr, n, ends = self:log():replay(self:stream(), after, upto)
    if not arr then
        error(sformat("%s: batch %d ms: the write-ahead log's blocks after seq %d up to %d could not be "
            .. "read: %s", self.desc, t, after, upto, tostring(n)), 0)
    end
    return arr, n, ends
end

--- Batch t's records: the backlog (first batch after start) then the blocks
--- take_new() takes from the receiver (arr, n, ends and the seq of the
--- last, nil if none). The backlog is read first: if that fails (raises),
--- the receiver keeps its blocks for the next batch.
function WalInput:take(t, take_new)
    local after = self.taken
    local barr, bn, bends
    if self.backlog_end > self.taken then barr, bn, bends = self:read(t, self.taken, self.backlog_end) end
    local arr, n, ends, last = take_new()
    if barr then
        self.taken = self.backlog_end
        if bn > 0 then
            if n > 0 then
                for i = 1, n do barr[bn + i] = arr[i] end
                for i = 1, #ends do bends[#bends + 1] = bn + ends[i] end
            end
            arr, n, ends = barr, bn + n, bends
        end
    end
    if last and last > self.taken then self.taken = last end
    self.covered = self.wal:last_seq()
    self.input = {t = t, after = after, upto = self.taken, n = n}
    return arr, n, ends
end

--- What batch t took: nil if no block.
function WalInput:took(t)
    local i = self.input
    if i == nil or i.t ~= t or i.upto == i.after then return nil end
    return core.encode_value({i.after, i.upto, i.n, self:stream()})
end

--- Batch t re-taken from the WAL: arr, n, ends. Blocks missing from the WAL
--- (a torn tail cut at open, segments deleted) are reported.
function WalInput:replay(t, data)
    local range = core.decode_value(data)
    if type(range) ~= "table" or type(range[1]) ~= "number" or type(range[2]) ~= "number" then
        error(sformat("%s: batch %d ms: the checkpoint's write-ahead log range cannot be read", self.desc, t), 0)
    end
    local after, upto, want = range[1], range[2], range[3]
    if range[4] then self.number = range[4] end
    local arr, n, ends = self:read(t, after, upto)
    if want and n ~= want then
        self.s.ctx:_receiver_error(self.desc, sformat("batch %d ms: the write-ahead log holds %d of the %d "
            .. "records this batch took before the crash (its blocks after seq %d up to %d): the replayed "
            .. "batch lacks the other %d", t, n, want, after, upto, want - n))
    end
    if upto > self.taken then self.taken = upto end
    return arr, n, ends
end

--- The position: the last seq taken, and the stream number.
function WalInput:position() return core.encode_value({self.taken, self:stream()}) end

--- Restore the position (before start).
function WalInput:resume(data)
    local pos = core.decode_value(data)
    if type(pos) ~= "table" or type(pos[1]) ~= "number" or type(pos[2]) ~= "number" then
        error(sformat("%s: the checkpoint's write-ahead log position cannot be read", self.desc), 0)
    end
    if pos[1] > self.taken then self.taken = pos[1] end
    self.number = pos[2]
end

-- The checkpoint protocol's fields of an input stream logged through w.
local function wal_fields(fields, w)
    fields._ckpt_input = function(_, t) return w.wal and w:took(t) or nil end
    fields._ckpt_replay = function(s, t, data)
        if data == nil or not w:log() then return RDD.empty(t, s:_rdd_id(t)) end
        local arr, n, ends = w:replay(t, data)
        return RDD.new(n, arr, nil, ends, t, s:_rdd_id(t))
    end
    fields._ckpt_position = function() return w:log() and w:position() or nil end
    fields._ckpt_resume = function(_, data) w:resume(data) end
    --- The WAL seq up to which every block of this stream was taken by a
    --- batch (nil without a WAL): once the backlog is in, each take takes
    --- every block logged, so it is the WAL's last seq at the latest take.
    fields._ckpt_wal_covered = function() return w.wal and (w.covered or w.taken) or nil end
    return fields
end

-- socketTextStream ----------------------------------------------------------

local SOCKET_OPTS = {maxLineBytes = true, backoffInitial = true, backoffMax = true}

-- The most lines a socket holds for the next batch: a batch interval's
-- worth at CAP_LINES_PER_S, at least CAP_MIN_LINES. Past it the socket
-- stops reading and TCP slows the sender (core/include/dstream/socket.h,
-- BATCH CAP), so a fast sender cannot pile up a batch larger than the
-- pipeline handles in about an interval, nor memory without bound; each
-- take also reads what waits in the kernel, so batches run back to back to
-- catch up still find data. The rate is about what the fastest Lua
-- pipeline (a word count) processes per second, so a pipeline that keeps
-- up is not slowed; smaller batches cost less per record (bench/wordcount:
-- CPU per word 15-20% lower at 20 000 lines a batch than at 100 000), but
-- a lower cap would pace a fast pipeline below its speed, which is
-- maxRate's and backpressure's job.
local CAP_LINES_PER_S, CAP_MIN_LINES = 500000, 10000
local function socket_cap(batch_ms)
    return math.max(CAP_MIN_LINES, math.floor(CAP_LINES_PER_S * batch_ms / 1000))
end

--- socketTextStream(host, port, opts): lines of a TCP connection.
function sources.socketTextStream(ctx, host, port, opts)
    if type(host) ~= "string" or host == "" then
        error("socketTextStream: argument #1 (host) must be a non-empty string", 3)
    end
    if type(port) ~= "number" or port < 1 or port > 65535 or port ~= math.floor(port) then
        error(sformat("socketTextStream: argument #2 (port) must be a whole number from 1 to 65535, got %s", tostring(port)), 3)
    end
    opts = util.check_options("socketTextStream", opts, SOCKET_OPTS, 3)
    local max_line = opts.maxLineBytes or 1024 * 1024
    if type(max_line) ~= "number" or max_line < 1 then
        error("socketTextStream: maxLineBytes must be a positive number of bytes", 3)
    end
    local desc = sformat("socketTextStream(%s:%d)", host, port)
    local sock, limited, closed
    local taken = 0
    local w = wal_input(nil, desc)
    local s = input(ctx, wal_fields({kind = "socketTextStream", desc = desc, pairs = false, receiver = true, blocks = true,
        start = function()
            local err
            if ctx.wal then w:open(ctx.wal) end
            sock, err = core.socket_new(ctx.engine, host, port, {maxLineBytes = max_line,
                blockInterval = ctx.block_ms,
                backoffInitial = opts.backoffInitial and util.duration_ms("backoffInitial", opts.backoffInitial),
                backoffMax = opts.backoffMax and util.duration_ms("backoffMax", opts.backoffMax),
                wal = ctx.wal, walStream = ctx.wal and w:stream(), rateBurst = ctx.batch_ms,
                maxPendingRecords = socket_cap(ctx.batch_ms)})
            if not sock then error(desc .. ": " .. err, 0) end
            -- The limit (maxRate, or backpressure's) is a token bucket in C:
            -- a socket out of tokens stops reading and TCP slows the sender.
            limited = rate.control(ctx):add(desc, function(r)
                if not closed then sock:set_rate(r) end
            end)
            sock:start()
        end,
        take = function(s, t)
            if not sock then return RDD.empty(t, s:_rdd_id(t)) end
            local function take_new(blocks)
                local arr, n, ends, _, last
                if blocks then arr, n, ends, _, last = sock:take_blocks() else arr, n, ends, _, last = sock:take() end
                taken = taken + n
                limited:took(t, n)
                return arr, n, ends, last
            end
            local arr, n, ends
            if w.wal then
                arr, n, ends = w:take(t, take_new)
            else
                -- Built-ins hook (planner.reads_blocks): when the only reader
                -- counts words in C, the batch stays in C blocks - arr is the
                -- chain, a userdata only that C loop reads.
                arr, n, ends = take_new(planner.reads_blocks(s))
            end
            return RDD.new(n, arr, nil, ends, t, s:_rdd_id(t))
        end,
        drain_errors = function(report)
            if not sock then return end
            local errs = sock:errors()
            for i = 1, #errs do report(desc, errs[i].message, errs[i].time) end
        end,
        drain = function()
            if sock then sock:drain() end
        end,
        stop = function()
            if sock then sock:stop() end
        end,
        undelivered = function()
            return sock and sock:stats().records - taken or 0
        end,
        close = function()
            closed = true
            if sock then sock:close() end
        end,
        closed = function()
            return sock == nil or sock:closed()
        end,
    }, w))
    w.s = s
    return s
end

-- textFileStream ------------------------------------------------------------

local FILE_OPTS = {newFilesOnly = true, filter = true, maxLineBytes = true}

-- How long a read file is watched for changes, and a pending one waited
-- for before a report: Spark's minimum remember duration for file streams.
local MIN_REMEMBER_MS = 60000
-- Bytes read a step: a large file is read in steps of this size, so reading
-- holds one step's lines in C, never the whole file.
local READ_STEP = 1024 * 1024

local function hidden(name)
    local c = name:sub(1, 1)
    return c == "." or c == "_"
end

-- What identifies one version of a file: the same inode and creation time
-- (a name re-used by a new file differs in one of them), the same size and
-- modification time (a file still being written differs in one of them).
local function identity(st) return sformat("%.0f:%.6f", st.ino, st.btime) end
local function version(st) return sformat("%.0f:%.6f:%.0f:%.6f", st.ino, st.btime, st.size, st.mtime) end

--[[ The file source's rule, in one place:

A name enters `files` when the directory scan reports it new (or re-created:
a different inode number under an old name). Each batch it is stat'ed:
  pending  -> read once the same version (inode, creation time, size,
              modification time) was seen by the previous batch's stat too:
              stable for one batch interval. Errors (it vanished, a dangling
              link, permission denied) are reported once each and retried.
  read     -> watched for the remember window: a different identity is a new
              file (pending again); a changed size or mtime of the same file
              is reported once ("changed after it was read") and not re-read.
Directories are left silently, other non-regular files with one report. A
name leaves `files` once read and out of the window, skipped, or gone from
the directory; the scan itself keeps only the names now in the directory. ]]
local FileSource = {}
FileSource.__index = FileSource

function FileSource:__tostring() return self.desc end

function FileSource:report(t, msg)
    self.ctx:_receiver_error(self.desc, sformat("batch %d ms: %s", t, msg))
end

-- Report msg about f unless the last report about it said the same.
function FileSource:report_once(f, t, msg)
    if f.said ~= msg then
        f.said = msg
        self:report(t, msg)
    end
end

function FileSource:consider(name)
    local path = self.dir .. "/" .. name
    if hidden(name) or (self.filter ~= nil and not self.filter(path)) then
        self.files[name] = nil
        return
    end
    self.files[name] = {state = "pending", path = path}
end

-- Append the lines of f's file to the batch (a, n); returns the new n, or
-- nil after reporting why the file could not be read (it is retried).
function FileSource:read(f, t, a, n)
    local r, err = core.fs_reader(f.path, self.max_line)
    if not r then
        self:report_once(f, t, sformat("%s not read yet: %s (retried every batch)", f.path, err))
        return nil
    end
    local n0, eof = n, false
    while not eof do
        local m, e = r:read(a, n, READ_STEP)
        if not m then
            for i = n, n0 + 1, -1 do a[i] = nil end
            r:close()
            self:report_once(f, t, sformat("%s not read yet: %s (retried every batch)", f.path, e))
            return nil
        end
        n, eof = m, e
    end
    local skipped, st, bytes = r:skipped(), r:stat(), r:offset()
    r:close()
    if skipped > 0 then
        self:report(t, sformat("%s: %d line%s longer than maxLineBytes (%d) skipped",
            f.path, skipped, skipped == 1 and "" or "s", self.max_line))
    end
    f.state, f.read_at, f.id, f.read_version, f.bytes = "read", t, identity(st), version(st), bytes
    self.known[f.name] = f.id
    self.took[#self.took + 1] = {f.name, f.id, bytes}
    self.changes = self.changes + 1
    if st.mtime < os.time() * 1000 - self.window_ms then self.files[f.name] = nil end
    return n
end

-- One batch's look at a pending file; returns the new n.
function FileSource:step_pending(f, st, t, a, n)
    local v = version(st)
    if v ~= f.version then
        f.version, f.since = v, f.since or t
        if t - f.since >= self.window_ms and not f.slow then
            f.slow = true
            self:report(t, sformat("%s has kept changing for %d s; it is read once it stays unchanged "
                .. "for one batch", f.path, (t - f.since) / 1000))
        end
        return n
    end
    return self:read(f, t, a, n) or n
end

-- One batch's look at a file read earlier.
function FileSource:step_read(f, st, t)
    if identity(st) ~= f.id then -- a new file under the old name
        self.files[f.name] = {state = "pending", path = f.path, name = f.name, version = version(st), since = t}
        self.changes = self.changes + 1
    elseif version(st) ~= f.read_version then
        self:report(t, sformat("%s changed after it was read in batch %d ms (%d bytes read, %d now); "
            .. "the change is not read: write each file once, under a new name or renamed into the directory",
            f.path, f.read_at, f.bytes, st.size))
        self.files[f.name] = nil
    elseif t - f.read_at >= self.window_ms then
        self.files[f.name] = nil
    end
end

function FileSource:scan(t)
    local changed, gone = self.scanner:update(self.dir)
    if not changed then
        if self.scan_error ~= gone then self:report(t, gone) end
        self.scan_error = gone
        return
    end
    self.scan_error = nil
    if #gone + #changed > 0 then self.changes = self.changes + 1 end
    for i = 1, #gone do
        self.files[gone[i]] = nil
        self.known[gone[i]] = nil
    end
    for i = 1, #changed do
        self.known[changed[i]] = false
        self:consider(changed[i])
    end
end

function FileSource:take(t)
    self.took, self.took_at = {}, t
    self:scan(t)
    local names, files = {}, self.files
    local key = next(files) -- not a generic for: spec/unit/luajit_spec.lua
    while key ~= nil do
        names[#names + 1] = key
        key = next(files, key)
    end
    table.sort(names)
    local n, a, ends = 0, {}, {}
    for _, name in ipairs(names) do
        local f = self.files[name]
        f.name = name
        local st, err = core.fs_stat(f.path)
        if not st then
            self:report_once(f, t, sformat("%s not read yet: %s (retried every batch)", f.path, err))
        elseif st.dir then
            self.files[name] = nil
            self.changes = self.changes + 1
        elseif not st.file then
            self:report(t, sformat("%s skipped: not a regular file (%s)", f.path, st.kind))
            self.files[name] = nil
            self.changes = self.changes + 1
        elseif f.state == "pending" then
            local m = self:step_pending(f, st, t, a, n)
            if m > n then
                n = m
                ends[#ends + 1] = n
            end
        else
            self:step_read(f, st, t)
        end
    end
    if #ends == 0 then ends[1] = 0 end
    return n, a, ends
end

-- A file to read that was there at start counts as first seen then, so it
-- is read by the first batch if that finds it unchanged.
function FileSource:look_at_start(name, t)
    self:consider(name)
    local f = self.files[name]
    local st = f and core.fs_stat(f.path)
    if st and st.file then f.version, f.since = version(st), t end
end

-- The identity of the file now at name, if it is the one the position (or
-- a replayed batch) says was read or left alone; else nil.
function FileSource:done_before(name)
    local id = self.replayed[name] or (self.resumed and self.resumed[name])
    if not id then return nil end
    local st = core.fs_stat(self.dir .. "/" .. name)
    return st ~= nil and identity(st) == id and id or nil
end

--- Start watching: the names there now are left alone (newFilesOnly) or read
--- (newFilesOnly = false); after recovery, every name not read or left
--- alone before the crash is read, whatever newFilesOnly says.
function FileSource:start(new_only, t)
    self.scanner = core.dirscan_new()
    local names, err = self.scanner:update(self.dir)
    if not names then error(self.desc .. ": " .. err, 0) end
    for i = 1, #names do
        local name = names[i]
        self.known[name] = false
        if self.resumed or next(self.replayed) then
            local id = self:done_before(name)
            if id then
                self.known[name] = id
            else
                self:look_at_start(name, t)
            end
        elseif not new_only then
            self:look_at_start(name, t)
        end
    end
    self.resumed = nil
end

--[[ Checkpoints. The position is the names of the directory not to read
again, each with its identity (inode number and creation time): those
read, and those left alone (there before the first start with
newFilesOnly, hidden, filtered out, not regular files). A name missing from
it, or holding another file now, is a file that appeared while the program
was down: read after recovery. Its cost is the directory's names (their
bytes plus about 30 each), encoded again only when a name came, went or
was read. What a batch took is the names it read with their identities
and byte counts: a replayed batch re-reads those files. ]]

--- The position: the names not to read again (an encoded {name = identity}).
function FileSource:position()
    if self.position_cache and self.position_of == self.changes then return self.position_cache end
    local done, files, known = {}, self.files, self.known
    local name, id = next(known)
    while name ~= nil do
        local f = files[name]
        if f == nil or f.state ~= "pending" then
            if not id then
                local st = core.fs_stat(self.dir .. "/" .. name)
                id = st and identity(st)
                known[name] = id or false
            end
            if id then done[name] = id end
        end
        name, id = next(known, name)
    end
    self.position_cache = core.encode_value(done)
    self.position_of = self.changes
    return self.position_cache
end

--- Restore the position saved by position() (before start).
function FileSource:resume(data)
    local done, err = core.decode_value(data)
    if type(done) ~= "table" then
        error(sformat("%s: the checkpoint's file position cannot be read: %s", self.desc, tostring(err)), 0)
    end
    self.resumed = done
end

--- What batch t read (after take(t)): nil if it read no file.
function FileSource:input(t)
    if #self.took == 0 or self.took_at ~= t then return nil end
    return core.encode_value(self.took)
end

--- Re-read the files batch t read before a crash: returns n, a, ends.
--- A file gone or replaced since is reported, its lines missing.
function FileSource:replay(t, data)
    local took, err = core.decode_value(data)
    if type(took) ~= "table" then
        error(sformat("%s: batch %d ms: the checkpoint's list of the files it read cannot be read: %s",
            self.desc, t, tostring(err)), 0)
    end
    local n, a, ends = 0, {}, {}
    for _, rec in ipairs(took) do
        local name, id, bytes = rec[1], rec[2], rec[3]
        local path = self.dir .. "/" .. name
        local st, serr = core.fs_stat(path)
        if not st then
            self:report(t, sformat("%s, read by this batch before the crash, cannot be read again (%s): "
                .. "the replayed batch lacks its lines", path, serr))
        elseif identity(st) ~= id then
            self:report(t, sformat("%s, read by this batch before the crash, was replaced by another file: "
                .. "the replayed batch lacks its lines (the new file is read as a new one)", path))
        else
            local m, cnt, skipped = core.fs_read_lines(path, self.max_line)
            if not m then -- cnt is the error
                self:report(t, sformat("%s, read by this batch before the crash, cannot be read again (%s): "
                    .. "the replayed batch lacks its lines", path, cnt))
            else
                if skipped > 0 then
                    self:report(t, sformat("%s: %d line%s longer than maxLineBytes (%d) skipped", path, skipped,
                        skipped == 1 and "" or "s", self.max_line))
                end
                if st.size ~= bytes then
                    self:report(t, sformat("%s changed since this batch read it before the crash (%d bytes "
                        .. "then, %d now): the replayed batch reads it as it is now", path, bytes, st.size))
                end
                for i = 1, cnt do a[n + i] = m[i] end
                n = n + cnt
                ends[#ends + 1] = n
            end
            self.replayed[name] = id
            if self.scanner then
                self.files[name] = nil
                self.known[name] = id
                self.changes = self.changes + 1
            end
        end
    end
    if #ends == 0 then ends[1] = 0 end
    return n, a, ends
end

function FileSource:counts()
    local tracked, files = 0, self.files
    local name = next(files)
    while name ~= nil do
        tracked = tracked + 1
        name = next(files, name)
    end
    return {tracked = tracked, names = self.scanner:count()}
end

--- textFileStream(dir, opts): lines of the files that appear in dir.
function sources.textFileStream(ctx, dir, opts)
    if type(dir) ~= "string" or dir == "" then
        error("textFileStream: argument #1 (dir) must be a non-empty string", 3)
    end
    opts = util.check_options("textFileStream", opts, FILE_OPTS, 3)
    if opts.filter ~= nil then util.check_function("textFileStream", 2, "opts.filter", opts.filter, 3) end
    local src = setmetatable({ctx = ctx, dir = dir, filter = opts.filter, files = {},
        max_line = opts.maxLineBytes or 1024 * 1024, desc = sformat("textFileStream(%s)", dir),
        window_ms = MIN_REMEMBER_MS, known = {}, took = {}, replayed = {}, changes = 0}, FileSource)
    local s
    s = input(ctx, {kind = "textFileStream", desc = src.desc, pairs = false,
        start = function()
            src.window_ms = math.max(MIN_REMEMBER_MS, s.remember_ms or 0, 2 * ctx.batch_ms)
            src:start(opts.newFilesOnly ~= false, ctx.engine:now())
        end,
        take = function(_, t)
            if not src.scanner then return RDD.empty(t, s:_rdd_id(t)) end
            local n, a, ends = src:take(t)
            return RDD.new(n, a, nil, ends, t, s:_rdd_id(t))
        end,
        _ckpt_input = function(_, t) return src:input(t) end,
        _ckpt_replay = function(_, t, data)
            if data == nil then return RDD.empty(t, s:_rdd_id(t)) end
            local n, a, ends = src:replay(t, data)
            return RDD.new(n, a, nil, ends, t, s:_rdd_id(t))
        end,
        _ckpt_position = function() return src.scanner and src:position() or nil end,
        _ckpt_resume = function(_, data) src:resume(data) end,
        close = function()
            if src.scanner then src.scanner:close() end
        end,
        file_counts = function() return src:counts() end,
    })
    return s
end

-- receiverStream ------------------------------------------------------------

local POLL_MAX = 65536

--- receiverStream(r): a custom receiver polled by the engine.
function sources.receiverStream(ctx, r)
    if type(r) ~= "table" then error("receiverStream: argument #1 must be a receiver table", 3) end
    for _, m in ipairs({"start", "poll", "stop"}) do
        if not util.callable(r[m]) then
            error(sformat("receiverStream: the receiver has no %s method (needs start, poll and stop)", m), 3)
        end
    end
    local desc = sformat("receiverStream(%s)", tostring(r.name or "receiver"))
    -- Each poll's records are one block: a partition of the batch.
    local pending, npending, ends = {}, 0, {}
    local last_seq -- with a WAL: the seq of the newest pending block
    local held, held_err -- with a WAL: a polled block the WAL refused, retried before the next poll
    local stopped = false
    -- The rate limit's bucket: on a manual clock it runs on the time polls
    -- cover (span_ms each), on a system clock on real time, so a poll
    -- delayed by a long batch may take what accrued meanwhile.
    local bucket, limited, clock_ms = nil, nil, 0
    local function now() return ctx.clock == "manual" and clock_ms or ctx.engine:now() end
    local rctx = {batchInterval = ctx.batch_ms / 1000}
    function rctx.reportError(_, msg)
        ctx:_receiver_error(desc, tostring(msg))
    end
    local function guarded(method, ...)
        local ok, err = xpcall(r[method], debug.traceback, r, ...)
        if not ok then ctx:_receiver_error(desc, sformat("%s raised: %s", method, tostring(err))) end
        return ok, err
    end
    local w = wal_input(nil, desc)
    local function accept(recs, n)
        for i = 1, n do pending[npending + i] = recs[i] end
        npending = npending + n
        ends[#ends + 1] = npending
    end
    -- With a WAL a block counts once it is in the log: true when it is.
    -- A block the WAL refuses is held and retried (no poll meanwhile); one
    -- the codec cannot encode can never be logged and is dropped, reported.
    local function log(recs, n)
        local data, err = core.encode(recs, n)
        if not data then
            ctx:_receiver_error(desc, sformat("poll returned a block of %d records the write-ahead log cannot "
                .. "hold (%s): the block was dropped", n, err))
            return false
        end
        local seq
        seq, err = w.wal:append(w:stream(), data)
        if not seq then
            held = {recs, n}
            if held_err ~= err then
                ctx:_receiver_error(desc, sformat("the write-ahead log refused a block of %d records (%s): "
                    .. "it is kept and retried, and the receiver is not polled until it is logged", n, err))
            end
            held_err = err
            return false
        end
        held, held_err = nil, nil
        last_seq = seq
        return true
    end
    local s
    s = input(ctx, wal_fields({kind = "receiverStream", desc = desc, pairs = false, receiver = true,
        start = function()
            if ctx.wal then w:open(ctx.wal) end
            bucket = core.rate_new(0, ctx.batch_ms, now())
            limited = rate.control(ctx):add(desc, function(limit) bucket:set(limit, now()) end)
            guarded("start", rctx)
        end,
        poll = function(span_ms)
            if held then
                if not log(held[1], held[2]) then return end
                accept(held[1], held[2])
            end
            if stopped then return end
            clock_ms = clock_ms + span_ms
            local max = math.min(POLL_MAX, bucket:available(now()))
            if max < 1 then return end
            local ok, recs = guarded("poll", rctx, max)
            if not ok or recs == nil then return end
            if type(recs) ~= "table" then
                ctx:_receiver_error(desc, "poll must return an array of records, got " .. type(recs))
                return
            end
            local n = #recs
            if n > max then
                ctx:_receiver_error(desc, sformat("poll returned %d records, more than the %d asked for; all were kept", n, max))
            end
            bucket:spend(n)
            if n == 0 then return end
            if w.wal and not log(recs, n) then return end
            accept(recs, n)
        end,
        take = function(_, t)
            local function take_new()
                local arr, n, blocks, last = pending, npending, ends, last_seq
                pending, npending, ends, last_seq = {}, 0, {}, nil
                if n == 0 then blocks = {0} end
                return arr, n, blocks, last
            end
            local arr, n, blocks
            if w.wal then arr, n, blocks = w:take(t, take_new) else arr, n, blocks = take_new() end
            if limited then limited:took(t, n) end
            return RDD.new(n, arr, nil, blocks, t, s:_rdd_id(t))
        end,
        pending = function() return npending > 0 or held ~= nil end,
        undelivered = function() return npending + (held and held[2] or 0) end,
        stop = function()
            if not stopped then
                stopped = true
                guarded("stop")
            end
        end,
    }, w))
    w.s = s
    return s
end

return sources

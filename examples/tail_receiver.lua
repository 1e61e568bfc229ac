--[[ tail_receiver: a custom receiver that follows a growing log file.

receiverStream(r) takes any table with start, poll and stop: the engine
calls r:poll(ctx, max) every blockInterval and the records it returns join
the next batch. This one behaves like `tail -F`: it starts at the end of the
file (or at its beginning with --from-start) and returns the complete lines
appended since the last poll.

ROTATION. It keeps the file it follows open and knows it by inode number and
creation time (dstream.core's fs_stat), not by its size. When the path names
another file (the log was renamed away and a new one created), it first
reads the new file from its beginning, and keeps reading the old one to its
end until it has stayed quiet for one poll, since a writer may still append
to it before it reopens the log. A file that shrinks
under the same identity was truncated in place (copytruncate): it is read
from its beginning again, with a report. No line is lost or read twice,
though lines written to the old file after the new one started may come
after the new file's first lines. The limit `tail -F` has too: a file
created and rotated away again between two polls is never seen.

Every batch counts the log lines per level.

    bin/dstream run examples/tail_receiver.lua LOGFILE [seconds] [--from-start]
]]
local dstream = require "dstream"
local core = require "dstream.core"

local READ_MAX = 1024 * 1024 -- bytes read from one file in one poll

local Tail = {}
Tail.__index = Tail

--- Tail.new(path, from_start): a receiver following path.
function Tail.new(path, from_start)
    return setmetatable({name = "tail " .. path, path = path, from_start = from_start, olds = {}}, Tail)
end

local function identity(st) return string.format("%.0f:%.6f", st.ino, st.btime) end

-- Open the file now at self.path; remember what it is. Returns the follower
-- {f, id, pos} or nil when there is no file (yet).
function Tail:open(at_end)
    local before = core.fs_stat(self.path)
    local f = before and io.open(self.path, "rb")
    if not f then return nil end
    local after = core.fs_stat(self.path)
    if not after or identity(after) ~= identity(before) then -- replaced while opening
        f:close()
        return nil
    end
    return {f = f, id = identity(after), pos = at_end and f:seek("end") or 0}
end

-- Append to lines the complete lines of follower fl past fl.pos (at most
-- max lines in all) and, when final, its last line without a newline: no
-- one writes to that file any more. Returns the number of bytes consumed.
local function drain(fl, lines, max, final)
    fl.f:seek("set", fl.pos)
    local data = fl.f:read(READ_MAX) or ""
    local consumed = 0
    for line, stop in data:gmatch("([^\n]*)\n()") do
        if #lines >= max then break end
        lines[#lines + 1] = line
        consumed = stop - 1
    end
    if final and consumed < #data and #data < READ_MAX and #lines < max then
        lines[#lines + 1] = data:sub(consumed + 1)
        consumed = #data
    end
    fl.pos = fl.pos + consumed
    return consumed
end

function Tail:start(ctx)
    self.cur = self:open(not self.from_start)
    if not self.cur then
        ctx:reportError("cannot open " .. self.path .. " yet; waiting for it")
    end
end

function Tail:poll(ctx, max)
    local lines = {}
    -- Rotated files first, each to its end, until it has stayed quiet for a poll.
    local olds, keep = self.olds, {}
    for i = 1, #olds do
        local got = drain(olds[i], lines, max, olds[i].quiet)
        if got == 0 and olds[i].quiet then
            olds[i].f:close()
        else
            olds[i].quiet = got == 0
            keep[#keep + 1] = olds[i]
        end
    end
    self.olds = keep
    if not self.cur then
        self.cur = self:open(false)
        if not self.cur then return lines end
    end
    local got = drain(self.cur, lines, max, false)
    if got > 0 or #lines >= max then return lines end
    -- Drained: has the path moved on to another file, or was this one truncated?
    local st = core.fs_stat(self.path)
    if st and identity(st) ~= self.cur.id then
        keep[#keep + 1] = self.cur
        self.cur = self:open(false)
    elseif st and st.size < self.cur.pos then
        ctx:reportError(self.path .. " was truncated; reading it from the beginning")
        self.cur.pos = 0
    end
    return lines
end

function Tail:stop()
    for _, fl in ipairs(self.olds) do fl.f:close() end
    if self.cur then self.cur.f:close() end
    self.olds, self.cur = {}, nil
end

local M = {Tail = Tail}
if select("#", ...) == 1 and (...) == "--as-module" then return M end

local path, seconds = arg[1], tonumber(arg[2])
local from_start = arg[2] == "--from-start" or arg[3] == "--from-start"
if not path then
    io.stderr:write("usage: dstream run examples/tail_receiver.lua LOGFILE [seconds] [--from-start]\n")
    os.exit(2)
end

local ssc = dstream.StreamingContext{batchInterval = 1, blockInterval = 0.1, name = "tail"}
ssc:addStreamingListener{onReceiverError = function(e) io.stderr:write(e.source, ": ", e.message, "\n") end}

ssc:receiverStream(Tail.new(path, from_start))
    :mapToPair(function(line) return line:match("^%S*%s*(%u+)") or "OTHER", 1 end)
    :reduceByKey(function(a, b) return a + b end)
    :transform(function(rdd) return rdd:sortBy(function(level) return level end) end)
    :print()

ssc:start()
if seconds then
    ssc:awaitTerminationOrTimeout(seconds)
    ssc:stop{graceful = true}
else
    ssc:awaitTermination()
end

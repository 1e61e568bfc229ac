--[[ tail_receiver: a custom receiver that follows a growing log file.

receiverStream(r) takes any table with start, poll and stop: the engine
calls r:poll(ctx, max) every blockInterval and the records it returns join
the next batch. This one behaves like `tail -F`: it starts at the end of the
file (or at its beginning with --from-start), returns the complete lines
appended since the last poll, and reopens the file when it is rotated
(replaced or truncated). Every batch counts the log lines per level.

    bin/dstream run examples/tail_receiver.lua LOGFILE [seconds] [--from-start]
]]
local dstream = require "dstream"

local path, seconds = arg[1], tonumber(arg[2])
local from_start = arg[2] == "--from-start" or arg[3] == "--from-start"
if not path then
    io.stderr:write("usage: dstream run examples/tail_receiver.lua LOGFILE [seconds] [--from-start]\n")
    os.exit(2)
end

local Tail = {}
Tail.__index = Tail

function Tail.new(file, start_at_beginning)
    return setmetatable({name = "tail " .. file, path = file, pos = nil, partial = "",
        start_at_beginning = start_at_beginning}, Tail)
end

function Tail:start(ctx)
    local f = io.open(self.path, "rb")
    if not f then
        ctx:reportError("cannot open " .. self.path .. " yet; waiting for it")
        self.pos = 0
        return
    end
    self.pos = self.start_at_beginning and 0 or f:seek("end")
    f:close()
end

function Tail:poll(ctx, max)
    local f = io.open(self.path, "rb")
    if not f then return {} end
    local size = f:seek("end")
    if size < self.pos then -- truncated or replaced by a shorter file: start over
        ctx:reportError(self.path .. " was truncated; reading it from the beginning")
        self.pos, self.partial = 0, ""
    end
    f:seek("set", self.pos)
    local data = f:read(math.min(size - self.pos, 1024 * 1024)) or ""
    f:close()
    local lines, text = {}, self.partial .. data
    local consumed = 0
    for line, stop in text:gmatch("([^\n]*)\n()") do
        if #lines == max then break end
        lines[#lines + 1] = line
        consumed = stop - 1
    end
    self.partial = ""
    self.pos = self.pos + consumed - (#text - #data)
    return lines
end

function Tail:stop() end

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

--[[ wordcount_dstream: the dstream variants of the word-count benchmark.

    luajit bench/wordcount_dstream.lua MODE [options]

Run from the project root with dstream on the paths (bench/wordcount does):

    LUA_PATH="lua/?.lua;lua/?/init.lua;bench/?.lua;;" LUA_CPATH="build/?.so;;"

MODES (each prints one JSON line, the fields of bench/wordcount_common.lua
plus "tokenizer" and a few that say how it ran):

  plain_bytes  variant "plain_luajit_bytes": wordcount_plain.lua's loop with
               the `bytes` tokenizer instead of gmatch. The baseline the
               dstream variants using `bytes` are compared with.
  queue        variant "dstream_queue" (gmatch) or "dstream_queue_bytes":
               lines read with io.lines, BATCH_LINES at a time appended to a
               queueStream under the manual clock, then ssc:advance(1). The
               queue never holds the whole file: 900 000 live strings would
               be marked by every GC cycle.
  socket       variant "dstream_socket" or "dstream_socket_bytes": the same
               pipeline over ssc:socketTextStream, fed by examples/wordgen.lua
               --file INPUT (a separate process) under the system clock.
               Needs --expect-words: it stops once that many words are
               counted (the socket never says the file is over).

The pipeline of both dstream modes is the word count of the Spark docs:

    lines:flatMap(split):mapToPair(w -> w, 1):reduceByKey(+):foreachRDD(merge)

where merge adds each batch's counts into one table, whose totals (words,
distinct, checksum) must equal the plain loops'. `seconds` covers reading
and counting: for queue everything from making the context to stop(),
reading the file included (as the plain loops' time includes io.lines); for
socket from start() to the end of the batch that brings the last word.

OPTIONS
  --input PATH          the text (default bench/data/words.txt)
  --tokenizer T         gmatch (default), bytes, gmatch_iter or bytes_iter
  --batch-lines N       queue: lines per batch (default 20000)
  --batch-interval S    socket: seconds per batch (default 0.1)
  --expect-words N      socket: stop once N words are counted (required)
  --timeout S           socket: give up after S seconds (default 120)
  --dump PATH           write every "word count" line, sorted

TOKENIZERS. The array forms return, per line, the array of its words:
  gmatch  for w in line:gmatch("%S+") do n = n + 1; t[n] = w end
  bytes   one loop over string.byte, cutting words with string.sub at
          whitespace bytes (" \t\n\v\f\r", as %s): the loop LuaJIT compiles,
          where gmatch is not compiled.
The iterator forms (API.md: flatMap's function may return an iterator)
build no table per line:
  gmatch_iter  return line:gmatch("%S+")
  bytes_iter   the bytes scan as an iterator over one reused cursor
]]

local BENCH_DIR = arg[0]:match("^(.-)[^/]*$")
package.path = BENCH_DIR .. "?.lua;" .. package.path

local common = require("wordcount_common")

local byte, sub = string.byte, string.sub

local USAGE = [[
usage: luajit bench/wordcount_dstream.lua plain_bytes|queue|socket [options]
  --input PATH  --tokenizer gmatch|bytes  --batch-lines N  --batch-interval S
  --expect-words N  --timeout S  --dump PATH
]]

local function usage_error(msg)
    io.stderr:write("wordcount_dstream: ", msg, "\n", USAGE)
    os.exit(1)
end

local function parse_args(argv)
    local opts = {mode = argv[1], input = common.DEFAULT_INPUT, tokenizer = "gmatch",
        batch_lines = 20000, batch_interval = 0.1, timeout = 120}
    if opts.mode ~= "plain_bytes" and opts.mode ~= "queue" and opts.mode ~= "socket" then
        usage_error("MODE must be plain_bytes, queue or socket")
    end
    local numbers = {["--batch-lines"] = "batch_lines", ["--batch-interval"] = "batch_interval",
        ["--expect-words"] = "expect_words", ["--timeout"] = "timeout"}
    local strings = {["--input"] = "input", ["--tokenizer"] = "tokenizer", ["--dump"] = "dump"}
    local i = 2
    while i <= #argv do
        local k, v = argv[i], argv[i + 1]
        if v == nil then usage_error(k .. " needs a value") end
        if numbers[k] then
            local n = tonumber(v)
            if not n or n <= 0 then usage_error(k .. " must be a positive number") end
            opts[numbers[k]] = n
        elseif strings[k] then
            opts[strings[k]] = v
        else
            usage_error("unknown option " .. k)
        end
        i = i + 2
    end
    if not ({gmatch = true, bytes = true, gmatch_iter = true, bytes_iter = true})[opts.tokenizer] then
        usage_error("--tokenizer must be gmatch, bytes, gmatch_iter or bytes_iter")
    end
    if opts.mode == "plain_bytes" then opts.tokenizer = "bytes" end
    if opts.mode == "socket" and not opts.expect_words then
        usage_error("socket needs --expect-words N (the total of the plain run)")
    end
    local f = io.open(opts.input, "rb")
    if f == nil then
        usage_error("cannot read " .. opts.input .. " (make it with luajit bench/gen_text.lua)")
    end
    f:close()
    return opts
end

-- Tokenizers: line -> array of its words ---------------------------------

local function split_gmatch(line)
    local t, n = {}, 0
    for w in line:gmatch("%S+") do
        n = n + 1
        t[n] = w
    end
    return t
end

-- Whitespace is what %s matches: space (32) or \t \n \v \f \r (9 to 13),
-- tested inline below (two compares the JIT keeps in the trace). A word
-- starts at `start` and ends before the next whitespace byte or the line's
-- end; runs of whitespace make no empty words.
local function split_bytes(line)
    local t, n, start = {}, 0, 0
    for i = 1, #line do
        local c = byte(line, i)
        if c == 32 or (c <= 13 and c >= 9) then
            if start > 0 then
                n = n + 1
                t[n] = sub(line, start, i - 1)
                start = 0
            end
        elseif start == 0 then
            start = i
        end
    end
    if start > 0 then
        n = n + 1
        t[n] = sub(line, start)
    end
    return t
end

-- The iterator forms: flatMap's function returns an iterator (API.md), so
-- no table is built per line.
local function iter_gmatch(line)
    return line:gmatch("%S+")
end

-- The bytes scan as an iterator in the generic-for protocol: next_word(cur)
-- returns the next word of cur.line from cur.pos on. One cursor serves
-- every line (flatMap walks a line's iterator to its end before calling
-- its function again), so nothing is allocated per line: a closure per
-- line would cost an allocation and, in LuaJIT 2.1, a trace abort (closure
-- creation is not compiled).
local cursor = {line = "", pos = 1}

local function next_word(cur)
    local line, i = cur.line, cur.pos
    local len = #line
    while i <= len do
        local c = byte(line, i)
        if c == 32 or (c <= 13 and c >= 9) then
            i = i + 1
        else
            local start = i
            repeat
                i = i + 1
                c = byte(line, i)
            until i > len or c == 32 or (c <= 13 and c >= 9)
            cur.pos = i
            return sub(line, start, i - 1)
        end
    end
    cur.pos = i
    return nil
end

local function iter_bytes(line)
    cursor.line, cursor.pos = line, 1
    return next_word, cursor
end

local SPLIT = {gmatch = split_gmatch, bytes = split_bytes, gmatch_iter = iter_gmatch, bytes_iter = iter_bytes}

-- plain_bytes: wordcount_plain.lua's loop with the bytes scan -----------

local function count_plain_bytes(path)
    local counts = {}
    for line in io.lines(path) do
        local start = 0
        for i = 1, #line do
            local c = byte(line, i)
            if c == 32 or (c <= 13 and c >= 9) then
                if start > 0 then
                    local w = sub(line, start, i - 1)
                    counts[w] = (counts[w] or 0) + 1
                    start = 0
                end
            elseif start == 0 then
                start = i
            end
        end
        if start > 0 then
            local w = sub(line, start)
            counts[w] = (counts[w] or 0) + 1
        end
    end
    return counts
end

-- The dstream pipeline ------------------------------------------------------

-- Builds the word count over lines; on_batch(words_in_batch) after each
-- batch is merged. Returns the table the counts are merged into.
local function word_count(lines, split, on_batch)
    local counts = {}
    local function merge(k, v)
        counts[k] = (counts[k] or 0) + v
    end
    lines:flatMap(split)
        :mapToPair(function(w) return w, 1 end)
        :reduceByKey(function(a, b) return a + b end)
        :foreachRDD(function(rdd)
            local words = 0
            rdd:foreach(function(k, v)
                merge(k, v)
                words = words + v
            end)
            on_batch(words)
        end)
    return counts
end

local function run_queue(dstream, opts)
    local started, cpu = common.now(), os.clock()
    local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual", name = "wordcount_queue"}
    local queue, batches = {}, 0
    local counts = word_count(ssc:queueStream(queue), SPLIT[opts.tokenizer], function()
        batches = batches + 1
    end)
    ssc:start()
    local per_batch = opts.batch_lines
    local batch, n = {}, 0
    for line in io.lines(opts.input) do
        n = n + 1
        batch[n] = line
        if n == per_batch then
            queue[#queue + 1] = batch
            ssc:advance(1)
            batch, n = {}, 0
        end
    end
    if n > 0 then
        queue[#queue + 1] = batch
        ssc:advance(1)
    end
    ssc:stop()
    local seconds = common.now() - started
    return counts, seconds, {batches = batches, batch_lines = per_batch, cpu_seconds = os.clock() - cpu}
end

-- Starts examples/wordgen.lua serving the file; returns its pipe, port, pid.
local function start_wordgen(input, timeout)
    local root = BENCH_DIR .. "../"
    local cmd = string.format("luajit '%sexamples/wordgen.lua' --port 0 --seconds %d --file '%s'",
        root, math.ceil(timeout) + 5, input:gsub("'", "'\\''"))
    local pipe = assert(io.popen(cmd, "r"))
    local line = pipe:read("*l") or ""
    local port, pid = line:match("^listening on [^:]+:(%d+) pid (%d+)")
    if not port then
        pipe:close()
        io.stderr:write("wordcount_dstream: wordgen did not start: ", line, "\n")
        os.exit(1)
    end
    return pipe, tonumber(port), tonumber(pid)
end

local function run_socket(dstream, opts)
    local pipe, port, pid = start_wordgen(opts.input, opts.timeout)
    local ssc = dstream.StreamingContext{batchInterval = opts.batch_interval, name = "wordcount_socket"}
    local expected, total, batches, finished, cpu_end = opts.expect_words, 0, 0, nil, nil
    local largest = 0
    local counts = word_count(ssc:socketTextStream("127.0.0.1", port), SPLIT[opts.tokenizer], function(words)
        batches = batches + 1
        total = total + words
        if words > largest then largest = words end
        if total >= expected and not finished then
            finished, cpu_end = common.now(), os.clock()
            ssc:stop{graceful = true}
        end
    end)
    -- The producer closes the connection once the file is sent and exits:
    -- that EOF, and the refused reconnects after it, are expected.
    local eof = false
    ssc:addStreamingListener{onReceiverError = function(err)
        local msg = tostring(err.message)
        if msg:match("^EEOF") then
            eof = true
        elseif not (eof and msg:match("^ECONNREFUSED")) then
            io.stderr:write("wordcount_dstream: socket: ", msg, "\n")
        end
    end}
    local started, cpu = common.now(), os.clock()
    ssc:start()
    if not ssc:awaitTerminationOrTimeout(opts.timeout) then
        io.stderr:write(string.format("wordcount_dstream: socket: %d of %d words after %g s; giving up\n",
            total, expected, opts.timeout))
        ssc:stop()
        os.execute("kill " .. pid .. " 2>/dev/null")
        pipe:close()
        os.exit(1)
    end
    pipe:close() -- wordgen exits once the file is sent
    return counts, finished - started, {batches = batches, batch_interval = opts.batch_interval,
        cpu_seconds = cpu_end - cpu, largest_batch_words = largest}
end

-- Main ----------------------------------------------------------------------

local VARIANTS = {
    plain_bytes = {bytes = "plain_luajit_bytes"},
    queue = {gmatch = "dstream_queue", bytes = "dstream_queue_bytes", gmatch_iter = "dstream_queue_iter",
        bytes_iter = "dstream_queue_bytes_iter"},
    socket = {gmatch = "dstream_socket", bytes = "dstream_socket_bytes", gmatch_iter = "dstream_socket_iter",
        bytes_iter = "dstream_socket_bytes_iter"},
}

local opts = parse_args(arg)
local counts, seconds, extra
if opts.mode == "plain_bytes" then
    local started, cpu = common.now(), os.clock()
    counts = count_plain_bytes(opts.input)
    seconds = common.now() - started
    extra = {cpu_seconds = os.clock() - cpu}
else
    local dstream = require("dstream")
    if opts.mode == "queue" then
        counts, seconds, extra = run_queue(dstream, opts)
    else
        counts, seconds, extra = run_socket(dstream, opts)
    end
end
local record = common.result(VARIANTS[opts.mode][opts.tokenizer], counts, seconds)
record.tokenizer = opts.tokenizer
for k, v in pairs(extra or {}) do record[k] = v end
common.emit(record)
if opts.dump then
    common.dump(counts, opts.dump)
end

#!/usr/bin/env luajit
--[[ builtins: word count with dstream's built-ins in C, against its baselines.

    luajit bench/builtins.lua [--quick] [--repeat N] [--batch-interval S]
                              [--build-dir DIR] [--no-build]

Counts the words of bench/data/words.txt (~50 MiB, made by
bench/gen_text.lua if missing; --quick: bench/data/words-5m.txt) with

  lines:flatMap(dstream.words):countByValue():foreachRDD(merge)

which runs as a C loop (the stage splits and counts in C; Lua sees each
batch's (word, count) pairs, merged into one table), against the baselines
of the issue's targets, each variant a process of its own:

  plain_luajit     io.lines + gmatch + a table (bench/wordcount_plain.lua)
  plain_c          bench/wordcount_c.c over the mapped file (for reference)
  plain_c_socket   bench/builtins_c.c: the same counter reading the socket
                   examples/wordgen.lua --file serves, as dstream does
  builtin_queue    queueStream under the manual clock, 20 000 lines a batch
                   read with io.lines (time: context made to stop(), reading
                   included, as plain_luajit's includes io.lines)
  builtin_socket   socketTextStream fed by examples/wordgen.lua --file, system
                   clock, batches of --batch-interval (0.1 s); its lines stay
                   in C blocks (time: start() to the end of the batch that
                   brings the last word)

Every variant's words, distinct and checksum must equal plain_luajit's
(exit 2 naming the variant otherwise). stdout: one JSON line per variant,
its best of --repeat N runs (interleaved), with the fields of
bench/wordcount_common.lua plus ratio_to_plain_luajit, ratio_to_plain_c,
ratio_to_plain_c_socket (words/s over theirs) and runs. stderr: progress and
the targets: builtin_socket / plain_c_socket >= 0.5, builtin_queue /
plain_luajit >= 1.5.

    luajit bench/builtins.lua --run queue|socket --input PATH [--expect-words N]
                              [--batch-interval S]

runs one dstream variant (what the driver does for each; run from the
project root with LUA_PATH="lua/?.lua;lua/?/init.lua;bench/?.lua;;" and
LUA_CPATH="build/?.so;;").
]]

local BENCH_DIR = arg[0]:match("^(.-)[^/]*$")
if BENCH_DIR == "" then BENCH_DIR = "./" end
package.path = BENCH_DIR .. "?.lua;" .. package.path

local json = require("json")
local common = require("wordcount_common")

local ROOT = BENCH_DIR .. "../"
local FULL_INPUT = "bench/data/words.txt"
local QUICK_INPUT = "bench/data/words-5m.txt"
local QUICK_BYTES = 5 * 1024 * 1024
local BATCH_LINES = 20000

local OUT_FIELDS = {"bench", "variant", "words", "distinct", "seconds", "words_per_s",
    "ratio_to_plain_luajit", "ratio_to_plain_c", "ratio_to_plain_c_socket", "checksum"}

local function say(...)
    io.stderr:write("builtins: ", string.format(...), "\n")
    io.stderr:flush()
end

local function fail(status, ...)
    say(...)
    os.exit(status)
end

local function quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- The dstream variants (child processes) --------------------------------------

-- The pipeline over lines; on_batch(words) after each batch is merged.
local function word_count(dstream, lines, on_batch)
    local counts = {}
    lines:flatMap(dstream.words):countByValue():foreachRDD(function(rdd)
        local words = 0
        rdd:foreach(function(w, n)
            counts[w] = (counts[w] or 0) + n
            words = words + n
        end)
        on_batch(words)
    end)
    return counts
end

local function run_queue(dstream, opts)
    local started = common.now()
    local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual", name = "builtins_queue"}
    local queue, batches = {}, 0
    local counts = word_count(dstream, ssc:queueStream(queue), function() batches = batches + 1 end)
    ssc:start()
    local batch, n = {}, 0
    for line in io.lines(opts.input) do
        n = n + 1
        batch[n] = line
        if n == BATCH_LINES then
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
    return counts, common.now() - started, {batches = batches, batch_lines = BATCH_LINES}
end

-- Starts examples/wordgen.lua serving input once; returns its pipe, port, pid.
local function start_wordgen(input, timeout)
    local cmd = string.format("luajit %s --port 0 --seconds %d --file %s",
        quote(ROOT .. "examples/wordgen.lua"), math.ceil(timeout) + 5, quote(input))
    local pipe = assert(io.popen(cmd, "r"))
    local line = pipe:read("*l") or ""
    local port, pid = line:match("^listening on [^:]+:(%d+) pid (%d+)")
    if not port then
        pipe:close()
        fail(1, "wordgen did not start: %s", line)
    end
    return pipe, tonumber(port), tonumber(pid)
end

local function run_socket(dstream, opts)
    local timeout = 120
    local pipe, port, pid = start_wordgen(opts.input, timeout)
    local ssc = dstream.StreamingContext{batchInterval = opts.batch_interval, name = "builtins_socket"}
    local expected, total, batches, finished = opts.expect_words, 0, 0, nil
    local counts = word_count(dstream, ssc:socketTextStream("127.0.0.1", port), function(words)
        batches = batches + 1
        total = total + words
        if total >= expected and not finished then
            finished = common.now()
            ssc:stop{graceful = true}
        end
    end)
    -- wordgen closes the connection once the file is sent: that EOF and the
    -- refused reconnects after it are expected.
    ssc:addStreamingListener{onReceiverError = function() end}
    local started = common.now()
    ssc:start()
    if not ssc:awaitTerminationOrTimeout(timeout) then
        ssc:stop()
        os.execute("kill " .. pid .. " 2>/dev/null")
        pipe:close()
        fail(1, "socket: %d of %d words after %d s; giving up", total, expected, timeout)
    end
    pipe:close()
    return counts, finished - started, {batches = batches, batch_interval = opts.batch_interval}
end

local function run_child(opts)
    local dstream = require("dstream")
    local counts, seconds, extra
    if opts.run == "queue" then
        counts, seconds, extra = run_queue(dstream, opts)
    else
        counts, seconds, extra = run_socket(dstream, opts)
    end
    local record = common.result("builtin_" .. opts.run, counts, seconds)
    for k, v in pairs(extra) do record[k] = v end
    io.stdout:write(json.encode(record, common.FIELDS), "\n")
end

-- The driver -------------------------------------------------------------------

local USAGE = [[
usage: luajit bench/builtins.lua [--quick] [--repeat N] [--batch-interval S] [--build-dir DIR] [--no-build]
       luajit bench/builtins.lua --run queue|socket --input PATH [--expect-words N] [--batch-interval S]
]]

local function parse_args(argv)
    local opts = {rounds = 1, build_dir = "build", build = true, batch_interval = 0.1}
    local i = 1
    while i <= #argv do
        local k, v = argv[i], argv[i + 1]
        local used = 1
        if k == "--quick" then
            opts.quick = true
        elseif k == "--no-build" then
            opts.build = false
        elseif k == "--repeat" and tonumber(v) and tonumber(v) >= 1 then
            opts.rounds, used = math.floor(tonumber(v)), 2
        elseif k == "--batch-interval" and tonumber(v) and tonumber(v) > 0 then
            opts.batch_interval, used = tonumber(v), 2
        elseif k == "--build-dir" and v then
            opts.build_dir, used = v, 2
        elseif k == "--run" and (v == "queue" or v == "socket") then
            opts.run, used = v, 2
        elseif k == "--input" and v then
            opts.input, used = v, 2
        elseif k == "--expect-words" and tonumber(v) then
            opts.expect_words, used = tonumber(v), 2
        else
            io.stderr:write(USAGE)
            os.exit(1)
        end
        i = i + used
    end
    if opts.run and (not opts.input or (opts.run == "socket" and not opts.expect_words)) then
        io.stderr:write(USAGE)
        os.exit(1)
    end
    return opts
end

local function run_to_stderr(cmd)
    return os.execute("cd " .. quote(ROOT) .. " && (" .. cmd .. ") 1>&2") == 0
end

local function exists(path)
    local f = io.open(ROOT .. path, "rb")
    if f then f:close() end
    return f ~= nil
end

local function prepare(opts)
    local input = opts.quick and QUICK_INPUT or FULL_INPUT
    if not exists(input) then
        say("generating %s", input)
        local cmd = "luajit bench/gen_text.lua --out " .. quote(input)
        if opts.quick then cmd = cmd .. " --bytes " .. QUICK_BYTES end
        if not run_to_stderr(cmd) then fail(1, "bench/gen_text.lua failed") end
    end
    if opts.build then
        local dir = quote(opts.build_dir)
        local f = io.open(ROOT .. opts.build_dir .. "/CMakeCache.txt", "rb")
        local cache = f and f:read("*a") or ""
        if f then f:close() end
        if not cache:find("\nDS_BUILD_BENCH:BOOL=ON\n", 1, true) then
            if not run_to_stderr("cmake -S . -B " .. dir .. " -DDS_BUILD_BENCH=ON") then fail(1, "cmake configure failed") end
        end
        say("building %s (dstream_core, wordcount_c, builtins_c)", opts.build_dir)
        if not run_to_stderr("cmake --build " .. dir .. " --target dstream_core wordcount_c builtins_c") then
            fail(1, "the build failed (--no-build runs what is built)")
        end
    end
    return input
end

-- Runs cmd from the root; returns the JSON record it printed.
local function record_of(name, cmd)
    local pipe = assert(io.popen("cd " .. quote(ROOT) .. " && (" .. cmd .. "); echo \"builtins-exit $?\""))
    local record, status
    for line in pipe:lines() do
        local code = line:match("^builtins%-exit (%d+)$")
        if code then
            status = tonumber(code)
        elseif line:sub(1, 1) == "{" then
            local ok, r = pcall(json.decode, line)
            if ok and type(r) == "table" and r.bench == "wordcount" then record = r else io.stderr:write(line, "\n") end
        elseif line ~= "" then
            io.stderr:write(line, "\n")
        end
    end
    pipe:close()
    if status ~= 0 or record == nil then fail(1, "%s failed (exit %s): %s", name, tostring(status), cmd) end
    return record
end

local function run_variant(name, opts, input, expect_words)
    local bd = opts.build_dir
    if name == "plain_luajit" then
        return record_of(name, "luajit bench/wordcount_plain.lua " .. quote(input))
    elseif name == "plain_c" then
        return record_of(name, quote(bd .. "/wordcount_c") .. " " .. quote(input))
    elseif name == "plain_c_socket" then
        local pipe, port = start_wordgen(ROOT .. input, 120)
        local r = record_of(name, quote(bd .. "/builtins_c") .. " " .. port)
        pipe:close()
        return r
    end
    local cmd = string.format("LUA_PATH='lua/?.lua;lua/?/init.lua;bench/?.lua;;' LUA_CPATH=%s "
        .. "luajit bench/builtins.lua --run %s --input %s --batch-interval %s",
        quote(bd .. "/?.so;;"), name:match("^builtin_(.*)$"), quote(input), tostring(opts.batch_interval))
    if name == "builtin_socket" then cmd = cmd .. string.format(" --expect-words %d", expect_words) end
    return record_of(name, cmd)
end

local VARIANTS = {"plain_luajit", "plain_c", "plain_c_socket", "builtin_queue", "builtin_socket"}

local function round4(x) return math.floor(x * 1e4 + 0.5) / 1e4 end

local function main(opts)
    local input = prepare(opts)
    local best, runs, expected = {}, {}, nil
    for round = 1, opts.rounds do
        for _, name in ipairs(VARIANTS) do
            say("round %d/%d: %s", round, opts.rounds, name)
            local r = run_variant(name, opts, input, expected and expected.words)
            expected = expected or r
            for _, field in ipairs({"words", "distinct", "checksum"}) do
                if r[field] ~= expected[field] then
                    fail(2, "%s counted differently from plain_luajit: %s %s, expected %s", name, field,
                        tostring(r[field]), tostring(expected[field]))
                end
            end
            say("  %.3f s, %d words/s", r.seconds, r.words_per_s)
            runs[name] = (runs[name] or 0) + 1
            if best[name] == nil or r.seconds < best[name].seconds then best[name] = r end
        end
    end
    local function ratio(r, base)
        return best[base] and r.seconds > 0 and round4(best[base].seconds / r.seconds) or nil
    end
    for _, name in ipairs(VARIANTS) do
        local r = best[name]
        r.variant = name
        r.bench = "builtins"
        r.runs = runs[name]
        r.ratio_to_plain_luajit = ratio(r, "plain_luajit")
        r.ratio_to_plain_c = ratio(r, "plain_c")
        r.ratio_to_plain_c_socket = ratio(r, "plain_c_socket")
        io.stdout:write(json.encode(r, OUT_FIELDS), "\n")
    end
    io.stdout:flush()
    local function target(name, base, want)
        local x = best[name][base]
        say("%-15s %s = %.3f  target >= %.1f: %s", name, base, x, want, x >= want and "met" or "NOT met")
    end
    target("builtin_socket", "ratio_to_plain_c_socket", 0.5)
    target("builtin_queue", "ratio_to_plain_luajit", 1.5)
end

local opts = parse_args(arg)
if opts.run then run_child(opts) else main(opts) end

-- Every example runs for real, briefly, and prints what a user expects.
local files = require("spec.helpers.files")
local tmpdir, read, write = files.tmpdir, files.read, files.write
local function run(cmd)
    local p = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
    local out = p:read("*a")
    p:close()
    return out, tonumber(out:match("exit=(%d+)%s*$"))
end

describe("examples/wordcount.lua", function()
    it("counts words arriving over a socket from the bundled generator and stops by itself", function()
        local out, code = run("bin/dstream run examples/wordcount.lua 2")
        assert.are.equal(0, code, out)
        assert.matches(string.rep("%-", 43) .. "\nTime: %d+ ms\n", out)
        -- the generator's most common word tops at least one batch's counts
        assert.matches("%(the,%d+%)", out)
    end)
end)

-- The running processes whose command line contains `text` and `mark`.
local function processes_with(text, mark)
    local pids = {}
    local p = assert(io.popen("ls /proc"))
    for name in p:lines() do
        local f = name:match("^%d+$") and io.open("/proc/" .. name .. "/cmdline")
        if f then
            local cmdline = (f:read("*a") or ""):gsub("%z", " ")
            f:close()
            if cmdline:find(text, 1, true) and cmdline:find(mark, 1, true) then pids[#pids + 1] = name .. ": " .. cmdline end
        end
    end
    p:close()
    return pids
end

describe("dstream explain", function()
    it("prints the word count's stages without running it", function()
        local out, code = run("bin/dstream explain examples/wordcount.lua 1")
        assert.are.equal(0, code, out)
        assert.matches("stage: #1 flatMap %-> #2 mapToPair %-> #3 reduceByKey %(map%-side combine%)", out)
        assert.not_matches("Time: ", out)
    end)

    for _, example in ipairs({"wordcount", "static_join"}) do
        it("leaves no generator of examples/" .. example .. ".lua running", function()
            -- an unusual duration marks this run's generator: --seconds 99
            local out, code = run("bin/dstream explain examples/" .. example .. ".lua 97")
            assert.are.equal(0, code, out)
            assert.matches("stages after fusion:\n  stage: ", out)
            assert.are.same({}, processes_with("wordgen.lua", "--seconds 99 "), out)
        end)
    end

    it("shows the stage of static_join's chain read by transform, not (none)", function()
        local out, code = run("bin/dstream explain examples/static_join.lua 1")
        assert.are.equal(0, code, out)
        assert.matches("stage: #1 filter %-> #2 mapToPair, reading #0 socketTextStream", out)
        assert.not_matches("%(none", out)
    end)
end)

describe("dstream run", function()
    it("exits non-zero with the error when the script fails", function()
        local script = os.tmpname()
        local f = assert(io.open(script, "w"))
        f:write('local dstream = require "dstream"\n',
            'local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}\n',
            'ssc:queueStream({{1}}):map(function(x) error("bad record " .. x) end):print()\n',
            'ssc:start()\nssc:advance(1)\n')
        f:close()
        local out, code = run("bin/dstream run " .. script)
        os.remove(script)
        assert.are.equal(1, code)
        assert.matches("map", out)
        assert.matches("bad record 1", out)
        assert.matches("1000 ms", out)
    end)
end)




describe("examples/file_etl.lua", function()
    it("writes the revenue per product of the files in the directory, one directory per batch", function()
        local dir = tmpdir()
        os.execute("mkdir -p " .. dir .. "/in")
        write(dir .. "/in/orders.csv", "1,apple,3,0.5\n2,pear,1,2\nnot,an,order\n3,apple,1,0.5\n")
        write(dir .. "/in/notes.txt", "ignored: not a .csv\n")
        local out, code = run(string.format(
            "bin/dstream run examples/file_etl.lua %s/in %s/out/revenue 1.5 --existing", dir, dir))
        assert.are.equal(0, code, out)
        assert.matches("1 malformed line", out)
        local p = io.popen("ls " .. dir .. "/out")
        local written = {}
        for name in p:lines() do written[#written + 1] = name end
        p:close()
        local found
        for _, name in ipairs(written) do
            local part = read(dir .. "/out/" .. name .. "/part-00000")
            assert.is_not_nil(read(dir .. "/out/" .. name .. "/_SUCCESS"))
            if part and part ~= "" then found = part end
        end
        os.execute("rm -rf " .. dir)
        assert.are.equal("(apple,2)\n(pear,2)\n", found)
    end)
end)

describe("examples/static_join.lua", function()
    it("joins the order stream with the catalogue and sums quantities per category", function()
        local out, code = run("bin/dstream run examples/static_join.lua 1")
        assert.are.equal(0, code, out)
        assert.matches("%(fruit,3859%)", out)
        assert.matches("%(unknown,1282%)", out)
        assert.matches("%(vegetable,2575%)", out)
    end)
end)

describe("examples/tail_receiver.lua", function()
    it("counts the log levels of a file's lines through a custom receiver", function()
        local log = os.tmpname()
        write(log, "2026-11-24 INFO started\n2026-11-24 WARN slow\n2026-11-24 INFO done\n")
        local out, code = run("bin/dstream run examples/tail_receiver.lua " .. log .. " 1.5 --from-start")
        os.remove(log)
        assert.are.equal(0, code, out)
        assert.matches("%(INFO,2%)\n%(WARN,1%)", out)
    end)

    -- A writer process appends numbered lines and rotates the log every 100
    -- lines the way logrotate and a reopening writer do: rename the log away,
    -- write a few more lines to the renamed file, then create a new log.
    local WRITER = [[
local ffi = require("ffi")
ffi.cdef("int poll(void *fds, unsigned long n, int timeout);")
local path, n = arg[1], tonumber(arg[2])
local f = assert(io.open(path, "ab"))
f:setvbuf("no")
local rotations = 0
for i = 1, n do
    f:write(string.format("2026-12-07 INFO line %d\n", i))
    if i % 100 == 0 and i < n then
        rotations = rotations + 1
        assert(os.rename(path, path .. "." .. rotations))
    elseif i % 100 == 3 and i > 100 then
        f:close()
        f = assert(io.open(path, "ab"))
        f:setvbuf("no")
    end
    ffi.C.poll(nil, 0, 1)
end
f:close()
]]

    it("reads a log truncated in place (copytruncate) from its start again, with a report", function()
        local dir = tmpdir()
        local log = dir .. "/app.log"
        write(log, "a INFO one\na INFO two\n")
        local Tail = assert(loadfile("examples/tail_receiver.lua"))("--as-module").Tail
        local reports = {}
        local ctx = {reportError = function(_, msg) reports[#reports + 1] = msg end}
        local tail = Tail.new(log, true)
        tail:start(ctx)
        assert.are.same({"a INFO one", "a INFO two"}, tail:poll(ctx, 100))
        write(log, "b INFO x\n") -- truncates, then writes less than was there
        assert.are.same({}, tail:poll(ctx, 100))
        assert.are.same({"b INFO x"}, tail:poll(ctx, 100))
        tail:stop()
        os.execute("rm -rf " .. dir)
        assert.are.equal(1, #reports)
        assert.matches("was truncated; reading it from the beginning", reports[1], 1, true)
    end)

    it("reads every line once while the log is rotated under a running writer", function()
        local dstream = require "dstream"
        local wait = require "spec.helpers.wait"
        local dir = tmpdir()
        local log = dir .. "/app.log"
        write(log, "")
        write(dir .. "/writer.lua", WRITER)
        local Tail = assert(loadfile("examples/tail_receiver.lua"))("--as-module").Tail
        local ssc = dstream.StreamingContext{batchInterval = 0.05, blockInterval = 0.01}
        local seen, total, errors = {}, 0, {}
        ssc:addStreamingListener{onReceiverError = function(e) errors[#errors + 1] = e.message end}
        ssc:receiverStream(Tail.new(log, true)):foreachRDD(function(rdd)
            for _, line in ipairs(rdd:collect()) do
                local i = tonumber(line:match("^2026%-12%-07 INFO line (%d+)$"))
                assert(i, "not a line the writer wrote: " .. line)
                seen[i] = (seen[i] or 0) + 1
                total = total + 1
            end
        end)
        ssc:start()
        local n = 1000
        os.execute(string.format("luajit %s/writer.lua %s %d &", dir, log, n))
        wait.until_done(ssc, function() return total >= n end, 30)
        -- A little longer: a line read twice would show up now.
        ssc:awaitTerminationOrTimeout(0.3)
        ssc:stop()
        os.execute("rm -rf " .. dir)
        local missing, twice = {}, {}
        for i = 1, n do
            if seen[i] == nil then missing[#missing + 1] = i end
            if (seen[i] or 0) > 1 then twice[#twice + 1] = i end
        end
        assert.are.same({}, missing)
        assert.are.same({}, twice)
        assert.are.equal(n, total)
        assert.are.same({}, errors)
    end)
end)

describe("the trade totals examples", function()
    package.path = "examples/?.lua;" .. package.path
    local trades = require "trades"
    local dstream = require "dstream"

    local function hourly_totals(example, batches)
        local M = assert(loadfile("examples/" .. example .. ".lua"))("--as-module")
        local ssc = dstream.StreamingContext{batchInterval = M.batchInterval, clock = "manual"}
        local out = {}
        local queue = {unpack(batches)} -- queueStream takes the entries off its queue
        M.totals(ssc:queueStream(queue):mapToPair(trades.parse)):foreachRDD(function(rdd, t)
            local totals = {}
            rdd:foreach(function(product, total) totals[product] = total end)
            out[#out + 1] = {t = t, totals = totals}
        end)
        ssc:start()
        ssc:advance(#batches)
        ssc:stop()
        return out
    end

    it("both give, every hour, the direct recomputation of each product's last 24 hours", function()
        -- 27 hours of one-minute batches: the window fills, then slides.
        local batches = trades.batches{n_batches = 27 * 60, per_batch = 12, products = 15, seed = 9}
        local by_window = hourly_totals("trade_totals_window", batches)
        local by_state = hourly_totals("trade_totals_state", batches)
        assert.are.equal(27, #by_window)
        assert.are.equal(27, #by_state)
        for h = 1, 27 do
            local expected = trades.direct_totals(batches, h * 60, 24 * 60)
            assert.are.equal(h * 3600000, by_window[h].t)
            assert.are.same(expected, by_window[h].totals, "window, hour " .. h)
            assert.are.same(expected, by_state[h].totals, "state, hour " .. h)
        end
    end)
end)

describe("examples/sessionize.lua", function()
    it("closes each session exactly 30 minutes after its last click, as a direct sessionization does", function()
        local dstream = require "dstream"
        local M = assert(loadfile("examples/sessionize.lua"))("--as-module")
        local batches = M.clicks(240, 10, 3)
        -- Direct: per user, sessions split by gaps of 30 minutes or more.
        local expected, open = {}, {}
        for m, batch in ipairs(batches) do
            for user, s in pairs(open) do
                if m - s.last >= 30 then
                    expected[#expected + 1] = string.format("%d %s %d-%d %d", m, user, s.first, s.last, s.clicks)
                    open[user] = nil
                end
            end
            for _, line in ipairs(batch) do
                local user = line:match("^(%S+)")
                local s = open[user] or {first = m, clicks = 0}
                s.last, s.clicks = m, s.clicks + 1
                open[user] = s
            end
        end
        local ssc = dstream.StreamingContext{batchInterval = M.batchInterval, clock = "manual"}
        local got = {}
        M.sessions(ssc:queueStream(batches)):foreachRDD(function(rdd, t)
            rdd:foreach(function(session)
                local s = session[2]
                got[#got + 1] = string.format("%d %s %d-%d %d", t / 60000, session[1], s[1] / 60000, s[2] / 60000, s[3])
            end)
        end)
        ssc:start()
        ssc:advance(#batches)
        table.sort(expected)
        table.sort(got)
        assert.is_true(#expected >= 5)
        assert.are.same(expected, got)
    end)
end)

describe("examples/kafka_wordcount.lua", function()
    it("counts the words of a topic and writes each word's running total to another topic", function()
        -- The test broker (librdkafka's mock cluster, spec/helpers/kafka.lua) stands in for Kafka.
        local K = require("spec.helpers.kafka")
        local broker = K.start_broker{"lines:2", "totals:1"}
        local input, output = K.topic(broker, "lines", 2), K.topic(broker, "totals", 1)
        K.produce(broker.brokers, input, {"to be or not to be", "to do"})
        local out, code = run(string.format("bin/dstream run examples/kafka_wordcount.lua %s %s %s 2",
            broker.brokers, input, output))
        local latest = {}
        for _, m in ipairs(K.read(broker.brokers, output)) do latest[m[3]] = m[4] end
        broker:stop()
        assert.are.equal(0, code, out)
        assert.matches("%(to,3%)", out)
        assert.are.same({to = "3", be = "2", ["or"] = "1", ["not"] = "1", ["do"] = "1"}, latest)
    end)
end)

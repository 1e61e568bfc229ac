-- ssc:socketTextStream against real TCP servers (examples/wordgen.lua run by
-- spec/helpers/line_server.lua) under the system clock. Each spec stops the
-- context itself once it has seen what it expects (from foreachRDD or a
-- listener); awaitTerminationOrTimeout(10) only bounds a broken spec.
local dstream = require("dstream")
local line_server = require("spec.helpers.line_server")
local wait = require("spec.helpers.wait")

local BATCH = 0.05

local ffi = require("ffi")
pcall(ffi.cdef, "int poll(void *fds, unsigned long nfds, int timeout);")
-- Blocks the driver: no I/O, no batch.
local function sleep(seconds)
    ffi.C.poll(nil, 0, math.floor(seconds * 1000))
end

local function context()
    return dstream.StreamingContext{batchInterval = BATCH}
end

-- Runs a socketTextStream of server until `want` records arrived (or 10 s);
-- returns every record in arrival order, the batches (arrays) that held
-- them, and the receiver errors reported.
local function receive(host, port, want, opts)
    local ssc = context()
    local got, batches, errors = {}, {}, {}
    ssc:addStreamingListener{onReceiverError = function(err) errors[#errors + 1] = err end}
    ssc:socketTextStream(host, port, opts):foreachRDD(function(rdd)
        local records = rdd:collect()
        batches[#batches + 1] = records
        for _, r in ipairs(records) do got[#got + 1] = r end
        if #got >= want then ssc:stop() end
    end)
    ssc:start()
    local stopped = ssc:awaitTerminationOrTimeout(10)
    ssc:stop()
    return got, batches, errors, stopped
end

-- Calls fn, which must raise an error holding text (plain); returns the error.
local function raises(fn, text)
    local ok, err = pcall(fn)
    assert.is_false(ok, "did not raise: " .. text)
    assert.matches(text, tostring(err), 1, true)
    return err
end

local function source_of(port)
    return "socketTextStream(127.0.0.1:" .. port .. ")"
end

describe("ssc:socketTextStream", function()
    it("delivers every line a server sends, exactly and in order, across batches", function()
        local lines = {}
        for i = 1, 5000 do lines[i] = string.format("line %d of the stream", i) end
        local server = line_server.start{lines = lines}
        local got, batches, _, stopped = receive(server.host, server.port, #lines)
        assert.is_true(stopped)
        assert.are.same(lines, got)
        local total = 0
        for _, b in ipairs(batches) do total = total + #b end
        assert.are.equal(#lines, total)
        assert.are.equal(0, (server:close()))
    end)

    it("cuts lines at \\n and \\r\\n and keeps NUL bytes and empty lines", function()
        local server = line_server.start{data = "one\r\ntwo\0three\n\n\0\nfour\r\n"}
        local got, _, _, stopped = receive(server.host, server.port, 5)
        assert.is_true(stopped)
        assert.are.same({"one", "two\0three", "", "\0", "four"}, got)
        server:close()
    end)

    it("delivers the final line even without a trailing newline", function()
        local server = line_server.start{data = "first\nsecond\nno newline at the end"}
        local got, _, errors, stopped = receive(server.host, server.port, 3)
        assert.is_true(stopped)
        assert.are.same({"first", "second", "no newline at the end"}, got)
        server:close()
        -- The server closing the connection is reported, naming the source.
        for _, err in ipairs(errors) do
            assert.are.equal(source_of(server.port), err.source)
        end
    end)

    it("reports a refused connection and keeps retrying while batches keep running", function()
        local port = line_server.free_port()
        local ssc = context()
        local errors, batches, records = {}, 0, 0
        ssc:addStreamingListener{
            onReceiverError = function(err) errors[#errors + 1] = err end,
            onBatchCompleted = function(info)
                batches = batches + 1
                records = records + info.numRecords
                if #errors >= 2 and batches >= 2 then ssc:stop() end
            end,
        }
        ssc:socketTextStream("127.0.0.1", port):foreachRDD(function() end)
        ssc:start()
        assert.is_true(ssc:awaitTerminationOrTimeout(10))
        assert.is_true(#errors >= 2, "reports: " .. #errors)
        for _, err in ipairs(errors) do
            assert.are.equal(source_of(port), err.source)
            assert.matches("ECONNREFUSED", err.message, 1, true)
            assert.are.equal("number", type(err.time))
        end
        assert.is_true(batches >= 2)
        assert.are.equal(0, records)
    end)

    it("reports a reset connection and delivers every line sent before the reset", function()
        local lines = {}
        for i = 1, 300 do lines[i] = "before reset " .. i end
        local server = line_server.start{lines = lines, mode = "reset"}
        local ssc = context()
        local got, resets = {}, {}
        local function done()
            if #got >= #lines and #resets >= 1 then ssc:stop() end
        end
        ssc:addStreamingListener{onReceiverError = function(err)
            if err.message:find("ECONNRESET", 1, true) then
                resets[#resets + 1] = err
                done()
            end
        end}
        ssc:socketTextStream(server.host, server.port):foreachRDD(function(rdd)
            for _, r in ipairs(rdd:collect()) do got[#got + 1] = r end
            done()
        end)
        ssc:start()
        assert.is_true(ssc:awaitTerminationOrTimeout(10))
        assert.are.same(lines, got)
        assert.are.equal(source_of(server.port), resets[1].source)
        server:close()
    end)

    it("skips a line longer than maxLineBytes, reports it and keeps reading the connection", function()
        local data = "short\n" .. ("x"):rep(100) .. "\nnext\r\nlast\n"
        local server = line_server.start{data = data, mode = "hold"}
        local got, _, errors, stopped = receive(server.host, server.port, 3, {maxLineBytes = 10})
        assert.is_true(stopped)
        assert.are.same({"short", "next", "last"}, got)
        local skipped = {}
        for _, err in ipairs(errors) do
            if err.message:find("skipped", 1, true) then skipped[#skipped + 1] = err end
        end
        assert.are.equal(1, #skipped)
        assert.are.equal(source_of(server.port), skipped[1].source)
        assert.matches("maxLineBytes 10", skipped[1].message, 1, true)
        server:close()
    end)

    it("processes every line already received when stopped gracefully", function()
        local lines = {}
        for i = 1, 2000 do lines[i] = "graceful " .. i end
        local server = line_server.start{lines = lines}
        -- A long batch interval: the lines are in before a batch takes them.
        local ssc = dstream.StreamingContext{batchInterval = 1}
        local got, eof = {}, false
        ssc:addStreamingListener{onReceiverError = function(err)
            if err.message:find("EEOF", 1, true) then eof = true end
        end}
        ssc:socketTextStream(server.host, server.port):foreachRDD(function(rdd)
            for _, r in ipairs(rdd:collect()) do got[#got + 1] = r end
        end)
        ssc:start()
        -- The server closed the connection once it had sent everything.
        assert.is_true(wait.until_done(ssc, function() return eof end))
        ssc:stop{graceful = true}
        assert.are.same(lines, got)
        assert.is_true(ssc:awaitTerminationOrTimeout(0))
        server:close()
    end)

    it("keeps a last line cut off by the connection's end as a record and reports its length", function()
        local server = line_server.start{data = "whole\nhalf"}
        local got, _, errors, stopped = receive(server.host, server.port, 2)
        assert.is_true(stopped)
        assert.are.same({"whole", "half"}, got)
        local cut
        for _, err in ipairs(errors) do
            if err.message:find("ETRUNCATED", 1, true) then cut = err end
        end
        assert.is_truthy(cut, "no report of the unfinished line")
        assert.are.equal(source_of(server.port), cut.source)
        assert.matches("its 4 bytes were kept as a record", cut.message, 1, true)
        server:close()
    end)

    it("processes, on a graceful stop, the lines still waiting in the socket, windowed outputs too", function()
        -- 200 lines over about a second, then the connection stays open.
        local server = line_server.spawn{"--port", "0", "--rate", "200", "--lines", "200",
            "--lines-then-hold", "--connections", "1", "--seconds", "10", "--seed", "7"}
        local ssc = context()
        local got, windowed, resets = 0, 0, 0
        ssc:addStreamingListener{onReceiverError = function(err)
            if err.message:find("ECONNRESET", 1, true) then resets = resets + 1 end
        end}
        local lines = ssc:socketTextStream(server.host, server.port)
        lines:foreachRDD(function(rdd) got = got + rdd:count() end)
        lines:window(1, 1):count():foreachRDD(function(rdd) windowed = windowed + rdd:first() end)
        ssc:start()
        assert.is_true(wait.until_done(ssc, function() return got > 0 end))
        -- The driver does not read for a while: the other lines arrive in the
        -- kernel's buffer, unread, and the window's slide is not over.
        sleep(1.5)
        ssc:stop{graceful = true}
        assert.are.equal(200, got)
        assert.are.equal(200, windowed)
        assert.are.equal(0, resets)
        server:close()
    end)

    it("keeps reading while batches run late, spreading the lines over the batches", function()
        -- 1000 lines over half a second; each batch takes two intervals.
        local server = line_server.spawn{"--port", "0", "--rate", "2000", "--lines", "1000",
            "--connections", "1", "--seconds", "10", "--seed", "7"}
        local ssc = context()
        local got, nonempty, started = 0, 0, wait.now()
        ssc:socketTextStream(server.host, server.port):foreachRDD(function(rdd)
            local n = rdd:count()
            got = got + n
            if n > 0 then nonempty = nonempty + 1 end
            sleep(2 * BATCH)
            if got >= 1000 or wait.now() - started > 5 then ssc:stop() end
        end)
        ssc:start()
        assert.is_true(ssc:awaitTerminationOrTimeout(10))
        assert.are.equal(1000, got)
        assert.is_true(nonempty >= 3, "lines came in " .. nonempty .. " batch(es)")
        server:close()
    end)

    it("says how many received lines an ungraceful stop dropped", function()
        local server = line_server.start{lines = {"one", "two", "three"}, mode = "hold"}
        -- Batch times are multiples of the interval: the first one is almost
        -- surely more than the 2 s below away.
        local ssc = dstream.StreamingContext{batchInterval = 3600}
        local dropped, processed = nil, 0
        ssc:addStreamingListener{onReceiverError = function(err)
            if err.message:find("dropped", 1, true) then dropped = err end
        end}
        ssc:socketTextStream(server.host, server.port):foreachRDD(function(rdd)
            processed = processed + rdd:count()
        end)
        ssc:start()
        -- Time for the lines to arrive (a slow machine only makes the count smaller).
        wait.until_done(ssc, function() return false end, 2)
        ssc:stop()
        assert.is_truthy(dropped, "no report of the dropped lines")
        assert.are.equal(source_of(server.port), dropped.source)
        assert.matches(string.format("stopped without finishing: %d records received and not processed "
            .. "were dropped", 3 - processed), dropped.message, 1, true)
        server:close()
    end)

    it("raises at the call on a bad host or port", function()
        local ssc = context()
        for _, port in ipairs({0, 70000, -1, 1.5}) do
            local ok, err = pcall(ssc.socketTextStream, ssc, "127.0.0.1", port)
            assert.is_false(ok)
            assert.matches("socketTextStream: argument #2 (port) must be a whole number from 1 to 65535, got "
                .. tostring(port), err, 1, true)
        end
        raises(function() ssc:socketTextStream("127.0.0.1", "x") end,
            "socketTextStream: argument #2 (port) must be a whole number from 1 to 65535, got x")
        raises(function() ssc:socketTextStream(nil, 9999) end,
            "socketTextStream: argument #1 (host) must be a non-empty string")
        raises(function() ssc:socketTextStream("", 9999) end,
            "socketTextStream: argument #1 (host) must be a non-empty string")
        ssc:stop()
    end)

    it("raises at the call on an unknown option, listing the allowed ones", function()
        local ssc = context()
        local ok, err = pcall(function() ssc:socketTextStream("127.0.0.1", 9999, {maxLine = 10}) end)
        assert.is_false(ok)
        assert.matches("socketTextStream: unknown option \"maxLine\" (allowed: ", err, 1, true)
        assert.matches("maxLineBytes", err, 1, true)
        raises(function() ssc:socketTextStream("127.0.0.1", 9999, {maxLineBytes = 0}) end,
            "socketTextStream: maxLineBytes must be a positive number of bytes")
        ssc:stop()
    end)

    it("names the line of the script that made a bad call", function()
        local ssc = context()
        local err = raises(function() ssc:socketTextStream("127.0.0.1", 0) end, "argument #2 (port)")
        assert.matches("^[^:]*socket_spec%.lua:%d+: socketTextStream:", err)
        err = raises(function() ssc:socketTextStream("127.0.0.1", 9999, {maxLine = 10}) end, "unknown option")
        assert.matches("^[^:]*socket_spec%.lua:%d+: socketTextStream:", err)
        ssc:stop()
    end)
end)

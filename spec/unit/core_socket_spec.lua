-- The socket receiver of dstream.core against real TCP servers (wordgen, via
-- spec/helpers/line_server.lua): what socketTextStream builds on. The loop
-- runs until a condition holds; the 10 s limit only stops a broken spec.
local core = require("dstream.core")
local line_server = require("spec.helpers.line_server")

-- Run the engine's loop until done() is true; fail if it never is.
local function pump(e, done, what)
    local deadline = os.time() + 10
    while not done() do
        if os.time() > deadline then error("timed out waiting for " .. what, 2) end
        e:run(20)
    end
end

local function engine()
    return assert(core.engine_new{batch = 1000, manual = false})
end

-- Close the socket, run the loop until its handles are closed, close the engine.
local function shut(e, sock)
    sock:close()
    pump(e, function() return sock:closed() end, "the socket to close")
    assert.is_true(e:close())
end

local function peer(port)
    return "127.0.0.1:" .. port
end

describe("core.socket_new", function()
    it("raises on bad arguments", function()
        local e = engine()
        assert.has_error(function() core.socket_new({}, "127.0.0.1", 9) end)
        assert.has_error(function() core.socket_new(e, "", 9) end,
            "bad argument #2 to 'socket_new' (host must not be empty)")
        for _, port in ipairs({0, 65536, 1.5, -1}) do
            assert.has_error(function() core.socket_new(e, "127.0.0.1", port) end,
                "bad argument #3 to 'socket_new' (port must be an integer from 1 to 65535)")
        end
        assert.has_error(function() core.socket_new(e, "127.0.0.1", 9, {maxLine = 10}) end,
            "bad argument #4 to 'socket_new' (unknown option maxLine (allowed: maxLineBytes, "
            .. "blockInterval, backoffInitial, backoffMax, wal, walStream, maxRate, rateBurst, "
            .. "maxPendingRecords))")
        assert.has_error(function() core.socket_new(e, "127.0.0.1", 9, {maxLineBytes = 0}) end)
        assert.has_error(function() core.socket_new(e, "127.0.0.1", 9, {blockInterval = "x"}) end)
        assert.has_error(function()
            core.socket_new(e, "127.0.0.1", 9, {backoffInitial = 500, backoffMax = 100})
        end, "bad argument #4 to 'socket_new' (opts.backoffInitial must not exceed opts.backoffMax)")
        assert.is_true(e:close())
    end)

    it("makes a socket that does nothing until started", function()
        local e = engine()
        local sock = core.socket_new(e, "127.0.0.1", 9)
        assert.are.equal("dstream.socket (not connected)", tostring(sock))
        local lines, n = sock:take()
        assert.are.same({}, lines)
        assert.are.equal(0, n)
        assert.are.same({}, sock:errors())
        local st = sock:stats()
        assert.are.equal(0, st.records)
        assert.are.equal(0, st.connects)
        assert.is_false(st.connected)
        shut(e, sock)
    end)
end)

describe("socket:take", function()
    it("returns lines cut at \\n and \\r\\n, NUL bytes and the unfinished last line kept", function()
        local server = line_server.start{data = "a\nb\r\nc\0d\n\nlast"}
        local e = engine()
        local sock = core.socket_new(e, server.host, server.port, {backoffInitial = 50})
        assert.is_true(sock:start())
        pump(e, function() return sock:stats().records >= 5 end, "5 lines")
        local lines, n = sock:take()
        assert.are.same({"a", "b", "c\0d", "", "last"}, lines)
        assert.are.equal(5, n)
        local lines2, n2 = sock:take()
        assert.are.same({}, lines2)
        assert.are.equal(0, n2)
        local st = sock:stats()
        assert.are.equal(14, st.bytes)
        assert.are.equal(1, st.connects)
        local errs = sock:errors()
        assert.are.equal("EEOF", errs[1].code)
        assert.are.equal("EEOF: connection closed by " .. peer(server.port), errs[1].message)
        assert.is_true(math.abs(errs[1].time - os.time() * 1000) < 60000)
        shut(e, sock)
        assert.are.equal(0, server:close())
    end)

    it("hands over lines sealed by the block interval and by take alike", function()
        local lines = {}
        for i = 1, 2000 do lines[i] = "line " .. i end
        local server = line_server.start{lines = lines, mode = "hold"}
        local e = engine()
        local sock = core.socket_new(e, server.host, server.port, {blockInterval = 1})
        assert.is_true(sock:start())
        local got = {}
        pump(e, function()
            local arr, n = sock:take()
            for i = 1, n do got[#got + 1] = arr[i] end
            return #got >= 2000
        end, "2000 lines")
        assert.are.same(lines, got)
        shut(e, sock)
        server:close()
    end)
end)

describe("socket:take with maxPendingRecords", function()
    -- A producer much faster than the taker: 100 000 numbered lines, sent
    -- as fast as TCP takes them.
    local function numbered(n)
        local lines = {}
        for i = 1, n do lines[i] = "line " .. i end
        return lines
    end

    it("never hands over more than the cap, and loses nothing, in order", function()
        local lines = numbered(100000)
        local server = line_server.start{lines = lines, mode = "hold"}
        local e = engine()
        local sock = core.socket_new(e, server.host, server.port, {blockInterval = 5, maxPendingRecords = 3000})
        assert.is_true(sock:start())
        local got, largest, takes = {}, 0, 0
        pump(e, function()
            local arr, n = sock:take()
            takes = takes + 1
            if n > largest then largest = n end
            for i = 1, n do got[#got + 1] = arr[i] end
            return #got >= #lines
        end, "100000 lines")
        assert.is_true(largest <= 3000, "a take handed over " .. largest .. " records")
        assert.are.equal(#lines, #got)
        for i = 1, #lines do
            if got[i] ~= lines[i] then assert.are.equal(lines[i], got[i], "line " .. i) end
        end
        assert.is_true(sock:stats().capped > 0, "reading never stopped for the cap")
        shut(e, sock)
        server:close()
    end)

    it("stops reading at the cap and reads on once a take makes room, takes back to back included", function()
        local lines = numbered(100000)
        local server = line_server.start{lines = lines, mode = "hold"}
        local e = engine()
        local sock = core.socket_new(e, server.host, server.port, {maxPendingRecords = 1000})
        assert.is_true(sock:start())
        pump(e, function() return sock:stats().capped >= 1 end, "reading to stop at the cap")
        -- Running the loop longer reads nothing more: the cap holds.
        for _ = 1, 5 do e:run(10) end
        assert.are.equal(1000, sock:stats().records)
        assert.is_true(sock:stats().held_bytes > 0)
        local got = {}
        local function take()
            local arr, n = sock:take()
            for i = 1, n do got[#got + 1] = arr[i] end
            return n
        end
        assert.are.equal(1000, take())
        -- No loop run between these takes: each still finds what was held
        -- back and what the kernel holds, up to the cap.
        local n2 = take()
        assert.is_true(n2 > 0 and n2 <= 1000, "second take: " .. n2)
        local n3 = take()
        assert.is_true(n3 > 0 and n3 <= 1000, "third take: " .. n3)
        pump(e, function()
            local n = take()
            assert.is_true(n <= 1000)
            return #got >= #lines
        end, "every line")
        assert.are.same(lines, got)
        shut(e, sock)
        server:close()
    end)

    it("keeps the rate limit when a take reads", function()
        local lines = numbered(20000)
        local server = line_server.start{lines = lines, mode = "hold"}
        local e = engine()
        local sock = core.socket_new(e, server.host, server.port, {maxPendingRecords = 100000, maxRate = 1000,
            rateBurst = 1000})
        assert.is_true(sock:start())
        pump(e, function() return sock:stats().throttles >= 1 end, "the rate to stop reading")
        local _, n = sock:take()
        local _, n2 = sock:take()
        assert.is_true(n <= 1000, "first take: " .. n)
        assert.are.equal(0, n2)
        shut(e, sock)
        server:close()
    end)
end)

describe("socket:errors", function()
    it("reports an oversize line, counts it, and the connection carries on", function()
        local server = line_server.start{data = "short\n" .. ("x"):rep(100) .. "\nnext\r\n", mode = "hold"}
        local e = engine()
        local sock = core.socket_new(e, server.host, server.port, {maxLineBytes = 10})
        assert.is_true(sock:start())
        pump(e, function() return sock:stats().records >= 2 end, "2 lines")
        assert.are.same({"short", "next"}, (sock:take()))
        local st = sock:stats()
        assert.are.equal(1, st.skipped)
        assert.is_true(st.connected)
        local errs = sock:errors()
        assert.are.equal(1, #errs)
        assert.are.equal("ETOOLONG", errs[1].code)
        assert.matches("^ETOOLONG: line of %d+%+ bytes skipped %(maxLineBytes 10%) from "
            .. peer(server.port):gsub("%.", "%%.") .. "$", errs[1].message)
        assert.are.same({}, sock:errors())
        shut(e, sock)
        server:close()
    end)

    it("reports a refused connection and keeps retrying", function()
        local port = line_server.free_port()
        local e = engine()
        local sock = core.socket_new(e, "127.0.0.1", port, {backoffInitial = 5, backoffMax = 10})
        assert.is_true(sock:start())
        pump(e, function() return sock:stats().errors >= 3 end, "3 refusals")
        local errs = sock:errors()
        assert.is_true(#errs >= 3)
        for _, err in ipairs(errs) do
            assert.are.equal("ECONNREFUSED", err.code)
            assert.are.equal("ECONNREFUSED: connection refused by " .. peer(port), err.message)
        end
        local st = sock:stats()
        assert.are.equal(0, st.connects)
        assert.is_false(st.connected)
        assert.are.equal(10, st.backoff)
        shut(e, sock)
    end)

    it("reports a reset connection, keeps the lines before it and reconnects", function()
        local server = line_server.start{data = "a\nb\npart", mode = "reset", connections = 2}
        local e = engine()
        local sock = core.socket_new(e, server.host, server.port, {backoffInitial = 5})
        assert.is_true(sock:start())
        pump(e, function() return sock:stats().records >= 6 end, "two connections' lines")
        assert.are.same({"a", "b", "part", "a", "b", "part"}, (sock:take()))
        -- Each reset, then its cut last line ("part"), kept and reported.
        local errs = sock:errors()
        for i = 1, 4, 2 do
            assert.are.equal("ECONNRESET", errs[i].code)
            assert.are.equal("ECONNRESET: connection reset by " .. peer(server.port), errs[i].message)
            assert.are.equal("ETRUNCATED", errs[i + 1].code)
            assert.matches("its 4 bytes were kept as a record", errs[i + 1].message, 1, true)
        end
        assert.are.equal(2, sock:stats().connects)
        assert.are.equal(2, sock:stats().truncated)
        shut(e, sock)
        server:close()
    end)
end)

describe("socket:stop", function()
    it("closes the connection and keeps the lines received, the last one included", function()
        local server = line_server.start{data = "x\npartial", mode = "hold"}
        local e = engine()
        local sock = core.socket_new(e, server.host, server.port)
        assert.is_true(sock:start())
        pump(e, function() return sock:stats().bytes >= 9 end, "9 bytes")
        sock:stop()
        assert.is_false(sock:stats().connected)
        assert.are.same({"x", "partial"}, (sock:take()))
        local ok, msg, code = sock:start()
        assert.is_nil(ok)
        assert.are.equal("ESTATE", code)
        assert.are.equal("ESTATE: operation not allowed in this state (socket already started)", msg)
        shut(e, sock)
        server:close()
    end)
end)

describe("socket:close", function()
    it("is idempotent, and a closed socket still hands over its lines", function()
        local server = line_server.start{data = "one\ntwo\n", mode = "hold"}
        local e = engine()
        local sock = core.socket_new(e, server.host, server.port)
        assert.is_true(sock:start())
        pump(e, function() return sock:stats().records >= 2 end, "2 lines")
        sock:close()
        sock:close()
        assert.are.equal("dstream.socket (closed)", tostring(sock))
        local _, _, code = sock:start()
        assert.are.equal("ECLOSED", code)
        pump(e, function() return sock:closed() end, "the socket to close")
        assert.are.same({"one", "two"}, (sock:take()))
        assert.is_true(e:close())
        server:close()
    end)

    it("lets a collected socket finish closing when the loop runs", function()
        local server = line_server.start{data = "one\n", mode = "hold"}
        local e = engine()
        local sock = core.socket_new(e, server.host, server.port)
        assert.is_true(sock:start())
        pump(e, function() return sock:stats().records >= 1 end, "1 line")
        sock = nil -- luacheck: ignore
        collectgarbage()
        collectgarbage()
        local closed
        pump(e, function()
            closed = e:close()
            return closed
        end, "the engine to close")
        assert.is_true(closed)
        server:close()
    end)
end)

-- The write-ahead log of dstream.core (core/src/wal.c, lua/src/wal.c) in a
-- real directory, and the socket receiver writing into it over real TCP
-- (wordgen, via spec/helpers/line_server.lua). The loop runs until a
-- condition holds; the 10 s limit only stops a broken spec.
local core = require("dstream.core")
local ffi = require("ffi")
local files = require("spec.helpers.files")
local line_server = require("spec.helpers.line_server")

local function segments(dir)
    local names = assert(core.fs_list(dir))
    local out = {}
    for _, name in ipairs(names) do
        if name:match("^wal%-%d+%.log$") then out[#out + 1] = name end
    end
    return out
end

local function records(...)
    return core.encode({...}, select("#", ...))
end

-- The file's bytes with byte i (1-based) xor'ed with mask.
local function flip(path, i, mask)
    local s = files.read(path)
    local f = assert(io.open(path, "wb"))
    f:write(s:sub(1, i - 1), string.char(bit.bxor(s:byte(i), mask)), s:sub(i + 1))
    f:close()
end

local function truncate(path, len)
    local s = files.read(path)
    local f = assert(io.open(path, "wb"))
    f:write(s:sub(1, len))
    f:close()
end

describe("core.wal_open", function()
    it("makes the directory and starts at seq 0", function()
        local dir = files.tmpdir() .. "/ckpt/wal"
        local wal = assert(core.wal_open(dir))
        assert.are.equal(0, wal:last_seq())
        assert.are.same({"wal-0000000000000001.log"}, segments(dir))
        assert.are.same({}, wal:warnings())
        assert.are.equal("dstream.wal (last seq 0)", tostring(wal))
        wal:close()
        wal:close()
        assert.are.equal("dstream.wal (closed)", tostring(wal))
    end)

    it("raises on bad arguments and fails on a directory it cannot make", function()
        assert.has_error(function() core.wal_open() end)
        assert.has_error(function() core.wal_open(files.tmpdir(), {segment = 1}) end,
            "bad argument #2 to 'wal_open' (unknown option segment (allowed: segmentBytes))")
        assert.has_error(function() core.wal_open(files.tmpdir(), {segmentBytes = 0}) end,
            "bad argument #2 to 'wal_open' (opts.segmentBytes must be an integer from 1 to 2^40)")
        local file = files.tmpdir() .. "/file"
        files.write(file, "x")
        local wal, err, code = core.wal_open(file .. "/wal")
        assert.is_nil(wal)
        assert.are.equal("EIO", code)
        assert.matches(file, err, 1, true)
    end)
end)

describe("wal:append and wal:replay", function()
    it("gives back each stream's blocks, decoded, one partition per block", function()
        local wal = assert(core.wal_open(files.tmpdir()))
        assert.are.equal(1, wal:append(7, records("a", 1, {x = true})))
        assert.are.equal(2, wal:append(8, records("other")))
        assert.are.equal(3, wal:append(7, records("b\0c", 2.5)))
        assert.are.equal(4, wal:append(7, records()))
        assert.are.equal(4, wal:last_seq())
        local arr, n, ends, last = wal:replay(7, 0)
        assert.are.same({"a", 1, {x = true}, "b\0c", 2.5}, arr)
        assert.are.equal(5, n)
        assert.are.same({3, 5, 5}, ends)
        assert.are.equal(4, last)
        arr, n, ends, last = wal:replay(7, 1, 3)
        assert.are.same({"b\0c", 2.5}, arr)
        assert.are.same({2, {2}, 3}, {n, ends, last})
        arr, n, ends, last = wal:replay(7, 4)
        assert.are.same({{}, 0, {0}, 4}, {arr, n, ends, last})
        arr, n, ends, last = wal:replay(9, 0)
        assert.are.same({{}, 0, {0}, 0}, {arr, n, ends, last})
        wal:close()
    end)

    it("refuses what is not a codec block, and fails once closed", function()
        local wal = assert(core.wal_open(files.tmpdir()))
        local none, err, code = wal:append(1, "not a frame")
        assert.is_nil(none)
        assert.are.equal("ECORRUPT", code)
        assert.matches("^ECORRUPT: appending to the WAL in .*: codec block: ", err)
        none, err, code = wal:append(1, core.encode({"k"}, 1, {"v"}))
        assert.are.same({nil, "EINVAL"}, {none, code})
        assert.matches("pairs frame", err, 1, true)
        assert.has_error(function() wal:append(-1, records("x")) end,
            "bad argument #1 to 'append' (stream must be an integer >= 0)")
        assert.are.equal(0, wal:last_seq())
        wal:close()
        none, err, code = wal:append(1, records("x"))
        assert.are.same({nil, "ECLOSED"}, {none, code})
        assert.matches("is closed", err, 1, true)
        none, err, code = wal:replay(1, 0)
        assert.are.same({nil, "ECLOSED"}, {none, code})
        assert.matches("is closed", err, 1, true)
    end)

    it("finds every block again after a reopen, and seqs go on from there", function()
        local dir = files.tmpdir()
        local wal = assert(core.wal_open(dir, {segmentBytes = 100}))
        for i = 1, 10 do assert.are.equal(i, wal:append(i % 2, records("r" .. i))) end
        wal:close()
        assert.is_true(#segments(dir) > 1)
        wal = assert(core.wal_open(dir, {segmentBytes = 100}))
        assert.are.equal(10, wal:last_seq())
        assert.are.same({}, wal:warnings())
        local arr = wal:replay(1, 0)
        assert.are.same({"r1", "r3", "r5", "r7", "r9"}, arr)
        assert.are.equal(11, wal:append(1, records("r11")))
        wal:close()
    end)
end)

describe("wal:release", function()
    it("deletes the segments a checkpoint covers, never the newest, and keeps the seq", function()
        local dir = files.tmpdir()
        local wal = assert(core.wal_open(dir, {segmentBytes = 60}))
        for i = 1, 6 do wal:append(0, records("block " .. i)) end
        local before = segments(dir)
        assert.are.equal(6, #before) -- one block of ~40 bytes per segment
        assert.are.equal(0, wal:release(0))
        assert.are.equal(2, wal:release(2))
        assert.are.same({"block 3", "block 4", "block 5", "block 6"}, (wal:replay(0, 0)))
        assert.are.equal(3, wal:release(6))
        assert.are.same({"wal-0000000000000006.log"}, segments(dir))
        wal:close()
        wal = assert(core.wal_open(dir, {segmentBytes = 60}))
        assert.are.equal(6, wal:last_seq())
        assert.are.equal(7, wal:append(0, records("block 7")))
        assert.are.same({"block 7"}, (wal:replay(0, 6)))
        wal:close()
    end)
end)

describe("wal:warnings", function()
    it("reports a torn tail, cut at the last good frame, and goes on from there", function()
        local dir = files.tmpdir()
        local wal = assert(core.wal_open(dir))
        wal:append(0, records("kept"))
        wal:append(0, records("torn"))
        wal:close()
        local path = dir .. "/wal-0000000000000001.log"
        local size = #files.read(path)
        truncate(path, size - 5)
        wal = assert(core.wal_open(dir))
        local first = size / 2 -- both frames have the same size
        assert.are.same({path .. ": torn tail cut at byte " .. first .. " (" .. (first - 5)
            .. " bytes dropped: ETRUNCATED: the frame takes " .. first .. " bytes, the data has "
            .. (first - 5) .. "); last good block seq 1"}, wal:warnings())
        assert.are.equal(first, #files.read(path))
        assert.are.equal(1, wal:last_seq())
        assert.are.equal(2, wal:append(0, records("after")))
        assert.are.same({"kept", "after"}, (wal:replay(0, 0)))
        wal:close()
    end)

    it("reports a corrupt block in the middle and skips only that block", function()
        local dir = files.tmpdir()
        local wal = assert(core.wal_open(dir))
        for i = 1, 3 do wal:append(0, records("block " .. i)) end
        wal:close()
        local path = dir .. "/wal-0000000000000001.log"
        local size = #files.read(path) / 3
        flip(path, size + 30, 0x10)
        wal = assert(core.wal_open(dir))
        local warnings = wal:warnings()
        assert.are.equal(1, #warnings)
        assert.matches(path .. ": " .. size .. " corrupt bytes at byte " .. size
            .. " skipped (ECHECKSUM: stored CRC-32C ", warnings[1], 1, true)
        assert.are.same({"block 1", "block 3"}, (wal:replay(0, 0)))
        assert.are.equal(3, wal:last_seq())
        wal:close()
    end)
end)

-- Run the engine's loop until done() is true; fail if it never is.
local function pump(e, done, what)
    local deadline = os.time() + 10
    while not done() do
        if os.time() > deadline then error("timed out waiting for " .. what, 2) end
        e:run(20)
    end
end

local function shut(e, sock)
    sock:close()
    pump(e, function() return sock:closed() end, "the socket to close")
    assert.is_true(e:close())
end

describe("core.socket_new with a WAL", function()
    it("raises on a wal that is not one, and on walStream alone", function()
        local e = assert(core.engine_new{batch = 1000, manual = false})
        assert.has_error(function() core.socket_new(e, "127.0.0.1", 9, {wal = {}}) end,
            "bad argument #4 to 'socket_new' (opts.wal must be a WAL (core.wal_open))")
        assert.has_error(function() core.socket_new(e, "127.0.0.1", 9, {walStream = 1}) end,
            "bad argument #4 to 'socket_new' (opts.walStream needs opts.wal)")
        assert.is_true(e:close())
    end)

    it("puts every line it accepts in the WAL before take sees it", function()
        local lines = {}
        for i = 1, 3000 do lines[i] = "line " .. i .. (i % 7 == 0 and "\0nul" or "") end
        local server = line_server.start{lines = lines, mode = "hold"}
        local dir = files.tmpdir()
        local wal = assert(core.wal_open(dir, {segmentBytes = 4096}))
        wal:append(1, records("another stream"))
        local e = assert(core.engine_new{batch = 1000, manual = false})
        local sock = core.socket_new(e, server.host, server.port,
                                     {blockInterval = 1, wal = wal, walStream = 5})
        assert.is_true(sock:start())
        local got, takes = {}, {}
        pump(e, function()
            local arr, n, ends, first, last = sock:take()
            if n > 0 then
                takes[#takes + 1] = {first = first, last = last, lines = arr, ends = ends}
                for i = 1, n do got[#got + 1] = arr[i] end
            else
                assert.is_nil(first)
                assert.is_nil(last)
            end
            return #got >= #lines
        end, "3000 lines")
        assert.are.same(lines, got)
        assert.are.equal(wal:last_seq(), takes[#takes].last)
        -- What each take handed over is exactly what the WAL replays for its seqs.
        for _, t in ipairs(takes) do
            local arr, n, ends, last = wal:replay(5, t.first - 1, t.last)
            assert.are.same(t.lines, arr)
            assert.are.equal(#t.lines, n)
            assert.are.same(t.ends, ends)
            assert.are.equal(t.last, last)
        end
        shut(e, sock)
        server:close()
        wal:close()
        -- After a restart the WAL still holds every line.
        wal = assert(core.wal_open(dir, {segmentBytes = 4096}))
        assert.are.same(lines, (wal:replay(5, 0)))
        assert.are.same({"another stream"}, (wal:replay(1, 0)))
        wal:close()
    end)

    it("reports a failing WAL and counts nothing it could not log", function()
        local server = line_server.start{lines = {"one", "two"}, mode = "hold"}
        local wal = assert(core.wal_open(files.tmpdir()))
        wal:close()
        local e = assert(core.engine_new{batch = 1000, manual = false})
        local sock = core.socket_new(e, server.host, server.port, {wal = wal})
        assert.is_true(sock:start())
        pump(e, function() return sock:stats().bytes >= 8 end, "8 bytes")
        local arr, n = sock:take()
        assert.are.same({}, arr)
        assert.are.equal(0, n)
        local st = sock:stats()
        assert.are.same({0, 1, 2}, {st.records, st.wal_errors, st.wal_pending})
        local errs = sock:errors()
        assert.are.equal(1, #errs)
        assert.are.equal("ECLOSED", errs[1].code)
        assert.matches("^ECLOSED: write%-ahead log append failed %(the WAL in .* is closed%); "
            .. "2 lines from 127%.0%.0%.1:%d+ kept in memory, reading paused, retried at the "
            .. "next seal$", errs[1].message)
        shut(e, sock)
        server:close()
    end)
end)

-- A disk that fills up, for real: the file size limit (RLIMIT_FSIZE) makes
-- the WAL's write fail with EFBIG, as ENOSPC would.
pcall(ffi.cdef, [[
typedef struct { uint64_t cur, max; } wal_spec_rlimit;
int getrlimit(int resource, void *rl);
int setrlimit(int resource, const void *rl);
void *signal(int sig, void *handler);
]])
local RLIMIT_FSIZE, SIGXFSZ = 1, 25

describe("a socket whose WAL's disk is full", function()
    it("keeps the lines in memory, reports, and logs them once there is room", function()
        local server = line_server.start{lines = {"one", "two", "three"}, mode = "hold"}
        local dir = files.tmpdir()
        local wal = assert(core.wal_open(dir))
        local e = assert(core.engine_new{batch = 1000, manual = false})
        local sock = core.socket_new(e, server.host, server.port, {wal = wal, walStream = 2})
        assert.is_true(sock:start())
        pump(e, function() return sock:stats().bytes >= 14 end, "14 bytes")
        local saved = ffi.new("wal_spec_rlimit")
        assert.are.equal(0, ffi.C.getrlimit(RLIMIT_FSIZE, saved))
        local old_handler = ffi.C.signal(SIGXFSZ, ffi.cast("void *", 1)) -- SIG_IGN
        local full = ffi.new("wal_spec_rlimit", {1, saved.max})
        local ok, err = pcall(function()
            assert.are.equal(0, ffi.C.setrlimit(RLIMIT_FSIZE, full))
            local arr, n, _, first = sock:take()
            assert.are.same({{}, 0, nil}, {arr, n, first})
            assert.are.equal(3, sock:stats().wal_pending)
        end)
        ffi.C.setrlimit(RLIMIT_FSIZE, saved)
        ffi.C.signal(SIGXFSZ, old_handler)
        assert(ok, err)
        local errs = sock:errors()
        assert.are.equal(1, #errs)
        assert.matches("^EIO: write%-ahead log append failed %(" .. dir:gsub("%p", "%%%0")
            .. "/wal%-0000000000000001%.log %(File too large%)%); 3 lines", errs[1].message)
        local arr, n, _, first, last = sock:take()
        assert.are.same({"one", "two", "three"}, arr)
        assert.are.same({3, 1, 1}, {n, first, last})
        assert.are.same({0, 1}, {sock:stats().wal_pending, sock:stats().wal_errors})
        assert.are.same({"one", "two", "three"}, (wal:replay(2, 0)))
        shut(e, sock)
        server:close()
        wal:close()
    end)
end)

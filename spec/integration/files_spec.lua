-- ssc:textFileStream on a real directory: files are written, then the
-- manual clock moves one batch and the batch's records are checked.
local dstream = require("dstream")
local core = require("dstream.core")
local ffi = require("ffi")
local batches = require("spec.helpers.batches")

pcall(ffi.cdef, [[
int socket(int domain, int type, int protocol);
int bind(int fd, const void *addr, unsigned int len);
int close(int fd);
int symlink(const char *target, const char *linkpath);
]])

local function tmpdir()
    local path = os.tmpname()
    os.remove(path)
    assert(core.fs_mkdirs(path))
    return path
end

local function write(path, data)
    local f = assert(io.open(path, "wb"))
    f:write(data)
    f:close()
end

-- A Unix-domain socket bound at path: a directory entry that is neither a
-- file nor a directory, and that open() refuses (ENXIO).
local function unix_socket_file(path)
    assert(#path < 108, "socket path too long: " .. path)
    local addr = ffi.new("uint8_t[110]")
    addr[0] = 1 -- AF_UNIX, little-endian sa_family_t
    ffi.copy(addr + 2, path)
    local fd = ffi.C.socket(1, 1, 0) -- AF_UNIX, SOCK_STREAM
    assert(fd >= 0, "socket failed")
    local rc = ffi.C.bind(fd, addr, 110)
    ffi.C.close(fd)
    assert(rc == 0, "bind failed for " .. path)
end

-- A manual-clock context reading dir, the table of its batches, and the
-- receiver errors it reports.
local function watch(dir, opts)
    local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
    local errors = {}
    ssc:addStreamingListener{onReceiverError = function(err) errors[#errors + 1] = err end}
    local out = ssc:textFileStream(dir, opts):collectBatches()
    return ssc, out, errors
end

describe("ssc:textFileStream", function()
    local dir

    before_each(function() dir = tmpdir() end)
    after_each(function() assert(core.fs_remove_tree(dir)) end)

    it("reads a file that appears after start in the next batch, one record per line", function()
        local ssc, out = watch(dir)
        ssc:start()
        write(dir .. "/a.txt", "first line\nsecond line\n")
        ssc:advance(1)
        assert.are.same({{"first line", "second line"}}, out)
        ssc:stop()
    end)

    it("reads each file once only, even when it changes later", function()
        local ssc, out = watch(dir)
        ssc:start()
        write(dir .. "/a.txt", "a1\na2\n")
        ssc:advance(1)
        write(dir .. "/a.txt", "a1\na2\nappended\n")
        write(dir .. "/b.txt", "b1\n")
        ssc:advance(1)
        ssc:advance(1)
        assert.are.same({{"a1", "a2"}, {"b1"}, {}}, out)
        ssc:stop()
    end)

    it("puts every new file of a batch into that batch", function()
        local ssc, out = watch(dir)
        ssc:start()
        for i = 1, 5 do write(string.format("%s/f%d.txt", dir, i), "x" .. i .. "\ny" .. i .. "\n") end
        ssc:advance(1)
        assert.are.same({{"x1", "x2", "x3", "x4", "x5", "y1", "y2", "y3", "y4", "y5"}},
            batches.sorted_all(out))
        ssc:stop()
    end)

    it("keeps \\r\\n line ends apart from the text, and a last line without a newline", function()
        local ssc, out = watch(dir)
        ssc:start()
        write(dir .. "/crlf.txt", "one\r\ntwo\r\n\r\nlast")
        write(dir .. "/empty.txt", "")
        ssc:advance(1)
        assert.are.same({{"one", "two", "", "last"}}, out)
        ssc:stop()
    end)

    it("ignores files present before start by default", function()
        write(dir .. "/old.txt", "old\n")
        local ssc, out = watch(dir)
        ssc:start()
        write(dir .. "/new.txt", "new\n")
        ssc:advance(2)
        assert.are.same({{"new"}, {}}, out)
        ssc:stop()
    end)

    it("reads files present before start with newFilesOnly = false", function()
        write(dir .. "/old.txt", "old\n")
        local ssc, out = watch(dir, {newFilesOnly = false})
        ssc:start()
        ssc:advance(1)
        write(dir .. "/new.txt", "new\n")
        ssc:advance(1)
        assert.are.same({{"old"}, {"new"}}, out)
        ssc:stop()
    end)

    it("ignores hidden files whose names start with . or _", function()
        local ssc, out, errors = watch(dir)
        ssc:start()
        write(dir .. "/.partial", "hidden\n")
        write(dir .. "/_COPYING_", "hidden\n")
        write(dir .. "/visible.txt", "shown\n")
        ssc:advance(1)
        assert.are.same({{"shown"}}, out)
        assert.are.same({}, errors)
        ssc:stop()
    end)

    it("reads only the files the filter accepts, given their paths", function()
        local asked = {}
        local ssc, out = watch(dir, {filter = function(path)
            asked[#asked + 1] = path
            return path:match("%.log$") ~= nil
        end})
        ssc:start()
        write(dir .. "/app.log", "kept\n")
        write(dir .. "/notes.txt", "dropped\n")
        ssc:advance(1)
        assert.are.same({{"kept"}}, out)
        table.sort(asked)
        assert.are.same({dir .. "/app.log", dir .. "/notes.txt"}, asked)
        ssc:stop()
    end)

    it("skips a subdirectory silently", function()
        local ssc, out, errors = watch(dir)
        ssc:start()
        assert(core.fs_mkdirs(dir .. "/sub"))
        write(dir .. "/sub/inner.txt", "inside a subdirectory\n")
        write(dir .. "/top.txt", "top\n")
        ssc:advance(1)
        assert.are.same({{"top"}}, out)
        assert.are.same({}, errors)
        ssc:stop()
    end)

    it("reports an entry it cannot read, with its path, and still reads the other files", function()
        local ssc, out, errors = watch(dir)
        ssc:start()
        unix_socket_file(dir .. "/sock")
        write(dir .. "/ok.txt", "fine\n")
        ssc:advance(1)
        assert.are.same({{"fine"}}, out)
        assert.are.equal(1, #errors)
        assert.are.equal("textFileStream(" .. dir .. ")", errors[1].source)
        assert.matches(dir .. "/sock", errors[1].message, 1, true)
        ssc:advance(1)
        assert.are.same({{"fine"}, {}}, out)
        assert.are.equal(1, #errors)
        ssc:stop()
    end)

    it("reports a file that cannot be opened (a dangling symlink), with its path", function()
        local ssc, out, errors = watch(dir)
        ssc:start()
        assert.are.equal(0, ffi.C.symlink(dir .. "/nowhere", dir .. "/link.txt"))
        write(dir .. "/ok.txt", "fine\n")
        ssc:advance(1)
        assert.are.same({{"fine"}}, out)
        assert.are.equal(1, #errors)
        assert.matches(dir .. "/link.txt", errors[1].message, 1, true)
        ssc:stop()
    end)

    it("reads files written while a system-clock context runs", function()
        local ssc = dstream.StreamingContext{batchInterval = 0.05}
        local got = {}
        ssc:textFileStream(dir):foreachRDD(function(rdd)
            for _, r in ipairs(rdd:collect()) do got[#got + 1] = r end
            if #got >= 3 then ssc:stop() end
        end)
        ssc:start()
        write(dir .. "/live.txt", "l1\nl2\nl3\n")
        assert.is_true(ssc:awaitTerminationOrTimeout(10))
        assert.are.same({"l1", "l2", "l3"}, got)
    end)

    it("raises at start() when the directory does not exist, naming it", function()
        local missing = dir .. "/does-not-exist"
        local ssc = watch(missing)
        local ok, err = pcall(ssc.start, ssc)
        assert.is_false(ok)
        assert.matches(missing, err, 1, true)
        assert.matches("ENOENT", err, 1, true)
        -- The failed context is stopped; a new one on a real directory works.
        assert.is_true(ssc:awaitTerminationOrTimeout(0))
        local ssc2, out = watch(dir)
        ssc2:start()
        write(dir .. "/after.txt", "after\n")
        ssc2:advance(1)
        assert.are.same({{"after"}}, out)
        ssc2:stop()
    end)

    it("raises at the call on a bad directory, option or filter", function()
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
        local ok, err = pcall(ssc.textFileStream, ssc, "")
        assert.is_false(ok)
        assert.matches("textFileStream: argument #1 (dir) must be a non-empty string", err, 1, true)
        ok, err = pcall(ssc.textFileStream, ssc, dir, {newFiles = false})
        assert.is_false(ok)
        assert.matches("textFileStream: unknown option \"newFiles\" (allowed: ", err, 1, true)
        assert.matches("newFilesOnly", err, 1, true)
        ok, err = pcall(ssc.textFileStream, ssc, dir, {filter = "*.log"})
        assert.is_false(ok)
        assert.matches("filter", err, 1, true)
        assert.matches("must be a function", err, 1, true)
        ssc:stop()
    end)
end)

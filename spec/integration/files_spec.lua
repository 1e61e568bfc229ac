-- ssc:textFileStream on a real directory: files are written, then the
-- manual clock moves and each batch's records are checked. A file is read
-- by the first batch that finds it unchanged since the batch before, so a
-- file written now shows up in the second batch from now.
local dstream = require("dstream")
local core = require("dstream.core")
local ffi = require("ffi")
local batches = require("spec.helpers.batches")
local files = require("spec.helpers.files")
local tmpdir, write, append = files.tmpdir, files.write, files.append

pcall(ffi.cdef, [[
int socket(int domain, int type, int protocol);
int bind(int fd, const void *addr, unsigned int len);
int close(int fd);
int symlink(const char *target, const char *linkpath);
int mkfifo(const char *path, unsigned int mode);
int chmod(const char *path, unsigned int mode);
unsigned int geteuid(void);
]])



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

-- Every record of every batch, in batch order.
local function all_records(out)
    local r = {}
    for _, b in ipairs(out) do
        for _, x in ipairs(b) do r[#r + 1] = x end
    end
    return r
end


describe("ssc:textFileStream", function()
    local dir

    before_each(function() dir = tmpdir() end)
    after_each(function() assert(core.fs_remove_tree(dir)) end)

    it("reads a file once its size and modification time are unchanged for one batch", function()
        local ssc, out = watch(dir)
        ssc:start()
        write(dir .. "/a.txt", "first line\nsecond line\n")
        ssc:advance(1)
        assert.are.same({{}}, out)
        ssc:advance(1)
        assert.are.same({{}, {"first line", "second line"}}, out)
        ssc:stop()
    end)

    it("waits while a file is still being written, then reads all of it", function()
        local ssc, out, errors = watch(dir)
        ssc:start()
        write(dir .. "/a.txt", "l1\nhal")
        ssc:advance(1)
        append(dir .. "/a.txt", "f a line\nl3\n")
        ssc:advance(1)
        for i = 4, 10 do
            append(dir .. "/a.txt", "l" .. i .. "\n")
            ssc:advance(1)
        end
        ssc:advance(2)
        local all = all_records(out)
        assert.are.same({"l1", "half a line", "l3", "l4", "l5", "l6", "l7", "l8", "l9", "l10"}, all)
        assert.are.same({}, errors)
        ssc:stop()
    end)

    it("reports a file that keeps changing for 60 s once, and reads it when it stops", function()
        local ssc, out, errors = watch(dir)
        ssc:start()
        for i = 1, 62 do
            append(dir .. "/busy.log", "b" .. i .. "\n")
            ssc:advance(1)
        end
        assert.are.same({}, all_records(out))
        assert.are.equal(1, #errors)
        assert.matches(dir .. "/busy.log has kept changing for 60 s", errors[1].message, 1, true)
        ssc:advance(1)
        local records = all_records(out)
        assert.are.equal(62, #records)
        assert.are.equal("b62", records[62])
        assert.are.equal(1, #errors)
        ssc:stop()
    end)

    it("reads each file once, and reports a file changed after it was read", function()
        local ssc, out, errors = watch(dir)
        ssc:start()
        write(dir .. "/a.txt", "a1\na2\n")
        ssc:advance(2)
        append(dir .. "/a.txt", "appended\n")
        write(dir .. "/b.txt", "b1\n")
        ssc:advance(3)
        assert.are.same({{}, {"a1", "a2"}, {}, {"b1"}, {}}, out)
        assert.are.equal(1, #errors)
        assert.matches(dir .. "/a.txt changed after it was read", errors[1].message, 1, true)
        assert.matches("the change is not read", errors[1].message, 1, true)
        ssc:stop()
    end)

    it("reads a new file written under the name of a file it already read", function()
        local ssc, out, errors = watch(dir)
        ssc:start()
        write(dir .. "/a.txt", "first\n")
        ssc:advance(2)
        os.remove(dir .. "/a.txt")          -- ext4 hands the inode number straight back
        write(dir .. "/a.txt", "second\n")
        ssc:advance(2)
        write(dir .. "/.a.tmp", "third\n")  -- renamed over the old file
        assert(core.fs_rename(dir .. "/.a.tmp", dir .. "/a.txt"))
        ssc:advance(2)
        assert.are.same({"first", "second", "third"}, all_records(out))
        assert.are.same({}, errors)
        ssc:stop()
    end)

    it("reads a file renamed into the directory from a hidden name", function()
        local ssc, out = watch(dir)
        ssc:start()
        write(dir .. "/.incoming", "moved in\n")
        ssc:advance(1)
        assert(core.fs_rename(dir .. "/.incoming", dir .. "/done.txt"))
        ssc:advance(2)
        assert.are.same({{}, {}, {"moved in"}}, out)
        ssc:stop()
    end)

    it("puts every new file of a batch into that batch", function()
        local ssc, out = watch(dir)
        ssc:start()
        for i = 1, 5 do write(string.format("%s/f%d.txt", dir, i), "x" .. i .. "\ny" .. i .. "\n") end
        ssc:advance(2)
        assert.are.same({{}, {"x1", "x2", "x3", "x4", "x5", "y1", "y2", "y3", "y4", "y5"}},
            batches.sorted_all(out))
        ssc:stop()
    end)

    it("keeps \\r\\n line ends apart from the text, and a last line without a newline", function()
        local ssc, out = watch(dir)
        ssc:start()
        write(dir .. "/crlf.txt", "one\r\ntwo\r\n\r\nlast")
        write(dir .. "/empty.txt", "")
        ssc:advance(2)
        assert.are.same({{}, {"one", "two", "", "last"}}, out)
        ssc:stop()
    end)

    it("reads a file larger than one read step whole, in one batch", function()
        local ssc, out = watch(dir)
        ssc:start()
        local lines = {}
        for i = 1, 200000 do lines[i] = string.format("line %06d of a file of several read steps", i) end
        write(dir .. "/big.txt", table.concat(lines, "\n") .. "\n")
        ssc:advance(2)
        assert.are.equal(2, #out)
        assert.are.equal(200000, #out[2])
        assert.are.same(lines, out[2])
        ssc:stop()
    end)

    it("ignores files present before start by default", function()
        write(dir .. "/old.txt", "old\n")
        local ssc, out = watch(dir)
        ssc:start()
        write(dir .. "/new.txt", "new\n")
        ssc:advance(3)
        assert.are.same({{}, {"new"}, {}}, out)
        ssc:stop()
    end)

    it("reads files present before start, unchanged since, in the first batch with newFilesOnly = false", function()
        write(dir .. "/old.txt", "old\n")
        write(dir .. "/growing.txt", "g1\n")
        local ssc, out = watch(dir, {newFilesOnly = false})
        ssc:start()
        append(dir .. "/growing.txt", "g2\n")
        ssc:advance(1)
        write(dir .. "/new.txt", "new\n")
        ssc:advance(2)
        assert.are.same({{"old"}, {"g1", "g2"}, {"new"}}, out)
        ssc:stop()
    end)

    it("ignores hidden files whose names start with . or _", function()
        local ssc, out, errors = watch(dir)
        ssc:start()
        write(dir .. "/.partial", "hidden\n")
        write(dir .. "/_COPYING_", "hidden\n")
        write(dir .. "/visible.txt", "shown\n")
        ssc:advance(2)
        assert.are.same({{}, {"shown"}}, out)
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
        ssc:advance(2)
        assert.are.same({{}, {"kept"}}, out)
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
        ssc:advance(2)
        assert.are.same({{}, {"top"}}, out)
        assert.are.same({}, errors)
        ssc:stop()
    end)

    it("skips a FIFO without waiting for a writer, reporting its path once", function()
        local ssc, out, errors = watch(dir)
        ssc:start()
        assert.are.equal(0, ffi.C.mkfifo(dir .. "/pipe", 420))
        write(dir .. "/ok.txt", "fine\n")
        ssc:advance(3)
        assert.are.same({{}, {"fine"}, {}}, out)
        assert.are.equal(1, #errors)
        assert.are.equal("textFileStream(" .. dir .. ")", errors[1].source)
        assert.matches(dir .. "/pipe skipped: not a regular file (FIFO)", errors[1].message, 1, true)
        ssc:stop()
    end)

    it("reports a socket it cannot read, with its path, once, and still reads the other files", function()
        local ssc, out, errors = watch(dir)
        ssc:start()
        unix_socket_file(dir .. "/sock")
        write(dir .. "/ok.txt", "fine\n")
        ssc:advance(2)
        assert.are.same({{}, {"fine"}}, out)
        assert.are.equal(1, #errors)
        assert.matches(dir .. "/sock skipped: not a regular file (socket)", errors[1].message, 1, true)
        ssc:advance(1)
        assert.are.same({{}, {"fine"}, {}}, out)
        assert.are.equal(1, #errors)
        ssc:stop()
    end)

    it("reports a dangling symlink once and reads it when its target appears", function()
        local ssc, out, errors = watch(dir)
        ssc:start()
        assert.are.equal(0, ffi.C.symlink(dir .. "/.target", dir .. "/link.txt"))
        write(dir .. "/ok.txt", "fine\n")
        ssc:advance(3)
        assert.are.same({{}, {"fine"}, {}}, out)
        assert.are.equal(1, #errors)
        assert.matches(dir .. "/link.txt not read yet: ENOENT", errors[1].message, 1, true)
        write(dir .. "/.target", "through the link\n")
        ssc:advance(2)
        assert.are.same({{}, {"fine"}, {}, {}, {"through the link"}}, out)
        assert.are.equal(1, #errors)
        ssc:stop()
    end)

    it("retries a file it may not read until its permissions are fixed", function()
        if ffi.C.geteuid() == 0 then return end -- root reads everything
        local ssc, out, errors = watch(dir)
        ssc:start()
        write(dir .. "/locked.txt", "secret\n")
        assert.are.equal(0, ffi.C.chmod(dir .. "/locked.txt", 0))
        ssc:advance(3)
        assert.are.equal(1, #errors)
        assert.matches(dir .. "/locked.txt not read yet: EACCES", errors[1].message, 1, true)
        assert.are.equal(0, ffi.C.chmod(dir .. "/locked.txt", 420))
        ssc:advance(2)
        assert.are.same({"secret"}, all_records(out))
        ssc:stop()
    end)

    it("forgets read files after the remember window and names gone from the directory", function()
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
        local stream = ssc:textFileStream(dir)
        local out = stream:collectBatches()
        ssc:start()
        for i = 1, 20 do write(string.format("%s/f%02d.txt", dir, i), "r" .. i .. "\n") end
        ssc:advance(2)
        assert.are.same({tracked = 20, names = 20}, stream.file_counts())
        ssc:advance(60)
        assert.are.same({tracked = 0, names = 20}, stream.file_counts())
        for i = 1, 10 do os.remove(string.format("%s/f%02d.txt", dir, i)) end
        ssc:advance(1)
        assert.are.same({tracked = 0, names = 10}, stream.file_counts())
        assert.are.equal(20, #all_records(out))
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
        ssc2:advance(2)
        assert.are.same({{}, {"after"}}, out)
        ssc2:stop()
    end)

    it("reports a directory that disappears while running, once, and carries on when it is back", function()
        local ssc, out, errors = watch(dir)
        ssc:start()
        assert(core.fs_remove_tree(dir))
        ssc:advance(2)
        assert.are.equal(1, #errors)
        assert.matches("ENOENT", errors[1].message, 1, true)
        assert(core.fs_mkdirs(dir))
        write(dir .. "/back.txt", "back\n")
        ssc:advance(2)
        assert.are.same({{}, {}, {}, {"back"}}, out)
        ssc:stop()
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

-- The file-system helpers of dstream.core, on a real temporary directory:
-- what textFileStream and the file sinks build on.
local core = require("dstream.core")

-- A fresh directory under the system's temporary directory.
local function tmpdir()
    local base = os.tmpname()
    os.remove(base)
    local dir = base .. ".d"
    assert(core.fs_mkdirs(dir))
    return dir
end

local function slurp(path)
    local f = assert(io.open(path, "rb"))
    local data = f:read("*a")
    f:close()
    return data
end

describe("dstream.core file system", function()
    local root

    before_each(function()
        root = tmpdir()
    end)

    after_each(function()
        assert(core.fs_remove_tree(root))
    end)

    describe("core.fs_write", function()
        it("creates a file holding exactly the bytes given", function()
            local data = "a\0b\r\nc"
            assert.is_true(core.fs_write(root .. "/f", data))
            assert.are.equal(data, slurp(root .. "/f"))
        end)

        it("replaces an existing file", function()
            assert(core.fs_write(root .. "/f", "long old content"))
            assert(core.fs_write(root .. "/f", "new"))
            assert.are.equal("new", slurp(root .. "/f"))
        end)

        it("fails with ENOENT naming the path when the directory is missing", function()
            local path = root .. "/missing/f"
            local ok, msg, code = core.fs_write(path, "x")
            assert.is_nil(ok)
            assert.are.equal("ENOENT", code)
            assert.are.equal("ENOENT: no such file or directory (" .. path .. ")", msg)
        end)

        it("fails with EIO and the reason when the path is a directory", function()
            local ok, msg, code = core.fs_write(root, "x")
            assert.is_nil(ok)
            assert.are.equal("EIO", code)
            assert.are.equal("EIO: input/output error (" .. root .. " (Is a directory))", msg)
        end)

        it("raises on a path that is not a string or holds a NUL", function()
            assert.has_error(function() core.fs_write(nil, "x") end)
            assert.has_error(function() core.fs_write(root .. "/a\0b", "x") end,
                "bad argument #1 to 'fs_write' (path holds a NUL byte)")
            assert.has_error(function() core.fs_write(root .. "/f") end)
        end)
    end)

    describe("core.fs_mkdirs", function()
        it("makes every missing parent and accepts an existing directory", function()
            assert.is_true(core.fs_mkdirs(root .. "/a/b/c"))
            assert.is_true(core.fs_mkdirs(root .. "/a/b/c"))
            assert.is_true(core.fs_stat(root .. "/a/b").dir)
        end)

        it("fails with EEXIST when a file is in the way", function()
            assert(core.fs_write(root .. "/f", ""))
            local ok, msg, code = core.fs_mkdirs(root .. "/f")
            assert.is_nil(ok)
            assert.are.equal("EEXIST", code)
            assert.are.equal("EEXIST: already exists (" .. root .. "/f)", msg)
        end)
    end)

    describe("core.fs_stat", function()
        it("gives size, times in ms, inode number and what kind of entry it is", function()
            assert(core.fs_write(root .. "/f", "12345"))
            local st = core.fs_stat(root .. "/f")
            assert.are.equal(5, st.size)
            assert.is_false(st.dir)
            assert.is_true(st.file)
            assert.are.equal("file", st.kind)
            assert.is_true(st.ino > 0)
            assert.is_true(st.btime == 0 or math.abs(st.btime - st.mtime) < 120000)
            assert.are.equal("directory", core.fs_stat(root).kind)
            assert.is_true(math.abs(st.mtime - os.time() * 1000) < 120000)
            assert.is_true(core.fs_stat(root).dir)
        end)

        it("fails with ENOENT for a missing path", function()
            local ok, msg, code = core.fs_stat(root .. "/nope")
            assert.is_nil(ok)
            assert.are.equal("ENOENT", code)
            assert.are.equal("ENOENT: no such file or directory (" .. root .. "/nope)", msg)
        end)
    end)

    describe("core.fs_list", function()
        it("lists entry names sorted, without . and ..", function()
            for _, name in ipairs({"b", "a", ".hidden", "C"}) do
                assert(core.fs_write(root .. "/" .. name, ""))
            end
            assert(core.fs_mkdirs(root .. "/sub"))
            assert.are.same({".hidden", "C", "a", "b", "sub"}, core.fs_list(root))
        end)

        it("lists an empty directory as an empty array", function()
            assert.are.same({}, core.fs_list(root))
        end)

        it("fails with ENOENT for a missing directory", function()
            local ok, _, code = core.fs_list(root .. "/nope")
            assert.is_nil(ok)
            assert.are.equal("ENOENT", code)
        end)
    end)

    describe("core.fs_read_lines", function()
        it("splits on \\n and \\r\\n, keeping every other byte", function()
            assert(core.fs_write(root .. "/f", "one\ntwo\r\nth\0ree\n\nc\rr\nlast"))
            local lines, n, skipped = core.fs_read_lines(root .. "/f")
            assert.are.same({"one", "two", "th\0ree", "", "c\rr", "last"}, lines)
            assert.are.equal(6, n)
            assert.are.equal(0, skipped)
        end)

        it("skips and counts lines longer than maxLineBytes", function()
            assert(core.fs_write(root .. "/f", "short\n" .. ("x"):rep(100) .. "\nok\r\n"))
            local lines, n, skipped = core.fs_read_lines(root .. "/f", 10)
            assert.are.same({"short", "ok"}, lines)
            assert.are.equal(2, n)
            assert.are.equal(1, skipped)
        end)

        it("reads a file larger than one read", function()
            local parts = {}
            for i = 1, 30000 do parts[i] = "line " .. i end
            assert(core.fs_write(root .. "/big", table.concat(parts, "\n") .. "\n"))
            local lines, n = core.fs_read_lines(root .. "/big")
            assert.are.equal(30000, n)
            assert.are.same(parts, lines)
        end)

        it("reads an empty file as no lines", function()
            assert(core.fs_write(root .. "/empty", ""))
            local lines, n, skipped = core.fs_read_lines(root .. "/empty")
            assert.are.same({}, lines)
            assert.are.equal(0, n)
            assert.are.equal(0, skipped)
        end)

        it("fails with ENOENT for a missing file and EIO for a directory", function()
            local ok, msg, code = core.fs_read_lines(root .. "/nope")
            assert.is_nil(ok)
            assert.are.equal("ENOENT", code)
            assert.are.equal("ENOENT: no such file or directory (" .. root .. "/nope)", msg)
            ok, msg, code = core.fs_read_lines(root)
            assert.is_nil(ok)
            assert.are.equal("EIO", code)
            assert.matches("not a regular file: directory", msg, 1, true)
        end)

        it("raises on a maxLineBytes that is not a positive integer", function()
            assert(core.fs_write(root .. "/f", "x\n"))
            for _, bad in ipairs({0, -1, 1.5, 2 ^ 40}) do
                assert.has_error(function() core.fs_read_lines(root .. "/f", bad) end)
            end
        end)
    end)

    describe("core.fs_reader", function()
        it("reads a file a budget of bytes at a time, appending whole lines", function()
            local parts = {}
            for i = 1, 1000 do parts[i] = ("%04d"):format(i) end
            assert(core.fs_write(root .. "/f", table.concat(parts, "\n")))
            local r = assert(core.fs_reader(root .. "/f"))
            local t, n, eof, steps = {}, 0, false, 0
            while not eof do
                local before = n
                n, eof = r:read(t, n, 100)
                assert.is_true(n - before <= 20) -- 100 bytes hold at most 20 lines of 5
                steps = steps + 1
            end
            assert.are.equal(1000, n)
            assert.are.same(parts, t)
            assert.is_true(steps >= 49)
            assert.are.equal(4999, r:offset())
            assert.are.equal(4999, r:stat().size)
            assert.are.equal(0, r:skipped())
            r:close()
            r:close()
            assert.has_error(function() r:read(t, 0, 100) end)
        end)

        it("refuses a FIFO at once instead of waiting for a writer", function()
            local ffi = require("ffi")
            pcall(ffi.cdef, "int mkfifo(const char *path, unsigned int mode);")
            assert.are.equal(0, ffi.C.mkfifo(root .. "/pipe", 420))
            local ok, msg, code = core.fs_reader(root .. "/pipe")
            assert.is_nil(ok)
            assert.are.equal("EIO", code)
            assert.matches(root .. "/pipe (not a regular file: FIFO)", msg, 1, true)
            assert.are.equal("FIFO", core.fs_stat(root .. "/pipe").kind)
        end)
    end)

    describe("core.dirscan_new", function()
        it("reports names new, re-created and gone since the last scan", function()
            local sc = core.dirscan_new()
            assert(core.fs_write(root .. "/b", "1"))
            assert(core.fs_write(root .. "/a", "1"))
            local changed, gone = sc:update(root)
            assert.are.same({"a", "b"}, changed)
            assert.are.same({}, gone)
            assert(core.fs_write(root .. "/.t", "2"))
            assert(core.fs_rename(root .. "/.t", root .. "/a"))
            os.remove(root .. "/b")
            changed, gone = sc:update(root)
            assert.are.same({"a"}, changed)
            assert.are.same({"b"}, gone)
            assert.are.equal(1, sc:count())
            local ok, msg, code = sc:update(root .. "/nope")
            assert.is_nil(ok)
            assert.are.equal("ENOENT", code)
            assert.matches(root .. "/nope", msg, 1, true)
            sc:close()
        end)
    end)

    describe("core.fs_rename and core.fs_fsync_dir", function()
        it("move a directory into place atomically, the way sinks write a batch", function()
            local tmp, final = root .. "/_tmp-1000", root .. "/out-1000"
            assert(core.fs_mkdirs(tmp))
            assert(core.fs_write(tmp .. "/part-00000", "a\nb\n"))
            assert(core.fs_write(tmp .. "/_SUCCESS", ""))
            assert.is_true(core.fs_fsync_dir(tmp))
            assert.is_true(core.fs_rename(tmp, final))
            assert.is_true(core.fs_fsync_dir(root))
            assert.are.same({"_SUCCESS", "part-00000"}, core.fs_list(final))
            assert.is_nil(core.fs_stat(tmp))
        end)

        it("name both paths when a rename fails", function()
            local ok, msg, code = core.fs_rename(root .. "/nope", root .. "/there")
            assert.is_nil(ok)
            assert.are.equal("ENOENT", code)
            assert.are.equal("ENOENT: no such file or directory (" .. root .. "/nope -> "
                .. root .. "/there)", msg)
            ok, msg, code = core.fs_fsync_dir(root .. "/nope")
            assert.is_nil(ok)
            assert.are.equal("ENOENT", code)
            assert.are.equal("ENOENT: no such file or directory (" .. root .. "/nope)", msg)
        end)
    end)

    describe("core.fs_remove_tree", function()
        it("removes a directory and everything under it", function()
            assert(core.fs_mkdirs(root .. "/t/a/b"))
            assert(core.fs_write(root .. "/t/a/f", "x"))
            assert(core.fs_write(root .. "/t/a/b/g", "y"))
            assert.is_true(core.fs_remove_tree(root .. "/t"))
            assert.is_nil(core.fs_stat(root .. "/t"))
        end)

        it("removes a single file", function()
            assert(core.fs_write(root .. "/f", "x"))
            assert.is_true(core.fs_remove_tree(root .. "/f"))
            assert.are.same({}, core.fs_list(root))
        end)

        it("fails with ENOENT for a missing path", function()
            local ok, _, code = core.fs_remove_tree(root .. "/nope")
            assert.is_nil(ok)
            assert.are.equal("ENOENT", code)
        end)
    end)
end)

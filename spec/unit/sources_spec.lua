-- The input side of checkpoints, called directly as the recovery code calls
-- it: a source's position (_ckpt_position / _ckpt_resume) and what one batch
-- took (_ckpt_input / _ckpt_replay). A "crash" here is a context dropped
-- without a checkpoint after the position was taken; recovery is a new
-- context over the same directory, resumed from that position.
local dstream = require("dstream")
local core = require("dstream.core")
local files = require("spec.helpers.files")
local tmpdir, write = files.tmpdir, files.write

-- A manual-clock context reading dir: the context, the source stream, the
-- batches (with their times in out.times) and the errors reported.
local function watch(dir, opts)
    local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
    local errors = {}
    ssc:addStreamingListener{onReceiverError = function(err) errors[#errors + 1] = err.message end}
    local s = ssc:textFileStream(dir, opts)
    local out = {times = {}}
    s:foreachRDD(function(rdd, t)
        local recs = rdd:collect()
        table.sort(recs)
        out[#out + 1] = recs
        out.times[#out.times + 1] = t
    end)
    return ssc, s, out, errors
end

-- Every record of every batch, sorted.
local function all_records(out)
    local r = {}
    for _, b in ipairs(out) do
        for _, x in ipairs(b) do r[#r + 1] = x end
    end
    table.sort(r)
    return r
end

describe("textFileStream's checkpoint position", function()
    local dir

    before_each(function() dir = tmpdir() end)
    after_each(function() assert(core.fs_remove_tree(dir)) end)

    it("after recovery reads every file that appeared while the program was down, none read before", function()
        local ssc, s, out = watch(dir)
        ssc:start()
        write(dir .. "/a.txt", "a1\na2\n")
        ssc:advance(2)
        assert.are.same({"a1", "a2"}, all_records(out))
        local pos = s:_ckpt_position()
        ssc:stop()
        write(dir .. "/b.txt", "b1\n")
        write(dir .. "/c.txt", "c1\n")

        local ssc2, s2, out2 = watch(dir)
        s2:_ckpt_resume(pos)
        ssc2:start()
        ssc2:advance(3)
        ssc2:stop()
        assert.are.same({"b1", "c1"}, all_records(out2))
    end)

    it("leaves a file that was there before the first start unread after recovery (newFilesOnly)", function()
        write(dir .. "/old.txt", "old\n")
        local ssc, s, out = watch(dir)
        ssc:start()
        ssc:advance(2)
        local pos = s:_ckpt_position()
        ssc:stop()
        write(dir .. "/new.txt", "new\n")

        local ssc2, s2, out2 = watch(dir)
        s2:_ckpt_resume(pos)
        ssc2:start()
        ssc2:advance(3)
        ssc2:stop()
        assert.are.same({}, all_records(out))
        assert.are.same({"new"}, all_records(out2))
    end)

    it("reads after recovery a file that was seen but not yet read at the checkpoint", function()
        local ssc, s = watch(dir)
        ssc:start()
        write(dir .. "/a.txt", "a1\n")
        ssc:advance(1) -- seen, read only once unchanged for a batch
        local pos = s:_ckpt_position()
        ssc:stop()

        local ssc2, s2, out2 = watch(dir)
        s2:_ckpt_resume(pos)
        ssc2:start()
        ssc2:advance(2)
        ssc2:stop()
        assert.are.same({"a1"}, all_records(out2))
    end)

    it("reads a file re-created under a read file's name while the program was down", function()
        local ssc, s, out = watch(dir)
        ssc:start()
        write(dir .. "/a.txt", "first\n")
        ssc:advance(2)
        local pos = s:_ckpt_position()
        ssc:stop()
        assert.are.same({"first"}, all_records(out))
        -- Another file under the old name: renamed in, so it is another inode.
        write(dir .. "/.tmp", "second\n")
        assert(core.fs_rename(dir .. "/.tmp", dir .. "/a.txt"))

        local ssc2, s2, out2 = watch(dir)
        s2:_ckpt_resume(pos)
        ssc2:start()
        ssc2:advance(2)
        ssc2:stop()
        assert.are.same({"second"}, all_records(out2))
    end)

    it("refuses a position it cannot read, naming the source", function()
        local ssc, s = watch(dir)
        assert.has_error(function() s:_ckpt_resume("not a codec value") end)
        local ok, err = pcall(s._ckpt_resume, s, "not a codec value")
        assert.is_false(ok)
        assert.matches("textFileStream%(" .. dir:gsub("%p", "%%%0") .. "%)", err)
        ssc:stop()
    end)

    it("has no position before it starts", function()
        local ssc, s = watch(dir)
        assert.is_nil(s:_ckpt_position())
        ssc:stop()
    end)
end)

describe("textFileStream's batch inputs", function()
    local dir

    before_each(function() dir = tmpdir() end)
    after_each(function() assert(core.fs_remove_tree(dir)) end)

    -- Runs until a batch reads a.txt and b.txt; returns the position before
    -- that batch, the batch's time and what it took.
    local function crash_after_reading(ssc, s, out)
        ssc:start()
        ssc:advance(1)
        write(dir .. "/a.txt", "a1\na2\n")
        write(dir .. "/b.txt", "b1\n")
        ssc:advance(1)
        local pos = s:_ckpt_position()
        ssc:advance(1)
        local t = out.times[#out.times]
        assert.are.same({"a1", "a2", "b1"}, out[#out])
        local took = s:_ckpt_input(t)
        ssc:stop()
        return pos, t, took
    end

    it("says nothing for a batch that read no file", function()
        local ssc, s, out = watch(dir)
        ssc:start()
        ssc:advance(1)
        assert.is_nil(s:_ckpt_input(out.times[1]))
        ssc:stop()
    end)

    it("a replayed batch re-reads exactly its files, and later batches read neither again", function()
        local pos, t, took = crash_after_reading(watch(dir))
        write(dir .. "/c.txt", "c1\n")

        local ssc2, s2, out2 = watch(dir)
        s2:_ckpt_resume(pos)
        local rdd = s2:_ckpt_replay(t, took)
        local replayed = rdd:collect()
        table.sort(replayed)
        assert.are.same({"a1", "a2", "b1"}, replayed)
        assert.are.equal(t, rdd.time)
        assert.are.equal(2, #rdd.ends) -- a partition per file, as when it was read
        ssc2:start()
        ssc2:advance(3)
        ssc2:stop()
        assert.are.same({"c1"}, all_records(out2))
    end)

    it("replays the same after the source has started", function()
        local pos, t, took = crash_after_reading(watch(dir))
        local ssc2, s2, out2 = watch(dir)
        s2:_ckpt_resume(pos)
        ssc2:start()
        local replayed = s2:_ckpt_replay(t, took):collect()
        table.sort(replayed)
        assert.are.same({"a1", "a2", "b1"}, replayed)
        ssc2:advance(3)
        ssc2:stop()
        assert.are.same({}, all_records(out2))
    end)

    it("reports a file gone since the batch read it, and replays the others", function()
        local pos, t, took = crash_after_reading(watch(dir))
        os.remove(dir .. "/a.txt")
        local ssc2, s2, _, errors = watch(dir)
        s2:_ckpt_resume(pos)
        assert.are.same({"b1"}, s2:_ckpt_replay(t, took):collect())
        assert.are.equal(1, #errors)
        assert.matches("batch " .. t .. " ms: " .. dir:gsub("%p", "%%%0") .. "/a%.txt, read by this batch "
            .. "before the crash, cannot be read again %(ENOENT", errors[1])
        assert.matches("the replayed batch lacks its lines", errors[1], 1, true)
        ssc2:stop()
    end)

    it("reports a file replaced since the batch read it, and reads the new one as a new file", function()
        local pos, t, took = crash_after_reading(watch(dir))
        write(dir .. "/.tmp", "new a\n")
        assert(core.fs_rename(dir .. "/.tmp", dir .. "/a.txt"))
        local ssc2, s2, out2, errors = watch(dir)
        s2:_ckpt_resume(pos)
        assert.are.same({"b1"}, s2:_ckpt_replay(t, took):collect())
        assert.matches("a%.txt, read by this batch before the crash, was replaced by another file", errors[1])
        ssc2:start()
        ssc2:advance(2)
        ssc2:stop()
        assert.are.same({"new a"}, all_records(out2))
    end)

    it("reports a file that grew since the batch read it, and replays it as it is now", function()
        local pos, t, took = crash_after_reading(watch(dir))
        files.append(dir .. "/b.txt", "b2\n")
        local ssc2, s2, _, errors = watch(dir)
        s2:_ckpt_resume(pos)
        local replayed = s2:_ckpt_replay(t, took):collect()
        table.sort(replayed)
        assert.are.same({"a1", "a2", "b1", "b2"}, replayed)
        assert.matches("b%.txt changed since this batch read it before the crash %(3 bytes then, 6 now%)", errors[1])
        ssc2:stop()
    end)
end)

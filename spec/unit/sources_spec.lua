-- The input side of checkpoints, called directly as the recovery code calls
-- it: a source's position (_ckpt_position / _ckpt_resume) and what one batch
-- took (_ckpt_input / _ckpt_replay). A "crash" here is a context dropped
-- without a checkpoint after the position was taken; recovery is a new
-- context over the same directory, resumed from that position.
local dstream = require("dstream")
local core = require("dstream.core")
local files = require("spec.helpers.files")
local crash = require("spec.helpers.crash")
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

-- A custom receiver whose poll returns the next array of `blocks` (nothing
-- once they are used up).
local function blocks_receiver(blocks)
    local i = 0
    return {start = function() end, stop = function() end, poll = function()
        i = i + 1
        return blocks[i]
    end}
end

-- A manual-clock context with wal = true and its checkpoints in dir (the
-- WAL in dir/wal, ctx.wal): the context, the receiver's stream of `blocks`,
-- its batches (their times in ssc.times) and the errors reported.
local function logged(dir, blocks)
    local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual", wal = true}
    local errors = {}
    ssc:addStreamingListener{onReceiverError = function(err) errors[#errors + 1] = err.message end}
    ssc:checkpoint(dir) -- opens the WAL, reporting to the listener what its opening cut
    assert(ssc.wal, "wal = true opens the WAL")
    local s = ssc:receiverStream(blocks_receiver(blocks))
    local out = {}
    s:foreachRDD(function(rdd, t)
        out[#out + 1] = rdd:collect()
        ssc.times[#out] = t
    end)
    ssc.times = {}
    return ssc, s, out, errors
end

local function close(ssc)
    ssc:stop()
end

describe("receiverStream with a write-ahead log", function()
    local dir

    before_each(function() dir = tmpdir() end)
    after_each(function() assert(core.fs_remove_tree(dir)) end)

    it("logs each polled block before it counts", function()
        local ssc, s, out = logged(dir, {{"a", "b"}, {"c"}})
        ssc:start()
        ssc:advance(2)
        assert.are.same({{"a", "b"}, {"c"}}, out)
        local arr, n, ends = ssc.wal:replay(s.id, 0)
        assert.are.same({"a", "b", "c"}, {unpack(arr, 1, n)})
        assert.are.same({2, 3}, ends)
        close(ssc)
    end)

    it("says which WAL blocks a batch took, and a replay takes exactly those", function()
        local ssc, s = logged(dir, {{1, 2}, {3}, {4, {k = "v"}}})
        ssc:start()
        ssc:advance(2)
        local t2 = ssc.times[2]
        local took = s:_ckpt_input(t2)
        assert.is_string(took)
        ssc:advance(1)
        close(ssc)

        local ssc2, s2 = logged(dir, {})
        local rdd = s2:_ckpt_replay(t2, took)
        assert.are.same({3}, rdd:collect())
        assert.are.equal(t2, rdd.time)
        close(ssc2)
    end)

    it("says nothing for a batch that took no block", function()
        local ssc, s = logged(dir, {})
        ssc:start()
        ssc:advance(1)
        assert.is_nil(s:_ckpt_input(ssc.times[1]))
        close(ssc)
    end)

    it("puts the blocks logged after the position, and taken by no batch, into the first batch after a restart", function()
        local ssc, s, out = logged(dir, {{"a"}, {"b"}, {"c"}})
        ssc:start()
        ssc:advance(1)
        local pos = s:_ckpt_position()
        s.poll(1000) -- "b" logged, then the process dies before a batch takes it
        s.poll(1000)
        close(ssc)
        assert.are.same({{"a"}}, out)

        local ssc2, s2, out2 = logged(dir, {{"d"}})
        s2:_ckpt_resume(pos)
        ssc2:start()
        ssc2:advance(2)
        assert.are.same({{"b", "c", "d"}, {}}, out2)
        close(ssc2)
    end)

    it("fails the first batch after a restart, naming it, when the backlog cannot be read", function()
        local ssc, s = logged(dir, {{"a"}, {"b"}})
        ssc:start()
        ssc:advance(1)
        local pos = s:_ckpt_position()
        s.poll(1000)
        close(ssc)

        local ssc2, s2, _, errors = logged(dir, {})
        s2:_ckpt_resume(pos)
        ssc2:start()
        ssc2.wal:close()
        local ok, err = pcall(ssc2.advance, ssc2, 1)
        assert.is_false(ok)
        assert.matches("receiverStream(receiver): batch 1000 ms: the write-ahead log's blocks after seq 1 up to 2 "
            .. "could not be read: ECLOSED", err, 1, true)
        assert.are.same({}, errors)
        ssc2:stop()
    end)

    it("takes nothing twice after replaying a pending batch", function()
        local ssc, s = logged(dir, {{"a"}, {"b"}, {"c"}})
        ssc:start()
        ssc:advance(1)
        local pos = s:_ckpt_position()
        ssc:advance(1) -- batch 2 takes "b"; it never completes
        local t2, took = ssc.times[2], s:_ckpt_input(ssc.times[2])
        s.poll(1000) -- "c" logged, not taken
        close(ssc)

        local ssc2, s2, out2 = logged(dir, {})
        s2:_ckpt_resume(pos)
        assert.are.same({"b"}, s2:_ckpt_replay(t2, took):collect())
        ssc2:start()
        ssc2:advance(2)
        assert.are.same({{"c"}, {}}, out2)
        close(ssc2)
    end)

    it("reports a replayed batch whose blocks the WAL no longer holds in full", function()
        local ssc, s = logged(dir, {{"a", "b"}, {"c"}})
        ssc:start()
        ssc:advance(2)
        local t2 = ssc.times[2]
        local took = s:_ckpt_input(t2)
        close(ssc)
        -- The newest segment cut inside its last frame: "c" is gone.
        local seg = dir .. "/wal/" .. core.fs_list(dir .. "/wal")[1]
        local frames = crash.frames(seg)
        crash.truncate(seg, frames[#frames].offset + 5)

        local ssc2, s2, _, errors = logged(dir, {})
        assert.are.same({}, s2:_ckpt_replay(t2, took):collect())
        ssc2:start() -- what the WAL's opening cut is reported at start
        table.sort(errors)
        assert.are.equal(2, #errors)
        assert.matches("batch " .. t2 .. " ms: the write-ahead log holds 0 of the 1 records this batch took "
            .. "before the crash (its blocks after seq 1 up to 2): the replayed batch lacks the other 1", errors[2], 1, true)
        assert.matches("wal-0000000000000001.log: torn tail cut", errors[1] .. errors[2], 1, true)
        close(ssc2)
    end)

    it("says up to which WAL seq every block of its was taken (what a checkpoint lets the WAL release)", function()
        local ssc, s = logged(dir, {{"a"}, {"b"}, {"c"}})
        ssc:start()
        ssc:advance(1)
        assert.are.equal(1, s:_ckpt_wal_covered())
        local pos = s:_ckpt_position()
        s.poll(1000) -- seq 2 logged, not taken: not covered
        assert.are.equal(1, s:_ckpt_wal_covered())
        close(ssc)

        local ssc2, s2 = logged(dir, {{"d"}})
        s2:_ckpt_resume(pos)
        ssc2:start()
        assert.are.equal(1, s2:_ckpt_wal_covered()) -- the backlog (seq 2) is not taken yet
        ssc2:advance(1)
        assert.are.equal(3, s2:_ckpt_wal_covered())
        close(ssc2)
    end)

    it("reads its own blocks after recovery when the graph makes its streams in another order", function()
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual", checkpoint = dir, wal = true}
        ssc:addStreamingListener{onReceiverError = function() end} -- "stopped without finishing"
        local a = ssc:receiverStream(blocks_receiver({{"a1"}, {"a2"}})):name("a")
        local b = ssc:receiverStream(blocks_receiver({{"b1"}, {"b2"}})):name("b")
        a:union(b):collectBatches()
        ssc:start()
        ssc:advance(1)
        local pos_a, pos_b = a:_ckpt_position(), b:_ckpt_position()
        a.poll(1000) -- "a2" and "b2" logged, not taken
        b.poll(1000)
        close(ssc)

        local ssc2 = dstream.StreamingContext{batchInterval = 1, clock = "manual", checkpoint = dir, wal = true}
        local b2 = ssc2:receiverStream(blocks_receiver({})):name("b")
        local a2 = ssc2:receiverStream(blocks_receiver({})):name("a")
        local out_a, out_b = a2:collectBatches(), b2:collectBatches()
        a2:_ckpt_resume(pos_a)
        b2:_ckpt_resume(pos_b)
        ssc2:start()
        ssc2:advance(1)
        assert.are.same({{"a2"}}, out_a)
        assert.are.same({{"b2"}}, out_b)
        close(ssc2)
    end)

    it("holds a block the WAL refuses, reports it once and counts it only once it is logged", function()
        local ssc, s, out, errors = logged(dir, {{"a"}, {"b"}})
        ssc:start()
        ssc:advance(1)
        ssc.wal:close() -- every append fails from now on (ECLOSED)
        ssc:advance(2)
        assert.are.same({{"a"}, {}, {}}, out)
        assert.are.equal(1, #errors)
        assert.matches("the write-ahead log refused a block of 1 records", errors[1], 1, true)
        assert.are.equal(1, s.undelivered()) -- "b", held: a stop now reports it dropped
        ssc:stop()
        assert.matches("1 record received and not processed was dropped", errors[2], 1, true)
    end)

    it("drops, with a report, a block the WAL cannot hold", function()
        local ssc, _, out, errors = logged(dir, {{"a", print}, {"b"}})
        ssc:start()
        ssc:advance(2)
        assert.are.same({{}, {"b"}}, out)
        assert.matches("poll returned a block of 2 records the write-ahead log cannot hold", errors[1], 1, true)
        assert.matches("the block was dropped", errors[1], 1, true)
        close(ssc)
    end)
end)

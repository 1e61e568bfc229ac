-- Damaged files at the pipeline level: the newest checkpoint and the
-- write-ahead log are cut inside their last frame (at every byte offset for
-- the checkpoint, at offsets across the frame for the WAL) or get a bit
-- flipped, as a crash or a bad disk leaves them; the pipeline is started
-- again each time and must recover from the previous good state, with the
-- exact results, and say what it skipped.
-- DSTREAM_FAULT_SEED=<n> repeats a run; a failure prints its seed.
local crash = require("spec.helpers.crash")
local files = require("spec.helpers.files")
local core = require("dstream.core")

-- The name of the newest checkpoint file in dir (highest seq).
local function newest_checkpoint(dir)
    local best, best_seq
    for _, name in ipairs(crash.list(dir)) do
        local seq = tonumber(name:match("^checkpoint%-(%d+)%.%a+$"))
        if seq and (best_seq == nil or seq > best_seq) then best, best_seq = name, seq end
    end
    return best
end

-- The damages to try on the frame {offset, size} of a file: cuts at the
-- given offsets, and `flips` single bits at random places in the frame.
local function damages(frame, offsets, flips, random)
    local list = {}
    for _, off in ipairs(offsets) do
        list[#list + 1] = {what = "cut at byte " .. off, apply = function(path) crash.truncate(path, off) end}
    end
    for _ = 1, flips do
        local off, mask = frame.offset + random(0, frame.size - 1), 2 ^ random(0, 7)
        list[#list + 1] = {what = string.format("bit 0x%02x of byte %d flipped", mask, off),
            apply = function(path) crash.flip(path, off, mask) end}
    end
    return list
end

describe("a damaged checkpoint", function()
    -- A manual-clock file pipeline: arg[1] the input directory, arg[2] the
    -- checkpoint directory, arg[3] the file each batch's totals go to
    -- ("time <t>" first). It runs one batch and exits; given arg[4] (a file
    -- name) and arg[5] (its text), it runs one batch, writes that file into
    -- the input directory and runs two more (the file is read by the last).
    local PIPELINE = [[
local dstream = require "dstream"
local input, ckpt, out, drop, text = arg[1], arg[2], arg[3], arg[4], arg[5]
local ssc = dstream.StreamingContext.getOrCreate(ckpt, function()
    local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual", checkpoint = ckpt}
    ssc:textFileStream(input, {newFilesOnly = false})
        :mapToPair(function(line)
            local k, v = line:match("^(%S+) (%d+)$")
            return k, tonumber(v)
        end)
        :updateStateByKey(function(values, total)
            total = total or 0
            for i = 1, #values do total = total + values[i] end
            return total
        end)
        :foreachRDD(function(rdd, t)
            local lines = {"time " .. t}
            for _, kv in ipairs(rdd:collect()) do lines[#lines + 1] = kv[1] .. " " .. kv[2] end
            table.sort(lines, function(a, b) return a:sub(1, 4) == "time" or (b:sub(1, 4) ~= "time" and a < b) end)
            local f = assert(io.open(out, "w"))
            f:write(table.concat(lines, "\n"), "\n")
            f:close()
        end)
    return ssc
end)
ssc:start()
ssc:advance(1)
if drop then
    local f = assert(io.open(input .. "/." .. drop, "w"))
    f:write(text)
    f:close()
    assert(os.rename(input .. "/." .. drop, input .. "/" .. drop))
    ssc:advance(2)
end
ssc:stop()
]]

    -- Checkpoints: 1 written by the first start, before any batch; then of
    -- batches 1000 (f1: x 1), 2000 (f2: x 10), 3000 (f3: x 100, the first of
    -- its run: a full one, seq 4), 4000 (nothing: a delta) and 5000 (f4:
    -- x 1000, a delta, seq 6). Returns the directories and run(dir).
    local function five_checkpoints()
        local root = files.tmpdir()
        local d = {root = root, input = root .. "/in", ckpt = root .. "/ckpt", work = root .. "/work",
            out = root .. "/out"}
        assert(core.fs_mkdirs(d.input))
        files.write(root .. "/pipeline.lua", PIPELINE)
        function d.run(dir, ...)
            os.remove(d.out)
            local status, output = crash.run({"bin/dstream", "run", root .. "/pipeline.lua", d.input, dir, d.out, ...})
            return status, output, crash.read(d.out)
        end
        for i, want in ipairs({"time 1000\nx 1\n", "time 2000\nx 11\n", "time 5000\nx 1111\n"}) do
            crash.write_atomic(d.input, "f" .. i, "x " .. 10 ^ (i - 1) .. "\n")
            local status, output, got
            if i < 3 then
                status, output, got = d.run(d.ckpt)
            else
                status, output, got = d.run(d.ckpt, "f4", "x 1000\n")
            end
            assert.are.equal(want, got, output)
            assert.are.equal(0, status, output)
        end
        return d
    end

    -- Runs the pipeline once per damage on a copy of the checkpoints, with
    -- the file `name` damaged: it must write `want` and name the file.
    local function each_damage(d, name, cases, want, seed)
        for _, case in ipairs(cases) do
            crash.remove_tree(d.work)
            crash.copy_tree(d.ckpt, d.work)
            case.apply(d.work .. "/" .. name)
            local status, output, got = d.run(d.work)
            local where = string.format("%s, %s (seed %d):\n%s", name, case.what, seed, output)
            assert.are.equal(want, got, where)
            assert.are.equal(0, status, where)
            assert.matches(name, output, 1, true)
        end
    end

    it("is detected at every cut of the newest one's last frame and at flipped bits: the one before is used, "
        .. "with the exact totals, and reported", function()
        local seed = crash.seed()
        local random = crash.random(seed)
        local d = five_checkpoints()
        local name = newest_checkpoint(d.ckpt)
        assert.matches("^checkpoint%-0*6%.delta$", name)
        local frames = crash.frames(d.ckpt .. "/" .. name)
        local last = frames[#frames]
        local offsets = {}
        for off = last.offset, last.offset + last.size - 1 do offsets[#offsets + 1] = off end
        local cases = damages(last, offsets, 6, random)
        for _ = 1, 6 do -- and bits flipped anywhere in the file
            local off, mask = random(0, last.offset + last.size - 1), 2 ^ random(0, 7)
            cases[#cases + 1] = {what = string.format("bit 0x%02x of byte %d flipped", mask, off),
                apply = function(path) crash.flip(path, off, mask) end}
        end
        if os.getenv("DSTREAM_FAULT_VERBOSE") then
            print(string.format("%s: %d bytes, last frame %d bytes at %d; %d damages (seed %d)", name,
                last.offset + last.size, last.size, last.offset, #cases, seed))
        end
        -- Recovered from batch 4000: batch 5000 runs again and reads f4
        -- again (and only f4); the totals are exact.
        each_damage(d, name, cases, "time 5000\nx 1111\n", seed)
        crash.remove_tree(d.root)
    end)

    it("makes recovery fall back to the full checkpoint before a damaged one, skipping the deltas on it", function()
        local seed = crash.seed()
        local random = crash.random(seed)
        local d = five_checkpoints()
        local name = "checkpoint-0000000000000004.full"
        local frames = crash.frames(d.ckpt .. "/" .. name)
        local last = frames[#frames]
        local cases = damages(last, {last.offset, math.floor((last.offset + last.size) / 2)}, 0, random)
        for _ = 1, 3 do
            local off, mask = random(0, last.offset + last.size - 1), 2 ^ random(0, 7)
            cases[#cases + 1] = {what = string.format("bit 0x%02x of byte %d flipped", mask, off),
                apply = function(path) crash.flip(path, off, mask) end}
        end
        -- Recovered from batch 2000 (the full one before): batch 3000 reads
        -- f3 and f4, neither read in that checkpoint's view.
        each_damage(d, name, cases, "time 3000\nx 1111\n", seed)
        crash.remove_tree(d.root)
    end)
end)

describe("a damaged write-ahead log", function()
    -- arg[1] a port, arg[2] the checkpoint directory, arg[3] the counts
    -- file. With HANG set, the second batch that has data never ends (the
    -- process is killed there); without, every batch writes the counts.
    local PIPELINE = [[
local dstream = require "dstream"
local ffi = require "ffi"
ffi.cdef "int poll(void *fds, unsigned long nfds, int timeout);"
local port, ckpt, out = tonumber(arg[1]), arg[2], arg[3]
local hang, seen = os.getenv("HANG") ~= nil, 0
local ssc = dstream.StreamingContext.getOrCreate(ckpt, function()
    local ssc = dstream.StreamingContext{batchInterval = 0.05, checkpoint = ckpt, wal = true}
    ssc:socketTextStream("127.0.0.1", port, {backoffInitial = 0.01, backoffMax = 0.05})
        :mapToPair(function(line) return line, 1 end)
        :updateStateByKey(function(ones, count)
            count = count or 0
            for i = 1, #ones do count = count + ones[i] end
            return count
        end)
        :foreachRDD(function(rdd)
            local lines = {}
            for _, kv in ipairs(rdd:collect()) do lines[#lines + 1] = kv[1] .. " " .. kv[2] end
            table.sort(lines)
            local f = assert(io.open(out .. ".tmp", "w"))
            f:write(table.concat(lines, "\n"), "\n")
            f:close()
            assert(os.rename(out .. ".tmp", out))
        end)
    return ssc
end)
ssc:addStreamingListener{onBatchStarted = function(info)
    if hang and info.numRecords > 0 then
        seen = seen + 1
        if seen == 2 then
            io.stderr:write("hanging\n")
            ffi.C.poll(nil, 0, -1)
        end
    end
end}
ssc:start()
ssc:awaitTermination()
]]

    it("is cut at its last good frame when torn or flipped: every line before it counted once, reported", function()
        local seed = crash.seed()
        local random = crash.random(seed)
        local root = files.tmpdir()
        local ckpt, work, out, status_file = root .. "/ckpt", root .. "/work", root .. "/counts", root .. "/feeder"
        local script = root .. "/pipeline.lua"
        files.write(script, PIPELINE)
        -- A first run, fed numbered lines, killed in its second batch with data.
        local feeder = io.popen(string.format("cd %s && exec %s spec/helpers/feeder.lua --lines 400 --rate 200 "
            .. "--seconds 30 --status %s", crash.ROOT, crash.LUAJIT, status_file))
        local port, feeder_pid = (feeder:read("*l") or ""):match(":(%d+) pid (%d+)")
        assert(port, "the feeder did not start")
        local p = crash.spawn({"bin/dstream", "run", script, port, ckpt, out}, {env = {HANG = "1"}})
        local deadline = crash.now() + 30
        while not p:output():match("hanging") and p:alive() and crash.now() < deadline do crash.sleep(0.02) end
        assert.matches("hanging", p:output(), 1, true)
        p:kill()
        local _, first_output = p:finish(0)
        crash.kill_pid(tonumber(feeder_pid))
        feeder:close()

        -- What the log holds, and the last block's lines.
        local segs = crash.list(ckpt .. "/wal")
        local seg = segs[#segs]
        local wal = assert(core.wal_open(ckpt .. "/wal"))
        local arr, n, ends = wal:replay(0, 0)
        wal:close()
        assert(n > 0 and #ends >= 2, "the WAL holds too little to cut: " .. n .. " lines\n" .. first_output)
        local frames = crash.frames(ckpt .. "/wal/" .. seg)
        local last = frames[#frames]
        local want_parts, lost = {}, {}
        for i = 1, n do
            if i <= ends[#ends - 1] then want_parts[#want_parts + 1] = arr[i] .. " 1" else lost[#lost + 1] = arr[i] end
        end
        table.sort(want_parts)
        local want = table.concat(want_parts, "\n") .. "\n"
        local offsets = {last.offset, last.offset + 1, last.offset + 15, last.offset + 16,
            last.offset + random(17, last.size - 2), last.offset + last.size - 1}
        -- The same port (the graph names it), where nothing listens now: the
        -- lines come from the log only.
        local cases = damages(last, offsets, 4, random)
        if os.getenv("DSTREAM_FAULT_VERBOSE") then
            print(string.format("%s: %d blocks, last frame %d bytes at %d holding %d of %d lines; %d damages (seed %d)",
                seg, #frames, last.size, last.offset, #lost, n, #cases, seed))
        end
        for _, case in ipairs(cases) do
            crash.remove_tree(work)
            crash.copy_tree(ckpt, work)
            case.apply(work .. "/wal/" .. seg)
            os.remove(out)
            local q = crash.spawn({"bin/dstream", "run", script, port, work, out})
            deadline = crash.now() + 20
            while crash.read(out) ~= want and q:alive() and crash.now() < deadline do crash.sleep(0.02) end
            local code, output = q:finish(10)
            local where = string.format("%s of %s, %d lines lost with the last block (seed %d):\n%s",
                case.what, seg, #lost, seed, output)
            assert.are.equal(want, crash.read(out), where)
            assert.are.equal(0, code, where)
            -- The replayed batch says what it lacks; the WAL says what it
            -- cut, unless the cut fell between two frames (a block never
            -- written looks just like that).
            assert.matches("the replayed batch lacks the other " .. #lost .. "\n", output, 1, true)
            if case.what ~= "cut at byte " .. last.offset then assert.matches(seg, output, 1, true) end
        end
        crash.remove_tree(root)
    end)
end)

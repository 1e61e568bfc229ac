-- Recovery from checkpoints, in process, on the manual clock: a context runs
-- some batches and is dropped without stop() (a crash: no final checkpoint),
-- getOrCreate builds the next one from the checkpoint directory, and the
-- batches it runs give exactly what one context that never stopped gives.
--
-- The input is a queueStream whose queue the two contexts share: the first
-- takes the entries of the batches it ran, the recovered one the rest (a
-- queue is not recovered; here it stands for a source that is).
local dstream = require "dstream"
local core = require "dstream.core"
local driver = require "dstream.driver"
local files = require "helpers.files"
local batches = require "helpers.batches"

local function words(line)
    local out = {}
    for w in line:gmatch("%S+") do out[#out + 1] = w end
    return out
end

local function copy(input)
    local out = {}
    for i, e in ipairs(input) do out[i] = e end
    return out
end

local function context(dir)
    return dstream.StreamingContext{batchInterval = 1, clock = "manual", checkpoint = dir}
end

-- A crash: the engine closed, nothing more written, no stop().
local function crash(ssc)
    ssc._ckpt:close()
    driver.close_engine(ssc)
    ssc.state = "stopped"
end

-- What build(ssc, lines) collects over n batches of input in one context.
local function straight(input, build, n)
    local ssc = batches.context()
    local out = build(ssc, ssc:queueStream(copy(input))):collectBatches()
    ssc:start()
    ssc:advance(n or #input)
    ssc:stop()
    return batches.sorted_all(out)
end

-- The same with a crash after each of the batch counts in `crashes`
-- (ascending), each time recovering with getOrCreate. Returns the batches
-- collected, and the listener's reports.
local function crashed(input, build, crashes, n, dir)
    n = n or #input
    dir = dir or files.tmpdir()
    local queue = copy(input)
    local outs, reports = {}, {}
    local function create()
        local ssc = context(dir)
        ssc:addStreamingListener{onReceiverError = function(e) reports[#reports + 1] = e.message end}
        outs[#outs + 1] = build(ssc, ssc:queueStream(queue)):collectBatches()
        return ssc
    end
    local done = 0
    for _, at in ipairs(crashes) do
        local ssc = dstream.StreamingContext.getOrCreate(dir, create)
        ssc:start()
        ssc:advance(at - done)
        crash(ssc)
        done = at
    end
    local ssc = dstream.StreamingContext.getOrCreate(dir, create)
    ssc:start()
    ssc:advance(n - done)
    ssc:stop()
    local all = {}
    for _, out in ipairs(outs) do
        for _, b in ipairs(out) do all[#all + 1] = b end
    end
    return batches.sorted_all(all), reports
end

-- Input lines of words over `n` batches, some words in several batches,
-- some batches empty.
local function lines_input(n)
    local input = {}
    local vocab = {"a", "b", "c", "d", "e", "f"}
    for i = 1, n do
        local batch = {}
        if i % 5 ~= 0 then
            for j = 1, (i % 4) + 1 do
                batch[#batch + 1] = vocab[(i * j) % #vocab + 1] .. " " .. vocab[(i + j) % 3 + 1]
            end
        end
        input[i] = batch
    end
    return input
end

local function pairs_of(lines)
    return lines:flatMap(words):mapToPair(function(w) return w, 1 end)
end

local function sum(a, b) return a + b end
local function sub(a, b) return a - b end

-- Pipelines that keep something between batches.
local PIPELINES = {
    ["updateStateByKey"] = function(_, lines)
        return pairs_of(lines):updateStateByKey(function(vs, s)
            s = s or 0
            for i = 1, #vs do s = s + vs[i] end
            if s > 12 then return nil end -- keys are removed too
            return s
        end)
    end,
    ["updateStateByKey with an initial state"] = function(ssc, lines)
        return pairs_of(lines):updateStateByKey(function(vs, s) return (s or 0) + #vs end,
            ssc:parallelizePairs{a = 100, z = 7})
    end,
    ["mapWithState with a timeout, and its snapshots"] = function(ssc, lines)
        local spec = dstream.StateSpec(function(k, v, state, t)
            if state:isTimingOut() then return {k, "expired", state:get(), t} end
            local n = (state:getOption() or 0) + v
            if n % 5 == 0 then
                state:remove()
            else
                state:update(n)
            end
            return {k, n}
        end):timeout(2):initialState(ssc:parallelizePairs{q = 1})
        local mapped = pairs_of(lines):mapWithState(spec)
        return mapped:union(mapped:stateSnapshots():map(function(k, v) return {"snapshot", k, v} end))
    end,
    ["reduceByKeyAndWindow without invF"] = function(_, lines)
        return pairs_of(lines):reduceByKeyAndWindow(sum, 3, 1)
    end,
    ["reduceByKeyAndWindow with invF and filterF, slide 2"] = function(_, lines)
        return pairs_of(lines):reduceByKeyAndWindow(sum, sub, 4, 2, function(_, v) return v > 0 end)
    end,
    ["reduceByKeyAndWindow with dstream.sum and dstream.subtract (in C), slide 3"] = function(_, lines)
        return pairs_of(lines):reduceByKeyAndWindow(dstream.sum, dstream.subtract, 6, 3)
    end,
    ["reduceByKeyAndWindow with dstream.max (whole, in C), slide 2"] = function(_, lines)
        return pairs_of(lines):mapValues(function() return 2 end):reduceByKeyAndWindow(dstream.max, 4, 2)
    end,
    ["countByValueAndWindow, slide 2"] = function(_, lines)
        return lines:flatMap(words):countByValueAndWindow(4, 2)
    end,
    ["window with a slide longer than the batch"] = function(_, lines)
        return lines:window(4, 3)
    end,
    ["window with a slide longer than the window"] = function(_, lines)
        return lines:window(2, 3)
    end,
    ["countByWindow and reduceByWindow with invF"] = function(_, lines)
        local n = lines:map(function(l) return #l end)
        return n:countByWindow(4, 2):union(n:reduceByWindow(sum, sub, 4, 2):map(function(x) return -x end)
            :window(2, 2))
    end,
    ["reduceByWindow without invF, slide 2"] = function(_, lines)
        return lines:map(function(l) return #l end):reduceByWindow(math.max, 4, 2)
    end,
    ["groupByKeyAndWindow, slide 2"] = function(_, lines)
        return pairs_of(lines):groupByKeyAndWindow(4, 2):mapValues(function(vs) return #vs end)
    end,
    ["a window of a window"] = function(_, lines)
        return pairs_of(lines):reduceByKeyAndWindow(sum, sub, 2, 2):reduceByKeyAndWindow(sum, 6, 4)
    end,
}

local N = 14

describe("recovery with getOrCreate", function()
    local names = {}
    for name in pairs(PIPELINES) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do
        local build = PIPELINES[name]
        it("gives what a run that never stopped gives: " .. name .. ", crashed after each batch", function()
            local input = lines_input(N)
            local expected = straight(input, build, N)
            for at = 1, N - 1 do
                local got = crashed(input, build, {at}, N)
                assert.are.same(expected, got, "crashed after batch " .. at)
            end
        end)
    end

    it("recovers again and again: a crash every few batches, deltas chained on the recovered state", function()
        local input = lines_input(N)
        for _, name in ipairs({"mapWithState with a timeout, and its snapshots",
                "reduceByKeyAndWindow with invF and filterF, slide 2", "window with a slide longer than the batch"}) do
            local build = PIPELINES[name]
            assert.are.same(straight(input, build, N), (crashed(input, build, {2, 3, 7, 8, 11}, N)), name)
        end
    end)

    it("starts the recovered clock after the checkpointed batch", function()
        local dir = files.tmpdir()
        local times = {}
        local function create()
            local ssc = context(dir)
            ssc:queueStream({}):foreachRDD(function(_, t) times[#times + 1] = t end)
            return ssc
        end
        local ssc = dstream.StreamingContext.getOrCreate(dir, create)
        ssc:start()
        ssc:advance(3)
        crash(ssc)
        ssc = dstream.StreamingContext.getOrCreate(dir, create)
        assert.are.equal("initialized", ssc.state)
        ssc:start()
        ssc:advance(2)
        ssc:stop()
        assert.are.same({1000, 2000, 3000, 4000, 5000}, times)
    end)
end)

describe("getOrCreate", function()
    it("calls createFn and makes dir its checkpoint directory when it holds no checkpoint", function()
        local dir = files.tmpdir() .. "/new/ckpt"
        local calls = 0
        local ssc = dstream.StreamingContext.getOrCreate(dir, function()
            calls = calls + 1
            local c = batches.context()
            c:queueStream({}):print()
            return c
        end)
        assert.are.equal(1, calls)
        assert.are.equal(dir, ssc.checkpoint_dir)
        assert.are.equal("initialized", ssc.state)
        ssc:stop()
    end)

    it("raises for a createFn that returns no context, or one checkpointing elsewhere", function()
        local dir = files.tmpdir()
        local ok, err = pcall(dstream.StreamingContext.getOrCreate, dir, function() return 42 end)
        assert.is_false(ok)
        assert.matches("getOrCreate: createFn must return a StreamingContext, got number", err, 1, true)
        local other = files.tmpdir()
        ok, err = pcall(dstream.StreamingContext.getOrCreate, dir, function()
            local c = context(other)
            c:queueStream({}):print()
            return c
        end)
        assert.is_false(ok)
        assert.matches("the context createFn returned checkpoints to " .. other .. ", not to " .. dir, err, 1, true)
        ok, err = pcall(dstream.StreamingContext.getOrCreate, 5, function() end)
        assert.is_false(ok)
        assert.matches("getOrCreate: argument #1 (dir) must be a non-empty string", err, 1, true)
    end)

    it("does not apply an initial state again after recovery", function()
        local dir = files.tmpdir()
        local out
        local queue = {{{"a", 1}}, {{"a", 1}}}
        local function create()
            local ssc = context(dir)
            out = ssc:queueStream(queue):mapToPair(function(p) return p[1], p[2] end)
                :updateStateByKey(function(vs, s) return (s or 0) + #vs end, ssc:parallelizePairs{a = 10})
                :collectBatches()
            return ssc
        end
        local ssc = dstream.StreamingContext.getOrCreate(dir, create)
        ssc:start()
        ssc:advance(2)
        crash(ssc)
        ssc = dstream.StreamingContext.getOrCreate(dir, create)
        ssc:start()
        ssc:advance(1)
        ssc:stop()
        assert.are.same({{{"a", 12}}}, batches.plain_all(out))
    end)
end)

-- The checkpoint files of dir: names sorted.
local function listing(dir)
    local names = {}
    local p = io.popen("ls -1 '" .. dir .. "'")
    for line in p:lines() do names[#names + 1] = line end
    p:close()
    table.sort(names)
    return names
end

local function checkpoints(dir, suffix)
    local out = {}
    for _, name in ipairs(listing(dir)) do
        if name:match("^checkpoint%-%d+%." .. suffix .. "$") then out[#out + 1] = name end
    end
    return out
end

describe("checkpoints", function()
    it("writes a full checkpoint first and then deltas while the changes are small", function()
        local dir = files.tmpdir()
        local ssc = context(dir)
        local input = {}
        for i = 1, 12 do input[i] = {i == 1 and 2000 or 1} end
        ssc:queueStream(input):flatMap(function(n)
            local out = {}
            for i = 1, n do out[i] = i end
            return out
        end):mapToPair(function(k) return k, 1 end):updateStateByKey(function(vs, s)
            return (s or 0) + #vs
        end):foreachRDD(function() end)
        ssc:start()
        ssc:advance(12)
        ssc:stop()
        local full, delta = checkpoints(dir, "full"), checkpoints(dir, "delta")
        -- 1: written at start, before any batch (the inputs' positions); 2: the first batch's
        assert.are.same({"checkpoint-0000000000000001.full", "checkpoint-0000000000000002.full"}, full)
        assert.are.equal(11, #delta)
    end)

    it("writes a full checkpoint again once the deltas add up to more than the last full one", function()
        local dir = files.tmpdir()
        local ssc = context(dir)
        local input = {}
        for i = 1, 10 do input[i] = {"a b c d e f g h"} end
        local sizes = {}
        pairs_of(ssc:queueStream(input)):updateStateByKey(function(vs, s) return (s or 0) + #vs end)
            :foreachRDD(function() end)
        ssc:start()
        ssc:advance(10)
        crash(ssc)
        -- Every batch changes every key: a delta is about as big as a full one.
        local full = checkpoints(dir, "full")
        assert.is_true(#full >= 2, table.concat(listing(dir), " "))
        for _, name in ipairs(listing(dir)) do
            local f = io.open(dir .. "/" .. name, "rb")
            sizes[name] = f:seek("end")
            f:close()
        end
        -- Between two fulls, the deltas add up to more than the first.
        local names = listing(dir)
        local last_full, deltas
        for _, name in ipairs(names) do
            if name:match("%.full$") then
                if last_full then assert.is_true(deltas > sizes[last_full], name) end
                last_full, deltas = name, 0
            elseif name:match("%.delta$") and last_full then
                deltas = deltas + sizes[name]
            end
        end
    end)

    it("recovers a crash before the first batch completed: files there at the first start stay unread", function()
        local dir, input = files.tmpdir(), files.tmpdir()
        files.write(input .. "/before.txt", "old\n")
        local got = {}
        local function create()
            local ssc = context(dir)
            ssc:textFileStream(input):foreachRDD(function(rdd)
                for _, line in ipairs(rdd:collect()) do got[#got + 1] = line end
            end)
            return ssc
        end
        local ssc = dstream.StreamingContext.getOrCreate(dir, create)
        ssc:start()
        crash(ssc) -- before any batch: only the checkpoint start() wrote is there
        files.write(input .. "/after.txt", "new\n")
        ssc = dstream.StreamingContext.getOrCreate(dir, create)
        ssc:start()
        ssc:advance(3)
        ssc:stop()
        assert.are.same({"new"}, got)
    end)

    it("writes a last full checkpoint at stop{graceful = true}", function()
        local dir = files.tmpdir()
        local ssc = context(dir)
        pairs_of(ssc:queueStream({{"a"}, {"b"}, {"a"}})):updateStateByKey(function(vs, s)
            return (s or 0) + #vs
        end):foreachRDD(function() end)
        ssc:start()
        ssc:advance(3)
        local before = checkpoints(dir, "full")
        ssc:stop{graceful = true}
        local after = checkpoints(dir, "full")
        assert.are_not.equal(before[#before], after[#after]) -- a new full (the two newest are kept)
        local names = listing(dir)
        assert.are.equal(after[#after], names[#names])
    end)

    it("uses the previous checkpoint when the newest is corrupt, and says so", function()
        local input = lines_input(N)
        local build = PIPELINES["mapWithState with a timeout, and its snapshots"]
        local expected = straight(input, build, N)
        local dir = files.tmpdir()
        local queue = copy(input)
        local outs, reports = {}, {}
        local function create()
            local ssc = context(dir)
            ssc:addStreamingListener{onReceiverError = function(e) reports[#reports + 1] = e.message end}
            outs[#outs + 1] = build(ssc, ssc:queueStream(queue)):collectBatches()
            return ssc
        end
        local ssc = dstream.StreamingContext.getOrCreate(dir, create)
        ssc:start()
        ssc:advance(7)
        crash(ssc)
        -- Flip a byte in the middle of the newest checkpoint.
        local names = checkpoints(dir, "delta")
        local newest = dir .. "/" .. names[#names]
        local bytes = files.read(newest)
        local mid = math.floor(#bytes / 2)
        files.write(newest, bytes:sub(1, mid - 1) .. string.char((bytes:byte(mid) + 1) % 256) .. bytes:sub(mid + 1))
        -- Batch 7 runs again: its input goes back into the queue (a source
        -- that can be replayed does that by itself).
        table.insert(queue, 1, input[7])
        ssc = dstream.StreamingContext.getOrCreate(dir, create)
        assert.is_true(#reports >= 2)
        ssc:start()
        local said = table.concat(reports, "\n")
        assert.matches(names[#names], said, 1, true)
        assert.matches("recovered from checkpoint %d+ %(batch time 6000 ms%)", said)
        ssc:advance(N - 6)
        ssc:stop()
        -- Batches 1-7 from the first run, 7 again and the rest from the second.
        local got = batches.sorted_all(outs[2])
        for i = 7, N do
            assert.are.same(expected[i], got[i - 6], "batch " .. i)
        end
    end)

    it("tells a listener added after getOrCreate, at start(), what was damaged", function()
        local dir = files.tmpdir()
        local function create()
            local ssc = context(dir)
            pairs_of(ssc:queueStream({{"a"}, {"b"}})):updateStateByKey(function(vs, s) return (s or 0) + #vs end)
                :foreachRDD(function() end)
            return ssc
        end
        local ssc = dstream.StreamingContext.getOrCreate(dir, create)
        ssc:start()
        ssc:advance(2)
        crash(ssc)
        local names = checkpoints(dir, "delta")
        files.write(dir .. "/" .. names[#names], "garbage")
        ssc = dstream.StreamingContext.getOrCreate(dir, create)
        local heard = {}
        ssc:addStreamingListener{onReceiverError = function(e) heard[#heard + 1] = e end}
        assert.are.equal(0, #heard)
        ssc:start()
        ssc:stop()
        assert.is_true(#heard >= 2)
        assert.are.equal("checkpoint", heard[1].source)
        assert.matches(names[#names], heard[1].message, 1, true)
        assert.matches("recovered from checkpoint 2 (batch time 1000 ms)", heard[#heard].message, 1, true)
    end)

    it("writes an input's position into a delta only when it changed, and resumes from the newest", function()
        local dir = files.tmpdir()
        local resumed
        local function create()
            local ssc = context(dir)
            local lines = ssc:queueStream({})
            local batches_seen = 0
            lines._ckpt_position = function()
                batches_seen = batches_seen + 1
                return "position " .. math.floor(batches_seen / 3)
            end
            lines._ckpt_resume = function(_, data) resumed = data end
            lines:foreachRDD(function() end)
            return ssc
        end
        local ssc = dstream.StreamingContext.getOrCreate(dir, create)
        ssc:start()
        ssc:advance(7)
        crash(ssc)
        local cp = assert(core.checkpoint_open(dir))
        local loaded = assert(cp:load())
        cp:close()
        local written = {}
        for _, file in ipairs(loaded.chain) do
            for _, sec in ipairs(file.sections) do
                if sec.name == "p0" then written[#written + 1] = sec.data end
            end
        end
        -- Each value once per chain (a full one writes it again).
        for i = 2, #written do assert.are_not.equal(written[i - 1], written[i]) end
        assert.is_true(#written < #loaded.chain)
        ssc = dstream.StreamingContext.getOrCreate(dir, create)
        assert.are.equal("position 2", resumed)
        ssc:stop()
    end)

    it("re-runs a batch that failed, from the inputs recorded before it ran, with the fixed closure", function()
        local dir = files.tmpdir()
        local input = lines_input(8)
        local build = PIPELINES["mapWithState with a timeout, and its snapshots"]
        local expected = straight(input, build, 8)
        local queue = copy(input)
        local broken = true
        local outs = {}
        local function create()
            local ssc = context(dir)
            local lines = ssc:queueStream(queue)
            -- An input that says what each batch took, and takes it again.
            lines._ckpt_input = function(s, t)
                local r = s.generated[t]
                return core.encode(r.a, r.n)
            end
            lines._ckpt_replay = function(s, t, data)
                local a, n = core.decode(data)
                return dstream.RDD.new(n, a, nil, {n}, t, s:_rdd_id(t))
            end
            local out = build(ssc, lines)
            local collected = {}
            out:foreachRDD(function(rdd, t)
                if broken and t == 5000 then error("a bug in batch 5") end
                collected[#collected + 1] = rdd:collect()
            end)
            outs[#outs + 1] = collected
            return ssc
        end
        local ssc = dstream.StreamingContext.getOrCreate(dir, create)
        ssc:start()
        ssc:advance(4)
        local ok, err = pcall(ssc.advance, ssc, 1)
        assert.is_false(ok)
        assert.matches("a bug in batch 5", err, 1, true)
        crash(ssc) -- the process ends on the error
        local pending = {}
        for _, name in ipairs(listing(dir)) do
            if name:match("^pending") then pending[#pending + 1] = name end
        end
        assert.are.equal("pending-0000000000005000", pending[#pending])
        broken = false
        ssc = dstream.StreamingContext.getOrCreate(dir, create)
        ssc:start()
        ssc:advance(4)
        ssc:stop()
        local all = {}
        for _, out in ipairs(outs) do
            for _, b in ipairs(out) do all[#all + 1] = b end
        end
        assert.are.same(expected, batches.sorted_all(all))
    end)
end)

describe("checkpoint failures", function()
    it("reports a checkpoint that cannot be written, carries on, and writes a full one next", function()
        local dir = files.tmpdir()
        local reports = {}
        local ssc = context(dir)
        ssc:addStreamingListener{onReceiverError = function(e) reports[#reports + 1] = e end}
        local out = pairs_of(ssc:queueStream({{"a"}, {"a"}, {"a"}, {"a"}})):updateStateByKey(function(vs, s)
            return (s or 0) + #vs
        end):collectBatches()
        ssc:start()
        ssc:advance(2)
        os.execute("rm -rf '" .. dir .. "'")
        ssc:advance(1)
        assert.are.equal(1, #reports)
        assert.are.equal("checkpoint", reports[1].source)
        assert.matches("the checkpoint of batch 3000 ms could not be written", reports[1].message, 1, true)
        assert.matches("the next one will be a full one", reports[1].message, 1, true)
        assert(core.fs_mkdirs(dir))
        ssc:advance(1)
        ssc:stop()
        assert.are.same({{{"a", 1}}, {{"a", 2}}, {{"a", 3}}, {{"a", 4}}}, batches.plain_all(out))
        local names = listing(dir)
        assert.are.equal(1, #names, table.concat(names, " "))
        assert.matches("^checkpoint%-%d+%.full$", names[1])
    end)

    it("raises rather than start afresh when no checkpoint in the directory can be read", function()
        local dir = files.tmpdir()
        local ssc = context(dir)
        ssc:queueStream({{"a"}}):foreachRDD(function() end)
        ssc:start()
        ssc:advance(2)
        crash(ssc)
        for _, name in ipairs(listing(dir)) do files.write(dir .. "/" .. name, "not a checkpoint") end
        local called = false
        local ok, err = pcall(dstream.StreamingContext.getOrCreate, dir, function()
            called = true
            return context(dir)
        end)
        assert.is_false(ok)
        assert.matches("getOrCreate: no checkpoint in " .. dir .. " can be used", err, 1, true)
        assert.matches("move the directory away to start afresh", err, 1, true)
        assert.is_false(called)
    end)
end)

describe("the write-ahead log option", function()
    it("needs a checkpoint directory, and says so at start()", function()
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual", wal = true}
        ssc:queueStream({}):foreachRDD(function() end)
        local ok, err = pcall(ssc.start, ssc)
        assert.is_false(ok)
        assert.matches("start: wal = true needs a checkpoint directory", err, 1, true)
        ssc:stop()
        ok, err = pcall(dstream.StreamingContext, {batchInterval = 1, wal = "yes"})
        assert.is_false(ok)
        assert.matches("StreamingContext: wal must be true or false", err, 1, true)
    end)

    it("opens the log in <checkpoint dir>/wal for the sources, and closes it at stop", function()
        local dir = files.tmpdir()
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual", wal = true, checkpoint = dir}
        assert.is_not_nil(ssc.wal)
        assert.are.equal(0, ssc.wal:last_seq())
        local seq = ssc.wal:append(0, core.encode({"x"}, 1))
        ssc:queueStream({}):foreachRDD(function() end)
        ssc:start()
        ssc:advance(1)
        ssc:stop()
        assert.is_nil(ssc.wal)
        local wal = assert(core.wal_open(dir .. "/wal"))
        assert.are.equal(seq, wal:last_seq())
        wal:close()
    end)

    it("reports at start() what opening the log cut off a torn segment", function()
        local dir = files.tmpdir()
        local wal = assert(core.wal_open(dir .. "/wal"))
        wal:append(0, core.encode({"x"}, 1))
        wal:close()
        local seg
        for _, name in ipairs(listing(dir .. "/wal")) do seg = dir .. "/wal/" .. name end
        files.append(seg, "torn tail")
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual", wal = true, checkpoint = dir}
        local reports = {}
        ssc:addStreamingListener{onReceiverError = function(e) reports[#reports + 1] = e end}
        ssc:queueStream({}):foreachRDD(function() end)
        ssc:start()
        ssc:stop()
        assert.are.equal(1, #reports)
        assert.are.equal("write-ahead log", reports[1].source)
        assert.matches(seg:match("[^/]+$"), reports[1].message, 1, true)
    end)

    it("lets the log drop what each checkpointed batch took", function()
        local dir = files.tmpdir()
        local released, appended = {}, 0
        local function create()
            local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual", wal = true, checkpoint = dir}
            local real = ssc.wal
            -- The log as the driver sees it: appends counted, releases recorded.
            ssc.wal = {last_seq = function() return appended end, release = function(_, seq)
                released[#released + 1] = seq
            end, close = function() real:close() end}
            ssc:queueStream({}):foreachRDD(function() appended = appended + 2 end)
            return ssc
        end
        local ssc = dstream.StreamingContext.getOrCreate(dir, create)
        ssc:start()
        ssc:advance(3)
        -- Each batch took what was appended before it (the output appends
        -- after); the log drops it once the NEXT checkpoint is written, so a
        -- damaged newest checkpoint can fall back one and re-run the batch.
        assert.are.same({0, 2}, released)
        ssc:stop()
    end)
end)

describe("dstream run with getOrCreate", function()
    local SCRIPT = [[
local dstream = require "dstream"
local dir = arg[1]
local polls = 0
local ssc = dstream.StreamingContext.getOrCreate(dir, function()
    local ssc = dstream.StreamingContext{batchInterval = 0.05}
    ssc:receiverStream{start = function() end, stop = function() end, poll = function()
        polls = polls + 1
        if polls <= 3 then return {"x"} end
        return {}
    end}:mapToPair(function(w) return w, 1 end):updateStateByKey(function(vs, s) return (s or 0) + #vs end)
        :foreachRDD(function(rdd)
            local c = rdd:collect()
            if #c > 0 then io.write("total ", c[1][2], "\n") io.flush() end
        end)
    return ssc
end)
ssc:start()
ssc:awaitTermination()
print("stopped cleanly")
]]

    -- Runs the script until its output has `ready`, then SIGTERM; returns its output and status.
    local function run_until(path, dir, ready)
        local log = os.tmpname()
        local p = assert(io.popen(string.format([[(
bin/dstream run %s %s > %s 2>&1 &
pid=$!
for i in $(seq 400); do grep -q '%s' %s && break; sleep 0.05; done
kill -TERM $pid
wait $pid
status=$?
cat %s
echo "exit=$status")]], path, dir, log, ready, log, log)))
        local out = p:read("*a")
        p:close()
        os.remove(log)
        return out, tonumber(out:match("exit=(%d+)%s*$"))
    end

    it("stops on SIGTERM with a last full checkpoint, and the next run carries on from it", function()
        local path = os.tmpname() .. ".lua"
        files.write(path, SCRIPT)
        local dir = files.tmpdir()
        local out, code = run_until(path, dir, "^total 3$")
        assert.are.equal(0, code, out)
        assert.matches("stopped cleanly", out, 1, true)
        local names = listing(dir)
        local newest
        for _, name in ipairs(names) do
            if name:match("^checkpoint") then newest = name end
        end
        assert.matches("%.full$", newest)
        out, code = run_until(path, dir, "^total 6$")
        os.remove(path)
        assert.are.equal(0, code, out)
        assert.matches("total 6", out, 1, true)
        assert.not_matches("total 1\n", out)
        assert.matches("stopped cleanly", out, 1, true)
    end)
end)

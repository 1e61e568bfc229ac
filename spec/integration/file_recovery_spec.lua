-- Exactly once for files, proven by kill -9: a pipeline keeps running totals
-- (updateStateByKey, then mapWithState) of the files streaming into a
-- directory and writes them out after every batch; it is killed at random
-- moments and started again each time, files keep arriving while it runs
-- and while it is down, and at the end its totals equal the exact sums.
-- DSTREAM_FAULT_SEED=<n> repeats a run; a failure prints its seed.
local crash = require("spec.helpers.crash")
local files = require("spec.helpers.files")
local core = require("dstream.core")

local KILLS = 12 -- per case; the suite's kill -9 count is the sum over the fault specs

-- The pipeline: arg[1] the input directory, arg[2] the checkpoint
-- directory, arg[3] the totals file, arg[4] "update" or "mapWithState",
-- arg[5] "new" for newFilesOnly (the default), "all" for newFilesOnly = false.
local PIPELINE = [[
local dstream = require "dstream"
local input, ckpt, out, mode, new_only = arg[1], arg[2], arg[3], arg[4], arg[5] == "new"

local function write_atomic(path, data)
    local f = assert(io.open(path .. ".tmp", "w"))
    f:write(data)
    f:close()
    assert(os.rename(path .. ".tmp", path))
end

local function sum(values, total)
    total = total or 0
    for i = 1, #values do total = total + values[i] end
    return total
end

local ssc = dstream.StreamingContext.getOrCreate(ckpt, function()
    local ssc = dstream.StreamingContext{batchInterval = 0.05, checkpoint = ckpt}
    local amounts = ssc:textFileStream(input, {newFilesOnly = new_only}):mapToPair(function(line)
        local k, v = line:match("^(%S+) (%d+)$")
        return k, tonumber(v)
    end)
    local totals
    if mode == "update" then
        totals = amounts:updateStateByKey(sum)
    else
        totals = amounts:mapWithState(dstream.StateSpec(function(k, v, state)
            local total = (state:getOption() or 0) + v
            state:update(total)
            return {k, total}
        end)):stateSnapshots()
    end
    totals:foreachRDD(function(rdd, t)
        local lines = {}
        for _, kv in ipairs(rdd:collect()) do lines[#lines + 1] = kv[1] .. " " .. kv[2] end
        table.sort(lines)
        write_atomic(out, table.concat(lines, "\n") .. "\n")
    end)
    return ssc
end)
ssc:start()
ssc:awaitTermination()
]]

local KEYS = {"apple", "pear", "plum", "fig", "kiwi", "lime", "date"}

-- A stream of input files: each a few lines "<key> <amount>", named in order.
local function producer(dir, random)
    local p = {dir = dir, n = 0, totals = {}}
    -- ignored: the file is not to be read (there before the first start).
    function p.drop(ignored)
        p.n = p.n + 1
        local lines = {}
        for i = 1, random(1, 6) do
            local k, v = KEYS[random(1, #KEYS)], random(1, 1000)
            if not ignored then p.totals[k] = (p.totals[k] or 0) + v end
            lines[i] = k .. " " .. v
        end
        crash.write_atomic(dir, string.format("part-%05d.txt", p.n), table.concat(lines, "\n") .. "\n")
    end
    function p.expected()
        local lines = {}
        for k, v in pairs(p.totals) do lines[#lines + 1] = k .. " " .. v end
        table.sort(lines)
        return table.concat(lines, "\n") .. "\n"
    end
    return p
end

-- Runs the pipeline in `mode` through `kills` kills and a last run; returns
-- what it wrote last, what was expected, the kill count and the seed.
-- new_only: files are there before the first start (never to be read), and
-- the kills begin once the first checkpoint is written (before it, a
-- restart is a first start: it leaves every file there alone).
local function kill_and_restart(mode, kills_wanted, new_only)
    local seed = crash.seed()
    local random = crash.random(seed)
    local root = files.tmpdir()
    local input, ckpt, out = root .. "/in", root .. "/ckpt", root .. "/totals"
    assert(core.fs_mkdirs(input))
    local script = root .. "/pipeline.lua"
    files.write(script, PIPELINE)
    local feed = producer(input, random)
    local args = {"bin/dstream", "run", script, input, ckpt, out, mode, new_only and "new" or "all"}
    local kills, down_files = 0, 0
    local function fail(p, what)
        local _, output = p:finish(1)
        error(string.format("%s (seed %d, kill %d, mode %s):\n%s", what, seed, kills, mode, output), 0)
    end
    if new_only then
        for _ = 1, 5 do feed.drop(true) end
        local p = crash.spawn(args)
        local deadline = crash.now() + 30
        local function checkpointed()
            for _, name in ipairs(crash.list(ckpt) or {}) do
                if name:match("^checkpoint%-%d+%.%a+$") then return true end -- not a .tmp being written
            end
            return false
        end
        while not checkpointed() and crash.now() < deadline do
            if not p:alive() then fail(p, "the pipeline exited by itself") end
            crash.sleep(0.02)
        end
        p:kill()
        kills = kills + 1
        p:finish(0)
    end
    for round = kills + 1, kills_wanted do
        local p = crash.spawn(args)
        local stop_at = crash.now() + 0.05 + random() * 0.6
        while crash.now() < stop_at do
            if random() < 0.5 then feed.drop() end
            crash.sleep(0.01 + random() * 0.03)
        end
        if not p:alive() then fail(p, "the pipeline exited by itself") end
        p:kill()
        kills = kills + 1
        p:finish(0)
        -- Files that arrive while it is down (at least once).
        for _ = 1, (round == kills_wanted and 2 or random(0, 2)) do
            feed.drop()
            down_files = down_files + 1
        end
    end
    os.remove(out) -- what the last run writes, not a file left before it started (and can take a SIGTERM)
    local p = crash.spawn(args)
    local want = feed.expected()
    local deadline = crash.now() + 60
    while crash.read(out) ~= want and crash.now() < deadline do
        if not p:alive() then fail(p, "the last run exited by itself") end
        crash.sleep(0.05)
    end
    local got = crash.read(out)
    local status, output = p:finish(10)
    crash.remove_tree(root)
    return {got = got, want = want, kills = kills, seed = seed, files = feed.n, down_files = down_files,
        status = status, output = output}
end

describe("textFileStream with a checkpoint, killed with SIGKILL and restarted", function()
    for _, mode in ipairs({"update", "mapWithState"}) do
        it("ends with the exact totals of every file (" .. mode .. "), those dropped while it was down too", function()
            local r = kill_and_restart(mode, KILLS)
            local where = string.format("seed %d, %d kills, %d files (%d while down)\n%s", r.seed, r.kills,
                r.files, r.down_files, r.output)
            if os.getenv("DSTREAM_FAULT_VERBOSE") then print(where:match("^[^\n]*")) end
            assert.are.equal(r.want, r.got, where)
            assert.are.equal(KILLS, r.kills)
            assert.are.equal(0, r.status, where)
        end)
    end

    it("never reads the files there before the first start (newFilesOnly), and reads every later one once", function()
        local r = kill_and_restart("update", 8, true)
        local where = string.format("seed %d, %d kills, %d files (%d while down)\n%s", r.seed, r.kills,
            r.files, r.down_files, r.output)
        if os.getenv("DSTREAM_FAULT_VERBOSE") then print(where:match("^[^\n]*")) end
        assert.are.equal(r.want, r.got, where)
        assert.are.equal(8, r.kills)
        assert.are.equal(0, r.status, where)
    end)
end)

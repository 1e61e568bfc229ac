-- At least once becomes exactly once with the write-ahead log: a pipeline
-- reads numbered lines over a socket with wal = true and counts each line
-- in keyed state; it is deliberately slow (each batch takes three batch
-- intervals), so received lines wait in the WAL, and it is killed with
-- SIGKILL at random moments and restarted. After each kill the spec reads
-- the WAL as the next start will (core.wal_open + replay): every line that
-- was there - accepted - must end up counted, and no line counted twice.
-- DSTREAM_FAULT_SEED=<n> repeats a run; a failure prints its seed.
local crash = require("spec.helpers.crash")
local files = require("spec.helpers.files")
local core = require("dstream.core")

local KILLS = 8
local LINES, RATE = 2500, 500

-- arg[1] the feeder's port, arg[2] the checkpoint directory, arg[3] the
-- counts file. Every batch sleeps 150 ms (3 intervals) unless FAST is set.
local PIPELINE = [[
local dstream = require "dstream"
local ffi = require "ffi"
ffi.cdef "int poll(void *fds, unsigned long nfds, int timeout);"
local port, ckpt, out = tonumber(arg[1]), arg[2], arg[3]
local slow = os.getenv("FAST") == nil and 150 or 0

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
            ffi.C.poll(nil, 0, slow)
            local lines = {}
            for _, kv in ipairs(rdd:collect()) do lines[#lines + 1] = kv[1] .. " " .. kv[2] end
            local f = assert(io.open(out .. ".tmp", "w"))
            f:write(table.concat(lines, "\n"), "\n")
            f:close()
            assert(os.rename(out .. ".tmp", out))
        end)
    return ssc
end)
ssc:start()
ssc:awaitTermination()
]]

-- The counts file as {line = count}.
local function counts(path)
    local c = {}
    for line, n in (crash.read(path) or ""):gmatch("(%S+) (%d+)\n") do c[line] = tonumber(n) end
    return c
end

-- The lines in the WAL under dir, as the next start reads them: {line = true}.
local function wal_lines(dir)
    local wal, err = core.wal_open(dir)
    if not wal then
        if not io.open(dir) then return {} end
        error("the WAL could not be opened: " .. tostring(err))
    end
    local arr, n = wal:replay(0, 0, nil) -- stream 0: the socket, the graph's first stream
    wal:close()
    local set = {}
    for i = 1, n do set[arr[i]] = true end
    return set
end

describe("socketTextStream with wal = true, killed with SIGKILL while data waits", function()
    it("counts every line that was in the write-ahead log exactly once", function()
        local seed = crash.seed()
        local random = crash.random(seed)
        local root = files.tmpdir()
        local ckpt, out, status = root .. "/ckpt", root .. "/counts", root .. "/feeder"
        local script = root .. "/pipeline.lua"
        files.write(script, PIPELINE)
        local feeder = io.popen(string.format("cd %s && exec %s spec/helpers/feeder.lua --lines %d --rate %d "
            .. "--seconds 90 --status %s", crash.ROOT, crash.LUAJIT, LINES, RATE, status))
        local port, feeder_pid = (feeder:read("*l") or ""):match(":(%d+) pid (%d+)")
        assert(port, "the feeder did not start")
        local args = {"bin/dstream", "run", script, port, ckpt, out}
        local accepted, waiting, kills = {}, 0, 0
        local function fail(p, what)
            local _, output = p:finish(1)
            error(string.format("%s (seed %d, kill %d):\n%s", what, seed, kills, output), 0)
        end
        for _ = 1, KILLS do
            local p = crash.spawn(args)
            crash.sleep(0.3 + random() * 0.5)
            if not p:alive() then fail(p, "the pipeline exited by itself") end
            p:kill()
            kills = kills + 1
            p:finish(0)
            -- What the WAL holds now was accepted; what is not counted yet waits.
            local done = counts(out)
            for line in pairs(wal_lines(ckpt .. "/wal")) do
                accepted[line] = true
                if not done[line] then waiting = waiting + 1 end
            end
        end
        -- The last run: until the feeder has sent everything and the counts
        -- hold every accepted line, then a graceful stop.
        os.remove(out) -- what the last run writes, not a file left before it started (and can take a SIGTERM)
        local p = crash.spawn(args, {env = {FAST = "1"}})
        local deadline = crash.now() + 60
        local function all_counted()
            if not (crash.read(status) or ""):match("^done") then return false end
            local c = counts(out)
            for line in pairs(accepted) do
                if not c[line] then return false end
            end
            return true
        end
        while not all_counted() and crash.now() < deadline do
            if not p:alive() then fail(p, "the last run exited by itself") end
            crash.sleep(0.05)
        end
        crash.sleep(0.3) -- lines received last: into the graceful stop's batches
        local code, output = p:finish(10)
        crash.kill_pid(tonumber(feeder_pid))
        feeder:close()
        for line in pairs(wal_lines(ckpt .. "/wal")) do accepted[line] = true end
        local c = counts(out)
        local missing, twice, naccepted, ncounted = {}, {}, 0, 0
        for line in pairs(accepted) do
            naccepted = naccepted + 1
            if not c[line] then missing[#missing + 1] = line end
        end
        for line, n in pairs(c) do
            ncounted = ncounted + 1
            if n ~= 1 then twice[#twice + 1] = line .. " x" .. n end
        end
        table.sort(missing)
        table.sort(twice)
        local where = string.format("seed %d, %d kills, %d lines seen in the WAL, %d counted, %d waiting at kills\n%s",
            seed, kills, naccepted, ncounted, waiting, output)
        if os.getenv("DSTREAM_FAULT_VERBOSE") then print(where:match("^[^\n]*")) end
        assert.are.same({}, missing, where)
        assert.are.same({}, twice, where)
        assert.is_true(waiting > 0, "no kill landed while accepted lines waited: " .. where)
        assert.are.equal(0, code, where)
        crash.remove_tree(root)
    end)
end)

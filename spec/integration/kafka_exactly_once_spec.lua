-- Exactly once from Kafka, end to end, with real processes really killed: a
-- pipeline reading a topic keeps per-word totals in keyed state (written
-- to a file every batch) and adds each batch's counts to SQLite with the
-- idempotent pattern of examples/exactly_once_sqlite.lua. It is killed with
-- SIGKILL again and again while records keep arriving, and restarted with
-- getOrCreate each time; at the end both the state and the SQLite totals
-- equal the exact counts of the topic. One kill lands at the worst moment
-- (right after a batch's SQLite commit, before its checkpoint): only a
-- replay of exactly the batch's offset ranges keeps SQLite exact then, which
-- the second spec shows by turning the replay off.
local K = require("spec.helpers.kafka")
local crash = require("spec.helpers.crash")
local files = require("spec.helpers.files")

local JOB = [=[
local dstream = require "dstream"
local sqlite3 = require "luasql.sqlite3"
local ffi = require "ffi"
ffi.cdef "int getpid(void); int kill(int pid, int sig);"
local brokers, topic, ckpt, db_file, state_file = arg[1], arg[2], arg[3], arg[4], arg[5]
local crash_after, commits = tonumber(os.getenv("CRASH_AFTER_COMMITS")), 0
local env = assert(sqlite3.sqlite3())
local db = assert(env:connect(db_file))
assert(db:execute("PRAGMA synchronous = FULL"))
assert(db:execute("CREATE TABLE IF NOT EXISTS totals (word TEXT PRIMARY KEY, n INTEGER NOT NULL)"))
assert(db:execute("CREATE TABLE IF NOT EXISTS progress (id INTEGER PRIMARY KEY, last_batch INTEGER NOT NULL)"))
assert(db:execute("INSERT OR IGNORE INTO progress VALUES (1, -1)"))

local function write_batch(rdd, t)
    assert(db:execute("BEGIN IMMEDIATE"))
    local cur = assert(db:execute("SELECT last_batch FROM progress WHERE id = 1"))
    local last = tonumber(cur:fetch())
    cur:close()
    if last >= t then
        assert(db:execute("ROLLBACK"))
        return
    end
    local rows = 0
    rdd:foreach(function(w, n)
        rows = rows + 1
        assert(db:execute(string.format("INSERT INTO totals VALUES ('%s', %d) ON CONFLICT(word) DO UPDATE "
            .. "SET n = n + excluded.n", db:escape(w), n)))
    end)
    assert(db:execute(string.format("UPDATE progress SET last_batch = %d WHERE id = 1", t)))
    assert(db:execute("COMMIT"))
    if rows > 0 then
        commits = commits + 1
        if commits == crash_after then ffi.C.kill(ffi.C.getpid(), 9) end
    end
end

local function write_state(rdd)
    local lines = {}
    rdd:foreach(function(w, n) lines[#lines + 1] = w .. " " .. n end)
    table.sort(lines)
    local f = assert(io.open(state_file .. ".tmp", "wb"))
    f:write(table.concat(lines, "\n"), "\n")
    f:close()
    assert(os.rename(state_file .. ".tmp", state_file))
end

local function create()
    local ssc = dstream.StreamingContext{batchInterval = 0.2, checkpoint = ckpt}
    local words = ssc:kafkaStream{brokers = brokers, topics = {topic}, startingOffsets = "earliest",
        options = {["socket.timeout.ms"] = "5000"}}:name("words")
    if os.getenv("NO_EXACT_REPLAY") then
        -- What a source without exact replay does: record nothing for the
        -- batch, so a restart takes whatever is there again.
        words._ckpt_input = function() return nil end
    end
    local ones = words:mapToPair(function(_, w) return w, 1 end)
    ones:reduceByKey(function(a, b) return a + b end):foreachRDD(write_batch)
    ones:updateStateByKey(function(vs, n)
        n = n or 0
        for i = 1, #vs do n = n + vs[i] end
        return n
    end):foreachRDD(write_state)
    return ssc
end

local ssc = dstream.StreamingContext.getOrCreate(ckpt, create)
ssc:start()
ssc:awaitTermination()
]=]

local function sh(cmd)
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    return out
end

local VOCAB = {"ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen", "ibis", "jay", "kiwi", "lynx"}

describe("kafkaStream with checkpoints, killed with kill -9", function()
    local broker, dir, topic, expected, produced, producer, rng
    local runs = 0

    setup(function()
        broker = K.start_broker{"eo-1:3", "eo-2:3"}
    end)

    teardown(function()
        if broker then broker:stop() end
    end)

    before_each(function()
        dir = files.tmpdir()
        files.write(dir .. "/job.lua", JOB)
        runs = runs + 1
        topic = K.topic(broker, "eo-" .. runs, 3)
        expected, produced = {}, 0
        producer = assert(require("dstream.core").kafka_producer{brokers = broker.brokers, options = K.CLIENT_OPTIONS})
    end)

    after_each(function()
        producer:close()
        os.execute("rm -rf '" .. dir .. "'")
    end)

    -- A round of records, acknowledged before it counts as expected.
    local function produce(n)
        local records = {}
        for i = 1, n do
            local w = VOCAB[rng(1, #VOCAB)]
            records[i] = {w, w}
            expected[w] = (expected[w] or 0) + 1
        end
        K.produce(broker.brokers, topic, records, producer)
        produced = produced + n
    end

    local function start(env)
        return crash.spawn({"bin/dstream", "run", dir .. "/job.lua", broker.brokers, topic, dir .. "/ckpt",
            dir .. "/totals.db", dir .. "/state"}, {env = env})
    end

    local function state()
        local got, total = {}, 0
        for w, n in (files.read(dir .. "/state") or ""):gmatch("(%S+) (%d+)\n") do
            got[w] = tonumber(n)
            total = total + got[w]
        end
        return got, total
    end

    local function sqlite_totals()
        files.write(dir .. "/totals.lua", [[
            local env = require("luasql.sqlite3").sqlite3()
            local db = assert(env:connect(arg[1]))
            local cur = assert(db:execute("SELECT word, n FROM totals ORDER BY word"))
            local row = cur:fetch({}, "n")
            while row do
                io.write(row[1], " ", row[2], "\n")
                row = cur:fetch({}, "n")
            end
        ]])
        local got = {}
        for w, n in sh(string.format("luajit %s/totals.lua %s/totals.db 2>&1", dir, dir)):gmatch("(%S+) (%d+)\n") do
            got[w] = tonumber(n)
        end
        return got
    end

    -- The last run: until the state holds every record produced, then a
    -- graceful stop. Returns its output.
    local function finish()
        local p = start()
        local deadline = crash.now() + 60
        while crash.now() < deadline do
            local _, total = state()
            if total >= produced or not p:alive() then break end
            crash.sleep(0.1)
        end
        crash.sleep(0.6) -- a few more batches: nothing may come twice
        local _, out = p:finish(20)
        return out
    end

    it("ends with per-word state and SQLite totals equal to the topic's exact counts", function()
        local seed = crash.seed()
        rng = crash.random(seed)
        local context = "seed " .. seed .. "\n"
        local kills, seen = 0, {}
        -- 1. The worst moment: killed by itself right after the first commit with rows.
        local p = start({CRASH_AFTER_COMMITS = "1"})
        produce(40)
        assert.is_true(p:wait(30), context .. p:output())
        kills = kills + 1
        produce(40) -- arrives while it is down
        -- 2. Killed from outside at random moments while records keep coming.
        for _ = 1, 5 do
            p = start()
            for _ = 1, 2 do
                produce(rng(10, 60))
                crash.sleep(0.1 + rng() * 0.6)
            end
            p:kill()
            kills = kills + 1
            local _, total = state()
            seen[#seen + 1] = total
            context = context .. string.format("kill %d: %d of %d records in the state\n", kills, total, produced)
                .. p:output()
            p:finish(0)
        end
        produce(30)
        -- 3. A last run reads the rest.
        local out = finish()
        assert.is_true(kills >= 6)
        -- the kills landed while it was working: the state grew between most of them
        local grew = 0
        for i = 2, #seen do
            if seen[i] > seen[i - 1] then grew = grew + 1 end
        end
        assert.is_true(grew >= 3, context)
        local got = state()
        assert.are.same(expected, got, context .. out)
        assert.are.same(expected, sqlite_totals(), context .. out)
    end)

    it("would count wrong in SQLite if a re-run batch read other records than it had (replay off)", function()
        rng = crash.random(crash.seed())
        local p = start({CRASH_AFTER_COMMITS = "1", NO_EXACT_REPLAY = "1"})
        produce(40)
        assert.is_true(p:wait(30), p:output())
        produce(40) -- arrives while it is down: the re-run batch reads other records than it committed
        local out = finish()
        local got, total = state()
        assert.are.same(expected, got, out) -- the state is checkpointed with the positions: still exact
        local sql, sql_total = sqlite_totals(), 0
        local w, n = next(sql)
        while w do
            sql_total = sql_total + n
            w, n = next(sql, w)
        end
        assert.are.equal(produced, total)
        -- The re-run batch is skipped by SQLite as written, but what it reads
        -- now differs from what it committed: records lost or counted twice.
        assert.are_not.equal(produced, sql_total, "SQLite holds " .. sql_total .. " of " .. produced)
    end)
end)

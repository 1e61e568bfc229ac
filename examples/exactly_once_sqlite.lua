--[[ exactly_once_sqlite: per-batch totals added to SQLite exactly once,
through crashes.

Trade files (lines `SYMBOL QUANTITY`) are dropped into an incoming
directory. Every batch, the job sums the quantities per symbol and ADDS
them to a SQLite table - the kind of output a crash makes dangerous: after
recovery, dstream re-runs the batch that was running when the process died,
with exactly the files it had read, and its sums would be added twice.

So each batch's rows are written in ONE transaction together with a
progress row (the last batch time written). A batch whose time is not
after the progress row was already written: its transaction changes
nothing. dstream guarantees the rest - checkpoints after every batch, files
read exactly once across restarts (Fault tolerance in the README) - so the
table's totals are exact whatever moment the process is killed at.

    bin/dstream run examples/exactly_once_sqlite.lua INCOMING_DIR DB_FILE CHECKPOINT_DIR [seconds]

Run it, kill it (even with kill -9), run it again with the same arguments:
it carries on where it stopped. Without `seconds` it runs until Ctrl-C.
Needs Debian's lua-sql-sqlite3.
]]
local dstream = require "dstream"
local sqlite3 = require "luasql.sqlite3"

local incoming, db_file, checkpoint_dir, seconds = arg[1], arg[2], arg[3], tonumber(arg[4])
if not (incoming and db_file and checkpoint_dir) then
    io.stderr:write("usage: dstream run examples/exactly_once_sqlite.lua INCOMING_DIR DB_FILE CHECKPOINT_DIR [seconds]\n")
    os.exit(2)
end

local JOB = "trade_totals"

local env = assert(sqlite3.sqlite3())
local db = assert(env:connect(db_file))
assert(db:execute("PRAGMA synchronous = FULL")) -- a commit is on disk before the checkpoint says the batch is done
assert(db:execute("CREATE TABLE IF NOT EXISTS totals "
    .. "(symbol TEXT PRIMARY KEY, quantity INTEGER NOT NULL, trades INTEGER NOT NULL)"))
assert(db:execute("CREATE TABLE IF NOT EXISTS progress (job TEXT PRIMARY KEY, last_batch INTEGER NOT NULL)"))
assert(db:execute(string.format("INSERT OR IGNORE INTO progress VALUES ('%s', -1)", JOB)))

local function must(ok, err, what)
    if not ok then error(string.format("exactly_once_sqlite: %s: %s", what, tostring(err)), 0) end
    return ok
end

local function last_batch()
    local cur = must(db:execute(string.format("SELECT last_batch FROM progress WHERE job = '%s'", JOB)), nil, "reading progress")
    local t = tonumber(cur:fetch())
    cur:close()
    return t
end

--- Add one batch's (symbol, {quantity, trades}) rows, unless batch t was added already.
local function write_batch(rdd, t)
    must(db:execute("BEGIN IMMEDIATE"), nil, "BEGIN")
    if last_batch() >= t then -- a batch re-run after recovery: written before the crash
        must(db:execute("ROLLBACK"), nil, "ROLLBACK")
        return
    end
    rdd:foreach(function(symbol, sums)
        must(db:execute(string.format(
            "INSERT INTO totals VALUES ('%s', %d, %d) ON CONFLICT(symbol) DO UPDATE "
            .. "SET quantity = quantity + excluded.quantity, trades = trades + excluded.trades",
            db:escape(symbol), sums[1], sums[2])))
    end)
    must(db:execute(string.format("UPDATE progress SET last_batch = %d WHERE job = '%s'", t, JOB)), nil, "progress")
    must(db:execute("COMMIT"), nil, "COMMIT")
end

-- The graph. getOrCreate calls this on the first run, and again after a
-- crash to rebuild the same graph before restoring it from the checkpoint.
local function create()
    local ssc = dstream.StreamingContext{batchInterval = 1, checkpoint = checkpoint_dir, name = "exactly_once_sqlite"}
    ssc:textFileStream(incoming)
       :mapToPair(function(line)
           local symbol, quantity = line:match("^(%S+)%s+(%d+)%s*$")
           if not symbol then return "(malformed)", 0 end
           return symbol, tonumber(quantity)
       end)
       :combineByKey(function(q) return {q, 1} end,
                     function(s, q) return {s[1] + q, s[2] + 1} end,
                     function(a, b) return {a[1] + b[1], a[2] + b[2]} end)
       :foreachRDD(write_batch)
    return ssc
end

local ssc = dstream.StreamingContext.getOrCreate(checkpoint_dir, create)
ssc:start()
if seconds then
    ssc:awaitTerminationOrTimeout(seconds)
    ssc:stop{graceful = true}
else
    ssc:awaitTermination()
end
db:close()
env:close()

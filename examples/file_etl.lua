--[[ file_etl: a file-directory ETL job.

Order files (CSV lines `time,product,quantity,unit_price`) are dropped into
an incoming directory by some other program; every batch, this job reads the
files that appeared, drops malformed lines (counting them), computes the
revenue per product, and writes one output directory per batch with
saveAsTextFiles: out/revenue-<batch ms>/part-00000 and _SUCCESS, written
atomically so a downstream reader never sees half a batch.

    bin/dstream run examples/file_etl.lua INCOMING_DIR OUT_PREFIX [seconds] [--existing]

Drop files into INCOMING_DIR atomically (write elsewhere, then `mv`), as with
Spark's textFileStream. --existing also processes the files already there
when the job starts. Without `seconds` it runs until Ctrl-C.
]]
local dstream = require "dstream"

local incoming, out_prefix, seconds = arg[1], arg[2], tonumber(arg[3])
local existing = arg[3] == "--existing" or arg[4] == "--existing"
if not incoming or not out_prefix then
    io.stderr:write("usage: dstream run examples/file_etl.lua INCOMING_DIR OUT_PREFIX [seconds] [--existing]\n")
    os.exit(2)
end

local ssc = dstream.StreamingContext{batchInterval = 1, name = "file_etl"}

local function parse(line)
    local time, product, qty, price = line:match("^(%d+),([%w_%-]+),(%d+),([%d%.]+)$")
    if not time then return nil end
    return product, tonumber(qty) * tonumber(price)
end

local lines = ssc:textFileStream(incoming, {
    newFilesOnly = not existing,
    filter = function(path) return path:match("%.csv$") ~= nil end,
})

-- Malformed lines are counted per batch, not silently lost.
lines:filter(function(line) return parse(line) == nil end):count():foreachRDD(function(rdd, t)
    local bad = rdd:first()
    if bad > 0 then io.stderr:write(string.format("file_etl: %d malformed line(s) in batch %d\n", bad, t)) end
end)

local revenue = lines:filter(function(line) return parse(line) ~= nil end)
                     :mapToPair(parse)
                     :reduceByKey(function(a, b) return a + b end)
revenue:saveAsTextFiles(out_prefix)
revenue:foreachRDD(function(rdd, t)
    if not rdd:isEmpty() then
        print(string.format("batch %d: revenue of %d product(s) written to %s-%d", t, rdd:count(), out_prefix, t))
    end
end)

ssc:start()
if seconds then
    ssc:awaitTerminationOrTimeout(seconds)
    ssc:stop{graceful = true}
else
    ssc:awaitTermination()
end

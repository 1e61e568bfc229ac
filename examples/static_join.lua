--[[ static_join: join a stream with reference data.

Orders arrive as CSV lines `product,quantity` (here from the bundled
generator's socket or any TCP source); the product catalogue — reference
data that does not change while the job runs — is loaded once with
ssc:parallelizePairs and joined to every batch inside transform(). Each
batch prints the quantity ordered per category.

    bin/dstream run examples/static_join.lua [seconds] [port]

With no port it serves its own sample orders on 127.0.0.1 with
examples/wordgen.lua (a real TCP server) and stops after `seconds`
(default 3). With a port, send lines like `apple,3` (e.g. with `nc -lk PORT`).
]]
local dstream = require "dstream"

local seconds = tonumber(arg and arg[1]) or 3
local port = tonumber(arg and arg[2])

local catalogue = {
    apple = "fruit", pear = "fruit", plum = "fruit",
    leek = "vegetable", kale = "vegetable",
    bread = "bakery",
}

local generator, sample
if not port then
    sample = os.tmpname()
    local f = assert(io.open(sample, "w"))
    local products = {"apple", "pear", "plum", "leek", "kale", "bread", "caviar"}
    for i = 1, 3000 do
        f:write(products[i % #products + 1], ",", i % 5 + 1, "\n")
    end
    f:close()
    local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
    generator = assert(io.popen(string.format(
        "luajit %s/wordgen.lua --port 0 --file %s --lines-then-hold --seconds %g", here, sample, seconds + 2)))
    port = tonumber((generator:read("*l") or ""):match(":(%d+)"))
    if not port then error("static_join: the generator did not start") end
end

local ssc = dstream.StreamingContext{batchInterval = 1, name = "static_join"}
local categories = ssc:parallelizePairs(catalogue)

local orders = ssc:socketTextStream("127.0.0.1", port)
    :filter(function(line) return line:find(",", 1, true) ~= nil end)
    :mapToPair(function(line)
        local product, qty = line:match("^([^,]+),(%d+)")
        return product or line, tonumber(qty) or 0
    end)

-- (product, qty) join (product, category) -> (product, {qty, category}),
-- then quantity per category; products missing from the catalogue are "unknown".
local per_category = orders:transform(function(rdd)
    return rdd:leftOuterJoin(categories)
              :mapToPair(function(_, qc) return qc[2] or "unknown", qc[1] end)
              :reduceByKey(function(a, b) return a + b end)
              :sortBy(function(category) return category end)
end)
per_category:print()

ssc:start()
ssc:awaitTerminationOrTimeout(seconds)
ssc:stop{graceful = true}
if generator then
    generator:close()
    os.remove(sample)
end

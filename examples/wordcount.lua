--[[ wordcount: Spark Streaming's word count, over a real TCP socket.

Lines arrive on a socket, are split into words, and every one-second batch
prints the ten most frequent words of that second:

    lines -> words -> (word, 1) -> reduceByKey(+) -> sorted -> print

Run it from the project directory:

    bin/dstream run examples/wordcount.lua [seconds] [port]

With no port it starts the bundled generator (examples/wordgen.lua, a real
TCP server on 127.0.0.1) and stops by itself after `seconds` (default 4).
To feed it yourself, start `nc -lk 9999` in another terminal, run
`bin/dstream run examples/wordcount.lua 60 9999` and type lines into nc.
]]
local dstream = require "dstream"

local seconds = tonumber(arg and arg[1]) or 4
local port = tonumber(arg and arg[2])

local generator
if not port then
    local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
    generator = assert(io.popen(string.format(
        "luajit %s/wordgen.lua --port 0 --seconds %g --rate 2000 --seed 7", here, seconds + 2)))
    local listening = generator:read("*l") or ""
    port = tonumber(listening:match(":(%d+)"))
    if not port then error("wordcount: the generator did not start: " .. listening) end
end

local ssc = dstream.StreamingContext{batchInterval = 1, name = "wordcount"}

local lines = ssc:socketTextStream("127.0.0.1", port)
local words = lines:flatMap(function(line)
    local out = {}
    for w in line:gmatch("%S+") do out[#out + 1] = w end
    return out
end)
local counts = words:mapToPair(function(w) return w, 1 end)
                    :reduceByKey(function(a, b) return a + b end)
local top = counts:transform(function(rdd)
    return rdd:sortBy(function(_, n) return n end, false)
end)
top:print(10)

ssc:start()
ssc:awaitTerminationOrTimeout(seconds)
ssc:stop{graceful = true}
if generator then generator:close() end

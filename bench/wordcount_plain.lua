--[[ wordcount_plain: baseline (a) of the word-count benchmark, plain LuaJIT.

    luajit bench/wordcount_plain.lua [INPUT] [--dump PATH]

io.lines, gmatch("%S+") and a Lua table of counts: what a Lua programmer
writes without dstream. INPUT defaults to bench/data/words.txt (make it with
bench/gen_text.lua). Prints one JSON line, variant "plain_luajit" (fields
and checksum in bench/wordcount_common.lua); --dump PATH also writes every
"word count" line, sorted, for an exact comparison with another variant.
]]

local BENCH_DIR = arg[0]:match("^(.-)[^/]*$")
package.path = BENCH_DIR .. "?.lua;" .. package.path

local common = require("wordcount_common")

local function count_words(path)
    local counts = {}
    for line in io.lines(path) do
        for w in line:gmatch("%S+") do
            counts[w] = (counts[w] or 0) + 1
        end
    end
    return counts
end

local input, dump = common.parse_args(arg, "wordcount_plain")
local started, cpu = common.now(), os.clock()
local counts = count_words(input)
local record = common.result("plain_luajit", counts, common.now() - started)
record.cpu_seconds = os.clock() - cpu
common.emit(record)
if dump then
    common.dump(counts, dump)
end

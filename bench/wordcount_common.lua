--[[ wordcount_common: what every variant of the word-count benchmark shares.

The benchmark counts the words (maximal runs of non-space bytes; space is
" \t\n\v\f\r", as Lua's %s) of bench/data/words.txt, written by
bench/gen_text.lua. Every variant prints one JSON line:

    {"bench":"wordcount","variant":"plain_luajit","words":N,"distinct":D,
     "seconds":S,"words_per_s":R,"checksum":X}

where seconds is the wall time of reading and counting, and checksum is

    sum over distinct words w of  count(w) * fnv1a32(w)   (mod 2^32)

(FNV-1a, 32 bits, over the word's bytes): it does not depend on the order in
which a table is walked, so two variants agree on words, distinct and
checksum exactly when they very probably found the same counts.
bench/wordcount_c.c computes the same numbers. For an exact comparison,
dump() writes every "word count" line sorted by bytes, as wordcount_c's
--dump does.
]]

local bit = require("bit")
local ffi = require("ffi")
local json = require("json")

local common = {}

local BENCH_DIR = debug.getinfo(1, "S").source:match("^@(.-)[^/]*$")
common.DEFAULT_INPUT = BENCH_DIR .. "data/words.txt"

-- The order of the fields in a result line.
common.FIELDS = {"bench", "variant", "words", "distinct", "seconds", "words_per_s", "checksum"}

if not pcall(ffi.typeof, "wc_timespec") then
    ffi.cdef("typedef struct { long tv_sec; long tv_nsec; } wc_timespec;")
end
-- The first declaration of a function wins: ts goes as a void *, which
-- converts to whatever struct pointer an earlier declaration names.
ffi.cdef("int clock_gettime(int clk, void *ts);")
local ts = ffi.new("wc_timespec")
local ts_ptr = ffi.cast("void *", ts)
local CLOCK_MONOTONIC = 1

-- Seconds on a monotonic clock.
function common.now()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, ts_ptr)
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- FNV-1a, 32 bits, of s's bytes, as a number in [0, 2^32).
function common.fnv1a(s)
    local h = bit.tobit(2166136261)
    for i = 1, #s do
        h = bit.bxor(h, s:byte(i))
        -- h * 16777619 mod 2^32, with 16777619 = 2^24 + 403: exact in doubles.
        h = bit.tobit(bit.lshift(h, 24) + h * 403)
    end
    return h % 4294967296
end

-- a * b mod 2^32 for a, b in [0, 2^32), exact (a * b itself may exceed 2^53).
local function mul32(a, b)
    local a_hi, a_lo = math.floor(a / 65536), a % 65536
    local b_hi, b_lo = math.floor(b / 65536), b % 65536
    return (((a_hi * b_lo + a_lo * b_hi) % 65536) * 65536 + a_lo * b_lo) % 4294967296
end

-- Totals of a {word = count} table: words, distinct words, checksum.
function common.summarize(counts)
    local words, distinct, checksum = 0, 0, 0
    for w, n in pairs(counts) do
        words = words + n
        distinct = distinct + 1
        checksum = (checksum + mul32(n % 4294967296, common.fnv1a(w))) % 4294967296
    end
    return words, distinct, checksum
end

-- The result line of a variant that counted counts in seconds.
function common.result(variant, counts, seconds)
    local words, distinct, checksum = common.summarize(counts)
    return {
        bench = "wordcount",
        variant = variant,
        words = words,
        distinct = distinct,
        seconds = math.floor(seconds * 1e6 + 0.5) / 1e6,
        words_per_s = seconds > 0 and math.floor(words / seconds + 0.5) or 0,
        checksum = checksum,
    }
end

-- Prints a result as one JSON line on stdout.
function common.emit(record)
    io.stdout:write(json.encode(record, common.FIELDS), "\n")
    io.stdout:flush()
end

-- Writes "word count" lines sorted by the words' bytes to path.
function common.dump(counts, path)
    local words = {}
    for w in pairs(counts) do
        words[#words + 1] = w
    end
    table.sort(words)
    local f = assert(io.open(path, "wb"))
    for _, w in ipairs(words) do
        f:write(w, " ", counts[w], "\n")
    end
    f:close()
end

-- Reads a variant's arguments: [INPUT] [--dump PATH]. Returns the input
-- path (which must exist) and the dump path or nil; exits 1 on misuse.
function common.parse_args(argv, program)
    local input, dump
    local i = 1
    while i <= #argv do
        if argv[i] == "--dump" and argv[i + 1] then
            dump = argv[i + 1]
            i = i + 1
        elseif input == nil and argv[i]:sub(1, 2) ~= "--" then
            input = argv[i]
        else
            io.stderr:write(string.format("usage: %s [INPUT (default %s)] [--dump PATH]\n",
                program, common.DEFAULT_INPUT))
            os.exit(1)
        end
        i = i + 1
    end
    input = input or common.DEFAULT_INPUT
    local f = io.open(input, "rb")
    if f == nil then
        io.stderr:write(string.format("%s: cannot read %s (make it with luajit bench/gen_text.lua)\n",
            program, input))
        os.exit(1)
    end
    f:close()
    return input, dump
end

return common

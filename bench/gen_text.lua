--[[ gen_text: writes the word-count benchmark's input, bench/data/words.txt.

    luajit bench/gen_text.lua [--out PATH] [--bytes N]

About 50 MiB (--bytes, default 52428800; the last line is completed) of
lines of 5 to 15 words separated by one space. Words come from a vocabulary
of 10 000 distinct made-up words of 2 to 10 lowercase letters (consonants
and vowels alternating), drawn with Zipf frequencies: the word of rank k
is k times rarer than the most common, and frequent words are short, as in
English. Prints one JSON line: {"bytes":B,"lines":L,"words":W}.

The same arguments give the same bytes on every run and every LuaJIT build:
the randomness is a xorshift32 generator of our own with a fixed seed
(math.random's sequence is not promised across builds), and the only
floating-point operations are IEEE-exact ones (+, /, comparisons).
]]

local BENCH_DIR = arg[0]:match("^(.-)[^/]*$")
package.path = BENCH_DIR .. "?.lua;" .. package.path

local bit = require("bit")
local ffi = require("ffi")
local json = require("json")

local VOCABULARY_SIZE = 10000
local SEED = 20240601
local CONSONANTS = "bcdfghjklmnprstvwz"
local VOWELS = "aeiouy"

local function parse_args(argv)
    local opts = {out = BENCH_DIR .. "data/words.txt", bytes = 50 * 1024 * 1024}
    local i = 1
    while i <= #argv do
        local k, v = argv[i], argv[i + 1]
        if k == "--out" and v then
            opts.out = v
        elseif k == "--bytes" and tonumber(v) and tonumber(v) >= 0 then
            opts.bytes = tonumber(v)
        else
            io.stderr:write("usage: luajit bench/gen_text.lua [--out PATH] [--bytes N]\n")
            os.exit(1)
        end
        i = i + 2
    end
    return opts
end

-- xorshift32: returns a function giving floats uniform in [0, 1).
local function xorshift32(seed)
    local x = bit.tobit(seed)
    return function()
        x = bit.bxor(x, bit.lshift(x, 13))
        x = bit.bxor(x, bit.rshift(x, 17))
        x = bit.bxor(x, bit.lshift(x, 5))
        return (x % 4294967296) / 4294967296
    end
end

-- An integer in [lo, hi] from a uniform float.
local function pick(random, lo, hi)
    return lo + math.floor(random() * (hi - lo + 1))
end

-- The longest a word of rank r may be: 2 letters for rank 1, one more each
-- time the rank doubles, at most 10.
local function max_length(rank)
    local len, r = 2, rank
    while r > 1 and len < 10 do
        r = math.floor(r / 2)
        len = len + 1
    end
    return len
end

local function make_word(random, rank)
    local letters = {}
    local vowel = random() < 0.5
    for i = 1, pick(random, 2, max_length(rank)) do
        local set = vowel and VOWELS or CONSONANTS
        local j = pick(random, 1, #set)
        letters[i] = set:sub(j, j)
        vowel = not vowel
    end
    return table.concat(letters)
end

-- 10 000 distinct words, most frequent first.
local function make_vocabulary(random)
    local words, seen = {}, {}
    while #words < VOCABULARY_SIZE do
        local w = make_word(random, #words + 1)
        if not seen[w] then
            seen[w] = true
            words[#words + 1] = w
        end
    end
    return words
end

-- Zipf sampling: cumulative weights 1/k, searched by bisection.
local function zipf_sampler(words, random)
    local n, cumulative, total = #words, ffi.new("double[?]", #words + 1), 0
    for k = 1, n do
        total = total + 1 / k
        cumulative[k] = total
    end
    return function()
        local u = random() * total
        local lo, hi = 1, n
        while lo < hi do
            local mid = bit.rshift(lo + hi, 1)
            if cumulative[mid] < u then
                lo = mid + 1
            else
                hi = mid
            end
        end
        return words[lo]
    end
end

local FLUSH_BYTES = 1024 * 1024

local function generate(opts)
    local random = xorshift32(SEED)
    local next_word = zipf_sampler(make_vocabulary(random), random)
    local dir = opts.out:match("^(.*)/[^/]*$")
    if dir then
        os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")
    end
    local f, err = io.open(opts.out, "wb")
    if f == nil then
        io.stderr:write("gen_text: cannot write ", err, "\n")
        os.exit(1)
    end
    local buffer = require("string.buffer").new(2 * FLUSH_BYTES)
    local bytes, lines, words = 0, 0, 0
    while bytes + #buffer < opts.bytes do
        local n = pick(random, 5, 15)
        buffer:put(next_word())
        for _ = 2, n do
            buffer:put(" ", next_word())
        end
        buffer:put("\n")
        lines, words = lines + 1, words + n
        if #buffer >= FLUSH_BYTES then
            bytes = bytes + #buffer
            f:write(buffer:get())
        end
    end
    bytes = bytes + #buffer
    f:write(buffer:get())
    assert(f:close())
    return {bytes = bytes, lines = lines, words = words}
end

io.stdout:write(json.encode(generate(parse_args(arg)), {"bytes", "lines", "words"}), "\n")

-- flatMap, flatMapToPair and flatMapValues whose function returns an
-- iterator (API.md): the records are the same as with the array form, the
-- iterator is walked inside the fused stage's loop (no table per record),
-- and the loop compiles without a trace abort (helpers/jit_aborts; no
-- timing involved).
local batches = require "helpers.batches"
local jit_aborts = require "helpers.jit_aborts"

local N = 200000

-- Lines of 0 to 4 words ("w<i>_<j>"), i = 1..n.
local function lines(n, from)
    local out = {}
    for i = 1, n do
        local ws = {}
        local k = (from or 0) + i
        for j = 1, k % 5 do ws[j] = "w" .. (k % 97) .. "_" .. j end
        out[i] = (k % 3 == 0 and "  " or "") .. table.concat(ws, k % 2 == 0 and " " or "\t ")
    end
    return out
end

-- The words of a line as a plain Lua loop finds them: the reference.
local function words_of(input)
    local out = {}
    for _, line in ipairs(input) do
        for w in line:gmatch("%S+") do out[#out + 1] = w end
    end
    return out
end

local function gmatch_words(line) return line:gmatch("%S+") end

local function array_words(line)
    local t = {}
    for w in line:gmatch("%S+") do t[#t + 1] = w end
    return t
end

-- A stateless iterator in the generic-for protocol: it(limit, prev) -> prev + 1
-- while prev < limit; flatMap(x -> upto, x % 4 * 10, x % 4 * 10 - x % 4)
-- gives the records 10 * (x % 4) - x % 4 + 1 .. 10 * (x % 4).
local function upto(limit, prev)
    if prev < limit then return prev + 1 end
    return nil
end

-- The same for pairs: multiples(x, prev) -> prev + 1, x * (prev + 1) while
-- prev < x % 3.
local function multiples(x, prev)
    if prev < x % 3 then return prev + 1, x * (prev + 1) end
    return nil
end

-- Compares two arrays of records (pairs as {k, v}) without a 200 000-line diff.
local function assert_records(expected, actual)
    assert.equal(#expected, #actual, "number of records")
    for i = 1, #expected do
        local e, a = expected[i], actual[i]
        if type(e) == "table" then
            if e[1] ~= a[1] or e[2] ~= a[2] then assert.same(e, batches.plain(a), "record " .. i) end
        elseif e ~= a then
            assert.equal(e, a, "record " .. i)
        end
    end
end

-- Runs `input` (an array per batch) through build(stream) with the JIT
-- watched; returns the batches collected, the stage aborts and the number
-- of stage traces compiled.
local function run_watched(input, build)
    local ssc = batches.context()
    local out = build(ssc:queueStream({unpack(input)})):collectBatches()
    ssc:start()
    local aborts, compiled = jit_aborts.collect(function() ssc:advance(#input) end)
    assert.equal(#input, #out, "batches")
    ssc:stop()
    return out, aborts, compiled
end

local function assert_compiled(aborts, compiled)
    assert.equal(0, #aborts, "trace aborts in the stage:\n" .. jit_aborts.show(aborts))
    assert.is_true(compiled > 0, "no trace of the stage compiled")
end

describe("flatMap with an iterator", function()
    it("gives the words string.gmatch finds, as the array form and a plain loop do", function()
        local input = {lines(50), lines(7, 50), {}, {"", "   ", "one"}}
        local iter = batches.run({unpack(input)}, function(s) return s:flatMap(gmatch_words) end)
        local arr = batches.run({unpack(input)}, function(s) return s:flatMap(array_words) end)
        for b = 1, #input do
            assert.same(words_of(input[b]), iter[b])
            assert.same(arr[b], iter[b])
        end
    end)

    it("takes arrays and iterators from the same function, record by record", function()
        local out = batches.run({{"a b", "c", "d e f", "", "g"}}, function(s)
            return s:flatMap(function(line)
                if #line % 2 == 1 then return line:gmatch("%S+") end
                return {line, "#"}
            end)
        end)
        assert.same({{"a", "b", "c", "d", "e", "f", "", "#", "g"}}, out)
    end)

    it("calls the iterator as a generic for does: it(state, previous value)", function()
        local out = batches.run({{1, 2, 3, 4}}, function(s)
            return s:flatMap(function(x) return upto, x % 4 * 10, x % 4 * 10 - x % 4 end)
        end)
        assert.same({{10, 19, 20, 28, 29, 30}}, out)
    end)

    it("runs the ops after it once per element, also a second flatMap", function()
        local out = batches.run({{"ab cd", "e"}}, function(s)
            return s:flatMap(gmatch_words)
                :flatMap(function(w) return w:gmatch(".") end)
                :map(function(c) return c:upper() end)
        end)
        assert.same({{"A", "B", "C", "D", "E"}}, out)
    end)

    it("keeps the records of each input partition in that partition", function()
        local parts = {}
        local ssc = batches.context()
        ssc:queueStream({{"a b", "c"}, {"d e"}}, false):flatMap(gmatch_words):foreachRDD(function(rdd)
            rdd:foreachPartition(function(p) parts[#parts + 1] = p end)
        end)
        ssc:start()
        ssc:advance(1)
        ssc:stop()
        assert.same({{"a", "b", "c"}, {"d", "e"}}, parts)
    end)

    it("runs in one loop that compiles, with the records of a plain loop", function()
        local input = {lines(N), lines(N, N)}
        local out, aborts, compiled = run_watched(input, function(s)
            return s:flatMap(gmatch_words):filter(function(w) return #w > 4 end)
        end)
        for b = 1, #input do
            local expected = {}
            for _, w in ipairs(words_of(input[b])) do
                if #w > 4 then expected[#expected + 1] = w end
            end
            assert_records(expected, out[b])
        end
        assert_compiled(aborts, compiled)
    end)

    it("runs a Lua iterator and the ops after it in one loop that compiles", function()
        local input = {}
        for i = 1, N do input[i] = i end
        local expected = {}
        for i = 1, N do
            local k = i % 4
            for y = k * 10 - k + 1, k * 10 do expected[#expected + 1] = y * 2 end
        end
        local out, aborts, compiled = run_watched({input}, function(s)
            return s:flatMap(function(x) return upto, x % 4 * 10, x % 4 * 10 - x % 4 end)
                :map(function(y) return y * 2 end)
        end)
        assert_records(expected, out[1])
        assert_compiled(aborts, compiled)
    end)

    it("counts words in a stage ending in reduceByKey that compiles, as a plain loop counts", function()
        local input = {lines(N), lines(N, N)}
        local out, aborts, compiled = run_watched(input, function(s)
            return s:flatMap(gmatch_words):mapToPair(function(w) return w, 1 end)
                :reduceByKey(function(a, b) return a + b end)
        end)
        for b = 1, #input do
            local counts, expected = {}, {}
            for _, w in ipairs(words_of(input[b])) do counts[w] = (counts[w] or 0) + 1 end
            for w, c in pairs(counts) do expected[#expected + 1] = {w, c} end
            assert_records(batches.sorted(expected), batches.sorted(out[b]))
        end
        assert_compiled(aborts, compiled)
    end)
end)

describe("flatMapToPair with an iterator", function()
    it("makes a pair of each (k, v) the iterator returns", function()
        local out = batches.run({{"a=1 b=2", "", "c=3"}}, function(s)
            return s:flatMapToPair(function(line) return line:gmatch("(%w+)=(%d+)") end)
        end)
        assert.same({{{"a", "1"}, {"b", "2"}, {"c", "3"}}}, batches.plain_all(out))
    end)

    it("gives the pairs of the array form, over a pair stream too", function()
        local function build(iter)
            return function(s)
                return s:mapToPair(function(x) return x, x * 10 end):flatMapToPair(function(k, v)
                    if iter then return ipairs({k, v}) end
                    return {{1, k}, {2, v}}
                end)
            end
        end
        local a = batches.plain_all(batches.run({{1, 2, 3, 4, 5}}, build(false)))
        local b = batches.plain_all(batches.run({{1, 2, 3, 4, 5}}, build(true)))
        assert.same(a, b)
        assert.same({1, 1}, b[1][1])
        assert.same({2, 50}, b[1][10])
    end)

    it("runs in one loop that compiles", function()
        local input = {}
        for i = 1, N do input[i] = i end
        local expected = {}
        for i = 1, N do
            for c = 1, i % 3 do expected[#expected + 1] = {c, i * c} end
        end
        local out, aborts, compiled = run_watched({input}, function(s)
            return s:flatMapToPair(function(x) return multiples, x, 0 end)
        end)
        assert_records(expected, out[1])
        assert_compiled(aborts, compiled)
    end)
end)

describe("flatMapValues with an iterator", function()
    it("pairs each value the iterator returns with the record's key", function()
        local out = batches.run({{"k1 a b", "k2", "k3 c"}}, function(s)
            return s:mapToPair(function(line) return line:match("^(%S+)%s*(.*)$") end)
                :flatMapValues(gmatch_words)
        end)
        assert.same({{{"k1", "a"}, {"k1", "b"}, {"k3", "c"}}}, batches.plain_all(out))
    end)

    it("runs in one loop that compiles, with the pairs of the array form", function()
        local input = {}
        for i = 1, N do input[i] = i end
        local expected = {}
        for i = 1, N do
            local k = i % 4
            for y = k * 10 - k + 1, k * 10 do expected[#expected + 1] = {i % 10, y} end
        end
        local out, aborts, compiled = run_watched({input}, function(s)
            return s:mapToPair(function(x) return x % 10, x end)
                :flatMapValues(function(v) return upto, v % 4 * 10, v % 4 * 10 - v % 4 end)
        end)
        assert_records(expected, out[1])
        assert_compiled(aborts, compiled)
    end)
end)

describe("an RDD's flatMap, flatMapToPair and flatMapValues", function()
    it("take iterators as the stream's do", function()
        local got = {}
        local ssc = batches.context()
        ssc:queueStream({{"a b", "c"}}):foreachRDD(function(rdd)
            got.words = rdd:flatMap(gmatch_words):collect()
            got.pairs = batches.plain(rdd:flatMapToPair(function(l) return l:gmatch("()(%S+)") end):collect())
            got.values = batches.plain(rdd:mapToPair(function(l) return #l, l end)
                :flatMapValues(gmatch_words):collect())
        end)
        ssc:start()
        ssc:advance(1)
        ssc:stop()
        assert.same({"a", "b", "c"}, got.words)
        assert.same({{1, "a"}, {3, "b"}, {1, "c"}}, got.pairs)
        assert.same({{3, "a"}, {3, "b"}, {1, "c"}}, got.values)
    end)
end)

describe("an iterator that fails", function()
    local function batch_error(build)
        local ssc = batches.context()
        build(ssc:queueStream({{"x y"}})):collectBatches()
        ssc:start()
        local ok, err = pcall(ssc.advance, ssc, 1)
        ssc:stop()
        assert.is_false(ok, "the batch should have failed")
        return tostring(err)
    end

    it("fails the batch naming the flatMap and the batch time", function()
        local err = batch_error(function(s)
            return s:map(function(x) return x end):flatMap(function()
                return function() error("iterator broke") end
            end):map(function(x) return x end)
        end)
        assert.matches("dstream: flatMap (stream", err, 1, true)
        assert.matches("failed at batch time 1000 ms", err, 1, true)
        assert.matches("iterator broke", err, 1, true)
    end)

    it("fails the batch naming flatMapToPair when it returns a key without a value", function()
        local err = batch_error(function(s)
            return s:flatMapToPair(function(line) return line:gmatch("%S+") end)
        end)
        assert.matches("dstream: flatMapToPair (stream", err, 1, true)
        assert.matches("failed at batch time 1000 ms: the iterator returned a key without a value "
            .. "(return key, value)", err, 1, true)
    end)

    it("fails the batch naming flatMapValues when its function returns neither", function()
        local err = batch_error(function(s)
            return s:mapToPair(function(x) return x, x end):flatMapValues(function() return "no" end)
        end)
        assert.matches("dstream: flatMapValues (stream", err, 1, true)
        assert.matches("function must return an array or an iterator function, got string", err, 1, true)
    end)
end)

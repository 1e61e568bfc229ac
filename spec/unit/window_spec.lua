-- Window operations: input batches in, expected batches out, under a manual
-- clock with a 1 s batch interval. Batch i of the input arrives at i s; a
-- window of length len sliding by slide produces a batch at every multiple
-- of slide, covering the batches in (t - len, t]. Keyed outputs come in no
-- defined order and are sorted before comparing; window() keeps time order.
local batches = require "helpers.batches"
local window = require "dstream.window"

local sorted_all, plain_all = batches.sorted_all, batches.plain_all
local sformat = string.format

local function add(a, b) return a + b end
local function sub(a, b) return a - b end

-- A pair stream from records {k, v}.
local function pairs_of(s)
    return s:mapToPair(function(kv) return kv[1], kv[2] end)
end

-- A queue of the batches of input: queueStream takes entries off its queue,
-- so shared inputs are copied.
local function queue(input)
    local q = {}
    for i, batch in ipairs(input) do q[i] = batch end
    return q
end

-- Runs build(stream, case) over the case's input for as many batches and
-- returns what it produced, each batch sorted (or in order with ordered).
local function run_case(c, build, ordered)
    local out = batches.run(queue(c.input), function(s) return build(s, c) end)
    return ordered and plain_all(out) or sorted_all(out)
end

-- One `it` per case: {name, len, slide, input, expected}.
local function cases(list, build, ordered)
    for _, c in ipairs(list) do
        it(c.name, function()
            assert.same(c.expected, run_case(c, build, ordered))
        end)
    end
end

-- The error message raised by fn(...), which must raise.
local function error_of(fn, ...)
    local ok, err = pcall(fn, ...)
    assert.is_false(ok)
    return tostring(err)
end

local ONE_TO_SIX = {{1}, {2}, {3}, {4}, {5}, {6}}

describe("DStream:window", function()
    cases({
        {name = "covers the batches in (t - len, t], fewer before len has elapsed", len = 3, slide = 1,
            input = {{1}, {2}, {3}, {4}, {5}},
            expected = {{1}, {1, 2}, {1, 2, 3}, {2, 3, 4}, {3, 4, 5}}},
        {name = "produces batches only at multiples of its slide", len = 3, slide = 2,
            input = ONE_TO_SIX, expected = {{1, 2}, {2, 3, 4}, {4, 5, 6}}},
        {name = "gives each batch to one window when the slide equals the length", len = 2, slide = 2,
            input = ONE_TO_SIX, expected = {{1, 2}, {3, 4}, {5, 6}}},
        {name = "skips the batches between windows when the slide exceeds the length", len = 1, slide = 2,
            input = ONE_TO_SIX, expected = {{2}, {4}, {6}}},
        {name = "slides by the batch interval when no slide is given", len = 2,
            input = {{1}, {2}, {3}}, expected = {{1}, {1, 2}, {2, 3}}},
        {name = "keeps records in batch order and holds empty windows as empty batches", len = 2, slide = 1,
            input = {{"a", "b"}, {}, {}, {"c"}, {"d", "e"}},
            expected = {{"a", "b"}, {"a", "b"}, {}, {"c"}, {"c", "d", "e"}}},
        {name = "keeps tables, booleans and numbers as they were", len = 2, slide = 1,
            input = {{{1, "x"}, true}, {{k = 2.5}}},
            expected = {{{1, "x"}, true}, {{1, "x"}, true, {k = 2.5}}}},
    }, function(s, c) return s:window(c.len, c.slide) end, true)

    it("keeps the pairs of a pair stream", function()
        local out = batches.run({{{"a", 1}}, {{"b", 2}}, {}}, function(s)
            return pairs_of(s):window(2):reduceByKey(add)
        end)
        assert.same({{{"a", 1}}, {{"a", 1}, {"b", 2}}, {{"b", 2}}}, sorted_all(out))
    end)

    it("windows a windowed stream in steps of that stream's slide", function()
        local out = batches.run(queue(ONE_TO_SIX), function(s) return s:window(2, 2):window(4, 2) end)
        assert.same({{1, 2}, {1, 2, 3, 4}, {3, 4, 5, 6}}, plain_all(out))
    end)

    it("holds in C the batches the next window reads and lets the parent forget the rest", function()
        local ssc = batches.context()
        local input = {}
        for i = 1, 12 do input[i] = {"record " .. i} end
        local src = ssc:queueStream(input)
        local w = src:window(5)
        local out = w:collectBatches()
        ssc:start()
        ssc:advance(12)
        local bytes, held = window.memory(w)
        assert.equal(4, held)
        -- Batches 9 to 12, each a frame: a 16-byte header, then a tag and a
        -- length byte before the string.
        assert.equal(4 * 16 + (2 + #"record 9") + 3 * (2 + #"record 10"), bytes)
        local remembered = 0
        for _ in pairs(src.generated) do remembered = remembered + 1 end
        assert.is_true(remembered <= 2)
        assert.same({"record 8", "record 9", "record 10", "record 11", "record 12"}, out[12])
    end)

    it("holds nothing between windows that do not overlap", function()
        local ssc = batches.context()
        local w = ssc:queueStream({{"a"}, {"b"}, {"c"}, {"d"}}):window(2, 2)
        local out = w:collectBatches()
        ssc:start()
        ssc:advance(4)
        assert.same({0, 0}, {window.memory(w)})
        assert.same({{"a", "b"}, {"c", "d"}}, out)
    end)

    it("holds only the batches there are in a 24-hour window", function()
        local ssc = batches.context()
        local w = ssc:queueStream({{"a"}, {"b"}}):window(24 * 3600)
        local out = w:collectBatches()
        ssc:start()
        ssc:advance(2)
        local bytes, held = window.memory(w)
        assert.is_true(held <= 3)
        assert.is_true(bytes > 0)
        assert.same({{"a"}, {"a", "b"}}, out)
    end)

    it("raises, naming the operator and the batch, for records the window cannot keep", function()
        local err = error_of(batches.run, {{print}}, function(s) return s:window(2) end)
        assert.matches("window", err, 1, true)
        assert.matches("batch time 1000 ms", err, 1, true)
        assert.matches("ETYPE", err, 1, true)
    end)
end)

describe("DStream:countByWindow", function()
    cases({
        {name = "counts the records of each window, 0 for an empty one", len = 3, slide = 1,
            input = {{"a"}, {"b", "c"}, {}, {}, {}, {}},
            expected = {{1}, {3}, {3}, {2}, {0}, {0}}},
        {name = "counts at multiples of its slide", len = 4, slide = 2,
            input = {{"a"}, {"b"}, {"c", "d"}, {}, {"e"}, {}},
            expected = {{2}, {4}, {3}}},
        {name = "counts non-overlapping windows", len = 2, slide = 2,
            input = {{"a"}, {"b"}, {"c", "d"}, {}, {}, {}},
            expected = {{2}, {2}, {0}}},
    }, function(s, c) return s:countByWindow(c.len, c.slide) end)
end)

describe("DStream:reduceByWindow", function()
    cases({
        {name = "reduces every record of the window with f", len = 2, slide = 1,
            input = {{1, 2}, {3}, {}, {4}}, expected = {{3}, {6}, {3}, {4}}},
        {name = "gives no record for an empty window", len = 2, slide = 1,
            input = {{1}, {}, {}, {2}}, expected = {{1}, {1}, {}, {2}}},
        {name = "reduces at multiples of its slide", len = 4, slide = 2,
            input = ONE_TO_SIX, expected = {{3}, {10}, {18}}},
    }, function(s, c) return s:reduceByWindow(add, c.len, c.slide) end)

    describe("with an inverse function", function()
        cases({
            {name = "adds the batches entering and takes out those leaving", len = 2, slide = 1,
                input = {{1, 2}, {3}, {}, {4}}, expected = {{3}, {6}, {3}, {4}}},
            {name = "keeps the value once every record has left, as Spark does", len = 2, slide = 1,
                input = {{5}, {}, {}, {}}, expected = {{5}, {5}, {0}, {0}}},
            {name = "gives no record before the first record arrives", len = 2, slide = 1,
                input = {{}, {}, {7}}, expected = {{}, {}, {7}}},
            {name = "slides by several batches at a time", len = 4, slide = 2,
                input = ONE_TO_SIX, expected = {{3}, {10}, {18}}},
            {name = "takes out the whole previous window when the slide equals the length", len = 2, slide = 2,
                input = ONE_TO_SIX, expected = {{3}, {7}, {11}}},
            {name = "takes out only what entered when the slide exceeds the length", len = 1, slide = 2,
                input = ONE_TO_SIX, expected = {{2}, {4}, {6}}},
        }, function(s, c) return s:reduceByWindow(add, sub, c.len, c.slide) end)

        it("calls invF once per batch leaving the window, with that batch reduced", function()
            local left = {}
            local out = batches.run({{1, 10}, {2}, {3}, {4}, {5}, {6}}, function(s)
                return s:reduceByWindow(add, function(a, b)
                    left[#left + 1] = b
                    return a - b
                end, 3, 1)
            end)
            assert.same({11, 2, 3}, left)
            assert.same({{11}, {13}, {16}, {9}, {12}, {15}}, plain_all(out))
        end)
    end)

    it("raises when invF is neither a function nor a length", function()
        local s = batches.context():queueStream({})
        local err = error_of(s.reduceByWindow, s, add, "sub", 2, 1)
        assert.matches("reduceByWindow: argument #2 (invF) must be a function "
            .. "(or the window length in seconds), got string", err, 1, true)
        err = error_of(s.reduceByWindow, s, nil, 2, 1)
        assert.matches("reduceByWindow: argument #1 (f) must be a function, got nil", err, 1, true)
    end)
end)

describe("DStream:countByValueAndWindow", function()
    cases({
        {name = "counts each record in the window and drops those whose count falls to 0", len = 2, slide = 1,
            input = {{"x", "y", "x"}, {"x"}, {}, {}},
            expected = {{{"x", 2}, {"y", 1}}, {{"x", 3}, {"y", 1}}, {{"x", 1}}, {}}},
        {name = "counts at multiples of its slide", len = 4, slide = 2,
            input = {{"x"}, {"y"}, {"x"}, {}, {}, {}},
            expected = {{{"x", 1}, {"y", 1}}, {{"x", 2}, {"y", 1}}, {{"x", 1}}}},
        {name = "counts composite records by content", len = 2, slide = 1,
            input = {{{"a", 1}, {"a", 1}}, {{"a", 1}, {"a", 2}}, {}},
            expected = {{{{"a", 1}, 2}}, {{{"a", 1}, 3}, {{"a", 2}, 1}}, {{{"a", 1}, 1}, {{"a", 2}, 1}}}},
    }, function(s, c) return s:countByValueAndWindow(c.len, c.slide) end)

    it("counts the pairs of a pair stream as {k, v}", function()
        local out = batches.run({{{"a", 1}, {"a", 1}}, {{"b", 2}}}, function(s)
            return pairs_of(s):countByValueAndWindow(2)
        end)
        assert.same({{{{"a", 1}, 2}}, {{{"a", 1}, 2}, {{"b", 2}, 1}}}, sorted_all(out))
    end)
end)

-- Input for the keyed cases: a takes 1, 3, 2; b takes 2 then nothing.
local KEYED = {{{"a", 1}, {"b", 2}}, {{"a", 3}}, {{"a", 2}}, {}, {}}

describe("DStream:reduceByKeyAndWindow", function()
    cases({
        {name = "reduces each key's values in the window", len = 2, slide = 1, input = KEYED,
            expected = {{{"a", 1}, {"b", 2}}, {{"a", 4}, {"b", 2}}, {{"a", 5}}, {{"a", 2}}, {}}},
        {name = "reduces at multiples of its slide", len = 4, slide = 2,
            input = {{{"a", 1}}, {{"a", 2}, {"b", 1}}, {{"a", 3}}, {}, {}, {{"b", 5}}},
            expected = {{{"a", 3}, {"b", 1}}, {{"a", 6}, {"b", 1}}, {{"a", 3}, {"b", 5}}}},
        {name = "reduces non-overlapping windows", len = 2, slide = 2, input = KEYED,
            expected = {{{"a", 4}, {"b", 2}}, {{"a", 2}}}},
        {name = "keeps composite keys apart by content", len = 2, slide = 1,
            input = {{{{"a", 1}, 1}, {{"a", "1"}, 10}}, {{{"a", 1}, 2}}, {}},
            expected = {{{{"a", 1}, 1}, {{"a", "1"}, 10}}, {{{"a", 1}, 3}, {{"a", "1"}, 10}}, {{{"a", 1}, 2}}}},
    }, function(s, c) return pairs_of(s):reduceByKeyAndWindow(add, c.len, c.slide) end)

    describe("with invF", function()
        cases({
            {name = "adds the batches entering and takes out those leaving", len = 2, slide = 1,
                input = {{{"a", 1}, {"b", 2}}, {{"a", 3}}, {{"a", 2}}},
                expected = {{{"a", 1}, {"b", 2}}, {{"a", 4}, {"b", 2}}, {{"a", 5}, {"b", 0}}}},
            {name = "keeps keys whose values have all left, with invF's result, as Spark does", len = 2, slide = 1,
                input = KEYED,
                expected = {{{"a", 1}, {"b", 2}}, {{"a", 4}, {"b", 2}}, {{"a", 5}, {"b", 0}},
                    {{"a", 2}, {"b", 0}}, {{"a", 0}, {"b", 0}}}},
            {name = "slides by several batches at a time", len = 4, slide = 2,
                input = {{{"a", 1}}, {{"a", 2}, {"b", 1}}, {{"a", 3}}, {}, {}, {{"b", 5}}},
                expected = {{{"a", 3}, {"b", 1}}, {{"a", 6}, {"b", 1}}, {{"a", 3}, {"b", 5}}}},
            {name = "handles windows where the slide equals the length", len = 2, slide = 2, input = KEYED,
                expected = {{{"a", 4}, {"b", 2}}, {{"a", 2}, {"b", 0}}}},
            {name = "keeps composite keys apart by content", len = 2, slide = 1,
                input = {{{{"a", 1}, 1}, {{"a", "1"}, 10}}, {{{"a", 1}, 2}}, {}},
                expected = {{{{"a", 1}, 1}, {{"a", "1"}, 10}}, {{{"a", 1}, 3}, {{"a", "1"}, 10}},
                    {{{"a", 1}, 2}, {{"a", "1"}, 0}}}},
        }, function(s, c) return pairs_of(s):reduceByKeyAndWindow(add, sub, c.len, c.slide) end)

        cases({
            {name = "drops the keys filterF rejects, e.g. counts fallen to 0", len = 2, slide = 1,
                input = KEYED,
                expected = {{{"a", 1}, {"b", 2}}, {{"a", 4}, {"b", 2}}, {{"a", 5}}, {{"a", 2}}, {}}},
            {name = "brings a dropped key back when new values arrive", len = 1, slide = 1,
                input = {{{"a", 1}}, {}, {{"a", 4}}, {}},
                expected = {{{"a", 1}}, {}, {{"a", 4}}, {}}},
            {name = "keeps composite keys apart and drops them at 0", len = 2, slide = 2,
                input = {{{{"a", 1}, 1}}, {{{"a", true}, 1}}, {}, {{{"a", true}, 2}}},
                expected = {{{{"a", true}, 1}, {{"a", 1}, 1}}, {{{"a", true}, 2}}}},
        }, function(s, c)
            return pairs_of(s):reduceByKeyAndWindow(add, sub, c.len, c.slide, function(_, v) return v ~= 0 end)
        end)

        it("calls invF only for the batches leaving, whatever the window's length", function()
            local calls = {}
            for _, len in ipairs({3, 30}) do
                local n = 0
                local input = {}
                for i = 1, 40 do input[i] = {{"k", 1}} end
                batches.run(input, function(s)
                    return pairs_of(s):reduceByKeyAndWindow(add, function(a, b)
                        n = n + 1
                        return a - b
                    end, len, 1)
                end)
                calls[len] = n
            end
            assert.equal(40 - 3, calls[3])
            assert.equal(40 - 30, calls[30])
        end)

        it("gives filterF the key and the window's value", function()
            local seen = {}
            batches.run({{{"a", 1}}, {{"a", 2}}}, function(s)
                return pairs_of(s):reduceByKeyAndWindow(add, sub, 2, 1, function(k, v)
                    seen[#seen + 1] = {k, v}
                    return true
                end)
            end)
            assert.same({{"a", 1}, {"a", 3}}, seen)
        end)

        it("leaves the window as it was when a function raises, and carries on", function()
            local fail = false
            local ssc = batches.context()
            local input = {{{"a", 1}}, {{"a", 2}}, {{"a", 4}}, {{"a", 8}}}
            local out = pairs_of(ssc:queueStream(input)):reduceByKeyAndWindow(function(x, y)
                if fail then error("boom") end
                return x + y
            end, sub, 2, 1):collectBatches()
            ssc:start()
            ssc:advance(1)
            fail = true
            local err = error_of(ssc.advance, ssc, 1)
            assert.matches("reduceByKeyAndWindow", err, 1, true)
            assert.matches("batch time 2000 ms", err, 1, true)
            assert.matches("boom", err, 1, true)
            fail = false
            ssc:advance(2)
            assert.same({{{"a", 1}}, {{"a", 6}}, {{"a", 12}}}, sorted_all(out))
        end)

        -- Running values {n, sum} as tables, reduced by new tables.
        local function add_t(a, b) return {a[1] + b[1], a[2] + b[2]} end
        local function sub_t(a, b) return {a[1] - b[1], a[2] - b[2]} end
        local function tables_of(s)
            return pairs_of(s):mapValues(function(v) return {1, v} end)
        end

        it("keeps table running values as copies: changing an emitted value changes no later window", function()
            local ssc = batches.context()
            local out = {}
            tables_of(ssc:queueStream({{{"a", 1}}, {{"a", 2}}, {{"a", 4}}})):reduceByKeyAndWindow(add_t, sub_t, 2, 1)
                :foreachRDD(function(rdd)
                    local got = rdd:collect()
                    out[#out + 1] = {got[1][1], {got[1][2][1], got[1][2][2]}}
                    got[1][2][1], got[1][2][2] = 100, 100
                end)
            ssc:start()
            ssc:advance(3)
            assert.same({{"a", {1, 1}}, {"a", {2, 3}}, {"a", {2, 6}}}, out)
        end)

        it("leaves table running values as they were when f changes its argument and raises", function()
            local fail = false
            local ssc = batches.context()
            local input = {{{"a", 1}}, {{"a", 2}}, {{"a", 4}}, {{"a", 8}}}
            local out = tables_of(ssc:queueStream(input)):reduceByKeyAndWindow(function(a, b)
                a[1], a[2] = a[1] + b[1], a[2] + b[2]
                if fail then error("boom") end
                return a
            end, sub_t, 2, 1):collectBatches()
            ssc:start()
            ssc:advance(1)
            fail = true
            assert.matches("boom", error_of(ssc.advance, ssc, 1), 1, true)
            fail = false
            ssc:advance(2)
            assert.same({{{"a", {1, 1}}}, {{"a", {2, 6}}}, {{"a", {2, 12}}}}, sorted_all(out))
        end)

        it("raises, naming the operator, for a running value the codec cannot hold", function()
            local err = error_of(batches.run, {{{"a", 1}}, {{"a", 2}}}, function(s)
                return pairs_of(s):reduceByKeyAndWindow(function() return print end, sub, 2, 1)
            end)
            assert.matches("reduceByKeyAndWindow", err, 1, true)
            assert.matches("function", err, 1, true)
            assert.matches("batch time 2000 ms", err, 1, true)
        end)

        it("raises, naming the operator and the key, when invF returns nil", function()
            local err = error_of(batches.run, {{{"a", 1}}, {}, {}}, function(s)
                return pairs_of(s):reduceByKeyAndWindow(add, function() end, 1, 1)
            end)
            assert.matches("reduceByKeyAndWindow: the inverse function returned nil for key \"a\"", err, 1, true)
            assert.matches("batch time 2000 ms", err, 1, true)
        end)
    end)

    it("applies filterF to the result when invF is nil", function()
        local out = batches.run(queue(KEYED), function(s)
            return pairs_of(s):reduceByKeyAndWindow(add, nil, 2, 1, function(k) return k == "a" end)
        end)
        assert.same({{{"a", 1}}, {{"a", 4}}, {{"a", 5}}, {{"a", 2}}, {}}, sorted_all(out))
    end)

    it("raises when invF or filterF is not a function", function()
        local s = pairs_of(batches.context():queueStream({}))
        local err = error_of(s.reduceByKeyAndWindow, s, add, {}, 2, 1)
        assert.matches("reduceByKeyAndWindow: argument #2 (invF) must be a function "
            .. "(or the window length in seconds), got table", err, 1, true)
        err = error_of(s.reduceByKeyAndWindow, s, add, sub, 2, 1, "nonzero")
        assert.matches("reduceByKeyAndWindow: argument #5 (filterF) must be a function, got string", err, 1, true)
    end)

    it("raises on a stream that is not a pair stream", function()
        local s = batches.context():queueStream({})
        local err = error_of(s.reduceByKeyAndWindow, s, add, sub, 2, 1)
        assert.matches("reduceByKeyAndWindow: queueStream is not a pair stream (make pairs with mapToPair)",
            err, 1, true)
    end)

    it("raises at the batch when a stream of unknown shape holds single values", function()
        local err = error_of(batches.run, {{1}}, function(s)
            return s:transform(function(r) return r end):reduceByKeyAndWindow(add, sub, 2, 1)
        end)
        assert.matches("reduceByKeyAndWindow needs a pair stream, but its input holds single values", err, 1, true)
    end)
end)

describe("DStream:groupByKeyAndWindow", function()
    cases({
        {name = "gives each key its values in the window, oldest batch first", len = 2, slide = 1, input = KEYED,
            expected = {{{"a", {1}}, {"b", {2}}}, {{"a", {1, 3}}, {"b", {2}}}, {{"a", {3, 2}}}, {{"a", {2}}}, {}}},
        {name = "groups at multiples of its slide", len = 4, slide = 2,
            input = {{{"a", 1}}, {{"a", 2}, {"b", 1}}, {{"a", 3}}, {}, {}, {{"b", 5}}},
            expected = {{{"a", {1, 2}}, {"b", {1}}}, {{"a", {1, 2, 3}}, {"b", {1}}}, {{"a", {3}}, {"b", {5}}}}},
        {name = "groups composite keys by content", len = 2, slide = 1,
            input = {{{{"a", 1}, "x"}}, {{{"a", 1}, "y"}}},
            expected = {{{{"a", 1}, {"x"}}}, {{{"a", 1}, {"x", "y"}}}}},
    }, function(s, c) return pairs_of(s):groupByKeyAndWindow(c.len, c.slide) end)

    it("raises on a stream that is not a pair stream", function()
        local s = batches.context():queueStream({})
        local err = error_of(s.groupByKeyAndWindow, s, 2, 1)
        assert.matches("groupByKeyAndWindow: queueStream is not a pair stream", err, 1, true)
    end)
end)

describe("window durations", function()
    local builds = {
        window = function(s, len, slide) return s:window(len, slide) end,
        countByWindow = function(s, len, slide) return s:countByWindow(len, slide) end,
        reduceByWindow = function(s, len, slide) return s:reduceByWindow(add, sub, len, slide) end,
        countByValueAndWindow = function(s, len, slide) return s:countByValueAndWindow(len, slide) end,
        reduceByKeyAndWindow = function(s, len, slide)
            return pairs_of(s):name("clicks"):reduceByKeyAndWindow(add, len, slide)
        end,
        groupByKeyAndWindow = function(s, len, slide)
            return pairs_of(s):name("clicks"):groupByKeyAndWindow(len, slide)
        end,
    }
    for op, build in pairs(builds) do
        it("raises when building " .. op .. " whose window or slide is not a multiple of the batch interval", function()
            local ssc = batches.context{batchInterval = 0.5}
            for _, bad in ipairs({{1.25, 0.5, "1.25 s", "500 ms"}, {2, 0.75, "2 s", "750 ms"}}) do
                local err = error_of(build, ssc:queueStream({}), bad[1], bad[2])
                assert.matches(op .. ": the window " .. bad[3] .. " and slide " .. bad[4], err, 1, true)
                assert.matches("must be multiples of the batch interval 500 ms", err, 1, true)
                assert.matches(op:find("Key") and "clicks" or "queueStream#", err, 1, true)
            end
        end)
    end

    it("raises when the window or slide is not a multiple of a windowed parent's slide", function()
        local s = batches.context():queueStream({}):window(4, 2)
        local err = error_of(s.window, s, 3, 2)
        assert.matches("window: the window 3 s and slide 2 s of window#1", err, 1, true)
        assert.matches("must be multiples of that stream's slide 2 s", err, 1, true)
    end)

    it("raises for a length that is missing, zero or negative", function()
        local s = batches.context():queueStream({})
        assert.matches("window: window length must be a number of seconds, got nil", error_of(s.window, s), 1, true)
        assert.matches("countByWindow: window length must be positive", error_of(s.countByWindow, s, 0), 1, true)
        assert.matches("window: slide must be positive", error_of(s.window, s, 2, -1), 1, true)
    end)

    it("shows the window's length and slide in the graph", function()
        local ssc = batches.context()
        local w = ssc:queueStream({}):window(3600, 2)
        assert.equal(3600000, w.window_ms)
        assert.equal(2000, w.slide_ms)
        assert.matches("window(3600 s, 2 s) <- queueStream", tostring(w), 1, true)
    end)
end)

describe("built-in reducers in window operations", function()
    local dstream = require "dstream"
    local function mn(a, b) if b < a then return b end return a end
    local function mx(a, b) if b > a then return b end return a end
    local closures = {sum = add, min = mn, max = mx}

    -- Mixed keys (strings, numbers, a boolean, a composite key), negative
    -- and fractional values, keys that come back after leaving.
    local INPUT = {
        {{"a", 1}, {"b", 2}, {"a", 3}, {7, -1}},
        {{"a", 4}, {{"x", 1}, 5}, {true, 0.5}},
        {},
        {{"b", -2}, {7, 10}, {7, -4}},
        {{"a", 2}, {{"x", 1}, 1}},
        {},
        {{"b", 2}},
    }

    local function same_as_closure(build_builtin, build_closure, input)
        local got = sorted_all(batches.run(queue(input or INPUT), build_builtin))
        local want = sorted_all(batches.run(queue(input or INPUT), build_closure))
        assert.same(want, got)
        return got
    end

    for _, name in ipairs({"sum", "min", "max"}) do
        for _, w in ipairs({{3, 1}, {4, 2}, {2, 2}, {1, 2}}) do
            it(sformat("reduceByKeyAndWindow(dstream.%s, %d, %d) gives the batches its Lua closure gives",
                name, w[1], w[2]), function()
                same_as_closure(function(s)
                    return pairs_of(s):reduceByKeyAndWindow(dstream[name], w[1], w[2])
                end, function(s)
                    return pairs_of(s):reduceByKeyAndWindow(closures[name], w[1], w[2])
                end)
            end)
            it(sformat("reduceByWindow(dstream.%s, %d, %d) gives the batches its Lua closure gives",
                name, w[1], w[2]), function()
                same_as_closure(function(s)
                    return pairs_of(s):map(function(_, v) return v end):reduceByWindow(dstream[name], w[1], w[2])
                end, function(s)
                    return pairs_of(s):map(function(_, v) return v end):reduceByWindow(closures[name], w[1], w[2])
                end)
            end)
        end
    end

    for _, w in ipairs({{3, 1}, {4, 2}, {2, 2}, {1, 2}}) do
        it(sformat("reduceByKeyAndWindow(dstream.sum, dstream.subtract, %d, %d) gives the batches of + and -",
            w[1], w[2]), function()
            same_as_closure(function(s)
                return pairs_of(s):reduceByKeyAndWindow(dstream.sum, dstream.subtract, w[1], w[2])
            end, function(s)
                return pairs_of(s):reduceByKeyAndWindow(add, sub, w[1], w[2])
            end)
        end)
        it(sformat("reduceByKeyAndWindow(dstream.count, dstream.count, %d, %d) counts like a closure on ones",
            w[1], w[2]), function()
            same_as_closure(function(s)
                return pairs_of(s):reduceByKeyAndWindow(dstream.count, dstream.count, w[1], w[2])
            end, function(s)
                return pairs_of(s):mapValues(function() return 1 end):reduceByKeyAndWindow(add, sub, w[1], w[2])
            end)
        end)
        it(sformat("reduceByWindow(dstream.sum, dstream.subtract, %d, %d) gives the batches of + and -",
            w[1], w[2]), function()
            same_as_closure(function(s)
                return pairs_of(s):map(function(_, v) return v end)
                    :reduceByWindow(dstream.sum, dstream.subtract, w[1], w[2])
            end, function(s)
                return pairs_of(s):map(function(_, v) return v end):reduceByWindow(add, sub, w[1], w[2])
            end)
        end)
    end

    it("drops keys with filterF as the Lua path does, and leaving values do not bring them back", function()
        -- b is dropped at 2 while its +3 is still in the window, then -3 and +3 leave.
        local input = {{{"b", 3}}, {{"b", -3}, {"a", 1}}, {}, {{"b", 1}}, {}}
        local keep = function(_, v) return v ~= 0 end
        local got = same_as_closure(function(s)
            return pairs_of(s):reduceByKeyAndWindow(dstream.sum, dstream.subtract, 2, 1, keep)
        end, function(s)
            return pairs_of(s):reduceByKeyAndWindow(add, sub, 2, 1, keep)
        end, input)
        assert.same({{{"b", 3}}, {{"a", 1}}, {{"a", 1}}, {{"b", 1}}, {{"b", 1}}}, got)
    end)

    it("countByValueAndWindow counts in C, as the Lua closures did", function()
        local out = batches.run({{"x", "y", "x", 3, {1, 2}}, {"x", {1, 2}}, {}, {}}, function(s)
            return s:countByValueAndWindow(2)
        end)
        assert.same({{{3, 1}, {"x", 2}, {"y", 1}, {{1, 2}, 1}}, {{3, 1}, {"x", 3}, {"y", 1}, {{1, 2}, 2}},
            {{"x", 1}, {{1, 2}, 1}}, {}}, sorted_all(out))
    end)

    it("says in the graph which reductions run in C", function()
        local s = pairs_of(batches.context():queueStream({}))
        assert.matches("reduceByKeyAndWindow(2 s, 1 s; sum in C)",
            tostring(s:reduceByKeyAndWindow(dstream.sum, dstream.subtract, 2, 1)), 1, true)
        assert.matches("reduceByKeyAndWindow(2 s, 1 s; max in C)",
            tostring(s:reduceByKeyAndWindow(dstream.max, 2, 1)), 1, true)
        assert.matches("countByValueAndWindow(2 s, 1 s; count in C)", tostring(s:countByValueAndWindow(2, 1)), 1, true)
        assert.matches("reduceByKeyAndWindow(2 s, 1 s) <-",
            tostring(s:reduceByKeyAndWindow(dstream.sum, sub, 2, 1)), 1, true)
        assert.matches("reduceByKeyAndWindow(2 s, 1 s) <-", tostring(s:reduceByKeyAndWindow(add, 2, 1)), 1, true)
    end)

    it("raises, naming the operator, the reducer and the key, for values that are not numbers", function()
        for _, build in ipairs({
            function(s) return pairs_of(s):reduceByKeyAndWindow(dstream.sum, dstream.subtract, 2, 1) end,
            function(s) return pairs_of(s):reduceByKeyAndWindow(dstream.sum, 2, 1) end,
        }) do
            local err = error_of(batches.run, {{{"a", 1}}, {{"a", "2"}}}, build)
            assert.matches("reduceByKeyAndWindow: dstream.sum needs numbers, got a string value for key \"a\"",
                err, 1, true)
            assert.matches("batch time 2000 ms", err, 1, true)
        end
        local err = error_of(batches.run, {{{"k", {}}}}, function(s)
            return pairs_of(s):reduceByKeyAndWindow(dstream.min, 2, 1)
        end)
        assert.matches("reduceByKeyAndWindow: dstream.min needs numbers, got a table value for key \"k\"", err, 1, true)
        err = error_of(batches.run, {{1, "x"}}, function(s) return s:reduceByWindow(dstream.max, 2, 1) end)
        assert.matches("reduceByWindow: dstream.max needs numbers, got a string record", err, 1, true)
        err = error_of(batches.run, {{{"a", 1}}}, function(s)
            return pairs_of(s):reduceByWindow(dstream.sum, dstream.subtract, 2, 1)
        end)
        assert.matches("reduceByWindow: dstream.sum needs numbers, got a pair stream", err, 1, true)
    end)

    it("leaves the store as it was when filterF raises, and carries on", function()
        local fail = false
        local ssc = batches.context()
        local input = {{{"a", 1}}, {{"a", 2}, {"b", 1}}, {{"a", 4}}, {{"a", 8}}}
        local out = pairs_of(ssc:queueStream(input)):reduceByKeyAndWindow(dstream.sum, dstream.subtract, 2, 1,
            function(_, v)
                if fail then error("boom") end
                return v ~= 0
            end):collectBatches()
        ssc:start()
        ssc:advance(1)
        fail = true
        local err = error_of(ssc.advance, ssc, 1)
        assert.matches("boom", err, 1, true)
        assert.matches("batch time 2000 ms", err, 1, true)
        fail = false
        ssc:advance(2)
        assert.same({{{"a", 1}}, {{"a", 6}, {"b", 1}}, {{"a", 12}}}, sorted_all(out))
    end)

    it("keeps the running values of a keyed window in C memory, with built-in or Lua reducers", function()
        local ssc = batches.context()
        local w = pairs_of(ssc:queueStream({{{"a", 1}, {"b", 2}}})):reduceByKeyAndWindow(dstream.sum,
            dstream.subtract, 2, 1)
        local lua = pairs_of(ssc:queueStream({{{"a", 1}, {"b", 2}}})):reduceByKeyAndWindow(add, sub, 2, 1)
        local empty = pairs_of(ssc:queueStream({})):reduceByKeyAndWindow(add, sub, 2, 1)
        local whole = pairs_of(ssc:queueStream({})):reduceByKeyAndWindow(add, 2, 1)
        w:collectBatches()
        lua:collectBatches()
        empty:collectBatches()
        whole:collectBatches()
        ssc:start()
        ssc:advance(1)
        assert.is_true(window.state_memory(w) > 0)
        assert.is_true(window.state_memory(lua) > window.state_memory(empty))
        assert.is_nil(window.state_memory(whole))
    end)
end)

-- Built-in functions (API.md, "Built-in functions"): dstream.words is a
-- real function equal to line:gmatch("%S+"), and flatMap(dstream.words)
-- before countByValue or countByValueAndWindow runs in C with the same
-- results as the Lua path - over a queue of Lua strings and over a real
-- socket, whose lines then never become Lua strings.
local dstream = require "dstream"
local batches = require "helpers.batches"
local line_server = require "spec.helpers.line_server"
local planner = require "dstream.planner"
local builtins = require "dstream.builtins"

-- The reference: the words of s by gmatch, as an array.
local function gmatch_words(s)
    local out = {}
    for w in s:gmatch("%S+") do out[#out + 1] = w end
    return out
end

-- A user function with dstream.words's results that is not dstream.words:
-- a flatMap of it is the Lua path.
local function lua_words(line)
    return gmatch_words(line)
end

-- {word = count} of a batch of pairs collected.
local function as_map(records)
    local m = {}
    for _, p in ipairs(records) do
        assert.is_nil(m[p[1]], "a word twice in one batch: " .. tostring(p[1]))
        m[p[1]] = p[2]
    end
    return m
end

-- {word = count} of the words of lines, counted with gmatch.
local function count_lines(lines)
    local m = {}
    for _, l in ipairs(lines) do
        for w in l:gmatch("%S+") do m[w] = (m[w] or 0) + 1 end
    end
    return m
end

-- A random string of n bytes, whitespace frequent, NUL and bytes >= 0x80 too.
local ALPHABET = {" ", "\t", "\n", "\v", "\f", "\r", "\0", "\128", "\255", "\194\160", "a", "b", "c", "ab", "\27"}
local function random_bytes(n)
    local t = {}
    for i = 1, n do
        if math.random() < 0.3 then t[i] = ALPHABET[math.random(#ALPHABET)]
        else t[i] = string.char(math.random(0, 255)) end
    end
    return table.concat(t)
end

-- Lines of words from a small vocabulary, so words repeat across batches.
local function text_batches(nbatches, nlines, seed)
    math.randomseed(seed)
    local vocab = {}
    for i = 1, 300 do vocab[i] = "w" .. i .. (i % 7 == 0 and "\128x" or "") end
    local seps = {" ", "  ", "\t", " \r", "\f ", "\v"}
    local out = {}
    for b = 1, nbatches do
        local lines = {}
        for l = 1, nlines do
            local parts = {}
            for _ = 1, math.random(0, 12) do
                parts[#parts + 1] = vocab[math.random(#vocab)] .. seps[math.random(#seps)]
            end
            lines[l] = (l % 5 == 0 and "  " or "") .. table.concat(parts)
        end
        out[b] = lines
    end
    return out
end

local function copy_queue(bs)
    local q = {}
    for i, b in ipairs(bs) do
        q[i] = {}
        for j, l in ipairs(b) do q[i][j] = l end
    end
    return q
end

-- Runs input batches through flatMap(f):countByValue() under the manual
-- clock; returns one {word = count} per batch and the context's explain text.
local function count_by_value(input, f)
    local ssc = batches.context()
    local counted = ssc:queueStream(copy_queue(input)):flatMap(f):countByValue()
    local out = {}
    counted:foreachRDD(function(rdd) out[#out + 1] = as_map(rdd:collect()) end)
    local text = require("dstream.explain").text(ssc)
    ssc:start()
    ssc:advance(#input)
    ssc:stop()
    return out, text
end

local function counted_window(input, f, len, slide)
    local ssc = batches.context()
    local counted = ssc:queueStream(copy_queue(input)):flatMap(f):countByValueAndWindow(len, slide)
    local out = {}
    counted:foreachRDD(function(rdd) out[#out + 1] = as_map(rdd:collect()) end)
    ssc:start()
    ssc:advance(#input + 3)
    ssc:stop()
    return out
end

describe("dstream.words", function()
    it("gives the words of a line as gmatch('%S+') does, as an array", function()
        assert.same({"a", "b\0c", "d\128"}, dstream.words(" a\tb\0c\r\n\vd\128\f"))
        assert.same({}, dstream.words(""))
        assert.same({}, dstream.words(" \t\r\n\v\f"))
        assert.equal(builtins.words, dstream.words)
    end)

    it("agrees with gmatch and with the C split on random byte strings", function()
        math.randomseed(18)
        for _ = 1, 3000 do
            local s = random_bytes(math.random(0, 40))
            local want = gmatch_words(s)
            assert.same(want, dstream.words(s))
            assert.same(want, builtins.split_c(s))
        end
    end)

    it("works wherever a function does: map, flatMap followed by anything, an RDD", function()
        local ssc = batches.context()
        local lines = ssc:queueStream({{"a b", "c"}})
        local words = lines:flatMap(dstream.words):map(string.upper):collectBatches()
        local arrays = lines:map(dstream.words):map(function(t) return #t end):collectBatches()
        ssc:start()
        ssc:advance(1)
        assert.same({{"A", "B", "C"}}, words)
        assert.same({{2, 1}}, arrays)
        ssc:stop()
    end)

    it("raises naming itself for a record that is not a string", function()
        assert.has_error(function() dstream.words(42) end, nil)
        local ok, err = pcall(dstream.words, {})
        assert.is_false(ok)
        assert.matches("dstream.words: the record is a table, not a string", err, 1, true)
    end)
end)

describe("flatMap(dstream.words):countByValue()", function()
    it("counts the same pairs as the Lua definition over a queue, batch after batch", function()
        local input = text_batches(120, 200, 1)
        local got = count_by_value(input, dstream.words)
        local lua = count_by_value(input, lua_words)
        assert.equal(#input, #got)
        for i = 1, #input do
            local want = count_lines(input[i])
            assert.same(want, got[i], "batch " .. i)
            assert.same(want, lua[i], "batch " .. i .. " (Lua path)")
        end
    end)

    it("counts random bytes (NUL, \\r\\n, bytes >= 0x80, empty lines) as the Lua definition does", function()
        math.randomseed(7)
        local input = {}
        for b = 1, 20 do
            input[b] = {}
            for l = 1, 100 do input[b][l] = random_bytes(math.random(0, 30)) end
        end
        local got = count_by_value(input, dstream.words)
        for i = 1, #input do assert.same(count_lines(input[i]), got[i], "batch " .. i) end
    end)

    it("runs in C, and explain says so; a function that only looks like words is called from Lua", function()
        local input = {{"x y x"}}
        local got, text = count_by_value(input, dstream.words)
        local lua, lua_text = count_by_value(input, lua_words)
        assert.same({{x = 2, y = 1}}, got)
        assert.same(got, lua)
        assert.matches("#1 flatMap <- #0  values, every 1 s  (runs in C: words counted)", text, 1, true)
        assert.matches("stage: #1 flatMap(dstream.words) -> #2 countByValue: runs in C", text, 1, true)
        assert.not_matches("runs in C", lua_text, 1, true)
        assert.matches("stage: #1 flatMap, reading #0 queueStream", lua_text, 1, true)
    end)

    it("is not taken when the words have another reader, are cached, or a map is fused before", function()
        local ssc = batches.context()
        local lines = ssc:queueStream({{"a b a"}})
        local shared = lines:flatMap(dstream.words)
        local c1 = shared:countByValue():collectBatches()
        local all = shared:collectBatches()
        local cached = lines:flatMap(dstream.words):cache()
        local c2 = cached:countByValue():collectBatches()
        local mapped = lines:map(string.upper):flatMap(dstream.words)
        local c3 = mapped:countByValue():collectBatches()
        local c4 = lines:flatMap(dstream.words):countByValue():collectBatches()
        local text = require("dstream.explain").text(ssc)
        assert.is_false(planner.counts_words(shared))
        assert.is_false(planner.counts_words(cached))
        assert.is_false(planner.counts_words(mapped))
        local _, n = text:gsub("runs in C: words counted", "")
        assert.equal(1, n)
        ssc:start()
        ssc:advance(1)
        local function sorted(b) return batches.sorted(b) end
        assert.same({{"a", "b", "a"}}, all)
        assert.same(sorted({{"a", 2}, {"b", 1}}), sorted(batches.plain(c1[1])))
        assert.same(batches.plain(c1), batches.plain(c2))
        assert.same(sorted({{"A", 2}, {"B", 1}}), sorted(batches.plain(c3[1])))
        assert.same(sorted(batches.plain(c1[1])), sorted(batches.plain(c4[1])))
        ssc:stop()
    end)

    it("fails the batch naming flatMap and dstream.words for a record that is not a string", function()
        for _, f in ipairs({dstream.words, function(l) return dstream.words(l) end}) do
            local ssc = batches.context()
            ssc:queueStream({{"ok", 5}}):flatMap(f):countByValue():collectBatches()
            ssc:start()
            local ok, err = pcall(ssc.advance, ssc, 1)
            assert.is_false(ok)
            assert.matches("flatMap", tostring(err), 1, true)
            assert.matches("dstream.words: the record is a number, not a string", tostring(err), 1, true)
            ssc:stop()
        end
    end)

    it("counts a real socket's lines straight from its C blocks, as the Lua definition does", function()
        local input = text_batches(1, 20000, 3)[1]
        input[#input + 1] = "last\0line \128\255"
        local want = count_lines(input)
        local server = line_server.start{lines = input}
        local ssc = dstream.StreamingContext{batchInterval = 0.05}
        ssc:addStreamingListener{onReceiverError = function() end} -- the server's EOF once it is done
        local src = ssc:socketTextStream(server.host, server.port)
        local total, words, from_blocks, seen = {}, 0, 0, 0
        local expected = 0
        for _, n in pairs(want) do expected = expected + n end
        src:flatMap(dstream.words):countByValue():foreachRDD(function(rdd)
            local r = src:_rdd(rdd.time)
            if r and r.n > 0 then
                seen = seen + 1
                if type(r.a) == "userdata" then from_blocks = from_blocks + 1 end
            end
            for _, p in ipairs(rdd:collect()) do
                total[p[1]] = (total[p[1]] or 0) + p[2]
                words = words + p[2]
            end
            if words >= expected then ssc:stop() end
        end)
        assert.is_true(planner.reads_blocks(src))
        assert.matches("countByValue: runs in C (split and count, no Lua call per record; its batch is the words "
            .. "counted), reading #0 socketTextStream(127.0.0.1:" .. server.port .. ") (its lines stay in C blocks)",
            require("dstream.explain").text(ssc), 1, true)
        ssc:start()
        assert.is_true(ssc:awaitTerminationOrTimeout(20), "the words did not all arrive")
        ssc:stop()
        server:close()
        assert.same(want, total)
        assert.is_true(seen > 0)
        assert.equal(seen, from_blocks)
    end)
end)

describe("flatMap(dstream.words):countByValueAndWindow(len, slide)", function()
    local input = text_batches(30, 60, 5)
    for _, case in ipairs({
        {name = "window 3, slide 1", len = 3, slide = 1},
        {name = "window 4, slide 2", len = 4, slide = 2},
        {name = "window 2, slide 3 (slide longer than the window)", len = 2, slide = 3},
    }) do
        it("counts the same pairs as the Lua definition: " .. case.name, function()
            local got = counted_window(input, dstream.words, case.len, case.slide)
            local lua = counted_window(input, lua_words, case.len, case.slide)
            assert.equal(#lua, #got)
            assert.is_true(#got > 5)
            for i = 1, #got do assert.same(lua[i], got[i], "window " .. i) end
        end)
    end
end)

describe("flatMap(dstream.words):countByValueAndWindow after a crash", function()
    local driver = require "dstream.driver"
    local files = require "helpers.files"

    -- Batches of words over 14 batch times, with 4 s windows sliding by 2 s,
    -- crashed (engine closed, no stop) after batch `at` and recovered with
    -- getOrCreate; nil: never crashed. Returns every batch collected, sorted.
    local function run(input, f, at)
        local dir = files.tmpdir()
        local queue = copy_queue(input)
        local outs = {}
        local function create()
            local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual", checkpoint = dir}
            outs[#outs + 1] = ssc:queueStream(queue):flatMap(f):countByValueAndWindow(4, 2):collectBatches()
            return ssc
        end
        local ssc = dstream.StreamingContext.getOrCreate(dir, create)
        ssc:start()
        if at then
            ssc:advance(at)
            ssc._ckpt:close()
            driver.close_engine(ssc)
            ssc.state = "stopped"
            ssc = dstream.StreamingContext.getOrCreate(dir, create)
            ssc:start()
            ssc:advance(#input - at)
        else
            ssc:advance(#input)
        end
        ssc:stop()
        local all = {}
        for _, out in ipairs(outs) do
            for _, b in ipairs(out) do all[#all + 1] = b end
        end
        return batches.sorted_all(all)
    end

    it("gives what the Lua path gives without a crash, whichever batch it crashed after", function()
        local input = text_batches(14, 6, 9)
        local expected = run(input, lua_words)
        assert.same(expected, run(input, dstream.words))
        for at = 1, #input - 1 do
            assert.same(expected, run(input, dstream.words, at), "crashed after batch " .. at)
        end
    end)
end)

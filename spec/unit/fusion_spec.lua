-- Stage fusion: a chain of narrow operations runs as one generated loop.
-- Each spec checks the records a fused stage gives for a large batch and,
-- with helpers/jit_aborts, that LuaJIT compiled the stage's loop without a
-- trace abort (no timing involved). User functions here are arithmetic
-- only, which the JIT compiles.
local dstream = require "dstream"
local batches = require "helpers.batches"
local jit_aborts = require "helpers.jit_aborts"

local N = 200000

local function numbers(n)
    local arr = {}
    for i = 1, n do arr[i] = i end
    return arr
end

-- Runs one batch of `input` through build(stream) with the JIT watched;
-- returns the batch collected, the stage aborts and the compiled traces.
local function run_watched(input, build)
    local ssc = batches.context()
    local out = build(ssc:queueStream({input})):collectBatches()
    ssc:start()
    local aborts, compiled = jit_aborts.collect(function() ssc:advance(1) end)
    ssc:stop()
    return out[1], aborts, compiled
end

-- Compares two arrays of records (pairs as {k, v}) without building a
-- 200 000-line diff: the length, then the first record that differs.
local function assert_records(expected, actual)
    assert.equal(#expected, #actual, "number of records")
    for i = 1, #expected do
        local e, a = expected[i], actual[i]
        if type(e) == "table" then
            if e[1] ~= a[1] or e[2] ~= a[2] then
                assert.same(e, batches.plain(a), "record " .. i)
            end
        elseif e ~= a then
            assert.equal(e, a, "record " .. i)
        end
    end
end

-- Runs fn with explain's printing going nowhere.
local function quietly(fn)
    local saved = io.output()
    io.output(io.tmpfile())
    local ok, err = pcall(fn)
    io.output(saved)
    if not ok then error(err, 0) end
end

local function assert_compiled(aborts, compiled)
    assert.equal(0, #aborts, "trace aborts in the stage:\n" .. jit_aborts.show(aborts))
    assert.is_true(compiled > 0, "no trace of the stage compiled")
end

describe("a fused stage", function()
    it("runs map, filter, mapToPair and mapValues in one loop that compiles", function()
        local input = numbers(N)
        local expected = {}
        for i = 1, N do
            local x = i * 3
            if x % 2 == 0 then expected[#expected + 1] = {x % 7, x + 1} end
        end
        local out, aborts, compiled = run_watched(input, function(s)
            return s:map(function(x) return x * 3 end)
                :filter(function(x) return x % 2 == 0 end)
                :mapToPair(function(x) return x % 7, x end)
                :mapValues(function(v) return v + 1 end)
        end)
        assert_records(expected, out)
        assert_compiled(aborts, compiled)
    end)

    it("runs flatMap (arrays of 0 to 3 records) and the ops after it in one loop that compiles", function()
        local input = numbers(N)
        local expected = {}
        for i = 1, N do
            for j = 1, i % 4 do
                local y = i * 10 + j
                if y % 3 ~= 0 then expected[#expected + 1] = y * 2 end
            end
        end
        local out, aborts, compiled = run_watched(input, function(s)
            return s:flatMap(function(x)
                local n = x % 4
                if n == 0 then return {} end
                if n == 1 then return {x * 10 + 1} end
                if n == 2 then return {x * 10 + 1, x * 10 + 2} end
                return {x * 10 + 1, x * 10 + 2, x * 10 + 3}
            end)
                :filter(function(y) return y % 3 ~= 0 end)
                :map(function(y) return y * 2 end)
        end)
        assert_records(expected, out)
        assert_compiled(aborts, compiled)
    end)

    it("runs flatMap arrays of two records each in one loop that compiles", function()
        local input = numbers(N)
        local expected = {}
        for i = 1, N do
            expected[#expected + 1] = i
            expected[#expected + 1] = -i
        end
        local out, aborts, compiled = run_watched(input, function(s)
            return s:flatMap(function(x) return {x, -x} end):map(function(x) return x end)
        end)
        assert_records(expected, out)
        assert_compiled(aborts, compiled)
    end)

    it("runs a chain over a pair stream's records (k, v) in one loop that compiles", function()
        local input = numbers(N)
        local expected = {}
        for i = 1, N do
            local k, v = i, i * 2
            if (k + v) % 4 == 0 then expected[#expected + 1] = k * 1000 + v + 1 end
        end
        -- reduceByKey over distinct keys: its output, the stage's input, is pairs.
        local out, aborts, compiled = run_watched(input, function(s)
            return s:mapToPair(function(x) return x, x end)
                :reduceByKey(function(a, b) return a + b end)
                :mapValues(function(v) return v * 2 end)
                :filter(function(k, v) return (k + v) % 4 == 0 end)
                :map(function(k, v) return k * 1000 + v end)
                :map(function(x) return x + 1 end)
        end)
        assert_records(expected, batches.sorted(out))
        assert_compiled(aborts, compiled)
    end)

    it("runs flatMapValues over pairs in one loop that compiles", function()
        local input = numbers(N)
        local expected = {}
        for i = 1, N do
            local k = i % 10
            for j = 1, i % 3 do expected[#expected + 1] = {k, i + j} end
        end
        local out, aborts, compiled = run_watched(input, function(s)
            return s:mapToPair(function(x) return x % 10, x end)
                :flatMapValues(function(v)
                    local n = v % 3
                    if n == 0 then return {} end
                    if n == 1 then return {v + 1} end
                    return {v + 1, v + 2}
                end)
        end)
        assert_records(expected, out)
        assert_compiled(aborts, compiled)
    end)
end)

describe("a fused stage explained before it runs", function()
    it("runs the chunk explain{source = true} printed, in one loop that compiles", function()
        local input = numbers(N)
        local ssc = batches.context()
        local where
        local out = ssc:queueStream({input}):map(function(x) return x + 1 end)
            :filter(function(x)
                if x == 2 then where = debug.getinfo(2, "S").source end
                return x % 2 == 0
            end):collectBatches()
        local text
        quietly(function() text = ssc:explain{source = true} end)
        ssc:start()
        local aborts, compiled = jit_aborts.collect(function() ssc:advance(1) end)
        ssc:stop()
        assert.are.equal(N / 2, #out[1])
        assert.truthy(text:find("\n    " .. where:sub(2) .. "  (reads values, makes values)\n", 1, true), text)
        assert_compiled(aborts, compiled)
    end)
end)

describe("a fused stage ending in reduceByKey", function()
    it("combines the pairs as the chain makes them, in one loop that compiles", function()
        local input = numbers(N)
        local sums = {}
        for i = 1, N do
            if i % 5 ~= 0 then
                local k = i % 13
                sums[k] = (sums[k] or 0) + i * 2
            end
        end
        local expected = {}
        for k = 0, 12 do expected[#expected + 1] = {k, sums[k]} end
        local out, aborts, compiled = run_watched(input, function(s)
            return s:filter(function(x) return x % 5 ~= 0 end)
                :mapToPair(function(x) return x % 13, x end)
                :mapValues(function(v) return v * 2 end)
                :reduceByKey(function(a, b) return a + b end)
        end)
        assert_records(expected, batches.sorted(out))
        assert_compiled(aborts, compiled)
    end)
end)

describe("a narrow stream with two consumers", function()
    it("is computed once per batch, not once per consumer", function()
        local calls = 0
        local ssc = batches.context()
        local shared = ssc:queueStream({{1, 2, 3}, {4, 5}}):map(function(x)
            calls = calls + 1
            return x * 10
        end)
        local plus = shared:map(function(x) return x + 1 end):collectBatches()
        local big = shared:filter(function(x) return x > 20 end):collectBatches()
        ssc:start()
        ssc:advance(1)
        assert.equal(3, calls)
        ssc:advance(1)
        assert.equal(5, calls)
        assert.same({{11, 21, 31}, {41, 51}}, plus)
        assert.same({{30}, {40, 50}}, big)
    end)

    it("is computed once per batch when one consumer is an output and the other a shuffle", function()
        local calls = 0
        local ssc = batches.context()
        local shared = ssc:queueStream({{"a", "b", "a"}}):mapToPair(function(w)
            calls = calls + 1
            return w, 1
        end)
        local raw = shared:collectBatches()
        local counts = shared:reduceByKey(function(a, b) return a + b end):collectBatches()
        ssc:start()
        ssc:advance(1)
        assert.equal(3, calls)
        assert.same({{{"a", 1}, {"b", 1}, {"a", 1}}}, batches.plain_all(raw))
        assert.same({{{"a", 2}, {"b", 1}}}, batches.sorted_all(counts))
    end)
end)

describe("a fused chain", function()
    it("calls each function once per record, in chain order", function()
        local log = {}
        local out = batches.run({{1, 2}}, function(s)
            return s:map(function(x) log[#log + 1] = "map" .. x return x end)
                :filter(function(x) log[#log + 1] = "filter" .. x return x == 2 end)
                :map(function(x) log[#log + 1] = "map2" .. x return x end)
        end)
        assert.same({{2}}, out)
        assert.same({"map1", "filter1", "map2", "filter2", "map22"}, log)
    end)
end)

-- explain()'s stages, and the stages the batches really compiled: each as
-- "#1 filter -> #2 mapToPair, reading #0 queueStream", sorted.
local function explained_stages(ssc)
    local text = ssc:explain()
    local out = {}
    for line in text:gmatch("  stage: ([^\n]+)") do out[#out + 1] = line end
    table.sort(out)
    return out, text
end

-- From the chunks the batches loaded (a stage record's runs, by the ops of
-- their source records), not from the stage printer explain uses.
local function compiled_stages(ssc)
    local out = {}
    for _, s in ipairs(ssc.streams) do
        local st = s._stage
        local shape = st and next(st.runs)
        if shape then
            local chain = {}
            for i, op in ipairs(st.sources[shape].ops) do
                chain[i] = "#" .. op.stream.id .. " " .. op.kind
                if op.stream.kind == "reduceByKey" then chain[i] = chain[i] .. " (map-side combine)" end
            end
            local input = st.input
            out[#out + 1] = string.format("%s, reading #%d %s", table.concat(chain, " -> "), input.id,
                input.desc or input.kind)
        end
    end
    table.sort(out)
    return out
end

describe("ssc:explain()", function()
    local ident = function(x) return x end
    local graphs = {
        {"a chain read by transform (static_join's shape)", function(s)
            return s:filter(function() return true end):mapToPair(function(x) return x, 1 end)
                :transform(function(rdd) return rdd end):collectBatches()
        end},
        {"a chain read by an output", function(s)
            return s:map(ident):map(ident):print()
        end},
        {"a chain ending in reduceByKey", function(s)
            return s:flatMap(function(x) return {x, x} end):mapToPair(function(x) return x, 1 end)
                :reduceByKey(function(a, b) return a + b end):collectBatches()
        end},
        {"a chain read by a window (the trade totals' shape)", function(s)
            return s:mapToPair(function(x) return x, 1 end)
                :reduceByKeyAndWindow(function(a, b) return a + b end, 2, 1):collectBatches()
        end},
        {"a chain read by mapWithState", function(s)
            return s:mapToPair(function(x) return x, 1 end)
                :mapWithState(dstream.StateSpec(function(k) return k end)):collectBatches()
        end},
        {"a narrow stream with two consumers", function(s)
            local m = s:map(ident)
            m:filter(ident):collectBatches()
            return m:map(ident):print()
        end},
        {"a cached narrow stream", function(s)
            return s:map(ident):cache():map(ident):collectBatches()
        end},
    }
    for _, g in ipairs(graphs) do
        it("lists exactly the stages that run, for " .. g[1], function()
            local ssc = batches.context()
            g[2](ssc:queueStream({{1, 2, 3}}))
            local explained, text
            quietly(function() explained, text = explained_stages(ssc) end)
            ssc:start()
            quietly(function() ssc:advance(1) end)
            ssc:stop()
            assert.is_true(#explained > 0, text)
            assert.are.same(compiled_stages(ssc), explained, text)
            for id in text:gmatch("fused into the stage of #(%d+)") do
                assert.truthy(text:find("-> #" .. id .. " ", 1, true), text)
            end
        end)
    end

    it("does not call a stream fused whose stage runs on its own (filter -> mapToPair -> transform)", function()
        local ssc = batches.context()
        ssc:queueStream({}):filter(function() return true end):mapToPair(function(x) return x, 1 end)
            :transform(function(rdd) return rdd end):print()
        local text
        quietly(function() text = ssc:explain() end)
        assert.matches("stage: #1 filter %-> #2 mapToPair, reading #0 queueStream", text)
        assert.matches("#1 filter <%- #0  values, every 1 s  %(fused into the stage of #2%)", text)
        assert.matches("#2 mapToPair <%- #1  pairs, every 1 s\n", text)
        assert.not_matches("%(none", text)
        ssc:stop()
    end)
end)

-- The listing of the chunk `name` in explain{source = true}'s text, line
-- numbers taken off: line n of the result is line n of the chunk.
local function listing(text, name)
    local at = assert(text:find("\n    " .. name .. "  (", 1, true), "no listing of " .. name .. " in:\n" .. text)
    local lines = {}
    for l in text:sub(at + 1):gmatch("([^\n]*)\n") do
        local n, code = l:match("^ +(%d+)  (.*)$")
        if lines[1] and not n then break end
        if n then
            assert(tonumber(n) == #lines + 1, "line numbers in order")
            lines[#lines + 1] = code
        end
    end
    return lines
end

describe("ssc:explain{source = true}", function()
    it("prints, after the outputs, each stage's chunk: the source that runs, line for line", function()
        local ssc = batches.context()
        local calls = {}
        local function where(name)
            local info = debug.getinfo(3, "Sl")
            calls[name] = {chunk = info.source:sub(2), line = info.currentline}
        end
        local got = ssc:queueStream({{"a b", "b"}})
            :flatMap(function(line) where("split") local t = {} for w in line:gmatch("%S+") do t[#t + 1] = w end return t end)
            :mapToPair(function(w) where("pair") return w, 1 end)
            :reduceByKey(function(a, b) where("add") return a + b end):collectBatches()
        local text
        quietly(function() text = ssc:explain{source = true} end)
        ssc:start()
        ssc:advance(1)
        ssc:stop()
        assert.are.same({{{"a", 1}, {"b", 2}}}, batches.sorted_all(got))
        assert.matches("\noutputs:\n  #4 collectBatches <%- #3, every 1 s\nstage sources:\n  stage: #1 flatMap %-> "
            .. "#2 mapToPair %-> #3 reduceByKey %(map%-side combine%), reading #0 queueStream\n    dstream:stage%d+:"
            .. "flatMap,mapToPair,reduceByKey  %(reads values, combines its pairs by key%)\n       1  local fail", text)
        local chunk = calls.split.chunk
        assert.matches("^dstream:stage%d+:flatMap,mapToPair,reduceByKey$", chunk)
        local lines = listing(text, chunk)
        for name, call in pairs({split = "= f1(x0)", pair = "= f2(x1)", add = "= rf(acc, v2)"}) do
            assert.are.equal(chunk, calls[name].chunk, name)
            assert.truthy(lines[calls[name].line]:find(call, 1, true), name .. ": " .. lines[calls[name].line])
        end
        local st = require("dstream.planner").stage(ssc.streams[4])
        assert.are.equal(table.concat(lines, "\n"), st.sources.v.source)
    end)

    it("prints the same chunk before the first batch and after it", function()
        local ssc = batches.context()
        ssc:queueStream({{1}}):map(function(x) return x end):print()
        local before, after
        quietly(function()
            before = ssc:explain{source = true}
            ssc:start()
            ssc:advance(1)
            after = ssc:explain{source = true}
        end)
        ssc:stop()
        local sources = "\nstage sources:\n.*$"
        assert.matches("dstream:stage%d+:map  ", before:match(sources))
        assert.are.equal(before:match(sources), after:match(sources))
    end)

    it("keeps explain()'s text and adds the sources after it", function()
        local ssc = batches.context()
        ssc:queueStream({}):map(function(x) return x end):print()
        local plain, with_source
        quietly(function() plain, with_source = ssc:explain(), ssc:explain{source = true} end)
        assert.are.equal(plain, with_source:sub(1, #plain))
        assert.matches("^stage sources:\n  stage: #1 map, reading #0 queueStream\n"
            .. "    dstream:stage%d+:map  %(reads values, makes values%)\n", with_source:sub(#plain + 1))
        assert.not_matches("stage sources", plain)
        ssc:stop()
    end)

    it("prints a chunk for each shape the stage's input may hold", function()
        local ssc = batches.context()
        ssc:queueStream({}):transform(function(rdd) return rdd end):map(function(x) return x end):print()
        local text
        quietly(function() text = ssc:explain{source = true} end)
        assert.matches("dstream:stage%d+:map  %(reads values, makes values%)", text)
        assert.matches("dstream:stage%d+:map  %(reads pairs, makes values%)", text)
        ssc:stop()
    end)

    it("says when there is no stage", function()
        local ssc = batches.context()
        ssc:queueStream({}):count():print()
        local text
        quietly(function() text = ssc:explain{source = true} end)
        assert.matches("\nstage sources:\n  %(none: no narrow operations%)\n$", text)
        ssc:stop()
    end)

    it("refuses an unknown option, naming the allowed ones", function()
        local ssc = batches.context()
        ssc:queueStream({}):print()
        local ok, err = pcall(ssc.explain, ssc, {sources = true})
        assert.is_false(ok)
        assert.matches('explain: unknown option "sources" %(allowed: source%)', err)
        ssc:stop()
    end)
end)

-- DStream:print(n): Spark's format, written with io.write. Each spec sends
-- io.output to a temporary file and reads back what was printed.
local dstream = require "dstream"
local batches = require "helpers.batches"

local RULE = string.rep("-", 43)

-- Runs `advance` batches of a graph whose output is print, capturing stdout.
local function printed(input, build, advance)
    local ssc = batches.context()
    build(ssc:queueStream(input))
    ssc:start()
    local tmp = io.tmpfile()
    local saved = io.output()
    io.output(tmp)
    local ok, err = pcall(ssc.advance, ssc, advance or #input)
    io.output(saved)
    tmp:seek("set")
    local text = tmp:read("*a")
    tmp:close()
    if not ok then error(err, 0) end
    return text
end

-- The text print writes for one batch.
local function block(ms, lines)
    local out = {RULE, "Time: " .. ms .. " ms", RULE}
    for _, l in ipairs(lines) do out[#out + 1] = l end
    return table.concat(out, "\n") .. "\n\n"
end

describe("DStream:print", function()
    it("prints each batch in Spark's format: rules, time, records, blank line", function()
        local text = printed({{"a", "b"}, {"c"}}, function(s) s:print() end)
        assert.equal(block(1000, {"a", "b"}) .. block(2000, {"c"}), text)
    end)

    it("prints the header and a blank line for an empty batch", function()
        local text = printed({{}}, function(s) s:print() end)
        assert.equal(RULE .. "\nTime: 1000 ms\n" .. RULE .. "\n\n", text)
    end)

    it("prints the first 10 records by default, then ...", function()
        local input = {}
        for i = 1, 11 do input[i] = i end
        local text = printed({input}, function(s) s:print() end)
        assert.equal(block(1000, {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "..."}), text)
    end)

    it("prints exactly n records without ... when the batch has n", function()
        local text = printed({{1, 2, 3}}, function(s) s:print(3) end)
        assert.equal(block(1000, {"1", "2", "3"}), text)
    end)

    it("prints the first n records and ... when the batch has more", function()
        local text = printed({{1, 2, 3}}, function(s) s:print(2) end)
        assert.equal(block(1000, {"1", "2", "..."}), text)
    end)

    it("prints pairs as (k,v)", function()
        local text = printed({{"x", "y", "x"}}, function(s)
            s:mapToPair(function(w) return w, #w end):print()
        end)
        assert.equal(block(1000, {"(x,1)", "(y,1)", "(x,1)"}), text)
    end)

    it("prints whole numbers without a fraction and other numbers as Lua does", function()
        local text = printed({{3, 2.5, -0.25, 1e3}}, function(s) s:print() end)
        assert.equal(block(1000, {"3", "2.5", "-0.25", "1000"}), text)
    end)

    it("prints arrays as {a, b, c} and booleans as Lua does", function()
        local text = printed({{{1, "a", 2.5}, {}, true}}, function(s) s:print() end)
        assert.equal(block(1000, {"{1, a, 2.5}", "{}", "true"}), text)
    end)

    it("prints a two-element array record as a tuple (a,b), as Spark prints a Tuple2", function()
        local text = printed({{{"hello", 2}, {1, {2, 3}}, {"x", y = 1}}}, function(s) s:print() end)
        assert.equal(block(1000, {"(hello,2)", "(1,{2, 3})", "{x, y=1}"}), text)
    end)

    it("prints mapWithState's {key, count} records as (key,count)", function()
        local text = printed({{"hello", "world", "hello"}}, function(s)
            s:mapToPair(function(w) return w, 1 end)
                :mapWithState(dstream.StateSpec(function(w, n, state)
                    local count = (state:getOption() or 0) + n
                    state:update(count)
                    return {w, count}
                end))
                :print()
        end)
        assert.equal(block(1000, {"(hello,1)", "(world,1)", "(hello,2)"}), text)
    end)

    it("prints a join's values as tuples: (apple,(3,fruit)), a missing side as nil", function()
        local text = printed({{"apple 3", "caviar 1"}}, function(s)
            local ref = s.ctx:parallelizePairs{apple = "fruit"}
            s:mapToPair(function(line) local p, n = line:match("(%S+) (%d+)") return p, tonumber(n) end)
                :transform(function(rdd) return rdd:leftOuterJoin(ref):sortBy(function(k) return k end) end)
                :print()
        end)
        assert.equal(block(1000, {"(apple,(3,fruit))", "(caviar,(1,nil))"}), text)
    end)

    it("prints an inner join of two streams as (k,(v,w)) and cogroup as (k,({vs},{ws}))", function()
        local text = printed({{"a"}}, function(s)
            local left = s:mapToPair(function(w) return w, 1 end)
            local right = s:mapToPair(function(w) return w, "x" end)
            left:join(right):print()
            left:cogroup(right):print()
        end)
        assert.equal(block(1000, {"(a,(1,x))"}) .. block(1000, {"(a,({1},{x}))"}), text)
    end)

    it("shows a collected join record with tostring as Spark does", function()
        local ssc = batches.context()
        local left = ssc:parallelizePairs{apple = 3}
        local joined = left:join(ssc:parallelizePairs{apple = "fruit"}):collect()
        assert.equal("(apple,(3,fruit))", tostring(joined[1]))
    end)

    it("prints the values of a grouped pair stream as arrays", function()
        local text = printed({{{"k", 1}, {"k", 2}}}, function(s)
            s:mapToPair(function(r) return r[1], r[2] end):groupByKey():print()
        end)
        assert.equal(block(1000, {"(k,{1, 2})"}), text)
    end)

    it("prints every batch time, also with several print outputs", function()
        local text = printed({{1}, {}}, function(s)
            s:print()
            s:map(function(x) return x * 2 end):print()
        end)
        assert.equal(block(1000, {"1"}) .. block(1000, {"2"}) .. block(2000, {}) .. block(2000, {}), text)
    end)

    it("prints only the header and ... with print(0) on a non-empty batch", function()
        local text = printed({{1}}, function(s) s:print(0) end)
        assert.equal(block(1000, {"..."}), text)
    end)

    it("returns nothing and registers an output", function()
        local ssc = batches.context()
        local s = ssc:queueStream({})
        assert.is_nil(s:print())
        assert.matches("1 output", tostring(ssc), 1, true)
    end)
end)

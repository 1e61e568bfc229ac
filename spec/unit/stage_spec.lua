-- The stage compiler's back end (lua/dstream/stage.lua): ops -> source
-- record -> loaded function, and the printer explain{source = true} uses.
require "dstream"
local stage = require "dstream.stage"

local function ops(...)
    local out = {}
    for i, kind in ipairs({...}) do out[i] = {kind = kind, label = kind} end
    return out
end

-- The printer's text with the chunk's N (a process-wide count) left out.
local function shown(src, indent)
    return (stage.show(src, indent):gsub("dstream:stage%d+:", "dstream:stage<N>:"))
end

local function run_values(src, fns, input)
    local run = stage.load(src)(unpack(fns))
    local m, oa, _, oends = run(#input, input, nil, {#input})
    return m, oa, oends
end

describe("stage.generate", function()
    it("names each chunk =dstream:stage<N>:<ops>, with an N of its own", function()
        local a = stage.generate(ops("map", "filter"), "v")
        local b = stage.generate(ops("map", "filter"), "v")
        assert.matches("^=dstream:stage%d+:map,filter$", a.name)
        assert.matches("^=dstream:stage%d+:map,filter$", b.name)
        assert.are_not.equal(a.name, b.name)
    end)

    it("names a stage ending in a map-side combine after its reduceByKey too", function()
        local src = stage.generate(ops("mapToPair"), "v", {kind = "reduceByKey", label = "reduceByKey"})
        assert.matches("^=dstream:stage%d+:mapToPair,reduceByKey$", src.name)
        assert.is_true(src.tail)
        assert.are.equal("reduceByKey", src.ops[2].kind)
    end)

    it("records the shapes and, for each line calling a user function, its op", function()
        local src = stage.generate(ops("map", "filter"), "v")
        assert.are.equal("v", src.in_shape)
        assert.are.equal("v", src.out_shape)
        assert.are.equal(1, src.lines[10])
        assert.are.equal(2, src.lines[12])
        assert.is_nil(src.lines[13])
    end)

    it("refuses a chain that does not apply to its input's shape", function()
        assert.has_error(function() stage.generate(ops("mapValues"), "v") end)
        assert.has_error(function() stage.generate(ops("map"), "v", {kind = "reduceByKey"}) end)
    end)
end)

describe("stage.show", function()
    it("prints the chunk's name, its shapes and its source with line numbers", function()
        local src = stage.generate(ops("map", "filter"), "v")
        assert.are.equal([[
dstream:stage<N>:map,filter  (reads values, makes values)
   1  local fail, type, show = ...
   2  return function(f1, f2)
   3  return function(n, a, b, ends, by_key, add)
   4      local oa, ob, oends = {}, nil, {}
   5      local m, lo = 0, 1
   6      for p = 1, #ends do
   7          local hi = ends[p]
   8          for i = lo, hi do
   9              local x0 = a[i]
  10              local x1 = f1(x0)
  11              if x1 == nil then fail(1, 'function returned nil') end
  12              if f2(x1) then
  13                  m = m + 1
  14                  oa[m] = x1
  15              end
  16          end
  17          oends[p] = m
  18          lo = hi + 1
  19      end
  20      return m, oa, ob, oends
  21  end
  22  end]], shown(src))
    end)

    it("prints a stage over pairs ending in a map-side combine, indented", function()
        local src = stage.generate(ops("mapValues"), "p", {kind = "reduceByKey", label = "reduceByKey"})
        assert.are.equal([[
  dstream:stage<N>:mapValues,reduceByKey  (reads pairs, combines its pairs by key)
     1  local fail, type, show = ...
     2  return function(f1, rf)
     3  return function(n, a, b, ends, by_key, add)
     4      local oa, ob, oends = {}, {}, {}
     5      local m, lo = 0, 1
     6      for p = 1, #ends do
     7          local hi = ends[p]
     8          for i = lo, hi do
     9              local k0, v0 = a[i], b[i]
    10              local v1 = f1(v0)
    11              if v1 == nil then fail(1, 'function returned nil') end
    12              local acc = by_key[k0]
    13              if acc ~= nil then
    14                  local r = rf(acc, v1)
    15                  if r == nil then fail(2, 'function returned nil for key ' .. show(k0)) end
    16                  by_key[k0] = r
    17              else
    18                  add(k0, v1)
    19              end
    20          end
    21          oends[p] = m
    22          lo = hi + 1
    23      end
    24      return m, oa, ob, oends
    25  end
    26  end]], shown(src, "  "))
    end)

    it("prints the source of a flatMap chain as one while loop", function()
        local text = shown(stage.generate(ops("flatMap", "map"), "v"))
        assert.matches("dstream:stage<N>:flatMap,map  %(reads values, makes values%)\n", text)
        assert.matches("\n  10          while true do\n", text)
        assert.not_matches("for i = lo, hi do", text)
    end)
end)

describe("stage.load", function()
    it("loads the record's source under its name, the user's functions bound", function()
        local src = stage.generate(ops("map", "filter"), "v")
        local where
        local m, oa, oends = run_values(src, {
            function(x) return x * 10 end,
            function(x)
                where = debug.getinfo(2, "Sl")
                return x > 10
            end}, {1, 2, 3})
        assert.are.equal(2, m)
        assert.are.same({20, 30}, oa)
        assert.are.same({2}, oends)
        assert.are.equal(src.name, where.source)
        assert.are.equal(12, where.currentline)
        assert.are.equal(2, src.lines[where.currentline])
    end)

    it("names the op whose function raised, from the chunk's line", function()
        local src = stage.generate(ops("map", "filter"), "v")
        local op, trace
        local ok = xpcall(function()
            run_values(src, {function(x) return x end, function() error("boom") end}, {1})
        end, function(e)
            op, trace = stage.failing_op(2), debug.traceback(e, 2)
            return e
        end)
        assert.is_false(ok)
        assert.are.equal(src.ops[2], op)
        assert.truthy(trace:find(src.name:sub(2) .. ":12:", 1, true), trace)
    end)

    it("raises a stage.Failure naming the op when a function returns nil", function()
        local src = stage.generate(ops("map"), "v")
        local ok, err = pcall(run_values, src, {function() return nil end}, {1})
        assert.is_false(ok)
        assert.are.equal(stage.Failure, getmetatable(err))
        assert.are.equal(src.ops[1], err.stage_op)
        assert.are.equal("function returned nil", tostring(err))
    end)
end)

-- mapWithState against a plain Lua table doing the same thing: a million
-- random records (updates to numbers, NaN, -0, -inf, tables and strings,
-- removals, reads) over number, string, boolean and composite keys, in
-- batches whose keys are all numbers, all strings or mixed (the store's
-- batch lookups and their fallback), run long enough for the per-record
-- loop to be compiled; after every batch the store must hold what the
-- table holds, and a store rebuilt from the delta checkpoints likewise.
local dstream = require "dstream"
local keystore = require "dstream.store"
local key = require "dstream.key"

-- Park-Miller: the same draws on every run.
local function generator(seed)
    return function(n)
        seed = seed * 16807 % 2147483647
        return seed % n + 1
    end
end

local SPECIAL = {0 / 0, -math.huge, -0.0, 1e300}

-- What the state function does with a record of value v (an integer):
-- decided by v alone, so the model does the same.
local function step(v, cur)
    local op = v % 8
    if op <= 2 then
        return "update", (type(cur) == "number" and cur == cur and cur or 0) + 1
    elseif op == 3 then
        if cur ~= nil then return "remove" end
        return "update", v
    elseif op == 4 then
        return "update", SPECIAL[v % 4 + 1]
    elseif op == 5 then
        return "update", {n = v, tag = "t"}
    elseif op == 6 then
        return "read"
    end
    return "update", "s" .. v
end

-- The model's table key for a dstream key: strings and composite keys kept apart.
local function model_key(k)
    local canon, composite = key.check(k)
    if composite then return "c:" .. canon end
    if type(k) == "string" then return "s:" .. k end
    return canon
end

-- A printable form that tells NaN, -0 and tables apart.
local function show(v)
    if type(v) == "table" then return "{" .. tostring(v.n) .. "," .. tostring(v.tag) .. "}" end
    if v ~= v then return "NaN" end
    if v == 0 and 1 / v < 0 then return "-0" end
    return type(v) .. ":" .. tostring(v)
end

local function key_pool(draw)
    local ints, strs, mixed = {}, {}, {}
    for i = 1, 3000 do ints[i] = (draw(7) == 1) and i + 0.5 or i * 3 end
    ints[1], ints[2] = 0, -0.0
    for i = 1, 3000 do
        -- 0-6 bytes are kept in the cell itself, longer ones in a blob.
        strs[i] = (i % 3 == 0) and ("k" .. i) or ("key-" .. i .. string.rep("x", i % 17))
    end
    strs[1] = ""
    for i = 1, 200 do mixed[i] = {"c", i % 7, i % 2 == 0} end
    mixed[201], mixed[202] = true, false
    return ints, strs, mixed
end

-- Batches of records {k, v}: all numbers, all strings, or a mix of every kind.
local function make_batches(draw, nbatches, size)
    local ints, strs, mixed = key_pool(draw)
    local batches = {}
    for b = 1, nbatches do
        local ks, vs, kind = {}, {}, b % 5
        for i = 1, size do
            local k
            if kind <= 1 then
                k = ints[draw(#ints)]
            elseif kind <= 3 then
                k = strs[draw(#strs)]
            else
                local w = draw(3)
                k = w == 1 and ints[draw(#ints)] or w == 2 and strs[draw(#strs)] or mixed[draw(#mixed)]
            end
            ks[i], vs[i] = k, draw(1000000)
        end
        batches[b] = {ks = ks, vs = vs}
    end
    return batches
end

-- The model's contents, shown: sorted "key=value" strings.
local function model_contents(model)
    local out = {}
    local k, v = next(model)
    while k ~= nil do
        out[#out + 1] = tostring(k) .. "=" .. show(v)
        k, v = next(model, k)
    end
    table.sort(out)
    return out
end

local function store_contents(st)
    local ks, vs = {}, {}
    local m = st:dump(ks, vs, 0)
    local out = {}
    for i = 1, m do
        local mk = model_key(ks[i])
        out[i] = tostring(mk) .. "=" .. show(vs[i])
    end
    table.sort(out)
    return out
end

local function run_model(nbatches, size, opts)
    local draw = generator(opts.seed)
    local batches = make_batches(draw, nbatches, size)
    local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
    local queue = {}
    local pairs_stream = ssc:queueStream(queue):mapToPair(function(r) return r[1], r[2] end)
    local spec = dstream.StateSpec(function(k, v, st)
        local what, new = step(v, st:getOption())
        if what == "update" then
            st:update(new)
        elseif what == "remove" then
            st:remove()
        end
        return {k, st:getOption()}
    end)
    local mapped = pairs_stream:mapWithState(spec)
    local outs = {}
    mapped:foreachRDD(function(rdd) outs[#outs + 1] = rdd:collect() end)
    ssc:start()

    local model, copy = {}, nil
    for b = 1, nbatches do
        local batch = batches[b]
        local records, expected = {}, {}
        for i = 1, size do
            local k, v = batch.ks[i], batch.vs[i]
            records[i] = {k, v}
            local mk = model_key(k)
            local what, new = step(v, model[mk])
            if what == "update" then
                model[mk] = new
            elseif what == "remove" then
                model[mk] = nil
            end
            expected[i] = show(model[mk])
        end
        queue[1] = records
        ssc:advance(1)
        local st = mapped.store
        if opts.track then
            if b == 1 then
                -- The store exists from the first batch on.
                st:track()
                copy = keystore.new("copy")
                copy:restore(st:checkpoint(true, b * 1000))
            else
                copy:restore(st:checkpoint(false, b * 1000))
            end
        end
        local out = outs[#outs]
        assert.are.equal(size, #out)
        for i = 1, size do
            if show(out[i][2]) ~= expected[i] then
                error(string.format("batch %d record %d (key %s): mapped %s, expected %s", b, i,
                    show(batch.ks[i]), show(out[i][2]), expected[i]))
            end
        end
        local want = model_contents(model)
        assert.are.same(want, store_contents(st))
        if copy then assert.are.same(want, store_contents(copy)) end
    end
    ssc:stop()
end

describe("mapWithState against a Lua table", function()
    it("holds what the table holds after every batch of a million random updates and removals", function()
        run_model(100, 10000, {seed = 42})
    end)

    it("gives a store rebuilt from its delta checkpoints the same contents, batch by batch", function()
        run_model(50, 10000, {seed = 7, track = true})
    end)
end)

-- The keyed store: keys and values in C memory, looked up, set, folded,
-- journaled and rolled back, selected and dumped.
local keystore = require "dstream.store"
local show = require("helpers.batches").show

local T = 1000

-- Sets k to v in st (inserting it if absent); returns its slot.
local function set(st, k, v)
    local slot, _, kind, bytes = st:lookup(k)
    return st:put(k, slot, kind, bytes, v, T)
end

local function value_of(st, k)
    local _, v = st:lookup(k)
    return v
end

-- Every (key, value) of st as a map from the key's text to its value.
local function contents(st)
    local ks, vs = {}, {}
    local m = st:dump(ks, vs, 0)
    local out = {}
    for i = 1, m do
        out[show(ks[i])] = vs[i]
    end
    return out
end

-- The cause of the failure fn raises.
local function failure_of(fn, ...)
    local ok, err = pcall(fn, ...)
    assert.is_false(ok)
    return tostring(err)
end

describe("a keyed store", function()
    it("keeps number, string, boolean and composite keys apart, and values of every kind", function()
        local st = keystore.new("test")
        set(st, 1, 10)
        set(st, "1", "ten")
        set(st, true, {a = 1})
        set(st, {"1"}, {1, 2, {x = "y"}})
        set(st, {1}, 0.5)
        assert.equal(5, st:count())
        assert.same({["1"] = 10, ['"1"'] = "ten", ["true"] = {a = 1},
            ['{1="1"}'] = {1, 2, {x = "y"}}, ["{1=1}"] = 0.5}, contents(st))
        assert.same({1, 2, {x = "y"}}, value_of(st, {"1"}))
        assert.equal(0.5, value_of(st, {1}))
        assert.is_true(st:memory() > 0)
    end)

    it("hands back copies: changing a value read changes nothing stored", function()
        local st = keystore.new("test")
        set(st, "k", {n = 1})
        value_of(st, "k").n = 2
        assert.same({n = 1}, value_of(st, "k"))
    end)

    it("keeps a key's slot while it lives, and removes it by slot", function()
        local st = keystore.new("test")
        local slot = set(st, "a", 1)
        set(st, "b", 2)
        assert.equal(slot, set(st, "a", 3))
        assert.equal(3, st:value(slot))
        assert.equal("a", st:key(slot))
        st:remove(slot)
        assert.equal(-1, (st:lookup("a")))
        assert.equal(1, st:count())
    end)

    it("raises, naming the operator, for a key or a value it cannot hold", function()
        local st = keystore.new("myop")
        assert.matches("myop: key is NaN (keys are strings, numbers, booleans or arrays of those)",
            failure_of(st.lookup, st, 0 / 0), 1, true)
        assert.matches("myop: key of type function is not allowed", failure_of(st.lookup, st, print), 1, true)
        assert.matches("myop: the state cannot be stored: value of a type the codec cannot hold (function)",
            failure_of(set, st, "k", print), 1, true)
        assert.equal(0, st:count())
    end)

    it("expires the keys idle for its timeout, oldest first, with their last values", function()
        local st = keystore.new("test", {timeout_ms = 100})
        local slot, _, kind, bytes = st:lookup("old")
        st:put("old", slot, kind, bytes, 1, 1000)
        slot, _, kind, bytes = st:lookup({"new"})
        st:put({"new"}, slot, kind, bytes, {2}, 1050)
        local got = {}
        local function note(k, v, arg)
            got[#got + 1] = {k, v, arg, st:count()}
        end
        st:expire(1100, note, "a")
        st:expire(1100, note, "b")
        assert.same({{"old", 1, "a", 1}}, got)
        st:expire(1150, note, "c")
        assert.same({{"old", 1, "a", 1}, {{"new"}, {2}, "c", 0}}, got)
    end)

    it("loads the pairs of an RDD", function()
        local ssc = require("dstream").StreamingContext{batchInterval = 1, clock = "manual"}
        local st = keystore.new("test")
        st:load(ssc:parallelizePairs{a = 1, b = {2}}, T)
        assert.same({['"a"'] = 1, ['"b"'] = {2}}, contents(st))
    end)
end)

describe("a keyed store's folds", function()
    it("sums, keeps the minimum or the maximum of number values per key", function()
        for _, c in ipairs({{"sum", 6}, {"min", -1}, {"max", 5}}) do
            local st = keystore.new("test")
            for _, v in ipairs({2, -1, 5}) do st:fold("k", v, keystore.FOLD[c[1]], false, T) end
            assert.equal(c[2], value_of(st, "k"))
        end
    end)

    it("leaves a key that is not there absent when asked to fold only into present keys", function()
        local st = keystore.new("test", {journal = true, keys = true})
        st:fold({"x", 1}, -3, keystore.FOLD.sum, true, T)
        assert.equal(0, st:count())
        st:fold({"x", 1}, 3, keystore.FOLD.sum, false, T)
        st:fold({"x", 1}, -3, keystore.FOLD.sum, true, T)
        assert.equal(0, value_of(st, {"x", 1}))
    end)
end)

describe("a keyed store's journal", function()
    local function journaled()
        local st = keystore.new("test", {journal = true, keys = true})
        set(st, "n", 1)
        set(st, "t", {1, "a"})
        st:commit()
        return st
    end

    it("rolls back sets, folds and inserts, newest first, to what the store held", function()
        local st = journaled()
        set(st, "n", 2)
        set(st, "n", {3})
        set(st, "t", 4)
        set(st, "new", 5)
        st:fold("n2", 1, keystore.FOLD.sum, false, T)
        st:fold("new", 1, keystore.FOLD.sum, false, T)
        st:rollback(T)
        assert.same({['"n"'] = 1, ['"t"'] = {1, "a"}}, contents(st))
        local m, ks = st:select(nil)
        table.sort(ks)
        assert.same({2, {"n", "t"}}, {m, ks})
    end)

    it("keeps what was committed", function()
        local st = journaled()
        set(st, "n", 2)
        set(st, "new", {5})
        st:commit()
        st:rollback(T)
        assert.same({['"n"'] = 2, ['"t"'] = {1, "a"}, ['"new"'] = {5}}, contents(st))
    end)

    it("undoes, when the next evaluation begins, the changes of one that raised", function()
        local st = journaled()
        local ok = pcall(function()
            set(st, "n", 10)
            set(st, "new", 1)
            error("boom")
        end)
        assert.is_false(ok)
        st:begin(T)
        assert.same({['"n"'] = 1, ['"t"'] = {1, "a"}}, contents(st))
    end)
end)

describe("a keyed store's select", function()
    it("finds string keys by its slot table as the C index does, through inserts, removals and rollbacks", function()
        local st = keystore.new("test", {keys = true, journal = true})
        local plain = keystore.new("plain")
        local seed = 5
        for round = 1, 3000 do
            seed = (seed * 1103515245 + 12345) % 2147483648
            local k = "k" .. (seed % 97)
            local r = seed % 5
            st:begin(T)
            if r == 0 then
                local slot = st:lookup(k)
                if slot >= 0 then
                    st:remove(slot)
                    plain:remove((plain:lookup(k)))
                end
                st:commit()
            elseif r == 1 then
                set(st, k, round) -- rolled back below
                set(st, "new" .. round, round)
                st:rollback(T)
            else
                set(st, k, round)
                set(plain, k, round)
                st:commit()
            end
            local slot, v = st:lookup(k)
            assert.are.equal(value_of(plain, k), v)
            if slot >= 0 then assert.are.equal(k, st:key(slot)) end
            assert.are.equal(-1, (st:lookup("new" .. round)))
        end
        assert.are.same(contents(plain), contents(st))
        assert.has_error(function() keystore.new("test", {keys = true, timeout_ms = 10}) end)
    end)

    it("splits the keys by a predicate, giving the Lua keys it was given and the slots of the rest", function()
        local st = keystore.new("test", {journal = true, keys = true})
        local composite = {"c", 1}
        set(st, composite, 0)
        set(st, "a", 1)
        local zero = set(st, "z", 0)
        local m, ks, vs, drop, nd = st:select(function(_, v) return v ~= 0 end)
        assert.same({1, {"a"}, {1}}, {m, ks, vs})
        assert.equal(2, nd)
        assert.is_true(drop[1] == zero or drop[2] == zero)
        m, ks = st:select(nil)
        assert.equal(3, m)
        local found = false
        for i = 1, m do found = found or rawequal(ks[i], composite) end
        assert.is_true(found)
    end)
end)

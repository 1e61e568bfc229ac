-- Checkpoints of a keyed store: a full snapshot, deltas of what changed
-- since the previous checkpoint, and a store rebuilt from them.
local keystore = require "dstream.store"
local show = require("helpers.batches").show

-- Sets k to v in st at batch time t (inserting it if absent).
local function set(st, k, v, t)
    local slot, _, kind, bytes = st:lookup(k)
    return st:put(k, slot, kind, bytes, v, t)
end

local function remove(st, k)
    local slot = st:lookup(k)
    if slot >= 0 then st:remove(slot) end
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

-- A store rebuilt from a chain of checkpoint strings.
local function rebuilt(chain, opts)
    local st = keystore.new("rebuilt", opts)
    for _, data in ipairs(chain) do st:restore(data) end
    return st
end

-- The keys expiring from st at each time of times, as "t:key" lines in order of time.
local function expiries(st, times)
    local out = {}
    for _, t in ipairs(times) do
        local got = {}
        st:expire(t, function(k, v) got[#got + 1] = show(k) .. "=" .. show(v) end)
        table.sort(got)
        for _, g in ipairs(got) do out[#out + 1] = t .. ":" .. g end
    end
    return out
end

-- A Park-Miller generator: the same draws on every run.
local function rng(seed)
    local x = seed
    return function(n)
        x = x * 16807 % 2147483647
        return x % n
    end
end

describe("a keyed store's checkpoints", function()
    it("restores a full checkpoint into an empty store: every kind of key and value", function()
        local st = keystore.new("counts")
        set(st, 1, 10, 1000)
        set(st, "1", "ten", 1000)
        set(st, true, {a = 1}, 1000)
        set(st, {"1", 2}, {1, 2, {x = "y"}}, 1000)
        set(st, 0.5, -1.25, 1000)
        local data = st:checkpoint(true, 1000)
        assert.is_string(data)
        local back = rebuilt({data})
        assert.equal(5, back:count())
        assert.same(contents(st), contents(back))
    end)

    it("writes a delta of only the keys set and removed since the previous checkpoint", function()
        local st = keystore.new("counts")
        st:track()
        for i = 1, 1000 do set(st, i, i, 1000) end
        local full = st:checkpoint(true, 1000)
        set(st, 7, 70, 2000)
        remove(st, 8)
        set(st, "new", {1}, 2000)
        local delta = st:checkpoint(false, 2000)
        assert.is_true(#delta < #full / 10, "a delta of 3 changes is small")
        local back = rebuilt({full, delta})
        assert.equal(1000, back:count())
        assert.same(contents(st), contents(back))
        -- Nothing changed since: an empty delta changes nothing.
        local empty = st:checkpoint(false, 3000)
        back:restore(empty)
        assert.same(contents(st), contents(back))
    end)

    it("brings back a key removed and put again, and forgets one put and removed between checkpoints", function()
        local st = keystore.new("counts")
        st:track()
        set(st, "a", 1, 1000)
        set(st, "b", 2, 1000)
        local chain = {st:checkpoint(true, 1000)}
        remove(st, "a")
        set(st, "c", 3, 2000) -- reuses a's slot
        set(st, "a", 4, 2000)
        set(st, "d", 5, 2000)
        remove(st, "d")
        chain[2] = st:checkpoint(false, 2000)
        assert.same({['"a"'] = 4, ['"b"'] = 2, ['"c"'] = 3}, contents(rebuilt(chain)))
    end)

    it("matches a plain table over many batches of random puts and removals, compacted now and then", function()
        local draw = rng(42)
        local ref = {}
        local st = keystore.new("counts")
        st:track()
        local chain = {st:checkpoint(true, 0)}
        for batch = 1, 300 do
            local t = batch * 1000
            for _ = 1, 40 do
                local id = draw(200)
                local k = id % 3 == 0 and ("k" .. id) or (id % 3 == 1 and id or {id, "x"})
                local r = draw(10)
                if r < 3 then
                    remove(st, k)
                    ref[show(k)] = nil
                else
                    local v = r < 7 and draw(1000) or {n = draw(1000)}
                    set(st, k, v, t)
                    ref[show(k)] = v
                end
            end
            if batch % 50 == 0 then
                chain = {st:checkpoint(true, t)}
            else
                chain[#chain + 1] = st:checkpoint(false, t)
            end
            if batch % 25 == 0 or batch == 299 then
                assert.same(ref, contents(rebuilt(chain)), "after batch " .. batch)
            end
        end
        assert.same(ref, contents(st))
    end)

    it("restores each key's last-update time: keys expire in the batch they would have", function()
        local draw = rng(7)
        local st = keystore.new("sessions", {timeout_ms = 5000})
        st:track()
        local chain = {st:checkpoint(true, 0)}
        for batch = 1, 40 do
            local t = batch * 1000
            for _ = 1, 20 do
                local id = draw(60)
                set(st, id % 2 == 0 and id or ("s" .. id), batch, t)
            end
            st:expire(t, function() end)
            chain[#chain + 1] = st:checkpoint(false, t)
            if batch == 20 then chain = {st:checkpoint(true, t)} end
        end
        local back = rebuilt(chain, {timeout_ms = 5000})
        assert.same(contents(st), contents(back))
        local times = {}
        for t = 41000, 47000, 1000 do times[#times + 1] = t end
        local want = expiries(st, times)
        assert.is_true(#want > 0)
        assert.same(want, expiries(back, times))
        assert.equal(0, back:count())
    end)

    it("records keys removed by expiry in the delta", function()
        local st = keystore.new("sessions", {timeout_ms = 2000})
        st:track()
        set(st, "old", 1, 1000)
        set(st, "young", 2, 3000)
        local chain = {st:checkpoint(true, 3000)}
        st:expire(3000, function() end)
        chain[2] = st:checkpoint(false, 3000)
        assert.same({['"young"'] = 2}, contents(rebuilt(chain, {timeout_ms = 2000})))
    end)

    it("rebuilds the key tables of a store that keeps keys by slot", function()
        local st = keystore.new("window", {keys = true})
        st:track()
        set(st, "a", 1, 1000)
        set(st, 2, 2, 1000)
        set(st, {"c"}, 3, 1000)
        local chain = {st:checkpoint(true, 1000)}
        st:remove((st:lookup("a")))
        set(st, "d", 4, 2000)
        chain[2] = st:checkpoint(false, 2000)
        local back = rebuilt(chain, {keys = true})
        local m, ks, vs = back:select()
        local got = {}
        for i = 1, m do got[show(ks[i])] = vs[i] end
        assert.same({["2"] = 2, ['{1="c"}'] = 3, ['"d"'] = 4}, got)
        assert.equal(-1, (back:lookup("a")))
        local slot, v = back:lookup("d")
        assert.equal(4, v)
        assert.equal("d", back:key(slot))
    end)

    it("keeps the record when asked only for full checkpoints, and needs track() for a delta", function()
        local st = keystore.new("counts")
        set(st, 1, 1, 1000)
        local err = select(2, pcall(st.checkpoint, st, false, 1000))
        assert.matches("counts: a delta checkpoint of a state store that does not track its changes", err)
        st:track()
        st:track()
        assert.same({["1"] = 1}, contents(rebuilt({st:checkpoint(true, 1000)})))
    end)

    it("refuses a snapshot onto a store that holds keys, and says so", function()
        local st = keystore.new("counts")
        set(st, 1, 1, 1000)
        local data = st:checkpoint(true, 1000)
        local err = select(2, pcall(st.restore, st, data))
        assert.matches("counts: cannot restore the state from its checkpoint %(%d+ bytes%): "
            .. "state snapshot: the store to restore into holds 1 keys %(ESTATE%)", err)
    end)

    it("refuses a damaged delta, saying where, and changes nothing", function()
        local st = keystore.new("counts")
        st:track()
        for i = 1, 100 do set(st, i, i, 1000) end
        local full = st:checkpoint(true, 1000)
        for i = 1, 50 do remove(st, i) end
        set(st, 500, 5, 2000)
        local delta = st:checkpoint(false, 2000)
        local back = keystore.new("counts")
        back:restore(full)
        local before = contents(back)
        for _, bad in ipairs({delta:sub(1, #delta - 1), delta:sub(1, #delta - 4) .. "\255" .. delta:sub(#delta - 2),
            delta .. "x"}) do
            local err = select(2, pcall(back.restore, back, bad))
            assert.matches("counts: cannot restore the state from its checkpoint %(%d+ bytes%): state delta", err)
            assert.matches("offset %d+", err)
            assert.same(before, contents(back))
        end
        back:restore(delta)
        assert.same(contents(st), contents(back))
    end)

    it("refuses what is not a checkpoint", function()
        local st = keystore.new("counts")
        local err = select(2, pcall(st.restore, st, "not a checkpoint"))
        assert.matches("counts: cannot restore the state from its checkpoint %(16 bytes%): .*offset 0", err)
        assert.matches("restore wants a checkpoint string, got nil", select(2, pcall(st.restore, st)))
    end)
end)

-- Checkpoints of a window buffer: the batches that entered since the
-- previous checkpoint, pushed again onto the buffer the earlier ones rebuilt.
local core = require "dstream.core"

-- What a buffer holds, as "time=bytes" from oldest to newest (every time up to newest).
local function held(buf, newest, len_ms, step)
    local out = {}
    for t = newest - len_ms + step, newest, step do
        local b = buf:get(t)
        if b then out[#out + 1] = t .. "=" .. b end
    end
    return table.concat(out, " ")
end

describe("a window buffer's checkpoints", function()
    it("rebuilds the buffer from a full checkpoint and the batches entered since", function()
        local buf = assert(core.window_new(1000, 3000))
        assert(buf:push(1000, "a"))
        assert(buf:push(2000, "bb"))
        local full = buf:checkpoint()
        assert(buf:push(3000, ""))
        assert(buf:push(4000, "dddd")) -- the batch at 1000 leaves the window
        local delta = buf:checkpoint(2000)
        assert.is_true(#delta < #full + 40)
        local back = assert(core.window_new(1000, 3000))
        assert.is_true(back:restore(full))
        assert.equal("1000=a 2000=bb", held(back, 2000, 3000, 1000))
        assert.is_true(back:restore(delta))
        assert.equal(held(buf, 4000, 3000, 1000), held(back, 4000, 3000, 1000))
        assert.equal("2000=bb 3000= 4000=dddd", held(back, 4000, 3000, 1000))
        assert.equal(buf:count(), back:count())
        assert.equal(buf:bytes(), back:bytes())
        -- the rebuilt buffer goes on as the other would
        assert.is_true(back:push(5000, "e"))
        assert.is_nil(back:get(2000))
    end)

    it("matches the buffer written over many pushes, skipped times, evictions and compactions", function()
        local x = 99
        local function draw(n)
            x = x * 16807 % 2147483647
            return x % n
        end
        local buf = assert(core.window_new(500, 2500))
        local back = assert(core.window_new(500, 2500))
        local t, since = 0, nil
        for i = 1, 400 do
            t = t + 500 * (draw(5) == 0 and 1 + draw(6) or 1)
            assert(buf:push(t, draw(4) == 0 and "" or ("batch " .. i)))
            if draw(8) == 0 then buf:evict(t + 500 * draw(5)) end
            if draw(2) == 0 then
                if draw(12) == 0 then
                    back:close()
                    back = assert(core.window_new(500, 2500))
                    since = nil
                end
                assert.is_true(back:restore(buf:checkpoint(since)))
                since = t
                assert.equal(held(buf, t, 2500, 500), held(back, t, 2500, 500))
                assert.equal(buf:count(), back:count())
            end
        end
    end)

    it("refuses a checkpoint of another window, a damaged one, or one whose predecessors are missing", function()
        local buf = assert(core.window_new(1000, 3000))
        assert(buf:push(1000, "a"))
        assert(buf:push(2000, "b"))
        local full = buf:checkpoint()
        assert(buf:push(3000, "c"))
        local delta = buf:checkpoint(2000)

        local other = assert(core.window_new(1000, 4000))
        local ok, err, code = other:restore(full)
        assert.is_nil(ok)
        assert.equal("EINVAL", code)
        assert.matches("written by a buffer of a 3000 ms window every 1000 ms, restored into one of 4000", err)

        local back = assert(core.window_new(1000, 3000))
        ok, err = back:restore(delta)
        assert.is_nil(ok)
        assert.matches("the checkpoints before it were not restored", err)
        assert.equal(0, back:count())

        assert.is_true(back:restore(full))
        ok, err, code = back:restore(delta:sub(1, -2))
        assert.is_nil(ok)
        assert.equal("ETRUNCATED", code)
        assert.matches("window checkpoint: frame at offset %d+", err)
        assert.equal(2, back:count())
        assert.is_true(back:restore(delta))
        assert.equal("c", back:get(3000))
        assert.has_error(function() back:restore() end)
    end)
end)

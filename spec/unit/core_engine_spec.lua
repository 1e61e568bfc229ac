-- The engine's glue (lua/src/engine.c): what it accepts as milliseconds.
local core = require "dstream.core"

describe("core.engine_new", function()
    it("refuses a batch interval that is NaN or out of an int64's exact range, naming the argument", function()
        for _, batch in ipairs({0 / 0, math.huge, -math.huge, 1e300}) do
            local ok, err = pcall(core.engine_new, {batch = batch, manual = true})
            assert.is_false(ok, tostring(batch))
            assert.matches("must be a number of milliseconds within +-2^53", err, 1, true)
        end
    end)

    it("makes an engine for a whole number of milliseconds, closed once however often close() is called", function()
        local engine = assert(core.engine_new{batch = 1000, manual = true})
        assert.are.equal("dstream.engine (open)", tostring(engine))
        assert.is_true(engine:close())
        assert.is_true(engine:close())
        assert.are.equal("dstream.engine (closed)", tostring(engine))
    end)
end)

describe("engine:run", function()
    it("refuses a timeout that is NaN", function()
        local engine = assert(core.engine_new{batch = 1000, manual = true})
        local ok, err = pcall(engine.run, engine, 0 / 0)
        assert.is_false(ok)
        assert.matches("bad argument #2", err, 1, true)
        engine:close()
    end)
end)

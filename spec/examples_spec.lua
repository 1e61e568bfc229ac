-- Every example runs for real, briefly, and prints what a user expects.
local function run(cmd)
    local p = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
    local out = p:read("*a")
    p:close()
    return out, tonumber(out:match("exit=(%d+)%s*$"))
end

describe("examples/wordcount.lua", function()
    it("counts words arriving over a socket from the bundled generator and stops by itself", function()
        local out, code = run("bin/dstream run examples/wordcount.lua 2")
        assert.are.equal(0, code, out)
        assert.matches("%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-\nTime: %d+ ms\n", out)
        -- the generator's most common word tops at least one batch's counts
        assert.matches("%(the,%d+%)", out)
    end)
end)

describe("dstream explain", function()
    it("prints the word count's stages without running it", function()
        local out, code = run("bin/dstream explain examples/wordcount.lua 1")
        assert.are.equal(0, code, out)
        assert.matches("stage: #1 flatMap %-> #2 mapToPair %-> #3 reduceByKey %(map%-side combine%)", out)
        assert.not_matches("Time: ", out)
    end)
end)

describe("dstream run", function()
    it("exits non-zero with the error when the script fails", function()
        local script = os.tmpname()
        local f = assert(io.open(script, "w"))
        f:write('local dstream = require "dstream"\n',
            'local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}\n',
            'ssc:queueStream({{1}}):map(function(x) error("bad record " .. x) end):print()\n',
            'ssc:start()\nssc:advance(1)\n')
        f:close()
        local out, code = run("bin/dstream run " .. script)
        os.remove(script)
        assert.are.equal(1, code)
        assert.matches("map", out)
        assert.matches("bad record 1", out)
        assert.matches("1000 ms", out)
    end)
end)

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

local function tmpdir()
    local p = io.popen("mktemp -d")
    local dir = p:read("*l")
    p:close()
    return dir
end

local function write(path, text)
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
end

local function read(path)
    local f = io.open(path)
    if not f then return nil end
    local text = f:read("*a")
    f:close()
    return text
end

describe("examples/file_etl.lua", function()
    it("writes the revenue per product of the files in the directory, one directory per batch", function()
        local dir = tmpdir()
        os.execute("mkdir -p " .. dir .. "/in")
        write(dir .. "/in/orders.csv", "1,apple,3,0.5\n2,pear,1,2\nnot,an,order\n3,apple,1,0.5\n")
        write(dir .. "/in/notes.txt", "ignored: not a .csv\n")
        local out, code = run(string.format("bin/dstream run examples/file_etl.lua %s/in %s/out/revenue 1.5 --existing", dir, dir))
        assert.are.equal(0, code, out)
        assert.matches("1 malformed line", out)
        local p = io.popen("ls " .. dir .. "/out")
        local written = {}
        for name in p:lines() do written[#written + 1] = name end
        p:close()
        local found
        for _, name in ipairs(written) do
            local part = read(dir .. "/out/" .. name .. "/part-00000")
            assert.is_not_nil(read(dir .. "/out/" .. name .. "/_SUCCESS"))
            if part and part ~= "" then found = part end
        end
        os.execute("rm -rf " .. dir)
        assert.are.equal("(apple,2)\n(pear,2)\n", found)
    end)
end)

describe("examples/static_join.lua", function()
    it("joins the order stream with the catalogue and sums quantities per category", function()
        local out, code = run("bin/dstream run examples/static_join.lua 1")
        assert.are.equal(0, code, out)
        assert.matches("%(fruit,3859%)", out)
        assert.matches("%(unknown,1282%)", out)
        assert.matches("%(vegetable,2575%)", out)
    end)
end)

describe("examples/tail_receiver.lua", function()
    it("counts the log levels of a file's lines through a custom receiver", function()
        local log = os.tmpname()
        write(log, "2026-11-24 INFO started\n2026-11-24 WARN slow\n2026-11-24 INFO done\n")
        local out, code = run("bin/dstream run examples/tail_receiver.lua " .. log .. " 1.5 --from-start")
        os.remove(log)
        assert.are.equal(0, code, out)
        assert.matches("%(INFO,2%)\n%(WARN,1%)", out)
    end)
end)

-- The REPL a person gets from `luajit -i -l dstream`, driven under tmux:
-- lines typed into a real terminal, the pane read back as they would see it.

local tmux = require("spec.helpers.tmux")

local function absolute(dir)
    local p = assert(io.popen("cd '" .. dir .. "' && pwd"))
    local path = p:read("*l")
    p:close()
    return path
end

local ROOT = absolute(debug.getinfo(1, "S").source:sub(2):match("^(.*)/spec/integration/") or ".")
local RULE = string.rep("-", 43)

local function lines_of(s)
    local lines = {}
    for line in (s .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
    return lines
end

-- One print() batch: its time and its records, sorted (shuffled outputs come
-- in no defined order). Fails unless output is exactly one batch in Spark's format.
local function printed_batch(output)
    local lines = lines_of(output)
    assert.are.equal(RULE, lines[1], output)
    local time = lines[2]:match("^Time: (%d+) ms$")
    assert.is_not_nil(time, output)
    assert.are.equal(RULE, lines[3], output)
    assert.are.equal("", lines[#lines], output)
    local records = {}
    for i = 4, #lines - 1 do records[#records + 1] = lines[i] end
    table.sort(records)
    return tonumber(time), records
end

describe("luajit -i -l dstream", function()
    if not tmux.available() then
        pending("tmux is not installed")
        return
    end

    local session

    -- Types line, waits for the next prompt and returns what the line printed.
    local function type_line(line)
        session:send(line)
        local text = session:wait_for("\n>$")
        local lines = lines_of(text)
        assert.are.equal("> " .. line, lines[1], text)
        return table.concat(lines, "\n", 2, #lines - 1)
    end

    before_each(function()
        session = tmux.start("luajit -i -l dstream", {
            LUA_PATH = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;",
            LUA_CPATH = ROOT .. "/build/?.so;;",
        })
        session:wait_for("\n>$")
    end)

    after_each(function()
        session:kill()
    end)

    it("has the global dstream ready at the first prompt", function()
        assert.are.equal("0.1", type_line("print(dstream.ms(100))"))
        assert.are.equal("dstream.StreamingContext", type_line("print(dstream.StreamingContext)"))
    end)

    it("shows a word count batch by batch, each as soon as ssc:advance(1) runs it", function()
        assert.are.equal("", type_line('ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}'))
        assert.are.equal("", type_line('queue = {{"to be or", "not to be"}, {"that is"}}'))
        assert.are.equal("", type_line("words = ssc:queueStream(queue):flatMap(function(line) "
            .. 'local w = {} for x in line:gmatch("%S+") do w[#w + 1] = x end return w end)'))
        assert.are.equal("", type_line("counts = words:mapToPair(function(w) return w, 1 end)"
            .. ":reduceByKey(function(a, b) return a + b end)"))
        assert.are.equal("", type_line("counts:print()"))
        assert.are.equal("StreamingContext(dstream: batch 1 s, manual clock, 4 streams, 1 output, initialized)",
            type_line("=ssc"))
        assert.are.equal("reduceByKey <- mapToPair <- flatMap <- queueStream", type_line("print(counts)"))
        assert.are.equal("", type_line("ssc:start()"))

        local time, records = printed_batch(type_line("ssc:advance(1)"))
        assert.are.equal(1000, time)
        assert.are.same({"(be,2)", "(not,1)", "(or,1)", "(to,2)"}, records)
        time, records = printed_batch(type_line("ssc:advance(1)"))
        assert.are.equal(2000, time)
        assert.are.same({"(is,1)", "(that,1)"}, records)
        time, records = printed_batch(type_line("ssc:advance(1)"))
        assert.are.equal(3000, time)
        assert.are.same({}, records)
        assert.are.equal("", type_line("ssc:stop()"))
    end)

    it("shows the error of a user function that raises, naming the operator and batch, and carries on", function()
        type_line('ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}')
        type_line('shouts = ssc:queueStream({{"hello"}, {"boom"}}):map(function(w) '
            .. 'if w == "boom" then error("cannot shout " .. w) end return w:upper() end)')
        type_line("shouts:print()")
        type_line("ssc:start()")
        local time, records = printed_batch(type_line("ssc:advance(1)"))
        assert.are.equal(1000, time)
        assert.are.same({"HELLO"}, records)

        local failure = type_line("ssc:advance(1)")
        assert.truthy(failure:find("map (stream \"", 1, true), failure)
        assert.truthy(failure:find("failed at batch time 2000 ms", 1, true), failure)
        assert.truthy(failure:find("stdin:1: cannot shout boom", 1, true), failure)
        assert.truthy(failure:find("stack traceback:", 1, true), failure)
        assert.are.equal("2", type_line("print(1 + 1)"))
    end)

    it("shows the error of a function that raises a table or nil, naming the operator and batch", function()
        type_line('ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}')
        type_line('ssc:queueStream({{1}, {2}}):map(function(x) if x == 1 then error({code = 42}) end '
            .. 'error(nil) end):name("codes"):print()')
        type_line("ssc:start()")
        local failure = type_line("ssc:advance(1)")
        assert.truthy(failure:find('map (stream "codes")', 1, true), failure)
        assert.truthy(failure:find("failed at batch time 1000 ms: an error table {code=42}", 1, true), failure)
        failure = type_line("ssc:advance(1)")
        assert.truthy(failure:find("failed at batch time 2000 ms: error(nil)", 1, true), failure)
        assert.are.equal("2", type_line("print(1 + 1)"))
    end)

    it("shows the error of a call the context refuses, and carries on", function()
        type_line('ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}')
        type_line("ssc:queueStream({{1}}):print()")
        type_line("ssc:start()")
        type_line("ssc:stop()")
        local failure = type_line("ssc:advance(1)")
        assert.are.equal("stdin:1: advance: the context is stopped; call start() first",
            lines_of(failure)[1], failure)
        assert.are.equal("2", type_line("print(1 + 1)"))
        assert.are.equal("StreamingContext(dstream: batch 1 s, manual clock, 1 stream, 1 output, stopped)",
            type_line("print(ssc)"))
    end)
end)

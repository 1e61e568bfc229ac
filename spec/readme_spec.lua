-- The README's Lua snippets run as they are, and the tour prints what the
-- README says it prints: run as a script, and from the REPL the README
-- describes (`luajit -i -l dstream` in a real terminal, under tmux), both by
-- dofile and typed line by line as its REPL transcript shows.
local tmux = require("spec.helpers.tmux")
local function blocks(path)
    local f = assert(io.open(path))
    local text = f:read("*a")
    f:close()
    local out = {}
    for lang, body in text:gmatch("\n```(%w*)\n(.-)\n```") do
        out[#out + 1] = {lang = lang, body = body}
    end
    return out
end

local function run_capturing(code)
    local tmp = os.tmpname()
    local f = assert(io.open(tmp, "w"))
    io.output(f)
    local ok, err = pcall(assert(loadstring(code, "=README")))
    io.output(io.stdout)
    f:close()
    f = assert(io.open(tmp))
    local printed = f:read("*a")
    f:close()
    os.remove(tmp)
    return ok, err, printed
end

describe("README", function()
    local all = blocks("README.md")

    it("prints exactly what the tour says it prints", function()
        for i, b in ipairs(all) do
            if b.lang == "lua" and b.body:find("ssc:advance(2)", 1, true) and b.body:find("counts:print()", 1, true) then
                local ok, err, printed = run_capturing(b.body)
                assert(ok, err)
                assert.are.equal(all[i + 1].body .. "\n", printed)
                return
            end
        end
        error("the tour's snippet is missing")
    end)

    it("runs every manual-clock snippet without error", function()
        local ran = 0
        for _, b in ipairs(all) do
            if b.lang == "lua" and b.body:find('clock = "manual"', 1, true) and b.body:find("require", 1, true) then
                local ok, err = run_capturing(b.body)
                assert(ok, err)
                ran = ran + 1
            end
        end
        assert.is_true(ran >= 2)
    end)

    describe("in the REPL", function()
        if not tmux.available() then
            pending("tmux is not installed")
            return
        end

        local p = assert(io.popen("pwd"))
        local root = p:read("*l")
        p:close()
        local session

        local function lines_of(text)
            local lines = {}
            for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
            return lines
        end

        -- Types line at the prompt; returns what it printed before the next prompt.
        local function type_line(line)
            session:send(line)
            local lines = lines_of(session:wait_for("\n>$", 20))
            assert.are.equal("> " .. line, lines[1])
            return table.concat(lines, "\n", 2, #lines - 1)
        end

        before_each(function()
            session = tmux.start("luajit -i -l dstream", {
                LUA_PATH = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;",
                LUA_CPATH = root .. "/build/?.so;;",
            })
            session:wait_for("\n>$", 20)
        end)

        after_each(function()
            session:kill()
        end)

        it("runs the tour with dofile and prints what the README says", function()
            for i, b in ipairs(all) do
                if b.lang == "lua" and b.body:find("counts:print()", 1, true) then
                    local path = os.tmpname()
                    local f = assert(io.open(path, "w"))
                    f:write(b.body, "\n")
                    f:close()
                    local printed = type_line('dofile("' .. path .. '")')
                    os.remove(path)
                    assert.are.equal(all[i + 1].body, printed)
                    return
                end
            end
            error("the tour's snippet is missing")
        end)

        it("prints what its REPL transcript shows, typed line by line", function()
            local transcript
            for _, b in ipairs(all) do
                if b.lang == "" and b.body:find("^> ") then transcript = b.body end
            end
            assert.is_not_nil(transcript, "the README has no REPL transcript (a block of lines starting with > )")
            local steps = {}
            for _, line in ipairs(lines_of(transcript)) do
                local typed = line:match("^> (.*)$")
                if typed then
                    steps[#steps + 1] = {line = typed, out = {}}
                else
                    local out = steps[#steps].out
                    out[#out + 1] = line
                end
            end
            assert.is_true(#steps >= 5)
            for _, step in ipairs(steps) do
                assert.are.equal(table.concat(step.out, "\n"), type_line(step.line), step.line)
            end
        end)

        it("loses a local between two lines, as the README warns", function()
            type_line("local ssc = 1")
            assert.are.equal("nil", type_line("print(ssc)"))
        end)
    end)
end)

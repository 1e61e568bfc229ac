-- The README's Lua snippets run as they are, and the tour prints what the
-- README says it prints.
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
end)

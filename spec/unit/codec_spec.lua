-- The record codec as Lua sees it: dstream.core's encode/decode of frames
-- and encode_value/decode_value of single values.
local core = require("dstream.core")
local ffi = require("ffi")

local function round_trip(records, n)
    local s = assert(core.encode(records, n or #records))
    local a, m, b, nextpos = core.decode(s)
    assert.are.equal(#s + 1, nextpos)
    assert.is_false(b)
    return a, m
end

-- Flip one byte of s (1-based position) with xor mask.
local function flip(s, pos, mask)
    local byte = bit.bxor(s:byte(pos), mask)
    return s:sub(1, pos - 1) .. string.char(byte) .. s:sub(pos + 1)
end

describe("dstream.core codec", function()
    describe("core.encode and core.decode", function()
        it("round-trips strings, numbers and booleans", function()
            local records = {"a", "", 0, -1, 42, 1.5, -2.25, 1e300, true, false}
            local a, n = round_trip(records)
            assert.are.equal(#records, n)
            assert.are.same(records, a)
        end)

        it("round-trips nested arrays and maps", function()
            local records = {
                {1, 2, {3, {4, {}}}},
                {name = "ada", tags = {"x", "y"}, score = 9.5, ok = true},
                {[1] = "one", [3] = "three"},
                {[true] = "t", [false] = "f", [2.5] = "half", ["1"] = "string one"},
                {list = {{a = 1}, {b = {c = {d = "deep"}}}}},
            }
            local a = round_trip(records)
            assert.are.same(records, a)
        end)

        it("keeps byte strings with NULs and high bytes intact", function()
            local bytes = {}
            for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
            local all = table.concat(bytes)
            local records = {"a\0b", "\0", all, {["k\0ey"] = "v\0al"}}
            local a = round_trip(records)
            assert.are.equal("a\0b", a[1])
            assert.are.equal("\0", a[2])
            assert.are.equal(all, a[3])
            assert.are.equal("v\0al", a[4]["k\0ey"])
        end)

        it("treats an empty table as an empty array", function()
            local a = round_trip({{}, {{}}})
            assert.are.same({{}, {{}}}, a)
            assert.are.equal(core.encode_value({}), core.encode_value(a[1]))
        end)

        it("keeps integers exact and the odd doubles as they are", function()
            local records = {2 ^ 53, -2 ^ 53, 2 ^ 53 + 2, 2 ^ 63, -2 ^ 63, 2 ^ 64,
                             0.1, 1 / 0, -1 / 0, 5e-324}
            local a = round_trip(records)
            for i = 1, #records do assert.are.equal(records[i], a[i]) end
            local z, n = round_trip({-1 / math.huge, 0 / 0})
            assert.are.equal(-1 / 0, 1 / z[1])
            assert.is_true(z[2] ~= z[2])
            assert.are.equal(2, n)
        end)

        it("encodes integral numbers as integers and the rest as doubles", function()
            assert.are.equal("\3\6", core.encode_value(3))
            assert.are.equal("\3\6", core.encode_value(3.0))
            assert.are.equal(2, #core.encode_value(-1))
            assert.are.equal(9, #core.encode_value(0.5))
            assert.are.equal(9, #core.encode_value(-0.0))
            assert.are.equal(9, #core.encode_value(2 ^ 63))
            assert.are.equal(11, #core.encode_value(-2 ^ 63))
        end)

        it("encodes only the first n records", function()
            local a, n = round_trip({"x", "y", "z"}, 2)
            assert.are.equal(2, n)
            assert.are.same({"x", "y"}, a)
            a, n = round_trip({"x"}, 0)
            assert.are.equal(0, n)
            assert.are.same({}, a)
        end)

        it("writes pair records as keys and values", function()
            local s = assert(core.encode({"a", "b", "a"}, 3, {1, {2}, false}))
            local keys, n, values, nextpos = core.decode(s)
            assert.are.equal(3, n)
            assert.are.same({"a", "b", "a"}, keys)
            assert.are.same({1, {2}, false}, values)
            assert.are.equal(#s + 1, nextpos)
        end)

        it("gives an empty values array for a pairs frame of no records", function()
            local keys, n, values = core.decode(core.encode({}, 0, {}))
            assert.are.equal(0, n)
            assert.are.same({}, keys)
            assert.are.same({}, values)
        end)

        it("reads frames written one after another", function()
            local file = core.encode({"first"}, 1) .. core.encode({1, 2}, 2, {"x", "y"})
                .. core.encode({{z = true}}, 1)
            local got, pos = {}, 1
            while pos <= #file do
                local a, n, b, nextpos = core.decode(file, pos)
                assert.is_truthy(a)
                got[#got + 1] = {a = a, n = n, b = b}
                pos = nextpos
            end
            assert.are.equal(#file + 1, pos)
            assert.are.same({
                {a = {"first"}, n = 1, b = false},
                {a = {1, 2}, n = 2, b = {"x", "y"}},
                {a = {{z = true}}, n = 1, b = false},
            }, got)
        end)

        it("encodes equal maps to equal bytes whatever the insertion order", function()
            local one, two = {}, {}
            for i = 1, 50 do one["k" .. i] = i end
            for i = 50, 1, -1 do two["k" .. i] = i end
            for i = 51, 80 do two["k" .. i] = i end
            for i = 51, 80 do two["k" .. i] = nil end
            one[true], two[true] = "t", "t"
            one[7.5], two[7.5] = {x = 1, y = 2}, {y = 2, x = 1}
            assert.are.equal(core.encode({one}, 1), core.encode({two}, 1))
        end)

        it("encodes a 100k-record batch of short strings in one frame", function()
            local records = {}
            for i = 1, 100000 do records[i] = "word" .. (i % 1000) end
            local s = assert(core.encode(records, #records))
            local a, n = core.decode(s)
            assert.are.equal(100000, n)
            assert.are.equal("word999", a[999])
            assert.are.equal("word0", a[100000])
        end)
    end)

    describe("core.encode failures", function()
        local function expect(err, name, ...)
            local s, msg, code = core.encode(...)
            assert.is_nil(s)
            assert.are.equal(name, code)
            assert.are.equal(err, msg)
        end
        local prefix = "ETYPE: value of a type the codec cannot hold "

        it("names the type and the record it cannot hold", function()
            expect(prefix .. "(function in record 3)", "ETYPE", {1, 2, print}, 3)
            expect(prefix .. "(userdata in record 1)", "ETYPE", {io.stdout}, 1)
            expect(prefix .. "(thread in record 2)", "ETYPE",
                   {1, coroutine.create(print)}, 2)
            expect(prefix .. "(cdata in record 1)", "ETYPE", {ffi.new("int", 1)}, 1)
        end)

        it("refuses a nil among the first n records", function()
            expect(prefix .. "(nil in record 2)", "ETYPE", {1, nil, 3}, 3)
            expect(prefix .. "(nil in record 4)", "ETYPE", {1, 2, 3}, 4)
        end)

        it("finds what it cannot hold deep inside a record", function()
            expect(prefix .. "(function in record 2)", "ETYPE",
                   {"ok", {a = {b = {print}}}}, 2)
        end)

        it("refuses tables as map keys", function()
            expect(prefix .. "(table as a map key in record 1)", "ETYPE",
                   {{[{}] = 1}}, 1)
        end)

        it("says whether the key or the value of a pair is at fault", function()
            expect(prefix .. "(function in the key of record 2)", "ETYPE",
                   {"a", print}, 2, {1, 2})
            expect(prefix .. "(nil in the value of record 2)", "ETYPE",
                   {"a", "b"}, 2, {1})
            expect(prefix .. "(table as a map key in the value of record 1)", "ETYPE",
                   {"a"}, 1, {{[{}] = true}})
        end)

        it("refuses nesting deeper than 64 tables, and cycles", function()
            local deep = {}
            for _ = 2, 64 do deep = {deep} end
            assert.is_string(core.encode({deep}, 1))
            local depth_msg = "EDEPTH: value nested too deeply (more than 64 nested "
                .. "tables, or a cycle, in record 1)"
            expect(depth_msg, "EDEPTH", {{deep}}, 1)
            local cycle = {}
            cycle.self = cycle
            expect(depth_msg, "EDEPTH", {cycle}, 1)
        end)

        it("works normally after a failure", function()
            assert.is_nil(core.encode({print}, 1))
            assert.are.same({"fine"}, (core.decode(core.encode({"fine"}, 1))))
        end)

        it("raises on misuse", function()
            assert.has_error(function() core.encode("x", 1) end)
            assert.has_error(function() core.encode({}, -1) end)
            assert.has_error(function() core.encode({}, 1.5) end)
            assert.has_error(function() core.encode({}) end)
            assert.has_error(function() core.encode({}, 0, "b") end)
        end)
    end)

    describe("core.decode failures", function()
        local two = core.encode({"a"}, 1) .. core.encode({"hello", 7}, 2)
        local second = #core.encode({"a"}, 1) + 1

        it("reports a checksum mismatch with the frame's position", function()
            local bad = flip(two, second + 18, 0x01)
            local a, msg, code = core.decode(bad, second)
            assert.is_nil(a)
            assert.are.equal("ECHECKSUM", code)
            assert.matches("^ECHECKSUM: checksum mismatch %(stored CRC%-32C 0x%x+, "
                           .. "computed 0x%x+; frame at byte " .. second .. "%)$", msg)
            assert.is_truthy(core.decode(bad, 1))
        end)

        it("reports a frame cut short", function()
            local a, msg, code = core.decode(two:sub(1, -2), second)
            assert.is_nil(a)
            assert.are.equal("ETRUNCATED", code)
            assert.are.equal("ETRUNCATED: data ends before its frame does (the frame "
                .. "takes 25 bytes, the data has 24; frame at byte " .. second .. ")", msg)
        end)

        it("reports reading past the last frame as truncated", function()
            local _, msg, code = core.decode(two, #two + 1)
            assert.are.equal("ETRUNCATED", code)
            assert.matches("the data has 0; frame at byte " .. (#two + 1), msg, 1, true)
            assert.are.equal("ETRUNCATED", select(3, core.decode(two, #two + 50)))
        end)

        it("reports bytes that are not a frame", function()
            local a, msg, code = core.decode("hello world, not a frame")
            assert.is_nil(a)
            assert.are.equal("ECORRUPT", code)
            assert.matches("^ECORRUPT: malformed data %(no frame magic", msg)
            assert.matches("frame at byte 1)", msg, 1, true)
        end)

        it("reports a version it does not know", function()
            local a, msg, code = core.decode(flip(two, 3, 0x03))
            assert.is_nil(a)
            assert.are.equal("EVERSION", code)
            assert.are.equal("EVERSION: unsupported format version (frame version 2 "
                .. "at offset 2, this reader knows version 1; frame at byte 1)", msg)
        end)

        it("never mistakes a flipped bit for a frame", function()
            local s = core.encode({{k = "v", n = {1, 2, 3}}, "x"}, 2)
            for pos = 1, #s do
                for b = 0, 7 do
                    local a, _, code = core.decode(flip(s, pos, bit.lshift(1, b)))
                    assert.is_nil(a)
                    assert.is_string(code)
                end
            end
        end)

        it("answers random bytes with a value or an error, never a crash", function()
            local seed = 12345
            local function byte()
                seed = (seed * 1103515245 + 12345) % 2147483648
                local r = math.floor(seed / 65536) % 256
                return r % 3 == 0 and r % 9 or r
            end
            for _ = 1, 3000 do
                local chars = {}
                for i = 1, byte() % 16 do chars[i] = string.char(byte()) end
                local s = table.concat(chars)
                local v, _, code = core.decode_value(s)
                assert.is_true(v ~= nil or type(code) == "string")
                local a, _, fcode = core.decode("DS\1\0" .. s)
                assert.is_true(a == nil and type(fcode) == "string")
            end
        end)

        it("raises on misuse", function()
            assert.has_error(function() core.decode({}) end)
            assert.has_error(function() core.decode(two, 0) end)
            assert.has_error(function() core.decode(two, 1.5) end)
        end)
    end)

    describe("core.encode_value and core.decode_value", function()
        it("round-trips one value without a frame", function()
            for _, v in ipairs({true, false, 0, -7, 0.25, "s\0s", {}, {1, "two"},
                                {a = {b = {c = false}}}}) do
                assert.are.same(v, core.decode_value(core.encode_value(v)))
            end
        end)

        it("gives equal values equal bytes and different values different bytes", function()
            local a = {x = 1, y = {2, 3}, [10] = "ten"}
            local b = {[10] = "ten", y = {2, 3}}
            b.x = 1
            assert.are.equal(core.encode_value(a), core.encode_value(b))
            assert.are_not.equal(core.encode_value(1), core.encode_value("1"))
            assert.are_not.equal(core.encode_value({1}), core.encode_value({[2] = 1}))
            assert.are_not.equal(core.encode_value(true), core.encode_value(1))
        end)

        it("fails on values it cannot hold", function()
            local s, msg, code = core.encode_value(print)
            assert.is_nil(s)
            assert.are.equal("ETYPE", code)
            assert.are.equal("ETYPE: value of a type the codec cannot hold (function)", msg)
            assert.are.equal("ETYPE: value of a type the codec cannot hold "
                .. "(table as a map key)", select(2, core.encode_value({[{}] = 1})))
            assert.are.equal("ETYPE", select(3, core.encode_value(nil)))
            local t = {}
            t[1] = t
            assert.are.equal("EDEPTH: value nested too deeply (more than 64 nested "
                .. "tables, or a cycle)", select(2, core.encode_value(t)))
            assert.has_error(function() core.encode_value() end)
        end)

        it("fails on bytes that are not exactly one value", function()
            local s = core.encode_value({1, 2})
            local v, msg, code = core.decode_value(s .. "\2")
            assert.is_nil(v)
            assert.are.equal("ECORRUPT", code)
            assert.are.equal("ECORRUPT: malformed data (1 byte(s) follow the value, "
                .. "from offset 6)", msg)
            v, msg, code = core.decode_value(s:sub(1, -2))
            assert.is_nil(v)
            assert.are.equal("ETRUNCATED", code)
            assert.matches("integer at offset 4: its varint runs past the end", msg, 1, true)
            assert.are.equal("ECORRUPT: malformed data (unknown tag 0x08 at offset 0)",
                             select(2, core.decode_value("\8")))
            assert.are.equal("ETRUNCATED", select(3, core.decode_value("")))
            assert.has_error(function() core.decode_value({}) end)
        end)
    end)
end)

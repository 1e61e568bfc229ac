-- The value codec in Lua (lua/dstream/valuecodec.lua), checked byte for
-- byte against the C glue it must agree with: core.encode_value and
-- core.decode_value.
local core = require("dstream.core")
local valuecodec = require("dstream.valuecodec")
local ffi = require("ffi")
local jutil = require("jit.util")
local vmdef = require("jit.vmdef")

local encode, decode, encode_key = valuecodec.encode, valuecodec.decode,
    valuecodec.encode_key

local NAN, INF = 0 / 0, math.huge

-- Deep equality that tells NaN (equal to itself) and -0.0 (unlike 0) apart.
local function same_value(a, b)
    if type(a) ~= type(b) then
        return false
    elseif type(a) == "number" then
        if a ~= a then
            return b ~= b
        end
        return a == b and 1 / a == 1 / b
    elseif type(a) ~= "table" then
        return a == b
    end
    local n = 0
    for k, v in pairs(a) do
        n = n + 1
        if b[k] == nil or not same_value(v, b[k]) then
            return false
        end
    end
    for _ in pairs(b) do
        n = n - 1
    end
    return n == 0
end

local function hex(s)
    return (s:gsub(".", function(c) return string.format("%02x ", c:byte()) end))
end

-- encode(v) must equal core.encode_value(v), byte for byte.
local function assert_encodes_like_c(v, what)
    local expected = assert(core.encode_value(v))
    local got = encode(v)
    if got ~= expected then
        error(string.format("%s: encode gave %s, core.encode_value %s", what or tostring(v),
            hex(got), hex(expected)), 2)
    end
end

-- The message the C glue fails with, without its "ENAME: " prefix.
local function c_message(f, ...)
    local v, msg = f(...)
    assert.is_nil(v)
    return (msg:gsub("^E%u+: ", ""))
end

local function error_of(f, ...)
    local ok, err = pcall(f, ...)
    assert.is_false(ok)
    return err
end

-- A deterministic random source: an integer in 0..n-1.
local seed = 20240611
local function rand(n)
    seed = (seed * 1103515245 + 12345) % 2147483648
    return math.floor(seed / 65536) % n
end

local function random_string()
    local chars = {}
    for i = 1, rand(6) do
        chars[i] = string.char(({0, 65, 97, 127, 128, 200, 254})[rand(7) + 1] + rand(2))
    end
    return table.concat(chars)
end

local function random_key()
    local r = rand(9)
    if r == 0 then
        return rand(2) == 0
    elseif r == 1 then
        return rand(200) - 100
    elseif r == 2 then
        return (rand(200) - 100) / 8
    elseif r == 3 then
        return (rand(2) == 0 and 1 or -1) * 2 ^ rand(64) + rand(3) - 1
    elseif r == 4 then
        return random_string()
    elseif r == 5 then
        return ("k"):rep(rand(2) == 0 and 130 or 126) .. rand(5)
    elseif r == 6 then
        return ({INF, -INF, 1e300, 5e-324})[rand(4) + 1]
    end
    return "k" .. rand(30)
end

local function random_value(depth)
    if depth >= 4 or rand(3) > 0 then
        local r = rand(10)
        if r == 0 then
            return NAN
        elseif r == 1 then
            return -0.0
        end
        return random_key()
    end
    local t, kind, n = {}, rand(4), rand(7)
    if kind ~= 1 then
        for i = 1, n do
            t[i] = random_value(depth + 1)
        end
    end
    if kind ~= 0 then
        for _ = 1, (kind == 3 and 20 or n) do
            t[random_key()] = random_value(depth + 1)
        end
    end
    return t
end

local function nest(depth)
    local t = {}
    for _ = 2, depth do
        t = {t}
    end
    return t
end

local SCALARS = {
    true, false, 0, 1, -1, 3.0, 0.5, -0.5, -0.0, NAN, INF, -INF, 1e300, -1e300,
    5e-324, 2.2250738585072014e-308, 1 / 3, 17.5, "", "a", "a\0b", "\0",
    "\255\128\1", "u123",
}

describe("dstream.valuecodec", function()
    describe("valuecodec.encode", function()
        it("writes exactly the bytes core.encode_value writes, for every scalar", function()
            for _, v in ipairs(SCALARS) do
                assert_encodes_like_c(v)
            end
            assert.are.equal("\3\6", encode(3.0))
            assert.are.equal(9, #encode(-0.0))
        end)

        it("writes integers at every varint length and the int64 edges as C does", function()
            for e = 0, 64 do
                local x = 2 ^ e
                for _, v in ipairs({x, -x, x - 1, 1 - x, x + 1, -x - 1, x - 2 ^ (e - 53),
                                    -x + 2 ^ (e - 53), x + 2 ^ (e - 52)}) do
                    assert_encodes_like_c(v, string.format("%.17g", v))
                end
            end
            assert.are.equal(11, #encode(-2 ^ 63))
            assert.are.equal("\4", encode(2 ^ 63):sub(1, 1))
            assert.are.equal("\3", encode(2 ^ 63 - 1024):sub(1, 1))
        end)

        it("writes strings whose length takes one to four varint bytes", function()
            for _, n in ipairs({0, 1, 127, 128, 129, 16383, 16384, 2097151, 2097152}) do
                local s = ("a\0\255"):rep(math.ceil(n / 3)):sub(1, n)
                assert_encodes_like_c(s, n .. "-byte string")
                assert.are.equal(s, decode(encode(s)))
            end
        end)

        it("writes a table whose keys are exactly 1..#t as an array, {} included", function()
            for _, v in ipairs({{}, {{}}, {1, 2, 3}, {"a", true, 0.5, {1, {2, {}}}},
                                {1, nil, 3}, {[0] = 1, 2}, {[1.5] = 1}, {1, 2, x = 3},
                                {[2] = "b", [1] = "a"}}) do
                assert_encodes_like_c(v)
            end
            assert.are.equal("\6\0", encode({}))
            assert.are.equal("\7\2", encode({1, nil, 3}):sub(1, 2))
        end)

        it("sorts map entries by their keys' encoded bytes", function()
            local long = ("x"):rep(200)
            local many = {}
            for i = 1, 40 do
                many["key" .. i] = i
            end
            local huge = {}
            for i = 1, 300 do
                huge[("k"):rep(i % 7) .. i] = i
                huge[i * 1.5] = -i
            end
            for _, v in ipairs({
                {count = 3, last = 17.5, user = "u123"},
                {b = 1, a = 2, ab = 3, ba = 4, [""] = 5, ["\0"] = 6, ["\255"] = 7, ["a\0"] = 8},
                {[long] = 1, [long .. "y"] = 2, short = 3, [("z"):rep(127)] = 4},
                {[true] = 1, [false] = 2, [-1] = 3, [1.5] = 4, [2 ^ 60] = 5, [-2 ^ 63] = 6,
                 x = 7, [INF] = 8, [-INF] = 9, [0] = 10},
                {a = {z = 1, y = {q = 1, p = 2}}, [long] = {[true] = {c = 1, b = 2}}},
                {[0.5] = {[1.5] = 1, [2.5] = 2, [3.5] = 3}, [1.5] = {[4.5] = {[5.5] = 5, [6.5] = 6}},
                 [2.5] = {[7.5] = 7, [8.5] = 8, [9.5] = 9}, [3.5] = {[0.5] = 0, [0.25] = 1}},
                many, huge,
            }) do
                assert_encodes_like_c(v)
            end
        end)

        it("agrees with core.encode_value on random nested values", function()
            for i = 1, 3000 do
                assert_encodes_like_c(random_value(0), "random value " .. i)
            end
        end)

        it("accepts 64 nested tables and refuses 65, as C does", function()
            assert_encodes_like_c(nest(64))
            assert.are.equal(c_message(core.encode_value, nest(65)), error_of(encode, nest(65)))
            assert.are.equal("value nested too deeply (more than 64 nested tables, "
                .. "or a cycle)", error_of(encode, {x = nest(64)}))
        end)

        it("raises the C glue's message for values the codec cannot hold", function()
            local cycle = {}
            cycle[1] = {cycle}
            local self_map = {}
            self_map.me = self_map
            for _, v in ipairs({print, io.stdout, coroutine.create(print), ffi.new("int[1]"),
                                {print}, {a = {b = io.stdout}}, {[{}] = 1}, {[print] = true},
                                {x = {[io.stdout] = 1}}, cycle, self_map}) do
                assert.are.equal(c_message(core.encode_value, v), error_of(encode, v))
            end
            assert.are.equal(c_message(core.encode_value, nil), error_of(encode, nil))
            assert.are.equal("value of a type the codec cannot hold (function)",
                             error_of(encode, print))
            assert.are.equal("value of a type the codec cannot hold (table as a map key)",
                             error_of(encode, {[{}] = 1}))
        end)

        it("stays correct after an error half way and after a value larger than its scratch", function()
            error_of(encode, {a = {b = {c = {d = print}}, x = 1}, z = 2})
            error_of(encode, {[true] = {[1.5] = {x = print}}})
            local v = {count = 3, last = 17.5, user = "u123", nested = {k = {1, 2}, [2.5] = "x"}}
            assert_encodes_like_c(v)
            local big = {blob = ("b"):rep(5 * 1024 * 1024), n = 1}
            assert_encodes_like_c(big, "a 5 MB value")
            assert_encodes_like_c(v)
        end)
    end)

    describe("valuecodec.decode", function()
        it("gives back what encode wrote", function()
            for _, v in ipairs(SCALARS) do
                assert.is_true(same_value(v, decode(encode(v))), tostring(v))
            end
            for i = 1, 2000 do
                local v = random_value(0)
                assert.is_true(same_value(v, decode(encode(v))), "random value " .. i)
            end
        end)

        it("reads core.encode_value's bytes as core.decode_value does", function()
            for i = 1, 2000 do
                local s = core.encode_value(random_value(0))
                assert.is_true(same_value(core.decode_value(s), decode(s)), "random value " .. i)
            end
        end)

        it("reads len bytes from a pointer, and nothing past them", function()
            local s = encode({count = 3, last = 17.5, user = "u123", list = {1, "two", 3.5}})
            local buf = ffi.new("char[?]", #s + 8)
            ffi.copy(buf, s .. "\6\1\1\1\1\1\1\1")
            assert.are.same({count = 3, last = 17.5, user = "u123", list = {1, "two", 3.5}},
                            decode(ffi.cast("const char *", buf), #s))
            local list = encode({1, "two", 3.5})
            local at = s:find(list, 1, true) - 1
            assert.are.same({1, "two", 3.5}, decode(ffi.cast("const uint8_t *", buf) + at, #list))
            -- Each proper prefix fails even though the right bytes follow it.
            for n = 0, #s - 1 do
                assert.are.equal(c_message(core.decode_value, s:sub(1, n)), error_of(decode, buf, n))
                assert.are.equal(c_message(core.decode_value, s:sub(1, n)), error_of(decode, s, n))
            end
        end)

        it("reads integers of up to ten varint bytes exactly as the C reader does", function()
            local inputs = {
                "\3\254" .. ("\255"):rep(8) .. "\1",          -- 2^63 - 1, rounded
                "\3" .. ("\255"):rep(9) .. "\1",               -- -2^63
                "\3\253" .. ("\255"):rep(8) .. "\1",          -- -2^63 + 1, rounded
                "\3" .. ("\128"):rep(8) .. "\1",               -- 2^55
                "\3\129" .. ("\128"):rep(7) .. "\1",          -- -2^55 - 1
                "\3" .. ("\255"):rep(6) .. "\127",             -- -2^48: 7 bytes
                "\3" .. ("\255"):rep(7) .. "\127",             -- -2^55: 8 bytes
                "\3" .. ("\128"):rep(9) .. "\1",               -- 2^62
                "\3\130" .. ("\128"):rep(7) .. "\2",          -- 2^56 + 1, rounded
            }
            for _, s in ipairs(inputs) do
                local expected = core.decode_value(s)
                assert.are.equal(expected, decode(s))
            end
            assert.are.equal(2 ^ 63, decode(inputs[1]))
            assert.are.equal(-2 ^ 63, decode(inputs[2]))
            assert.are.equal(2 ^ 55, decode(inputs[4]))
            assert.are.equal(-2 ^ 55 - 1, decode(inputs[5]))
            assert.are.equal(-2 ^ 48, decode(inputs[6]))
            assert.are.equal(2 ^ 62, decode(inputs[8]))
        end)

        it("raises the C reader's message for malformed input", function()
            local map_of = function(k) return "\7\1" .. k .. "\2" end
            for _, s in ipairs({
                "", "\0", "\8", "\255", "\1\1", "\3", "\3\128", "\3\128\0", "\3\255\0",
                "\3\255\255\255\255\255\255\255\255\255\2", "\3\255\255\255\255\255\255\255\255\255\129",
                "\4\0\0\0", "\5\3ab", "\5\128\128\128\128\128\128\128\128\1", "\6\3\1\1",
                "\6\200\1\1", "\7\2\1\1\1", "\7\1\1", "\6\255\255\255\255\255\255\255\255\255\1",
                "\7\255\255\255\255\255\255\255\255\255\1", "\7\255\255\255\255\255\255\127",
                map_of("\6\0"), map_of("\7\0"), map_of("\6\5"), map_of("\6"),
                map_of("\4\0\0\0\0\0\0\248\127"), map_of("\4\0\0\0\0\0\0\248\255"),
                map_of("\9"), "\6\1\9", encode({1, 2}) .. "\2", encode("x") .. "xyz",
                "\6\1" .. encode(nest(64)),
            }) do
                local expected = c_message(core.decode_value, s)
                assert.are.equal(expected, error_of(decode, s), hex(s))
            end
            assert.are.equal("malformed data (unknown tag 0x08 at offset 0)", error_of(decode, "\8"))
            assert.are.equal("malformed data (array at offset 128 is nested deeper than 64 "
                .. "containers)", error_of(decode, ("\6\1"):rep(64) .. "\6\0"))
            assert.are.equal("malformed data (map key at offset 2 is NaN)",
                             error_of(decode, map_of("\4\0\0\0\0\0\0\248\127")))
        end)

        it("raises the C reader's message for every flipped bit", function()
            local s = encode({k = "v", n = {1, 2.5, -3}, [true] = {x = false}})
            for pos = 1, #s do
                for b = 0, 7 do
                    local byte = bit.bxor(s:byte(pos), bit.lshift(1, b))
                    local t = s:sub(1, pos - 1) .. string.char(byte) .. s:sub(pos + 1)
                    local v, msg = core.decode_value(t)
                    if v == nil then
                        assert.are.equal((msg:gsub("^E%u+: ", "")), error_of(decode, t), hex(t))
                    else
                        assert.is_true(same_value(v, decode(t)), hex(t))
                    end
                end
            end
        end)

        it("answers random bytes as the C reader does", function()
            for _ = 1, 5000 do
                local chars = {}
                for i = 1, rand(14) do
                    local r = rand(256)
                    chars[i] = string.char(r % 3 == 0 and r % 9 or r)
                end
                local t = table.concat(chars)
                local v, msg = core.decode_value(t)
                if v == nil then
                    assert.are.equal((msg:gsub("^E%u+: ", "")), error_of(decode, t), hex(t))
                else
                    assert.is_true(same_value(v, decode(t)), hex(t))
                end
            end
        end)

        it("raises at the caller for bad arguments", function()
            local s = encode(1)
            assert.matches("bad argument #1 to 'decode' %(string or pointer expected, got nil%)",
                           error_of(decode, nil))
            assert.matches("bad argument #1 to 'decode'", error_of(decode, {}))
            assert.matches("bad argument #2 to 'decode' %(length must be an integer >= 0%)",
                           error_of(decode, s, -1))
            assert.matches("bad argument #2 to 'decode'", error_of(decode, s, 1.5))
            assert.matches("bad argument #2 to 'decode'", error_of(decode, ffi.cast("const char *", s)))
            assert.matches("bad argument #2 to 'decode' %(length beyond the end of the string%)",
                           error_of(decode, s, #s + 1))
        end)
    end)

    describe("valuecodec.encode_key", function()
        it("encodes booleans and composite keys as encode does", function()
            for _, k in ipairs({true, false, {}, {"a"}, {"u123", 7}, {1.5, true, "x\0y", -2 ^ 63},
                                {2 ^ 70, -INF, ("k"):rep(300)}}) do
                assert.are.equal(core.encode_value(k), encode_key(k))
            end
        end)

        it("gives equal keys equal bytes, 0 and -0 members included", function()
            assert.are.equal(encode_key({"a", 1}), encode_key({"a", 1.0}))
            assert.are.equal(encode_key({0, "x"}), encode_key({-0.0, "x"}))
            assert.are.equal(encode({0}), encode_key({-0.0}))
            assert.are_not.equal(encode_key({"1"}), encode_key({1}))
            assert.are_not.equal(encode_key({true}), encode_key({"true"}))
        end)

        it("refuses anything but a boolean or an array of strings, numbers and booleans", function()
            assert.are.equal("a key of type string is not a boolean or composite key "
                .. "(strings and numbers are keys as themselves)", error_of(encode_key, "a"))
            assert.matches("a key of type number is not", error_of(encode_key, 1))
            assert.matches("a key of type nil is not", error_of(encode_key, nil))
            assert.are.equal("composite key member 2 is NaN", error_of(encode_key, {"a", NAN}))
            assert.are.equal("composite key member 1 of type table is not allowed",
                             error_of(encode_key, {{}}))
            assert.are.equal("key table is not an array (it has holes or non-integer keys)",
                             error_of(encode_key, {a = 1}))
            assert.matches("not an array", error_of(encode_key, {1, nil, 3}))
        end)
    end)

    describe("the compiled paths", function()
        it("encode and decode without NYI trace aborts", function()
            local values = {
                {count = 3, last = 17.5, user = "u123"}, {"u123", 7, true}, 12345, -2 ^ 60,
                2 ^ 62, 0.25, -0.0, "hello", ("s"):rep(300), ("t"):rep(20000),
                {a = {1, 2, {x = 1}}, [true] = {[1.5] = false}}, random_value(0),
            }
            local encoded = {}
            for i, v in ipairs(values) do
                encoded[i] = encode(v)
            end
            local nyi = {}
            local function on_trace(what, _, func, pc, otr, oex)
                if what ~= "abort" or type(otr) ~= "number" then
                    return
                end
                local info = jutil.funcinfo(func, pc)
                local ok, reason = pcall(string.format, vmdef.traceerr[otr], oex)
                reason = ok and reason or vmdef.traceerr[otr]
                if (info.source or ""):match("valuecodec%.lua$") and reason:match("^NYI") then
                    nyi[#nyi + 1] = info.loc .. ": " .. reason
                end
            end
            jit.flush()
            jit.attach(on_trace, "trace")
            local ok, err = pcall(function()
                for _ = 1, 2000 do
                    for i, v in ipairs(values) do
                        encode(v)
                        decode(encoded[i])
                        decode(ffi.cast("const char *", encoded[i]), #encoded[i])
                    end
                    encode_key({"u", 1})
                end
            end)
            jit.attach(on_trace)
            assert(ok, err)
            assert.are.same({}, nyi)
        end)
    end)
end)

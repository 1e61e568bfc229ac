--- The value codec in Lua: one value to its canonical codec bytes and back,
--- for the per-record paths (mapWithState, updateStateByKey) that hand
--- state values and composite keys to the keyed state store through the FFI.
---
---   valuecodec.encode(v)         -> the bytes core.encode_value(v) gives
---   valuecodec.encode_key(k)     -> a boolean or composite key's bytes
---   valuecodec.decode(ptr, len)  -> v (ptr: `const char *` cdata or string)
---
--- WHY NOT core.encode_value: DESIGN.md rule 3 - C is never called through
--- the classic Lua C API once per record. This file writes the format of
--- core/include/dstream/codec.h (its specification) in Lua that LuaJIT
--- compiles, and the specs check it byte for byte against the C glue.
---
--- CANONICAL FORM, as in the C glue: a table whose keys are exactly 1..#t is
--- an array ({} is the empty array), any other a map, with entries sorted by
--- their keys' encoded bytes (memcmp order, a prefix first); a number that is
--- integral and -2^63 <= x < 2^63 (not -0.0) is an INT, any other a DOUBLE.
--- Integers of magnitude below 2^52 take a double-only path; larger ones go
--- through int64 cdata, as do varints of 8 bytes or more when decoding, so
--- every INT reads back exactly as C's (lua_Number)int64 cast gives it.
---
--- HOW ENCODING AVOIDS GARBAGE: one growable `uint8_t[?]` scratch buffer, one
--- double/byte union and three Lua arrays (two used as stacks) live here; a
--- call allocates only its result string (and, for a map of more than
--- SORT_INSERTION entries, a table to sort). Scratch grown beyond
--- SCRATCH_KEEP bytes is dropped after the call. An encode that raises may
--- leave a few keys referenced from the `keys` stack until the next call.
---
--- HOW MAPS ARE SORTED: the usual map has only strings of under 128 bytes
--- as keys; their encodings (tag, length byte, bytes) sort by length, then
--- bytes, so the keys themselves are sorted (Lua's `<` on strings is
--- bytewise) and the entries written in order. Any other map is written in
--- next() order with its entries' offsets noted, then its entries sorted by
--- comparing their keys' bytes in the buffer and moved into order (copied
--- past the end of the map and back), as ds_codec_sort_map() does.
---
--- JIT: loops end a trace, so the paths a small value takes (varints of up
--- to three bytes, doubles) are written out; the loops left are the ones a
--- table needs (its keys, its entries, the sort). No path aborts a trace
--- with an NYI (a spec checks). Tables are walked by calling next()
--- directly, never with `for k, v in next, t`: Debian 12's LuaJIT can end
--- such a loop early once it has been blacklisted (spec/unit/luajit_spec.lua),
--- which made this encoder write more entries than the count it had written.
---
--- DECODING reads through a `const uint8_t *` with every read bounds-checked
--- against len, so no input makes it look outside its len bytes; a NaN
--- with any payload becomes Lua's one NaN, as in the C glue; counts
--- that the bytes left could not hold are refused before anything is
--- allocated. The checks and their messages are the C reader's
--- (ds_codec_check), in the same order.
---
--- ERRORS are raised with error(msg, 0), msg being the C glue's message
--- without its "ENAME: " prefix, e.g. "value of a type the codec cannot hold
--- (function)", "value nested too deeply (more than 64 nested tables, or a
--- cycle)", "malformed data (unknown tag 0x08 at offset 0)"; the caller
--- prepends the operator and the batch. Misuse (a bad argument) raises at
--- the caller's level.
---
--- WHY ONE FILE OF ~770 LINES: the encoder and the decoder are the two
--- halves of one format, share its constants, scratch union and messages,
--- and are checked together against the C codec (valuecodec_spec,
--- fuzz/fuzz_decode.c); split, a change to the format would touch both.
---
--- COSTS: linear in the bytes, plus O(m log m) key comparisons for a map of
--- m entries (O(m^2) below SORT_INSERTION). Tables are read with raw access
--- (next, #t and indexing of plain tables); metatables are not consulted.
local ffi = require "ffi"
local bit = require "bit"
local tnew = require "table.new"

local type, next, error = type, next, error
local tostring, tonumber = tostring, tonumber
local floor = math.floor
local sformat, ssub = string.format, string.sub
local sort = table.sort
local band, bor, bxor, rshift, lshift, arshift = bit.band, bit.bor, bit.bxor,
    bit.rshift, bit.lshift, bit.arshift
local ffi_new, ffi_copy, ffi_string, ffi_cast = ffi.new, ffi.copy, ffi.string,
    ffi.cast

local valuecodec = {}

local MAX_DEPTH = 64            -- DS_CODEC_MAX_DEPTH
local SCRATCH_START = 256
local SCRATCH_KEEP = 4 * 1024 * 1024
local SORT_INSERTION = 12
local TWO52, TWO63 = 2 ^ 52, 2 ^ 63
local NAN = 0 / 0

local TAG_FALSE, TAG_TRUE, TAG_INT, TAG_DOUBLE = 1, 2, 3, 4
local TAG_STR, TAG_ARRAY, TAG_MAP = 5, 6, 7

local MSG_TYPE = "value of a type the codec cannot hold"
local MSG_DEPTH = "value nested too deeply (more than " .. MAX_DEPTH
    .. " nested tables, or a cycle)"
local MSG_CORRUPT = "malformed data"
local MSG_TRUNCATED = "data ends before its frame does"

local u8_array = ffi.typeof("uint8_t[?]")
local u8_ptr = ffi.typeof("const uint8_t *")
local u64 = ffi.typeof("uint64_t")
local int64 = ffi.typeof("int64_t")
-- The double's bytes in the codec's little-endian order: index i of the
-- union is byte bxor(i, SWAP) of the encoding.
local dbl = ffi_new("union { double d; uint8_t b[8]; }")
local SWAP = ffi.abi("le") and 0 or 7

-- Encoder scratch: buf[0..cap-1]. Two stacks, each map's part above its
-- enclosing map's: `keys` (a map's keys while they are sorted and written)
-- and `ents` (two offsets per entry - key start, key end - of a map sorted
-- by its bytes); `order` the order of such a map's entries.
local buf, cap = ffi_new(u8_array, SCRATCH_START), SCRATCH_START
local keys, keys_top = {}, 0
local ents, ents_top = {}, 0
local order = {}

-- The string being decoded, kept reachable while a pointer into it is read
-- (a store the JIT cannot drop, unlike a stack slot); written only.
local anchor -- luacheck: ignore 231

--- encoding -----------------------------------------------------------------

local function grow(used, need)
    local size = cap * 2
    while size < need do
        size = size * 2
    end
    local nbuf = ffi_new(u8_array, size)
    ffi_copy(nbuf, buf, used)
    buf, cap = nbuf, size
end

-- Make room for n bytes from offset p.
local function reserve(p, n)
    if p + n > cap then
        grow(p, p + n)
    end
end

-- Write the varint of z (an integral double, 0 <= z < 2^53) at p (room for
-- 10 bytes reserved); returns the offset after it.
local function put_varint(p, z)
    if z < 128 then
        buf[p] = z
        return p + 1
    elseif z < 0x4000 then
        buf[p] = bor(band(z, 127), 128)
        buf[p + 1] = rshift(z, 7)
        return p + 2
    elseif z < 0x200000 then
        buf[p] = bor(band(z, 127), 128)
        buf[p + 1] = bor(band(rshift(z, 7), 127), 128)
        buf[p + 2] = rshift(z, 14)
        return p + 3
    elseif z < 0x80000000 then
        repeat
            buf[p] = bor(band(z, 127), 128)
            z = rshift(z, 7)
            p = p + 1
        until z < 128
    else
        repeat
            buf[p] = z % 128 + 128
            z = floor(z / 128)
            p = p + 1
        until z < 128
    end
    buf[p] = z
    return p + 1
end

-- INT of an integral x with 2^52 <= |x| < 2^63 (and -2^63), through int64.
local function put_wide_int(p, x)
    local n = int64(x)
    local z = bxor(lshift(n, 1), arshift(n, 63))
    buf[p] = TAG_INT
    p = p + 1
    while true do
        local low = band(z, 127)
        z = rshift(z, 7)
        if z == 0 then
            buf[p] = low
            return p + 1
        end
        buf[p] = low + 128
        p = p + 1
    end
end

-- Written out, not a loop: a loop here would end the caller's trace.
local function put_double(p, x)
    local b = dbl.b
    dbl.d = x
    buf[p] = TAG_DOUBLE
    buf[p + 1] = b[SWAP]
    buf[p + 2] = b[bxor(1, SWAP)]
    buf[p + 3] = b[bxor(2, SWAP)]
    buf[p + 4] = b[bxor(3, SWAP)]
    buf[p + 5] = b[bxor(4, SWAP)]
    buf[p + 6] = b[bxor(5, SWAP)]
    buf[p + 7] = b[bxor(6, SWAP)]
    buf[p + 8] = b[bxor(7, SWAP)]
    return p + 9
end

-- A number at p (11 bytes reserved): INT when integral, in int64 range and
-- not -0.0, else DOUBLE - ds_codec_put_number()'s rule.
local function put_number(p, x)
    if x == floor(x) and x >= -TWO63 and x < TWO63 then
        if x > -TWO52 and x < TWO52 then
            if x == 0 and 1 / x < 0 then
                return put_double(p, x)
            end
            buf[p] = TAG_INT
            return put_varint(p + 1, x >= 0 and x * 2 or -x * 2 - 1)
        end
        return put_wide_int(p, x)
    end
    return put_double(p, x)
end

local function put_string(p, s)
    local n = #s
    reserve(p, n + 11)
    buf[p] = TAG_STR
    p = put_varint(p + 1, n)
    ffi_copy(buf + p, s, n)
    return p + n
end

-- A container's tag and count at p.
local function put_head(p, tag, count)
    reserve(p, 11)
    buf[p] = tag
    return put_varint(p + 1, count)
end

-- A scalar at p, or nil if v is not one.
local function put_scalar(p, v)
    local tv = type(v)
    if tv == "string" then
        return put_string(p, v)
    elseif tv == "number" then
        reserve(p, 11)
        return put_number(p, v)
    elseif tv == "boolean" then
        reserve(p, 1)
        buf[p] = v and TAG_TRUE or TAG_FALSE
        return p + 1
    end
    return nil
end

local function type_error(tv, as_key)
    error(MSG_TYPE .. " (" .. tv .. (as_key and " as a map key)" or ")"), 0)
end

-- Does the key of the entry at ents[a] sort before the one at ents[b]?
local function key_before(a, b)
    local as, bs = ents[a], ents[b]
    local alen, blen = ents[a + 1] - as, ents[b + 1] - bs
    local n = alen < blen and alen or blen
    for i = 0, n - 1 do
        local x, y = buf[as + i], buf[bs + i]
        if x ~= y then
            return x < y
        end
    end
    return alen < blen
end

-- Sort list[base + 1 .. base + n] by before(x, y): insertion sort for a
-- few, table.sort (on a table of their own) for many.
local function sort_range(list, base, n, before)
    if n <= SORT_INSERTION then
        for i = base + 2, base + n do
            local x = list[i]
            local j = i - 1
            while j > base and before(x, list[j]) do
                list[j + 1] = list[j]
                j = j - 1
            end
            list[j + 1] = x
        end
        return
    end
    local all = tnew(n, 0)
    for i = 1, n do
        all[i] = list[base + i]
    end
    sort(all, before)
    for i = 1, n do
        list[base + i] = all[i]
    end
end

-- Put the n entries of a map, from offset body to p, noted at ents[base +
-- 1 ...], into canonical order: sort, copy past p in order, copy back.
local function sort_entries(body, p, base, n)
    for i = 1, n do
        order[i] = base + 2 * i - 1
    end
    sort_range(order, 0, n, key_before)
    local size = p - body
    reserve(p, size)
    local q = p
    for i = 1, n do
        local e = order[i]
        local start = ents[e]
        local stop = e == base + 2 * n - 1 and p or ents[e + 2]
        ffi_copy(buf + q, buf + start, stop - start)
        q = q + stop - start
    end
    ffi_copy(buf + body, buf + p, size)
end

local encode_table

-- Any map of n entries: written in next() order with its keys' offsets
-- noted, then its entries reordered by their keys' bytes.
local function encode_map_bytes(p, t, n, depth)
    p = put_head(p, TAG_MAP, n)
    local body, base = p, ents_top
    local e = base
    local k, v = next(t)
    while k ~= nil do
        ents[e + 1] = p
        p = put_scalar(p, k)
        if p == nil then
            type_error(type(k), true)
        end
        ents[e + 2] = p
        ents_top = e + 2
        if type(v) == "table" then
            p = encode_table(p, v, depth)
        else
            p = put_scalar(p, v) or type_error(type(v), false)
        end
        e = e + 2
        k, v = next(t, k)
    end
    ents_top = base
    if n > 1 then
        sort_entries(body, p, base, n)
    end
    return p
end

-- Encoded strings of under 128 bytes (tag, one length byte, the bytes)
-- sort by length, then by their bytes: Lua's own order, as LuaJIT compares
-- strings bytewise, unsigned.
local function short_key_before(a, b)
    local alen, blen = #a, #b
    return alen < blen or (alen == blen and a < b)
end

-- A map. The common one, every key a string under 128 bytes, has its keys
-- sorted first (on the `keys` stack) and its entries written in order,
-- nothing to move; any other goes to encode_map_bytes().
local function encode_map(p, t, depth)
    local base = keys_top
    local n, others = 0, 0
    local k = next(t)
    while k ~= nil do
        n = n + 1
        keys[base + n] = k
        if type(k) ~= "string" or #k >= 128 then
            others = others + 1
        end
        k = next(t, k)
    end
    if others > 0 then
        for i = base + 1, base + n do
            keys[i] = nil
        end
        return encode_map_bytes(p, t, n, depth)
    end
    sort_range(keys, base, n, short_key_before)
    keys_top = base + n
    p = put_head(p, TAG_MAP, n)
    for i = base + 1, base + n do
        local key = keys[i]
        keys[i] = nil
        p = put_string(p, key)
        local v = t[key]
        if type(v) == "table" then
            p = encode_table(p, v, depth)
        else
            p = put_scalar(p, v) or type_error(type(v), false)
        end
    end
    keys_top = base
    return p
end

-- The number of entries of t, and whether its keys are exactly 1..#t.
local function table_shape(t)
    local n = #t
    local count, others = 0, 0 -- keys, keys not in 1..n
    local k = next(t)
    while k ~= nil do
        count = count + 1
        if type(k) ~= "number" or k < 1 or k > n or k ~= floor(k) then
            others = others + 1
        end
        k = next(t, k)
    end
    return count, others == 0 and count == n
end

-- Encode a table found inside `depth` tables. One with #t == 0 is the
-- empty array or a map; any other is measured first.
encode_table = function(p, t, depth)
    if depth >= MAX_DEPTH then
        error(MSG_DEPTH, 0)
    end
    if #t == 0 and next(t) ~= nil then
        return encode_map(p, t, depth + 1)
    end
    local count, is_array = table_shape(t)
    if not is_array then
        return encode_map(p, t, depth + 1)
    end
    p = put_head(p, TAG_ARRAY, count)
    depth = depth + 1
    for i = 1, count do
        local v = t[i]
        if type(v) == "table" then
            p = encode_table(p, v, depth)
        else
            p = put_scalar(p, v) or type_error(type(v), false)
        end
    end
    return p
end

-- The bytes written, and the scratch trimmed if it grew too large.
local function result(p)
    local s = ffi_string(buf, p)
    if cap > SCRATCH_KEEP then
        buf, cap = ffi_new(u8_array, SCRATCH_START), SCRATCH_START
    end
    return s
end

--- The canonical bytes of v, exactly core.encode_value(v)'s. Raises for a
--- value the codec cannot hold (nil, a function, a userdata, a table as a
--- map key, a table nested more than 64 deep or a cycle).
function valuecodec.encode(v)
    keys_top, ents_top = 0, 0
    if type(v) == "table" then
        return result(encode_table(0, v, 0))
    end
    return result(put_scalar(0, v) or type_error(type(v), false))
end

-- Why k is not a boolean or composite key, or nil when it is one.
local function key_problem(k)
    local tk = type(k)
    if tk == "boolean" then
        return nil
    elseif tk ~= "table" then
        return "a key of type " .. tk .. " is not a boolean or composite key "
            .. "(strings and numbers are keys as themselves)"
    end
    local count, is_array = table_shape(k)
    if not is_array then
        return "key table is not an array (it has holes or non-integer keys)"
    end
    for i = 1, count do
        local x = k[i]
        local tx = type(x)
        if tx == "number" then
            if x ~= x then
                return "composite key member " .. i .. " is NaN"
            end
        elseif tx ~= "string" and tx ~= "boolean" then
            return "composite key member " .. i .. " of type " .. tx
                .. " is not allowed"
        end
    end
    return nil
end

--- The canonical bytes of a state-store ENC key: a boolean, or a composite
--- key (an array of strings, numbers other than NaN and booleans). Equal
--- keys (key.lua's rules) give equal bytes: like encode(k), except that a
--- member -0 is written as 0, since 0 and -0 are one key. Raises with the
--- reason for anything else, strings and numbers included (those are kept
--- as themselves, DS_STATE_STR / DS_STATE_NUM).
function valuecodec.encode_key(k)
    local problem = key_problem(k)
    if problem ~= nil then
        error(problem, 0)
    end
    if k == true or k == false then
        return valuecodec.encode(k)
    end
    local n = #k
    local p = put_head(0, TAG_ARRAY, n)
    for i = 1, n do
        local x = k[i]
        p = put_scalar(p, x == 0 and 0 or x)
    end
    return result(p)
end

--- decoding -----------------------------------------------------------------

local function fail(msg, fmt, ...)
    error(msg .. " (" .. sformat(fmt, ...) .. ")", 0)
end

local TAG_NAMES = {[TAG_INT] = "integer", [TAG_STR] = "string",
    [TAG_ARRAY] = "array", [TAG_MAP] = "map"}

-- The value of the varint of `used` bytes at p[q], exactly, as a uint64.
local function wide_varint(p, q, used)
    local u = u64(0)
    for i = used - 1, 0, -1 do
        u = bor(lshift(u, 7), band(p[q + i], 127))
    end
    return u
end

-- The varint after the tag at pos, as get_varint() returned it (n, of
-- `used` bytes), in decimal digits.
local function show_varint(p, pos, n, used)
    if n ~= false then
        return sformat("%d", n)
    end
    local digits = tostring(wide_varint(p, pos + 1, used)) -- "...ULL"
    return ssub(digits, 1, #digits - 3)
end

-- Read the varint after the tag at pos (len bytes in all). Returns its
-- value as a double when it has at most 7 bytes (below 2^49, exact), else
-- false, then the offset after it and the number of its bytes.
local function get_long_varint(p, len, pos)
    local q = pos + 1
    local z, scale = 0, 1
    for i = 0, 9 do
        if q + i >= len then
            fail(MSG_TRUNCATED, "%s at offset %d: its varint runs past the end "
                .. "of the data", TAG_NAMES[p[pos]], pos)
        end
        local b = p[q + i]
        if i == 9 and b > 1 then
            break
        end
        if b < 128 then
            if b == 0 and i > 0 then
                break
            end
            if i >= 7 then
                return false, q + i + 1, i + 1
            end
            return z + b * scale, q + i + 1, i + 1
        end
        z = z + (b - 128) * scale
        scale = scale * 128
    end
    fail(MSG_CORRUPT, "%s at offset %d: varint over 64 bits or not minimal",
        TAG_NAMES[p[pos]], pos)
end

-- get_long_varint() with the cases of up to three bytes written out: a
-- loop here would end the caller's trace.
local function get_varint(p, len, pos)
    local q = pos + 1
    if q < len then
        local b = p[q]
        if b < 128 then
            return b, q + 1, 1
        end
        local c = q + 1 < len and p[q + 1] or 0
        if c > 0 and c < 128 then
            return b - 128 + c * 0x80, q + 2, 2
        end
        local d = (c >= 128 and q + 2 < len) and p[q + 2] or 0
        if d > 0 and d < 128 then
            return b - 128 + (c - 128) * 0x80 + d * 0x4000, q + 3, 3
        end
    end
    return get_long_varint(p, len, pos)
end

-- The count of the array or map whose tag is at pos, checked against the
-- bytes left; returns it and the offset of the first element.
local function get_count(p, len, pos)
    local tag = p[pos]
    local n, q, used = get_varint(p, len, pos)
    local left = len - q
    local room = tag == TAG_MAP and floor(left / 2) or left
    if n == false or n > room then
        fail(MSG_TRUNCATED, "%s at offset %d of %s %s cannot fit in the %d "
            .. "bytes left", TAG_NAMES[tag], pos,
            show_varint(p, pos, n, used),
            tag == TAG_MAP and "entries" or "elements", left)
    end
    return n, q
end

local function get_int(p, len, pos)
    local z, q, used = get_varint(p, len, pos)
    if z == false then
        local u = wide_varint(p, pos + 1, used)
        return tonumber(int64(bxor(rshift(u, 1), -band(u, 1)))), q
    end
    if z % 2 == 0 then
        return z / 2, q
    end
    return -(z + 1) / 2, q
end

local function get_string(p, len, pos)
    local n, q, used = get_varint(p, len, pos)
    if n == false or n > len - q then
        fail(MSG_TRUNCATED, "string at offset %d of %s bytes runs past the end "
            .. "(%d bytes left)", pos,
            show_varint(p, pos, n, used),
            len - q)
    end
    return ffi_string(p + q, n), q + n
end

local function get_double(p, len, pos)
    if len - pos < 9 then
        fail(MSG_TRUNCATED, "double at offset %d needs 8 bytes, %d left", pos,
            len - pos - 1)
    end
    -- A NaN is told by its bits before it becomes a double: LuaJIT keeps
    -- other values inside NaNs, so a NaN with a payload read as a double
    -- could be a table pointer. Every NaN decodes as Lua's own 0/0, as the
    -- C glue's lua_pushnumber() makes it.
    local hi, next_hi = p[pos + 8], p[pos + 7]
    if band(hi, 0x7f) == 0x7f and next_hi >= 0xf0 and (band(next_hi, 0x0f) ~= 0
            or bor(p[pos + 1], p[pos + 2], p[pos + 3], p[pos + 4], p[pos + 5],
                p[pos + 6]) ~= 0) then
        return NAN, pos + 9
    end
    local b = dbl.b
    b[SWAP] = p[pos + 1]
    b[bxor(1, SWAP)] = p[pos + 2]
    b[bxor(2, SWAP)] = p[pos + 3]
    b[bxor(3, SWAP)] = p[pos + 4]
    b[bxor(4, SWAP)] = p[pos + 5]
    b[bxor(5, SWAP)] = p[pos + 6]
    b[bxor(6, SWAP)] = p[pos + 7]
    b[bxor(7, SWAP)] = p[pos + 8]
    return dbl.d, pos + 9
end

local NO_TAG = -1

-- The tag at pos, or NO_TAG past the end.
local function tag_at(p, len, pos)
    return pos < len and p[pos] or NO_TAG
end

-- The scalar whose tag, at pos, is tag (NO_TAG past the end), and the
-- offset after it.
local function decode_scalar(p, len, pos, tag)
    if tag == TAG_STR then
        return get_string(p, len, pos)
    elseif tag == TAG_INT then
        return get_int(p, len, pos)
    elseif tag == TAG_DOUBLE then
        return get_double(p, len, pos)
    elseif tag == TAG_TRUE then
        return true, pos + 1
    elseif tag == TAG_FALSE then
        return false, pos + 1
    elseif tag == NO_TAG then
        fail(MSG_TRUNCATED, "a value was expected at offset %d but the data "
            .. "ends", pos)
    end
    fail(MSG_CORRUPT, "unknown tag 0x%02x at offset %d", tag, pos)
end

-- A map key at pos: a scalar, never NaN.
local function decode_key(p, len, pos)
    local tag = tag_at(p, len, pos)
    if tag == TAG_ARRAY or tag == TAG_MAP then
        get_count(p, len, pos)
        fail(MSG_CORRUPT, "map key at offset %d is %s %s", pos,
            tag == TAG_MAP and "a" or "an", TAG_NAMES[tag])
    end
    local k, q = decode_scalar(p, len, pos, tag)
    if k ~= k then
        fail(MSG_CORRUPT, "map key at offset %d is NaN", pos)
    end
    return k, q
end

-- The container at pos, inside `depth` containers, and the offset after
-- it. Scalars are decoded in its loops; only a nested container recurses.
local function decode_container(p, len, pos, depth)
    local ctag = p[pos]
    local n, q = get_count(p, len, pos)
    if depth >= MAX_DEPTH then
        fail(MSG_CORRUPT, "%s at offset %d is nested deeper than %d containers",
            TAG_NAMES[ctag], pos, MAX_DEPTH)
    end
    depth = depth + 1
    if ctag == TAG_ARRAY then
        local t = tnew(n, 0)
        for i = 1, n do
            local tag = tag_at(p, len, q)
            if tag == TAG_ARRAY or tag == TAG_MAP then
                t[i], q = decode_container(p, len, q, depth)
            else
                t[i], q = decode_scalar(p, len, q, tag)
            end
        end
        return t, q
    end
    local t = tnew(0, n)
    for _ = 1, n do
        local k, v
        k, q = decode_key(p, len, q)
        local tag = tag_at(p, len, q)
        if tag == TAG_ARRAY or tag == TAG_MAP then
            v, q = decode_container(p, len, q, depth)
        else
            v, q = decode_scalar(p, len, q, tag)
        end
        t[k] = v
    end
    return t, q
end

local function bad_argument(n, msg)
    error("bad argument #" .. n .. " to 'decode' (" .. msg .. ")", 3)
end

--- The value held by exactly the len bytes at ptr: a `const char *` (or
--- `const uint8_t *`) cdata, borrowed for the call only, or a Lua string
--- (len defaults to its length). Raises "malformed data (...)" or "data
--- ends before its frame does (...)" with what is wrong at which offset.
function valuecodec.decode(ptr, len)
    local tp = type(ptr)
    if tp == "string" then
        len = len or #ptr
    elseif tp ~= "cdata" then
        bad_argument(1, "string or pointer expected, got " .. tp)
    end
    if type(len) ~= "number" or len < 0 or len ~= floor(len) then
        bad_argument(2, "length must be an integer >= 0")
    end
    if tp == "string" then
        if len > #ptr then
            bad_argument(2, "length beyond the end of the string")
        end
        anchor = ptr
    end
    local p = ffi_cast(u8_ptr, ptr)
    local tag = tag_at(p, len, 0)
    local v, q
    if tag == TAG_ARRAY or tag == TAG_MAP then
        v, q = decode_container(p, len, 0, 0)
    else
        v, q = decode_scalar(p, len, 0, tag)
    end
    anchor = nil
    if q ~= len then
        fail(MSG_CORRUPT, "%d byte(s) follow the value, from offset %d",
            len - q, q)
    end
    return v
end

return valuecodec

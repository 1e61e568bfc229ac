local key = require "dstream.key"

local NaN = 0 / 0

describe("key.check", function()
    it("accepts strings, numbers and booleans as themselves", function()
        assert.same({ "a", false }, { key.check("a") })
        assert.same({ 1.5, false }, { key.check(1.5) })
        assert.same({ true, false }, { key.check(true) })
        assert.same({ math.huge, false }, { key.check(math.huge) })
    end)

    it("gives a composite key a canonical string", function()
        local canon, composite = key.check({ "a", 1, true })
        assert.is_true(composite)
        assert.equal("s1:an1;t", canon)
    end)

    it("gives equal canonical strings to arrays with equal contents", function()
        assert.equal(key.check({ "x", 2.5, false }), key.check({ "x", 2.5, false }))
        assert.equal(key.check({ 0 }), key.check({ -0 }))
    end)

    it("keeps 1, \"1\" and true apart inside composite keys", function()
        local a, b, c = key.check({ 1 }), key.check({ "1" }), key.check({ true })
        assert.are_not.equal(a, b)
        assert.are_not.equal(a, c)
        assert.are_not.equal(b, c)
        assert.are_not.equal(key.check({ "true" }), c)
    end)

    it("does not confuse members whose bytes run together", function()
        assert.are_not.equal(key.check({ "ab", "c" }), key.check({ "a", "bc" }))
        assert.are_not.equal(key.check({ "s1:a" }), key.check({ "a", "a" }))
        assert.are_not.equal(key.check({ 1, 2 }), key.check({ 12 }))
    end)

    it("tells numbers that print alike apart", function()
        assert.are_not.equal(key.check({ 0.1 }), key.check({ 0.1 + 2 ^ -55 }))
    end)

    it("accepts the empty array", function()
        assert.same({ "", true }, { key.check({}) })
    end)

    it("rejects nil, NaN, functions and other types with a reason", function()
        assert.same({ nil, "key is nil" }, { key.check(nil) })
        assert.same({ nil, "key is NaN" }, { key.check(NaN) })
        assert.same({ nil, "key of type function is not allowed" },
            { key.check(print) })
        assert.same({ nil, "key of type thread is not allowed" },
            { key.check(coroutine.create(print)) })
    end)

    it("rejects tables that are not arrays of primitives", function()
        assert.same({ nil, "key table is not an array (it has holes or non-integer keys)" },
            { key.check({ x = 1 }) })
        assert.same({ nil, "key table is not an array (it has holes or non-integer keys)" },
            { key.check({ 1, 2, name = "x" }) })
        assert.same({ nil, "key table is not an array (it has holes or non-integer keys)" },
            { key.check({ 1, nil, 3 }) })
        assert.same({ nil, "composite key member 2 of type table is not allowed" },
            { key.check({ "a", { "nested" } }) })
        assert.same({ nil, "composite key member 1 is NaN" }, { key.check({ NaN }) })
    end)
end)

describe("key.validate", function()
    it("returns the canonical key of a valid key", function()
        assert.same({ "k", false }, { key.validate("reduceByKey", "k") })
        assert.same({ "n7;", true }, { key.validate("reduceByKey", { 7 }) })
    end)

    it("raises an error naming the operator and the key rules", function()
        assert.has_error(function() key.validate("reduceByKey", print) end,
            "reduceByKey: key of type function is not allowed"
            .. " (keys are strings, numbers, booleans or arrays of those)")
        assert.has_error(function() key.validate("join", NaN) end,
            "join: key is NaN (keys are strings, numbers, booleans or arrays of those)")
    end)
end)

describe("key.show", function()
    it("quotes strings so that 1 and \"1\" read differently", function()
        assert.equal('"1"', key.show("1"))
        assert.equal("1", key.show(1))
        assert.equal("true", key.show(true))
    end)

    it("shows composite keys as arrays", function()
        assert.equal('{"a", 1, false}', key.show({ "a", 1, false }))
    end)

    it("shortens long strings", function()
        assert.equal('"' .. string.rep("x", 57) .. '..."', key.show(string.rep("x", 100)))
    end)
end)

describe("key.hash", function()
    it("hashes integers to themselves modulo 2^31 - 1", function()
        assert.equal(5, key.hash(5))
        assert.equal(2147483646, key.hash(-1))
    end)

    it("is a fixed function of the bytes of a string", function()
        -- h = #s, then h = h * 31 + byte for each byte
        assert.equal((1 * 31 + 97), key.hash("a"))
        assert.equal((2 * 31 + 97) * 31 + 98, key.hash("ab"))
    end)

    it("hashes booleans and fractions", function()
        assert.equal(1, key.hash(true))
        assert.equal(0, key.hash(false))
        assert.equal(key.hash("0.5"), key.hash(0.5))
    end)
end)

describe("key.index", function()
    it("gives dense slots in first-seen order", function()
        local idx = key.index("reduceByKey")
        assert.same({ 1, true }, { idx:slot("b") })
        assert.same({ 2, true }, { idx:slot("a") })
        assert.same({ 1, false }, { idx:slot("b") })
        assert.equal(2, idx:count())
        assert.equal("a", idx:key(2))
    end)

    it("keeps 1, \"1\", true and \"true\" as four keys", function()
        local idx = key.index("reduceByKey")
        local function slots()
            return { (idx:slot(1)), (idx:slot("1")), (idx:slot(true)), (idx:slot("true")) }
        end
        assert.same({ 1, 2, 3, 4 }, slots())
        assert.same({ 1, 2, 3, 4 }, slots())
        assert.equal(4, idx:count())
    end)

    it("treats composite keys with equal contents as one key and keeps the first table", function()
        local idx = key.index("groupByKey")
        local first = { "a", 1 }
        assert.same({ 1, true }, { idx:slot(first) })
        assert.same({ 1, false }, { idx:slot({ "a", 1 }) })
        assert.same({ 2, true }, { idx:slot({ 1, "a" }) })
        assert.same({ 3, true }, { idx:slot({ "a" }) })
        assert.same({ 4, true }, { idx:slot({ "a", 1, 2 }) })
        assert.equal(first, idx:key(1))
    end)

    it("never confuses a composite key with a plain string key", function()
        local idx = key.index("reduceByKey")
        local canon = key.check({ "a" })
        assert.same({ 1, true }, { idx:slot(canon) })
        assert.same({ 2, true }, { idx:slot({ "a" }) })
        assert.same({ 3, true }, { idx:slot({}) })
        assert.same({ 4, true }, { idx:slot("") })
        assert.same({ 3, false }, { idx:slot({}) })
    end)

    it("treats 0 and -0 as one key", function()
        local idx = key.index("reduceByKey")
        assert.same({ 1, true }, { idx:slot(0) })
        assert.same({ 1, false }, { idx:slot(-0) })
        assert.same({ 2, true }, { idx:slot({ -0 }) })
        assert.same({ 2, false }, { idx:slot({ 0 }) })
    end)

    it("raises naming the operator for a value that is not a key", function()
        local idx = key.index("reduceByKey")
        local rules = " (keys are strings, numbers, booleans or arrays of those)"
        assert.has_error(function() idx:slot(print) end,
            "reduceByKey: key of type function is not allowed" .. rules)
        assert.has_error(function() idx:slot(nil) end, "reduceByKey: key is nil" .. rules)
        assert.has_error(function() idx:slot(NaN) end, "reduceByKey: key is NaN" .. rules)
        assert.has_error(function() idx:slot({ "a", {} }) end,
            "reduceByKey: composite key member 2 of type table is not allowed" .. rules)
        assert.has_error(function() idx:slot({ k = "v" }) end,
            "reduceByKey: key table is not an array (it has holes or non-integer keys)" .. rules)
        assert.equal(0, idx:count())
    end)

    it("compares non-keys by identity when loose", function()
        local idx = key.index("distinct", true)
        local rec = { name = "x" }
        assert.same({ 1, true }, { idx:slot(rec) })
        assert.same({ 1, false }, { idx:slot(rec) })
        assert.same({ 2, true }, { idx:slot({ name = "x" }) })
        assert.same({ 3, true }, { idx:slot({ "a", "b" }) })
        assert.same({ 3, false }, { idx:slot({ "a", "b" }) })
        assert.same({ 4, true }, { idx:slot(NaN) })
        assert.same({ 4, false }, { idx:slot(NaN) })
        assert.same({ 5, true }, { idx:slot(print) })
        assert.has_error(function() idx:slot(nil) end,
            "distinct: key is nil (keys are strings, numbers, booleans or arrays of those)")
    end)

    it("assigns partitions from the key's hash", function()
        local idx = key.index("reduceByKey")
        idx:slot(7)
        idx:slot({ "a" })
        assert.equal(7 % 3 + 1, idx:partition(1, 3))
        assert.equal(key.hash("s1:a") % 3 + 1, idx:partition(2, 3))
    end)

    it("says what it is", function()
        local idx = key.index("reduceByKey")
        idx:slot("a")
        assert.equal("key index of reduceByKey (1 keys)", tostring(idx))
        assert.equal("key index of distinct (0 keys, loose)", tostring(key.index("distinct", true)))
    end)
end)

-- saveAsTextFiles, saveAsObjectFiles and ssc:objectFile on a real
-- directory: batches run under the manual clock (batch times 1000, 2000...),
-- then the directories they wrote are listed and read back.
local dstream = require("dstream")
local core = require("dstream.core")
local batches = require("spec.helpers.batches")
local files = require("spec.helpers.files")
local tmpdir, read, write = files.tmpdir, files.read, files.write




local function list(dir)
    return assert(core.fs_list(dir))
end

local function manual()
    return dstream.StreamingContext{batchInterval = 1, clock = "manual"}
end

-- Runs `input` (one array per batch) through build(stream) under a manual
-- clock, one advance per batch.
local function run(input, build)
    local ssc = manual()
    build(ssc:queueStream(input), ssc)
    ssc:start()
    ssc:advance(#input)
    ssc:stop()
end

local function raises(fn, text)
    local ok, err = pcall(fn)
    assert.is_false(ok, "did not raise: " .. text)
    assert.matches(text, tostring(err), 1, true)
    return tostring(err)
end

describe("stream:saveAsTextFiles", function()
    local dir

    before_each(function() dir = tmpdir() end)
    after_each(function() assert(core.fs_remove_tree(dir)) end)

    it("writes one directory per batch, named prefix-<ms>.suffix, with part files and _SUCCESS", function()
        run({{"a", "b"}, {"c"}}, function(s) s:saveAsTextFiles(dir .. "/out", "txt") end)
        assert.are.same({"out-1000.txt", "out-2000.txt"}, list(dir))
        assert.are.same({"_SUCCESS", "part-00000"}, list(dir .. "/out-1000.txt"))
        assert.are.equal("a\nb\n", read(dir .. "/out-1000.txt/part-00000"))
        assert.are.equal("c\n", read(dir .. "/out-2000.txt/part-00000"))
        assert.are.equal("", read(dir .. "/out-1000.txt/_SUCCESS"))
    end)

    it("names the directory prefix-<ms> when there is no suffix", function()
        run({{1}}, function(s) s:saveAsTextFiles(dir .. "/plain") end)
        assert.are.same({"plain-1000"}, list(dir))
    end)

    it("writes one part file per partition and every record once", function()
        local input = {}
        for i = 1, 100 do input[i] = "rec" .. i end
        run({input}, function(s) s:repartition(3):saveAsTextFiles(dir .. "/parts") end)
        local names = list(dir .. "/parts-1000")
        assert.are.same({"_SUCCESS", "part-00000", "part-00001", "part-00002"}, names)
        local got = {}
        for i = 2, #names do
            for line in read(dir .. "/parts-1000/" .. names[i]):gmatch("([^\n]*)\n") do got[#got + 1] = line end
        end
        assert.are.same(batches.sorted(input), batches.sorted(got))
    end)

    it("writes records with tostring and pairs as (k,v)", function()
        run({{1, 2.5, true, "text"}}, function(s) s:saveAsTextFiles(dir .. "/values") end)
        assert.are.equal("1\n2.5\ntrue\ntext\n", read(dir .. "/values-1000/part-00000"))
        run({{"a b a"}}, function(s)
            s:flatMap(function(line)
                local words = {}
                for w in line:gmatch("%S+") do words[#words + 1] = w end
                return words
            end):mapToPair(function(w) return w, 1 end):reduceByKey(function(x, y) return x + y end)
                :saveAsTextFiles(dir .. "/counts")
        end)
        local lines = {}
        for _, part in ipairs(list(dir .. "/counts-1000")) do
            if part ~= "_SUCCESS" then
                for line in read(dir .. "/counts-1000/" .. part):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
            end
        end
        table.sort(lines)
        assert.are.same({"(a,2)", "(b,1)"}, lines)
    end)

    it("writes an empty batch as a directory with an empty part and _SUCCESS", function()
        run({{}}, function(s) s:saveAsTextFiles(dir .. "/empty") end)
        assert.are.same({"_SUCCESS", "part-00000"}, list(dir .. "/empty-1000"))
        assert.are.equal("", read(dir .. "/empty-1000/part-00000"))
    end)

    it("leaves no temporary directory behind", function()
        run({{"x"}, {"y"}, {"z"}}, function(s) s:saveAsTextFiles(dir .. "/clean", "out") end)
        assert.are.same({"clean-1000.out", "clean-2000.out", "clean-3000.out"}, list(dir))
    end)

    it("replaces a batch directory written before for the same time, whole", function()
        local input = {}
        for i = 1, 30 do input[i] = "old" .. i end
        run({input}, function(s) s:repartition(3):saveAsTextFiles(dir .. "/again") end)
        assert.are.equal(4, #list(dir .. "/again-1000"))
        -- A second run writes batch 1000 again, with one partition.
        run({{"new"}}, function(s) s:saveAsTextFiles(dir .. "/again") end)
        assert.are.same({"again-1000"}, list(dir))
        assert.are.same({"_SUCCESS", "part-00000"}, list(dir .. "/again-1000"))
        assert.are.equal("new\n", read(dir .. "/again-1000/part-00000"))
    end)

    it("creates missing parent directories of the prefix", function()
        run({{"deep"}}, function(s) s:saveAsTextFiles(dir .. "/a/b/c/out") end)
        assert.are.equal("deep\n", read(dir .. "/a/b/c/out-1000/part-00000"))
    end)

    it("raises at the call on a bad prefix or suffix", function()
        local ssc = manual()
        local s = ssc:queueStream({})
        raises(function() s:saveAsTextFiles("") end,
            "saveAsTextFiles: argument #1 (prefix) must be a non-empty string")
        raises(function() s:saveAsTextFiles(nil) end,
            "saveAsTextFiles: argument #1 (prefix) must be a non-empty string")
        raises(function() s:saveAsTextFiles(dir .. "/x", 7) end,
            "saveAsTextFiles: argument #2 (suffix) must be a string")
        raises(function() s:saveAsObjectFiles(42) end,
            "saveAsObjectFiles: argument #1 (prefix) must be a non-empty string")
        local err = raises(function() s:saveAsObjectFiles(dir .. "/x", {}) end,
            "saveAsObjectFiles: argument #2 (suffix) must be a string")
        assert.matches("sinks_spec%.lua:%d+:", err)
        ssc:stop()
    end)
end)

describe("stream:saveAsObjectFiles", function()
    local dir

    before_each(function() dir = tmpdir() end)
    after_each(function() assert(core.fs_remove_tree(dir)) end)

    it("writes batch directories that ssc:objectFile reads back as equal records", function()
        local records = {
            1, -2, 3.25, 2 ^ 53, 0.1, true, false, "plain", "",
            "bytes\0with\0NULs\255", {1, 2, {3, {4}}}, {name = "x", tags = {"a", "b"}, n = 7},
        }
        run({records, {"second"}}, function(s) s:saveAsObjectFiles(dir .. "/obj", "bin") end)
        assert.are.same({"obj-1000.bin", "obj-2000.bin"}, list(dir))
        assert.are.same({"_SUCCESS", "part-00000"}, list(dir .. "/obj-1000.bin"))
        local ssc = manual()
        local rdd = ssc:objectFile(dir .. "/obj-1000.bin")
        assert.are.same(records, rdd:collect())
        assert.are.equal(#records, rdd:count())
        assert.are.same({"second"}, ssc:objectFile(dir .. "/obj-2000.bin"):collect())
        ssc:stop()
    end)

    it("reads back a pair stream as pairs", function()
        run({{{"k1", {1, 2}}, {"k2", "v\0"}, {{"composite", 3}, 4}}}, function(s)
            s:mapToPair(function(kv) return kv[1], kv[2] end):saveAsObjectFiles(dir .. "/pairs")
        end)
        local ssc = manual()
        local rdd = ssc:objectFile(dir .. "/pairs-1000")
        assert.are.same({{"k1", {1, 2}}, {"k2", "v\0"}, {{"composite", 3}, 4}}, batches.plain(rdd:collect()))
        -- Read back, it is a pair RDD: functions get (k, v).
        local keys = rdd:map(function(k) return type(k) == "table" and k[1] or k end):collect()
        assert.are.same({"k1", "k2", "composite"}, keys)
        ssc:stop()
    end)

    it("reads back every partition of a repartitioned batch", function()
        local input = {}
        for i = 1, 500 do input[i] = {i = i, s = ("v"):rep(i % 7)} end
        run({input}, function(s) s:repartition(4):saveAsObjectFiles(dir .. "/many") end)
        assert.are.equal(5, #list(dir .. "/many-1000"))
        local ssc = manual()
        local got = ssc:objectFile(dir .. "/many-1000"):collect()
        ssc:stop()
        assert.are.same(batches.sorted(input), batches.sorted(got))
    end)

    it("fails the batch on a record the format cannot hold, naming the operator, the time and the record", function()
        local ssc = manual()
        ssc:queueStream({{"fine"}, {"ok", function() end}}):saveAsObjectFiles(dir .. "/bad")
        ssc:start()
        ssc:advance(1)
        local err = raises(function() ssc:advance(1) end, "saveAsObjectFiles")
        assert.matches("2000 ms", err, 1, true)
        assert.matches("function in record 2", err, 1, true)
        ssc:stop()
        -- The good batch is there; the failed one left nothing, not even a temporary directory.
        assert.are.same({"bad-1000"}, list(dir))
    end)

    it("keeps running later batches after a failed one", function()
        local ssc = manual()
        ssc:queueStream({{coroutine.create(function() end)}, {"later"}}):saveAsObjectFiles(dir .. "/go")
        ssc:start()
        raises(function() ssc:advance(1) end, "thread in record 1")
        ssc:advance(1)
        ssc:stop()
        assert.are.same({"go-2000"}, list(dir))
        local ssc2 = manual()
        assert.are.same({"later"}, ssc2:objectFile(dir .. "/go-2000"):collect())
        ssc2:stop()
    end)
end)

describe("ssc:objectFile", function()
    local dir

    before_each(function() dir = tmpdir() end)
    after_each(function() assert(core.fs_remove_tree(dir)) end)

    it("raises on a directory without _SUCCESS, naming the path", function()
        assert(core.fs_mkdirs(dir .. "/half-1000"))
        write(dir .. "/half-1000/part-00000", "")
        local ssc = manual()
        raises(function() ssc:objectFile(dir .. "/half-1000") end,
            "objectFile: " .. dir .. "/half-1000 is not a complete batch directory (no _SUCCESS)")
        ssc:stop()
    end)

    it("raises on a missing directory, naming the path", function()
        local ssc = manual()
        local err = raises(function() ssc:objectFile(dir .. "/nothing-here") end, "objectFile: ")
        assert.matches(dir .. "/nothing-here", err, 1, true)
        ssc:stop()
    end)

    it("raises at the caller's line on a part file it cannot open or read, naming the file", function()
        assert(core.fs_mkdirs(dir .. "/odd-1000/part-00001"))
        write(dir .. "/odd-1000/_SUCCESS", "")
        assert(os.execute("ln -s missing " .. dir .. "/odd-1000/part-00000") == 0)
        local ssc = manual()
        local line = debug.getinfo(1, "l").currentline + 1
        local err = raises(function() ssc:objectFile(dir .. "/odd-1000") end,
            "objectFile: " .. dir .. "/odd-1000/part-00000: No such file or directory")
        assert.matches("sinks_spec.lua:" .. line .. ": ", err, 1, true)
        os.remove(dir .. "/odd-1000/part-00000")
        raises(function() ssc:objectFile(dir .. "/odd-1000") end,
            "objectFile: " .. dir .. "/odd-1000/part-00001: Is a directory")
        ssc:stop()
    end)

    it("raises on a part file that is not in the record format, naming the file", function()
        run({{"x"}}, function(s) s:saveAsObjectFiles(dir .. "/corrupt") end)
        write(dir .. "/corrupt-1000/part-00000", "this is not a frame of records")
        local ssc = manual()
        raises(function() ssc:objectFile(dir .. "/corrupt-1000") end,
            "objectFile: " .. dir .. "/corrupt-1000/part-00000: ")
        ssc:stop()
    end)
end)

describe("saveAsTextFiles when the directory cannot be written", function()
    it("fails the batch with an error naming the operator, the path and the batch time", function()
        local blocker = os.tmpname() -- a regular file where a directory should be
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
        ssc:queueStream({{"x"}}):saveAsTextFiles(blocker .. "/out/lines")
        ssc:start()
        local ok, err = pcall(ssc.advance, ssc, 1)
        os.remove(blocker)
        assert.is_false(ok)
        assert.matches("saveAsTextFiles", err)
        assert.matches(blocker, err, 1, true)
        assert.matches("1000 ms", err)
        assert.not_matches("nil:", err)
    end)
end)

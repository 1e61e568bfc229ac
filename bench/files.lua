--[[ files: what textFileStream costs a batch in a directory of old files,
and what reading a large file costs.

    luajit bench/files.lua [--quick] [--old N] [--batches B] [--large MiB]

Run from the project root with dstream on the paths:

    LUA_PATH="lua/?.lua;lua/?/init.lua;bench/?.lua;;" LUA_CPATH="build/?.so;;" \
        luajit bench/files.lua

THE SCAN WORKLOAD (the issue's): a directory holding N = 100 000 old files
(present before start, so never read) gets one new one-line file per batch.
A manual-clock context with textFileStream(dir):count() runs B = 30 timed
batches (advance(1)), after 5 warm-up batches. Its baseline, measured in
the same run on the same directory: the plain directory scan every batch
did before, core.fs_list(dir) (readdir, sort, every name a Lua string), the
median of B scans. Lines:
  variant "plain_scan"          median_ms of core.fs_list over the directory;
  variant "textFileStream"      median_ms, min_ms, max_ms of a whole batch
                                (scan, stat of the files in the remember
                                window, reads, count), records (must be B);
                                ratio_to_plain_scan.

THE LARGE-FILE WORKLOAD (--large MiB, default 256; 0 skips it): one file of
lines of 100 bytes, read by one batch in a child process, against the plain
LuaJIT loop `for line in io.lines(path) do t[#t + 1] = line end` in another
child. Each prints seconds and peak_rss_mb (VmHWM) with the file's lines
all held in one Lua array, as a batch holds them.
]]

local BENCH_DIR = arg[0]:match("^(.-)[^/]*$")
package.path = BENCH_DIR .. "?.lua;" .. package.path

local common = require("wordcount_common")
local json = require("json")
local stats = require("stats")
local median, ms, interpreter = stats.median, stats.ms, stats.interpreter
local now = common.now
local sformat = string.format

local function usage(msg)
    io.stderr:write("files: ", msg, "\n",
        "usage: luajit bench/files.lua [--quick] [--old N] [--batches B] [--large MiB]\n")
    os.exit(1)
end

local function parse_args(argv)
    local o = {old = 100000, batches = 30, large = 256}
    local names = {["--old"] = "old", ["--batches"] = "batches", ["--large"] = "large",
        ["--child"] = "child"}
    local i = 1
    while i <= #argv do
        local a = argv[i]
        if a == "--quick" then
            o.old, o.batches, o.large = 10000, 10, 16
        elseif a == "--child" and argv[i + 1] and argv[i + 2] then
            o.child, o.path = argv[i + 1], argv[i + 2]
            i = i + 2
        elseif names[a] and tonumber(argv[i + 1]) then
            o[names[a]] = tonumber(argv[i + 1])
            i = i + 1
        else
            usage("unknown or incomplete argument " .. a)
        end
        i = i + 1
    end
    return o
end

local opts = parse_args(arg)

local function peak_rss_mb()
    for line in io.lines("/proc/self/status") do
        local kb = line:match("^VmHWM:%s*(%d+)")
        if kb then return math.floor(tonumber(kb) / 1024 + 0.5) end
    end
end

-- A child: read opts.path whole the way variant opts.child does.
if opts.child then
    local t0, n = now(), 0
    if opts.child == "plain_io_lines" then
        local held = {}
        for line in io.lines(opts.path) do n = n + 1; held[n] = line end
        assert(#held == n)
    else
        local dstream = require("dstream")
        local dir = opts.path:match("^(.*)/[^/]*$")
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
        ssc:textFileStream(dir, {newFilesOnly = false}):foreachRDD(function(rdd)
            n = n + #rdd:collect()
        end)
        ssc:start()
        ssc:advance(2)
        ssc:stop()
    end
    print(json.encode({bench = "files", variant = opts.child, lines = n, seconds = ms(now() - t0) / 1000,
        peak_rss_mb = peak_rss_mb()}, {"bench", "variant", "lines", "seconds", "peak_rss_mb"}))
    os.exit(0)
end

local dstream = require("dstream")
local core = require("dstream.core")

local function tmpdir()
    local path = os.tmpname()
    os.remove(path)
    assert(core.fs_mkdirs(path))
    return path
end

local function touch(path, data)
    local f = assert(io.open(path, "wb"))
    f:write(data)
    f:close()
end

local function scan_bench()
    local dir = tmpdir()
    for i = 1, opts.old do touch(sformat("%s/old-%06d.log", dir, i), "old\n") end
    local plain = {}
    for i = 1, opts.batches do
        local t0 = now()
        assert(core.fs_list(dir))
        plain[i] = now() - t0
    end
    local base = median(plain)
    print(json.encode({bench = "files", variant = "plain_scan", old_files = opts.old,
        median_ms = ms(base)}, {"bench", "variant", "old_files"}))

    local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
    local records = 0
    ssc:textFileStream(dir):count():foreachRDD(function(rdd) records = records + rdd:first() end)
    ssc:start()
    local k = 0
    local function batch()
        k = k + 1
        touch(sformat("%s/new-%06d.log", dir, k), "new " .. k .. "\n")
        local t0 = now()
        ssc:advance(1)
        return now() - t0
    end
    for _ = 1, 5 do batch() end
    local before, times = records, {}
    for i = 1, opts.batches do times[i] = batch() end
    ssc:stop()
    assert(core.fs_remove_tree(dir))
    local med = median(times)
    table.sort(times)
    print(json.encode({bench = "files", variant = "textFileStream", old_files = opts.old,
        batches = opts.batches, records = records - before, median_ms = ms(med), min_ms = ms(times[1]),
        max_ms = ms(times[#times]), ratio_to_plain_scan = stats.r2(med / base)},
        {"bench", "variant", "old_files", "batches", "records", "median_ms"}))
end

local function large_bench()
    local dir = tmpdir()
    local path = dir .. "/large.log"
    local pad = ("x"):rep(89)
    local f = assert(io.open(path, "wb"))
    local n = 0
    for _ = 1, opts.large do -- distinct lines: LuaJIT keeps one copy of equal strings
        local part = {}
        for i = 1, 10486 do part[i] = sformat("%09d %s\n", n + i, pad) end -- ~1 MiB
        n = n + 10486
        f:write(table.concat(part))
    end
    f:close()
    for _, variant in ipairs({"plain_io_lines", "textFileStream_large_file"}) do
        local cmd = sformat("%s %s --child %s %s", interpreter(), arg[0], variant, path)
        local p = assert(io.popen(cmd))
        local out = p:read("*a")
        p:close()
        local r = json.decode(out)
        r.file_mb = opts.large
        print(json.encode(r, {"bench", "variant", "file_mb", "lines", "seconds", "peak_rss_mb"}))
    end
    assert(core.fs_remove_tree(dir))
end

scan_bench()
if opts.large > 0 then large_bench() end

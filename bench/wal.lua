--[[ wal: what the write-ahead log costs a receiver.

    luajit bench/wal.lua [--quick] [--lines N] [--appends A] [--repeat R] [--dir DIR]

Run from the project root with dstream on the paths:

    LUA_PATH="lua/?.lua;lua/?/init.lua;bench/?.lua;;" LUA_CPATH="build/?.so;;" \
        luajit bench/wal.lua

THE APPEND WORKLOAD: A = 200 appends of one block each to a WAL in DIR (a
fresh directory under --dir, default the system's temporary directory: the
disk matters, fdatasync is the cost), for blocks of 1, 100 and 1000 records
of 60 bytes (core.encode'd once, outside the timing). Each append is timed
alone; the lines give median_ms, p90_ms and max_ms per append, appends_per_s
and MB_per_s. Its baseline in the same run: the same A frames written to a
plain file with f:write + f:flush (no fsync), median_ms per write: the part
of an append that is not making it durable.

THE SOCKET WORKLOAD: N = 300 000 lines of 60 bytes sent by
examples/wordgen.lua --file over 127.0.0.1 to core.socket_new with
blockInterval 200 ms (dstream's default), the loop run until every line was
taken; R = 3 runs of each variant, interleaved, the median reported. Variant
"socket" is the baseline, "socket_wal" the same with opts.wal (each sealed
block appended and fdatasync'ed before it counts); each line gives seconds,
lines_per_s, MB_per_s and the number of blocks (= fdatasyncs), and
socket_wal its ratio_to_socket. The file system of DIR is named (fs) since
tmpfs would make fdatasync free.
]]

local BENCH_DIR = arg[0]:match("^(.-)[^/]*$")
package.path = BENCH_DIR .. "?.lua;" .. package.path

local core = require("dstream.core")
local common = require("wordcount_common")
local json = require("json")
local stats = require("stats")
local median, ms, r2, interpreter = stats.median, stats.ms, stats.r2, stats.interpreter
local now = common.now

local function usage(msg)
    io.stderr:write("wal: ", msg, "\n", "usage: luajit bench/wal.lua [--quick] [--lines N] "
        .. "[--appends A] [--repeat R] [--dir DIR]\n")
    os.exit(1)
end

local function parse_args(argv)
    local o = {lines = 300000, appends = 200, ["repeat"] = 3, dir = os.getenv("TMPDIR") or "/tmp"}
    local i = 1
    while i <= #argv do
        local a = argv[i]
        local key = a:match("^%-%-(%a+)$")
        if a == "--quick" then
            o.lines, o.appends, o["repeat"] = 30000, 30, 1
        elseif key == "dir" and argv[i + 1] then
            o.dir = argv[i + 1]
            i = i + 1
        elseif key and o[key] and tonumber(argv[i + 1]) then
            o[key] = tonumber(argv[i + 1])
            i = i + 1
        else
            usage("bad argument " .. a)
        end
        i = i + 1
    end
    return o
end

local function emit(record)
    io.write(json.encode(record, {"bench", "variant"}), "\n")
    io.flush()
end

local function fresh_dir(base)
    local path = base .. "/dstream-bench-wal-" .. os.time() .. "-" .. math.random(1e9)
    assert(core.fs_mkdirs(path))
    return path
end

local function fs_type(dir)
    local p = io.popen("stat -f -c %T '" .. dir .. "' 2>/dev/null")
    local t = p:read("*l")
    p:close()
    return t or "unknown"
end

local RECORD = ("x"):rep(59)

local function append_workload(o, base)
    for _, per_block in ipairs({1, 100, 1000}) do
        local recs = {}
        for i = 1, per_block do recs[i] = RECORD .. (i % 10) end
        local frame = core.encode(recs, per_block)
        local dir = fresh_dir(base)
        local wal = assert(core.wal_open(dir .. "/wal"))
        local times = {}
        local t0 = now()
        for i = 1, o.appends do
            local t = now()
            assert(wal:append(1, frame))
            times[i] = now() - t
        end
        local total = now() - t0
        wal:close()
        -- The baseline: the same frames written, not made durable.
        local f = assert(io.open(dir .. "/plain", "wb"))
        local plain = {}
        for i = 1, o.appends do
            local t = now()
            f:write(frame)
            f:flush()
            plain[i] = now() - t
        end
        f:close()
        table.sort(times)
        emit{bench = "wal", variant = "append", records_per_block = per_block,
            block_bytes = #frame, appends = o.appends, median_ms = ms(median(times)),
            p90_ms = ms(times[math.ceil(#times * 0.9)]), max_ms = ms(times[#times]),
            appends_per_s = r2(o.appends / total),
            MB_per_s = r2(o.appends * #frame / total / 1e6),
            plain_write_median_ms = ms(median(plain)), fs = fs_type(dir)}
        assert(core.fs_remove_tree(dir))
    end
end

-- One socket run: seconds, blocks; wal_dir nil for the baseline.
local function socket_run(o, file, wal_dir)
    local server = io.popen(interpreter() .. " examples/wordgen.lua --port 0 --file " .. file)
    local port = server:read("*l"):match("listening on [%d.]+:(%d+)")
    local e = assert(core.engine_new{batch = 1000, manual = false})
    local wal = wal_dir and assert(core.wal_open(wal_dir))
    local sock = core.socket_new(e, "127.0.0.1", tonumber(port),
        {blockInterval = 200, wal = wal, walStream = wal and 1 or nil})
    local got, blocks = 0, 0
    local t0 = now()
    assert(sock:start())
    while got < o.lines do
        e:run(20)
        local _, n, ends = sock:take()
        got = got + n
        if n > 0 then blocks = blocks + #ends end
    end
    local seconds = now() - t0
    sock:close()
    while not sock:closed() do e:run(10) end
    assert(e:close())
    server:close()
    if wal then wal:close() end
    return seconds, blocks
end

local function socket_workload(o, base)
    local dir = fresh_dir(base)
    local file = dir .. "/lines.txt"
    local f = assert(io.open(file, "wb"))
    for i = 1, o.lines do f:write(RECORD:sub(1, 50), ("%09d"):format(i), "\n") end
    f:close()
    local bytes = o.lines * 60
    local runs = {socket = {}, socket_wal = {}}
    local blocks = {}
    for r = 1, o["repeat"] do
        local s, b = socket_run(o, file, nil)
        runs.socket[r], blocks.socket = s, b
        s, b = socket_run(o, file, dir .. "/wal" .. r)
        runs.socket_wal[r], blocks.socket_wal = s, b
    end
    local base_s = median(runs.socket)
    for _, variant in ipairs({"socket", "socket_wal"}) do
        local s = median(runs[variant])
        emit{bench = "wal", variant = variant, lines = o.lines, runs = o["repeat"],
            seconds = r2(s * 1000) / 1000, lines_per_s = math.floor(o.lines / s),
            MB_per_s = r2(bytes / s / 1e6), blocks = blocks[variant],
            ratio_to_socket = variant == "socket_wal" and r2(s / base_s) or nil,
            fs = fs_type(dir)}
    end
    assert(core.fs_remove_tree(dir))
end

local o = parse_args(arg)
math.randomseed(os.time())
append_workload(o, o.dir)
socket_workload(o, o.dir)

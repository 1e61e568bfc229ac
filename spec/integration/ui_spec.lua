-- The status page as a person sees it: a running pipeline with `ui = 0`,
-- read over real TCP by clients in other processes (bash's /dev/tcp for raw
-- requests, promtool for /metrics, headless Chromium for the page) while
-- the pipeline keeps running. Each client runs in the background and the
-- spec pumps the context until it is done: the server lives on the engine's
-- loop, so a client waited for without pumping would never be answered.
local dstream = require "dstream"
local json = require "dkjson"
local wait = require "spec.helpers.wait"
local files = require "spec.helpers.files"
local line_server = require "spec.helpers.line_server"
local prometheus = require "spec.helpers.prometheus"

local function have(cmd)
    return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") == 0
end

local read, write = files.read, files.write

-- Run a shell command in the background (bounded by `timeout`), pumping ssc
-- until it ends; returns its exit status. The sanitizer runtimes the ASan
-- run preloads into LuaJIT are not given to the clients (Chromium, promtool).
local function run_pumping(ssc, dir, command, seconds)
    local rc = dir .. "/rc"
    os.remove(rc)
    os.execute(string.format("(env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS timeout %d sh -c %q; "
        .. "echo $? > %s.tmp; mv %s.tmp %s) </dev/null >/dev/null 2>&1 &",
        seconds, command, rc, rc, rc))
    assert.is_true(wait.until_done(ssc, function() return read(rc) ~= nil end, seconds + 10),
        "the background command never ended: " .. command)
    return tonumber(read(rc))
end

-- Send raw request bytes to the server; the answer's status, headers, body.
local function request(ssc, dir, port, raw)
    write(dir .. "/req", raw)
    os.remove(dir .. "/resp")
    local cmd = string.format("exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d; cat %s/req >&3; cat <&3 > %s/resp'",
        port, dir, dir)
    run_pumping(ssc, dir, cmd, 30)
    local resp = read(dir .. "/resp") or ""
    local head, body = resp:match("^(.-)\r\n\r\n(.*)$")
    assert.is_truthy(head, "no HTTP answer: " .. resp)
    local status = tonumber(head:match("^HTTP/1%.1 (%d+)"))
    local headers = {}
    for k, v in head:gmatch("\r\n([^:]+): ([^\r]*)") do headers[k:lower()] = v end
    return status, headers, body
end

local function get(ssc, dir, port, path)
    return request(ssc, dir, port, "GET " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
end

local function words(line)
    local t = {}
    for w in line:gmatch("%S+") do t[#t + 1] = w end
    return t
end

describe("the status server", function()
    local dir, server, ssc, port, completed, errors, lines

    before_each(function()
        dir = files.tmpdir()
        lines = {}
        for i = 1, 200 do lines[i] = "w" .. (i % 17) .. " x" .. (i % 5) end
        -- one connection, then the server is gone: the receiver reports the
        -- closed connection and the refused reconnects
        server = line_server.start{lines = lines, mode = "close", seconds = 30}
        ssc = dstream.StreamingContext{batchInterval = 0.1, ui = 0, name = "ui spec"}
        completed, errors = {}, {}
        ssc:addStreamingListener{
            onBatchCompleted = function(info) completed[#completed + 1] = info end,
            onReceiverError = function(e) errors[#errors + 1] = e end,
        }
        ssc:socketTextStream(server.host, server.port):flatMap(words):mapToPair(function(w) return w, 1 end)
            :updateStateByKey(function(vs, old) return (old or 0) + #vs end):name("word counts")
            :foreachRDD(function() end)
        ssc:start()
        port = tonumber(ssc:uiUrl():match("^http://127%.0%.0%.1:(%d+)/$"))
        local records = 0
        assert.is_true(wait.until_done(ssc, function()
            records = 0
            for _, b in ipairs(completed) do records = records + b.numRecords end
            return records == #lines and #errors >= 1 and #completed >= 5
        end, 20), "the pipeline never took the lines: " .. records)
    end)

    after_each(function()
        if ssc then ssc:stop() end
        if server then server:close() end
        os.execute("rm -rf " .. dir)
    end)

    it("serves /metrics that promtool and a strict parser accept, with the pipeline's numbers", function()
        local status, headers, body = get(ssc, dir, port, "/metrics")
        assert.equals(200, status)
        assert.equals("text/plain; version=0.0.4; charset=utf-8", headers["content-type"])
        local m = prometheus.parse(body)
        local batches = prometheus.value(m, "dstream_batches_completed_total")
        assert.is_true(batches >= 5)
        local src = string.format("socketTextStream(%s:%d)", server.host, server.port)
        assert.equals(#lines, prometheus.value(m, "dstream_records_total", {source = src}))
        assert.is_true(prometheus.value(m, "dstream_receiver_errors_total") >= 1)
        assert.equals(17 + 5, prometheus.value(m, "dstream_state_keys", {stream = "word counts"}))
        for _, h in ipairs({"scheduling_delay", "processing", "total_delay"}) do
            assert.equals(batches, prometheus.value(m, "dstream_batch_" .. h .. "_seconds_count"))
        end
        if not have("promtool") then
            pending("promtool is not installed (Debian: prometheus): /metrics was checked by the strict parser only")
            return
        end
        write(dir .. "/metrics.txt", body)
        local p = io.popen("env -u LD_PRELOAD promtool check metrics < " .. dir .. "/metrics.txt 2>&1; echo rc=$?")
        local out = p:read("*a")
        p:close()
        assert.matches("rc=0\n$", out)
        assert.is_nil(out:match("%S.*rc="), "promtool complained: " .. out)
    end)

    it("serves /api/batches as JSON: the last batches' info, newest last", function()
        local status, headers, body = get(ssc, dir, port, "/api/batches")
        assert.equals(200, status)
        assert.equals("application/json", headers["content-type"])
        local batches = assert(json.decode(body))
        assert.is_true(#batches >= 5)
        local newest = batches[#batches]
        -- the server holds what was rendered after the last batch completed before the request
        local seen
        for _, b in ipairs(completed) do
            if b.batchTime == newest.batchTime then seen = b end
        end
        assert.is_truthy(seen, "the newest batch served was never completed")
        for _, f in ipairs({"batchTime", "numRecords", "submissionTime", "processingStartTime",
            "processingEndTime", "schedulingDelay", "processingDelay", "totalDelay"}) do
            assert.equals(seen[f], newest[f], f)
        end
        for i = 2, #batches do assert.is_true(batches[i].batchTime > batches[i - 1].batchTime) end
    end)

    it("answers only GET, and bad requests with errors, while the pipeline carries on", function()
        local status, headers, body = request(ssc, dir, port, "POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
        assert.equals(405, status)
        assert.equals("GET", headers.allow)
        assert.equals("405 Method Not Allowed\n", body)
        status = request(ssc, dir, port, "GET /metrics HTTP/1.1\r\nHo st\x01: \r\n\r\n")
        assert.equals(400, status)
        status = request(ssc, dir, port, "\x16\x03\x01 not HTTP\r\n\r\n")
        assert.equals(400, status)
        status = request(ssc, dir, port, "GET / HTTP/1.1\r\nX-Big: " .. string.rep("x", 100000) .. "\r\n\r\n")
        assert.equals(431, status)
        status = get(ssc, dir, port, "/nothing")
        assert.equals(404, status)
        -- the pipeline kept running its batches through all of that
        local before = #completed
        assert.is_true(wait.until_done(ssc, function() return #completed >= before + 3 end, 20))
        status = get(ssc, dir, port, "/")
        assert.equals(200, status)
        local failed = 0
        for _, b in ipairs(completed) do
            if b.failed then failed = failed + 1 end
        end
        assert.equals(0, failed)
    end)

    it("renders a page whose charts plot the live batches in headless Chromium", function()
        assert.is_true(have("chromium"), "chromium is not installed (Debian: chromium)")
        local status, headers, page = get(ssc, dir, port, "/")
        assert.equals(200, status)
        assert.equals("text/html; charset=utf-8", headers["content-type"])
        assert.matches('<script src="/chart.js">', page, 1, true)
        local _, jsheaders, chart = get(ssc, dir, port, "/chart.js")
        assert.equals("text/javascript; charset=utf-8", jsheaders["content-type"])
        assert.matches("Chart.js v", chart, 1, true)
        local before = completed[#completed].batchTime
        local rc = run_pumping(ssc, dir, string.format("chromium --headless --no-sandbox --disable-gpu "
            .. "--dump-dom --virtual-time-budget=3000 %s > %s/dom.html 2> %s/chromium.err",
            ssc:uiUrl(), dir, dir), 90)
        local dom = read(dir .. "/dom.html") or ""
        assert.equals(0, rc, "chromium failed: " .. (read(dir .. "/chromium.err") or ""))
        local plotted = tonumber(dom:match('id="plotted">(%d+)<'))
        local newest = tonumber(dom:match('id="newest">(%d+)<'))
        assert.is_truthy(plotted, "the page never drew: " .. dom:sub(1, 2000))
        assert.is_true(plotted >= 4 * 5, "too few points plotted: " .. plotted) -- 4 timelines, >= 5 batches each
        assert.is_true(newest >= before, "the page did not show the live batches")
        assert.matches("hidden", dom:match('<div id="nochart"[^>]*>'))
        -- the tables: the receiver, its errors, the state, the stages
        assert.matches("socketTextStream(" .. server.host .. ":" .. server.port .. ")", dom, 1, true)
        assert.matches("word counts</td><td>22</td>", dom, 1, true)
        assert.matches("ECONNREFUSED", dom, 1, true)
        assert.matches("stages after fusion:", dom, 1, true)
        assert.matches("StreamingContext(ui spec: batch 100 ms, system clock, 4 streams, 1 output, active)", dom, 1, true)
    end)
end)

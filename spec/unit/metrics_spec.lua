-- The status page's data under the manual clock: the `ui` option, what
-- /metrics and /api/batches hold after each batch (rendered by ui.lua and
-- handed to the engine's server), and how a bad address fails.
local dstream = require "dstream"
local ui = require "dstream.ui"
local prometheus = require "spec.helpers.prometheus"

local function words(line)
    local t = {}
    for w in line:gmatch("%S+") do t[#t + 1] = w end
    return t
end

-- A pipeline counting words per key in state named `name`.
local function pipeline(name, batches)
    local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual", ui = 0, name = "metrics"}
    local counts = ssc:queueStream(batches):flatMap(words):mapToPair(function(w) return w, 1 end)
        :updateStateByKey(function(vs, old) return (old or 0) + #vs end)
    counts:name(name)
    counts:foreachRDD(function() end)
    return ssc
end

describe("the ui option", function()
    it("takes a port or host:port and says what is wrong otherwise", function()
        for _, bad in ipairs({-1, 65536, 1.5, "nohost", "host:", ":80", "a:b:c", true, {}}) do
            local ok, err = pcall(dstream.StreamingContext, {batchInterval = 1, ui = bad})
            assert.is_false(ok)
            assert.matches("ui must be a port from 0 to 65535 %(on 127.0.0.1%) or \"host:port\"", err)
        end
        assert.same({"127.0.0.1", 0}, {ui.parse(0)})
        assert.same({"0.0.0.0", 4040}, {ui.parse("0.0.0.0:4040")})
        assert.same({"::1", 8080}, {ui.parse("[::1]:8080")})
    end)

    it("gives uiUrl() only after start(), with the real port", function()
        local plain = dstream.StreamingContext{batchInterval = 1, clock = "manual"}
        assert.is_nil(plain:uiUrl())
        local ssc = pipeline("counts", {{"a"}})
        assert.is_nil(ssc:uiUrl())
        ssc:start()
        local port = tonumber(ssc:uiUrl():match("^http://127%.0%.0%.1:(%d+)/$"))
        assert.is_true(port > 0)
        ssc:stop()
    end)

    it("fails start() with the address when the port is taken, and leaves the context stopped", function()
        local first = pipeline("counts", {{"a"}})
        first:start()
        local port = first:uiUrl():match(":(%d+)/$")
        local second = dstream.StreamingContext{batchInterval = 1, clock = "manual", ui = "127.0.0.1:" .. port}
        second:queueStream({{"a"}}):foreachRDD(function() end)
        local ok, err = pcall(second.start, second)
        assert.is_false(ok)
        assert.matches("start: the status page %(ui = 127.0.0.1:" .. port .. "%): ENET", err)
        assert.matches("address already in use", err)
        assert.matches("stopped", tostring(second))
        first:stop()
    end)

    it("refuses a host that is not an address", function()
        local ssc = dstream.StreamingContext{batchInterval = 1, clock = "manual", ui = "example.org:0"}
        ssc:queueStream({{"a"}}):foreachRDD(function() end)
        local ok, err = pcall(ssc.start, ssc)
        assert.is_false(ok)
        assert.matches("example.org is not a numeric IPv4 or IPv6 address, nor localhost", err, 1, true)
    end)
end)

describe("/metrics", function()
    it("holds every name API.md lists, in the strict text format, counting each batch", function()
        local ssc = pipeline("counts", {{"a b", "b c"}, {"c d e"}, {}})
        ssc:start()
        local text = ui.metrics_text(ssc, ssc._ui.metrics)
        local m = prometheus.parse(text) -- before any batch: zeros, every family there
        assert.equals(0, prometheus.value(m, "dstream_batches_completed_total"))
        assert.equals(0, prometheus.value(m, "dstream_records_total", {source = "queueStream"}))
        ssc:advance(3)
        m = prometheus.parse(ui.metrics_text(ssc, ssc._ui.metrics))
        for name, kind in pairs({dstream_batches_completed_total = "counter", dstream_records_total = "counter",
            dstream_receiver_errors_total = "counter", dstream_batch_scheduling_delay_seconds = "histogram",
            dstream_batch_processing_seconds = "histogram", dstream_batch_total_delay_seconds = "histogram",
            dstream_state_keys = "gauge"}) do
            assert.equals(kind, m[name] and m[name].type, name)
            assert.truthy(m[name].help ~= "", name)
        end
        assert.equals(3, prometheus.value(m, "dstream_batches_completed_total"))
        assert.equals(3, prometheus.value(m, "dstream_records_total", {source = "queueStream"})) -- lines
        assert.equals(0, prometheus.value(m, "dstream_receiver_errors_total"))
        assert.equals(5, prometheus.value(m, "dstream_state_keys", {stream = "counts"}))
        for _, h in ipairs({"scheduling_delay", "processing", "total_delay"}) do
            local name = "dstream_batch_" .. h .. "_seconds"
            assert.equals(3, prometheus.value(m, name .. "_count"))
            assert.equals(3, prometheus.value(m, name .. "_bucket", {le = "+Inf"}))
        end
        ssc:stop()
    end)

    it("counts receiver errors and escapes names in labels", function()
        local ssc = pipeline('odd "name" \\ here', {{"a"}})
        local heard = {}
        ssc:addStreamingListener{onReceiverError = function(e) heard[#heard + 1] = e end}
        ssc:start()
        ssc:_receiver_error("socketTextStream(x:1)", "ECONNREFUSED: connection refused by x:1")
        ssc:advance(1)
        local text = ui.metrics_text(ssc, ssc._ui.metrics)
        assert.matches('dstream_state_keys{stream="odd \\"name\\" \\\\ here"} 1', text, 1, true)
        local m = prometheus.parse(text)
        assert.equals(1, prometheus.value(m, "dstream_state_keys", {stream = 'odd "name" \\ here'}))
        assert.equals(1, prometheus.value(m, "dstream_receiver_errors_total"))
        assert.equals(1, #heard)
        assert.same({source = "socketTextStream(x:1)", message = "ECONNREFUSED: connection refused by x:1",
            time = heard[1].time}, ssc._ui.errors[1])
        ssc:stop()
    end)
end)

describe("the strict metrics parser of the specs", function()
    it("rejects what promtool would", function()
        local bad = {
            "x 1", -- no newline
            "x 1\n", -- no TYPE
            "# TYPE x counter\nx_total 1\n", -- no HELP
            "# HELP x_total h\n# TYPE x_total counter\nx_total -1\n",
            "# HELP x h\n# TYPE x counter\nx 1\n", -- counter without _total
            "# HELP x h\n# TYPE x gauge\nx{a=\"b} 1\n",
            "# HELP x h\n# TYPE x gauge\nx 1\nx 2\n",
            "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
            "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        }
        for _, text in ipairs(bad) do
            assert.is_false(pcall(prometheus.parse, text), text)
        end
    end)
end)

describe("/api/batches", function()
    it("is a JSON array of the last batches' info, newest last", function()
        local batches = {}
        for i = 1, ui.KEEP_BATCHES + 5 do batches[i] = {"w" .. i} end
        local ssc = pipeline("counts", batches)
        local seen = {}
        ssc:addStreamingListener{onBatchCompleted = function(info) seen[#seen + 1] = info end}
        ssc:start()
        assert.equals("[]", ui.json(setmetatable(ssc._ui.batches, ui.ARRAY)))
        ssc:advance(ui.KEEP_BATCHES + 5)
        local kept = ssc._ui.batches
        assert.equals(ui.KEEP_BATCHES, #kept)
        assert.equals(seen[#seen].batchTime, kept[#kept].batchTime)
        assert.equals(seen[6].batchTime, kept[1].batchTime)
        for _, f in ipairs({"batchTime", "numRecords", "submissionTime", "processingStartTime",
            "processingEndTime", "schedulingDelay", "processingDelay", "totalDelay"}) do
            assert.equals(seen[#seen][f], kept[#kept][f], f)
        end
        assert.same({queueStream = 1}, kept[#kept].records)
        local text = ui.json(kept)
        assert.matches('^%[{"batchTime":%d+,', text)
        assert.matches('"records":{"queueStream":1}', text, 1, true)
        ssc:stop()
    end)

    it("writes JSON that escapes what it must", function()
        assert.equals('{"a":"q\\"\\\\\\n\\u0001","b":[1,2.5,null],"c":true}',
            ui.json{a = 'q"\\\n\1', b = {1, 2.5, 0 / 0}, c = true})
    end)
end)

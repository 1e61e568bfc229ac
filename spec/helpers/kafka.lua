--[[ kafka: a real Kafka protocol endpoint for the specs, and clients for it.

There is no Kafka broker in Debian: build/ds_kafka_broker (core/test/
kafka_broker.c) runs librdkafka's mock cluster, which speaks the Kafka
protocol over TCP, as a process of its own. It writes its bootstrap address
to a file once listening; SIGUSR1 takes its brokers down, SIGUSR2 up again.

    local K = require("spec.helpers.kafka")
    local broker = K.start_broker{"words:3"}         -- broker.brokers: "127.0.0.1:port"; its topics
    local topic = K.topic(broker, "words", 3)        -- "words", checked to have 3 partitions
    K.produce(broker.brokers, topic, {{"k", "v"}, {"k2", "v2", 1}}) -- {key, value[, partition]}; flushed
    local msgs = K.read(broker.brokers, topic)       -- every message: {partition, offset, key, value}
    broker:down() broker:up()                        -- SIGUSR1 / SIGUSR2
    broker:stop()                                    -- SIGKILL, wait

Producing and reading go through dstream.core's own clients
(core.kafka_producer, the consumer's exact read), so they check the glue too.
]]
local ffi = require("ffi")
local core = require("dstream.core")
local crash = require("spec.helpers.crash")
local files = require("spec.helpers.files")

local K = {}

pcall(ffi.cdef, "int kill(int pid, int sig);")
local SIGUSR1, SIGUSR2, SIGKILL = 10, 12, 9

K.BROKER = crash.ROOT .. "build/ds_kafka_broker"

-- Settings that keep the specs' waits short against the mock cluster.
K.CLIENT_OPTIONS = {["socket.timeout.ms"] = "5000", ["reconnect.backoff.max.ms"] = "500"}

--- Whether the specs can run: the broker program and the glue exist.
function K.available()
    if core.kafka_consumer == nil then return nil, "dstream.core has no Kafka (core.kafka_consumer)" end
    if not files.read(K.BROKER) then return nil, K.BROKER .. " is not built" end
    return true
end

local Broker = {}
Broker.__index = Broker

local function alive(pid)
    local stat = files.read("/proc/" .. pid .. "/stat")
    local state = stat and stat:match("^%d+ %b() (%a)")
    return state ~= nil and state ~= "Z" and state ~= "X"
end

--- Start a broker process; topics: array of "name:partitions" made at start.
function K.start_broker(topics)
    assert(K.available())
    local dir = files.tmpdir()
    local out = dir .. "/bootstrap"
    local args = {}
    for _, t in ipairs(topics or {}) do args[#args + 1] = "--topic " .. t end
    local p = assert(io.popen(string.format("%s --brokers 1 --out %s %s >%s/log 2>&1 & echo $!", K.BROKER, out,
        table.concat(args, " "), dir)))
    local pid = tonumber(p:read("*a"))
    p:close()
    assert(pid, "the broker did not start")
    local self = setmetatable({pid = pid, dir = dir}, Broker)
    local deadline = crash.now() + 20
    while crash.now() < deadline do
        local line = files.read(out)
        if line and line:match("\n") then
            self.brokers = line:match("^%s*(.-)%s*$")
            return self
        end
        if not alive(pid) then break end
        crash.sleep(0.02)
    end
    local log = files.read(dir .. "/log") or ""
    self:stop()
    error("the test broker never wrote its address: " .. log, 2)
end

--- Take every broker down (SIGUSR1).
function Broker:down() ffi.C.kill(self.pid, SIGUSR1) end

--- Bring them up again (SIGUSR2).
function Broker:up() ffi.C.kill(self.pid, SIGUSR2) end

--- Kill the broker and remove its directory.
function Broker:stop()
    if self.pid and alive(self.pid) then
        ffi.C.kill(self.pid, SIGKILL)
        local deadline = crash.now() + 10
        while alive(self.pid) and crash.now() < deadline do crash.sleep(0.01) end
    end
    os.execute("rm -rf '" .. self.dir .. "'")
end

--- The topic named `name` of the broker (made at start: the mock cluster
--- has no CreateTopics); checks it has `partitions` partitions.
function K.topic(broker, name, partitions)
    local c = assert(core.kafka_consumer{brokers = broker.brokers, options = K.CLIENT_OPTIONS})
    local n, err = c:partitions(name)
    c:close()
    assert(n == (partitions or n), string.format("topic %s: %s partitions, not %s (%s)", name, tostring(n),
        tostring(partitions), tostring(err)))
    return name
end

--- Produce records ({key, value[, partition]}, or a string: a value) to
--- topic and wait until every one is acknowledged.
function K.produce(brokers, topic, records, producer)
    local p = producer or assert(core.kafka_producer{brokers = brokers, options = K.CLIENT_OPTIONS})
    for _, r in ipairs(records) do
        if type(r) == "string" then
            assert(p:produce(topic, -1, nil, r))
        else
            assert(p:produce(topic, r[3] or -1, r[1], r[2]))
        end
    end
    assert(p:flush(30000))
    if not producer then p:close() end
end

--- Every message of topic now: {partition, offset, key, value}, by
--- partition then offset.
function K.read(brokers, topic)
    local c = assert(core.kafka_consumer{brokers = brokers, options = K.CLIENT_OPTIONS})
    local n = assert(c:partitions(topic))
    local out = {}
    for p = 0, n - 1 do
        local low, high = c:watermarks(topic, p, 10000)
        assert(low, high)
        if high > low then
            local ks, vs, m = c:read(topic, p, low, high, 20000)
            assert(ks, vs)
            for i = 1, m do out[#out + 1] = {p, low + i - 1, ks[i], vs[i]} end
        end
    end
    c:close()
    return out
end

--- The high watermark of every partition of topic: {[p] = offset} (p from 0).
function K.ends(brokers, topic)
    local c = assert(core.kafka_consumer{brokers = brokers, options = K.CLIENT_OPTIONS})
    local n = assert(c:partitions(topic))
    local out = {}
    for p = 0, n - 1 do
        local _, high = c:watermarks(topic, p, 10000)
        out[p] = assert(high)
    end
    c:close()
    return out
end

return K

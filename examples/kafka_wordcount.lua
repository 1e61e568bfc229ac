--[[ kafka_wordcount: word totals from one Kafka topic into another.

Reads the lines of IN_TOPIC (the messages' values), keeps each word's total
in keyed state, and after every batch writes the words whose totals changed
to OUT_TOPIC with saveToKafka: key the word, value its new total. A reader
of OUT_TOPIC (or a compacted topic) holds the latest total of every word.

    bin/dstream run examples/kafka_wordcount.lua BROKERS IN_TOPIC OUT_TOPIC [seconds] [CHECKPOINT_DIR]

With a checkpoint directory it can be killed (kill -9 too) and run again
with the same arguments: the totals carry on exactly, none lost or counted
twice (the batch running at the crash is re-read with exactly its offset
ranges). OUT_TOPIC may get a total again after a crash: the same value for
the same word. Without `seconds` it runs until Ctrl-C.
]]
local dstream = require "dstream"

local brokers, input, output, seconds, checkpoint_dir = arg[1], arg[2], arg[3], tonumber(arg[4]), arg[5]
if not (brokers and input and output) then
    io.stderr:write("usage: dstream run examples/kafka_wordcount.lua BROKERS IN_TOPIC OUT_TOPIC [seconds] "
        .. "[CHECKPOINT_DIR]\n")
    os.exit(2)
end

-- The words of a line.
local function split(line)
    local out = {}
    for w in line:gmatch("%S+") do out[#out + 1] = w end
    return out
end

local function create()
    local ssc = dstream.StreamingContext{batchInterval = 1, name = "kafka_wordcount"}
    if checkpoint_dir then ssc:checkpoint(checkpoint_dir) end
    local totals = ssc:kafkaStream{brokers = brokers, topics = {input}, startingOffsets = "earliest"}
        :values()
        :flatMap(split)
        :mapToPair(function(word) return word, 1 end)
        :reduceByKey(dstream.sum)
        -- Each word seen in the batch: its total so far, as (word, total).
        :mapWithState(dstream.StateSpec(function(word, n, state)
            local total = (state:getOption() or 0) + n
            state:update(total)
            return {word, total}
        end))
        :mapToPair(function(r) return r[1], r[2] end)
    totals:saveToKafka{brokers = brokers, topic = output}
    totals:print()
    return ssc
end

local ssc
if checkpoint_dir then
    ssc = dstream.StreamingContext.getOrCreate(checkpoint_dir, create)
else
    ssc = create()
end
ssc:start()
if seconds then
    ssc:awaitTerminationOrTimeout(seconds)
    ssc:stop{graceful = true}
else
    ssc:awaitTermination()
end

--- RDD: one batch of a stream, as handed to foreachRDD and transform.
---
--- Records are kept as parallel arrays: `a` holds the records (or the keys of
--- a pair RDD), `b` the values of a pair RDD; `ends` lists where each
--- partition ends. Narrow methods run through the stage compiler's shared
--- single-op loops, wide ones through the shuffle module.
local stage = require "dstream.stage"
local shuffle = require "dstream.shuffle"
local format = require "dstream.format"
local util = require "dstream.util"
local srcparts = require "dstream.srcparts"

local RDD = {}
RDD.__index = RDD

local as_pair = format.as_pair
local sformat = string.format

--- A new RDD over arrays (borrowed, not copied); pairs when b is given.
function RDD.new(n, a, b, ends, time, id)
    return setmetatable({n = n, a = a, b = b, ends = ends or {n}, pairs = b ~= nil,
        time = time, _id = id}, RDD)
end

local function empty(time, id, pairs)
    return RDD.new(0, {}, pairs and {} or nil, {0}, time, id)
end
RDD.empty = empty

--- An RDD from an array of records (values), copied.
function RDD.from_array(arr, time, id)
    local n, a = #arr, {}
    for i = 1, n do a[i] = arr[i] end
    return RDD.new(n, a, nil, {n}, time, id)
end

function RDD.is(x)
    return getmetatable(x) == RDD
end

local function check_pairs(self, op)
    if not self.pairs then
        error(sformat("%s: not a pair RDD (make pairs with mapToPair)", op), 3)
    end
end

-- sp: the new RDD's srcparts (srcparts.lua), nil when it has none.
local function derive(self, n, a, b, ends, sp)
    local r = RDD.new(n, a, b, ends, self.time, self._id)
    srcparts.set(r, sp)
    return r
end

-- A new RDD with self's partitions, so with its source partitions.
local function keep(self, n, a, b, ends)
    return derive(self, n, a, b, ends, srcparts.of(self))
end

-- The result of fn(n, a, b, ends) -> m, oa, ob, oends over self: per source
-- partition when self has srcparts (numPartitions then does not apply).
local function keyed(self, fn)
    if srcparts.of(self) then return derive(self, srcparts.per_source(self, fn)) end
    return derive(self, fn(self.n, self.a, self.b, self.ends))
end

local function narrow(kind)
    return function(self, f)
        util.check_function(kind, 1, "f", f)
        local shape = self.pairs and "p" or "v"
        if not stage.out_shape(kind, shape) then check_pairs(self, kind) end
        local run = stage.single(kind, shape)
        local m, a, b, ends = run(f, self.n, self.a, self.b, self.ends)
        return keep(self, m, a, b, ends)
    end
end

--- Narrow transformations: a new RDD; functions on a pair RDD receive (k, v).
RDD.map = narrow("map")
RDD.flatMap = narrow("flatMap")
RDD.filter = narrow("filter")
RDD.mapToPair = narrow("mapToPair")
RDD.flatMapToPair = narrow("flatMapToPair")
RDD.mapValues = narrow("mapValues")
RDD.flatMapValues = narrow("flatMapValues")

--- The keys of a pair RDD.
function RDD:keys()
    check_pairs(self, "keys")
    return keep(self, self.n, self.a, nil, self.ends)
end

--- The values of a pair RDD.
function RDD:values()
    check_pairs(self, "values")
    return keep(self, self.n, self.b, nil, self.ends)
end

--- Per-key reduction with f(v1, v2).
function RDD:reduceByKey(f, numPartitions)
    util.check_function("reduceByKey", 1, "f", f)
    check_pairs(self, "reduceByKey")
    return keyed(self, function(n, a, b, ends)
        return shuffle.reduce_by_key("reduceByKey", n, a, b, ends, f, numPartitions)
    end)
end

--- Values of each key as an array, in arrival order.
function RDD:groupByKey(numPartitions)
    check_pairs(self, "groupByKey")
    return keyed(self, function(n, a, b, ends)
        return shuffle.group_by_key("groupByKey", n, a, b, ends, numPartitions)
    end)
end

--- Spark's combineByKey: per partition, then across partitions.
function RDD:combineByKey(create, mergeValue, mergeCombiners, numPartitions)
    util.check_function("combineByKey", 1, "createCombiner", create)
    util.check_function("combineByKey", 2, "mergeValue", mergeValue)
    util.check_function("combineByKey", 3, "mergeCombiners", mergeCombiners)
    check_pairs(self, "combineByKey")
    return keyed(self, function(n, a, b, ends)
        return shuffle.combine_by_key("combineByKey", n, a, b, ends, create, mergeValue, mergeCombiners, numPartitions)
    end)
end

local function joiner(name, kind)
    return function(self, other)
        check_pairs(self, name)
        if not RDD.is(other) then error(sformat("%s: argument #1 must be an RDD, got %s", name, type(other)), 2) end
        check_pairs(other, name)
        local A = {n = self.n, ks = self.a, vs = self.b, ends = self.ends}
        local B = {n = other.n, ks = other.a, vs = other.b, ends = other.ends}
        if kind == "cogroup" then return derive(self, shuffle.cogroup(name, A, B)) end
        return derive(self, shuffle.join(kind, name, A, B))
    end
end

--- Joins of two pair RDDs: values {v, w}, a missing side nil.
RDD.join = joiner("join", "inner")
RDD.leftOuterJoin = joiner("leftOuterJoin", "left")
RDD.rightOuterJoin = joiner("rightOuterJoin", "right")
RDD.fullOuterJoin = joiner("fullOuterJoin", "full")
--- Values {vs, ws} of every key of either side.
RDD.cogroup = joiner("cogroup", "cogroup")

--- Both RDDs' records, partitions side by side.
function RDD:union(other)
    if not RDD.is(other) then error(sformat("union: argument #1 must be an RDD, got %s", type(other)), 2) end
    return RDD.concat({self, other}, self.time, self._id)
end

--- Concatenate RDDs of the same shape (every partition kept).
function RDD.concat(rdds, time, id)
    local pairs_ = nil
    for i = 1, #rdds do
        local r = rdds[i]
        if pairs_ == nil then pairs_ = r.pairs
        elseif pairs_ ~= r.pairs then
            error("union: cannot mix a pair stream and a stream of single values", 0)
        end
    end
    local n, a, b, ends = 0, {}, pairs_ and {} or nil, {}
    for i = 1, #rdds do
        local r = rdds[i]
        local ra, rb = r.a, r.b
        for j = 1, r.n do
            a[n + j] = ra[j]
            if b then b[n + j] = rb[j] end
        end
        for p = 1, #r.ends do ends[#ends + 1] = n + r.ends[p] end
        n = n + r.n
    end
    if #ends == 0 then ends[1] = 0 end
    local r = RDD.new(n, a, b, ends, time, id)
    srcparts.set(r, srcparts.concat(rdds))
    return r
end

--- Distinct records (pairs: distinct (k, v)).
function RDD:distinct()
    if self.pairs then
        return derive(self, shuffle.distinct_pairs("distinct", self.n, self.a, self.b, self.ends))
    end
    local n, a, ends = shuffle.distinct("distinct", self.n, self.a, self.ends)
    return derive(self, n, a, nil, ends)
end

--- Sorted by f(record) (pairs: f(k, v)), ascending unless ascending == false.
function RDD:sortBy(f, ascending)
    util.check_function("sortBy", 1, "f", f)
    if ascending == nil then ascending = true end
    if self.pairs then
        return derive(self, shuffle.sort_by_pairs("sortBy", self.n, self.a, self.b, self.ends, f, ascending))
    end
    local n, a, ends = shuffle.sort_by("sortBy", self.n, self.a, self.ends, f, ascending)
    return derive(self, n, a, nil, ends)
end

--- Records spread over n partitions.
function RDD:repartition(n)
    if type(n) ~= "number" or n < 1 or n ~= math.floor(n) then
        error("repartition: argument #1 must be a whole number >= 1", 2)
    end
    return derive(self, self.n, self.a, self.b, shuffle.repartition(self.n, self.ends, n))
end

-- The records lo..hi as a new array (pairs as {k, v}).
local function partition_array(self, lo, hi)
    local out, a, b = {}, self.a, self.b
    for i = lo, hi do out[i - lo + 1] = b and as_pair(a[i], b[i]) or a[i] end
    return out
end

--- One array per partition.
function RDD:glom()
    local out, ends, lo = {}, {}, 1
    for p = 1, #self.ends do
        local hi = self.ends[p]
        out[p], ends[p], lo = partition_array(self, lo, hi), p, hi + 1
    end
    return keep(self, #out, out, nil, ends)
end

--- f(array) per partition returns that partition's new records.
function RDD:mapPartitions(f)
    util.check_function("mapPartitions", 1, "f", f)
    local n, a, ends, lo = 0, {}, {}, 1
    for p = 1, #self.ends do
        local hi = self.ends[p]
        local out = f(partition_array(self, lo, hi))
        if type(out) ~= "table" then
            stage.fail("function must return an array, got " .. type(out))
        end
        for i = 1, #out do n = n + 1; a[n] = out[i] end
        ends[p], lo = n, hi + 1
    end
    return keep(self, n, a, nil, ends)
end

--- Number of records.
function RDD:count()
    return self.n
end

--- Whether the RDD has no record.
function RDD:isEmpty()
    return self.n == 0
end

--- The records as an array (pairs as {k, v}).
function RDD:collect()
    return self:take(self.n)
end

--- The first n records as an array.
function RDD:take(n)
    if type(n) ~= "number" then error("take: argument #1 must be a number", 2) end
    local out, a, b = {}, self.a, self.b
    for i = 1, math.min(n, self.n) do out[i] = b and as_pair(a[i], b[i]) or a[i] end
    return out
end

--- The first record; an error if the RDD is empty.
function RDD:first()
    if self.n == 0 then error("first: the RDD is empty", 2) end
    return self:take(1)[1]
end

--- Reduce all records with f; an error if the RDD is empty.
function RDD:reduce(f)
    util.check_function("reduce", 1, "f", f)
    if self.n == 0 then error("reduce: the RDD is empty", 2) end
    local acc = self.b and as_pair(self.a[1], self.b[1]) or self.a[1]
    for i = 2, self.n do
        acc = f(acc, self.b and as_pair(self.a[i], self.b[i]) or self.a[i])
        if acc == nil then
            stage.fail("function returned nil")
        end
    end
    return acc
end

--- A table {record = count}.
function RDD:countByValue()
    local m, ks, vs
    if self.pairs then
        m, ks, vs = shuffle.count_by_value_pairs("countByValue", self.n, self.a, self.b, self.ends)
    else
        m, ks, vs = shuffle.count_by_value("countByValue", self.n, self.a, self.ends)
    end
    local out = {}
    for i = 1, m do out[ks[i]] = vs[i] end
    return out
end

--- Call f on every record (pairs: f(k, v)).
function RDD:foreach(f)
    util.check_function("foreach", 1, "f", f)
    local a, b = self.a, self.b
    if b then
        for i = 1, self.n do f(a[i], b[i]) end
    else
        for i = 1, self.n do f(a[i]) end
    end
end

--- Call f on each partition's array of records.
function RDD:foreachPartition(f)
    util.check_function("foreachPartition", 1, "f", f)
    local lo = 1
    for p = 1, #self.ends do
        local hi = self.ends[p]
        f(partition_array(self, lo, hi))
        lo = hi + 1
    end
end

--- A kafkaStream batch's offset ranges, one per Kafka partition in the RDD's
--- partition order: {topic, partition, fromOffset, untilOffset} each (a copy).
function RDD:offsetRanges()
    local ranges = self._ranges
    if ranges == nil then
        error("offsetRanges: this RDD is not a batch of a kafkaStream (call it on the RDD that foreachRDD or "
            .. "transform gets from the kafkaStream itself, before any transformation)", 2)
    end
    local out = {}
    for i, r in ipairs(ranges) do
        out[i] = {topic = r.topic, partition = r.partition, fromOffset = r.fromOffset, untilOffset = r.untilOffset}
    end
    return out
end

--- Stable per batch and stream: the key for idempotent writes.
function RDD:id()
    return self._id
end

function RDD:__tostring()
    return sformat("RDD[%s] %d %s in %d partition%s", tostring(self._id), self.n,
        self.pairs and "pairs" or "records", #self.ends, #self.ends == 1 and "" or "s")
end

return RDD

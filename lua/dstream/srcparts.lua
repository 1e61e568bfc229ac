--- Source partitions: which input partition (a Kafka "topic/partition")
--- each partition of an RDD came from, and running keyed work per source
--- partition.
---
--- A kafkaStream RDD has one partition per Kafka partition and carries
--- `rdd.srcparts` (partition j -> "topic/partition"). Narrow stages keep the
--- partitions as they are, so they keep srcparts; a shuffle on an RDD with
--- srcparts brings keys together only within one source partition and
--- returns one partition per source partition, with srcparts. That is what
--- lets keyed state live per input partition and move with it when a
--- consumer group reassigns the partition (state.lua, changelog.lua).
---
--- WHY PER SOURCE PARTITION IS EXACT: records with one key come in one
--- partition (the producer partitions by key), so no key is split between
--- two groups; without srcparts nothing here runs and nothing costs.
---
--- COST: a group's records are copied into arrays of their own, unless the
--- group is the RDD's first partition alone (then the arrays are borrowed):
--- one copy of the batch per shuffle, and only with srcparts.
local srcparts = {}

--- r's srcparts when r is kept by source partition (r.by_partition: a
--- grouped kafkaStream's batches, and what narrow stages, shuffles and
--- state make of them) and they name the source of each of r's
--- partitions, else nil. A kafkaStream without a group gives srcparts too,
--- but its batches are one whole: their shuffles bring keys together
--- across partitions, as Spark's do.
function srcparts.of(r)
    local sp = r.srcparts
    if sp ~= nil and r.by_partition and #sp == #r.ends and #sp > 0 then return sp end
    return nil
end

--- Mark r as kept by source partition with srcparts sp (nil: not).
function srcparts.set(r, sp)
    r.srcparts = sp
    r.by_partition = sp ~= nil or nil
    return r
end

--- The source partitions of r in first-seen order, and for each the
--- indices of r's partitions that came from it: tps, members (members[i]
--- an array of partition indices). Several partitions name one source when
--- RDDs of one stream were unioned.
function srcparts.groups(r)
    local sp = srcparts.of(r)
    local tps, members, at = {}, {}, {}
    for j = 1, #r.ends do
        local tp = sp[j]
        local i = at[tp]
        if i == nil then
            i = #tps + 1
            at[tp], tps[i], members[i] = i, tp, {}
        end
        local m = members[i]
        m[#m + 1] = j
    end
    return tps, members
end

--- The records of r's partitions listed in parts (indices), as arrays:
--- n, a, b (b nil for an RDD of single values).
function srcparts.slice(r, parts)
    local ends, ra, rb = r.ends, r.a, r.b
    if #parts == 1 and parts[1] == 1 then return ends[1], ra, rb end
    local n, a, b = 0, {}, rb and {} or nil
    for i = 1, #parts do
        local p = parts[i]
        local lo, hi = (p > 1 and ends[p - 1] or 0) + 1, ends[p]
        if b then
            for x = lo, hi do
                n = n + 1
                a[n], b[n] = ra[x], rb[x]
            end
        else
            for x = lo, hi do
                n = n + 1
                a[n] = ra[x]
            end
        end
    end
    return n, a, b
end

--- fn(n, a, b, ends) -> m, oa, ob over the records of each source
--- partition of r; the results side by side, one partition per source
--- partition: m, a, b, ends, srcparts.
function srcparts.per_source(r, fn)
    local tps, members = srcparts.groups(r)
    local m, a, b, ends = 0, {}, nil, {}
    for i = 1, #tps do
        local n, ga, gb = srcparts.slice(r, members[i])
        local gm, oa, ob = fn(n, ga, gb, {n})
        if ob and not b then b = {} end
        for x = 1, gm do
            a[m + x] = oa[x]
            if ob then b[m + x] = ob[x] end
        end
        m = m + gm
        ends[i] = m
    end
    if #tps == 0 then ends[1] = 0 end
    return m, a, b, ends, tps
end

--- The srcparts of RDDs side by side (a union), or nil unless all have them.
function srcparts.concat(rdds)
    local out = {}
    for i = 1, #rdds do
        local sp = srcparts.of(rdds[i])
        if sp == nil then return nil end
        for j = 1, #sp do out[#out + 1] = sp[j] end
    end
    return out
end

return srcparts

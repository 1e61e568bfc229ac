--[[ sessionize: user sessions closed by mapWithState timeouts.

Clicks arrive as `user page` lines. A user's session lasts while clicks keep
coming; 30 minutes without a click closes it. Each user's open session is
keyed state (first and last click time, pages seen); the state's timeout is
the inactivity gap, so a session is closed — and reported once, as
`(user, {start, end, clicks, pages})` — exactly in the first batch at which
its user has been idle for 30 minutes. No batch scans all users to find
them: the state store keeps users in the order they were last seen.

    bin/dstream run examples/sessionize.lua [hours]

The run replays a few hours of synthetic clicks (one batch per minute)
under the manual clock and prints the sessions as they close.
]]
local dstream = require "dstream"

local MINUTE, GAP = 60, 30 * 60

local M = {batchInterval = MINUTE, gap = GAP}

-- A click's value carries its batch time: the state function sees no clock.
local function track(user, click, state)
    if state:isTimingOut() then
        local s = state:getOption()
        return {user, {s.first, s.last, s.clicks, s.pages}}
    end
    local t, page = click[1], click[2]
    local s = state:getOption() or {first = t, last = t, clicks = 0, pages = 0, seen = {}}
    s.last, s.clicks = t, s.clicks + 1
    if not s.seen[page] then s.seen[page], s.pages = true, s.pages + 1 end
    state:update(s)
    return nil
end

--- `user page` lines -> closed sessions (user, {start ms, end ms, clicks, distinct pages}).
function M.sessions(lines)
    local clicks = lines:transform(function(rdd, t)
        return rdd:mapToPair(function(line)
            local user, page = line:match("^(%S+) (%S+)$")
            return user, {t, page}
        end)
    end)
    return clicks:mapWithState(dstream.StateSpec(track):timeout(GAP))
end

--- Synthetic clicks: users with bursts of activity separated by pauses.
function M.clicks(minutes, users, seed)
    local x = seed or 7
    local function rand(n)
        x = (1103515245 * x + 12345) % 2147483648
        return math.floor(x / 65536) % n + 1 -- the high bits: an LCG's low bits cycle fast
    end
    local active = {}
    local out = {}
    for m = 1, minutes do
        local batch = {}
        for u = 1, users do
            if active[u] == nil or active[u] < m then
                if rand(40) == 1 then active[u] = m + rand(25) end -- a burst starts
            end
            if active[u] and active[u] >= m and rand(3) == 1 then
                batch[#batch + 1] = string.format("u%02d /page/%d", u, rand(6))
            end
        end
        out[m] = batch
    end
    return out
end

local function main(hours)
    local ssc = dstream.StreamingContext{batchInterval = MINUTE, clock = "manual", name = "sessionize"}
    local batches = M.clicks(hours * 60, 12)
    M.sessions(ssc:queueStream(batches)):foreachRDD(function(rdd, t)
        rdd:foreach(function(session)
            local user, s = session[1], session[2]
            print(string.format("%6d min: %s's session closed: %d-%d min, %d clicks on %d pages",
                t / 60000, user, s[1] / 60000, s[2] / 60000, s[3], s[4]))
        end)
    end)
    ssc:start()
    ssc:advance(#batches)
    ssc:stop()
end

if select("#", ...) == 1 and (...) == "--as-module" then return M end
main(tonumber(arg and arg[1]) or 4)

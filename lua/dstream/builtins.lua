--- Built-in functions the engine recognises by identity and may run in C
--- (API.md, "Built-in functions"): here dstream.words, and the C loop that
--- runs `flatMap(dstream.words)` when a counting operator alone reads it.
--- The reducers (dstream.sum, ...) live in reducers.lua.
---
--- dstream.words is a real Lua function: flatMap, map, or a user's own loop
--- can call it anywhere. When the planner (planner.counts_words) finds it
--- as the whole stage before countByValue or countByValueAndWindow, the
--- stage runs as builtins.word_counter's C loop instead and the stage's
--- batch is the words counted - pairs (word, count) - not the words.
local core = require "dstream.core"
local stage = require "dstream.stage"

local builtins = {}

local byte, sub, type = string.byte, string.sub, type
local sformat = string.format

-- Whether byte c is one of " \t\n\v\f\r" (Lua's %s in the C locale).
local function space(c)
    return c == 32 or (c >= 9 and c <= 13)
end

--- dstream.words(line): the array of the words of line, as
--- line:gmatch("%S+") gives them (a word is a maximal run of bytes other
--- than " \t\n\v\f\r"). A byte loop LuaJIT compiles, unlike gmatch.
function builtins.words(line)
    if type(line) ~= "string" then
        error(sformat("dstream.words: the record is a %s, not a string", type(line)), 2)
    end
    local out, n, i, len = {}, 0, 1, #line
    while i <= len do
        if space(byte(line, i)) then
            i = i + 1
        else
            local j = i + 1
            while j <= len and not space(byte(line, j)) do j = j + 1 end
            n = n + 1
            out[n] = sub(line, i, j - 1)
            i = j + 1
        end
    end
    return out
end

--- Whether f is dstream.words itself (not a function that looks like it).
function builtins.is_words(f)
    return f == builtins.words
end

--- A stage's run function (planner.run's contract: run(n, a, b, ends) ->
--- m, oa, ob, oends) counting the words of a batch in C: a is the batch's
--- array of strings (pairs: its keys, which is what words(k, v) splits),
--- or a chain of C blocks (socket:take_blocks()). Returns the distinct
--- words and their counts, one partition. One counter per stage, reused
--- from batch to batch.
function builtins.word_counter()
    local counter = core.words_new()
    return function(n, a)
        local ok, err, _, i
        if type(a) == "userdata" then
            ok, err = counter:add_blocks(a)
        else
            ok, err, _, i = counter:add_strings(a, n)
        end
        if not ok then
            if i then
                stage.fail(sformat("dstream.words: the record is a %s, not a string (record %d of the batch)",
                    type(a[i]), i))
            end
            stage.fail("dstream.words: the batch's words could not be counted: " .. tostring(err))
        end
        local ks, vs, m = counter:result()
        return m, ks, vs, {m}
    end
end

--- The C split of s (the same bytes the counter splits): for specs.
function builtins.split_c(s)
    local counter = core.words_new()
    local out = counter:split(s)
    counter:close()
    return out
end

return builtins

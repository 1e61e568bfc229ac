-- Checkpoint files through dstream.core (core.checkpoint_open): what the
-- recovery code builds on. Real files in a temporary directory; damage is
-- done with real truncation and bit flips.
local core = require "dstream.core"
local files = require "spec.helpers.files"

local function names(dir)
    local list = assert(core.fs_list(dir))
    table.sort(list)
    return list
end

local function ckpt(seq, kind)
    return ("checkpoint-%016d.%s"):format(seq, kind)
end

local function pending(t)
    return ("pending-%016d"):format(t)
end

-- Flip one bit of the byte at offset (0-based) of the file at path.
local function flip(path, offset)
    local data = assert(files.read(path))
    local b = data:byte(offset + 1)
    files.write(path, data:sub(1, offset) .. string.char(bit.bxor(b, 0x10)) .. data:sub(offset + 2))
end

local function truncate(path, len)
    files.write(path, assert(files.read(path)):sub(1, len))
end

local function section_map(entry)
    local m = {}
    for _, s in ipairs(entry.sections) do m[s.name] = s.data end
    return m
end

describe("core.checkpoint_open", function()
    local dir, cp

    before_each(function()
        dir = files.tmpdir() .. "/ckpt"
        cp = assert(core.checkpoint_open(dir))
    end)

    after_each(function()
        cp:close()
        assert(core.fs_remove_tree(dir:gsub("/ckpt$", "")))
    end)

    it("makes the directory and finds no checkpoint in it", function()
        assert.is_true(assert(core.fs_stat(dir)).dir)
        local r, err = cp:load()
        assert.is_nil(r)
        assert.is_nil(err)
    end)

    it("fails with the path when the directory cannot be made", function()
        files.write(dir .. "/file", "x")
        local c, err, name = core.checkpoint_open(dir .. "/file/sub")
        assert.is_nil(c)
        assert.are.equal("EIO", name)
        assert.matches("ckpt/file/sub", err, 1, true)
    end)

    describe("cp:write", function()
        it("writes a full checkpoint that loads back section by section", function()
            local big = ("0123456789"):rep(250000) -- over two 1 MiB frames
            local bytes = assert(cp:write("full", 5000, {{"graph", "g1"}, {name = "s1", data = big},
                {"empty", ""}, {"bin\0name", "\0\1\2"}}))
            assert.are.same({ckpt(1, "full")}, names(dir))
            assert.are.equal(#assert(files.read(dir .. "/" .. ckpt(1, "full"))), bytes)
            local r = assert(cp:load())
            assert.are.equal(5000, r.time)
            assert.are.equal(1, r.seq)
            assert.are.same({}, r.pending)
            assert.are.same({}, r.warnings)
            assert.are.equal(1, #r.chain)
            local full = r.chain[1]
            assert.are.equal("full", full.kind)
            assert.are.equal(1, full.seq)
            assert.are.equal(5000, full.time)
            assert.are.same({"graph", "s1", "empty", "bin\0name"},
                {full.sections[1].name, full.sections[2].name, full.sections[3].name, full.sections[4].name})
            assert.are.same({graph = "g1", s1 = big, empty = "", ["bin\0name"] = "\0\1\2"}, section_map(full))
        end)

        it("leaves no temporary file behind", function()
            assert(cp:write("full", 1000, {{"a", "b"}}))
            assert(cp:write("pending", 2000, {{"in", "x"}}))
            assert.are.same({ckpt(1, "full"), pending(2000)}, names(dir))
        end)

        it("refuses a delta before any full checkpoint", function()
            local ok, err, name = cp:write("delta", 1000, {{"a", "b"}})
            assert.is_nil(ok)
            assert.are.equal("ESTATE", name)
            assert.matches("write a full one first", err, 1, true)
            assert.are.same({}, names(dir))
        end)

        it("chains deltas onto the full, in the order to apply them", function()
            assert(cp:write("full", 1000, {{"s", "f1"}}))
            assert(cp:write("delta", 2000, {{"s", "d2"}}))
            assert(cp:write("delta", 3000, {{"s", "d3"}}))
            local r = assert(cp:load())
            assert.are.equal(3000, r.time)
            assert.are.equal(3, r.seq)
            local got = {}
            for i, e in ipairs(r.chain) do got[i] = {e.kind, e.seq, e.time, section_map(e).s} end
            assert.are.same({{"full", 1, 1000, "f1"}, {"delta", 2, 2000, "d2"}, {"delta", 3, 3000, "d3"}}, got)
        end)

        it("continues the seqs of the checkpoints already in the directory", function()
            assert(cp:write("full", 1000, {{"s", "f1"}}))
            assert(cp:write("delta", 2000, {{"s", "d2"}}))
            local again = assert(core.checkpoint_open(dir))
            assert(again:load())
            assert(again:write("delta", 3000, {{"s", "d3"}}))
            again:close()
            assert.are.same({ckpt(1, "full"), ckpt(2, "delta"), ckpt(3, "delta")}, names(dir))
        end)

        it("keeps the newest two full checkpoints and the deltas after the older one", function()
            assert(cp:write("full", 1000, {{"s", "1"}}))
            assert(cp:write("delta", 2000, {{"s", "2"}}))
            assert(cp:write("full", 3000, {{"s", "3"}}))
            assert(cp:write("delta", 4000, {{"s", "4"}}))
            assert.are.same({ckpt(1, "full"), ckpt(2, "delta"), ckpt(3, "full"), ckpt(4, "delta")}, names(dir))
            assert(cp:write("full", 5000, {{"s", "5"}}))
            assert.are.same({ckpt(3, "full"), ckpt(4, "delta"), ckpt(5, "full")}, names(dir))
            local r = assert(cp:load())
            assert.are.equal(5, r.seq)
            assert.are.equal(1, #r.chain)
        end)

        it("rejects a bad kind, time or section as a programming error", function()
            assert.has_error(function() cp:write("fuller", 1, {}) end)
            assert.has_error(function() cp:write("full", -1, {}) end)
            assert.has_error(function() cp:write("full", 1.5, {}) end)
            assert.has_error(function() cp:write("full", 1, {{"name only"}}) end)
            assert.has_error(function() cp:write("full", 1, {"not a table"}) end)
        end)

        it("refuses to work once closed", function()
            cp:close()
            cp:close()
            assert.has_error(function() cp:load() end, nil)
            cp = assert(core.checkpoint_open(dir))
        end)
    end)

    describe("pending batches", function()
        it("returns the pending batches after the checkpoint, oldest first", function()
            assert(cp:write("pending", 1000, {{"in", "a"}}))
            assert(cp:write("full", 1000, {{"s", "1"}}))
            assert(cp:write("pending", 3000, {{"in", "c"}}))
            assert(cp:write("pending", 2000, {{"in", "b"}}))
            local r = assert(cp:load())
            assert.are.equal(1000, r.time)
            assert.are.equal(2, #r.pending)
            assert.are.same({2000, "b"}, {r.pending[1].time, section_map(r.pending[1])["in"]})
            assert.are.same({3000, "c"}, {r.pending[2].time, r.pending[2].sections[1].data})
        end)

        it("replaces a pending file written again for the same batch", function()
            assert(cp:write("full", 1000, {{"s", "1"}}))
            assert(cp:write("pending", 2000, {{"in", "first"}}))
            assert(cp:write("pending", 2000, {{"in", "second"}}))
            local r = assert(cp:load())
            assert.are.equal(1, #r.pending)
            assert.are.equal("second", r.pending[1].sections[1].data)
        end)

        it("deletes pending files once the checkpoint after them is followed by another", function()
            assert(cp:write("pending", 1000, {{"in", "a"}}))
            assert(cp:write("full", 1000, {{"s", "1"}}))
            assert(cp:write("pending", 2000, {{"in", "b"}}))
            assert(cp:write("delta", 2000, {{"s", "2"}}))
            -- batch 2000's inputs stay until a checkpoint rests on the one covering it
            assert.are.same({ckpt(1, "full"), ckpt(2, "delta"), pending(2000)}, names(dir))
            assert(cp:write("delta", 3000, {{"s", "3"}}))
            assert.are.same({ckpt(1, "full"), ckpt(2, "delta"), ckpt(3, "delta")}, names(dir))
        end)
    end)

    describe("cp:load with damaged files", function()
        local function three()
            assert(cp:write("full", 1000, {{"s", "1"}}))
            assert(cp:write("pending", 2000, {{"in", "b"}}))
            assert(cp:write("delta", 2000, {{"s", "2"}}))
            assert(cp:write("pending", 3000, {{"in", "c"}}))
            assert(cp:write("delta", 3000, {{"s", "3"}}))
        end

        it("falls back to the checkpoint before a torn newest delta and re-offers its batch", function()
            three()
            local path = dir .. "/" .. ckpt(3, "delta")
            local size = #files.read(path)
            truncate(path, size - 5)
            local r = assert(assert(core.checkpoint_open(dir)):load())
            assert.are.equal(2000, r.time)
            assert.are.equal(2, #r.chain)
            assert.are.equal(1, #r.pending)
            assert.are.equal(3000, r.pending[1].time)
            assert.are.equal(1, #r.warnings)
            assert.matches(ckpt(3, "delta"):gsub("%p", "%%%0") .. ": damaged at byte %d+: the frame takes", r.warnings[1])
            assert.matches("using " .. ckpt(2, "delta") .. " (batch time 2000) instead", r.warnings[1], 1, true)
        end)

        it("names the byte offset of a flipped bit and the checkpoint used instead", function()
            three()
            flip(dir .. "/" .. ckpt(3, "delta"), 20)
            local r = assert(assert(core.checkpoint_open(dir)):load())
            assert.are.equal(2, r.seq)
            assert.matches(ckpt(3, "delta") .. ": damaged at byte 0: stored CRC-32C", r.warnings[1], 1, true)
        end)

        it("skips the deltas resting on a damaged one", function()
            three()
            flip(dir .. "/" .. ckpt(2, "delta"), 30)
            local r = assert(assert(core.checkpoint_open(dir)):load())
            assert.are.equal(1, r.seq)
            assert.are.equal(1000, r.time)
            -- batch 2000's inputs went with the checkpoint after it: one step back is kept
            assert.are.same({3000}, {r.pending[1].time, r.pending[2]})
            assert.are.equal(2, #r.warnings)
            assert.matches(ckpt(3, "delta") .. ": not applied: it rests on " .. ckpt(2, "delta") .. ", damaged at byte 0",
                r.warnings[1], 1, true)
            assert.matches(ckpt(2, "delta") .. ": damaged at byte 0", r.warnings[2], 1, true)
        end)

        it("falls back to the previous full checkpoint and its deltas when the newest full is damaged", function()
            three()
            assert(cp:write("full", 4000, {{"s", "4"}}))
            flip(dir .. "/" .. ckpt(4, "full"), 3)
            local r = assert(assert(core.checkpoint_open(dir)):load())
            assert.are.equal(3, r.seq)
            assert.are.same({"full", "delta", "delta"}, {r.chain[1].kind, r.chain[2].kind, r.chain[3].kind})
            assert.matches(ckpt(4, "full") .. ": damaged at byte 0", r.warnings[1], 1, true)
        end)

        it("continues the chain after recovering from an older checkpoint", function()
            three()
            truncate(dir .. "/" .. ckpt(3, "delta"), 10)
            local again = assert(core.checkpoint_open(dir))
            assert.are.equal(2, assert(again:load()).seq)
            assert(again:write("delta", 3000, {{"s", "3 again"}}))
            local r = assert(again:load())
            again:close()
            assert.are.equal(4, r.seq)
            assert.are.same({1, 2, 4}, {r.chain[1].seq, r.chain[2].seq, r.chain[3].seq})
            assert.are.equal("3 again", r.chain[3].sections[1].data)
            assert.are.same({}, r.warnings)
        end)

        it("warns about a damaged pending file and skips it", function()
            three()
            assert(cp:write("pending", 4000, {{"in", "d"}}))
            truncate(dir .. "/" .. pending(4000), 7)
            local r = assert(assert(core.checkpoint_open(dir)):load())
            assert.are.equal(3000, r.time)
            assert.are.same({}, r.pending)
            assert.matches(pending(4000) .. ": damaged at byte 0", r.warnings[1], 1, true)
        end)

        it("fails naming every file when no checkpoint is intact", function()
            assert(cp:write("full", 1000, {{"s", "1"}}))
            assert(cp:write("delta", 2000, {{"s", "2"}}))
            flip(dir .. "/" .. ckpt(1, "full"), 50)
            local r, err = assert(core.checkpoint_open(dir)):load()
            assert.is_nil(r)
            assert.matches("no intact checkpoint in " .. dir, err, 1, true)
            assert.matches(ckpt(1, "full"), err, 1, true)
            assert.matches(ckpt(2, "delta"), err, 1, true)
        end)

        it("takes a file whose header does not match its name for damaged", function()
            assert(cp:write("full", 1000, {{"s", "1"}}))
            assert(cp:write("full", 2000, {{"s", "2"}}))
            assert(core.fs_rename(dir .. "/" .. ckpt(2, "full"), dir .. "/" .. ckpt(7, "full")))
            local r = assert(assert(core.checkpoint_open(dir)):load())
            assert.are.equal(1, r.seq)
            assert.matches(ckpt(7, "full") .. ": damaged at byte 0: its header", r.warnings[1], 1, true)
        end)
    end)
end)

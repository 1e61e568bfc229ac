-- lua/dstream/cdef.lua repeats the per-record C surface of ffi.h: the two
-- must agree, and every declared function must be there in dstream.core.
local cdef = require "dstream.cdef"

local function normalize(text)
    return (text:gsub("/%*.-%*/", ""):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

describe("dstream.cdef", function()
    it("declares exactly the block between cdef begin and cdef end of ffi.h", function()
        local f = assert(io.open("core/include/dstream/ffi.h"))
        local header = f:read("*a")
        f:close()
        local block = header:match("/%* cdef begin %*/(.-)/%* cdef end %*/")
        assert.is_not_nil(block)
        assert.are.equal(normalize(block), normalize(cdef.declarations))
    end)

    it("finds every declared function in dstream.core", function()
        local count = 0
        for name in cdef.declarations:gsub("/%*.-%*/", ""):gmatch("(ds_[%w_]+)%s*%(") do
            assert.is_not_nil(cdef.C[name], name)
            count = count + 1
        end
        assert.is_true(count >= 10)
    end)
end)

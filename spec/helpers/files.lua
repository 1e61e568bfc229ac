-- Files and directories for specs: a fresh temporary directory, and whole
-- files read, written and appended in one call.
local core = require "dstream.core"

local files = {}

--- A new empty directory under the system's temporary directory.
function files.tmpdir()
    local path = os.tmpname()
    os.remove(path)
    assert(core.fs_mkdirs(path))
    return path
end

--- The bytes of the file at path, or nil if it cannot be opened.
function files.read(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return s
end

local function put(path, data, mode)
    local f = assert(io.open(path, mode))
    f:write(data)
    f:close()
end

--- Replace the file at path by data.
function files.write(path, data) put(path, data, "wb") end

--- Add data at the end of the file at path.
function files.append(path, data) put(path, data, "ab") end

return files

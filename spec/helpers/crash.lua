--[[ crash: real processes, really killed, for the fault specs.

A fault spec runs a pipeline script as a child process, kills it with
SIGKILL at a moment drawn from a seeded generator, changes the files it left
behind (cuts them, flips bits) and starts it again.

    local crash = require("spec.helpers.crash")
    local random = crash.random(seed)          -- random() in [0, 1), random(lo, hi) whole
    local p = crash.spawn{"bin/dstream", "run", script, arg1}
    crash.sleep(0.2)
    p:kill()                                   -- SIGKILL, then waits until it is gone
    local status, output = p:finish(10)        -- or SIGTERM, wait, and its exit status

crash.spawn(args, opts) runs LuaJIT on args (a script and its arguments,
relative to the repository root) in the background, stdout and stderr to a
log; opts.env is a table of environment variables. The child writes its own
pid before the script runs (LuaJIT's -e), so a kill reaches the interpreter
itself, not a shell around it; the shell around it records the exit status.
p:alive(), p:signal(name), p:kill() (SIGKILL and wait), p:wait(seconds)
(true once exited), p:finish(seconds) (SIGTERM, wait, SIGKILL if still
there: exit status and output), p:output(). crash.run(args, opts, seconds) runs one to its end: status and
output. crash.kill_pid(pid) kills a process started otherwise.

Files: crash.write_atomic(dir, name, data) (a hidden temporary name, then a
rename: a file stream never sees half a file), crash.frames(path) (the codec
frames of a file: {offset, size} each, see codec.h), crash.truncate(path,
size), crash.flip(path, offset, mask), crash.copy_tree(from, to),
crash.list(dir), crash.read(path).
]]

local ffi = require("ffi")
local bit = require("bit")
local core = require("dstream.core")

local crash = {}

pcall(ffi.cdef, "int kill(int pid, int sig);")
pcall(ffi.cdef, "int poll(void *fds, unsigned long nfds, int timeout);")
pcall(ffi.cdef, "ssize_t readlink(const char *path, char *buf, size_t size);")
pcall(ffi.cdef, "int truncate(const char *path, long length);")
if not pcall(ffi.typeof, "crash_timespec") then
    ffi.cdef[[typedef struct { long tv_sec; long tv_nsec; } crash_timespec;]]
end
pcall(ffi.cdef, "int clock_gettime(int clk, void *ts);")

local C = ffi.C
local SIGNALS = {KILL = 9, TERM = 15, INT = 2}

local ts = ffi.new("crash_timespec")
--- Seconds on the monotonic clock.
function crash.now()
    C.clock_gettime(1, ffi.cast("void *", ts))
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

--- Sleep s seconds.
function crash.sleep(s)
    C.poll(nil, 0, math.max(0, math.floor(s * 1000 + 0.5)))
end

--- A generator from seed (Park and Miller's, exact in doubles): random()
--- in [0, 1), random(lo, hi) a whole number in [lo, hi].
function crash.random(seed)
    local x = seed % 2147483646 + 1
    return function(lo, hi)
        x = x * 16807 % 2147483647
        local u = (x - 1) / 2147483646
        if lo == nil then return u end
        return lo + math.floor(u * (hi - lo + 1))
    end
end

--- The seed of this run: DSTREAM_FAULT_SEED if set, else from the clock.
function crash.seed()
    local env = tonumber(os.getenv("DSTREAM_FAULT_SEED") or "")
    if env then return env end
    return math.floor(crash.now() * 1000) % 1000000007
end

local HELPER_SOURCE = debug.getinfo(1, "S").source
crash.ROOT = HELPER_SOURCE:match("^@(.-)spec/helpers/crash%.lua$")
assert(crash.ROOT, "crash: cannot find the repository root from " .. HELPER_SOURCE)
if crash.ROOT == "" then crash.ROOT = "./" end

local function luajit_path()
    local buf = ffi.new("char[4096]")
    local n = tonumber(C.readlink("/proc/self/exe", buf, 4096))
    return n > 0 and ffi.string(buf, n) or "luajit"
end
crash.LUAJIT = luajit_path()

local function quote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- The bytes of the file at path, or nil.
crash.read = require("spec.helpers.files").read

local Proc = {}
Proc.__index = Proc

function Proc:__tostring()
    return string.format("process %s (%s)", tostring(self.pid), self.cmd)
end

-- /proc/<pid>/stat's state letter, nil once the process is gone.
local function proc_state(pid)
    local s = crash.read("/proc/" .. pid .. "/stat")
    return s and s:match("^%d+ %b() (%a)")
end

--- Whether the child is still running (a zombie is not).
function Proc:alive()
    if self.status == nil then self.status = tonumber(crash.read(self.status_path) or "") end
    if self.status ~= nil then return false end
    local state = proc_state(self.pid)
    return state ~= nil and state ~= "Z" and state ~= "X"
end

--- Send a signal by name ("KILL", "TERM", "INT").
function Proc:signal(name)
    if self:alive() then C.kill(self.pid, SIGNALS[name]) end
end

--- Wait until the child and the shell around it have exited: true, or false after `seconds`.
function Proc:wait(seconds)
    local deadline = crash.now() + (seconds or 10)
    while crash.now() < deadline do
        self.status = self.status or tonumber(crash.read(self.status_path) or "")
        if self.status ~= nil then return true end
        crash.sleep(0.01)
    end
    return false
end

--- SIGKILL now, and wait until it is gone.
function Proc:kill()
    self:signal("KILL")
    assert(self:wait(10), tostring(self) .. " outlived SIGKILL by 10 s")
end

--- What the child wrote on stdout and stderr so far.
function Proc:output()
    return crash.read(self.log) or ""
end

--- SIGTERM (a graceful stop under dstream run), wait up to `seconds`, then
--- SIGKILL: the exit status (137 when killed) and the output.
function Proc:finish(seconds)
    if self.status == nil then
        self:signal("TERM")
        if not self:wait(seconds or 10) then self:kill() end
    end
    local out = self:output()
    os.remove(self.log)
    os.remove(self.status_path)
    os.remove(self.pid_path)
    return self.status, out
end

local WRITE_PID = [[local f = assert(io.open(os.getenv("CRASH_PID_FILE"), "w")) ]]
    .. [[f:write(io.open("/proc/self/stat"):read("*n")) f:close()]]

--- Run LuaJIT on args in the background (see the header).
function crash.spawn(args, opts)
    opts = opts or {}
    local pid_path, status_path, log = os.tmpname(), os.tmpname(), os.tmpname()
    os.remove(pid_path)
    os.remove(status_path)
    local env = {"CRASH_PID_FILE=" .. quote(pid_path)}
    for k, v in pairs(opts.env or {}) do env[#env + 1] = k .. "=" .. quote(v) end
    local words = {}
    for i, a in ipairs(args) do words[i] = quote(a) end
    local cmd = table.concat(words, " ")
    local line = string.format("cd %s && (%s %s -e %s %s >%s 2>&1 </dev/null; echo $? >%s) &",
        quote(crash.ROOT), table.concat(env, " "), quote(crash.LUAJIT), quote(WRITE_PID), cmd,
        quote(log), quote(status_path))
    local ran = os.execute(line)
    assert(ran == 0 or ran == true, "crash.spawn: the shell failed: " .. line)
    local self = setmetatable({cmd = cmd, log = log, status_path = status_path, pid_path = pid_path}, Proc)
    local deadline = crash.now() + 20
    while crash.now() < deadline do
        self.pid = tonumber(crash.read(pid_path) or "")
        if self.pid then return self end
        if self:wait(0.005) then break end
    end
    error(string.format("crash.spawn: %s never started (status %s): %s", cmd, tostring(self.status),
        self:output()), 2)
end

--- Run LuaJIT on args to its end (at most `seconds`, 30, then SIGKILL):
--- its exit status and output.
function crash.run(args, opts, seconds)
    local p = crash.spawn(args, opts)
    p:wait(seconds or 30)
    return p:finish(0)
end

--- SIGKILL to a process this spec started some other way (its pid).
function crash.kill_pid(pid)
    C.kill(pid, SIGNALS.KILL)
end

--- Write data to dir/name atomically: a hidden temporary file, renamed.
function crash.write_atomic(dir, name, data)
    local tmp = dir .. "/.tmp-" .. name
    local f = assert(io.open(tmp, "wb"))
    f:write(data)
    f:close()
    assert(os.rename(tmp, dir .. "/" .. name))
end

--- The names in dir, sorted (nil if it cannot be listed).
function crash.list(dir)
    return core.fs_list(dir)
end

local function u32(s, i)
    local a, b, c, d = s:byte(i, i + 3)
    return a + b * 256 + c * 65536 + d * 16777216
end

--- The codec frames of the file at path, in order: {offset, size} each
--- (size: the 16-byte header and the payload). Raises if the file is not
--- frames back to back.
function crash.frames(path)
    local s = assert(crash.read(path), "cannot read " .. path)
    local out, pos = {}, 1
    while pos <= #s do
        assert(s:sub(pos, pos + 1) == "DS", string.format("%s: no frame at byte %d", path, pos - 1))
        local size = 16 + u32(s, pos + 8)
        out[#out + 1] = {offset = pos - 1, size = size}
        pos = pos + size
    end
    return out
end

--- Cut the file at path to size bytes.
function crash.truncate(path, size)
    assert(C.truncate(path, size) == 0, "truncate failed: " .. path)
end

--- XOR the byte at offset (from 0) of the file at path with mask.
function crash.flip(path, offset, mask)
    local f = assert(io.open(path, "r+b"))
    f:seek("set", offset)
    local b = f:read(1):byte()
    f:seek("set", offset)
    f:write(string.char(bit.bxor(b, mask)))
    f:close()
end

--- Copy the tree from into to (which must not exist).
function crash.copy_tree(from, to)
    local ran = os.execute(string.format("cp -a %s %s", quote(from), quote(to)))
    assert(ran == 0 or ran == true, "cp -a failed: " .. from)
end

--- Remove a tree.
function crash.remove_tree(path)
    core.fs_remove_tree(path)
end

return crash

--[[ line_server: real TCP servers and clients for specs.

A spec that needs a peer on a real socket starts one here: it is
examples/wordgen.lua run as a child process with --file, so what a spec
tests against is the program users run.

    local line_server = require("spec.helpers.line_server")
    local server = line_server.start{lines = {"a b", "b c"}}   -- sends "a b\nb c\n"
    -- ... ssc:socketTextStream(server.host, server.port) ...
    local status, stderr = server:close()                      -- 0, ""

line_server.start(opts) takes exactly one of
    lines       array of strings, each sent followed by "\n"
    data        a string sent as it is (CRLF, NUL, no final newline...)
    file        path of a file sent as it is
and optionally
    mode        "close" (FIN after the data, the default), "hold" (keep the
                connection open until the client closes it) or "reset"
                (an RST once the client has acknowledged every byte)
    connections clients served one after another, each the same bytes (1)
    seconds     wordgen's deadline: it exits by then whatever happens (10)
    host        address to listen on ("127.0.0.1")
Unknown keys and bad values raise. The port is any free one: wordgen binds
port 0 and prints "listening on <host>:<port> pid <pid>", which start()
reads through io.popen. server:close(grace) waits up to grace seconds (3)
for wordgen to finish, kills it (SIGKILL) if it has not, and returns its
exit status (see wordgen's header; 137 when killed) and what it wrote on
stderr. A wordgen that fails to start raises with its exit status and
stderr.

line_server.spawn(args) runs wordgen with any arguments (array of strings)
and returns the same kind of server object: for specs of wordgen itself.

line_server.free_port() is a port nothing listens on (bound, read, closed),
for "connection refused" cases.

line_server.connect(port, host) is a small blocking FFI client: a client
object, or nil and the errno name ("ECONNREFUSED"). Reads wait at most
client.timeout seconds (10) and then fail with "ETIMEDOUT":
    client:receive(n)     up to n bytes (fewer only at EOF or on error)
    client:read_all()     everything up to EOF
both returning the bytes read and nil, or the bytes read before a failure
and its errno name ("ECONNRESET");
    client:peer_closed()  true if an EOF or error is waiting right now
    client:close()
line_server.read_all(port, host) connects, reads all, closes: bytes and
nil or an errno name.
]]

local ffi = require("ffi")
local bit = require("bit")

local line_server = {}

-- libc through the FFI -----------------------------------------------------------

-- Busted may load this module once per spec file; types are declared once.
-- Functions are global to the process and the first declaration wins, so
-- structs are passed as void * (a pointer that converts to any other).
if not pcall(ffi.typeof, "ls_sockaddr_in") then
    ffi.cdef[[
    typedef struct {
        uint16_t sin_family;
        uint16_t sin_port;
        uint8_t sin_addr[4];
        uint8_t sin_zero[8];
    } ls_sockaddr_in;
    typedef struct { int fd; short events; short revents; } ls_pollfd;
    typedef struct { long tv_sec; long tv_nsec; } ls_timespec;
    ]]
end
ffi.cdef[[
int socket(int domain, int type, int protocol);
int bind(int fd, const void *addr, unsigned int len);
int connect(int fd, const void *addr, unsigned int len);
int getsockname(int fd, void *addr, unsigned int *len);
ssize_t recv(int fd, void *buf, size_t len, int flags);
int close(int fd);
int poll(void *fds, unsigned long nfds, int timeout);
int inet_pton(int af, const char *src, void *dst);
int kill(int pid, int sig);
ssize_t readlink(const char *path, char *buf, size_t size);
char *strerror(int errnum);
int clock_gettime(int clk, void *ts);
]]

local C = ffi.C
local AF_INET, SOCK_STREAM, SOCK_CLOEXEC = 2, 1, 0x80000
local MSG_PEEK, MSG_DONTWAIT = 0x2, 0x40
local POLLIN = 0x1
local EINTR, EAGAIN = 4, 11
local SIGKILL = 9
local CLOCK_MONOTONIC = 1

local ERRNO_NAMES = {
    [4] = "EINTR", [11] = "EAGAIN", [13] = "EACCES", [32] = "EPIPE",
    [98] = "EADDRINUSE", [99] = "EADDRNOTAVAIL", [104] = "ECONNRESET",
    [110] = "ETIMEDOUT", [111] = "ECONNREFUSED", [113] = "EHOSTUNREACH",
}

local function errno_name(err)
    return ERRNO_NAMES[err] or ("errno " .. err .. " " .. ffi.string(C.strerror(err)))
end

local ts = ffi.new("ls_timespec")
local ts_ptr = ffi.cast("void *", ts)
local function now()
    C.clock_gettime(CLOCK_MONOTONIC, ts_ptr)
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local function sleep(seconds)
    C.poll(nil, 0, math.ceil(seconds * 1000))
end

local function sockaddr(host, port)
    local addr = ffi.new("ls_sockaddr_in")
    addr.sin_family = AF_INET
    addr.sin_port = bit.bor(bit.rshift(port, 8), bit.lshift(bit.band(port, 0xff), 8))
    if C.inet_pton(AF_INET, host, addr.sin_addr) ~= 1 then
        error(string.format("line_server: %q is not an IPv4 address", host), 3)
    end
    return addr
end

-- Ports and clients ----------------------------------------------------------------

function line_server.free_port()
    local fd = C.socket(AF_INET, bit.bor(SOCK_STREAM, SOCK_CLOEXEC), 0)
    assert(fd >= 0, "socket failed")
    local addr = sockaddr("127.0.0.1", 0)
    local len = ffi.new("unsigned int[1]", ffi.sizeof(addr))
    local ok = C.bind(fd, addr, ffi.sizeof(addr)) == 0 and C.getsockname(fd, addr, len) == 0
    local err = ffi.errno()
    C.close(fd)
    assert(ok, "bind or getsockname failed: " .. errno_name(err))
    return bit.bor(bit.rshift(addr.sin_port, 8), bit.lshift(bit.band(addr.sin_port, 0xff), 8))
end

local Client = {}
Client.__index = Client

function Client:__tostring()
    return string.format("line_server client (%s)", self.fd and "fd " .. self.fd or "closed")
end

function line_server.connect(port, host)
    local addr = sockaddr(host or "127.0.0.1", port)
    local fd = C.socket(AF_INET, bit.bor(SOCK_STREAM, SOCK_CLOEXEC), 0)
    if fd < 0 then
        return nil, errno_name(ffi.errno())
    end
    while C.connect(fd, addr, ffi.sizeof(addr)) ~= 0 do
        local err = ffi.errno()
        if err ~= EINTR then
            C.close(fd)
            return nil, errno_name(err)
        end
    end
    return setmetatable({fd = fd, timeout = 10, buf = ffi.new("char[65536]")}, Client)
end

-- One recv that waits at most until deadline: a string ("" at EOF) or nil, err.
local function recv_before(self, n, deadline)
    local pfd = ffi.new("ls_pollfd[1]", {{self.fd, POLLIN, 0}})
    local pfd_ptr = ffi.cast("void *", pfd)
    while true do
        local got = tonumber(C.recv(self.fd, self.buf, math.min(n, 65536), MSG_DONTWAIT))
        if got >= 0 then
            return ffi.string(self.buf, got)
        end
        local err = ffi.errno()
        if err == EAGAIN then
            local left = deadline - now()
            if left <= 0 then
                return nil, "ETIMEDOUT"
            end
            C.poll(pfd_ptr, 1, math.ceil(left * 1000))
        elseif err ~= EINTR then
            return nil, errno_name(err)
        end
    end
end

function Client:receive(n)
    assert(self.fd, "client is closed")
    local deadline, parts, left = now() + self.timeout, {}, n
    while left > 0 do
        local s, err = recv_before(self, left, deadline)
        if s == nil then
            return table.concat(parts), err
        elseif s == "" then
            break
        end
        parts[#parts + 1] = s
        left = left - #s
    end
    return table.concat(parts)
end

function Client:read_all()
    assert(self.fd, "client is closed")
    local deadline, parts = now() + self.timeout, {}
    while true do
        local s, err = recv_before(self, 65536, deadline)
        if s == nil then
            return table.concat(parts), err
        elseif s == "" then
            return table.concat(parts)
        end
        parts[#parts + 1] = s
    end
end

function Client:peer_closed()
    assert(self.fd, "client is closed")
    local got = tonumber(C.recv(self.fd, self.buf, 1, bit.bor(MSG_PEEK, MSG_DONTWAIT)))
    return got == 0 or (got < 0 and ffi.errno() ~= EAGAIN)
end

function Client:close()
    if self.fd then
        C.close(self.fd)
        self.fd = nil
    end
end

function line_server.read_all(port, host)
    local client, err = line_server.connect(port, host)
    if client == nil then
        return "", err
    end
    local data, read_err = client:read_all()
    client:close()
    return data, read_err
end

-- Servers ----------------------------------------------------------------------------

local HELPER_SOURCE = debug.getinfo(1, "S").source
local ROOT = HELPER_SOURCE:match("^@(.-)spec/helpers/line_server%.lua$")
assert(ROOT, "line_server: cannot find the repository root from " .. HELPER_SOURCE)
local WORDGEN = ROOT .. "examples/wordgen.lua"

-- The interpreter running the specs runs wordgen too.
local function luajit_path()
    local buf = ffi.new("char[4096]")
    local n = tonumber(C.readlink("/proc/self/exe", buf, 4096))
    return n > 0 and ffi.string(buf, n) or "luajit"
end
local LUAJIT = luajit_path()

local function shell_quote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read_file(path)
    local f = io.open(path, "rb")
    if f == nil then
        return nil
    end
    local s = f:read("*a")
    f:close()
    return s
end

local Server = {}
Server.__index = Server

function Server:__tostring()
    return string.format("line_server %s:%d (wordgen pid %d%s)", self.host, self.port,
        self.pid, self.status and ", exited " .. self.status or "")
end

-- Reaps the shell around wordgen and collects wordgen's exit status and stderr.
local function finish(self)
    self.pipe:close()
    self.status = tonumber(read_file(self.status_path)) or -1
    self.stderr = read_file(self.stderr_path) or ""
    os.remove(self.status_path)
    os.remove(self.stderr_path)
    for _, path in ipairs(self.remove_on_close) do
        os.remove(path)
    end
end

function Server:close(grace)
    if self.status == nil then
        local deadline = now() + (grace or 3)
        while C.kill(self.pid, 0) == 0 and now() < deadline do
            sleep(0.01)
        end
        if C.kill(self.pid, 0) == 0 then
            C.kill(self.pid, SIGKILL)
        end
        finish(self)
    end
    return self.status, self.stderr
end

-- Runs wordgen under a shell that records its exit status and stderr in
-- files; wordgen's stdout is the pipe that start() reads the port from.
local function spawn(args, remove_on_close, level)
    local status_path, stderr_path = os.tmpname(), os.tmpname()
    local words = {LUAJIT, WORDGEN}
    for _, a in ipairs(args) do
        words[#words + 1] = a
    end
    for i, w in ipairs(words) do
        words[i] = shell_quote(w)
    end
    local cmd = string.format("exec 2>%s; %s; echo $? >%s", shell_quote(stderr_path),
        table.concat(words, " "), shell_quote(status_path))
    local self = setmetatable({
        pipe = assert(io.popen(cmd, "r")),
        status_path = status_path,
        stderr_path = stderr_path,
        remove_on_close = remove_on_close,
    }, Server)
    local line = self.pipe:read("*l")
    local host, port, pid = (line or ""):match("^listening on (.+):(%d+) pid (%d+)$")
    if host == nil then
        finish(self)
        error(string.format("line_server: wordgen did not start (exit status %d, printed %q): %s",
            self.status, line or "", self.stderr), level + 1)
    end
    self.host, self.port, self.pid = host, tonumber(port), tonumber(pid)
    return self
end

function line_server.spawn(args)
    return spawn(args, {}, 2)
end

local START_OPTIONS = {lines = true, data = true, file = true, mode = true,
    connections = true, seconds = true, host = true}
-- Each mode and the wordgen flag that gives it.
local MODES = {close = false, hold = "--lines-then-hold", reset = "--reset"}

local function check_start_options(opts)
    for k in pairs(opts) do
        if not START_OPTIONS[k] then
            error(string.format("line_server.start: unknown option %q (allowed: connections, "
                .. "data, file, host, lines, mode, seconds)", tostring(k)), 3)
        end
    end
    local sources = (opts.lines and 1 or 0) + (opts.data and 1 or 0) + (opts.file and 1 or 0)
    if sources ~= 1 then
        error("line_server.start: give exactly one of lines, data, file", 3)
    end
    if MODES[opts.mode or "close"] == nil then
        error(string.format("line_server.start: mode %q is not one of close, hold, reset",
            tostring(opts.mode)), 3)
    end
end

function line_server.start(opts)
    check_start_options(opts)
    local path, remove_on_close = opts.file, {}
    if path == nil then
        path = os.tmpname()
        remove_on_close[1] = path
        local f = assert(io.open(path, "wb"))
        if opts.lines then
            for _, l in ipairs(opts.lines) do
                f:write(l, "\n")
            end
        else
            f:write(opts.data)
        end
        f:close()
    end
    local args = {"--host", opts.host or "127.0.0.1", "--port", "0", "--file", path,
        "--connections", tostring(opts.connections or 1), "--seconds", tostring(opts.seconds or 10)}
    if MODES[opts.mode or "close"] then
        args[#args + 1] = MODES[opts.mode]
    end
    return spawn(args, remove_on_close, 2)
end

return line_server

--[[ feeder: a TCP server of numbered lines that carries on across clients.

Run as a script (not a module) by the fault specs: the other end of a
socketTextStream whose process is killed and restarted. Unlike wordgen,
which gives every client the same lines from the start, the feeder sends
the lines "1", "2", ... "N" once in all: a client that connects gets the
lines after the last one sent, and a new client replaces the one before
(a killed pipeline reconnects; its old connection is dropped). Lines sent to
a process that died before it logged them are gone, as with any TCP source.

    luajit spec/helpers/feeder.lua --lines N --rate R --seconds S --status PATH

prints "listening on 127.0.0.1:<port> pid <pid>" on stdout, sends R lines a
second (in bursts every 10 ms), writes "sent <n>" to PATH (atomically) as it
goes and "done <N>" once every line was sent, and exits at S seconds.
]]

local ffi = require("ffi")
local bit = require("bit")

ffi.cdef[[
typedef struct { uint16_t sin_family; uint16_t sin_port; uint8_t sin_addr[4]; uint8_t sin_zero[8]; } fd_sockaddr_in;
typedef struct { int fd; short events; short revents; } fd_pollfd;
typedef struct { long tv_sec; long tv_nsec; } fd_timespec;
int socket(int domain, int type, int protocol);
int setsockopt(int fd, int level, int name, const void *val, unsigned int len);
int bind(int fd, const void *addr, unsigned int len);
int listen(int fd, int backlog);
int accept4(int fd, void *addr, unsigned int *len, int flags);
int getsockname(int fd, void *addr, unsigned int *len);
ssize_t send(int fd, const void *buf, size_t len, int flags);
ssize_t recv(int fd, void *buf, size_t len, int flags);
int close(int fd);
int poll(fd_pollfd *fds, unsigned long nfds, int timeout);
int getpid(void);
int clock_gettime(int clk, fd_timespec *ts);
]]

local C = ffi.C
local SOCK_NONBLOCK, SOCK_CLOEXEC = 0x800, 0x80000
local MSG_DONTWAIT, MSG_NOSIGNAL = 0x40, 0x4000
local EAGAIN = 11

local opts = {lines = 1000, rate = 1000, seconds = 60}
local i = 1
while arg[i] do
    local k, v = arg[i]:match("^%-%-(%a+)$"), arg[i + 1]
    assert(k and v, "feeder: bad argument " .. arg[i])
    opts[k] = k == "status" and v or assert(tonumber(v), "feeder: --" .. k .. " wants a number")
    i = i + 2
end

local ts = ffi.new("fd_timespec")
local function now()
    C.clock_gettime(1, ts)
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local function status(text)
    if not opts.status then return end
    local f = assert(io.open(opts.status .. ".tmp", "w"))
    f:write(text, "\n")
    f:close()
    assert(os.rename(opts.status .. ".tmp", opts.status))
end

local addr = ffi.new("fd_sockaddr_in")
addr.sin_family = 2
addr.sin_addr[0], addr.sin_addr[3] = 127, 1
local lfd = C.socket(2, bit.bor(1, SOCK_NONBLOCK, SOCK_CLOEXEC), 0)
local one = ffi.new("int[1]", 1)
local len = ffi.new("unsigned int[1]", ffi.sizeof(addr))
assert(lfd >= 0 and C.setsockopt(lfd, 1, 2, one, 4) == 0 and C.bind(lfd, addr, ffi.sizeof(addr)) == 0
    and C.listen(lfd, 16) == 0 and C.getsockname(lfd, addr, len) == 0, "feeder: cannot listen")
local port = bit.bor(bit.rshift(addr.sin_port, 8), bit.lshift(bit.band(addr.sin_port, 0xff), 8))
io.write(string.format("listening on 127.0.0.1:%d pid %d\n", port, C.getpid()))
io.flush()

local deadline = now() + opts.seconds
local client, next_line, out = nil, 1, ""
local pfd = ffi.new("fd_pollfd[2]")
local scratch = ffi.new("char[4096]")
local started = now()
status("sent 0")

-- Sends what it can of `out` now; false once the client is gone.
local function flush()
    while #out > 0 do
        local n = tonumber(C.send(client, out, #out, bit.bor(MSG_NOSIGNAL, MSG_DONTWAIT)))
        if n < 0 then return ffi.errno() == EAGAIN end
        out = out:sub(n + 1)
    end
    return true
end

local function drop()
    C.close(client)
    client, out = nil, "" -- bytes not sent to the old client are lost with it
end

while now() < deadline do
    pfd[0].fd, pfd[0].events, pfd[0].revents = lfd, 1, 0
    pfd[1].fd, pfd[1].events, pfd[1].revents = client or -1, 1, 0
    C.poll(pfd, 2, 10)
    if pfd[0].revents ~= 0 then
        local fd = C.accept4(lfd, nil, nil, bit.bor(SOCK_NONBLOCK, SOCK_CLOEXEC))
        if fd >= 0 then
            if client then drop() end
            client, started = fd, now() - (next_line - 1) / opts.rate
        end
    end
    if client and pfd[1].revents ~= 0 then
        local n = tonumber(C.recv(client, scratch, 4096, MSG_DONTWAIT))
        if n == 0 or (n < 0 and ffi.errno() ~= EAGAIN) then drop() end
    end
    if client then
        local due = math.min(opts.lines, math.floor((now() - started) * opts.rate))
        if due >= next_line then
            local parts = {}
            for n = next_line, due do parts[#parts + 1] = n .. "\n" end
            out = out .. table.concat(parts)
            next_line = due + 1
            status(next_line > opts.lines and ("done " .. opts.lines) or ("sent " .. due))
        end
        if not flush() then drop() end
    end
end
if client then C.close(client) end

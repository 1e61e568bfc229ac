--[[ wordgen: a TCP server that feeds lines of text to whoever connects.

It is the other end of `ssc:socketTextStream(host, port)`: run it in one
terminal, point a pipeline at the port it prints, and watch words arrive.
The specs and the benchmark use it too, as a real server on a real socket.

    luajit examples/wordgen.lua --port 9999 --seconds 5
    luajit examples/wordgen.lua --port 0 --file bench/data/words.txt

Once it listens it prints exactly one line on stdout, then stays quiet:

    listening on 127.0.0.1:9999 pid 12345

so a parent reading its stdout (io.popen) learns the port (useful with
--port 0, which takes any free port) and the pid (to stop it). Problems go
to stderr, prefixed "wordgen:".

WHAT IT SENDS. By default, random English-like lines: 3 to 12 words drawn
from a small built-in vocabulary with Zipf-like frequencies (the word of
rank k is about k times rarer than the most common one), --rate lines per
second to each client, until --seconds have passed since start. Every
client gets the same sequence from its beginning; --seed fixes it. With
--lines N each client gets N lines and no more. With --file PATH each
client gets the file's bytes exactly as they are, as fast as it reads.

HOW A CONNECTION ENDS. After its data a client's connection is closed
normally (FIN); --lines-then-hold keeps it open until the client closes it
or --seconds pass; --reset waits until the client has acknowledged every
byte and then aborts the connection (SO_LINGER {1, 0}: an RST, which the
client reads as ECONNRESET).

CLIENTS are served one after another. The server stops accepting when
--seconds have passed since it started, or once --connections clients
have been served (default: 1 with --file, no limit otherwise). It never
outlives --seconds (default 5; 120 with --file), whatever clients do.

EXIT STATUS: 0 done; 1 bad arguments, unreadable file, or the address
could not be bound; 2 not every one of the --connections clients (1 with
--file) connected and received all its data before the deadline.

Linux only: LuaJIT's FFI over libc sockets, non-blocking, driven by poll;
sends use MSG_NOSIGNAL so a client that leaves raises no SIGPIPE.
]]

local ffi = require("ffi")
local bit = require("bit")

local USAGE = [[
usage: luajit examples/wordgen.lua [options]
  --host ADDR         IPv4 address to listen on (default 127.0.0.1; "localhost" works)
  --port N            port, 0 = any free port (default 0)
  --seconds S         overall deadline in seconds (default 5, or 120 with --file)
  --rate R            generated lines per second per client, 0 = as fast as possible (default 1000)
  --lines N           generated lines per client (default: until the deadline)
  --seed N            seed of the generated text, 0 <= N < 2^31 (default: from time and pid)
  --file PATH         send this file's bytes instead of generated lines
  --connections N     serve N clients, then exit (default 1 with --file, else no limit)
  --lines-then-hold   after sending, keep the connection open until the client closes it
  --reset             after sending, abort the connection with an RST instead of a FIN
  --help              print this and exit
]]

-- Options --------------------------------------------------------------------

local function usage_error(fmt, ...)
    io.stderr:write("wordgen: ", string.format(fmt, ...), "\n(try --help)\n")
    os.exit(1)
end

local function parse_number(name, text, min, max, integer)
    local n = tonumber(text)
    if n == nil or n ~= n or n < min or n > max or (integer and n % 1 ~= 0) then
        usage_error("%s wants %s between %s and %s, got %q", name,
            integer and "an integer" or "a number", tostring(min), tostring(max),
            tostring(text))
    end
    return n
end

-- Each option: its field in opts, and how to read its value (nil for a flag).
local OPTIONS = {
    ["--host"] = {"host", function(_, v) return v end},
    ["--port"] = {"port", function(k, v) return parse_number(k, v, 0, 65535, true) end},
    ["--seconds"] = {"seconds", function(k, v) return parse_number(k, v, 0.001, 86400, false) end},
    ["--rate"] = {"rate", function(k, v) return parse_number(k, v, 0, 1e7, false) end},
    ["--lines"] = {"lines", function(k, v) return parse_number(k, v, 0, 2^53, true) end},
    ["--seed"] = {"seed", function(k, v) return parse_number(k, v, 0, 2^31 - 1, true) end},
    ["--file"] = {"file", function(_, v) return v end},
    ["--connections"] = {"connections", function(k, v) return parse_number(k, v, 1, 2^31, true) end},
    ["--lines-then-hold"] = {"hold"},
    ["--reset"] = {"reset"},
    ["--help"] = {"help"},
}

local function parse_args(argv)
    local opts = {}
    local i = 1
    while i <= #argv do
        local spec = OPTIONS[argv[i]]
        if spec == nil then
            usage_error("unknown argument %q", argv[i])
        end
        local field, read = spec[1], spec[2]
        if opts[field] ~= nil then
            usage_error("%s given twice", argv[i])
        end
        if read == nil then
            opts[field] = true
        else
            if argv[i + 1] == nil then
                usage_error("%s needs a value", argv[i])
            end
            opts[field] = read(argv[i], argv[i + 1])
            i = i + 1
        end
        i = i + 1
    end
    if opts.help then
        io.stdout:write(USAGE)
        os.exit(0)
    end
    if opts.hold and opts.reset then
        usage_error("--lines-then-hold and --reset exclude each other")
    end
    if opts.file and (opts.rate or opts.lines or opts.seed) then
        usage_error("--file sends the file as it is: --rate, --lines and --seed do not apply")
    end
    opts.host = opts.host or "127.0.0.1"
    if opts.host == "localhost" then
        opts.host = "127.0.0.1"
    end
    opts.port = opts.port or 0
    opts.seconds = opts.seconds or (opts.file and 120 or 5)
    opts.rate = opts.rate or 1000
    opts.connections = opts.connections or (opts.file and 1 or nil)
    return opts
end

-- libc through the FFI (Linux values of the constants) ------------------------

if ffi.os ~= "Linux" then
    io.stderr:write("wordgen: Linux only (uses Linux socket constants)\n")
    os.exit(1)
end

ffi.cdef[[
typedef struct {
    uint16_t sin_family;
    uint16_t sin_port;
    uint8_t sin_addr[4];
    uint8_t sin_zero[8];
} wg_sockaddr_in;
typedef struct { int fd; short events; short revents; } wg_pollfd;
typedef struct { int l_onoff; int l_linger; } wg_linger;
typedef struct { long tv_sec; long tv_nsec; } wg_timespec;
int socket(int domain, int type, int protocol);
int setsockopt(int fd, int level, int name, const void *val, unsigned int len);
int bind(int fd, const void *addr, unsigned int len);
int listen(int fd, int backlog);
int accept4(int fd, void *addr, unsigned int *len, int flags);
int getsockname(int fd, void *addr, unsigned int *len);
ssize_t send(int fd, const void *buf, size_t len, int flags);
ssize_t recv(int fd, void *buf, size_t len, int flags);
int close(int fd);
int poll(wg_pollfd *fds, unsigned long nfds, int timeout);
int ioctl(int fd, unsigned long request, ...);
int inet_pton(int af, const char *src, void *dst);
int getpid(void);
char *strerror(int errnum);
int clock_gettime(int clk, wg_timespec *ts);
]]

local C = ffi.C
local AF_INET, SOCK_STREAM = 2, 1
local SOCK_NONBLOCK, SOCK_CLOEXEC = 0x800, 0x80000
local SOL_SOCKET, SO_REUSEADDR, SO_LINGER = 1, 2, 13
local MSG_DONTWAIT, MSG_NOSIGNAL = 0x40, 0x4000
local POLLIN, POLLOUT = 0x1, 0x4
local TIOCOUTQ = 0x5411
local CLOCK_MONOTONIC = 1
local EINTR, EAGAIN = 4, 11

local ERRNO_NAMES = {
    [1] = "EPERM", [2] = "ENOENT", [4] = "EINTR", [9] = "EBADF", [11] = "EAGAIN",
    [12] = "ENOMEM", [13] = "EACCES", [22] = "EINVAL", [24] = "EMFILE",
    [32] = "EPIPE", [98] = "EADDRINUSE", [99] = "EADDRNOTAVAIL",
    [103] = "ECONNABORTED", [104] = "ECONNRESET", [110] = "ETIMEDOUT",
    [111] = "ECONNREFUSED",
}

local function errno_text(err)
    return string.format("%s (%s)", ERRNO_NAMES[err] or ("errno " .. err),
        ffi.string(C.strerror(err)))
end

local ts = ffi.new("wg_timespec")
local function now()
    C.clock_gettime(CLOCK_MONOTONIC, ts)
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local pfd = ffi.new("wg_pollfd[1]")
-- Waits until fd is ready for events or the deadline passes; true if ready
-- (an error or hang-up on fd counts as ready: the next call reports it).
local function wait_fd(fd, events, deadline, max_wait)
    while true do
        local left = deadline - now()
        if left <= 0 then
            return false
        end
        if max_wait and max_wait < left then
            left = max_wait
        end
        pfd[0].fd, pfd[0].events, pfd[0].revents = fd, events, 0
        local r = C.poll(pfd, 1, math.max(1, math.ceil(left * 1000)))
        if r > 0 then
            return true
        elseif r == 0 and max_wait then
            return false
        elseif r < 0 and ffi.errno() ~= EINTR then
            error("poll: " .. errno_text(ffi.errno()))
        end
    end
end

-- Sockets ----------------------------------------------------------------------

local one = ffi.new("int[1]", 1)

local function listen_on(host, port)
    local addr = ffi.new("wg_sockaddr_in")
    addr.sin_family = AF_INET
    addr.sin_port = bit.bor(bit.rshift(port, 8), bit.lshift(bit.band(port, 0xff), 8))
    if C.inet_pton(AF_INET, host, addr.sin_addr) ~= 1 then
        return nil, string.format("%q is not an IPv4 address", host)
    end
    local fd = C.socket(AF_INET, bit.bor(SOCK_STREAM, SOCK_NONBLOCK, SOCK_CLOEXEC), 0)
    if fd < 0 then
        return nil, "socket: " .. errno_text(ffi.errno())
    end
    local len = ffi.new("unsigned int[1]", ffi.sizeof(addr))
    if C.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, ffi.sizeof("int")) ~= 0
        or C.bind(fd, addr, ffi.sizeof(addr)) ~= 0
        or C.listen(fd, 16) ~= 0
        or C.getsockname(fd, addr, len) ~= 0 then
        local err = ffi.errno()
        C.close(fd)
        return nil, string.format("cannot listen on %s:%d: %s", host, port, errno_text(err))
    end
    local bound = addr.sin_port
    return fd, bit.bor(bit.rshift(bound, 8), bit.lshift(bit.band(bound, 0xff), 8))
end

-- Waits for the next client until the deadline; its fd (non-blocking) or nil.
local function accept_before(lfd, deadline)
    while wait_fd(lfd, POLLIN, deadline) do
        local fd = C.accept4(lfd, nil, nil, bit.bor(SOCK_NONBLOCK, SOCK_CLOEXEC))
        if fd >= 0 then
            return fd
        end
        local err = ffi.errno()
        if err ~= EINTR and err ~= EAGAIN and err ~= 103 then
            error("accept: " .. errno_text(err))
        end
    end
    return nil
end

-- Sends all of s, waiting for room as needed; true, or nil and why not.
local function send_all(fd, s, deadline)
    local p, left = ffi.cast("const char *", s), #s
    while left > 0 do
        local n = tonumber(C.send(fd, p, left, MSG_NOSIGNAL))
        if n >= 0 then
            p, left = p + n, left - n
        else
            local err = ffi.errno()
            if err == EAGAIN then
                if not wait_fd(fd, POLLOUT, deadline) then
                    return nil, "deadline passed"
                end
            elseif err ~= EINTR then
                return nil, errno_text(err)
            end
        end
    end
    return true
end

local scratch = ffi.new("char[65536]")
-- Reads and drops what the client sent; false once it closed or failed.
local function drain(fd)
    while true do
        local n = tonumber(C.recv(fd, scratch, 65536, MSG_DONTWAIT))
        if n == 0 then
            return false
        elseif n < 0 then
            local err = ffi.errno()
            if err == EAGAIN then
                return true
            elseif err ~= EINTR then
                return false
            end
        end
    end
end

-- Keeps the connection until the client closes it or the deadline passes.
local function hold(fd, deadline)
    while wait_fd(fd, POLLIN, deadline) do
        if not drain(fd) then
            return
        end
    end
end

-- Waits until the client acknowledged every byte sent (so an RST cannot
-- destroy data still in flight); false if the deadline passed first.
local function wait_acked(fd, deadline)
    local outq = ffi.new("int[1]")
    while now() < deadline do
        if C.ioctl(fd, TIOCOUTQ, outq) ~= 0 or outq[0] == 0 then
            return true
        end
        if wait_fd(fd, POLLIN, deadline, 0.002) and not drain(fd) then
            return false
        end
    end
    return false
end

local function close_reset(fd)
    local lin = ffi.new("wg_linger", 1, 0)
    C.setsockopt(fd, SOL_SOCKET, SO_LINGER, lin, ffi.sizeof(lin))
    C.close(fd)
end

-- Generated text ---------------------------------------------------------------

-- Most common English words, most frequent first: rank k gets weight 1/k.
local VOCABULARY = {
    "the", "of", "and", "to", "a", "in", "is", "that", "it", "was", "for", "on",
    "are", "as", "with", "his", "they", "at", "be", "this", "have", "from", "or",
    "one", "had", "by", "word", "but", "not", "what", "all", "were", "we", "when",
    "your", "can", "said", "there", "use", "an", "each", "which", "she", "do",
    "how", "their", "if", "will", "up", "other", "about", "out", "many", "then",
    "them", "these", "so", "some", "her", "would", "make", "like", "him", "into",
    "time", "has", "look", "two", "more", "write", "go", "see", "number", "no",
    "way", "could", "people", "my", "than", "first", "water", "been", "call",
    "who", "oil", "its", "now", "find", "long", "down", "day", "did", "get",
    "come", "made", "may", "part", "over", "new", "sound", "take", "only",
    "little", "work", "know", "place", "year", "live", "me", "back", "give",
    "most", "very", "after", "thing", "our", "just", "name", "good", "sentence",
    "man", "think", "say", "great", "where", "help", "through", "much", "before",
    "line", "right", "too", "mean", "old", "any", "same", "tell", "boy",
    "follow", "came", "want", "show", "also", "around", "form", "three", "small",
    "set", "put", "end", "does", "another", "well", "large", "must", "big",
    "even", "such", "because", "turn", "here", "why", "ask", "went", "men",
    "read", "need", "land", "different", "home", "us", "move", "try", "kind",
    "hand", "picture", "again", "change", "off", "play", "spell", "air", "away",
    "animal", "house", "point", "page", "letter", "mother", "answer", "found",
    "study", "still", "learn", "should", "world", "high", "river", "stream",
}

local CUMULATIVE = {}
do
    local total = 0
    for k = 1, #VOCABULARY do
        total = total + 1 / k
        CUMULATIVE[k] = total
    end
end

-- A xorshift32 generator of our own, so a seed means the same text on every
-- LuaJIT build (math.random's sequence is not promised across versions).
local Rng = {}
Rng.__index = Rng

local function new_rng(seed)
    local state = bit.bxor(seed, 0x2545F491)
    if state == 0 then
        state = 1
    end
    return setmetatable({state = state}, Rng)
end

-- A float uniform in [0, 1).
function Rng:float()
    local x = self.state
    x = bit.bxor(x, bit.lshift(x, 13))
    x = bit.bxor(x, bit.rshift(x, 17))
    x = bit.bxor(x, bit.lshift(x, 5))
    self.state = x
    return (x % 4294967296) / 4294967296
end

function Rng:word()
    local u = self:float() * CUMULATIVE[#CUMULATIVE]
    local lo, hi = 1, #CUMULATIVE
    while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        if CUMULATIVE[mid] < u then
            lo = mid + 1
        else
            hi = mid
        end
    end
    return VOCABULARY[lo]
end

local line_words = {}
function Rng:line()
    local n = 3 + math.floor(self:float() * 10)
    for i = 1, n do
        line_words[i] = self:word()
    end
    return table.concat(line_words, " ", 1, n) .. "\n"
end

-- Serving one client -------------------------------------------------------------
--
-- Each serve_* returns true when the client got all it was owed, or false
-- and a reason.

local MAX_LINES_PER_SEND = 4096

local function serve_generated(fd, opts, deadline)
    local rng = new_rng(opts.seed)
    local start, sent, limit, rate = now(), 0, opts.lines, opts.rate
    local chunk = {}
    while limit == nil or sent < limit do
        local t = now()
        if t >= deadline then
            -- An endless stream is complete at the deadline; a counted one is not.
            return limit == nil, "deadline passed"
        end
        local due = rate == 0 and math.huge or math.floor((t - start) * rate) + 1
        due = math.min(due, sent + MAX_LINES_PER_SEND, limit or math.huge)
        if due > sent then
            for i = 1, due - sent do
                chunk[i] = rng:line()
            end
            local ok, why = send_all(fd, table.concat(chunk, "", 1, due - sent), deadline)
            if not ok then
                return limit == nil, why
            end
            sent = due
        elseif wait_fd(fd, POLLIN, deadline, (sent / rate) - (t - start)) and not drain(fd) then
            return limit == nil, "client closed the connection"
        end
    end
    return true
end

local FILE_CHUNK = 1024 * 1024

local function serve_file(fd, file, deadline)
    file:seek("set", 0)
    while true do
        local chunk, err = file:read(FILE_CHUNK)
        if chunk == nil then
            return err == nil, err
        end
        local ok, why = send_all(fd, chunk, deadline)
        if not ok then
            return false, why
        end
    end
end

-- Sends a client its data, ends the connection as asked; true if all went.
local function serve_client(fd, opts, file, deadline)
    local ok, why
    if file then
        ok, why = serve_file(fd, file, deadline)
    else
        ok, why = serve_generated(fd, opts, deadline)
    end
    if ok and opts.hold then
        hold(fd, deadline)
    end
    if ok and opts.reset then
        if not wait_acked(fd, deadline) then
            ok, why = false, "client closed or deadline passed before it acknowledged every byte"
        end
        close_reset(fd)
    else
        drain(fd)
        C.close(fd)
    end
    return ok, why
end

-- Main ---------------------------------------------------------------------------

local function main(argv)
    local opts = parse_args(argv)
    local started = now()
    local deadline = started + opts.seconds
    local file
    if opts.file then
        local err
        file, err = io.open(opts.file, "rb")
        if file == nil then
            io.stderr:write("wordgen: cannot read ", err, "\n")
            return 1
        end
    end
    opts.seed = opts.seed or bit.band(bit.bxor(os.time(), C.getpid() * 7919), 0x7fffffff)

    local lfd, port = listen_on(opts.host, opts.port)
    if lfd == nil then
        io.stderr:write("wordgen: ", port, "\n")
        return 1
    end
    io.stdout:write(string.format("listening on %s:%d pid %d\n", opts.host, port, C.getpid()))
    io.stdout:flush()

    local served, failed = 0, 0
    while opts.connections == nil or served + failed < opts.connections do
        local fd = accept_before(lfd, deadline)
        if fd == nil then
            break
        end
        local ok, why = serve_client(fd, opts, file, deadline)
        if ok then
            served = served + 1
        else
            failed = failed + 1
            io.stderr:write(string.format("wordgen: client %d: %s\n", served + failed, why))
        end
    end
    C.close(lfd)
    if file then
        file:close()
    end
    if opts.connections and served < opts.connections then
        io.stderr:write(string.format("wordgen: %d of %d clients served before the deadline (%gs)\n",
            served, opts.connections, opts.seconds))
        return 2
    end
    return 0
end

os.exit(main(arg))

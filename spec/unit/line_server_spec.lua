-- Specs of spec/helpers/line_server.lua and of examples/wordgen.lua behind it:
-- real processes, real sockets, bytes compared exactly.

local line_server = require("spec.helpers.line_server")

local function temp_file(bytes)
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(bytes)
    f:close()
    return path
end

-- Bytes 0..255 in a scrambled but fixed order, n of them.
local function binary_bytes(n)
    local t = {}
    for i = 1, n do
        t[i] = string.char((i * 7919 + math.floor(i / 251)) % 256)
    end
    return table.concat(t)
end

local function lines_of(s)
    local lines = {}
    for line in s:gmatch("([^\n]*)\n") do
        lines[#lines + 1] = line
    end
    return lines
end

describe("line_server.start", function()
    it("sends the given lines, each ending in a newline, then closes", function()
        local server = line_server.start{lines = {"to be or", "not to be"}}
        local data, err = line_server.read_all(server.port, server.host)
        assert.are.equal("to be or\nnot to be\n", data)
        assert.is_nil(err)
        assert.are.equal(0, server:close())
    end)

    it("sends data exactly as given, CR, NUL and a missing final newline included", function()
        local bytes = "a b\r\nc\0d\n\nno newline at the end"
        local server = line_server.start{data = bytes}
        assert.are.equal(bytes, (line_server.read_all(server.port)))
        assert.are.equal(0, server:close())
    end)

    it("sends a file's bytes as they are", function()
        local bytes = binary_bytes(3 * 1024 * 1024 + 17)
        local path = temp_file(bytes)
        local server = line_server.start{file = path}
        local data, err = line_server.read_all(server.port)
        os.remove(path)
        assert.is_nil(err)
        assert.are.equal(#bytes, #data)
        assert.is_true(bytes == data)
        assert.are.equal(0, server:close())
    end)

    it("sends nothing and closes when given no lines", function()
        local server = line_server.start{lines = {}}
        local data, err = line_server.read_all(server.port)
        assert.are.equal("", data)
        assert.is_nil(err)
        assert.are.equal(0, server:close())
    end)

    it("serves each of several clients the same bytes, one after another", function()
        local server = line_server.start{lines = {"x y z"}, connections = 3}
        for _ = 1, 3 do
            assert.are.equal("x y z\n", (line_server.read_all(server.port)))
        end
        assert.are.equal(0, server:close())
    end)

    it("keeps the connection open in hold mode until the client closes it", function()
        local server = line_server.start{lines = {"held"}, mode = "hold"}
        local client = assert(line_server.connect(server.port))
        assert.are.equal("held\n", client:receive(5))
        assert.is_false(client:peer_closed())
        client:close()
        assert.are.equal(0, server:close())
    end)

    it("ends the connection with a reset in reset mode, after all the data", function()
        local server = line_server.start{lines = {"one", "two"}, mode = "reset"}
        local data, err = line_server.read_all(server.port)
        assert.are.equal("one\ntwo\n", data)
        assert.are.equal("ECONNRESET", err)
        assert.are.equal(0, server:close())
    end)

    it("rejects unknown options, bad modes and ambiguous sources", function()
        assert.has_error(function() line_server.start{lines = {}, port = 1} end,
            'line_server.start: unknown option "port" (allowed: connections, data, file, '
            .. 'host, lines, mode, seconds)')
        assert.has_error(function() line_server.start{lines = {}, mode = "drop"} end,
            'line_server.start: mode "drop" is not one of close, hold, reset')
        assert.has_error(function() line_server.start{lines = {}, data = ""} end,
            "line_server.start: give exactly one of lines, data, file")
        assert.has_error(function() line_server.start{} end,
            "line_server.start: give exactly one of lines, data, file")
    end)

    it("raises with wordgen's exit status and message when it cannot start", function()
        local ok, err = pcall(line_server.start, {file = "/nonexistent/words.txt"})
        assert.is_false(ok)
        assert.matches("wordgen did not start (exit status 1", err, 1, true)
        assert.matches("cannot read /nonexistent/words.txt", err, 1, true)
    end)
end)

describe("server:close", function()
    it("returns status 2 and wordgen's complaint when no client came before the deadline", function()
        local server = line_server.start{lines = {"unread"}, seconds = 0.2}
        local status, stderr = server:close()
        assert.are.equal(2, status)
        assert.matches("0 of 1 clients served before the deadline", stderr, 1, true)
    end)

    it("returns status 2 when a client leaves before receiving everything", function()
        local server = line_server.start{data = string.rep("0123456789abcdef", 2 ^ 21)}
        local client = assert(line_server.connect(server.port))
        assert.are.equal("0123456789", client:receive(10))
        client:close()
        local status, stderr = server:close()
        assert.are.equal(2, status)
        assert.matches("wordgen: client 1: E[A-Z]+", stderr)
    end)

    it("kills a wordgen still running after the grace period", function()
        local server = line_server.start{lines = {"never read"}, seconds = 60}
        assert.are.equal(137, server:close(0.05))
        assert.are.equal(137, server:close())
    end)
end)

describe("line_server.free_port", function()
    it("returns a port where connections are refused", function()
        local port = line_server.free_port()
        assert.is_true(port > 0 and port < 65536)
        local client, err = line_server.connect(port)
        assert.is_nil(client)
        assert.are.equal("ECONNREFUSED", err)
        local data, read_err = line_server.read_all(port)
        assert.are.equal("", data)
        assert.are.equal("ECONNREFUSED", read_err)
    end)
end)

describe("wordgen", function()
    local function generate(args)
        local server = line_server.spawn(args)
        local data, err = line_server.read_all(server.port)
        assert.is_nil(err)
        local status, stderr = server:close()
        assert.are.equal(0, status, stderr)
        return data
    end

    it("generates lines of 3 to 12 lowercase words", function()
        local lines = lines_of(generate{"--lines", "300", "--rate", "0", "--seed", "42",
            "--connections", "1"})
        assert.are.equal(300, #lines)
        for _, line in ipairs(lines) do
            local words = {}
            for w in line:gmatch("[a-z]+") do
                words[#words + 1] = w
            end
            assert.are.equal(line, table.concat(words, " "))
            assert.is_true(#words >= 3 and #words <= 12, line)
        end
    end)

    it("generates the same text for the same seed and another for another seed", function()
        local args = {"--connections", "1", "--lines", "100", "--rate", "0", "--seed", "7"}
        local first, second = generate(args), generate(args)
        assert.are.equal(first, second)
        args[#args] = "8"
        assert.are_not.equal(first, generate(args))
    end)

    it("gives every client the same lines from the start", function()
        local server = line_server.spawn{"--lines", "50", "--rate", "0", "--seed", "3",
            "--connections", "2"}
        local first = line_server.read_all(server.port)
        local second = line_server.read_all(server.port)
        assert.are.equal(0, server:close())
        assert.are.equal(50, #lines_of(first))
        assert.are.equal(first, second)
    end)

    it("streams whole lines until the deadline when no line count is given", function()
        local data = generate{"--seconds", "0.3", "--rate", "200"}
        assert.is_true(#data > 0)
        assert.are.equal("\n", data:sub(-1))
    end)

    it("exits with status 1 and says why on a bad argument", function()
        local ok, err = pcall(line_server.spawn, {"--rate", "fast"})
        assert.is_false(ok)
        assert.matches("exit status 1", err, 1, true)
        assert.matches('--rate wants a number between 0 and 10000000, got "fast"', err, 1, true)
    end)

    it("exits with status 1 when the port is taken", function()
        local server = line_server.start{lines = {"x"}}
        local ok, err = pcall(line_server.spawn, {"--port", tostring(server.port)})
        assert.is_false(ok)
        assert.matches("exit status 1", err, 1, true)
        assert.matches("EADDRINUSE", err, 1, true)
        line_server.read_all(server.port)
        assert.are.equal(0, server:close())
    end)
end)

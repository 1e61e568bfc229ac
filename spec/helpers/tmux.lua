--[[ tmux: drive a real terminal session and read what a person would see.

A spec that checks an interactive program (the REPL of `luajit -i -l
dstream`) starts it here in a detached tmux session, types lines into it and
reads the pane back:

    local tmux = require("spec.helpers.tmux")
    local session = tmux.start("luajit -i -l dstream", {LUA_PATH = "lua/?.lua;;"})
    session:wait_for("\n>$")                -- the first prompt
    session:send("print(1 + 1)")
    session:wait_for("\n2\n>$")             -- "> print(1 + 1)", "2", ">"
    session:kill()

tmux.available() is true when the tmux command is installed.

tmux.start(cmd, env) runs the shell command cmd, with the environment
variables of the table env added, in a new 200x50 session. Each session has
its own tmux server (its socket in a fresh temporary directory, no tmux.conf
read), so a spec never touches a user's tmux sessions and kill() ends
everything it started. The pane stays on screen after cmd exits, so that a
crash can still be read.

session:send(line) types line (as literal keys) and Enter.

session:wait_for(pattern, timeout) polls the pane until the Lua pattern
matches the text from the line on which the last line sent was typed (the
prompt and the line as echoed) to the end: its output, then whatever came
next, such as the next prompt. Before the first send it is the whole pane.
Wrapped lines are joined and trailing spaces and blank lines dropped, so
pattern sees lines as the program wrote them, and a prompt "> " waiting for
input as ">". It returns that text, or raises after timeout seconds (5)
with the pattern and the whole pane in the message.

session:screen() is the whole pane, scrollback included, as text.

session:kill() ends the session and its server and removes the temporary
directory; it is safe to call twice.
]]

local tmux = {}

local Session = {}
Session.__index = Session

local function quote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs a shell command; returns its output (stdout and stderr) and whether it succeeded.
local function shell(cmd)
    local p = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
    local out = p:read("*a")
    p:close()
    local body, code = out:match("^(.*)exit=(%d+)\n$")
    return body or out, code == "0"
end

--- Whether the tmux command is installed.
function tmux.available()
    local _, ok = shell("command -v tmux")
    return ok
end

function Session:_tmux(args)
    return shell("tmux -S " .. quote(self.socket) .. " " .. args)
end

-- The pane with its scrollback as an array of lines: wrapped lines joined,
-- trailing spaces and trailing blank lines dropped.
function Session:_lines()
    local out, ok = self:_tmux("capture-pane -p -J -S - -t " .. quote(self.name))
    if not ok then
        error("tmux capture-pane failed: " .. out, 3)
    end
    local lines = {}
    for l in out:gmatch("([^\n]*)\n") do lines[#lines + 1] = l:match("^(.-)%s*$") end
    while #lines > 0 and lines[#lines] == "" do lines[#lines] = nil end
    return lines
end

local count = 0

--- Start cmd (a shell command) with the variables of env in a new session.
function tmux.start(cmd, env)
    local dir, made = shell("mktemp -d")
    if not made then error("tmux.start: mktemp -d failed: " .. dir, 2) end
    count = count + 1
    local self = setmetatable({
        dir = dir:gsub("\n$", ""), name = "dstream-spec-" .. count, mark = 1, timeout = 5,
    }, Session)
    self.socket = self.dir .. "/tmux.sock"
    local assignments = {}
    for k, v in pairs(env or {}) do assignments[#assignments + 1] = k .. "=" .. quote(v) end
    table.sort(assignments)
    local command = "env " .. table.concat(assignments, " ") .. " " .. cmd
    local out, ok = self:_tmux("-f /dev/null new-session -d -s " .. quote(self.name)
        .. " -x 200 -y 50 " .. quote(command)
        .. " \\; set-option -t " .. quote(self.name) .. " remain-on-exit on")
    if not ok then
        self:kill()
        error("tmux.start: tmux new-session failed: " .. out, 2)
    end
    return self
end

--- Type line and Enter.
function Session:send(line)
    self.mark = math.max(#self:_lines(), 1)
    local out, ok = self:_tmux("send-keys -t " .. quote(self.name) .. " -l -- " .. quote(line))
    if ok then out, ok = self:_tmux("send-keys -t " .. quote(self.name) .. " Enter") end
    if not ok then error("tmux send-keys failed: " .. out, 2) end
end

--- The whole pane, scrollback included.
function Session:screen()
    return table.concat(self:_lines(), "\n")
end

--- Wait until pattern matches the text from the last line sent on; returns that text.
function Session:wait_for(pattern, timeout)
    local deadline = os.time() + math.ceil(timeout or self.timeout)
    while true do
        local lines = self:_lines()
        local text = table.concat(lines, "\n", self.mark)
        if text:find(pattern) then return text end
        if os.time() > deadline then
            error(string.format("tmux: \"%s\" did not appear within %gs; the pane shows:\n%s",
                (pattern:gsub("\n", "\\n")), timeout or self.timeout, table.concat(lines, "\n")), 2)
        end
        os.execute("sleep 0.05")
    end
end

--- End the session and its tmux server; remove the temporary directory.
function Session:kill()
    if self.dir then
        self:_tmux("kill-server")
        shell("rm -rf " .. quote(self.dir))
        self.dir = nil
    end
end

return tmux

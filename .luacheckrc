-- luacheck: Debian's lua-check. LuaJIT's standard library; dstream is the one global.
std = "luajit"
globals = {"dstream"}
max_line_length = 130
self = false -- methods the API names (objectFile, a receiver's stop) may not need self
files["spec/"] = {std = "+busted"}
exclude_files = {"build*/"}

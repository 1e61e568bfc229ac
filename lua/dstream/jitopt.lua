--- The JIT compiler's limits for a stream processor.
---
--- LuaJIT's defaults (1000 traces, 512 KiB of machine code) suit a script;
--- a pipeline runs generated stage loops, the value codec over states of
--- many shapes and the user's closures in one process, for days. When the
--- traces outgrow the limits LuaJIT flushes all of them and records them
--- again, over and over: encoding and decoding 1 500 mixed values for six
--- rounds took 9.9 s (7.4 s of it in mprotect for the recompiles) at the
--- defaults and 1.2 s with the limits below (OpenResty's, which raise the
--- same ones for the same reason). They are process-wide; a program that
--- wants other limits calls jit.opt.start after requiring dstream.
local jitopt = {}

jitopt.LIMITS = {"maxtrace=8000", "maxrecord=16000", "minstitch=3", "maxmcode=40960"}

--- Raise the limits (once per process; later calls change nothing).
function jitopt.apply()
    if jitopt.applied or not jit or not jit.opt then return end
    jit.opt.start(unpack(jitopt.LIMITS))
    jitopt.applied = true
end

return jitopt

-- Loaded by busted before any spec: requires dstream once, so the C module
-- and the FFI declarations are loaded once for the whole run.
require "dstream"

--[[ trades: synthetic trades for the trade-totals examples and their spec.

A module, not a program: `generate` makes a deterministic stream of trades
(product, amount in cents, time in ms), and `batches` cuts them into the
per-batch arrays a queueStream replays, one batch per batchInterval of
trading time. Amounts are whole cents so every total is exact.
]]
local trades = {}

-- A small deterministic generator (xorshift32), the same on every machine.
local function rng(seed)
    local bit = require "bit"
    local x = seed ~= 0 and seed or 2463534242
    return function(n)
        x = bit.bxor(x, bit.lshift(x, 13))
        x = bit.bxor(x, bit.rshift(x, 17))
        x = bit.bxor(x, bit.lshift(x, 5))
        return (x % n + n) % n + 1
    end
end

--- n_batches batches of up to per_batch trades each over `products` products:
--- an array of batches, each an array of "product cents" lines.
function trades.batches(opts)
    local next_int = rng(opts.seed or 42)
    local out = {}
    for b = 1, opts.n_batches do
        local batch = {}
        -- Some products pause for hours, so keys leave the 24-hour window.
        for _ = 1, next_int(opts.per_batch) do
            local p = next_int(opts.products)
            if (p + math.floor(b / 180)) % 7 ~= 0 then
                batch[#batch + 1] = string.format("P%03d %d", p, next_int(100000))
            end
        end
        out[b] = batch
    end
    return out
end

--- A trade line as the pair (product, cents).
function trades.parse(line)
    local product, cents = line:match("^(%S+) (%d+)$")
    return product, tonumber(cents)
end

--- The totals per product over the batches in (t - window, t], t and window in
--- batches: the direct recomputation both examples must agree with.
function trades.direct_totals(batches, t, window)
    local totals = {}
    for b = math.max(1, t - window + 1), t do
        for _, line in ipairs(batches[b]) do
            local product, cents = trades.parse(line)
            totals[product] = (totals[product] or 0) + cents
        end
    end
    return totals
end

return trades

-- Read-only guard check at enqueue time: same decision as guard_reserve.lua, writes nothing
-- (not even the pruning of expired entries: it counts by score range instead).
-- KEYS: guard_text, guard_recipient, guard_block
-- ARGV: now_us ("" = Redis TIME), window_us, same_text_limit, per_recipient_limit
-- Returns {allowed, reason, retry_us}; guard_check.lua is prepended by guard.py.

local now = now_us(ARGV[1])
local refused = guard_check(KEYS[1], KEYS[2], KEYS[3], now, tonumber(ARGV[2]),
  tonumber(ARGV[3]), tonumber(ARGV[4]))
return refused or {1, "", "0"}

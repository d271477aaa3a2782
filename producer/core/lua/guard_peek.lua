-- Read-only guard check at enqueue time: same decision as guard_reserve.lua, writes nothing
-- (not even the pruning of expired entries: it counts by score range instead).
-- KEYS: guard_recipient, guard_block
-- ARGV: text_hash, now_us ("" = Redis TIME), window_us, same_text_limit, per_recipient_limit
-- Returns {allowed, reason, retry_us}; guard_check.lua is prepended by guard.py.

local refused = guard_check(KEYS[1], KEYS[2], ARGV[1], now_us(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4]), tonumber(ARGV[5]), nil)
return refused or {1, "", "0"}

-- Block a recipient until a time, after the provider itself answered -77/-78.
-- KEYS: guard_block;  ARGV: until_us
-- Only ever extends: a later, shorter answer must not lift a longer block.

local until_us = tonumber(ARGV[1])
local t = redis.call("TIME")
-- A block already over is no block (SET with a past PXAT would leave the key until the
-- expiry cycle finds it).
if until_us <= tonumber(t[1]) * 1000000 + tonumber(t[2]) then
  return 0
end
local current = tonumber(redis.call("GET", KEYS[1]) or "")
if current and current >= until_us then
  return 0
end
redis.call("SET", KEYS[1], string.format("%.0f", until_us), "PXAT",
  string.format("%.0f", math.ceil(until_us / 1000)))
return 1

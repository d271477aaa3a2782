-- Check and reserve one send in the recipient's rolling windows, atomically.
-- KEYS: guard_text, guard_recipient, guard_block
-- ARGV: message_id, now_us ("" = Redis TIME), window_us, same_text_limit, per_recipient_limit
-- Returns {allowed, reason, retry_us}; guard_check.lua is prepended by guard.py.

local text_key, recipient_key, block_key = KEYS[1], KEYS[2], KEYS[3]
local message_id = ARGV[1]
local now = now_us(ARGV[2])
local window = tonumber(ARGV[3])

-- Drop what has left the window first, so memory holds only live entries.
local expired = string.format("%.0f", now - window)
redis.call("ZREMRANGEBYSCORE", text_key, "-inf", expired)
redis.call("ZREMRANGEBYSCORE", recipient_key, "-inf", expired)

-- A block outranks an earlier reservation: the provider refuses the recipient anyway.
local refused = guard_check(text_key, recipient_key, block_key, now, window,
  tonumber(ARGV[4]), tonumber(ARGV[5]))
if refused and blocked_until(block_key, now) then
  return refused
end
-- A redelivered task reserves again with the same id: it must not count twice.
if redis.call("ZSCORE", text_key, message_id) then
  return {1, "", "0"}
end
if refused then
  return refused
end

local score = string.format("%.0f", now)
-- A TTL counts from Redis's millisecond clock, which can read up to 1 ms (plus the script's
-- run time) behind TIME; 10 ms over keeps a key until its newest entry has truly left.
local ttl_ms = string.format("%.0f", math.ceil(window / 1000) + 10)
redis.call("ZADD", text_key, score, message_id)
redis.call("ZADD", recipient_key, score, message_id)
-- The newest entry leaves the window then, so the keys disappear once nothing counts.
redis.call("PEXPIRE", text_key, ttl_ms)
redis.call("PEXPIRE", recipient_key, ttl_ms)
return {1, "", "0"}

-- Library: guard_reserve(...) checks and reserves one send in the recipient's rolling
-- windows. guard_check.lua is prepended; guard_reserve_run.lua calls it alone (guard.py),
-- worker/lua/start.lua right after the claim, in the same atomic step.
-- text_key, recipient_key, block_key: the guard's keys; now, window in microseconds.
-- Returns {1, "", "0"} when reserved, {0, reason, retry_us} when not.

local function guard_reserve(text_key, recipient_key, block_key, message_id, now, window,
                             same_text_limit, per_recipient_limit)
  -- Drop what has left the window first, so memory holds only live entries.
  local expired = string.format("%.0f", now - window)
  redis.call("ZREMRANGEBYSCORE", text_key, "-inf", expired)
  redis.call("ZREMRANGEBYSCORE", recipient_key, "-inf", expired)

  -- A block outranks an earlier reservation: the provider refuses the recipient anyway.
  local refused = guard_check(text_key, recipient_key, block_key, now, window,
    same_text_limit, per_recipient_limit)
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
  -- A TTL counts from Redis's millisecond clock, which can read up to 1 ms (plus the
  -- script's run time) behind TIME; 10 ms over keeps a key until its newest entry has left.
  local ttl_ms = string.format("%.0f", math.ceil(window / 1000) + 10)
  redis.call("ZADD", text_key, score, message_id)
  redis.call("ZADD", recipient_key, score, message_id)
  -- The newest entry leaves the window then, so the keys disappear once nothing counts.
  redis.call("PEXPIRE", text_key, ttl_ms)
  redis.call("PEXPIRE", recipient_key, ttl_ms)
  return {1, "", "0"}
end

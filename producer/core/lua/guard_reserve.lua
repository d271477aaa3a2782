-- Library: guard_reserve(...) checks and reserves one send in the recipient's rolling
-- windows. guard_check.lua is prepended; guard_reserve_run.lua calls it alone (guard.py),
-- worker/lua/start.lua right after the claim, in the same atomic step.
-- text_key, recipient_key, block_key: the guard's keys; now, window in microseconds.
-- Returns {1, "", "0"} when reserved, {0, reason, retry_us} when not.

local function guard_reserve(text_key, recipient_key, block_key, message_id, now, window,
                             same_text_limit, per_recipient_limit)
  -- Drop what has left the window, so memory holds little more than live entries: on one
  -- reservation in eight (those whose microsecond clock is a multiple of 8), as the counts
  -- below only ever count live entries; a key idle for a whole window expires anyway. So a
  -- key holds its live entries and, on average, fewer than eight more.
  if math.fmod(now, 8) == 0 then
    local expired = string.format("%.0f", now - window)
    redis.call("ZREMRANGEBYSCORE", text_key, "-inf", expired)
    redis.call("ZREMRANGEBYSCORE", recipient_key, "-inf", expired)
  end

  -- A block outranks an earlier reservation: the provider refuses the recipient anyway.
  local refused = guard_check(text_key, recipient_key, block_key, now, window,
    same_text_limit, per_recipient_limit)
  if refused and blocked_until(block_key, now) then
    return refused
  end
  if refused then
    -- A redelivered task reserves again with the same id: a full window may hold its own
    -- earlier reservation, which counts once (one that left the window counts no more).
    local own = tonumber(redis.call("ZSCORE", text_key, message_id) or "")
    if own and own > now - window then
      return {1, "", "0"}
    end
    return refused
  end

  local score = string.format("%.0f", now)
  -- A TTL counts from Redis's millisecond clock, which can read up to 1 ms (plus the
  -- script's run time) behind TIME; 10 ms over keeps a key until its newest entry has left.
  local ttl_ms = string.format("%.0f", math.ceil(window / 1000) + 10)
  -- The same id again (a redelivered task) keeps its entry while it is in the window (it
  -- counts once, from its first reservation); one that has left the window is taken anew.
  for _, key in ipairs({text_key, recipient_key}) do
    if redis.call("ZADD", key, "NX", score, message_id) == 0 then
      local own = tonumber(redis.call("ZSCORE", key, message_id) or "")
      if own and own <= now - window then redis.call("ZADD", key, score, message_id) end
    end
  end
  -- The newest entry leaves the window then, so the keys disappear once nothing counts.
  redis.call("PEXPIRE", text_key, ttl_ms)
  redis.call("PEXPIRE", recipient_key, ttl_ms)
  return {1, "", "0"}
end

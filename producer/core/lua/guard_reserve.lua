-- Library: guard_reserve(...) checks and reserves one send in the recipient's rolling
-- windows. guard_check.lua is prepended; guard_reserve_run.lua calls it alone (guard.py),
-- worker/lua/start.lua right after the claim, in the same atomic step.
-- recipient_key, block_key: the guard's keys; text_hash: the message's text hash; now,
-- window in microseconds.
-- Returns {1, "", "0"} when reserved, {0, reason, retry_us} when not.
-- The common case costs four commands: ZRANGEBYSCORE, GET, ZADD, PEXPIRE (+ one
-- ZREMRANGEBYSCORE on one reservation in eight).

local function guard_reserve(recipient_key, block_key, text_hash, message_id, now, window,
                             same_text_limit, per_recipient_limit)
  -- Drop what has left the window, so memory holds little more than live entries: on one
  -- reservation in eight (those whose microsecond clock is a multiple of 8), as the counts
  -- below only ever count live entries; a key idle for a whole window expires anyway. So a
  -- key holds its live entries and, on average, fewer than eight more.
  if math.fmod(now, 8) == 0 then
    redis.call("ZREMRANGEBYSCORE", recipient_key, "-inf", string.format("%.0f", now - window))
  end

  local own = text_hash .. ":" .. message_id
  local refused, own_live = guard_check(recipient_key, block_key, text_hash, now, window,
    same_text_limit, per_recipient_limit, own)
  if refused then
    -- A block outranks an earlier reservation: the provider refuses the recipient anyway.
    -- Otherwise a redelivered task reserves again with the same id: a full window may hold
    -- its own earlier reservation, which counts once (one that left the window counts no
    -- more).
    if own_live and refused[2] ~= "blocked" then
      return {1, "", "0"}
    end
    return refused
  end
  -- The same id again (a redelivered task) keeps its entry while it is in the window (it
  -- counts once, from its first reservation), and the key already lives past it; one that
  -- has left the window is taken anew (ZADD overwrites its score).
  if own_live then
    return {1, "", "0"}
  end
  redis.call("ZADD", recipient_key, string.format("%.0f", now), own)
  -- A TTL counts from Redis's millisecond clock, which can read up to 1 ms (plus the
  -- script's run time) behind TIME; 10 ms over keeps a key until its newest entry has left,
  -- so the key disappears once nothing counts.
  redis.call("PEXPIRE", recipient_key, string.format("%.0f", math.ceil(window / 1000) + 10))
  return {1, "", "0"}
end

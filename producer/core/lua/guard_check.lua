-- Shared by guard_reserve.lua and guard_peek.lua: guard.py prepends this file to each.
--
-- Times are integer microseconds since the epoch, so the window boundary is exact: an
-- entry at t counts while now < t + window and is gone at now == t + window. Numbers are
-- formatted with %.0f before they reach Redis because Lua's own tostring keeps only 14
-- significant digits, which would round a microsecond timestamp.

local function now_us(arg)
  if arg ~= "" then
    return tonumber(arg)
  end
  -- Allowed in a script since Redis 7 replicates scripts by their effects.
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- When the window at `key` next has room for one more entry, or nil if it has room now.
local function window_free_at(key, limit, now, window)
  local after = string.format("(%.0f", now - window)
  local live = redis.call("ZCOUNT", key, after, "+inf")
  if live < limit then
    return nil
  end
  -- With limits lowered since, several entries may have to leave: the (live - limit)th
  -- oldest live one is the last of them.
  local entry = redis.call("ZRANGEBYSCORE", key, after, "+inf", "WITHSCORES", "LIMIT",
    live - limit, 1)
  return tonumber(entry[2]) + window
end

-- When the provider's own block on the recipient ends, or nil if there is none now.
local function blocked_until(block_key, now)
  local until_us = tonumber(redis.call("GET", block_key) or "")
  if until_us and now < until_us then
    return until_us
  end
  return nil
end

-- {0, reason, retry_us} if the message may not go now, or nil if it may. retry_us is when
-- every constraint has freed; the reason is "blocked" while the provider's block lasts (its
-- own word outranks our counts), else the limit that frees last.
local function guard_check(text_key, recipient_key, block_key, now, window, text_limit,
                           recipient_limit)
  local reason, retry = nil, 0
  local function consider(name, free_at)
    if free_at and free_at > retry then
      reason, retry = name, free_at
    end
  end
  consider("same_text", window_free_at(text_key, text_limit, now, window))
  consider("per_recipient", window_free_at(recipient_key, recipient_limit, now, window))
  local block_end = blocked_until(block_key, now)
  if block_end then
    reason, retry = "blocked", math.max(retry, block_end)
  end
  if reason then
    return {0, reason, string.format("%.0f", retry)}
  end
  return nil
end

-- Shared by guard_reserve.lua and guard_peek.lua: guard.py prepends this file to each.
--
-- Times are integer microseconds since the epoch, so the window boundary is exact: an
-- entry at t counts while now < t + window and is gone at now == t + window. Numbers are
-- formatted with %.0f before they reach Redis because Lua's own tostring keeps only 14
-- significant digits, which would round a microsecond timestamp.
--
-- One sorted set per (route, recipient) holds both windows: member "<text_hash>:<id>"
-- (text hashes are hex, ids have no ':'), score = reservation time. The same-text count is
-- the live members that start with "<text_hash>:"; the per-recipient count is every live
-- member but the provider's -77 fill ("<text_hash>:provider-77:<i>", guard.py fill_text),
-- which stands for sends the provider counted, not ours.
-- Upgrade: workers fold the per-text sets of the layout before (guard:t:...) into these
-- (guard_fold.lua, guard.py fold_text_windows); a plain message id left in a recipient set
-- (its text's set had expired) counts per recipient only, until it leaves the window.

local function now_us(arg)
  if arg ~= "" then
    return tonumber(arg)
  end
  -- Allowed in a script since Redis 7 replicates scripts by their effects.
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- True for the provider's -77 fill: the part after the first ':' starts "provider-77:".
local function is_fill(member)
  local sep = string.find(member, ":", 1, true)
  return sep ~= nil and string.sub(member, sep + 1, sep + 12) == "provider-77:"
end

-- The recipient's live entries, read once (in time order): the scores of those that count
-- for `text_hash`, those that count per recipient, and whether `own` (a member, or nil)
-- is among them.
local function live_entries(key, text_hash, own, now, window)
  local reply = redis.call("ZRANGEBYSCORE", key, string.format("(%.0f", now - window), "+inf",
    "WITHSCORES")
  local prefix = text_hash .. ":"
  local plen = #prefix
  local same, all, own_live = {}, {}, false
  for i = 1, #reply, 2 do
    local member, score = reply[i], tonumber(reply[i + 1])
    if string.sub(member, 1, plen) == prefix then
      same[#same + 1] = score
      if member == own then own_live = true end
    end
    if not is_fill(member) then all[#all + 1] = score end
  end
  return same, all, own_live
end

-- When a window whose live entries have `scores` (oldest first) next has room for one more
-- entry, or nil if it has room now.
local function window_free_at(scores, limit, window)
  local live = #scores
  if live < limit then
    return nil
  end
  -- With limits lowered since, several entries may have to leave: the (live - limit)th
  -- oldest live one is the last of them.
  return scores[live - limit + 1] + window
end

-- When the provider's own block on the recipient ends, or nil if there is none now.
local function blocked_until(block_key, now)
  local until_us = tonumber(redis.call("GET", block_key) or "")
  if until_us and now < until_us then
    return until_us
  end
  return nil
end

-- {0, reason, retry_us} if the message may not go now, or nil if it may; then whether
-- `own` (the message's own member, or nil) is a live entry. retry_us is when every
-- constraint has freed; the reason is "blocked" while the provider's block lasts (its own
-- word outranks our counts), else the limit that frees last.
local function guard_check(recipient_key, block_key, text_hash, now, window, text_limit,
                           recipient_limit, own)
  local same, all, own_live = live_entries(recipient_key, text_hash, own, now, window)
  local reason, retry = nil, 0
  local function consider(name, free_at)
    if free_at and free_at > retry then
      reason, retry = name, free_at
    end
  end
  consider("same_text", window_free_at(same, text_limit, window))
  consider("per_recipient", window_free_at(all, recipient_limit, window))
  local block_end = blocked_until(block_key, now)
  if block_end then
    reason, retry = "blocked", math.max(retry, block_end)
  end
  if reason then
    return {0, reason, string.format("%.0f", retry)}, own_live
  end
  return nil, own_live
end

-- Library: claims a message for one provider call: queued/accepted -> sending, exactly once.
-- claim_message(K, A) claims in one go (claim_run.lua); worker/lua/start.lua splits it:
-- claim_begin (read, check, the circuits), then the recipient guard and the rate limit, then
-- claim_finish, whose one HSET also carries the *calling* mark when the call may start.
-- While one of its lane's circuits is open the message is parked instead (deferred, in that
-- circuit's held set). The claim only stops a second copy: the provider call itself waits
-- for the *calling* mark (worker/lua/calling.lua, start.lua), so a lease that runs out
-- before it means the provider never saw the message.
-- K and A are the caller's keys and arguments (a batch passes each message's own), laid out:
-- K[1] record, K[2] timeline, K[3] sending zset (lease index), K[4] outbox zset,
-- K[5] events stream (status callbacks), K[6 .. 5+n] the lane's circuit hashes,
-- K[6+n .. 5+2n] their held sets (same order)
-- A[1] id, A[2] now, A[3] ttl_s, A[4] lease_until, A[5] dispatch token,
-- A[6] claim id (this claim's token, checked by the *calling* mark), A[7] n,
-- A[8 .. 7+n] the circuits' names
-- claim_message returns {"claimed", attempts, calling (1 if a replay finds its own mark,
--   else 0)} | {"paused", "<circuit>: <reason>"} | {"stale", dispatch} | {"state", state}
--   | {"missing", ""}

-- The record's TTL and its timeline's are set again (EXPIRE) only when that moves their end
-- by more than this share of the TTL (at most a minute): a record is kept KIRIM_MESSAGE_TTL_S
-- after its last change to within that, and a claim or a `sent` a moment after the previous
-- change costs no EXPIRE. `expires_at` in the record says when they end.
local function expiry_due(expires_at, now, ttl)
  local at = tonumber(expires_at or "")
  if not at then return true end
  return now + ttl - at > math.min(60, ttl / 100)
end

-- `refresh`: expiry_due said so (the HSET carried the new `expires_at`); `pushed`: the
-- timeline's length after this change's RPUSH (1: a new list, with no TTL yet); `nid`: the
-- drop-in's 18-digit alias of the message, if it has one (<prefix>:nid:<nid>, beside
-- <prefix>:msg:<id>), which lives as long as its record.
local function keep_for(record_key, timeline_key, ttl, pushed, refresh, nid)
  if refresh then
    redis.call("EXPIRE", record_key, ttl)
    redis.call("EXPIRE", timeline_key, ttl)
    if nid then
      local prefix = string.match(record_key, "^(.*):msg:[^:]*$")
      if prefix then redis.call("EXPIRE", prefix .. ":nid:" .. nid, ttl) end
    end
  elseif pushed == 1 then
    redis.call("EXPIRE", timeline_key, ttl)
  end
end

-- A sorted-set write now, or (with a batch's `z`) later in one ZADD / ZREM per key for the
-- whole batch (zflush, which makes every ZREM before every ZADD: right only because a batch
-- never adds and removes the same member of one key, each of its messages moving once;
-- start_many and transition_many's `sent` moves). op "ZADD": a = score, b = member;
-- "ZREM": a = member.
local function zlater(z, op, key, a, b)
  if not z then
    if op == "ZADD" then redis.call("ZADD", key, a, b) else redis.call("ZREM", key, a) end
    return
  end
  z[op] = z[op] or {}
  local list = z[op][key] or {}
  z[op][key] = list
  list[#list + 1] = a
  if op == "ZADD" then list[#list + 1] = b end
end

local function zflush(z)
  for key, members in pairs(z.ZREM or {}) do redis.call("ZREM", key, unpack(members)) end
  for key, scored in pairs(z.ZADD or {}) do redis.call("ZADD", key, unpack(scored)) end
end

-- `cache` (a batch, or nil): `circuits`, each circuit hash's paused flag for the rest of the
-- script run (read once, not once per message), and `z`, the deferred sorted-set writes.
local function claim_begin(K, A, cache)
  local rec = redis.call("HMGET", K[1], "state", "dispatch", "callback_url", "attempts",
                         "calling", "claim", "expires_at", "nusasms_id")
  local state, dispatch = rec[1], rec[2]
  if not state then return {"missing", ""} end
  if A[5] ~= "" and dispatch and dispatch ~= A[5] then return {"stale", dispatch} end
  if state == "sending" and rec[6] == A[6] then
    -- This very claim, run again (redis-py resends a call whose reply was lost): what the
    -- first run did stands; the third value says whether it also took the *calling* mark.
    return {"claimed", tonumber(rec[4]) or 0, rec[5] == "1" and 1 or 0}
  end
  if state ~= "queued" and state ~= "accepted" then return {"state", state} end
  zlater(cache and cache.z, "ZREM", K[4], A[1])
  local circuits = cache and cache.circuits
  local n = tonumber(A[7])
  for i = 1, n do
    local key = K[5 + i]
    local paused = circuits and circuits[key]
    if paused == nil then
      paused = redis.call("HGET", key, "paused") == "1"
      if circuits then circuits[key] = paused end
    end
    if paused then
      local reason = A[7 + i] .. ": " .. (redis.call("HGET", key, "reason") or "paused")
      local now, ttl = tonumber(A[2]), tonumber(A[3])
      redis.call("HSET", K[1], "state", "deferred", "reason", "account_paused",
                 "updated_at", A[2], "expires_at", string.format("%.3f", now + ttl))
      redis.call("SADD", K[5 + n + i], A[1])
      redis.call("RPUSH", K[2], cjson.encode({state = "deferred", at = now, from = state,
                                              note = "circuit paused: " .. reason}))
      keep_for(K[1], K[2], ttl, 0, true, rec[8])
      if rec[3] and rec[3] ~= "" then
        redis.call("XADD", K[5], "MAXLEN", "~", 1000000, "*", "id", A[1], "state", "deferred",
                   "from", state, "at", A[2], "code", "", "provider_id", "")
      end
      return {"paused", reason}
    end
  end
  return {"begun", rec}
end

-- `extra`: more field, value pairs for the one HSET (the *calling* mark), or nil.
local function claim_finish(K, A, begun, extra, cache)
  local rec = begun[2]
  local now, ttl = tonumber(A[2]), tonumber(A[3])
  -- One HSET: the attempt count is the stored one plus one (HINCRBY would be one more call).
  local attempts = (tonumber(rec[4]) or 0) + 1
  local fields = {"state", "sending", "lease_until", A[4], "updated_at", A[2], "claim", A[6],
                  "attempts", attempts}
  if extra then
    for _, v in ipairs(extra) do fields[#fields + 1] = v end
  elseif rec[5] then
    fields[#fields + 1] = "calling"  -- an earlier claim's mark: not this claim's
    fields[#fields + 1] = "0"
  end
  local refresh = expiry_due(rec[7], now, ttl)
  if refresh then
    fields[#fields + 1] = "expires_at"
    fields[#fields + 1] = string.format("%.3f", now + ttl)
  end
  redis.call("HSET", K[1], unpack(fields))
  zlater(cache and cache.z, "ZADD", K[3], A[4], A[1])
  local pushed = redis.call("RPUSH", K[2], cjson.encode({state = "sending", at = now,
                                                         from = rec[1],
                                                         note = "attempt " .. attempts}))
  keep_for(K[1], K[2], ttl, pushed, refresh, rec[8])
  if rec[3] and rec[3] ~= "" then
    redis.call("XADD", K[5], "MAXLEN", "~", 1000000, "*", "id", A[1], "state", "sending",
               "from", rec[1], "at", A[2], "code", "", "provider_id", "")
  end
  return attempts
end

local function claim_message(K, A)
  local begun = claim_begin(K, A, nil)
  if begun[1] ~= "begun" then return begun end
  return {"claimed", claim_finish(K, A, begun, nil), 0}
end

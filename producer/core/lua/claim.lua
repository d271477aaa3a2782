-- Library: claim_message() claims a message for one provider call: queued/accepted ->
-- sending, exactly once. claim_run.lua calls it alone; worker/lua/start.lua goes on to the
-- recipient guard and the *calling* mark in the same atomic step.
-- While one of its lane's circuits is open the message is parked instead (deferred, in that
-- circuit's held set). The claim only stops a second copy: the provider call itself waits
-- for the *calling* mark (worker/lua/calling.lua, start.lua), so a lease that runs out
-- before it means the provider never saw the message.
-- It reads the calling script's KEYS and ARGV, laid out as:
-- KEYS[1] record, KEYS[2] timeline, KEYS[3] sending zset (lease index), KEYS[4] outbox zset,
-- KEYS[5] events stream (status callbacks), KEYS[6 .. 5+n] the lane's circuit hashes,
-- KEYS[6+n .. 5+2n] their held sets (same order)
-- ARGV[1] id, ARGV[2] now, ARGV[3] ttl_s, ARGV[4] lease_until, ARGV[5] dispatch token,
-- ARGV[6] claim id (this claim's token, checked by the *calling* mark), ARGV[7] n,
-- ARGV[8 .. 7+n] the circuits' names
-- Returns {"claimed", attempts, calling (1 if a replay finds its own mark, else 0)}
--       | {"paused", "<circuit>: <reason>"} | {"stale", dispatch} | {"state", state}
--       | {"missing", ""}
local function claim_message()
  local rec = redis.call("HMGET", KEYS[1], "state", "dispatch", "callback_url", "attempts",
                         "calling", "claim")
  local state, dispatch, cb = rec[1], rec[2], rec[3]
  if not state then return {"missing", ""} end
  if ARGV[5] ~= "" and dispatch and dispatch ~= ARGV[5] then return {"stale", dispatch} end
  if state == "sending" and rec[6] == ARGV[6] then
    -- This very claim, run again (redis-py resends a call whose reply was lost): what the
    -- first run did stands; the third value says whether it also took the *calling* mark.
    return {"claimed", tonumber(rec[4]) or 0, rec[5] == "1" and 1 or 0}
  end
  if state ~= "queued" and state ~= "accepted" then return {"state", state} end
  local ttl = tonumber(ARGV[3])
  local function log(new_state, note)
    redis.call("RPUSH", KEYS[2], cjson.encode({state = new_state, at = tonumber(ARGV[2]),
                                              from = state, note = note}))
    redis.call("EXPIRE", KEYS[1], ttl)
    redis.call("EXPIRE", KEYS[2], ttl)
    if cb and cb ~= "" then
      redis.call("XADD", KEYS[5], "MAXLEN", "~", 1000000, "*", "id", ARGV[1],
                 "state", new_state, "from", state, "at", ARGV[2], "code", "", "provider_id", "")
    end
  end
  redis.call("ZREM", KEYS[4], ARGV[1])
  local n = tonumber(ARGV[7])
  for i = 1, n do
    if redis.call("HGET", KEYS[5 + i], "paused") == "1" then
      local reason = ARGV[7 + i] .. ": " .. (redis.call("HGET", KEYS[5 + i], "reason") or "paused")
      redis.call("HSET", KEYS[1], "state", "deferred", "reason", "account_paused",
                 "updated_at", ARGV[2])
      redis.call("SADD", KEYS[5 + n + i], ARGV[1])
      log("deferred", "circuit paused: " .. reason)
      return {"paused", reason}
    end
  end
  -- One HSET: the attempt count is the stored one plus one (HINCRBY would be one more call).
  local attempts = (tonumber(rec[4]) or 0) + 1
  redis.call("HSET", KEYS[1], "state", "sending", "lease_until", ARGV[4], "updated_at", ARGV[2],
             "claim", ARGV[6], "attempts", attempts)
  if rec[5] then redis.call("HDEL", KEYS[1], "calling") end  -- an earlier claim's mark
  redis.call("ZADD", KEYS[3], ARGV[4], ARGV[1])
  log("sending", "attempt " .. attempts)
  return {"claimed", attempts, 0}
end

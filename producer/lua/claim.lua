-- Claim a message for one provider call: queued/accepted -> sending, exactly once.
-- While the account is paused the message is parked instead (deferred, in the held set).
-- KEYS[1] record, KEYS[2] timeline, KEYS[3] account hash, KEYS[4] sending zset (lease index),
-- KEYS[5] held set, KEYS[6] outbox zset, KEYS[7] events stream (status callbacks)
-- ARGV[1] id, ARGV[2] now, ARGV[3] ttl_s, ARGV[4] lease_until, ARGV[5] dispatch token
-- Returns {"claimed", attempts} | {"paused", reason} | {"stale", dispatch} | {"state", state}
--       | {"missing", ""}
local state = redis.call("HGET", KEYS[1], "state")
if not state then return {"missing", ""} end
local dispatch = redis.call("HGET", KEYS[1], "dispatch")
if ARGV[5] ~= "" and dispatch and dispatch ~= ARGV[5] then return {"stale", dispatch} end
if state ~= "queued" and state ~= "accepted" then return {"state", state} end
local ttl = tonumber(ARGV[3])
local function log(new_state, note)
  redis.call("RPUSH", KEYS[2], cjson.encode({state = new_state, at = tonumber(ARGV[2]),
                                            from = state, note = note}))
  redis.call("EXPIRE", KEYS[1], ttl)
  redis.call("EXPIRE", KEYS[2], ttl)
  local cb = redis.call("HGET", KEYS[1], "callback_url")
  if cb and cb ~= "" then
    redis.call("XADD", KEYS[7], "MAXLEN", "~", 1000000, "*", "id", ARGV[1], "state", new_state,
               "from", state, "at", ARGV[2], "code", "", "provider_id", "")
  end
end
redis.call("ZREM", KEYS[6], ARGV[1])
local paused = redis.call("HGET", KEYS[3], "paused")
if paused == "1" then
  local reason = redis.call("HGET", KEYS[3], "reason") or "paused"
  redis.call("HSET", KEYS[1], "state", "deferred", "reason", "account_paused",
             "updated_at", ARGV[2])
  redis.call("SADD", KEYS[5], ARGV[1])
  log("deferred", "account paused: " .. reason)
  return {"paused", reason}
end
local attempts = redis.call("HINCRBY", KEYS[1], "attempts", 1)
redis.call("HSET", KEYS[1], "state", "sending", "lease_until", ARGV[4], "updated_at", ARGV[2])
redis.call("ZADD", KEYS[4], ARGV[4], ARGV[1])
log("sending", "attempt " .. attempts)
return {"claimed", attempts}

-- Move a message to a new state if its current state is an allowed predecessor, and apply the
-- index updates that go with it, all in one atomic step. An OTP that becomes final (sent, a
-- final report, expired, dead) loses its text in the same step (erase_text.lua, prepended by
-- records.py), and an OTP whose text is gone never goes back to `queued`.
-- KEYS[1] record hash, KEYS[2] timeline list, KEYS[3] events stream (status callbacks)
-- ARGV[1] new state, ARGV[2] now, ARGV[3] ttl_s, ARGV[4] JSON spec:
--   {"from": [states], "set": {f: v}, "incr": {f: n}, "note": str,
--    "zadd": [[key, score, member]], "zrem": [[key, member]],
--    "sadd": [[key, member]], "srem": [[key, member]], "xadd": [[key, [f, v, ...]]],
--    "setex": [[key, value, ttl_s]], "hincrby": [[key, field, n]],
--    "lease_expired_by": now, "calling": bool,
--    "claim": token}
-- Returns {1, previous} when moved, {0, previous} when refused, {-1, ""} when missing.
-- One read of every field this step may look at (a call each would cost more).
local cur = redis.call("HMGET", KEYS[1], "state", "text_erased", "lease_until", "claim",
                       "calling", "nusasms_id", "callback_url", "id", "last_code", "provider_id",
                       "channel")
local state = cur[1]
if not state then return {-1, ""} end
local spec = cjson.decode(ARGV[4])
local allowed = false
for _, s in ipairs(spec["from"] or {}) do
  if s == state then allowed = true end
end
if not allowed then return {0, state} end
if ARGV[1] == "queued" and cur[2] == "1" then
  return {0, state}  -- nothing left to send (DeadLetters.replay says so to the operator)
end
-- A sender's lease: only give up on it if it really ran out (a new claim renews it).
if spec["lease_expired_by"] then
  local lease = tonumber(cur[3] or "0") or 0
  if lease > tonumber(spec["lease_expired_by"]) then return {0, state} end
end
-- A `sending` message moves only for the claim that holds it: a sender that outlived its
-- lease must not move a message that another sender has claimed since.
if spec["claim"] and state == "sending" and cur[4] ~= spec["claim"] then
  return {0, state}
end
-- Whether the provider call of the current claim started (calling.lua marks it).
if spec["calling"] ~= nil and state == "sending" then
  if (cur[5] == "1") ~= spec["calling"] then return {0, state} end
end
-- The new state and every field set, in one HSET.
local set = {"state", ARGV[1], "updated_at", ARGV[2]}
for f, v in pairs(spec["set"] or {}) do
  set[#set + 1] = f
  set[#set + 1] = tostring(v)
end
redis.call("HSET", KEYS[1], unpack(set))
if ERASE_TEXT_STATES[ARGV[1]] then erase_otp_text(KEYS[1], cur[11] or "") end
for f, n in pairs(spec["incr"] or {}) do redis.call("HINCRBY", KEYS[1], f, n) end
local entry = {state = ARGV[1], at = tonumber(ARGV[2]), from = state}
if spec["note"] and spec["note"] ~= "" then entry["note"] = spec["note"] end
redis.call("RPUSH", KEYS[2], cjson.encode(entry))
local ttl = tonumber(ARGV[3])
redis.call("EXPIRE", KEYS[1], ttl)
redis.call("EXPIRE", KEYS[2], ttl)
-- The drop-in's 18-digit alias (<prefix>:nid:<id>, beside <prefix>:msg:<id>) lives as long
-- as its record: cmd=DR and GET /v1/messages/{id} find it until the record expires.
local nid = cur[6]
if nid then
  local prefix = string.match(KEYS[1], "^(.*):msg:[^:]*$")
  if prefix then redis.call("EXPIRE", prefix .. ":nid:" .. nid, ttl) end
end
for _, z in ipairs(spec["zadd"] or {}) do redis.call("ZADD", z[1], z[2], z[3]) end
for _, z in ipairs(spec["zrem"] or {}) do redis.call("ZREM", z[1], z[2]) end
for _, s in ipairs(spec["sadd"] or {}) do redis.call("SADD", s[1], s[2]) end
for _, s in ipairs(spec["srem"] or {}) do redis.call("SREM", s[1], s[2]) end
for _, x in ipairs(spec["xadd"] or {}) do redis.call("XADD", x[1], "*", unpack(x[2])) end
for _, k in ipairs(spec["setex"] or {}) do redis.call("SET", k[1], k[2], "EX", k[3]) end
for _, h in ipairs(spec["hincrby"] or {}) do redis.call("HINCRBY", h[1], h[2], h[3]) end
-- A producer that gave a callback_url hears of every change, in the same atomic step.
-- (last_code and provider_id as this step left them)
local set_now = spec["set"] or {}
if cur[7] and cur[7] ~= "" then
  local code, pid = set_now["last_code"], set_now["provider_id"]
  redis.call("XADD", KEYS[3], "MAXLEN", "~", 1000000, "*", "id", cur[8], "state", ARGV[1],
             "from", state, "at", ARGV[2], "code", code ~= nil and tostring(code) or cur[9] or "",
             "provider_id", pid ~= nil and tostring(pid) or cur[10] or "")
end
return {1, state}

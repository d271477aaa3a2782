-- Library: transition(K, A, acc) moves a message to a new state if its current state is an
-- allowed predecessor, and applies the index updates that go with it, all in one atomic
-- step (transition_run.lua: one message; transition_many.lua: each of a batch's). An OTP
-- that becomes final (sent, a final report, expired, dead) loses its text in the same step
-- (erase_text.lua, prepended by records.py), and an OTP whose text is gone never goes back
-- to `queued`.
-- K[1] record hash, K[2] timeline list, K[3] events stream (status callbacks)
-- A[1] new state, A[2] now, A[3] ttl_s, A[4] JSON spec, A[5 ..] field, value pairs to set
-- (flat: a reply's JSON inside the spec's JSON would cost Redis a decode of both)
--   {"from": [states], "incr": {f: n}, "note": str,
--    "zadd": [[key, score, member]], "zrem": [[key, member]],
--    "sadd": [[key, member]], "srem": [[key, member]], "xadd": [[key, [f, v, ...]]],
--    "setex": [[key, value, ttl_s]], "hincrby": [[key, field, n]],
--    "lease_expired_by": now, "calling": bool,
--    "claim": token}
-- `acc` (a batch: {h = {}, z = {}}): HINCRBYs are summed in h, sorted-set writes gathered
-- in z (claim.lua's zlater); transition_flush applies them, once per field and per key.
-- Returns {1, previous} when moved, {0, previous} when refused, {-1, ""} when missing.
-- The TTLs move as claim.lua's expiry_due and keep_for say (claim.lua is prepended).
local function transition(K, A, acc)
  -- One read of every field this step may look at (a call each would cost more).
  local cur = redis.call("HMGET", K[1], "state", "text_erased", "lease_until", "claim",
                         "calling", "nusasms_id", "callback_url", "id", "last_code", "provider_id",
                         "channel", "expires_at")
  local state = cur[1]
  if not state then return {-1, ""} end
  local spec = cjson.decode(A[4])
  local allowed = false
  for _, s in ipairs(spec["from"] or {}) do
    if s == state then allowed = true end
  end
  if not allowed then return {0, state} end
  if A[1] == "queued" and cur[2] == "1" then
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
  local now, ttl = tonumber(A[2]), tonumber(A[3])
  local refresh = expiry_due(cur[12], now, ttl)
  local set = {"state", A[1], "updated_at", A[2]}
  if refresh then
    set[#set + 1] = "expires_at"
    set[#set + 1] = string.format("%.3f", now + ttl)
  end
  for i = 5, #A do set[#set + 1] = A[i] end
  redis.call("HSET", K[1], unpack(set))
  if ERASE_TEXT_STATES[A[1]] then erase_otp_text(K[1], cur[11] or "") end
  for f, n in pairs(spec["incr"] or {}) do redis.call("HINCRBY", K[1], f, n) end
  local entry = {state = A[1], at = tonumber(A[2]), from = state}
  if spec["note"] and spec["note"] ~= "" then entry["note"] = spec["note"] end
  local pushed = redis.call("RPUSH", K[2], cjson.encode(entry))
  -- The drop-in's 18-digit alias lives as long as its record: cmd=DR and
  -- GET /v1/messages/{id} find it until the record expires.
  keep_for(K[1], K[2], ttl, pushed, refresh, cur[6])
  local later = acc and acc.z
  for _, z in ipairs(spec["zadd"] or {}) do zlater(later, "ZADD", z[1], z[2], z[3]) end
  for _, z in ipairs(spec["zrem"] or {}) do zlater(later, "ZREM", z[1], z[2]) end
  for _, s in ipairs(spec["sadd"] or {}) do redis.call("SADD", s[1], s[2]) end
  for _, s in ipairs(spec["srem"] or {}) do redis.call("SREM", s[1], s[2]) end
  for _, x in ipairs(spec["xadd"] or {}) do redis.call("XADD", x[1], "*", unpack(x[2])) end
  for _, k in ipairs(spec["setex"] or {}) do redis.call("SET", k[1], k[2], "EX", k[3]) end
  for _, h in ipairs(spec["hincrby"] or {}) do
    if acc then
      local by_field = acc.h[h[1]] or {}
      acc.h[h[1]] = by_field
      by_field[h[2]] = (by_field[h[2]] or 0) + h[3]
    else
      redis.call("HINCRBY", h[1], h[2], h[3])
    end
  end
  -- A producer that gave a callback_url hears of every change, in the same atomic step.
  -- (last_code and provider_id as this step left them)
  if cur[7] and cur[7] ~= "" then
    local set_now = {}
    for i = 5, #A, 2 do set_now[A[i]] = A[i + 1] end
    local code, pid = set_now["last_code"], set_now["provider_id"]
    redis.call("XADD", K[3], "MAXLEN", "~", 1000000, "*", "id", cur[8], "state", A[1],
               "from", state, "at", A[2], "code", code ~= nil and tostring(code) or cur[9] or "",
               "provider_id", pid ~= nil and tostring(pid) or cur[10] or "")
  end
  return {1, state}
end

-- A batch's summed HINCRBYs (transition's `acc`), one call per field, and its sorted-set
-- writes, one per key.
local function transition_flush(acc)
  for key, by_field in pairs(acc.h) do
    for f, n in pairs(by_field) do redis.call("HINCRBY", key, f, n) end
  end
  zflush(acc.z)
end

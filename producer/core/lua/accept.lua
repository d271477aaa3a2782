-- Accept one new message in one atomic step: idempotency, the guard's read-only check,
-- placement, the record and its timeline, the index entry and, when it goes out now, the
-- task message itself on its queue list. guard_check.lua is prepended by records.py.
--
-- KEYS[1] record hash, KEYS[2] timeline list, KEYS[3] idempotency key (the record key when
-- there is none), KEYS[4] outbox zset, KEYS[5] deferred zset, KEYS[6] events stream,
-- KEYS[7] the channel's queue list, KEYS[8..9] guard_recipient, guard_block,
-- KEYS[10] (optional) the drop-in's 18-digit alias → id string (refused if already taken)
-- ARGV[1] id, ARGV[2] now (epoch s), ARGV[3] ttl_s, ARGV[4] fingerprint,
-- ARGV[5] "1" to use the idempotency key, ARGV[6] send_at (epoch s) or "" to send now,
-- ARGV[7] "1" to apply the guard, ARGV[8] text_hash, ARGV[9] window_us,
-- ARGV[10] same-text limit, ARGV[11] per-recipient limit (ARGV[8..11]: check_spec's),
-- ARGV[12] "1" to refuse (OTP) rather than defer,
-- ARGV[13] outbox score of a queued message, ARGV[14] the task message (envelope.py;
--   "" when a kirim.send_batch task pushed after this script carries it),
-- ARGV[15] accepted_at (epoch s), ARGV[16] dispatch token, ARGV[17..] record field, value
-- pairs
-- Returns {"created", id, state, score} | {"exists", first_id, first_fingerprint, state or ""}
--       | {"refused", reason, retry_us} | {"alias_taken"} (nothing written).
-- Timestamps are passed through as the caller's strings: Lua would round them to 14 digits.
local ttl = tonumber(ARGV[3])
local had = redis.call("HMGET", KEYS[1], "state", "fingerprint", "dispatch")
if had[1] then
  if had[3] == ARGV[16] then
    -- This very call ran before (the client resent a pipeline whose reply was lost): answer
    -- what it did, not "duplicate".
    local score = redis.call("ZSCORE", KEYS[5], ARGV[1]) or ""
    return {"created", ARGV[1], had[1], score}
  end
  return {"exists", ARGV[1], had[2] or "", had[1]}
end
if ARGV[5] == "1" then
  local first = redis.call("GET", KEYS[3])
  if first then
    local sep = string.find(first, "|", 1, true)
    return {"exists", string.sub(first, 1, sep - 1), string.sub(first, sep + 1), ""}
  end
end

if KEYS[10] and redis.call("EXISTS", KEYS[10]) == 1 then
  return {"alias_taken"}
end

local state, index, score, note = "queued", KEYS[4], ARGV[13], nil
if ARGV[6] ~= "" then
  state, index, score, note = "deferred", KEYS[5], ARGV[6], "scheduled"
elseif ARGV[7] == "1" then
  local refused = guard_check(KEYS[8], KEYS[9], ARGV[8], now_us(""), tonumber(ARGV[9]),
    tonumber(ARGV[10]), tonumber(ARGV[11]), nil)
  if refused then
    if ARGV[12] == "1" then
      return {"refused", refused[2], refused[3]}
    end
    local retry_us = refused[3]
    local whole = string.sub(retry_us, 1, -7)
    local frac = string.sub(retry_us, -6)
    state, index, score = "deferred", KEYS[5], whole .. "." .. frac
    note = "recipient limit: " .. refused[2]
  end
end

local fields = {"state", state, "fingerprint", ARGV[4], "created_at", ARGV[2],
                "updated_at", ARGV[2],
                "expires_at", string.format("%.3f", tonumber(ARGV[2]) + ttl)}
for i = 17, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call("HSET", KEYS[1], unpack(fields))
redis.call("RPUSH", KEYS[2], '{"state":"accepted","at":' .. ARGV[15] .. '}',
  '{"state":"' .. state .. '","at":' .. ARGV[2]
  .. (note and (',"note":' .. cjson.encode(note)) or "") .. '}')
redis.call("EXPIRE", KEYS[1], ttl)
redis.call("EXPIRE", KEYS[2], ttl)
if ARGV[5] == "1" then
  redis.call("SET", KEYS[3], ARGV[1] .. "|" .. ARGV[4], "EX", ttl)
end
if KEYS[10] then
  redis.call("SET", KEYS[10], ARGV[1], "EX", ttl)
end
redis.call("ZADD", index, score, ARGV[1])
if state == "queued" and ARGV[14] ~= "" then  -- "": its kirim.send_batch task follows it
  redis.call("LPUSH", KEYS[7], ARGV[14])
end
if redis.call("HGET", KEYS[1], "callback_url") ~= "" then
  redis.call("XADD", KEYS[6], "MAXLEN", "~", 1000000, "*", "id", ARGV[1], "state", state,
             "from", "", "at", ARGV[2], "code", "", "provider_id", "")
end
return {"created", ARGV[1], state, score}

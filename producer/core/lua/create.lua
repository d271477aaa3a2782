-- Create a message record once, atomically with its idempotency key and its index entry.
-- KEYS[1] record hash, KEYS[2] timeline list, KEYS[3] idempotency key, KEYS[4] index zset,
-- KEYS[5] events stream (status callbacks)
-- ARGV[1] id, ARGV[2] state, ARGV[3] now, ARGV[4] ttl_s, ARGV[5] fingerprint,
-- ARGV[6] "1" to use the idempotency key, ARGV[7] index score, ARGV[8] timeline JSON list,
-- ARGV[9..] field, value pairs
-- Returns {"created", id} or {"exists", first_id, first_fingerprint}.
local ttl = tonumber(ARGV[4])
if ARGV[6] == "1" then
  local first = redis.call("GET", KEYS[3])
  if first then
    local sep = string.find(first, "|", 1, true)
    return {"exists", string.sub(first, 1, sep - 1), string.sub(first, sep + 1)}
  end
end
if redis.call("EXISTS", KEYS[1]) == 1 then
  return {"exists", ARGV[1], redis.call("HGET", KEYS[1], "fingerprint") or ""}
end
local fields = {"state", ARGV[2], "fingerprint", ARGV[5], "created_at", ARGV[3], "updated_at", ARGV[3],
                "expires_at", string.format("%.3f", tonumber(ARGV[3]) + ttl)}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call("HSET", KEYS[1], unpack(fields))
for _, entry in ipairs(cjson.decode(ARGV[8])) do
  redis.call("RPUSH", KEYS[2], cjson.encode(entry))
end
redis.call("EXPIRE", KEYS[1], ttl)
redis.call("EXPIRE", KEYS[2], ttl)
if ARGV[6] == "1" then
  redis.call("SET", KEYS[3], ARGV[1] .. "|" .. ARGV[5], "EX", ttl)
end
redis.call("ZADD", KEYS[4], ARGV[7], ARGV[1])
if redis.call("HGET", KEYS[1], "callback_url") ~= "" then
  redis.call("XADD", KEYS[5], "MAXLEN", "~", 1000000, "*", "id", ARGV[1], "state", ARGV[2],
             "from", "", "at", ARGV[3], "code", "", "provider_id", "")
end
return {"created", ARGV[1]}

-- Take up to ARGV[3] due lanes, soonest first, and push each one's score to the lease end in
-- the same step: a drain in another worker cannot take them while they are POSTed, and a
-- lane whose drain died is due again when the lease runs out.
-- KEYS[1] due set, KEYS[2] lanes hash; ARGV[1] now, ARGV[2] lease end, ARGV[3] count.
-- Returns mid, event ids, mid, event ids …
local mids = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0,
                        tonumber(ARGV[3]))
local out = {}
for _, mid in ipairs(mids) do
  local ids = redis.call("HGET", KEYS[2], mid)
  if ids and ids ~= "" then
    redis.call("ZADD", KEYS[1], ARGV[2], mid)
    out[#out + 1] = mid
    out[#out + 1] = ids
  else
    redis.call("ZREM", KEYS[1], mid)
  end
end
return out

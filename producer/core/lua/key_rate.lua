-- An API key's rate limit: GCRA taking `cost` messages at once (one request, or a batch).
-- KEYS[1] the key's limiter (a string: the theoretical arrival time, microseconds)
-- ARGV[1] interval_us (1 / rate), ARGV[2] burst (messages), ARGV[3] cost (messages)
-- Returns wait_us: 0 means granted and consumed; otherwise nothing changed and the caller
-- may try again after that long.
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = math.max(tonumber(redis.call("GET", KEYS[1]) or "") or now, now)
local new_tat = tat + cost * interval
local wait = new_tat - burst * interval - now
if wait > 0 then
  return wait
end
redis.call("SET", KEYS[1], string.format("%.0f", new_tat), "PX", math.ceil((new_tat - now) / 1000) + 10)
return 0

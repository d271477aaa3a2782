-- GCRA (generic cell rate algorithm): one account-wide limit shared by every worker.
-- KEYS: the limiter's key (a string: the theoretical arrival time, TAT, in microseconds)
-- ARGV: interval_us (1 / rate), tolerance_us ((burst - 1) * interval), now_us ("" = Redis TIME)
-- Returns {wait_us, now_us}: wait 0 means granted and consumed; otherwise nothing changed.
--
-- All values are whole microseconds (since the epoch, or a duration): they fit a double
-- exactly, so the arithmetic is exact; %.0f keeps them exact in Redis too, where Lua's
-- tostring would round to 14 significant digits.

local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local now
if ARGV[3] ~= "" then
  now = tonumber(ARGV[3])
else
  -- Allowed in a script since Redis 7 replicates scripts by their effects.
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- An idle limiter earns no credit beyond its burst: a TAT in the past counts as now.
local tat = math.max(tonumber(redis.call("GET", KEYS[1]) or "") or now, now)
local wait = tat - tolerance - now
if wait > 0 then
  return {wait, now}
end
local new_tat = tat + interval
-- Once now passes the TAT the state is the same as no key: let it disappear when idle.
-- A TTL counts from Redis's millisecond clock, which can read up to 1 ms (plus the script's
-- run time) behind TIME; 10 ms over keeps the key until the TAT has truly passed.
local ttl_ms = math.ceil((new_tat - now) / 1000) + 10
redis.call("SET", KEYS[1], string.format("%.0f", new_tat), "PX", ttl_ms)
return {0, now}

-- The circuit breaker of one callback receiver host, shared by every worker. Closed (no
-- open_until), open (open_until in the future), half-open (open_until passed: the first drain
-- to ask gets the one trial POST, the others wait for it).
-- KEYS[1] breaker hash; ARGV[1] "check" or "fail", ARGV[2] now, then
--   check: ARGV[3] end of the trial's lease. Returns {"closed"|"open"|"busy"|"trial", until}.
--   fail: ARGV[3] consecutive failures that open it, ARGV[4] first cool-down, ARGV[5] the
--         cool-down's cap, ARGV[6] key ttl. Returns {"closed"|"open"|"opened", until}.
local now = tonumber(ARGV[2])
local b = redis.call("HMGET", KEYS[1], "open_until", "trial_until")
local open_until = tonumber(b[1]) or 0
if ARGV[1] == "check" then
  if open_until == 0 then return {"closed", "0"} end
  if open_until > now then return {"open", b[1]} end
  if (tonumber(b[2]) or 0) > now then return {"busy", b[2]} end
  redis.call("HSET", KEYS[1], "trial_until", ARGV[3])
  return {"trial", ARGV[3]}
end
-- A failure while open is a POST that began before it opened: it says nothing new.
if open_until > now then return {"open", b[1]} end
local failures = redis.call("HINCRBY", KEYS[1], "failures", 1)
redis.call("EXPIRE", KEYS[1], ARGV[6])
if open_until == 0 and failures < tonumber(ARGV[3]) then return {"closed", "0"} end
-- Threshold reached, or a failure while half-open: open again, for twice as long as before.
local opens = redis.call("HINCRBY", KEYS[1], "opens", 1)
local reopen = tostring(now + math.min(tonumber(ARGV[5]), tonumber(ARGV[4]) * 2 ^ (opens - 1)))
redis.call("HSET", KEYS[1], "open_until", reopen, "failures", 0)
redis.call("HDEL", KEYS[1], "trial_until")
return {"opened", reopen}

-- A failed DR pull charged to the message: count it and poll again after a per-message
-- exponential backoff (capped), only while the message still waits for a report; a
-- systematic failure (one id the provider never knows) then costs a few pulls, not a storm.
-- KEYS[1] record hash, KEYS[2] DR sorted set
-- ARGV[1] message id, ARGV[2] now, ARGV[3] base delay s, ARGV[4] max delay s, ARGV[5] error
-- Returns the next poll time, or false when the message no longer waits (final, missing).
local state = redis.call("HGET", KEYS[1], "state")
if state ~= "sent" and state ~= "unknown" then return false end
local failures = redis.call("HINCRBY", KEYS[1], "dr_failures", 1)
local delay = math.min(tonumber(ARGV[3]) * 2 ^ (failures - 1), tonumber(ARGV[4]))
local next_at = tonumber(ARGV[2]) + delay
redis.call("HSET", KEYS[1], "dr_failed_at", ARGV[2], "dr_error", ARGV[5],
           "dr_next_at", tostring(next_at))
-- XX: an id taken out of the set meanwhile (finished, expired) is not put back.
redis.call("ZADD", KEYS[2], "XX", next_at, ARGV[1])
return tostring(next_at)

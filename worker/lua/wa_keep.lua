-- A WhatsApp (API v1.0) status that is not the last one: record what it says and poll again
-- later, with the per-message exponential backoff of dr_keep.lua. Unlike dr_keep.lua it also
-- keeps a `delivered` message polled: it may still be read.
-- KEYS[1] record hash, KEYS[2] DR sorted set
-- ARGV[1] message id, ARGV[2] now, ARGV[3] base delay s, ARGV[4] max delay s,
-- ARGV[5] letter, ARGV[6] sent_date, ARGV[7] delivered_date
-- Returns the next poll time, or false when the message no longer waits (final, missing).
local state = redis.call("HGET", KEYS[1], "state")
if state ~= "sent" and state ~= "unknown" and state ~= "delivered" then return false end
local polls = redis.call("HINCRBY", KEYS[1], "dr_polls", 1)
local delay = math.min(tonumber(ARGV[3]) * 2 ^ (polls - 1), tonumber(ARGV[4]))
local next_at = tonumber(ARGV[2]) + delay
redis.call("HSET", KEYS[1], "dr_letter", ARGV[5], "dr_sent_date", ARGV[6],
           "dr_delivered_date", ARGV[7], "dr_at", ARGV[2], "dr_next_at", tostring(next_at))
redis.call("ZADD", KEYS[2], next_at, ARGV[1])
return tostring(next_at)

-- Pause DR polling account-wide after a refusal that no pull can get past (credentials, IP):
-- the first pause lasts ARGV[2] s, and each refused probe after one ends doubles it, up to
-- ARGV[3] s. A pause already running is left alone, so threads and workers refused at the
-- same moment count as one refusal. The poll deletes the hash on its next successful pull.
-- KEYS[1] pause hash; ARGV[1] now, ARGV[2] min pause s, ARGV[3] max pause s, ARGV[4] reason
-- Returns {1, until, pause_s} when this call paused polling, {0, until, pause_s} otherwise.
local now, low, high = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local until_at = tonumber(redis.call("HGET", KEYS[1], "until") or "0") or 0
local last = tonumber(redis.call("HGET", KEYS[1], "pause_s") or "0") or 0
if until_at > now then return {0, tostring(until_at), tostring(last)} end
local pause = math.min(low, high)
if last > 0 then pause = math.min(last * 2, high) end
until_at = now + pause
redis.call("HSET", KEYS[1], "until", tostring(until_at), "pause_s", tostring(pause),
           "reason", ARGV[4], "at", ARGV[1])
redis.call("HSETNX", KEYS[1], "since", ARGV[1])
-- Forgotten (the next refusal starts at the minimum again) only after a long silence.
redis.call("EXPIRE", KEYS[1], math.ceil(pause + high))
return {1, tostring(until_at), tostring(pause)}

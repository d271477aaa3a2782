-- Open a circuit, in one step: a reader never sees it paused without its reason and code.
-- KEYS[1] the circuit hash; ARGV[1] reason, ARGV[2] code, ARGV[3] since (epoch seconds)
-- Returns 1 if this call opened it (alert once), 0 if it was already open.
if redis.call("HSETNX", KEYS[1], "paused", "1") == 0 then return 0 end
redis.call("HSET", KEYS[1], "reason", ARGV[1], "code", ARGV[2], "since", ARGV[3])
return 1

-- Index events left in the group's pending list but in no lane (read by a version of kirim
-- before lanes existed): XAUTOCLAIM a page of long-idle entries, from where the last sweep
-- stopped, so every pending entry is looked at in turn however many there are.
-- KEYS[1] events stream, KEYS[2] lanes hash, KEYS[3] due set, KEYS[4] stats hash,
-- KEYS[5] sweep cursor; ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle ms, ARGV[4] count,
-- ARGV[5] now. Returns {entries looked at, {poisoned ids}}.
local start = redis.call("GET", KEYS[5]) or "0-0"
local reply = redis.call("XAUTOCLAIM", KEYS[1], ARGV[1], ARGV[2], ARGV[3], start,
                         "COUNT", ARGV[4])
redis.call("SET", KEYS[5], reply[1])
local entries = reply[2]
return {#entries, index_all(entries, KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[5])}

-- Read new events through the consumer group and index them into lanes, in one step: an
-- event is never read without being indexed, whatever happens to the worker.
-- KEYS[1] events stream, KEYS[2] lanes hash, KEYS[3] due set, KEYS[4] stats hash;
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] count, ARGV[4] now.
-- Returns {entries read, {poisoned ids}}.
local reply = redis.call("XREADGROUP", "GROUP", ARGV[1], ARGV[2], "COUNT", ARGV[3],
                         "STREAMS", KEYS[1], ">")
if not reply then return {0, {}} end
local entries = reply[1][2]
return {#entries, index_all(entries, KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[4])}

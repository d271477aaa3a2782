-- Take up to ARGV[3] due ids from the DR set, oldest-due first, and push each one's score to
-- the lease end in the same step: a second poll running at the same time cannot take them.
-- KEYS[1] DR sorted set; ARGV[1] now, ARGV[2] lease end, ARGV[3] batch size.
local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, tonumber(ARGV[3]))
for _, id in ipairs(due) do redis.call("ZADD", KEYS[1], "XX", ARGV[2], id) end
return due

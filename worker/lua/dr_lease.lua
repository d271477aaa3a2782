-- Take up to ARGV[3] due ids from the DR set, oldest-due first, and push each one's score to
-- the lease end in the same step: a second poll running at the same time cannot take them.
-- KEYS[1] DR sorted set; ARGV[1] now, ARGV[2] lease end, ARGV[3] batch size.
-- Returns id, due score, id, due score … (the due score lets a poll that ran out of budget
-- give an id back in its place in the queue).
local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "WITHSCORES",
                       "LIMIT", 0, tonumber(ARGV[3]))
for i = 1, #due, 2 do redis.call("ZADD", KEYS[1], "XX", ARGV[2], due[i]) end
return due

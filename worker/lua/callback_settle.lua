-- A drain is done with a lane for now: due again at ARGV[2] if it still has events (new ones
-- may have come while it was POSTed), else gone.
-- KEYS[1] lanes hash, KEYS[2] due set; ARGV[1] message id, ARGV[2] when.
if redis.call("HEXISTS", KEYS[1], ARGV[1]) == 1 then
  redis.call("ZADD", KEYS[2], ARGV[2], ARGV[1])
  return 1
end
redis.call("ZREM", KEYS[2], ARGV[1])
return 0

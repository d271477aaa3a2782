-- Finish one event (delivered, dropped, poisoned …): ack and delete it, forget its attempts,
-- count the result and take it out of its lane.
-- KEYS[1] events stream, KEYS[2] attempts hash, KEYS[3] stats hash, KEYS[4] lanes hash;
-- ARGV[1] group, ARGV[2] event id, ARGV[3] message id, ARGV[4] result.
-- Returns how many events the lane still has.
redis.call("XACK", KEYS[1], ARGV[1], ARGV[2])
redis.call("XDEL", KEYS[1], ARGV[2])  -- the stream exists only for this group
redis.call("HDEL", KEYS[2], ARGV[2])
redis.call("HINCRBY", KEYS[3], ARGV[4], 1)
local kept = {}
for _, id in ipairs(split(redis.call("HGET", KEYS[4], ARGV[3]))) do
  if id ~= ARGV[2] then kept[#kept + 1] = id end
end
if #kept > 0 then
  redis.call("HSET", KEYS[4], ARGV[3], table.concat(kept, " "))
else
  redis.call("HDEL", KEYS[4], ARGV[3])
end
return #kept

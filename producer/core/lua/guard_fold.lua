-- Upgrade: fold one per-text window of the layout before (KEYS[1],
-- <prefix>:guard:t:<route>:<recipient>:<text hash>, member = message id) into the
-- recipient's one set (KEYS[2], <prefix>:guard:r:<route>:<recipient>), atomically: member m
-- becomes "<text hash>:m" with its score, and the recipient set's plain m (the same send,
-- counted there before) goes, so each send counts once; an entry already in the new form
-- keeps its own score. The recipient set then lives as long as the longer of the two and
-- the old key is deleted. ARGV[1] the text hash. Returns how many entries moved.
local entries = redis.call("ZRANGE", KEYS[1], 0, -1, "WITHSCORES")
local prefix = ARGV[1] .. ":"
for i = 1, #entries, 2 do
  redis.call("ZREM", KEYS[2], entries[i])
  redis.call("ZADD", KEYS[2], "NX", entries[i + 1], prefix .. entries[i])
end
if #entries > 0 then
  local old_ttl, ttl = redis.call("PTTL", KEYS[1]), redis.call("PTTL", KEYS[2])
  if old_ttl > 0 and (ttl < 0 or ttl < old_ttl) then
    redis.call("PEXPIRE", KEYS[2], old_ttl)
  end
end
redis.call("DEL", KEYS[1])
return #entries / 2

-- Remove a sorted-set member only if its score is still the one the caller read (a stale
-- index entry, unless something re-scored it meanwhile).
-- KEYS[1] the sorted set; ARGV[1] member, ARGV[2] the score read
-- Returns 1 if removed, 0 if not
if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or 'nan') == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0

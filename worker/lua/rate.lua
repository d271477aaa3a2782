-- Take one slot of a GCRA limiter (joined after gcra.lua).
-- KEYS[1] the limiter key (a string: the theoretical arrival time, in microseconds)
-- ARGV[1] interval_us (1 / rate), ARGV[2] tolerance_us ((burst - 1) * interval),
-- ARGV[3] now_us ("" = Redis TIME)
-- Returns {wait_us, now_us}: wait 0 means granted and consumed; otherwise nothing changed.
local now = now_us(ARGV[3])
return {gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now), now}

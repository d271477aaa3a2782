-- The start of each send of a batch, in one atomic step (start.lua and its libraries
-- prepended): worker/start.py. Each message is claimed, reserved and rate-limited on its
-- own, exactly as start_run.lua would, one after the other, and left "ready": its *calling*
-- mark comes just before its request is written (mark_many.lua: the batch's, in one
-- step). The batch shares one read of Redis's clock, of each circuit and of the limiter,
-- one write of the limiter, and one ZADD to the lease index and one ZREM from the outbox.
-- The first message's keys and arguments come whole (start.lua's layout: `nk` keys, `na`
-- arguments); every message, the first too, then adds only its own: 4 keys (record,
-- timeline, the guard's recipient and block keys) and 7 arguments (id, lease end, dispatch
-- token, claim id, guard on, text hash, API), which take their places in a copy of the
-- first's (with the guard off, its keys and text hash are placeholders: worker/start.py).
-- ARGV[1] m, ARGV[2] nk, ARGV[3] na, ARGV[4 .. 3+na] the first's arguments, then 7 per
-- message; KEYS[1 .. nk] the first's keys, then 4 per message.
-- Returns one start_message reply per message, or {"error", message} for one whose step
-- raised (what it wrote before stands: the worker undoes its claim).
local m, nk, na = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local n = tonumber(ARGV[3 + 7])
local k, a = 5 + 2 * n, 7 + n
local key_at = {1, 2, k + 1, k + 2}
local arg_at = {1, 4, 5, 6, a + 1, a + 2, a + 8}
local now = now_us("")
local cache = {circuits = {}, rate = {}, z = {}, mark_later = true}
local replies = {}
for i = 1, m do
  local K, A = {}, {}
  for j = 1, nk do K[j] = KEYS[j] end
  for j = 1, na do A[j] = ARGV[3 + j] end
  local kb, ab = nk + #key_at * (i - 1), 3 + na + #arg_at * (i - 1)
  for j = 1, #key_at do K[key_at[j]] = KEYS[kb + j] end
  for j = 1, #arg_at do A[arg_at[j]] = ARGV[ab + j] end
  -- One message's error (a record that is not a hash, say) is its reply alone: the others
  -- go on, and the batch's shared writes below are made whatever happened.
  local ok, reply = pcall(start_message, K, A, now, cache)
  if ok then
    replies[i] = reply
  else
    replies[i] = {"error", type(reply) == "table" and reply.err or tostring(reply)}
  end
end
gcra_flush(cache.rate, now)
zflush(cache.z)
return replies

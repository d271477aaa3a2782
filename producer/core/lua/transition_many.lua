-- Each transition of a batch, one after the other in one atomic step (claim.lua,
-- erase_text.lua and transition.lua prepended): MessageStore.move_many. Each message moves
-- exactly as transition_run.lua would move it; their per-code counts are summed and their
-- sorted-set writes made once per key.
-- ARGV[1] m (moves), ARGV[2 .. 1+m] each move's argument count; KEYS: 3 per move, in order;
-- then every move's arguments, in order.
-- Returns one transition reply per move, or {-2, message} for one that raised.
local m = tonumber(ARGV[1])
local acc = {h = {}, z = {}}
local replies = {}
local at = 1 + m
for i = 1, m do
  local k, na = 3 * (i - 1), tonumber(ARGV[1 + i])
  local A = {}
  for j = 1, na do A[j] = ARGV[at + j] end
  at = at + na
  -- One move's error (a record that is not a hash, say) is its reply alone: the others
  -- stand, and the batch's summed writes below are made whatever happened.
  local ok, reply = pcall(transition, {KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]}, A, acc)
  if ok then
    replies[i] = reply
  else
    replies[i] = {-2, type(reply) == "table" and reply.err or tostring(reply)}
  end
end
transition_flush(acc)
return replies

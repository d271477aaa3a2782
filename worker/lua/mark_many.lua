-- The *calling* marks of a batch's messages, in one step, just before their requests are
-- written (gcra.lua prepended: claim_lost, mark_calling): the batch's start step
-- (start_many.lua) claimed each, reserved its recipient slot and took its rate-limit slot;
-- this marks each only if its claim still holds a live lease. The worker has noted every
-- one in its call journal first (worker/journal.py), and flips each there just before its
-- write: a worker killed between these marks and a write leaves that message requeued by
-- the next worker on its host, not `unknown` without a call.
-- KEYS[i] message i's record
-- ARGV[1] now (the worker's clock, microseconds: the lease end is in it), then per message
-- ARGV[2i] its claim id and ARGV[2i+1] its provider API ("v1", or "" for the legacy one)
-- Returns per message "calling" | "lost"
local now = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS do
  if claim_lost(KEYS[i], ARGV[2 * i], now) then
    out[i] = "lost"
  else
    mark_calling(KEYS[i], now, ARGV[2 * i + 1])
    out[i] = "calling"
  end
end
return out

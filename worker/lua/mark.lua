-- The *calling* mark of one message of a batch, right before its request is written
-- (gcra.lua prepended: claim_lost, mark_calling): the batch's start step (start_many.lua)
-- claimed it, reserved its recipient slot and took its rate-limit slot; this marks it only
-- if that claim still holds a live lease. One round trip per message, so a worker killed
-- mid-batch leaves at most the message in hand marked but not yet written (`unknown`
-- without a call), not all.
-- KEYS[1] the message record
-- ARGV[1] claim id, ARGV[2] now (the worker's clock, microseconds: the lease end is in it),
-- ARGV[3] the provider API ("v1", or "" for the legacy one)
-- Returns "calling" | "lost"
local now = tonumber(ARGV[2])
if claim_lost(KEYS[1], ARGV[1], now) then return "lost" end
mark_calling(KEYS[1], now, ARGV[3])
return "calling"

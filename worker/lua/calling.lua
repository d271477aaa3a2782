-- The last step before a provider call: take a rate-limit slot and mark the message
-- *calling*, in one atomic step (joined after gcra.lua). Only the current claim may call,
-- and only while its lease lasts: a sender lost before this mark never reached the
-- provider, so its message is requeued; after it, an unknown fate is `unknown`.
-- KEYS[1] the limiter key, KEYS[2] the message record
-- ARGV[1] interval_us, ARGV[2] tolerance_us, ARGV[3] claim id, ARGV[4] the provider API
-- the call goes through ("v1": WhatsApp API v1.0; "": unsaid, v3)
-- Returns {"calling", 0} | {"wait", wait_us} (nothing taken) | {"lost", "claim" | "lease"}
local now = now_us("")
local lost = claim_lost(KEYS[2], ARGV[3], now)
if lost then return {"lost", lost} end
local wait = gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now)
if wait > 0 then return {"wait", wait} end
mark_calling(KEYS[2], now, ARGV[4] or "")
return {"calling", 0}

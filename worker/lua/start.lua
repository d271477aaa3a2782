-- The start of a send, in one atomic step (one round trip instead of three): the claim
-- (claim.lua), then the recipient guard's reservation (guard_reserve.lua), then a rate-limit
-- slot and the *calling* mark (gcra.lua), as calling.lua would take them. Each part stops
-- the step where it says no, and says how far it got, so the worker goes on from there:
-- a refused guard defers the claimed message, a rate-limit wait sleeps or requeues it.
-- Libraries prepended: guard_check, guard_reserve, claim (producer/core/lua), gcra.
-- KEYS and ARGV: claim.lua's (5 + 2n keys, 7 + n args), then
-- KEYS[6+2n .. 8+2n] the guard's text, recipient and block keys, KEYS[9+2n] the limiter key;
-- ARGV[8+n] "1" if the guard applies, ARGV[9+n .. 11+n] window_us, same_text_limit,
-- per_recipient_limit, ARGV[12+n] interval_us, ARGV[13+n] tolerance_us, ARGV[14+n] the
-- provider API the call goes through ("v1" for WhatsApp API v1.0; "" leaves it unsaid: v3)
-- Returns {"clock", seconds behind} when the worker's lease end is already past by Redis's
-- clock; claim.lua's reply unless claimed; then {"calling", attempts}
--   | {"guard", attempts, reason, retry_us} (claimed, nothing reserved)
--   | {"wait", attempts, wait_us} (claimed and reserved, no slot taken, not calling)
local now = now_us("")
-- The lease end is the worker's clock; a worker whose clock is behind Redis's by more than
-- the lease would call on a lease the sweeps already see as over: it claims nothing.
if tonumber(ARGV[4]) * 1000000 <= now then
  return {"clock", string.format("%.3f", now / 1000000 - tonumber(ARGV[4]))}
end
local claimed = claim_message()
if claimed[1] ~= "claimed" then return claimed end
local attempts = claimed[2]
if claimed[3] == 1 then return {"calling", attempts} end  -- a replay of a run that got there
local n = tonumber(ARGV[7])
local k, a = 5 + 2 * n, 7 + n
if ARGV[a + 1] == "1" then
  local reserved = guard_reserve(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], ARGV[1], now,
                                 tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]),
                                 tonumber(ARGV[a + 4]))
  if reserved[1] ~= 1 then return {"guard", attempts, reserved[2], reserved[3]} end
end
local wait = gcra(KEYS[k + 4], tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6]), now)
if wait > 0 then return {"wait", attempts, wait} end
mark_calling(KEYS[1], now, ARGV[a + 7])
return {"calling", attempts}

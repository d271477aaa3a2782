-- Library: start_message(K, A, now, cache), the start of a send in one atomic step: the claim
-- (claim.lua), the recipient guard's reservation (guard_reserve.lua), a rate-limit slot and
-- the *calling* mark (gcra.lua), in the claim's one HSET. Each part stops the step where it
-- says no, and says how far it got, so the worker goes on from there: a refused guard
-- defers the claimed message, a rate-limit wait sleeps or requeues it.
-- start_run.lua runs it for one message, start_many.lua for each message of a batch.
-- Libraries prepended: guard_check, guard_reserve, claim (producer/core/lua), gcra.
-- K and A: claim.lua's (5 + 2n keys, 7 + n args), then K[6+2n .. 7+2n] the guard's
-- recipient and block keys, K[8+2n] the limiter key; A[8+n] "1" if the guard applies,
-- A[9+n] the text hash, A[10+n .. 12+n] window_us, same_text_limit, per_recipient_limit
-- (A[9+n .. 12+n]: RecipientGuard.check_spec's), A[13+n] interval_us, A[14+n] tolerance_us,
-- A[15+n] the provider API the call goes through ("v1" for WhatsApp API v1.0; "" leaves it
-- unsaid: v3).
-- `now`: Redis's TIME in microseconds; `cache` (a batch): claim.lua's (circuits, z) and
-- gcra's (rate).
-- Returns {"clock", seconds behind} when the worker's lease end is already past by Redis's
-- clock; claim.lua's reply unless claimed; then {"calling", attempts}
--   | {"guard", attempts, reason, retry_us} (claimed, nothing reserved)
--   | {"wait", attempts, wait_us} (claimed and reserved, no slot taken, not calling)
--   | {"ready", attempts} (a batch's: claimed, reserved, slot taken, not yet calling)
local function start_message(K, A, now, cache)
  -- The lease end is the worker's clock; a worker whose clock is behind Redis's by more than
  -- the lease would call on a lease the sweeps already see as over: it claims nothing.
  if tonumber(A[4]) * 1000000 <= now then
    return {"clock", string.format("%.3f", now / 1000000 - tonumber(A[4]))}
  end
  local begun = claim_begin(K, A, cache)
  local replay = begun[1] == "claimed"  -- this claim, run again
  if replay and begun[3] == 1 then return {"calling", begun[2]} end  -- it got there
  if not replay and begun[1] ~= "begun" then return begun end
  local n = tonumber(A[7])
  local k, a = 5 + 2 * n, 7 + n
  local function claimed(extra)  -- the claim's HSET (with `extra` fields); its attempt
    if replay then
      if extra then redis.call("HSET", K[1], unpack(extra)) end
      return begun[2]
    end
    return claim_finish(K, A, begun, extra, cache)
  end
  if A[a + 1] == "1" then
    local reserved = guard_reserve(K[k + 1], K[k + 2], A[a + 2], A[1], now,
                                   tonumber(A[a + 3]), tonumber(A[a + 4]), tonumber(A[a + 5]))
    if reserved[1] ~= 1 then return {"guard", claimed(nil), reserved[2], reserved[3]} end
  end
  local wait = gcra(K[k + 3], tonumber(A[a + 6]), tonumber(A[a + 7]), now,
                    cache and cache.rate)
  if wait > 0 then return {"wait", claimed(nil), wait} end
  -- A batch marks its messages just before their requests are written (mark_many.lua).
  if cache and cache.mark_later then return {"ready", claimed(nil)} end
  return {"calling", claimed(calling_fields(now, A[a + 8]))}
end

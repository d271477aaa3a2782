-- GCRA (generic cell rate algorithm): one limit shared by every worker. A library: joined
-- before rate.lua or calling.lua, which call it.
-- gcra(key, interval_us, tolerance_us, now_us) -> wait_us: 0 means granted and consumed;
--   otherwise nothing changed. `key` is a string: the theoretical arrival time (TAT).
-- now_us(arg) -> arg as microseconds, or Redis TIME when arg is "".
--
-- All values are whole microseconds (since the epoch, or a duration): they fit a double
-- exactly, so the arithmetic is exact; %.0f keeps them exact in Redis too, where Lua's
-- tostring would round to 14 significant digits.

local function now_us(arg)
  if arg ~= "" then return tonumber(arg) end
  -- Allowed in a script since Redis 7 replicates scripts by their effects.
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function gcra_store(key, new_tat, now)
  -- Once now passes the TAT the state is the same as no key: let it disappear when idle.
  -- A TTL counts from Redis's millisecond clock, which can read up to 1 ms (plus the
  -- script's run time) behind TIME; 10 ms over keeps the key until the TAT has truly passed.
  local ttl_ms = math.ceil((new_tat - now) / 1000) + 10
  redis.call("SET", key, string.format("%.0f", new_tat), "PX", ttl_ms)
end

-- `cache` (optional): a batch's view of the limiter for the rest of one script run; the
-- TAT is read once and written once (gcra_flush) however many slots the batch takes.
local function gcra(key, interval, tolerance, now, cache)
  local stored
  if cache and cache[key] then
    stored = cache[key]
  else
    stored = tonumber(redis.call("GET", key) or "") or now
  end
  -- An idle limiter earns no credit beyond its burst: a TAT in the past counts as now.
  local tat = math.max(stored, now)
  local wait = tat - tolerance - now
  if wait > 0 then
    if cache then cache[key] = stored end
    return wait
  end
  local new_tat = tat + interval
  if cache then
    cache[key] = new_tat
    cache.dirty = cache.dirty or {}
    cache.dirty[key] = true
  else
    gcra_store(key, new_tat, now)
  end
  return 0
end

-- Write a batch's TAT back (`cache` as gcra's).
local function gcra_flush(cache, now)
  for key in pairs(cache.dirty or {}) do gcra_store(key, cache[key], now) end
end

-- The *calling* mark's fields (time `now` in microseconds), with the provider API the call
-- goes through when it is not the legacy one (the DR poll asks that API).
local function calling_fields(now, api)
  local at = string.format("%.6f", now / 1000000)
  if api ~= "" then return {"calling", "1", "calling_at", at, "api", api} end
  return {"calling", "1", "calling_at", at}
end

-- The *calling* mark on record `key`.
local function mark_calling(key, now, api)
  redis.call("HSET", key, unpack(calling_fields(now, api)))
end

-- Why claim `claim` may no longer mark record `key` at `now` (microseconds): "claim" when
-- the message is not `sending` under this claim, "lease" when the claim's lease is over;
-- nil while it holds a live lease (calling.lua and mark_many.lua ask this before their marks).
local function claim_lost(key, claim, now)
  local rec = redis.call("HMGET", key, "state", "claim", "lease_until")
  if rec[1] ~= "sending" or rec[2] ~= claim then return "claim" end
  if (tonumber(rec[3]) or 0) * 1000000 <= now then return "lease" end
  return nil
end

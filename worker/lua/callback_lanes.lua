-- Shared by the status-callback scripts (worker/callback_lanes.py joins it to each entry).
-- A lane is one message's unfinished events: field `mid` of the lanes hash holds their stream
-- ids, oldest first, space-separated; member `mid` of the due sorted set says when the lane
-- may be attempted next.

local function split(ids)
  local out = {}
  if ids then for id in string.gmatch(ids, "%S+") do out[#out + 1] = id end end
  return out
end

-- Stream ids compare as numbers ("ms-seq"); milliseconds fit a double exactly.
local function older(a, b)
  local am, as = string.match(a, "^(%d+)-(%d+)$")
  local bm, bs = string.match(b, "^(%d+)-(%d+)$")
  if tonumber(am) ~= tonumber(bm) then return tonumber(am) < tonumber(bm) end
  return tonumber(as) < tonumber(bs)
end

-- Add event `eid` to the lane of `mid` once, in stream order; a new lane is due at `now`
-- (NX: a lane being POSTed keeps its lease).
local function index(lanes, due, mid, eid, now)
  local ids = split(redis.call("HGET", lanes, mid))
  for _, id in ipairs(ids) do if id == eid then return end end
  ids[#ids + 1] = eid
  table.sort(ids, older)
  redis.call("HSET", lanes, mid, table.concat(ids, " "))
  redis.call("ZADD", due, "NX", now, mid)
end

-- Index the entries of an XREADGROUP or XAUTOCLAIM reply. One without a message id can never
-- be POSTed: it is finished as poisoned here, and its id returned for the caller to log.
local function index_all(entries, events, lanes, due, stats, group, now)
  local poisoned = {}
  for _, entry in ipairs(entries) do
    local eid, fields, mid = entry[1], entry[2] or {}, nil
    for i = 1, #fields, 2 do if fields[i] == "id" then mid = fields[i + 1] end end
    if mid and mid ~= "" then
      index(lanes, due, mid, eid, now)
    else
      redis.call("XACK", events, group, eid)
      redis.call("XDEL", events, eid)
      redis.call("HINCRBY", stats, "poisoned", 1)
      poisoned[#poisoned + 1] = eid
    end
  end
  return poisoned
end

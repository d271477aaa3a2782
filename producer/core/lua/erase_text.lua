-- Library: erase an OTP's text from its stored job once the message is final (issue 14).
-- An OTP's code is a secret only until it is used or useless: sent, a final delivery report,
-- expired or dead. From then on the record keeps the job without its text, so a dump of
-- Redis (or a later AOF rewrite, or an RDB snapshot) no longer holds the code.
--
-- The job JSON is edited as text, not decoded and re-encoded: cjson would round every number
-- to 14 significant digits (created_at, metadata) and reorder the keys. Only the top-level
-- "text" member's value is replaced (a metadata key named "text" stays), and
-- "text_erased":true is set, which producer.core.contract.Job reads back.

local ERASE_TEXT_STATES = {sent = true, delivered = true, read = true, undelivered = true,
                           failed = true, rejected = true, expired = true, dead = true}

-- A WhatsApp file sent inline (job "media_base64", up to 512 KB) is needed only until the
-- provider has it: erased, in the same step, when the message becomes sent or final or
-- expires. A dead one keeps it, for an operator's replay, until its record expires; its
-- dead letter never holds it (producer.core.deadletters). An unknown one keeps it too: an
-- operator may resend it. "media_base64" becomes "" and "media_erased":true is set.
local ERASE_MEDIA_STATES = {sent = true, delivered = true, read = true, undelivered = true,
                            failed = true, rejected = true, expired = true}

-- Position just past the JSON string that starts at `i` (a double quote), or nil.
local function string_end(s, i)
  local j = i + 1
  while true do
    local k = string.find(s, '["\\]', j)
    if not k then return nil end
    if string.sub(s, k, k) == '"' then return k + 1 end
    j = k + 2  -- a backslash escapes the next character
  end
end

-- Position just past the JSON value that starts at `i`, or nil.
local function value_end(s, i)
  local c = string.sub(s, i, i)
  if c == '"' then return string_end(s, i) end
  if c == "{" or c == "[" then
    local depth, j = 0, i
    while true do
      local k = string.find(s, '["{}%[%]]', j)
      if not k then return nil end
      local d = string.sub(s, k, k)
      if d == '"' then
        j = string_end(s, k)
        if not j then return nil end
      else
        depth = depth + ((d == "{" or d == "[") and 1 or -1)
        j = k + 1
        if depth == 0 then return j end
      end
    end
  end
  local k = string.find(s, "[,}%]%s]", i)  -- a number, true, false or null ends here
  if not k or k == i then return nil end
  return k
end

-- `job` (a JSON object) with its top-level "text" value replaced by "" and "text_erased" set
-- to true; nil when it is not an object with a string "text" member. `member` and `marker`
-- name another pair ("media_base64", "media_erased").
local function erased_job(job, member, marker)
  member = member or "text"
  marker = marker or "text_erased"
  local i = string.find(job, "^%s*{")
  if not i then return nil end
  i = string.find(job, "{", i, true) + 1
  local edits = {}  -- {from, to (exclusive), replacement}, in order
  local text_found, marked = false, false
  while true do
    i = string.find(job, "[^%s,]", i)  -- the next key, or the closing brace
    if not i then return nil end
    local c = string.sub(job, i, i)
    if c == "}" then break end
    if c ~= '"' then return nil end
    local key_end = string_end(job, i)
    if not key_end then return nil end
    local key = string.sub(job, i + 1, key_end - 2)
    local v = string.find(job, "[^%s:]", key_end)
    if not v or not string.find(string.sub(job, key_end, v - 1), ":", 1, true) then return nil end
    local v_end = value_end(job, v)
    if not v_end then return nil end
    if key == member then
      if string.sub(job, v, v) ~= '"' then return nil end
      edits[#edits + 1] = {v, v_end, '""'}
      text_found = true
    elseif key == marker then
      edits[#edits + 1] = {v, v_end, "true"}
      marked = true
    end
    i = v_end
  end
  if not text_found then return nil end
  if not marked then edits[#edits + 1] = {i, i, ',"' .. marker .. '":true'} end
  local out, at = {}, 1
  for _, e in ipairs(edits) do
    out[#out + 1] = string.sub(job, at, e[1] - 1)
    out[#out + 1] = e[3]
    at = e[2]
  end
  out[#out + 1] = string.sub(job, at)
  return table.concat(out)
end

-- If record `key` (a WhatsApp one, in a state of ERASE_MEDIA_STATES) holds an inline file,
-- erase it and mark the record (`media_erased` = "1"). A job that does not read as one is
-- left as it is: a file is not a secret, and the record's TTL ends it.
local function erase_wa_media(key)
  local f = redis.call("HMGET", key, "media_erased", "state", "job")  -- one read
  if f[1] or not ERASE_MEDIA_STATES[f[2]] then return end
  local job = f[3]
  if not job or not string.find(job, '"media_base64"', 1, true) then return end
  local erased = erased_job(job, "media_base64", "media_erased")
  if erased then
    redis.call("HSET", key, "job", erased, "media_erased", "1")
  end
end

-- If record `key` is an OTP, erase its text and mark it (`text_erased` = "1"); a job that
-- does not read as one (a quarantined one) is dropped whole rather than kept with the code.
-- A WhatsApp record loses its inline file instead (erase_wa_media).
local function erase_otp_text(key, channel)
  channel = channel or redis.call("HGET", key, "channel")  -- given by transition.lua's read
  if channel == "wa" then return erase_wa_media(key) end
  if channel ~= "otp" then return end
  local job = redis.call("HGET", key, "job")
  if job then
    local erased = erased_job(job)
    if erased then
      redis.call("HSET", key, "job", erased)
    else
      redis.call("HDEL", key, "job")
    end
  end
  redis.call("HSET", key, "text_erased", "1")
end

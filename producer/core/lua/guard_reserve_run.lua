-- Check and reserve one send (guard_check.lua and guard_reserve.lua are prepended).
-- KEYS: guard_text, guard_recipient, guard_block
-- ARGV: message_id, now_us ("" = Redis TIME), window_us, same_text_limit, per_recipient_limit
return guard_reserve(KEYS[1], KEYS[2], KEYS[3], ARGV[1], now_us(ARGV[2]), tonumber(ARGV[3]),
                     tonumber(ARGV[4]), tonumber(ARGV[5]))

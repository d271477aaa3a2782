-- Check and reserve one send (guard_check.lua and guard_reserve.lua are prepended).
-- KEYS: guard_recipient, guard_block
-- ARGV: message_id, text_hash, now_us ("" = Redis TIME), window_us, same_text_limit,
-- per_recipient_limit
return guard_reserve(KEYS[1], KEYS[2], ARGV[2], ARGV[1], now_us(ARGV[3]), tonumber(ARGV[4]),
                     tonumber(ARGV[5]), tonumber(ARGV[6]))

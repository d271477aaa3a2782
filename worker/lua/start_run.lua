-- The start of one send (start.lua and its libraries prepended): worker/start.py.
return start_message(KEYS, ARGV, now_us(""), nil)

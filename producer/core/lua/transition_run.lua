-- One transition (claim.lua, erase_text.lua and transition.lua prepended): MessageStore.move.
return transition(KEYS, ARGV, nil)

-- Claim alone (claim.lua is prepended): MessageStore.claim.
return claim_message(KEYS, ARGV)

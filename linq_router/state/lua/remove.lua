-- remove: delete a board record (and its counter) and announce it, in one round trip.
--
-- KEYS[1]  the record's key, KEYS[2] the counter's key
-- ARGV[1]  the namespace's channel
-- ARGV[2]  the notice to publish (JSON)
--
-- Returns how many keys were deleted; nothing is published when none was there.
local deleted = redis.call('DEL', KEYS[1], KEYS[2])
if deleted > 0 then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return deleted

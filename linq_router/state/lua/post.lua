-- post: store a board record and announce it, in one round trip.
--
-- KEYS[1]  the record's key ({namespace}:note:<topic>:<name>)
-- ARGV[1]  the record (JSON)
-- ARGV[2]  its time to live in milliseconds ("0": no expiry)
-- ARGV[3]  "1": only if nothing is stored there yet (the first post wins)
-- ARGV[4]  the namespace's channel ({namespace}:notices)
-- ARGV[5]  the notice to publish (JSON)
--
-- Returns the record stored afterwards: ARGV[1], or the one held when ARGV[3] is "1".
-- Nothing is published when an earlier record won.
if ARGV[3] == '1' then
  local held = redis.call('GET', KEYS[1])
  if held then
    return held
  end
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return ARGV[1]

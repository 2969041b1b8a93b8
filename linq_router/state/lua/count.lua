-- count: step a board counter and announce its value, in one round trip.
--
-- KEYS[1]  the counter's key ({namespace}:count:<topic>:<name>)
-- ARGV[1]  how long the counter is kept after this step, in milliseconds
-- ARGV[2]  the namespace's channel ({namespace}:notices)
-- ARGV[3]  the topic
-- ARGV[4]  the name
--
-- Returns the counter after adding one.
local value = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local notice = cjson.encode({t = ARGV[3], n = ARGV[4], c = value, ttl = tonumber(ARGV[1])})
redis.call('PUBLISH', ARGV[2], notice)
return value

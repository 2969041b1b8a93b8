-- rotate: one turn of a rotation shared by a fleet, in one round trip.
--
-- KEYS[1]  the schedule's counter ({namespace}:rotation:<schedule>)
-- ARGV[1]  how long an unused schedule's counter is kept, in milliseconds
--
-- Returns the counter after adding one (1 for the schedule's first turn). Every
-- process holds the same schedule for the same key, so entry (n - 1) mod its length
-- is this turn's line, whoever asks.
local turn = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return turn

-- assign: get-or-set of one conversation's line, in one round trip (a sticky pick).
--
-- KEYS[1]  the conversation's key ({namespace}:sticky:<conversation>)
-- ARGV[1]  the line to remember if nothing is remembered there yet
-- ARGV[2]  the time to live in milliseconds, renewed either way ("0": no expiry)
--
-- Returns the line remembered there: the one found, or ARGV[1] when there was none.
-- One key and a plain string reply, not assign_many's loop and array: a pick pays
-- for every part of a reply it parses. The time to live stays a string: a Lua number
-- passed to redis.call is formatted back into one, which cost the server 4-5 us a call
-- (a third of the script's time).
local key, ttl = KEYS[1], ARGV[2]
local line = redis.call('GET', key)
if line then
  if ttl ~= '0' then
    redis.call('PEXPIRE', key, ttl)
  end
  return line
end
if ttl ~= '0' then
  redis.call('SET', key, ARGV[1], 'PX', ttl)
else
  redis.call('SET', key, ARGV[1])
end
return ARGV[1]

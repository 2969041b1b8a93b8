-- assign_many: assign (see assign.lua) for many conversations, in one round trip.
--
-- KEYS[i]    a conversation's key ({namespace}:sticky:<conversation>)
-- ARGV[i]    the line to remember for KEYS[i] if nothing is remembered there yet
-- ARGV[n+1]  the time to live in milliseconds, renewed either way ("0": no expiry)
--
-- Returns, for each key, the line remembered there: the one found, or ARGV[i] when
-- there was none. What the write-back after an outage uses: the keys share the
-- namespace's hash tag, so a cluster keeps them on one slot.
local ttl = ARGV[#KEYS + 1]  -- a string: see assign.lua
local lines = {}
for i, key in ipairs(KEYS) do
  local line = redis.call('GET', key)
  if not line then
    line = ARGV[i]
    if ttl ~= '0' then
      redis.call('SET', key, line, 'PX', ttl)
    else
      redis.call('SET', key, line)
    end
  elseif ttl ~= '0' then
    redis.call('PEXPIRE', key, ttl)
  end
  lines[i] = line
end
return lines

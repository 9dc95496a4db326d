-- Drops entries of one entity, their index members and their write leases.
--
-- KEYS[1]    the entity's index (sorted set of entry members, {namespace}:{variant})
-- KEYS[2]    the entity's write leases (hash: entry member -> token)
-- KEYS[3..]  the entries
-- ARGV[1..]  their members, in the same order
--
-- Returns how many entries were there.
local gone = 0
for i = 1, #ARGV do
  gone = gone + redis.call('DEL', KEYS[i + 2])
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('HDEL', KEYS[2], ARGV[i])
end
return gone

-- Step 1 of a write-back: records a write lease for one entry, and says how long ago an
-- invalidation last fenced its entity (in every namespace, or in the entry's).
--
-- KEYS[1]  the entity's write leases (hash: entry member -> token)
-- KEYS[2]  the entity's fences (hash: '*' or a namespace -> time in µs)
-- ARGV[1]  the entry's member, {namespace}:{variant}
-- ARGV[2]  the lease's token
-- ARGV[3]  how long the leases live, in ms
-- ARGV[4]  the entry's namespace
--
-- Returns the age in µs of the newest fence covering the entry, or -1 when there is none.
local t = redis.call('TIME')
local now_us = t[1] * 1000000 + t[2]
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local newest = -1
for _, field in ipairs({'*', ARGV[4]}) do
  local at = tonumber(redis.call('HGET', KEYS[2], field))
  if at and at > newest then newest = at end
end
if newest < 0 then return -1 end
return now_us - newest

-- Step 1 of invalidating an entity (in every namespace, or in one): fences it, drops the write
-- leases of the write-backs in flight (so that none of them stores its entry), and lists the
-- entries to drop. Their keys are made by the caller and dropped by drop_entries.lua.
--
-- KEYS[1]  the entity's index (sorted set of entry members, {namespace}:{variant})
-- KEYS[2]  the entity's write leases (hash: entry member -> token)
-- KEYS[3]  the entity's fences (hash: '*' or a namespace -> time in µs)
-- ARGV[1]  the namespace, or '' for every namespace
-- ARGV[2]  how long the fence lives, in ms
--
-- Returns the members of the entries to drop.
local t = redis.call('TIME')
local now_us = t[1] * 1000000 + t[2]
local ns = ARGV[1]
local field = ns
if ns == '' then field = '*' end
redis.call('HSET', KEYS[3], field, now_us)
redis.call('PEXPIRE', KEYS[3], ARGV[2])
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
if ns == '' then
  redis.call('DEL', KEYS[2])
  return members
end
local prefix = ns .. ':'
for _, lease in ipairs(redis.call('HKEYS', KEYS[2])) do
  if string.sub(lease, 1, #prefix) == prefix then redis.call('HDEL', KEYS[2], lease) end
end
local chosen = {}
for _, member in ipairs(members) do
  if string.sub(member, 1, #prefix) == prefix then chosen[#chosen + 1] = member end
end
return chosen

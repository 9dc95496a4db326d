-- Step 2 of a write-back: adds an entry to a group's index (its namespace's, or a tag's), and
-- says how long ago an invalidation last fenced the group.
--
-- KEYS[1]  the group's index (sorted set: member -> expiry in ms)
-- KEYS[2]  the group's fence (string: time in µs)
-- ARGV[1]  the member: the entity (namespace index) or {namespace}:{{entity}}:{variant} (tag index)
-- ARGV[2]  the entry's TTL in ms
--
-- Returns the age in µs of the group's fence, or -1 when there is none.
local t = redis.call('TIME')
local now_us = t[1] * 1000000 + t[2]
local now_ms = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
redis.call('ZADD', KEYS[1], 'GT', now_ms + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
local at = tonumber(redis.call('GET', KEYS[2]))
if not at then return -1 end
return now_us - at

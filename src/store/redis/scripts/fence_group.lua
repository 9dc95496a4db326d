-- Step 1 of invalidating a group (a namespace, or a tag): fences it and lists its live members
-- (entities of the namespace, or the tag's entries), which the caller then drops.
--
-- KEYS[1]  the group's index (sorted set: member -> expiry in ms)
-- KEYS[2]  the group's fence (string: time in µs)
-- ARGV[1]  how long the fence lives, in ms
--
-- Returns the members whose entries have not expired.
local t = redis.call('TIME')
local now_us = t[1] * 1000000 + t[2]
local now_ms = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('SET', KEYS[2], now_us, 'PX', ARGV[1])
return redis.call('ZRANGEBYSCORE', KEYS[1], now_ms, '+inf')

-- Step 3 of a write-back: stores the entry and indexes it under its entity, only if its write
-- lease is still there (an invalidation since step 1 dropped it).
--
-- KEYS[1]  the entry
-- KEYS[2]  the entity's write leases (hash: entry member -> token)
-- KEYS[3]  the entity's index (sorted set: entry member -> expiry in ms)
-- ARGV[1]  the entry's member, {namespace}:{variant}
-- ARGV[2]  the lease's token
-- ARGV[3]  the encoded entry
-- ARGV[4]  how long the entry lives, in ms
--
-- Returns 1 when stored, 0 when the lease was gone.
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
local t = redis.call('TIME')
local now_ms = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[4])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[3], 'PX', ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now_ms)
redis.call('ZADD', KEYS[3], 'GT', now_ms + ttl, ARGV[1])
if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
return 1

-- Cross-instance coalescing: takes the miss lease of an entry, unless the entry is there or
-- another caller holds the lease.
--
-- KEYS[1]  the entry
-- KEYS[2]  the entry's miss lease (string: the holder's token, or 'fwd')
-- ARGV[1]  this caller's token
-- ARGV[2]  how long the lease lives, in ms
--
-- Returns the entry when it is there; else {1} when this caller took the lease, or
-- {0, value} when it is held ('fwd': the holder's response cannot be stored, go on your own).
local entry = redis.call('GET', KEYS[1])
if entry then return entry end
local holder = redis.call('GET', KEYS[2])
if holder then return {0, holder} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {1}

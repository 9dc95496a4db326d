-- Cross-instance coalescing: ends a miss lease, if it is still the caller's. Once the entry is
-- stored the lease goes; otherwise it says 'fwd' to the callers waiting on it, for a while.
--
-- KEYS[1]  the entry's miss lease (string: the holder's token, or 'fwd')
-- ARGV[1]  the caller's token
-- ARGV[2]  '1' when the entry was stored, '0' when not
-- ARGV[3]  how long a 'fwd' lasts, in ms
--
-- Returns 1 when the lease was the caller's, 0 when not.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], 'fwd', 'PX', ARGV[3])
end
return 1

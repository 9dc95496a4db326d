-- Marks entries of one entity stale (a soft purge): each keeps its bytes and its stale windows,
-- but its TTL field ends now, so the next read serves it stale while one refresh runs (or,
-- without a stale-while-revalidate window, misses). Drops their write leases.
--
-- KEYS[1]    the entity's write leases (hash: entry member -> token)
-- KEYS[2..]  the entries
-- ARGV[1]    now, in milliseconds since the Unix epoch
-- ARGV[2..]  the entries' members, in the same order
--
-- An entry is "TRC", a version byte, u64 stored_at and u64 ttl (milliseconds, big-endian) at
-- bytes 4..19; anything else is left alone. Returns how many entries were marked.
local function read_u64(bytes)
  local n = 0
  for i = 1, 8 do
    n = n * 256 + string.byte(bytes, i)
  end
  return n
end

local function u64(n)
  local bytes = {}
  for i = 8, 1, -1 do
    bytes[i] = string.char(n % 256)
    n = math.floor(n / 256)
  end
  return table.concat(bytes)
end

local now = tonumber(ARGV[1])
local marked = 0
for i = 2, #KEYS do
  local head = redis.call('GETRANGE', KEYS[i], 0, 19)
  if #head == 20 and string.sub(head, 1, 3) == 'TRC' then
    local stored_at = read_u64(string.sub(head, 5, 12))
    local ttl = read_u64(string.sub(head, 13, 20))
    local age = math.max(now - stored_at, 0)
    if age < ttl then
      redis.call('SETRANGE', KEYS[i], 12, u64(age))
    end
    marked = marked + 1
  end
  redis.call('HDEL', KEYS[1], ARGV[i])
end
return marked

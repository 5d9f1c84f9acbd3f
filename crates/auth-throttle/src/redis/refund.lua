-- auth-throttle: gives back the units a request's call stored when a call
-- for another hash slot denied the request or failed (a Redis Cluster
-- runs the request slot by slot).
--
-- KEYS[i]      (i <= n) a counter the call stored
-- KEYS[n + 1]  this refund's own key: a refund sent again (a client's
--              retry after a lost answer) gives nothing back twice
-- ARGV[2i-1]   counter i's emission interval T, in microseconds
-- ARGV[2i]     the timestamp the call stored for counter i (its "next")
--
-- A counter gets back what is left of the request's unit: at most T, and
-- nothing once the clock has passed what the call stored (the unit has
-- drained by itself, and taking T off then would return another
-- request's). Returns the number of counters given something back.
local n = #KEYS - 1
if not redis.call("SET", KEYS[n + 1], "1", "NX", "PX", "10000") then
  return 0
end
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local back = 0
for i = 1, n do
  local tat = tonumber(redis.call("GET", KEYS[i]))
  local cut = math.min(tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i]) - now)
  if tat and cut > 0 then
    local earlier = tat - cut
    if earlier <= now then
      redis.call("DEL", KEYS[i])
    else
      local ttl = math.ceil((earlier - now) / 1000)
      redis.call("SET", KEYS[i], string.format("%d", earlier), "PX", string.format("%d", ttl))
    end
    back = back + 1
  end
end
return back

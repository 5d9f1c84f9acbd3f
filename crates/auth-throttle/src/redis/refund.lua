-- auth-throttle: gives one emission interval back on each counter a
-- request's call stored when a call for another hash slot denied the
-- request (a Redis Cluster runs the request slot by slot): what a request
-- took, and nothing else, is returned.
--
-- KEYS[i]      a counter the call stored
-- ARGV[i]      its emission interval T, in microseconds
--
-- Returns the number of counters given back. A counter that expired (or
-- was replaced by something that is not a number) is left as it is.
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local back = 0
for i = 1, #KEYS do
  local tat = tonumber(redis.call("GET", KEYS[i]))
  if tat then
    local earlier = tat - tonumber(ARGV[i])
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

-- auth-throttle: GCRA over every counter of one request, all or nothing,
-- in one round trip. The arithmetic is src/gcra.rs's, in integers (every
-- value stays below 2^53, so Lua's numbers hold them exactly).
--
-- KEYS[i]      the counter of rule i for its caller
-- ARGV[1]      "" (use the server's TIME: servers with skewed clocks agree)
--              or a time in microseconds (tests)
-- ARGV[2i]     rule i's emission interval T, in microseconds
-- ARGV[2i+1]   rule i's tolerance, burst * T
--
-- Returns {all_allowed, now, then per rule: allowed, remaining, reset, retry}
-- (times in microseconds). Allowed counters are stored (all of them, or
-- none) and expire by themselves when their bucket is full again.
local now
if ARGV[1] == "" then
  local time = redis.call("TIME")
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
else
  now = tonumber(ARGV[1])
end

local out = {1, now}
local nexts = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i])
  local tolerance = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call("GET", KEYS[i]) or now)
  if tat < now then
    tat = now
  end
  local next = tat + interval
  local ahead = next - now
  if ahead <= tolerance then
    nexts[i] = next
    table.insert(out, 1)
    table.insert(out, math.floor((tolerance - ahead) / interval))
    table.insert(out, ahead)
    table.insert(out, 0)
  else
    out[1] = 0
    table.insert(out, 0)
    table.insert(out, 0)
    table.insert(out, tat - now)
    table.insert(out, ahead - tolerance)
  end
end

if out[1] == 1 then
  for i = 1, #KEYS do
    local ttl = math.ceil((nexts[i] - now) / 1000)
    redis.call("SET", KEYS[i], string.format("%d", nexts[i]), "PX", string.format("%d", ttl))
  end
end
return out

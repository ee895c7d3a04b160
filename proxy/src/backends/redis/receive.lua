-- queue_basic receive, atomically: reclaim in-flight messages whose visibility deadline
-- passed, then read new ones; every message handed out gets a new deadline.
-- KEYS[1] stream, KEYS[2] deadlines hash (message id -> Unix ms)
-- ARGV[1] group, ARGV[2] max messages, ARGV[3] visibility ms
-- Returns {{id, delivery count, payload}, ...}
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max = tonumber(ARGV[2])
local deadline = now + tonumber(ARGV[3])
local out = {}
for _, p in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1000)) do
  if #out >= max then break end
  local id = p[1]
  if tonumber(redis.call('HGET', KEYS[2], id) or '0') <= now then
    local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], 'prism', 0, id)
    if #claimed == 0 then
      -- the entry is gone from the stream: forget it
      redis.call('XACK', KEYS[1], ARGV[1], id)
      redis.call('HDEL', KEYS[2], id)
    else
      redis.call('HSET', KEYS[2], id, deadline)
      table.insert(out, {id, p[4] + 1, claimed[1][2][2]})
    end
  end
end
if #out < max then
  local fresh = redis.call('XREADGROUP', 'GROUP', ARGV[1], 'prism', 'COUNT', max - #out, 'STREAMS', KEYS[1], '>')
  if fresh then
    for _, e in ipairs(fresh[1][2]) do
      redis.call('HSET', KEYS[2], e[1], deadline)
      table.insert(out, {e[1], 1, e[2][2]})
    end
  end
end
return out

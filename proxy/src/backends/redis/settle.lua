-- queue_basic ack or nack of one delivery, atomically. The receipt is valid only while it
-- names the message's latest delivery and that delivery's deadline has not passed.
-- KEYS[1] stream, KEYS[2] deadlines hash
-- ARGV[1] group, ARGV[2] message id, ARGV[3] delivery count, ARGV[4] 'ack' or 'nack'
-- Returns 1 when settled, 0 when the receipt is unknown or expired.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or tonumber(p[1][4]) ~= tonumber(ARGV[3]) then return 0 end
if tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0') <= now then return 0 end
if ARGV[4] == 'ack' then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[1], ARGV[2])
  redis.call('HDEL', KEYS[2], ARGV[2])
else
  -- visible again at once
  redis.call('HSET', KEYS[2], ARGV[2], 0)
end
return 1

-- queue_basic enqueue: creates the stream with its consumer group on first use.
-- KEYS[1] stream; ARGV[1] group, ARGV[2] payload. Returns the new message id.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
end
return redis.call('XADD', KEYS[1], '*', 'p', ARGV[2])

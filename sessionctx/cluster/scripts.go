package cluster

import "github.com/redis/go-redis/v9"

// The tier's Redis scripts. Every key one script touches carries the
// token's name as its hash tag ({name}), so they share one slot of a
// Redis Cluster; PUBLISH names no key.

// readScript reads a token's entry, and when there is none (or only the
// one the node refused already, ARGV[3]) takes the token's lock for this
// node's lookup, or else marks that a node waits for the lock's holder,
// all in one round trip.
//
//	KEYS: entry, lock, waiting mark
//	ARGV: owner token, lock TTL (ms), refused entry (or "")
//	returns {1, entry} | {2} (lock taken) | {3} (held by another) |
//	{4} (its holder gave the lookup up: look it up without the lock)
var readScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[3] then return {1, v} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
if redis.call('GET', KEYS[2]) == '-' then return {4} end
redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
return {3}
`)

// fillScript stores an answer, releases the lock if this node still owns
// it, and publishes: always when ARGV[6] is "1" (an invalidation), else
// only when a node marked that it waits (the fill's notice). One round
// trip for what was SET, PUBLISH and DEL.
//
//	KEYS: entry, lock, waiting mark
//	ARGV: sealed entry, TTL (ms), owner token (or ""), channel, message, always
//	returns 1 when it published
var fillScript = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then
	redis.call('DEL', KEYS[2])
end
local waited = redis.call('DEL', KEYS[3])
if ARGV[6] == '1' or waited == 1 then
	redis.call('PUBLISH', ARGV[4], ARGV[5])
	return 1
end
return 0
`)

// releaseScript gives up a lookup this node owns the lock of (compare
// and set, so a lock another node took after this one's expired stays):
// the lock becomes a short "given up" mark, and the waiting nodes are
// woken, so that each looks the token up at once rather than one after
// the other, each waiting for the previous one's lookup to fail.
//
//	KEYS: lock, waiting mark
//	ARGV: owner token, channel, message, mark TTL (ms)
//	returns 0 (not the owner), 1 (released), 2 (released and published)
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], '-', 'PX', ARGV[4])
if redis.call('DEL', KEYS[2]) == 1 then
	redis.call('PUBLISH', ARGV[2], ARGV[3])
	return 2
end
return 1
`)

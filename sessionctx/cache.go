package sessionctx

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"sync/atomic"
)

// Key identifies a token in the cache: the SHA-256 of the token and of the
// kind of source it came from. Tokens are never kept in clear.
type Key [sha256.Size]byte

// KeyOf hashes a credential.
func KeyOf(c Credential) Key {
	var buf [256]byte
	b := append(buf[:0], c.Source.From...)
	b = append(b, 0)
	b = append(b, c.Value...)
	return sha256.Sum256(b)
}

// Short is a prefix of the key's hex form: enough to follow one token
// through a log, useless for recovering it.
func (k Key) Short() string { return hex.EncodeToString(k[:6]) }

// entry is immutable once stored, so readers share it without copying.
type entry struct {
	session  *Session
	prepared any
	// fresh and stale are Unix nanoseconds: the entry answers on its own
	// until fresh, and only while the session service fails until stale.
	fresh, stale int64
}

const shardCount = 64

// store is a map bounded to max entries, split in shards so that hits on
// different tokens do not contend. When the store is full, an insert
// evicts from its own shard an expired entry, or else the one closest to
// expiry among a few sampled, so eviction costs O(1) and needs no LRU list
// on the hit path. The bound is global (an atomic count), not per shard, so
// an unlucky hash spread cannot evict below max; it can only overshoot by
// one entry per empty shard.
type store struct {
	shards [shardCount]shard
	max    int64
	count  atomic.Int64
}

type shard struct {
	mu sync.RWMutex
	m  map[Key]*entry
}

func newStore(max int) *store {
	s := &store{max: int64(max)}
	for i := range s.shards {
		s.shards[i].m = make(map[Key]*entry)
	}
	return s
}

func (s *store) shard(k Key) *shard { return &s.shards[k[0]%shardCount] }

func (s *store) get(k Key) *entry {
	sh := s.shard(k)
	sh.mu.RLock()
	e := sh.m[k]
	sh.mu.RUnlock()
	return e
}

// put stores e and reports how many entries it evicted to make room.
func (s *store) put(k Key, e *entry, now int64) int {
	sh := s.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	evicted := 0
	if _, exists := sh.m[k]; !exists {
		if s.count.Load() >= s.max && len(sh.m) > 0 {
			sh.evictOne(now)
			s.count.Add(-1)
			evicted++
		}
		s.count.Add(1)
	}
	sh.m[k] = e
	return evicted
}

const evictionSample = 8

func (sh *shard) evictOne(now int64) {
	var victim Key
	var victimStale int64
	n := 0
	for k, e := range sh.m { // map order is random: a fair sample
		if e.stale <= now {
			delete(sh.m, k)
			return
		}
		if n == 0 || e.stale < victimStale {
			victim, victimStale = k, e.stale
		}
		if n++; n == evictionSample {
			break
		}
	}
	delete(sh.m, victim)
}

func (s *store) delete(k Key) bool {
	sh := s.shard(k)
	sh.mu.Lock()
	_, ok := sh.m[k]
	if ok {
		delete(sh.m, k)
		s.count.Add(-1)
	}
	sh.mu.Unlock()
	return ok
}

func (s *store) clear() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		s.count.Add(-int64(len(sh.m)))
		clear(sh.m)
		sh.mu.Unlock()
	}
	return n
}

func (s *store) len() int { return int(s.count.Load()) }

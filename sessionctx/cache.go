package sessionctx

import (
	"cmp"
	"crypto/sha256"
	"fmt"
	"io"
	"slices"
	"sync"
	"unsafe"

	gocache "github.com/patrickmn/go-cache"
)

// Key identifies a token in the cache: the SHA-256 of the token alone.
// Where the token came in (a cookie, a header, a TR50 body) is left out:
// a token is one session whatever carries it, so a logout or a purge
// through one source ends it in every source it may arrive by, on every
// node. Tokens are never kept in clear; but a Key is an unkeyed hash,
// which anyone who guesses a token can compute, so it is no more fit for
// a log, a metric or an error than the token: name a token there by a
// keyed hash (an HMAC) of its Key under a secret of your own.
type Key [sha256.Size]byte

// Format prints a Key as "sessionctx.Key(redacted)" whatever the verb,
// so that a Key (or a Result, which holds one) printed into a log or an
// error shows no hash of the token: name a token there by a keyed hash.
func (Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "sessionctx.Key(redacted)") }

// Key is the cache key of token: what Result.Key holds for it, and what
// Client.Forget takes. The source is no part of the key, so any source
// gives the same one (for ETERNUS the token is the whole
// <session_id>:<token> credential).
func (src TokenSource) Key(token string) Key { return keyOf(credential{Value: token}) }

// keyOf hashes a credential's value. The leading domain byte keeps these
// keys apart from any other SHA-256 of a bare token (the ETERNUS token
// index).
func keyOf(c credential) Key {
	var buf [256]byte
	b := append(buf[:0], 0)
	b = append(b, c.Value...)
	return sha256.Sum256(b)
}

// entry is immutable once stored, so readers share it without copying.
type entry struct {
	// key is the entry's own key, and the bytes of the string go-cache
	// keeps it under: a lookup compares keys, and with the bytes here
	// that read brings in the entry's times too, instead of costing a
	// cache miss of its own (and an allocation per entry).
	key      Key
	session  *Session
	prepared any
	// fresh and stale are Unix nanoseconds: the entry answers on its own
	// until fresh, and only while the session service fails until stale.
	// Past stale it is dead and is deleted where it is found.
	fresh, stale int64
	// filled is when the answer was given; from refresh on, a request
	// that finds the entry starts a refresh ahead of fresh (refresh is
	// fresh when refresh ahead is off).
	filled, refresh int64
	// refreshing is set (atomically: the one field written after the
	// entry is stored) by the request that starts the entry's refresh.
	refreshing uint32
}

// entryStore is what the resolver needs of a node's cache: a bounded map
// from token keys to entries, told the time by the resolver's clock.
type entryStore interface {
	// get returns the live entry for k, or nil. A dead entry it finds is
	// deleted.
	get(k Key, now int64) *entry
	// put stores e and reports how many live entries it evicted to make
	// room.
	put(k Key, e *entry, now int64) int
	delete(k Key) bool
	clear() int
	// live counts the entries not yet past their stale time, deleting the
	// dead ones it meets.
	live(now int64) int
}

// shardCount is the most shards a store has; small stores have fewer, so
// that each shard holds enough entries for its bound to mean something.
const shardCount = 64

// minPerShard is the fewest entries a shard is given room for.
const minPerShard = 16

// victims is how many eviction candidates one scan of a shard keeps.
const victims = 256

// store is the node's cache: go-cache instances as shards keyed by the
// token hash, so hits on different tokens do not contend.
//
// go-cache alone has no size bound and expires entries on its own clock
// with a janitor goroutine that cannot be stopped. So each shard is made
// with no janitor and its items with no go-cache expiry: expiry is the
// entry's stale time on the resolver's clock (which tests can move, and
// which spares the hit path go-cache's own time.Now), a dead entry is
// deleted where it is read, and each shard is bounded. An insert into a
// full shard first drops its dead entries, then evicts its entry nearest
// to expiry. Finding those takes a scan of the shard; one scan keeps the
// victims nearest to expiry in order, so a flood of inserts pays for a scan
// once every few dozen evictions, not every time.
type store struct {
	shards   []shard
	perShard int
}

type shard struct {
	// mu makes the shard's compound updates (check, count, evict, set)
	// atomic; reads go straight to go-cache, which has its own lock.
	mu sync.Mutex
	c  *gocache.Cache
	// candidates are eviction victims nearest to expiry first, kept from
	// the last scan: every live entry of the shard that is not here
	// expires no sooner than the last one here.
	candidates []candidate
}

type candidate struct {
	key   string
	entry *entry
}

// newStore makes a store bounded to about bound entries: at most one more
// per shard, from rounding the bound up to whole shards.
func newStore(bound int) *store {
	n := min(shardCount, max(1, bound/minPerShard))
	s := &store{shards: make([]shard, n), perShard: max(1, (bound+n-1)/n)}
	for i := range s.shards {
		s.shards[i].c = gocache.New(gocache.NoExpiration, 0)
	}
	return s
}

func (s *store) shard(k Key) *shard {
	return &s.shards[(uint(k[0])|uint(k[1])<<8)%uint(len(s.shards))]
}

// view is k as a string without a copy. For a Key on the stack it is for
// go-cache's Get only, which keeps no reference to the key it is given;
// for an entry's own key (which never changes once stored) it is the key
// go-cache stores.
func view(k *Key) string {
	return unsafe.String(&k[0], len(k)) //nolint:gosec // G103: a read-only view of an array that is never written after the entry is stored
}

func (s *store) get(k Key, now int64) *entry {
	v, ok := s.shard(k).c.Get(view(&k))
	if !ok {
		return nil
	}
	e := v.(*entry)
	if e.stale <= now {
		s.shard(k).deleteIf(string(k[:]), e)
		return nil
	}
	return e
}

func (s *store) put(k Key, e *entry, now int64) int {
	sh := s.shard(k)
	if e.key != k {
		if e.key != (Key{}) {
			// Stored under another key already, whose string must not
			// change under go-cache: this key gets its own copy.
			c := *e
			e = &c
		}
		e.key = k
	}
	key := view(&e.key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	evicted := 0
	if _, exists := sh.c.Get(key); !exists {
		for sh.c.ItemCount() >= s.perShard {
			if sh.evictOne(now) {
				evicted++
			}
		}
	}
	sh.c.Set(key, e, gocache.NoExpiration)
	sh.remember(key, e)
	return evicted
}

// evictOne removes the entry nearest to expiry and reports whether it was
// still live. Dead entries go first, since they expire soonest.
func (sh *shard) evictOne(now int64) bool {
	for {
		if len(sh.candidates) == 0 {
			sh.scan()
		}
		c := sh.candidates[0]
		sh.candidates = sh.candidates[1:]
		if v, ok := sh.c.Get(c.key); ok && v.(*entry) == c.entry {
			sh.c.Delete(c.key)
			return c.entry.stale > now
		}
		// Deleted or replaced since the scan: not a victim any more.
	}
}

// scan refills the candidates from the whole shard. It is called with the
// shard full, so it always finds some. It keeps the victims nearest to
// expiry in a max-heap as it goes (one comparison for most entries), not
// a sort of the whole shard: in a flood of new tokens at the bound, the
// scan is most of what an insert costs.
func (sh *shard) scan() {
	top := make([]candidate, 0, victims)
	for k, it := range sh.c.Items() {
		c := candidate{key: k, entry: it.Object.(*entry)}
		switch {
		case len(top) < victims:
			top = append(top, c)
			siftUp(top, len(top)-1)
		case c.entry.stale < top[0].entry.stale:
			top[0] = c
			siftDown(top, 0)
		}
	}
	slices.SortFunc(top, func(a, b candidate) int { return cmp.Compare(a.entry.stale, b.entry.stale) })
	sh.candidates = top
}

// siftUp and siftDown keep h a max-heap by stale time.
func siftUp(h []candidate, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p].entry.stale >= h[i].entry.stale {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func siftDown(h []candidate, i int) {
	for {
		l, largest := 2*i+1, i
		if l < len(h) && h[l].entry.stale > h[largest].entry.stale {
			largest = l
		}
		if r := l + 1; r < len(h) && h[r].entry.stale > h[largest].entry.stale {
			largest = r
		}
		if largest == i {
			return
		}
		h[i], h[largest] = h[largest], h[i]
		i = largest
	}
}

// remember keeps the candidates' promise when an entry is stored: one that
// expires before the last candidate joins them, in order.
func (sh *shard) remember(key string, e *entry) {
	n := len(sh.candidates)
	if n == 0 || e.stale >= sh.candidates[n-1].entry.stale {
		return
	}
	i, _ := slices.BinarySearchFunc(sh.candidates, e.stale, func(c candidate, t int64) int {
		switch {
		case c.entry.stale < t:
			return -1
		case c.entry.stale > t:
			return 1
		}
		return 0
	})
	sh.candidates = slices.Insert(sh.candidates, i, candidate{key: key, entry: e})
	if len(sh.candidates) > victims {
		sh.candidates = sh.candidates[:victims]
	}
}

// deleteIf deletes key if it still holds e: a dead entry found on read
// must not take a fresh one stored since with it.
func (sh *shard) deleteIf(key string, e *entry) {
	sh.mu.Lock()
	if v, ok := sh.c.Get(key); ok && v.(*entry) == e {
		sh.c.Delete(key)
	}
	sh.mu.Unlock()
}

func (s *store) delete(k Key) bool {
	sh := s.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	key := string(k[:])
	if _, ok := sh.c.Get(key); !ok {
		return false
	}
	sh.c.Delete(key)
	return true
}

func (s *store) clear() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.c.ItemCount()
		sh.c.Flush()
		sh.candidates = nil
		sh.mu.Unlock()
	}
	return n
}

func (s *store) live(now int64) int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, it := range sh.c.Items() {
			if it.Object.(*entry).stale <= now {
				sh.c.Delete(k)
			} else {
				n++
			}
		}
		sh.mu.Unlock()
	}
	return n
}

package sessionctx

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

func testKey(i int) Key {
	var k Key
	u := uint64(i) //nolint:gosec // G115: any bit pattern makes a key
	binary.LittleEndian.PutUint64(k[:], u)
	binary.LittleEndian.PutUint64(k[8:], u*0x9e3779b97f4a7c15)
	return k
}

func TestStoreBound(t *testing.T) {
	for _, bound := range []int{1, 3, 10, 100, 1000, 100000} {
		s := newStore(bound)
		// Past the bound by twice the bound, or, for the default bound
		// (100000), by twice victims per shard: every shard then runs out
		// of eviction candidates and scans again at least once, which is
		// all the bound depends on. (Twice the default bound costs 14 s
		// under -race, in scans of 1563-entry shards.)
		n := bound + min(2*bound, 2*victims*len(s.shards))
		for i := range n {
			s.put(testKey(i), &entry{fresh: 100, stale: 100}, 0)
		}
		// Rounding the bound up to whole shards is the only slack.
		if got := s.live(0); got < bound || got > bound+len(s.shards)-1 {
			t.Errorf("bound %d: %d live entries after %d inserts", bound, got, n)
		}
	}
}

// A full cache still takes a new entry, evicting the one nearest to expiry
// (dead ones first), never refusing.
func TestStoreEvictionOrder(t *testing.T) {
	s := newStore(4) // one shard of 4
	if len(s.shards) != 1 {
		t.Fatalf("%d shards for 4 entries, want 1", len(s.shards))
	}
	s.put(testKey(1), &entry{fresh: 50, stale: 50}, 0)   // dead at now=60
	s.put(testKey(2), &entry{fresh: 300, stale: 300}, 0) // furthest
	s.put(testKey(3), &entry{fresh: 100, stale: 200}, 0) // stale until 200
	s.put(testKey(4), &entry{fresh: 150, stale: 150}, 0) // nearest live
	now := int64(60)
	if n := s.put(testKey(5), &entry{fresh: 400, stale: 400}, now); n != 0 {
		t.Errorf("evicting a dead entry counted %d live evictions", n)
	}
	if s.get(testKey(1), now) != nil || s.get(testKey(5), now) == nil {
		t.Fatal("the dead entry was not the one dropped for the new one")
	}
	if n := s.put(testKey(6), &entry{fresh: 400, stale: 400}, now); n != 1 {
		t.Errorf("evictions = %d, want 1", n)
	}
	if s.get(testKey(4), now) != nil {
		t.Error("the entry nearest to expiry survived")
	}
	for _, i := range []int{2, 3, 5, 6} {
		if s.get(testKey(i), now) == nil {
			t.Errorf("entry %d evicted, want the one nearest to expiry only", i)
		}
	}
	// An entry stored after the last scan that expires sooner than every
	// remembered victim goes first.
	s.put(testKey(7), &entry{fresh: 70, stale: 70}, now) // evicts 3 (stale 200)
	s.put(testKey(8), &entry{fresh: 500, stale: 500}, now)
	if s.get(testKey(7), now) != nil {
		t.Error("a newer entry nearer to expiry was not evicted first")
	}
}

func TestStoreExpiryOnRead(t *testing.T) {
	s := newStore(100)
	s.put(testKey(1), &entry{fresh: 10, stale: 20}, 0)
	if e := s.get(testKey(1), 15); e == nil {
		t.Fatal("an entry within its stale time was not returned")
	}
	if s.get(testKey(1), 20) != nil {
		t.Fatal("a dead entry was returned")
	}
	// Found dead, it was deleted: not there even if the clock goes back.
	if s.get(testKey(1), 0) != nil {
		t.Error("a dead entry found on read was kept")
	}
}

func TestStoreLiveCount(t *testing.T) {
	s := newStore(1000)
	for i := range 500 {
		s.put(testKey(i), &entry{fresh: 10, stale: 10}, 0)
	}
	for i := 500; i < 600; i++ {
		s.put(testKey(i), &entry{fresh: 10, stale: 1000}, 0)
	}
	if got := s.live(5); got != 600 {
		t.Errorf("live(5) = %d, want 600", got)
	}
	if got := s.live(10); got != 100 {
		t.Errorf("live(10) = %d, want 100: expired entries still counted", got)
	}
	if !s.delete(testKey(550)) || s.delete(testKey(550)) {
		t.Error("delete did not report a present then absent entry")
	}
	if got := s.clear(); got != 99 {
		t.Errorf("clear = %d, want 99", got)
	}
	if got := s.live(0); got != 0 {
		t.Errorf("after clear: %d live", got)
	}
}

func TestStoreConcurrent(t *testing.T) {
	// The store runs no goroutine of its own (no janitor per shard):
	// expired entries go when met, so a dropped store leaks nothing.
	before := runtime.NumGoroutine()
	s := newStore(200)
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("newStore started %d goroutines; the store must run none", n-before)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := testKey((w*7919 + i) % 500)
				now := int64(i)
				switch i % 4 {
				case 0, 1:
					s.put(k, &entry{fresh: now + 50, stale: now + 100}, now)
				case 2:
					if e := s.get(k, now); e != nil && e.stale <= now {
						t.Errorf("dead entry returned")
					}
				case 3:
					s.delete(k)
				}
				if i%500 == 0 {
					s.live(now)
				}
			}
		}()
	}
	wg.Wait()
	if got := s.live(0); got > 200+len(s.shards) {
		t.Errorf("%d live entries, bound 200", got)
	}
}

// Stats count live entries only: sessions past their TTL (and rejections
// past theirs) are not shown as cached.
func TestResolverStatsCountLiveOnly(t *testing.T) {
	sessions := map[string]*Session{}
	for i := range 500 {
		sessions[fmt.Sprintf("s-%d", i)] = &Session{User: "u"}
	}
	r, _, clk := newTestResolver(CacheConfig{TTL: time.Minute, NegativeTTL: 10 * time.Second}, sessions)
	for i := range 500 {
		_, _ = r.Resolve(context.Background(), cred(fmt.Sprintf("s-%d", i)))
		_, _ = r.Resolve(context.Background(), cred(fmt.Sprintf("bad-%d", i)))
	}
	if st := r.Stats(); st.Entries != 500 || st.Rejections != 500 {
		t.Fatalf("stats %+v, want 500 sessions and 500 rejections", st)
	}
	clk.Advance(11 * time.Second)
	if st := r.Stats(); st.Entries != 500 || st.Rejections != 0 {
		t.Errorf("11s on: stats %+v, want 500 sessions and no rejections", st)
	}
	clk.Advance(time.Minute)
	if st := r.Stats(); st.Entries != 0 {
		t.Errorf("past the TTL: %d sessions still counted", st.Entries)
	}
}

// A user who arrives when the cache is full is cached: one service call,
// not one per request.
func TestResolverFullCacheStillCaches(t *testing.T) {
	const max = 100
	sessions := map[string]*Session{"late": {User: "late"}}
	for i := range max * 2 {
		sessions[fmt.Sprintf("s-%d", i)] = &Session{User: "u"}
	}
	r, fb, _ := newTestResolver(CacheConfig{Max: max}, sessions)
	for i := range max * 2 {
		_, _ = r.Resolve(context.Background(), cred(fmt.Sprintf("s-%d", i)))
	}
	before := fb.calls.Load()
	for range 10 {
		if _, err := r.Resolve(context.Background(), cred("late")); err != nil {
			t.Fatal(err)
		}
	}
	if n := fb.calls.Load() - before; n != 1 {
		t.Errorf("%d service calls for one new user of a full cache, want 1", n)
	}
}

// An entry's key bytes are the string go-cache keeps it under, so storing
// one entry under a second key must not rewrite the first key.
func TestStoreEntryUnderTwoKeys(t *testing.T) {
	s := newStore(100)
	e := &entry{fresh: 100, stale: 100}
	s.put(testKey(1), e, 0)
	s.put(testKey(2), e, 0)
	s.put(testKey(1), e, 0)
	for _, i := range []int{1, 2} {
		got := s.get(testKey(i), 0)
		if got == nil || got.key != testKey(i) {
			t.Fatalf("key %d: entry %v, want one stored under it", i, got)
		}
	}
	if !s.delete(testKey(1)) || !s.delete(testKey(2)) || s.live(0) != 0 {
		t.Error("the two keys are not two entries")
	}
}

// BenchmarkStoreEvict: inserts into a full store at the default bound,
// each evicting one entry (a flood of new tokens at cache_max).
func BenchmarkStoreEvict(b *testing.B) {
	s := newStore(defaultCacheMax)
	for i := range defaultCacheMax {
		s.put(testKey(i), &entry{fresh: int64(1000 + i), stale: int64(1000 + i)}, 0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		t := int64(1000 + defaultCacheMax + i)
		s.put(testKey(defaultCacheMax+i), &entry{fresh: t, stale: t}, 0)
	}
}

package cluster

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/caddy-sessiongate/internal/redistest"
	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// nodeOpts shape a test node beyond newNode's defaults.
type nodeOpts struct {
	url          string // Redis URL; the server's by default
	backend      string
	redisTimeout time.Duration
	svcTimeout   time.Duration
	cache        sessionctx.CacheConfig
	as           func(*Tier) sessionctx.Tier
	warn         func(msg string, err error) // besides the test log
}

func newNodeWith(t *testing.T, srv *redistest.Server, b *countingBackend, o nodeOpts) node {
	t.Helper()
	if o.url == "" {
		o.url = srv.URL()
	}
	if o.backend == "" {
		o.backend = "backend1"
	}
	if o.redisTimeout == 0 {
		o.redisTimeout = DefaultTimeout
	}
	if o.as == nil {
		o.as = func(tier *Tier) sessionctx.Tier { return tier }
	}
	tier, err := New(Config{URL: o.url, Secret: testSecret, Backend: o.backend, Timeout: o.redisTimeout,
		Warn: func(msg string, err error) {
			t.Logf("warn: %s: %v", msg, err)
			if o.warn != nil {
				o.warn(msg, err)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tier.Close() })
	c, err := sessionctx.New(sessionctx.Config{Dialect: "http", URL: b.url, Tokens: []sessionctx.TokenSource{tokenSource},
		Tier: o.as(tier), Cache: o.cache, Timeout: o.svcTimeout})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "tier connected", func() bool { return tier.Stats().Connected })
	return node{c, tier}
}

func mustResolve(t *testing.T, n node, tok string) {
	t.Helper()
	res, err := n.Resolve(context.Background(), tok)
	if err != nil || res.Session == nil {
		t.Fatalf("resolve %s: %+v, %v", tok, res, err)
	}
}

// snapshot is raw copies of Redis keys, as someone with write access to
// Redis takes them to put them back later.
type snapshot map[string][]byte

func takeSnapshot(t *testing.T, rc *redis.Client, pattern string) snapshot {
	t.Helper()
	ctx := context.Background()
	keys, err := rc.Keys(ctx, pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	s := snapshot{}
	for _, k := range keys {
		v, err := rc.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		s[k] = []byte(v)
	}
	return s
}

func (s snapshot) restore(t *testing.T, rc *redis.Client) {
	t.Helper()
	ctx := context.Background()
	for k, v := range s {
		if err := rc.RestoreReplace(ctx, k, time.Hour, string(v)).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// Item: the sealed entries of a session, copied out of Redis before its
// logout and put back after, are not served by any node that saw the
// logout: the session service is asked instead.
func TestTierReplayedEntryAfterLogout(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	a, c := newNode(t, srv, b, "backend1"), newNode(t, srv, b, "backend1")
	rc := srv.Client(nil)
	mustResolve(t, a, "good1")
	mustResolve(t, c, "good1")
	if got := b.calls.Load(); got != 1 {
		t.Fatalf("service calls = %d, want 1", got)
	}
	saved := takeSnapshot(t, rc, "*:s:*")
	if len(saved) == 0 {
		t.Fatal("no entry in Redis")
	}
	a.Forget(key("good1")) // the logout, on node A
	waitFor(t, time.Second, "node B to drop the session", func() bool { return c.Stats().Entries == 0 })

	for i, n := range []node{c, a} {
		saved.restore(t, rc)
		before := b.calls.Load()
		mustResolve(t, n, "good1")
		if got := b.calls.Load() - before; got != 1 {
			t.Fatalf("node %d served the entry put back after the logout (%d service calls, want 1)", i, got)
		}
	}
	if st := c.tier.Stats(); st.RevokedRefused == 0 {
		t.Fatalf("node B stats = %+v, want the replayed entry counted as refused", st)
	}
}

// Item: a purge of all rolled back (its generation key set back to an
// older value, the subscriptions killed so every node reads it again) or
// poisoned (the key set to garbage) does not bring pre-purge entries
// back, nor turn purges into silent no-ops.
func TestTierPurgeGenerationRolledBackOrPoisoned(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	a, c := newNode(t, srv, b, "backend1"), newNode(t, srv, b, "backend1")
	rc := srv.Client(nil)
	ctx := context.Background()
	a.Purge()
	waitFor(t, time.Second, "node B to see the purge", func() bool { return c.tier.Stats().InvalidationsReceived == 1 })
	mustResolve(t, a, "good1")
	mustResolve(t, c, "good1")
	genKeys, _ := rc.Keys(ctx, "*gen").Result()
	if len(genKeys) != 1 {
		t.Fatalf("generation keys = %v", genKeys)
	}
	if raw := rc.Get(ctx, genKeys[0]).Val(); rc.Get(ctx, genKeys[0]).Err() != nil || strings.Trim(raw, "0123456789") == "" {
		t.Fatalf("generation %q is in plain text", raw)
	}
	old := takeSnapshot(t, rc, "*")
	if _, err := a.PurgeAll(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "node B to purge", func() bool { return c.Stats().Entries == 0 })

	// Rolled back: the older generation and its entries put back, and
	// every subscription killed, so that each node reads the generation
	// again (and empties its cache).
	old.restore(t, rc)
	recv := c.tier.Stats()
	if err := rc.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "node B to subscribe again", func() bool {
		st := c.tier.Stats()
		return st.Connected && st.L2Misses+st.L2Hits == recv.L2Misses+recv.L2Hits
	})
	time.Sleep(300 * time.Millisecond)
	waitFor(t, 5*time.Second, "both connected", func() bool { return a.tier.Stats().Connected && c.tier.Stats().Connected })
	for i, n := range []node{c, a} {
		before := b.calls.Load()
		mustResolve(t, n, "good1")
		if got := b.calls.Load() - before; got != 1 {
			t.Fatalf("node %d served a pre-purge entry after the generation was rolled back (%d service calls, want 1)", i, got)
		}
	}

	// Poisoned: not a generation at all. A purge still reaches node B.
	if err := rc.Set(ctx, genKeys[0], "not-a-number", 0).Err(); err != nil {
		t.Fatal(err)
	}
	mustResolve(t, c, "good2")
	if _, err := a.PurgeAll(); err != nil {
		t.Fatalf("purge with a poisoned generation key: %v", err)
	}
	waitFor(t, time.Second, "node B to purge despite the poisoned key", func() bool { return c.Stats().Entries == 0 })
	before := b.calls.Load()
	mustResolve(t, c, "good2")
	if got := b.calls.Load() - before; got != 1 {
		t.Fatalf("service calls = %d after the purge, want 1", got)
	}
}

// Item: the cluster part of a purge of all that Redis does not take is
// reported (the purge's error), and delivered once Redis is back.
func TestTierPurgeFailureReportedAndRetried(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	px := redistest.NewProxy(t, srv.Addr)
	var mu sync.Mutex
	var warned []string
	a := newNodeWith(t, srv, b, nodeOpts{url: px.URL(), warn: func(msg string, _ error) {
		mu.Lock()
		warned = append(warned, msg)
		mu.Unlock()
	}})
	c := newNode(t, srv, b, "backend1")
	mustResolve(t, c, "good1")
	px.Stall()
	// Another failure first, which takes the rate-limited warnings' turn.
	a.Forget(key("good9"))
	if _, err := a.PurgeAll(); err == nil {
		t.Fatal("a purge Redis did not take reported no error")
	}
	mu.Lock()
	if !slices.Contains(warned, "cluster purge not delivered; retrying") {
		t.Errorf("no warning of its own for the failed purge; warnings: %q", warned)
	}
	mu.Unlock()
	if st := a.tier.Stats(); st.Undelivered != 1 {
		t.Fatalf("node A stats = %+v, want 1 undelivered (the purge covers the logout)", st)
	}
	px.Resume()
	waitFor(t, 5*time.Second, "node B to get the purge once Redis is back", func() bool { return c.Stats().Entries == 0 })
	waitFor(t, time.Second, "outbox empty", func() bool { return a.tier.Stats().Undelivered == 0 })
}

// capture records the messages published on a tier's channel.
func capture(t *testing.T, srv *redistest.Server, channel string) func() []string {
	t.Helper()
	rc := srv.Client(nil)
	ps := rc.Subscribe(context.Background(), channel)
	t.Cleanup(func() { ps.Close() })
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	go func() {
		for m := range ps.Channel() {
			mu.Lock()
			got = append(got, m.Payload)
			mu.Unlock()
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

// Item: a captured message published again (a purge of all, an
// invalidation) is refused; large garbage is dropped unopened, without
// losing the subscription or the node's cache.
func TestTierReplayedMessagesRefused(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	a, c := newNode(t, srv, b, "backend1"), newNode(t, srv, b, "backend1")
	rc := srv.Client(nil)
	ctx := context.Background()
	msgs := capture(t, srv, c.tier.channel)
	a.Purge()
	waitFor(t, time.Second, "node B to purge", func() bool { return c.tier.Stats().InvalidationsReceived == 1 })
	a.Forget(key("good2"))
	waitFor(t, time.Second, "node B to forget", func() bool { return c.tier.Stats().InvalidationsReceived == 2 })
	waitFor(t, time.Second, "both messages captured", func() bool { return len(msgs()) >= 2 })
	for _, tok := range []string{"good1", "good2", "good3"} {
		mustResolve(t, a, tok)
		mustResolve(t, c, tok)
	}
	calls := b.calls.Load()
	refused := c.tier.Stats().MessagesRefused
	captured := msgs()
	for range 50 {
		for _, m := range captured[:2] {
			rc.Publish(ctx, c.tier.channel, m)
		}
	}
	waitFor(t, 2*time.Second, "replays refused", func() bool { return c.tier.Stats().MessagesRefused >= refused+100 })
	if st := c.Stats(); st.Entries != 3 {
		t.Fatalf("replayed messages emptied node B's cache: %d entries, want 3", st.Entries)
	}
	for _, tok := range []string{"good1", "good2", "good3"} {
		mustResolve(t, c, tok)
	}
	if got := b.calls.Load(); got != calls {
		t.Fatalf("service calls %d -> %d after replayed messages, want none", calls, got)
	}

	// Large garbage, published fast: 20 MiB in all, within Redis's own
	// bound on a subscriber's output buffer (32 MiB by default; past it
	// Redis itself drops the subscriber, whatever the node does).
	big := make([]byte, 1<<20)
	rand.Read(big)
	const garbage = 20
	for range garbage {
		rc.Publish(ctx, c.tier.channel, big)
	}
	waitFor(t, 10*time.Second, "garbage dropped", func() bool { return c.tier.Stats().MessagesRefused >= refused+100+garbage })
	if st := c.Stats(); st.Entries != 3 {
		t.Fatalf("garbage messages emptied node B's cache: %d entries, want 3", st.Entries)
	}
	if !c.tier.Stats().Connected {
		t.Fatal("garbage messages cost node B its subscription")
	}
}

// Item: a logout made while its node's Redis connection is stalled is
// delivered to the other nodes once the connection is back.
func TestTierLogoutDuringStalledRedis(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	px := redistest.NewProxy(t, srv.Addr)
	a := newNodeWith(t, srv, b, nodeOpts{url: px.URL()})
	c := newNode(t, srv, b, "backend1")
	mustResolve(t, a, "good1")
	mustResolve(t, c, "good1")
	px.Stall()
	a.Forget(key("good1"))
	time.Sleep(300 * time.Millisecond)
	if st := a.tier.Stats(); st.Undelivered != 1 {
		t.Fatalf("node A stats = %+v, want the logout kept", st)
	}
	px.Resume()
	waitFor(t, 5*time.Second, "node B to drop the session after the stall", func() bool { return c.Stats().Entries == 0 })
	before := b.calls.Load()
	mustResolve(t, c, "good1")
	if got := b.calls.Load() - before; got != 1 {
		t.Fatalf("service calls = %d, want 1: the logged-out entry came back from Redis", got)
	}
}

// Item: a node serves an entry from Redis no longer than its own
// cache_ttl, whatever the writing node's.
func TestTierReaderTTLBoundsWhatItServes(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	long := newNodeWith(t, srv, b, nodeOpts{cache: sessionctx.CacheConfig{TTL: time.Hour}})
	short := newNodeWith(t, srv, b, nodeOpts{cache: sessionctx.CacheConfig{TTL: 200 * time.Millisecond}})
	mustResolve(t, long, "good1")
	mustResolve(t, short, "good1")
	if got := b.calls.Load(); got != 1 {
		t.Fatalf("service calls = %d, want 1", got)
	}
	time.Sleep(300 * time.Millisecond)
	mustResolve(t, short, "good1")
	if got := b.calls.Load(); got != 2 {
		t.Fatalf("service calls = %d, want 2: node B served the entry past its own cache_ttl", got)
	}
}

// Item: with a service slower than the Redis timeout, concurrent
// requests for one new token across three nodes make one service call.
func TestTierStampedeSlowService(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 300*time.Millisecond)
	var ns []node
	for range 3 {
		ns = append(ns, newNode(t, srv, b, "backend1"))
	}
	for round := range 2 {
		tok := fmt.Sprintf("goodslow%d", round)
		before := b.calls.Load()
		var wg sync.WaitGroup
		start := make(chan struct{})
		var failed atomic.Int64
		for i := range 60 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, err := ns[i%3].Resolve(context.Background(), tok); err != nil {
					failed.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		if f := failed.Load(); f != 0 {
			t.Fatalf("%d requests failed", f)
		}
		if got := b.calls.Load() - before; got != 1 {
			t.Fatalf("round %d: 60 requests across 3 nodes made %d service calls with a 300ms service, want 1", round, got)
		}
	}
}

// A node that took a token's lock and died (never answers) holds the
// others only until its lock expires; one that gives its lookup up
// (Release) lets them go at once.
func TestTierLockHolderGone(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	const lookup = 400 * time.Millisecond
	a := newNodeWith(t, srv, b, nodeOpts{svcTimeout: lookup})
	c := newNodeWith(t, srv, b, nodeOpts{svcTimeout: lookup})
	ctx := context.Background()
	if e := a.tier.Get(ctx, key("gooddead"), time.Now()); e != nil {
		t.Fatal("entry for a new token")
	}
	start := time.Now()
	mustResolve(t, c, "gooddead")
	took := time.Since(start)
	t.Logf("waited %v for a dead holder's lock (lookup %v)", took, lookup)
	if took < lookup/2 || took > 3*lookup {
		t.Fatalf("node B waited %v, want about the lock's life (%v)", took, lookup)
	}

	if e := a.tier.Get(ctx, key("goodgone"), time.Now()); e != nil {
		t.Fatal("entry for a new token")
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		a.tier.Release(key("goodgone"))
	}()
	start = time.Now()
	mustResolve(t, c, "goodgone")
	if took := time.Since(start); took > lookup {
		t.Fatalf("node B waited %v after the holder released, want far less than %v", took, lookup)
	}
}

// The lock is deleted only by its owner: a node whose lock expired and
// was taken by another does not delete the new owner's.
func TestTierLockCompareAndDelete(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	a := newNodeWith(t, srv, b, nodeOpts{svcTimeout: 200 * time.Millisecond})
	c := newNodeWith(t, srv, b, nodeOpts{svcTimeout: 200 * time.Millisecond})
	rc := srv.Client(nil)
	ctx := context.Background()
	k := key("goodlock")
	a.tier.Get(ctx, k, time.Now())
	lock := a.tier.keysOf(a.tier.gen.Load(), k).lock
	if !strings.Contains(lock, fmt.Sprintf(":%d:", a.tier.gen.Load())) {
		t.Fatalf("lock name %q does not carry the generation", lock)
	}
	waitFor(t, 2*time.Second, "A's lock to expire", func() bool { return rc.Exists(ctx, lock).Val() == 0 })
	c.tier.Get(ctx, k, time.Now()) // B takes it
	owner := rc.Get(ctx, lock).Val()
	a.tier.Release(k)
	if got := rc.Get(ctx, lock).Val(); got != owner || got == "" {
		t.Fatalf("node A deleted node B's lock (%q -> %q)", owner, got)
	}
	c.tier.Release(k)
	if v := rc.Get(ctx, lock).Val(); v == owner {
		t.Fatal("the owner's release left its lock")
	}
}

// A purge of all starts new lock names too: a lookup after it does not
// wait on a lock taken before it.
func TestTierLockNameHasGeneration(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	a := newNodeWith(t, srv, b, nodeOpts{svcTimeout: 2 * time.Second})
	c := newNodeWith(t, srv, b, nodeOpts{svcTimeout: 2 * time.Second})
	a.tier.Get(context.Background(), key("goodgen"), time.Now()) // held, never answered
	a.Purge()
	waitFor(t, time.Second, "node B to see the purge", func() bool { return c.tier.Stats().InvalidationsReceived == 1 })
	start := time.Now()
	mustResolve(t, c, "goodgen")
	if took := time.Since(start); took > time.Second {
		t.Fatalf("node B waited %v on a lock of the generation before the purge", took)
	}
}

// Item: a flood of rejections of tokens no node held a session for
// publishes nothing; a rejection of a token this node held a session
// for reaches the other nodes.
func TestTierRejectionsDoNotFloodChannel(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	a := newNodeWith(t, srv, b, nodeOpts{cache: sessionctx.CacheConfig{TTL: 100 * time.Millisecond, StaleIfError: time.Minute}})
	c := newNodeWith(t, srv, b, nodeOpts{cache: sessionctx.CacheConfig{TTL: time.Hour}})
	ctx := context.Background()
	for i := range 100 {
		if _, err := a.Resolve(ctx, fmt.Sprintf("random%d", i)); !errors.Is(err, sessionctx.ErrUnauthenticated) {
			t.Fatalf("random token: %v", err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if st := a.tier.Stats(); st.InvalidationsSent != 0 {
		t.Fatalf("node A published %d invalidations for tokens never seen as sessions", st.InvalidationsSent)
	}
	if st := c.tier.Stats(); st.InvalidationsReceived != 0 || st.SealedRejected != 0 {
		t.Fatalf("node B stats = %+v, want nothing received", st)
	}

	// A session revoked at the service: node A finds out when its
	// entry's TTL ends, and tells node B, which held it for an hour.
	mustResolve(t, a, "goodrevoked")
	mustResolve(t, c, "goodrevoked")
	b.revoked.Store("goodrevoked", true)
	time.Sleep(150 * time.Millisecond)
	if _, err := a.Resolve(ctx, "goodrevoked"); !errors.Is(err, sessionctx.ErrUnauthenticated) {
		t.Fatalf("revoked token on node A: %v", err)
	}
	waitFor(t, time.Second, "node B to drop the revoked session", func() bool { return c.Stats().Entries == 0 })
	if _, err := c.Resolve(ctx, "goodrevoked"); !errors.Is(err, sessionctx.ErrUnauthenticated) {
		t.Fatalf("revoked token on node B: %v", err)
	}
}

// Item: one token's Redis key names differ between backends and key
// prefixes, so Redis does not show that one token is used on several.
func TestKeyNamesDifferAcrossBackendsAndPrefixes(t *testing.T) {
	k := key("goodshared")
	names := map[string]string{}
	for _, scope := range [][2]string{{"sessiongate:", "b1"}, {"sessiongate:", "b2"}, {"other:", "b1"}} {
		s, err := newSealer(testSecret, scope[0], scope[1])
		if err != nil {
			t.Fatal(err)
		}
		n := s.name(k[:])
		if prev, dup := names[n]; dup {
			t.Fatalf("%v and %s name the token alike", scope, prev)
		}
		names[n] = scope[0] + scope[1]
	}
}

// roundTrips counts a client's round trips to Redis: one per command
// sent alone, one per pipeline.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmd)
	}
}
func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmds)
	}
}

// Item: a miss is one round trip to Redis, a fill (entry, notice, lock
// handed over) one more, and a hit one.
func TestTierRoundTrips(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	a, c := newNode(t, srv, b, "backend1"), newNode(t, srv, b, "backend1")
	mustResolve(t, a, "goodwarm") // the scripts are loaded once per server
	mustResolve(t, c, "goodwarm")
	var rt roundTrips
	a.tier.client.AddHook(&rt)
	ctx := context.Background()
	k := key("goodrt")
	if a.tier.Get(ctx, k, time.Now()) != nil {
		t.Fatal("hit for a new token")
	}
	miss := rt.n.Load()
	now := time.Now()
	a.tier.Set(ctx, k, &sessionctx.SharedEntry{Session: &sessionctx.Session{User: "u"}, Fresh: now.Add(time.Minute), Stale: now.Add(time.Minute), Filled: now}, now)
	fill := rt.n.Load() - miss
	t.Logf("Redis round trips: miss %d, fill %d", miss, fill)
	if miss != 1 || fill != 1 {
		t.Fatalf("round trips: miss %d, fill %d; want 1 and 1", miss, fill)
	}
}

// TestTierRevocationLatency reports how long a logout on one node takes
// to reach another, over many logouts, with the receiving node idle and
// under load. It reports; it does not assert a time.
func TestTierRevocationLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	var mu sync.Mutex
	arrived := map[sessionctx.Key]time.Time{}
	a := newNode(t, srv, b, "backend1")
	c := newNodeWith(t, srv, b, nodeOpts{as: func(tier *Tier) sessionctx.Tier {
		return &timedForget{Tier: tier, at: func(k sessionctx.Key) {
			mu.Lock()
			arrived[k] = time.Now()
			mu.Unlock()
		}}
	}})
	measure := func(name string) {
		const n = 200
		var lat []time.Duration
		for i := range n {
			tok := fmt.Sprintf("goodlat-%s-%d", name, i)
			mustResolve(t, c, tok)
			k := key(tok)
			start := time.Now()
			a.Forget(k)
			waitFor(t, 2*time.Second, "invalidation", func() bool {
				mu.Lock()
				defer mu.Unlock()
				_, ok := arrived[k]
				return ok
			})
			mu.Lock()
			lat = append(lat, arrived[k].Sub(start))
			mu.Unlock()
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		t.Logf("revocation latency node to node, %s, %d logouts: p50 %v, p99 %v, max %v", name, n, lat[n/2], lat[n*99/100], lat[n-1])
	}
	measure("idle")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Hits and new tokens (misses to Redis and the service).
				_, _ = c.Resolve(context.Background(), "goodload")
				if i%10 == 0 {
					_, _ = c.Resolve(context.Background(), fmt.Sprintf("goodload-%d-%d", w, i))
				}
			}
		}()
	}
	measure("receiver under load")
	close(stop)
	wg.Wait()
}

// timedForget records when the tier's invalidations reach the node.
type timedForget struct {
	*Tier
	at func(sessionctx.Key)
}

func (f *timedForget) Attach(link sessionctx.TierLink) error {
	forget := link.Forget
	link.Forget = func(k sessionctx.Key) {
		f.at(k)
		forget(k)
	}
	return f.Tier.Attach(link)
}

// A lookup that fails (the service is down) hands the other nodes no
// answer: they look the token up at once, together, not one after the
// other each waiting for the previous one's lookup to fail.
func TestTierFailedLookupDoesNotSerialize(t *testing.T) {
	srv := redistest.Start(t)
	const delay = 300 * time.Millisecond
	b := newCounting(t, delay)
	var ns []node
	for range 3 {
		ns = append(ns, newNode(t, srv, b, "backend1"))
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, n := range ns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := n.Resolve(context.Background(), "downservice"); !errors.Is(err, sessionctx.ErrUnavailable) {
				t.Errorf("service down: %v", err)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	t.Logf("3 nodes, service down (%v per call): %v, %d calls", delay, took, b.calls.Load())
	if took >= 3*delay {
		t.Fatalf("the nodes' lookups ran one after the other: %v for 3 nodes", took)
	}
}

// Past maxOutbox undelivered logouts, the node keeps one purge of all in
// their place, which covers them, and delivers it when Redis is back.
func TestTierOutboxOverflowBecomesPurge(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	px := redistest.NewProxy(t, srv.Addr)
	a := newNodeWith(t, srv, b, nodeOpts{url: px.URL()})
	c := newNode(t, srv, b, "backend1")
	mustResolve(t, c, "good1")
	genBefore := c.tier.gen.Load()
	px.Stall()
	for i := range maxOutbox + 1 {
		a.tier.keep(key(fmt.Sprintf("gone%d", i)))
	}
	if st := a.tier.Stats(); st.Undelivered != 1 {
		t.Fatalf("node A keeps %d revocations, want 1 purge of all in their place", st.Undelivered)
	}
	px.Resume()
	waitFor(t, 5*time.Second, "node B to get the purge", func() bool { return c.Stats().Entries == 0 })
	if c.tier.gen.Load() <= genBefore {
		t.Fatal("node B's generation did not move")
	}
}

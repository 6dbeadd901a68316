package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/redistest"
	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// countingBackend is a real HTTP session service (the http dialect's
// shape) that knows tokens starting with "good" and counts its calls.
type countingBackend struct {
	calls   atomic.Int64
	url     string
	revoked sync.Map // tokens logged out at the service
}

func newCounting(t testing.TB, delay time.Duration) *countingBackend {
	b := &countingBackend{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.calls.Add(1)
		if delay > 0 {
			time.Sleep(delay)
		}
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(tok, "down") {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if _, gone := b.revoked.Load(tok); gone || !strings.HasPrefix(tok, "good") {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"unauthenticated"}`))
			return
		}
		fmt.Fprintf(w, `{"id":"s-%s","user":"alice-%s","u":"alice"}`, tok, tok)
	}))
	t.Cleanup(srv.Close)
	b.url = srv.URL
	return b
}

// tokenSource is where the test nodes read tokens.
var tokenSource = sessionctx.TokenSource{From: sessionctx.FromHeader, Name: "X-Token"}

// key is the cache key of a token the test nodes read.
func key(tok string) sessionctx.Key { return tokenSource.Key(tok) }

// node is one client with its tier, as one Caddy node has.
type node struct {
	*sessionctx.Client
	tier *Tier
}

// Resolve authenticates a request carrying tok.
func (n node) Resolve(ctx context.Context, tok string) (sessionctx.Result, error) {
	r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	r.Header.Set(tokenSource.Name, tok)
	return n.Authenticate(r)
}

func newNode(t *testing.T, srv *redistest.Server, b *countingBackend, backendID string) node {
	t.Helper()
	return newNodeTimeout(t, srv, b, backendID, 100*time.Millisecond)
}

// newNodeTimeout is newNode with its own Redis timeout, which is also how
// long a node waits for another's answer before calling the service.
func newNodeTimeout(t *testing.T, srv *redistest.Server, b *countingBackend, backendID string, timeout time.Duration) node {
	t.Helper()
	return newNodeAs(t, srv, b, backendID, timeout, func(tier *Tier) sessionctx.Tier { return tier })
}

// newNodeAs is newNodeTimeout with the client given as its tier what
// as makes of the real one.
func newNodeAs(t *testing.T, srv *redistest.Server, b *countingBackend, backendID string, timeout time.Duration, as func(*Tier) sessionctx.Tier) node {
	t.Helper()
	tier, err := New(Config{URL: srv.URL(), Secret: testSecret, Backend: backendID, Timeout: timeout,
		Warn: func(msg string, err error) { t.Logf("warn: %s: %v", msg, err) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tier.Close() })
	c, err := sessionctx.New(sessionctx.Config{Dialect: "http", URL: b.url, Tokens: []sessionctx.TokenSource{tokenSource}, Tier: as(tier)})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "tier connected", func() bool { return tier.Stats().Connected })
	return node{c, tier}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTierOneServiceCallAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	a, c := newNode(t, srv, b, "backend1"), newNode(t, srv, b, "backend1")
	ctx := context.Background()
	for i, n := range []node{a, c, a, c} {
		res, err := n.Resolve(ctx, ("good1"))
		if err != nil || res.Session == nil || res.Session.User != "alice-good1" {
			t.Fatalf("resolve %d: %+v, %v", i, res, err)
		}
		if res.Session.Dialect != "http" || !strings.Contains(string(res.Session.Raw), `"u":"alice"`) {
			t.Fatalf("resolve %d lost dialect or raw answer: %q %q", i, res.Session.Dialect, res.Session.Raw)
		}
	}
	if got := b.calls.Load(); got != 1 {
		t.Fatalf("service calls = %d, want 1 across two nodes", got)
	}
	if st := c.tier.Stats(); st.L2Hits != 1 {
		t.Fatalf("node B stats = %+v, want 1 L2 hit", st)
	}
	// Rejections are shared too.
	for _, n := range []node{a, c} {
		if _, err := n.Resolve(ctx, ("bad1")); !errors.Is(err, sessionctx.ErrUnauthenticated) {
			t.Fatalf("bad token: %v", err)
		}
	}
	if got := b.calls.Load(); got != 2 {
		t.Fatalf("service calls = %d, want 2 (one per token)", got)
	}
	// Another backend on the same Redis shares nothing.
	other := newNode(t, srv, b, "backend2")
	if _, err := other.Resolve(ctx, ("good1")); err != nil {
		t.Fatal(err)
	}
	if got := b.calls.Load(); got != 3 {
		t.Fatalf("service calls = %d, want 3: another backend must not read backend1's entry", got)
	}
}

// TestTierServesOneClient: a Tier given to a second client is refused by
// that client's New, and the first client keeps its link to the tier:
// another node's logout still reaches it.
func TestTierServesOneClient(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	a, c := newNode(t, srv, b, "backend1"), newNode(t, srv, b, "backend1")
	second, err := sessionctx.New(sessionctx.Config{Dialect: "http", URL: b.url, Tokens: []sessionctx.TokenSource{tokenSource}, Tier: a.tier})
	if err == nil || !strings.Contains(err.Error(), "tier") {
		t.Fatalf("a second client on one Tier: %v, %v; want an error about the tier", second, err)
	}
	ctx := context.Background()
	if res, err := a.Resolve(ctx, "good1"); err != nil || res.Session == nil {
		t.Fatalf("resolve: %+v, %v", res, err)
	}
	b.revoked.Store("good1", true)
	c.Forget(key("good1"))
	waitFor(t, 3*time.Second, "the other node's logout to reach the first client", func() bool {
		_, err := a.Resolve(ctx, "good1")
		return errors.Is(err, sessionctx.ErrUnauthenticated)
	})
}

// forgetMidRead is a real Tier whose reads end with the node's own
// forget of the key read, as when another node's invalidation of that
// token arrives while this node is reading Redis.
type forgetMidRead struct {
	*Tier
	forget func(sessionctx.Key)
}

func (f *forgetMidRead) Attach(link sessionctx.TierLink) error {
	f.forget = link.Forget
	return f.Tier.Attach(link)
}

func (f *forgetMidRead) Get(ctx context.Context, key sessionctx.Key, now time.Time) *sessionctx.SharedEntry {
	e := f.Tier.Get(ctx, key, now)
	f.forget(key)
	return e
}

// Start is the client's first read (it calls Get only for what Start
// leaves to rest).
func (f *forgetMidRead) Start(ctx context.Context, key sessionctx.Key, now time.Time) (*sessionctx.SharedEntry, func() *sessionctx.SharedEntry) {
	e, rest := f.Tier.Start(ctx, key, now)
	if rest != nil {
		return nil, func() *sessionctx.SharedEntry {
			e := rest()
			f.forget(key)
			return e
		}
	}
	f.forget(key)
	return e, nil
}

// A node that rejects a token tells the others to forget it, and that
// message can reach a node while it reads the rejection from Redis. The
// rejection is still served from Redis (no second service call); a
// session read under a forget is not, as what was read may be what the
// forget revoked.
func TestTierForgetDuringSharedRead(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	a := newNode(t, srv, b, "backend1")
	other := newNodeAs(t, srv, b, "backend1", 100*time.Millisecond, func(tier *Tier) sessionctx.Tier { return &forgetMidRead{Tier: tier} })
	ctx := context.Background()

	if _, err := a.Resolve(ctx, "bad1"); !errors.Is(err, sessionctx.ErrUnauthenticated) {
		t.Fatalf("node A: %v", err)
	}
	if _, err := other.Resolve(ctx, "bad1"); !errors.Is(err, sessionctx.ErrUnauthenticated) {
		t.Fatalf("node B: %v, want the shared rejection", err)
	}
	if got := b.calls.Load(); got != 1 {
		t.Fatalf("service calls = %d, want 1: the shared rejection must be served", got)
	}

	if _, err := a.Resolve(ctx, "good1"); err != nil {
		t.Fatal(err)
	}
	if res, err := other.Resolve(ctx, "good1"); err != nil || res.Session == nil {
		t.Fatalf("node B: %+v, %v", res, err)
	}
	if got := b.calls.Load(); got != 3 {
		t.Fatalf("service calls = %d, want 3: a session read under a forget must be asked of the service again", got)
	}
}

func TestTierNothingReadableInRedis(t *testing.T) {
	srv := redistest.Start(t)
	a := newNode(t, srv, newCounting(t, 0), "backend1")
	if _, err := a.Resolve(context.Background(), "goodsecrettoken"); err != nil {
		t.Fatal(err)
	}
	_, _ = a.Resolve(context.Background(), "badsecrettoken") // rejected: its cached rejection is looked for below
	rc := srv.Client(nil)
	keys, err := rc.Keys(context.Background(), "*").Result()
	if err != nil || len(keys) < 2 {
		t.Fatalf("keys = %v, %v", keys, err)
	}
	for _, k := range keys {
		v, _ := rc.Get(context.Background(), k).Bytes()
		for _, s := range []string{"secrettoken", "alice", "s-good"} {
			if strings.Contains(k, s) || bytes.Contains(v, []byte(s)) {
				t.Fatalf("redis key %q or its value holds %q", k, s)
			}
		}
	}
}

func TestTierInvalidationReachesOtherNode(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	a, c := newNode(t, srv, b, "backend1"), newNode(t, srv, b, "backend1")
	ctx := context.Background()
	if _, err := a.Resolve(ctx, "good1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Resolve(ctx, "good1"); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Entries != 1 {
		t.Fatalf("node B holds %d entries, want 1", st.Entries)
	}
	start := time.Now()
	a.Forget(key("good1"))
	waitFor(t, time.Second, "node B to drop the session", func() bool { return c.Stats().Entries == 0 })
	t.Logf("invalidation reached node B in %.2f ms", float64(time.Since(start).Microseconds())/1000)
	if _, err := c.Resolve(ctx, ("good1")); err != nil {
		t.Fatal(err)
	}
	if got := b.calls.Load(); got != 2 {
		t.Fatalf("service calls = %d, want 2: the forgotten entry must not come back from Redis", got)
	}
	if st := c.tier.Stats(); st.InvalidationsReceived != 1 {
		t.Fatalf("node B stats = %+v, want 1 invalidation received", st)
	}

	// Purge of all.
	if _, err := a.Resolve(ctx, "good2"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Resolve(ctx, "good2"); err != nil {
		t.Fatal(err)
	}
	calls := b.calls.Load()
	start = time.Now()
	a.Purge()
	waitFor(t, time.Second, "node B to purge", func() bool { return c.Stats().Entries == 0 })
	t.Logf("purge reached node B in %.2f ms", float64(time.Since(start).Microseconds())/1000)
	if _, err := c.Resolve(ctx, "good2"); err != nil {
		t.Fatal(err)
	}
	if got := b.calls.Load(); got != calls+1 {
		t.Fatalf("service calls = %d, want %d: a purged entry must not come back from Redis", got, calls+1)
	}
}

func TestTierTamperedEntryNeverServed(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	a, c := newNode(t, srv, b, "backend1"), newNode(t, srv, b, "backend1")
	ctx := context.Background()
	rc := srv.Client(nil)
	if _, err := a.Resolve(ctx, "good1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Resolve(ctx, "good2"); err != nil {
		t.Fatal(err)
	}
	keys, _ := rc.Keys(ctx, "*:s:*").Result()
	if len(keys) != 2 {
		t.Fatalf("entry keys = %v", keys)
	}
	k1 := a.tier.keysOf(a.tier.gen.Load(), key("good1")).entry
	k2 := a.tier.keysOf(a.tier.gen.Load(), key("good2")).entry
	v2, _ := rc.Get(ctx, k2).Bytes()
	// good1's key now holds good2's entry: it must not open.
	rc.Set(ctx, k1, v2, time.Minute)
	res, err := c.Resolve(ctx, ("good1"))
	if err != nil || res.Session.User != "alice-good1" {
		t.Fatalf("swapped entry: %+v, %v", res.Session, err)
	}
	// good2's value flipped by one bit.
	v2[len(v2)-1] ^= 1
	rc.Set(ctx, k2, v2, time.Minute)
	res, err = c.Resolve(ctx, ("good2"))
	if err != nil || res.Session.User != "alice-good2" {
		t.Fatalf("tampered entry: %+v, %v", res.Session, err)
	}
	if st := c.tier.Stats(); st.SealedRejected != 2 || st.L2Hits != 0 {
		t.Fatalf("node B stats = %+v, want 2 sealed rejected, 0 hits", st)
	}
	if got := b.calls.Load(); got != 4 {
		t.Fatalf("service calls = %d, want 4 (node B resolved both itself)", got)
	}
	// A forged invalidation (no secret) is rejected, not applied.
	rc.Publish(ctx, c.tier.channel, "*")
	waitFor(t, time.Second, "forged message counted", func() bool { return c.tier.Stats().SealedRejected == 3 })
	if st := c.Stats(); st.Entries != 2 {
		t.Fatalf("forged purge applied: node B holds %d entries", st.Entries)
	}
}

func TestTierRedisPausedAnswersWithinTimeout(t *testing.T) {
	srv := redistest.Start(t)
	// A timeout long against a busy machine's scheduling delays (it
	// failed by 2ms with 100ms and load 16 on 2 cores), short against
	// go-redis's own 3s read timeout: one more wait of it in a lookup
	// still breaks the bound.
	const timeout = 300 * time.Millisecond
	b := newCounting(t, 20*time.Millisecond)
	a := newNodeTimeout(t, srv, b, "backend1", timeout)
	ctx := context.Background()
	srv.Pause()
	defer srv.Resume()
	// Get and Set each wait up to the timeout at most. The lookups run
	// at once, so that all of them are done long before the subscription
	// takes Redis as gone (from 2s on), after which a lookup would not
	// ask Redis at all.
	const bound = 2*timeout + 20*time.Millisecond + 200*time.Millisecond
	toks := []string{"good1", "good2", "bad1"}
	took := make([]time.Duration, len(toks))
	errs := make([]error, len(toks))
	var wg sync.WaitGroup
	for i, tok := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, errs[i] = a.Resolve(ctx, tok)
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	for i, tok := range toks {
		t.Logf("resolve %s with Redis paused: %v (%v)", tok, took[i], errs[i])
		if tok != "bad1" && errs[i] != nil {
			t.Fatal(errs[i])
		}
		if took[i] > bound {
			t.Fatalf("resolve %s took %v with Redis paused, want <= %v", tok, took[i], bound)
		}
	}
	// Forget and Purge are bounded too.
	start := time.Now()
	a.Forget(key("good1"))
	a.Purge()
	if took := time.Since(start); took > 4*timeout+200*time.Millisecond {
		t.Fatalf("forget+purge took %v with Redis paused", took)
	}
	waitFor(t, 5*time.Second, "tier to see Redis gone", func() bool { return !a.tier.Stats().Connected })
	srv.Resume()
	waitFor(t, 5*time.Second, "tier back", func() bool { return a.tier.Stats().Connected })
}

func TestTierRedisKillRestart(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	a, c := newNode(t, srv, b, "backend1"), newNode(t, srv, b, "backend1")
	ctx := context.Background()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures, total atomic.Int64
	for _, n := range []node{a, c} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := n.Resolve(ctx, ("goodload"))
				total.Add(1)
				if err != nil {
					failures.Add(1)
				}
				if i%50 == 0 {
					n.Forget(key("goodload"))
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	srv.Kill()
	time.Sleep(500 * time.Millisecond)
	// Each node held its L1 entry before; it must now go on alone.
	srv.Start()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if f := failures.Load(); f != 0 {
		t.Fatalf("%d of %d resolves failed around a Redis kill", f, total.Load())
	}
	t.Logf("%d resolves, none failed, across a Redis kill and restart", total.Load())

	// Sharing resumes: both subscribed again and a new token costs one call.
	waitFor(t, 5*time.Second, "both nodes reconnected", func() bool {
		return a.tier.Stats().Connected && c.tier.Stats().Connected
	})
	calls := b.calls.Load()
	if _, err := a.Resolve(ctx, "goodafter"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Resolve(ctx, "goodafter"); err != nil {
		t.Fatal(err)
	}
	if got := b.calls.Load() - calls; got != 1 {
		t.Fatalf("service calls after restart = %d, want 1 (sharing resumed)", got)
	}
	recv := c.tier.Stats().InvalidationsReceived
	start := time.Now()
	a.Forget(key("goodafter"))
	waitFor(t, time.Second, "invalidation after restart", func() bool { return c.tier.Stats().InvalidationsReceived > recv })
	t.Logf("invalidation after restart reached node B in %v", time.Since(start))
}

func TestTierResubscribeEmptiesCache(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	a := newNode(t, srv, b, "backend1")
	ctx := context.Background()
	if _, err := a.Resolve(ctx, "good1"); err != nil {
		t.Fatal(err)
	}
	if a.Stats().Entries != 1 {
		t.Fatal("no entry cached")
	}
	srv.Restart()
	waitFor(t, 5*time.Second, "cache emptied on resubscribe", func() bool { return a.Stats().Entries == 0 })
	waitFor(t, 5*time.Second, "reconnected", func() bool { return a.tier.Stats().Connected })
}

func TestTierSecretTooShort(t *testing.T) {
	if _, err := New(Config{URL: "redis://127.0.0.1:1/0", Secret: "short"}); err == nil {
		t.Fatal("a short secret was accepted")
	}
	if _, err := New(Config{URL: "http://x", Secret: testSecret}); err == nil {
		t.Fatal("a non-redis url was accepted")
	}
}

// TestTierStampedeAcrossNodes: three nodes miss one token at the same
// instant; one takes the Redis lock and calls the service, the others
// wait for its answer.
func TestTierStampedeAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 40*time.Millisecond)
	var ns []node
	for range 3 {
		// Room for the service's real HTTP round trip under -race on a
		// busy machine: a node that waits past its timeout calls the
		// service itself, by design.
		ns = append(ns, newNodeTimeout(t, srv, b, "backend1", time.Second))
	}
	for round := range 5 {
		tok := fmt.Sprintf("goodstampede%d", round)
		before := b.calls.Load()
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, 3*10)
		for _, n := range ns {
			for range 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					if _, err := n.Resolve(context.Background(), tok); err != nil {
						errs <- err
					}
				}()
			}
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if got := b.calls.Load() - before; got != 1 {
			t.Fatalf("round %d: 3 nodes x 10 concurrent requests made %d service calls, want 1", round, got)
		}
	}
}

// TestTierSubscriptionLogs: a Redis that was never reached is "not
// established yet", not "lost"; a subscription that comes (back) after a
// failure is told once, and only then.
func TestTierSubscriptionLogs(t *testing.T) {
	// The loss follows the first warning closer than the warnings' usual
	// spacing: shortened, the test does not wait it out.
	defer func(d time.Duration) { warnEvery = d }(warnEvery)
	warnEvery = 300 * time.Millisecond
	srv := redistest.Start(t)
	srv.Stop()
	var mu sync.Mutex
	var warns, infos []string
	tier, err := New(Config{URL: srv.URL(), Secret: testSecret, Backend: "logs", Timeout: 100 * time.Millisecond,
		Warn: func(msg string, err error) { mu.Lock(); warns = append(warns, msg); mu.Unlock() },
		Info: func(msg string) { mu.Lock(); infos = append(infos, msg); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tier.Close() })
	said := func(list *[]string, want string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return slices.ContainsFunc(*list, func(m string) bool { return strings.Contains(m, want) })
		}
	}
	waitFor(t, 5*time.Second, "a warning that the subscription is not established", said(&warns, "not established yet"))
	if said(&warns, "subscription lost")() {
		t.Errorf("a subscription never established is said to be lost: %q", warns)
	}
	srv.Restart()
	waitFor(t, 10*time.Second, "the subscription established and told once", said(&infos, "subscription established"))
	srv.Stop()
	waitFor(t, 10*time.Second, "the subscription lost", said(&warns, "subscription lost"))
	srv.Restart()
	waitFor(t, 10*time.Second, "the subscription restored", said(&infos, "subscription restored"))
	time.Sleep(1500 * time.Millisecond) // a quiet channel's pings in a steady state tell nothing more
	mu.Lock()
	defer mu.Unlock()
	if len(infos) != 2 {
		t.Errorf("infos %q, want one establishment and one restoration", infos)
	}
}

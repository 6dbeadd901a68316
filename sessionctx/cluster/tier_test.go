package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/redistest"
	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// countingBackend is a session service that knows tokens starting with
// "good" and counts its calls.
type countingBackend struct {
	calls atomic.Int64
	delay time.Duration
}

func (b *countingBackend) Resolve(ctx context.Context, cred sessionctx.Credential) (*sessionctx.Session, error) {
	b.calls.Add(1)
	if b.delay > 0 {
		time.Sleep(b.delay)
	}
	if !strings.HasPrefix(cred.Value, "good") {
		return nil, sessionctx.ErrUnauthenticated
	}
	return &sessionctx.Session{ID: "s-" + cred.Value, User: "alice-" + cred.Value, Dialect: "http", Raw: []byte(`{"u":"alice"}`)}, nil
}

func cred(tok string) sessionctx.Credential {
	return sessionctx.Credential{Value: tok, Source: sessionctx.TokenSource{From: sessionctx.FromHeader}}
}

// node is one resolver with its tier, as one Caddy node has.
type node struct {
	*sessionctx.Resolver
	tier *Tier
}

func newNode(t *testing.T, srv *redistest.Server, b sessionctx.Backend, backendID string) node {
	t.Helper()
	tier, err := New(Config{URL: srv.URL(), Secret: testSecret, Backend: backendID, Timeout: 100 * time.Millisecond,
		Warn: func(msg string, err error) { t.Logf("warn: %s: %v", msg, err) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tier.Close() })
	r := sessionctx.NewResolver(b, sessionctx.CacheConfig{})
	r.SetTier(tier)
	waitFor(t, 3*time.Second, "tier connected", func() bool { return tier.Stats().Connected })
	return node{r, tier}
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
	b := &countingBackend{}
	a, c := newNode(t, srv, b, "backend1"), newNode(t, srv, b, "backend1")
	ctx := context.Background()
	for i, n := range []node{a, c, a, c} {
		res, err := n.Resolve(ctx, cred("good1"))
		if err != nil || res.Session == nil || res.Session.User != "alice-good1" {
			t.Fatalf("resolve %d: %+v, %v", i, res, err)
		}
		if res.Session.Dialect != "http" || string(res.Session.Raw) != `{"u":"alice"}` {
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
		if _, err := n.Resolve(ctx, cred("bad1")); !errors.Is(err, sessionctx.ErrUnauthenticated) {
			t.Fatalf("bad token: %v", err)
		}
	}
	if got := b.calls.Load(); got != 2 {
		t.Fatalf("service calls = %d, want 2 (one per token)", got)
	}
	// Another backend on the same Redis shares nothing.
	other := newNode(t, srv, b, "backend2")
	if _, err := other.Resolve(ctx, cred("good1")); err != nil {
		t.Fatal(err)
	}
	if got := b.calls.Load(); got != 3 {
		t.Fatalf("service calls = %d, want 3: another backend must not read backend1's entry", got)
	}
}

func TestTierNothingReadableInRedis(t *testing.T) {
	srv := redistest.Start(t)
	a := newNode(t, srv, &countingBackend{}, "backend1")
	a.Resolve(context.Background(), cred("goodsecrettoken"))
	a.Resolve(context.Background(), cred("badsecrettoken"))
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
	b := &countingBackend{}
	a, c := newNode(t, srv, b, "backend1"), newNode(t, srv, b, "backend1")
	ctx := context.Background()
	a.Resolve(ctx, cred("good1"))
	c.Resolve(ctx, cred("good1"))
	if st := c.Stats(); st.Entries != 1 {
		t.Fatalf("node B holds %d entries, want 1", st.Entries)
	}
	start := time.Now()
	a.ForgetKey(sessionctx.KeyOf(cred("good1")))
	waitFor(t, time.Second, "node B to drop the session", func() bool { return c.Stats().Entries == 0 })
	t.Logf("invalidation reached node B in %.2f ms", float64(time.Since(start).Microseconds())/1000)
	if _, err := c.Resolve(ctx, cred("good1")); err != nil {
		t.Fatal(err)
	}
	if got := b.calls.Load(); got != 2 {
		t.Fatalf("service calls = %d, want 2: the forgotten entry must not come back from Redis", got)
	}
	if st := c.tier.Stats(); st.InvalidationsReceived != 1 {
		t.Fatalf("node B stats = %+v, want 1 invalidation received", st)
	}

	// Purge of all.
	a.Resolve(ctx, cred("good2"))
	c.Resolve(ctx, cred("good2"))
	calls := b.calls.Load()
	start = time.Now()
	a.Purge()
	waitFor(t, time.Second, "node B to purge", func() bool { return c.Stats().Entries == 0 })
	t.Logf("purge reached node B in %.2f ms", float64(time.Since(start).Microseconds())/1000)
	c.Resolve(ctx, cred("good2"))
	if got := b.calls.Load(); got != calls+1 {
		t.Fatalf("service calls = %d, want %d: a purged entry must not come back from Redis", got, calls+1)
	}
}

func TestTierTamperedEntryNeverServed(t *testing.T) {
	srv := redistest.Start(t)
	b := &countingBackend{}
	a, c := newNode(t, srv, b, "backend1"), newNode(t, srv, b, "backend1")
	ctx := context.Background()
	rc := srv.Client(nil)
	a.Resolve(ctx, cred("good1"))
	a.Resolve(ctx, cred("good2"))
	keys, _ := rc.Keys(ctx, "*:s:*").Result()
	if len(keys) != 2 {
		t.Fatalf("entry keys = %v", keys)
	}
	k1 := a.tier.entryKey(sessionctx.KeyOf(cred("good1")))
	k2 := a.tier.entryKey(sessionctx.KeyOf(cred("good2")))
	v2, _ := rc.Get(ctx, k2).Bytes()
	// good1's key now holds good2's entry: it must not open.
	rc.Set(ctx, k1, v2, time.Minute)
	res, err := c.Resolve(ctx, cred("good1"))
	if err != nil || res.Session.User != "alice-good1" {
		t.Fatalf("swapped entry: %+v, %v", res.Session, err)
	}
	// good2's value flipped by one bit.
	v2[len(v2)-1] ^= 1
	rc.Set(ctx, k2, v2, time.Minute)
	res, err = c.Resolve(ctx, cred("good2"))
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
	rc.Publish(ctx, DefaultKeyPrefix+"invalidate", "*")
	waitFor(t, time.Second, "forged message counted", func() bool { return c.tier.Stats().SealedRejected == 3 })
	if st := c.Stats(); st.Entries != 2 {
		t.Fatalf("forged purge applied: node B holds %d entries", st.Entries)
	}
}

func TestTierRedisPausedAnswersWithinTimeout(t *testing.T) {
	srv := redistest.Start(t)
	b := &countingBackend{delay: 20 * time.Millisecond}
	a := newNode(t, srv, b, "backend1")
	ctx := context.Background()
	srv.Pause()
	defer srv.Resume()
	// Get and Set each wait up to the timeout (100ms) at most.
	const bound = 100*time.Millisecond*2 + 20*time.Millisecond + 150*time.Millisecond
	for i, tok := range []string{"good1", "good2", "bad1"} {
		start := time.Now()
		_, err := a.Resolve(ctx, cred(tok))
		took := time.Since(start)
		t.Logf("resolve %d with Redis paused: %v (%v)", i, took, err)
		if tok != "bad1" && err != nil {
			t.Fatal(err)
		}
		if took > bound {
			t.Fatalf("resolve took %v with Redis paused, want <= %v", took, bound)
		}
	}
	// Forget and Purge are bounded too.
	start := time.Now()
	a.ForgetKey(sessionctx.KeyOf(cred("good1")))
	a.Purge()
	if took := time.Since(start); took > 4*100*time.Millisecond+100*time.Millisecond {
		t.Fatalf("forget+purge took %v with Redis paused", took)
	}
	waitFor(t, 5*time.Second, "tier to see Redis gone", func() bool { return !a.tier.Stats().Connected })
	srv.Resume()
	waitFor(t, 5*time.Second, "tier back", func() bool { return a.tier.Stats().Connected })
}

func TestTierRedisKillRestart(t *testing.T) {
	srv := redistest.Start(t)
	b := &countingBackend{}
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
				_, err := n.Resolve(ctx, cred("goodload"))
				total.Add(1)
				if err != nil {
					failures.Add(1)
				}
				if i%50 == 0 {
					n.ForgetKey(sessionctx.KeyOf(cred("goodload")))
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
	a.Resolve(ctx, cred("goodafter"))
	c.Resolve(ctx, cred("goodafter"))
	if got := b.calls.Load() - calls; got != 1 {
		t.Fatalf("service calls after restart = %d, want 1 (sharing resumed)", got)
	}
	recv := c.tier.Stats().InvalidationsReceived
	start := time.Now()
	a.ForgetKey(sessionctx.KeyOf(cred("goodafter")))
	waitFor(t, time.Second, "invalidation after restart", func() bool { return c.tier.Stats().InvalidationsReceived > recv })
	t.Logf("invalidation after restart reached node B in %v", time.Since(start))
}

func TestTierResubscribeEmptiesCache(t *testing.T) {
	srv := redistest.Start(t)
	b := &countingBackend{}
	a := newNode(t, srv, b, "backend1")
	ctx := context.Background()
	a.Resolve(ctx, cred("good1"))
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
	b := &countingBackend{delay: 40 * time.Millisecond}
	var ns []node
	for range 3 {
		ns = append(ns, newNode(t, srv, b, "backend1"))
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
					if _, err := n.Resolve(context.Background(), cred(tok)); err != nil {
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

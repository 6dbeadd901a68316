package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/redistest"
	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// newRefreshNode is a node whose sessions live ttl, refreshed ahead from
// half of it.
func newRefreshNode(t *testing.T, srv *redistest.Server, b *countingBackend, ttl time.Duration) node {
	t.Helper()
	tier, err := New(Config{URL: srv.URL(), Secret: testSecret, Backend: "backend1", Timeout: time.Second,
		Warn: func(msg string, err error) { t.Logf("warn: %s: %v", msg, err) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tier.Close() })
	c, err := sessionctx.New(sessionctx.Config{Dialect: "http", URL: b.url, Tokens: []sessionctx.TokenSource{tokenSource},
		Tier: tier, Cache: sessionctx.CacheConfig{TTL: ttl, RefreshAhead: 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "tier connected", func() bool { return tier.Stats().Connected })
	return node{c, tier}
}

// TestTierRefreshAheadOncePerCluster: three nodes whose entries for one
// token come due at once make one refresh call between them, and every
// node ends up with the refreshed answer.
func TestTierRefreshAheadOncePerCluster(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 200*time.Millisecond)
	var ns []node
	for range 3 {
		ns = append(ns, newRefreshNode(t, srv, b, 2*time.Second))
	}
	for round := range 2 {
		tok := fmt.Sprintf("goodrefresh%d", round)
		for _, n := range ns {
			if _, err := n.Resolve(context.Background(), tok); err != nil {
				t.Fatal(err)
			}
		}
		if got := b.calls.Load(); got != int64(2*round+1) {
			t.Fatalf("round %d: %d calls to fill 3 nodes", round, got)
		}
		time.Sleep(1100 * time.Millisecond) // past half of the 2s life
		var wg sync.WaitGroup
		for _, n := range ns {
			for range 5 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if res, err := n.Resolve(context.Background(), tok); err != nil || !res.Hit {
						t.Errorf("past the refresh point: %+v %v", res, err)
					}
				}()
			}
		}
		wg.Wait()
		time.Sleep(500 * time.Millisecond) // the refresh's call and fill
		if got := b.calls.Load(); got != int64(2*round+2) {
			t.Fatalf("round %d: 3 nodes due for a refresh made %d calls in all, want %d (one refresh)", round, got, 2*round+2)
		}
		// Past the first answer's end, every node answers from its cache:
		// the refreshed answer reached them all (adopted from Redis by
		// the nodes that did not refresh, when their next request came
		// due).
		for _, n := range ns {
			_, _ = n.Resolve(context.Background(), tok)
		}
		time.Sleep(600 * time.Millisecond)
		for i, n := range ns {
			if res, err := n.Resolve(context.Background(), tok); err != nil {
				t.Fatalf("node %d past the first answer's end: %+v %v", i, res, err)
			}
		}
		if got := b.calls.Load(); got != int64(2*round+2) {
			t.Fatalf("round %d: %d calls after the refresh, want %d", round, got, 2*round+2)
		}
	}
}

package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/redistest"
	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// BenchmarkTierL2Hit is the cost of answering from Redis (one GET on
// loopback, open, decode) against the node's own cache.
func BenchmarkTierL2Hit(b *testing.B) {
	srv := redistest.Start(b)
	tier, err := New(Config{URL: srv.URL(), Secret: testSecret, Backend: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer tier.Close()
	for deadline := time.Now().Add(3 * time.Second); !tier.Stats().Connected; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("not connected")
		}
	}
	key := sessionctx.KeyOf(cred("goodbench"))
	now := time.Now()
	tier.Set(context.Background(), key, &sessionctx.SharedEntry{
		Session: &sessionctx.Session{User: "alice", Roles: []string{"a", "b"}, Raw: []byte(`{"u":"alice"}`)},
		Fresh:   now.Add(time.Hour), Stale: now.Add(time.Hour),
	}, now)
	b.ResetTimer()
	for b.Loop() {
		if tier.Get(context.Background(), key, now) == nil {
			b.Fatal("miss")
		}
	}
}

// BenchmarkTierL1Hit is the node's own cache, for comparison.
func BenchmarkTierL1Hit(b *testing.B) {
	r := sessionctx.NewResolver(&countingBackend{}, sessionctx.CacheConfig{})
	c := cred("goodbench")
	r.Resolve(context.Background(), c)
	for b.Loop() {
		if _, err := r.Resolve(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTierNodesTimesTokens: N nodes resolving M tokens, one after the
// other, make M service calls.
func TestTierNodesTimesTokens(t *testing.T) {
	srv := redistest.Start(t)
	b := &countingBackend{}
	const nodes, tokens = 3, 50
	var ns []node
	for range nodes {
		ns = append(ns, newNode(t, srv, b, "backend1"))
	}
	for i := range tokens {
		for _, n := range ns {
			if _, err := n.Resolve(context.Background(), cred(fmt.Sprintf("good%d", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := b.calls.Load(); got != tokens {
		t.Fatalf("%d nodes x %d tokens made %d service calls, want %d", nodes, tokens, got, tokens)
	}
}

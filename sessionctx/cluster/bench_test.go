package cluster

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/redistest"
	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// benchTierWithEntry is a connected tier on its own redis-server, with
// one session in Redis under key, filled at now.
func benchTierWithEntry(b *testing.B) (*Tier, sessionctx.Key, time.Time) {
	b.Helper()
	srv := redistest.Start(b)
	tier, err := New(Config{URL: srv.URL(), Secret: testSecret, Backend: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tier.Close() })
	for deadline := time.Now().Add(3 * time.Second); !tier.Stats().Connected; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("not connected")
		}
	}
	key := key("goodbench")
	now := time.Now()
	tier.Set(context.Background(), key, &sessionctx.SharedEntry{
		Session: &sessionctx.Session{User: "alice", Roles: []string{"a", "b"}, Raw: []byte(`{"u":"alice"}`)},
		Fresh:   now.Add(time.Hour), Stale: now.Add(time.Hour),
	}, now)
	return tier, key, now
}

// BenchmarkTierL2Hit is the cost of answering from Redis (one GET on
// loopback, open, decode) against the node's own cache.
func BenchmarkTierL2Hit(b *testing.B) {
	tier, key, now := benchTierWithEntry(b)
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if tier.Get(context.Background(), key, now) == nil {
			b.Fatal("miss")
		}
	}
}

// BenchmarkTierL2HitParallel is the L2 hit with as many requests at once
// as a loaded node has: the pool must hand each one a connection without
// a wait.
func BenchmarkTierL2HitParallel(b *testing.B) {
	tier, key, now := benchTierWithEntry(b)
	b.ReportAllocs()
	b.SetParallelism(32)
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if tier.Get(context.Background(), key, now) == nil {
				b.Error("miss")
				return
			}
		}
	})
}

// BenchmarkTierL1Hit is the node's own cache, for comparison.
func BenchmarkTierL1Hit(b *testing.B) {
	c, err := sessionctx.New(sessionctx.Config{Dialect: "http", URL: newCounting(b, 0).url, Tokens: []sessionctx.TokenSource{tokenSource}})
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set(tokenSource.Name, "goodbench")
	if _, err := c.Authenticate(r); err != nil {
		b.Fatal(err)
	}
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := c.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServiceCall is a miss answered by a real HTTP session service
// on loopback (http dialect): what an L2 hit saves a node.
func BenchmarkServiceCall(b *testing.B) {
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"user_id":"u1","user":"alice","roles":["a","b"]}`))
	}))
	defer svc.Close()
	c, err := sessionctx.New(sessionctx.Config{Dialect: "http", URL: svc.URL})
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	i := 0
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		i++
		r.Header.Set("Authorization", "Bearer tok-"+strconv.Itoa(i))
		if _, err := c.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

// reportCPU reports the process's CPU time (user + system) per operation:
// steadier than wall time on a shared machine, and it counts the work the
// network round trips cost, which wall time hides behind waiting. (For
// the service call it includes the test service's own CPU, in-process.)
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru) // cannot fail for RUSAGE_SELF and a valid pointer
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestTierNodesTimesTokens: N nodes resolving M tokens, one after the
// other, make M service calls.
func TestTierNodesTimesTokens(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	const nodes, tokens = 3, 50
	var ns []node
	for range nodes {
		ns = append(ns, newNode(t, srv, b, "backend1"))
	}
	for i := range tokens {
		for _, n := range ns {
			if _, err := n.Resolve(context.Background(), (fmt.Sprintf("good%d", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := b.calls.Load(); got != tokens {
		t.Fatalf("%d nodes x %d tokens made %d service calls, want %d", nodes, tokens, got, tokens)
	}
}

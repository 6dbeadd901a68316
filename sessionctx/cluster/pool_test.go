package cluster

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/caddy-sessiongate/internal/redistest"
)

// The pool is sized as configured, by default larger than go-redis's own
// 10 per CPU on a small node; a pool_size in the URL is go-redis's own.
func TestPoolSize(t *testing.T) {
	for _, tc := range []struct {
		url  string
		size int
		want int
	}{
		{"redis://127.0.0.1:1", 0, max(64, 10*runtime.GOMAXPROCS(0))},
		{"redis://127.0.0.1:1", 300, 300},
		{"redis://127.0.0.1:1?pool_size=7", 0, 7},
		{"redis://127.0.0.1:1?pool_size=7", 9, 9},
	} {
		c, err := newClient(Config{URL: tc.url, PoolSize: tc.size, Timeout: DefaultTimeout})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.(*redis.Client).Options().PoolSize; got != tc.want {
			t.Errorf("%s, pool_size %d: pool of %d, want %d", tc.url, tc.size, got, tc.want)
		}
		c.Close()
	}
	c, err := newClient(Config{URLs: []string{"redis://127.0.0.1:1", "redis://127.0.0.1:2"}, Mode: ModeCluster, PoolSize: 77, Timeout: DefaultTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.(*redis.ClusterClient).Options().PoolSize; got != 77 {
		t.Errorf("cluster mode pool of %d, want 77", got)
	}
	c.Close()
}

// Connections are not peeked at on checkout; one that Redis closed while
// it sat in the pool costs a second try, not a miss nor a warning.
func TestPoolConnectionClosedByRedis(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	var warned atomic.Int64
	a := newNodeWith(t, srv, b, nodeOpts{warn: func(string, error) { warned.Add(1) }})
	c := newNodeWith(t, srv, b, nodeOpts{})
	for i := range 5 {
		mustResolve(t, a, fmt.Sprintf("goodkill%d", i))
	}
	rc := srv.Client(nil)
	if err := rc.Do(context.Background(), "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		mustResolve(t, c, fmt.Sprintf("goodkill%d", i))
	}
	if st := c.tier.Stats(); st.L2Hits != 5 || st.L2Misses != 0 {
		t.Fatalf("node B %+v after Redis closed its connections: want 5 L2 hits", st)
	}
	if n := b.calls.Load(); n != 5 || warned.Load() != 0 {
		t.Fatalf("%d service calls, %d warnings: want 5, none", n, warned.Load())
	}
}

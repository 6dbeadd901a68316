package cluster

import (
	"runtime"
	"testing"

	"github.com/redis/go-redis/v9"
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

package redistest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestServerLifecycle(t *testing.T) {
	s := Start(t)
	// The GET below gives up at its context's deadline, not at go-redis's
	// own read timeout (3 s, and retried).
	c := s.Client(&redis.Options{ContextTimeoutEnabled: true})
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	s.Pause()
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := c.Get(short, "k").Err()
	cancel()
	if err == nil {
		t.Fatal("GET on a paused server answered")
	}
	s.Resume()

	s.Restart()
	if n, err := c.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("after restart: EXISTS k = %d, %v; want 0 (nothing persisted)", n, err)
	}
}

func TestServerArgs(t *testing.T) {
	s := Start(t, "--requirepass", "pw")
	if err := s.Client(nil).Ping(context.Background()).Err(); err == nil {
		t.Fatal("PING without AUTH answered on a server with requirepass")
	}
}

// A port something else holds while the server is down is waited for,
// and the server comes back on it: the clients' address stays valid.
func TestServerStartWaitsForItsPort(t *testing.T) {
	s := Start(t)
	s.Stop()
	l, err := net.Listen("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		l.Close()
	}()
	s.Start()
	if err := s.Client(nil).Ping(context.Background()).Err(); err != nil {
		t.Fatalf("PING after the port came free: %v", err)
	}
}

// A Sentinel set is ready well before the 5 s a replica's first sync
// would wait by default (repl-diskless-sync-delay), and its Sentinel
// names the master.
func TestStartSentinelQuick(t *testing.T) {
	start := time.Now()
	s := StartSentinel(t, 1)
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("StartSentinel took %v, want under 3s", took)
	}
	if got := s.MasterAddr(t); got != s.Master.Addr {
		t.Fatalf("the sentinel names master %s, want %s", got, s.Master.Addr)
	}
}

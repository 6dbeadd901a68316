package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/redistest"
	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// Logins on one node tell no other node anything: a fill's notice goes
// out only when a node waits for that token, and it is counted as a fill,
// never as an invalidation, on both ends.
func TestFillNoticesOnlyToWaiters(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	const lookup = 2 * time.Second
	a := newNodeWith(t, srv, b, nodeOpts{svcTimeout: lookup})
	c := newNodeWith(t, srv, b, nodeOpts{svcTimeout: lookup})
	for i := range 50 {
		mustResolve(t, a, fmt.Sprintf("goodlogin%d", i))
	}
	time.Sleep(100 * time.Millisecond)
	sa, sc := a.tier.Stats(), c.tier.Stats()
	if sa.FillsSent != 0 || sa.InvalidationsSent != 0 || sc.FillsReceived != 0 || sc.InvalidationsReceived != 0 {
		t.Fatalf("50 logins nobody waited for: node A %+v, node B %+v; want no message", sa, sc)
	}

	// Node A looks a token up; node B waits for it and is told.
	k := key("goodwaited")
	if e := a.tier.Get(context.Background(), k, time.Now()); e != nil {
		t.Fatal("entry for a new token")
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := c.Resolve(context.Background(), "goodwaited")
		done <- err
	}()
	waitFor(t, time.Second, "node B to wait", func() bool {
		return srv.Client(nil).Exists(context.Background(), a.tier.keysOf(a.tier.gen.Load(), k).wait).Val() == 1
	})
	now := time.Now()
	a.tier.Set(context.Background(), k, &sessionctx.SharedEntry{
		Session: &sessionctx.Session{User: "alice"}, Fresh: now.Add(time.Minute), Stale: now.Add(time.Minute), Filled: now,
	}, now)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > lookup/2 {
		t.Fatalf("node B waited %v: not told of the fill", took)
	}
	sa, sc = a.tier.Stats(), c.tier.Stats()
	if sa.FillsSent != 1 || sa.InvalidationsSent != 0 {
		t.Fatalf("node A %+v: want 1 fill sent, no invalidation", sa)
	}
	waitFor(t, time.Second, "the notice", func() bool { return c.tier.Stats().FillsReceived == 1 })
	if sc = c.tier.Stats(); sc.InvalidationsReceived != 0 || sc.L2Hits != 1 {
		t.Fatalf("node B %+v: want the fill as a fill and an L2 hit, no invalidation", sc)
	}
	if n := b.calls.Load(); n != 50 {
		t.Fatalf("service calls = %d, want 50", n)
	}

	// A lookup given up tells the waiting node too, as a fill.
	k = key("goodgiveup")
	if e := a.tier.Get(context.Background(), k, time.Now()); e != nil {
		t.Fatal("entry for a new token")
	}
	go func() {
		_, err := c.Resolve(context.Background(), "goodgiveup")
		done <- err
	}()
	waitFor(t, time.Second, "node B to wait", func() bool {
		return srv.Client(nil).Exists(context.Background(), a.tier.keysOf(a.tier.gen.Load(), k).wait).Val() == 1
	})
	a.tier.Release(k)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if sa = a.tier.Stats(); sa.FillsSent != 2 || sa.InvalidationsSent != 0 {
		t.Fatalf("node A %+v: want 2 fills sent, no invalidation", sa)
	}
}

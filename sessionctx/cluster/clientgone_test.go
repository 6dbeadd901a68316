package cluster

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/redistest"
	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// A Get for a request whose client is gone reads nothing, takes no lock,
// and is neither a miss nor a failure.
func TestTierGetClientGone(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	var warned atomic.Int64
	a := newNodeWith(t, srv, b, nodeOpts{warn: func(string, error) { warned.Add(1) }})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	k := key("goodgone")
	if e := a.tier.Get(ctx, k, time.Now()); e != nil {
		t.Fatal("entry for a new token")
	}
	if st := a.tier.Stats(); st.L2Misses != 0 || st.L2Hits != 0 {
		t.Fatalf("stats = %+v, want no miss for a request nobody waits for", st)
	}
	rc := srv.Client(nil)
	if n := rc.Exists(context.Background(), a.tier.keysOf(a.tier.gen.Load(), k).lock).Val(); n != 0 {
		t.Fatal("a Get nobody waits for took the token's lock")
	}
	if warned.Load() != 0 {
		t.Fatal("a gone client was reported as a Redis failure")
	}
}

// A request whose client is gone before its lookup starts calls neither
// Redis nor the session service; a later request for the token does.
func TestClientGoneNoServiceCall(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	var warned atomic.Int64
	a := newNodeWith(t, srv, b, nodeOpts{warn: func(string, error) { warned.Add(1) }})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := a.Resolve(ctx, "goodgone")
	if !errors.Is(err, sessionctx.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want unavailable: canceled", err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := b.calls.Load(); n != 0 {
		t.Fatalf("%d service calls for a request nobody waits for", n)
	}
	if st := a.tier.Stats(); st.L2Misses != 0 || warned.Load() != 0 {
		t.Fatalf("stats = %+v, warnings %d: a gone client is neither a miss nor a failure", st, warned.Load())
	}
	mustResolve(t, a, "goodgone")
	if n := b.calls.Load(); n != 1 {
		t.Fatalf("service calls = %d, want 1", n)
	}
}

// A node whose only request for a token leaves while another node looks
// that token up stops waiting, and when the other node gives its lookup
// up, makes no service call of its own for nobody.
func TestClientGoneWhileWaitingForOtherNode(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	const lookup = 600 * time.Millisecond
	var warned atomic.Int64
	a := newNodeWith(t, srv, b, nodeOpts{svcTimeout: lookup})
	c := newNodeWith(t, srv, b, nodeOpts{svcTimeout: lookup, warn: func(string, error) { warned.Add(1) }})
	k := key("goodwait")
	if e := a.tier.Get(context.Background(), k, time.Now()); e != nil {
		t.Fatal("entry for a new token")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.Resolve(ctx, "goodwait"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the request's own deadline", err)
	}
	if took := time.Since(start); took > 300*time.Millisecond {
		t.Fatalf("the request waited %v past its client", took)
	}
	time.Sleep(100 * time.Millisecond)
	a.tier.Release(k)
	time.Sleep(300 * time.Millisecond)
	if n := b.calls.Load(); n != 0 {
		t.Fatalf("%d service calls after the only request waiting left", n)
	}
	if st := c.tier.Stats(); st.L2Misses != 0 || warned.Load() != 0 {
		t.Fatalf("node B stats = %+v, warnings %d: want no miss, no failure", st, warned.Load())
	}
}

// A lookup goes on for the requests still waiting when the first one's
// client leaves: they get the answer, with one service call.
func TestClientGoneOthersStillServed(t *testing.T) {
	srv := redistest.Start(t)
	b := newCounting(t, 0)
	const lookup = 600 * time.Millisecond
	a := newNodeWith(t, srv, b, nodeOpts{svcTimeout: lookup})
	c := newNodeWith(t, srv, b, nodeOpts{svcTimeout: lookup})
	k := key("goodshared")
	if e := a.tier.Get(context.Background(), k, time.Now()); e != nil {
		t.Fatal("entry for a new token")
	}
	first, cancel := context.WithCancel(context.Background())
	firstDone := make(chan error, 1)
	go func() {
		_, err := c.Resolve(first, "goodshared")
		firstDone <- err
	}()
	time.Sleep(30 * time.Millisecond)
	second := make(chan error, 1)
	go func() {
		res, err := c.Resolve(context.Background(), "goodshared")
		if err == nil && res.Session == nil {
			err = errors.New("no session")
		}
		second <- err
	}()
	time.Sleep(30 * time.Millisecond)
	cancel()
	if err := <-firstDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("first request: %v, want canceled", err)
	}
	time.Sleep(50 * time.Millisecond)
	a.tier.Release(k)
	if err := <-second; err != nil {
		t.Fatalf("second request: %v", err)
	}
	if n := b.calls.Load(); n != 1 {
		t.Fatalf("service calls = %d, want 1", n)
	}
}

package sessionctx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gatedBackend answers from a table, holding each call until the test
// opens the gate when gated.
type gatedBackend struct {
	mu       sync.Mutex
	sessions map[string]*Session
	err      error
	gate     chan struct{} // nil: answer at once
	calls    atomic.Int64
	entered  chan struct{}
}

func (g *gatedBackend) Resolve(_ context.Context, c credential) (*Session, error) {
	g.calls.Add(1)
	g.mu.Lock()
	gate, entered := g.gate, g.entered
	g.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if gate != nil {
		<-gate
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return nil, g.err
	}
	s, ok := g.sessions[c.Value]
	if !ok {
		return nil, fmt.Errorf("%w: unknown", ErrUnauthenticated)
	}
	return s, nil
}

func (g *gatedBackend) update(f func(g *gatedBackend)) { g.mu.Lock(); f(g); g.mu.Unlock() }

func refreshResolver(t *testing.T, sessions map[string]*Session) (*resolver, *gatedBackend, *clock) {
	t.Helper()
	g := &gatedBackend{sessions: sessions}
	r := newResolver(g, CacheConfig{TTL: 10 * time.Second, RefreshAhead: 0.8})
	r.lim = newLimiter(lookupLimits{}, time.Second)
	c := &clock{now: t0}
	r.setClock(c.Now)
	return r, g, c
}

// waitFor polls cond for up to 5s: the refresh runs on its own goroutine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestRefreshAheadReplacesEntry(t *testing.T) {
	r, g, c := refreshResolver(t, map[string]*Session{"a": {User: "ann"}})
	ctx := context.Background()
	if _, err := r.Resolve(ctx, cred("a")); err != nil {
		t.Fatal(err)
	}
	c.Advance(7 * time.Second) // before 80%: no refresh
	if res, err := r.Resolve(ctx, cred("a")); err != nil || !res.Hit {
		t.Fatalf("%+v %v", res, err)
	}
	if n := g.calls.Load(); n != 1 {
		t.Fatalf("%d calls before the refresh point", n)
	}
	c.Advance(1500 * time.Millisecond) // 8.5s: past 80%
	g.update(func(g *gatedBackend) { g.sessions["a"] = &Session{User: "ann2"} })
	res, err := r.Resolve(ctx, cred("a"))
	if err != nil || !res.Hit || res.Session.User != "ann" {
		t.Fatalf("the request past the refresh point was not served from the cache: %+v %v", res, err)
	}
	waitFor(t, "the refresh", func() bool { return r.Stats().RefreshesStarted == 1 && g.calls.Load() == 2 })
	waitFor(t, "the refreshed entry", func() bool {
		res, _ := r.Resolve(ctx, cred("a"))
		return res.Session != nil && res.Session.User == "ann2"
	})
	// Past the old entry's end, the refreshed one still answers.
	c.Advance(5 * time.Second)
	if res, err := r.Resolve(ctx, cred("a")); err != nil || !res.Hit || res.Session.User != "ann2" {
		t.Fatalf("after the old entry's end: %+v %v", res, err)
	}
	if st := r.Stats(); st.Waited != 1 {
		t.Fatalf("%d requests waited on the service, want 1 (the first)", st.Waited)
	}
}

func TestRefreshAheadRejectionEvicts(t *testing.T) {
	r, g, c := refreshResolver(t, map[string]*Session{"a": {User: "ann"}})
	ctx := context.Background()
	_, _ = r.Resolve(ctx, cred("a"))
	c.Advance(9 * time.Second)
	g.update(func(g *gatedBackend) { delete(g.sessions, "a") })
	if res, err := r.Resolve(ctx, cred("a")); err != nil || !res.Hit {
		t.Fatalf("%+v %v", res, err)
	}
	waitFor(t, "the eviction", func() bool {
		_, err := r.Resolve(ctx, cred("a"))
		return errors.Is(err, ErrUnauthenticated)
	})
	if n := g.calls.Load(); n != 2 {
		t.Fatalf("%d calls, want 2: the rejection is cached", n)
	}
}

func TestRefreshAheadErrorKeepsEntry(t *testing.T) {
	r, g, c := refreshResolver(t, map[string]*Session{"a": {User: "ann"}})
	ctx := context.Background()
	_, _ = r.Resolve(ctx, cred("a"))
	c.Advance(9 * time.Second)
	g.update(func(g *gatedBackend) { g.err = unavailable(FailureStatus, "502") })
	_, _ = r.Resolve(ctx, cred("a"))
	waitFor(t, "the refresh", func() bool { return g.calls.Load() == 2 && r.Stats().ServiceErrors == 1 })
	for range 10 {
		if res, err := r.Resolve(ctx, cred("a")); err != nil || !res.Hit || res.Session.User != "ann" {
			t.Fatalf("the entry did not outlive the failed refresh: %+v %v", res, err)
		}
	}
	if n := g.calls.Load(); n != 2 {
		t.Fatalf("%d calls: a failed refresh was retried on every request", n)
	}
	if st := r.Stats(); st.StaleServes != 0 {
		t.Fatalf("a failed refresh counted %d stale serves", st.StaleServes)
	}
	// Past its own end, the entry is gone (no stale_if_error here).
	c.Advance(1500 * time.Millisecond)
	if _, err := r.Resolve(ctx, cred("a")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("past the entry's end with the service failing: %v", err)
	}
}

func TestRefreshAheadOncePerToken(t *testing.T) {
	r, g, c := refreshResolver(t, map[string]*Session{"a": {User: "ann"}})
	ctx := context.Background()
	_, _ = r.Resolve(ctx, cred("a"))
	c.Advance(9 * time.Second)
	gate := make(chan struct{})
	g.update(func(g *gatedBackend) { g.gate = gate })
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res, err := r.Resolve(ctx, cred("a")); err != nil || !res.Hit {
				t.Errorf("%+v %v", res, err)
			}
		}()
	}
	wg.Wait()
	close(gate)
	waitFor(t, "the refresh", func() bool { return r.Stats().LookupsInFlight == 0 && g.calls.Load() >= 2 })
	if n, st := g.calls.Load(), r.Stats(); n != 2 || st.RefreshesStarted != 1 {
		t.Fatalf("%d calls, %d refreshes for 50 concurrent requests: want one refresh", n, st.RefreshesStarted)
	}
}

func TestRefreshAheadPurgeDuringRefresh(t *testing.T) {
	r, g, c := refreshResolver(t, map[string]*Session{"a": {User: "ann"}})
	ctx := context.Background()
	_, _ = r.Resolve(ctx, cred("a"))
	c.Advance(9 * time.Second)
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	g.update(func(g *gatedBackend) { g.gate, g.entered = gate, entered })
	_, _ = r.Resolve(ctx, cred("a"))
	<-entered
	r.Purge()
	close(gate)
	waitFor(t, "the refresh", func() bool { return r.Stats().LookupsInFlight == 0 })
	if st := r.Stats(); st.Entries != 0 {
		t.Fatalf("the refresh in flight during a purge cached its answer (%d entries)", st.Entries)
	}
}

func TestRefreshAheadOff(t *testing.T) {
	g := &gatedBackend{sessions: map[string]*Session{"a": {User: "ann"}}}
	r := newResolver(g, CacheConfig{TTL: 10 * time.Second, RefreshAhead: -1})
	c := &clock{now: t0}
	r.setClock(c.Now)
	_, _ = r.Resolve(context.Background(), cred("a"))
	c.Advance(9900 * time.Millisecond)
	_, _ = r.Resolve(context.Background(), cred("a"))
	time.Sleep(20 * time.Millisecond)
	if n := g.calls.Load(); n != 1 || r.Stats().RefreshesStarted != 0 {
		t.Fatalf("%d calls with refresh ahead off", n)
	}
}

// TestRefreshAheadSkippedWithoutSlot: a refresh that finds every lookup
// slot taken is skipped, not queued; a later request tries again.
func TestRefreshAheadSkippedWithoutSlot(t *testing.T) {
	r, g, c := refreshResolver(t, map[string]*Session{"a": {User: "ann"}, "b": {User: "bob"}})
	r.lim = newLimiter(lookupLimits{inFlight: 1}, time.Second)
	ctx := context.Background()
	_, _ = r.Resolve(ctx, cred("a"))
	c.Advance(9 * time.Second)
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	g.update(func(g *gatedBackend) { g.gate, g.entered = gate, entered })
	go func() { _, _ = r.Resolve(ctx, cred("b")) }()
	<-entered // b holds the one slot
	if res, err := r.Resolve(ctx, cred("a")); err != nil || !res.Hit {
		t.Fatalf("%+v %v", res, err)
	}
	if st := r.Stats(); st.RefreshesSkipped != 1 || st.RefreshesStarted != 0 {
		t.Fatalf("refreshes started %d, skipped %d; want 0, 1", st.RefreshesStarted, st.RefreshesSkipped)
	}
	close(gate)
	waitFor(t, "b's lookup", func() bool { return r.Stats().LookupsInFlight == 0 })
	g.update(func(g *gatedBackend) { g.entered = nil })
	_, _ = r.Resolve(ctx, cred("a"))
	waitFor(t, "the retried refresh", func() bool { return r.Stats().RefreshesStarted == 1 })
}

func TestLookupLimitRefusesWithoutCall(t *testing.T) {
	g := &gatedBackend{sessions: map[string]*Session{"a": {User: "ann"}, "b": {User: "bob"}}}
	r := newResolver(g, CacheConfig{})
	r.lim = newLimiter(lookupLimits{inFlight: 1}, 50*time.Millisecond)
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	g.update(func(g *gatedBackend) { g.gate, g.entered = gate, entered })
	done := make(chan error, 1)
	go func() { _, err := r.Resolve(context.Background(), cred("a")); done <- err }()
	<-entered
	_, err := r.Resolve(context.Background(), cred("b"))
	if FailureKindOf(err) != FailureLookupLimit || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("past the limit: %v, want an ErrUnavailable of kind lookup_limit", err)
	}
	if n := g.calls.Load(); n != 1 {
		t.Fatalf("%d calls: the refused lookup reached the service", n)
	}
	if st := r.Stats(); st.RefusedLookupLimit != 1 || st.LookupsInFlight != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A lookup that waits gets the slot once it is free.
	go func() {
		time.Sleep(20 * time.Millisecond)
		close(gate)
	}()
	g.update(func(g *gatedBackend) { g.entered = nil })
	r.lim.wait = 5 * time.Second
	if _, err := r.Resolve(context.Background(), cred("b")); err != nil {
		t.Fatalf("a lookup that waited for a slot: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestClientLimit(t *testing.T) {
	g := &gatedBackend{sessions: map[string]*Session{"a": {User: "ann"}, "b": {User: "bob"}}}
	r := newResolver(g, CacheConfig{})
	c := &clock{now: t0}
	r.setClock(c.Now)
	r.lim = newLimiter(lookupLimits{perClient: 3, window: time.Second}, time.Second)
	r.clientOf = func(req *http.Request) string { return req.RemoteAddr }
	flood := &http.Request{RemoteAddr: "192.0.2.1"}
	other := &http.Request{RemoteAddr: "192.0.2.2"}
	ctx := context.Background()
	if _, err := r.resolve(ctx, cred("a"), flood); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		_, _ = r.resolve(ctx, cred(fmt.Sprint("junk", i)), flood)
	}
	calls := g.calls.Load()
	_, err := r.resolve(ctx, cred("junk-x"), flood)
	if FailureKindOf(err) != FailureClientLimit || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("past the client's limit: %v", err)
	}
	if g.calls.Load() != calls {
		t.Fatal("the refused lookup reached the service")
	}
	// Its cached session and its cached rejections still answer.
	if res, err := r.resolve(ctx, cred("a"), flood); err != nil || !res.Hit {
		t.Fatalf("the flooding client's own session: %+v %v", res, err)
	}
	if _, err := r.resolve(ctx, cred("junk0"), flood); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("a cached rejection: %v", err)
	}
	// Another client's new session gets in.
	if _, err := r.resolve(ctx, cred("b"), other); err != nil {
		t.Fatalf("another client during the flood: %v", err)
	}
	// The bucket refills.
	c.Advance(400 * time.Millisecond)
	if _, err := r.resolve(ctx, cred("junk-y"), flood); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("after a third of the window: %v", err)
	}
	if st := r.Stats(); st.RefusedClientLimit != 1 {
		t.Fatalf("refused by the client limit: %d", st.RefusedClientLimit)
	}
}

func TestClientTableBounded(t *testing.T) {
	tab := newClientTable(2, time.Second, 640)
	for i := range 100000 {
		if _, ok := tab.take(fmt.Sprint("10.0.", i/256, ".", i%256), int64(i)); !ok {
			t.Fatalf("a new client refused at %d", i)
		}
	}
	if n := tab.size(); n > 640 {
		t.Fatalf("%d clients held, bound 640", n)
	}
	// A client still active keeps its bucket through evictions of idle ones.
	for i := range 2 {
		tab.take("hot", int64(200000+i))
	}
	if _, ok := tab.take("hot", 200002); ok {
		t.Fatal("a third lookup within the window passed")
	}
}

// TestRefreshAheadFixedExpiry: a session whose expiry the service does not
// move is refreshed once, not on every request near its end.
func TestRefreshAheadFixedExpiry(t *testing.T) {
	exp := t0.Add(10 * time.Second)
	r, g, c := refreshResolver(t, map[string]*Session{"a": {User: "ann", ExpiresAt: exp}})
	r.cfg.TTL = time.Hour
	ctx := context.Background()
	_, _ = r.Resolve(ctx, cred("a"))
	c.Advance(8500 * time.Millisecond)
	_, _ = r.Resolve(ctx, cred("a"))
	waitFor(t, "the refresh", func() bool { return g.calls.Load() == 2 && r.Stats().LookupsInFlight == 0 })
	for range 7 { // to 9.9s, past the refreshed entry's own refresh point
		c.Advance(200 * time.Millisecond)
		if res, err := r.Resolve(ctx, cred("a")); err != nil || !res.Hit {
			t.Fatalf("%+v %v", res, err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	if n := g.calls.Load(); n != 2 {
		t.Fatalf("%d calls for a session whose expiry never moves, want 2", n)
	}
	// Past its expiry it is gone, whatever refresh ahead did.
	c.Advance(time.Second)
	if _, err := r.Resolve(ctx, cred("a")); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("past the session's expiry: %v", err)
	}
}

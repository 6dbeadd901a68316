package sessionctx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeBackend answers from a table and counts its calls.
type fakeBackend struct {
	mu       sync.Mutex
	sessions map[string]*Session
	err      error
	calls    atomic.Int64
}

func (f *fakeBackend) Resolve(_ context.Context, c credential) (*Session, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	s, ok := f.sessions[c.Value]
	if !ok {
		return nil, fmt.Errorf("%w: unknown", ErrUnauthenticated)
	}
	return s, nil
}

func (f *fakeBackend) set(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// clock is a movable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTestResolver(cfg CacheConfig, sessions map[string]*Session) (*resolver, *fakeBackend, *clock) {
	fb := &fakeBackend{sessions: sessions}
	r := newResolver(fb, cfg)
	c := &clock{now: t0}
	r.setClock(c.Now)
	return r, fb, c
}

func cred(v string) credential { return credential{Value: v, Source: TokenSource{From: FromBearer}} }

func TestResolverCachesForTTL(t *testing.T) {
	r, fb, c := newTestResolver(CacheConfig{TTL: time.Minute}, map[string]*Session{"a": {User: "ann"}})
	for i := 0; i < 5; i++ {
		res, err := r.Resolve(context.Background(), cred("a"))
		if err != nil || res.Session.User != "ann" {
			t.Fatalf("resolve: %+v %v", res, err)
		}
		if res.Hit != (i > 0) {
			t.Errorf("request %d: Hit=%v", i, res.Hit)
		}
	}
	if n := fb.calls.Load(); n != 1 {
		t.Fatalf("%d service calls within the TTL, want 1", n)
	}
	c.Advance(59 * time.Second)
	_, _ = r.Resolve(context.Background(), cred("a"))
	if n := fb.calls.Load(); n != 1 {
		t.Fatalf("%d service calls at 59s, want 1", n)
	}
	c.Advance(2 * time.Second)
	_, _ = r.Resolve(context.Background(), cred("a"))
	if n := fb.calls.Load(); n != 2 {
		t.Fatalf("%d service calls after the TTL, want 2", n)
	}
}

func TestResolverTTLCappedBySessionExpiry(t *testing.T) {
	r, fb, c := newTestResolver(CacheConfig{TTL: time.Hour, StaleIfError: time.Hour},
		map[string]*Session{"a": {User: "ann", ExpiresAt: t0.Add(10 * time.Second)}})
	if _, err := r.Resolve(context.Background(), cred("a")); err != nil {
		t.Fatal(err)
	}
	c.Advance(9 * time.Second)
	_, _ = r.Resolve(context.Background(), cred("a"))
	if n := fb.calls.Load(); n != 1 {
		t.Fatalf("%d calls before the session's expiry, want 1", n)
	}
	c.Advance(2 * time.Second)
	// The session itself says it is over: ask again, and the service's
	// answer (the same expired session) is a rejection.
	if _, err := r.Resolve(context.Background(), cred("a")); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("past the session's own expiry: err %v, want ErrUnauthenticated", err)
	}
	// Nor is a session past its own expiry served stale during an outage.
	fb.set(fmt.Errorf("%w: down", ErrUnavailable))
	c.Advance(time.Minute) // past the negative TTL
	if _, err := r.Resolve(context.Background(), cred("a")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("outage after expiry: err %v, want ErrUnavailable", err)
	}
}

func TestResolverNegativeEntries(t *testing.T) {
	r, fb, c := newTestResolver(CacheConfig{NegativeTTL: 10 * time.Second}, map[string]*Session{})
	for i := 0; i < 3; i++ {
		if _, err := r.Resolve(context.Background(), cred("bad")); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("err %v", err)
		}
	}
	if n := fb.calls.Load(); n != 1 {
		t.Fatalf("%d calls for a rejected token within negative_ttl, want 1", n)
	}
	// The token becomes valid (a login): after negative_ttl it is asked again.
	fb.mu.Lock()
	fb.sessions["bad"] = &Session{User: "late"}
	fb.mu.Unlock()
	c.Advance(11 * time.Second)
	res, err := r.Resolve(context.Background(), cred("bad"))
	if err != nil || res.Session.User != "late" {
		t.Fatalf("after negative_ttl: %+v %v", res, err)
	}
	if st := r.Stats(); st.Entries != 1 || st.Rejections != 0 {
		t.Fatalf("stats %+v: the rejection should have given way to the session", st)
	}
}

func TestResolverNeverCachesServiceErrors(t *testing.T) {
	r, fb, _ := newTestResolver(CacheConfig{}, map[string]*Session{"a": {User: "ann"}})
	fb.set(fmt.Errorf("%w: down", ErrUnavailable))
	for i := 0; i < 3; i++ {
		if _, err := r.Resolve(context.Background(), cred("a")); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err %v, want ErrUnavailable", err)
		}
	}
	if n := fb.calls.Load(); n != 3 {
		t.Fatalf("%d calls, want 3: errors must not be cached", n)
	}
	fb.set(errors.New("an error of no known kind"))
	if _, err := r.Resolve(context.Background(), cred("a")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("unclassified backend error: %v, want it treated as ErrUnavailable", err)
	}
	fb.set(nil)
	if res, err := r.Resolve(context.Background(), cred("a")); err != nil || res.Session.User != "ann" {
		t.Fatalf("after recovery: %+v %v", res, err)
	}
	if st := r.Stats(); st.ServiceErrors != 4 || st.ServiceCalls != 5 {
		t.Fatalf("stats %+v", st)
	}
}

func TestResolverBound(t *testing.T) {
	// Shards bound the cache piecewise, so fill it half-way: a full shard
	// would evict its own sessions before the flood begins.
	const max, good = 640, 320
	sessions := map[string]*Session{}
	for i := 0; i < good; i++ {
		sessions[fmt.Sprintf("good-%d", i)] = &Session{User: fmt.Sprint(i)}
	}
	r, fb, _ := newTestResolver(CacheConfig{Max: max}, sessions)
	for i := 0; i < good; i++ {
		if _, err := r.Resolve(context.Background(), cred(fmt.Sprintf("good-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// A flood of random tokens, many times the bound.
	for i := 0; i < 20*max; i++ {
		_, _ = r.Resolve(context.Background(), cred(fmt.Sprintf("random-%d", i)))
	}
	st := r.Stats()
	if st.Rejections > max+shardCount {
		t.Errorf("%d rejections kept, bound %d", st.Rejections, max)
	}
	if st.Entries != good {
		t.Errorf("%d sessions kept after the flood, want all %d: random tokens must not push out sessions", st.Entries, good)
	}
	calls := fb.calls.Load()
	for i := 0; i < good; i++ {
		_, _ = r.Resolve(context.Background(), cred(fmt.Sprintf("good-%d", i)))
	}
	if fb.calls.Load() != calls {
		t.Errorf("real sessions were evicted by the flood: %d new calls", fb.calls.Load()-calls)
	}

	// More real sessions than the bound: the count stays bounded.
	for i := 0; i < 3*max; i++ {
		fb.mu.Lock()
		fb.sessions[fmt.Sprintf("more-%d", i)] = &Session{User: "m"}
		fb.mu.Unlock()
		_, _ = r.Resolve(context.Background(), cred(fmt.Sprintf("more-%d", i)))
	}
	if st := r.Stats(); st.Entries > max+shardCount || st.Evictions == 0 {
		t.Errorf("stats %+v: sessions must stay within the bound, by eviction", st)
	}
}

func TestResolverForgetAndPurge(t *testing.T) {
	r, fb, _ := newTestResolver(CacheConfig{}, map[string]*Session{"a": {User: "ann"}, "b": {User: "bob"}})
	_, _ = r.Resolve(context.Background(), cred("a"))
	_, _ = r.Resolve(context.Background(), cred("b"))
	_, _ = r.Resolve(context.Background(), cred("x"))
	if !r.Forget(cred("a")) || r.Forget(cred("a")) {
		t.Fatal("Forget should report an entry once")
	}
	_, _ = r.Resolve(context.Background(), cred("a"))
	if n := fb.calls.Load(); n != 4 {
		t.Fatalf("%d calls, want 4 (a asked again after Forget)", n)
	}
	if n := r.Purge(); n != 3 {
		t.Fatalf("Purge removed %d entries, want 3", n)
	}
	if st := r.Stats(); st.Entries != 0 || st.Rejections != 0 {
		t.Fatalf("after Purge: %+v", st)
	}
}

func TestResolverPrepare(t *testing.T) {
	r, _, _ := newTestResolver(CacheConfig{}, map[string]*Session{"a": {User: "ann"}})
	var prepared atomic.Int64
	r.prepare = func(s *Session) any { prepared.Add(1); return "prep:" + s.User }
	for i := 0; i < 3; i++ {
		res, err := r.Resolve(context.Background(), cred("a"))
		if err != nil || res.Prepared != "prep:ann" {
			t.Fatalf("%+v %v", res, err)
		}
	}
	if prepared.Load() != 1 {
		t.Fatalf("Prepare ran %d times, want once per session", prepared.Load())
	}
}

// TestResolverOneCallUnderConcurrentMisses sends 100 concurrent requests
// for one new token to a real HTTP session service that holds its answer
// until all of them are waiting: exactly one call.
func TestResolverOneCallUnderConcurrentMisses(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		<-release
		w.Write([]byte(`{"user":"ann"}`))
	}))
	defer srv.Close()
	b, _, err := newBackend(Config{Dialect: "http", URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	r := newResolver(b, CacheConfig{})

	const n = 100
	var started, done sync.WaitGroup
	errs := make(chan error, n)
	started.Add(n)
	done.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			defer done.Done()
			started.Done()
			res, err := r.Resolve(context.Background(), cred("fresh"))
			if err == nil && res.Session.User != "ann" {
				err = fmt.Errorf("user %q", res.Session.User)
			}
			errs <- err
		}()
	}
	started.Wait()
	// Wait until the call is in flight and every other request has had
	// its chance to join it, then let the service answer.
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for st := r.Stats(); st.Misses+st.Hits < n && time.Now().Before(deadline); st = r.Stats() {
		time.Sleep(time.Millisecond)
	}
	close(release)
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c := calls.Load(); c != 1 {
		t.Fatalf("%d session-service calls for %d concurrent misses on one token, want 1", c, n)
	}
}

func TestResolverWaiterCancellation(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Write([]byte(`{"user":"ann"}`))
	}))
	defer srv.Close()
	defer close(release)
	b, _, _ := newBackend(Config{Dialect: "http", URL: srv.URL})
	r := newResolver(b, CacheConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.Resolve(ctx, cred("x"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a request whose client has gone: err %v, want ErrUnavailable", err)
	}
}

func TestKeyOf(t *testing.T) {
	a := keyOf(credential{Value: "tok", Source: TokenSource{From: FromBearer}})
	long := keyOf(credential{Value: strings.Repeat("t", 1000)})
	if a == long || a == keyOf(credential{Value: "tok2", Source: TokenSource{From: FromBearer}}) {
		t.Fatal("different tokens share a key")
	}
	// A token is one session whatever carries it: its key is the same in
	// every source, so forgetting it through one forgets it in all.
	for _, src := range []TokenSource{
		{From: FromCookie, Name: "x"}, {From: FromHeader, Name: "sessionId"}, {From: FromQuery, Name: "t"}, tr50BodySource, {},
	} {
		if keyOf(credential{Value: "tok", Source: src}) != a || src.Key("tok") != a {
			t.Fatalf("the key of a token read from %s differs from the bearer's", src)
		}
	}
}

// blockingBackend holds each call until released, so a test can act while
// the call is in flight.
type blockingBackend struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingBackend) Resolve(context.Context, credential) (*Session, error) {
	b.entered <- struct{}{}
	<-b.release
	return &Session{User: "ann"}, nil
}

// TestResolverForgetDuringFlight: a logout that lands while the session is
// being fetched must not be undone by the fetch caching the old session.
func TestResolverForgetDuringFlight(t *testing.T) {
	b := &blockingBackend{entered: make(chan struct{}), release: make(chan struct{})}
	r := newResolver(b, CacheConfig{})
	done := make(chan error)
	go func() {
		res, err := r.Resolve(context.Background(), cred("a"))
		if err == nil && res.Session.User != "ann" {
			err = fmt.Errorf("user %q", res.Session.User)
		}
		done <- err
	}()
	<-b.entered
	r.Forget(cred("a"))
	close(b.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Entries != 0 {
		t.Fatalf("%d entries: the fetch in flight during Forget was cached", st.Entries)
	}
	// Without a Forget in between, the answer is cached as usual.
	go func() { _, err := r.Resolve(context.Background(), cred("a")); done <- err }()
	<-b.entered
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Entries != 1 {
		t.Fatalf("%d entries after an undisturbed fetch, want 1", st.Entries)
	}
	// A Purge during a fetch is a forget of every token.
	b.release = make(chan struct{})
	go func() { _, err := r.Resolve(context.Background(), cred("b")); done <- err }()
	<-b.entered
	r.Purge()
	b.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Entries != 0 {
		t.Fatalf("%d entries: the fetch in flight during Purge was cached", st.Entries)
	}
	// Forgetting another token does not cost this one its entry, so a
	// logout of one user does not send the others to the service again.
	other := "x"
	for i := 0; keyOf(cred(other))[0]%64 == keyOf(cred("c"))[0]%64; i++ {
		other = fmt.Sprint("x", i)
	}
	go func() { _, err := r.Resolve(context.Background(), cred("c")); done <- err }()
	<-b.entered
	r.Forget(cred(other))
	b.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Entries != 1 {
		t.Fatalf("%d entries: a Forget of another token kept this one's fetch from being cached", st.Entries)
	}
}

func TestResolverDropsUnwritableTimes(t *testing.T) {
	far := time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)
	r, _, _ := newTestResolver(CacheConfig{}, map[string]*Session{"a": {User: "ann", ExpiresAt: far, CreatedAt: far}})
	res, err := r.Resolve(context.Background(), cred("a"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Session.ExpiresAt.IsZero() || !res.Session.CreatedAt.IsZero() {
		t.Fatalf("times past the year 9999 kept: %v %v", res.Session.ExpiresAt, res.Session.CreatedAt)
	}
	if _, err := json.Marshal(res.Session); err != nil {
		t.Fatalf("the session does not marshal: %v", err)
	}
}

// Forget is ForgetKey by credential, for the tests that hold one.
func (r *resolver) Forget(cred credential) bool { return r.ForgetKey(keyOf(cred)) }

// setClock replaces the resolver's clock.
func (r *resolver) setClock(now func() time.Time) { r.now = now }

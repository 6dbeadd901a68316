package sessionctx

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// flakyBackend knows one token, "good", and can be told to fail or to
// reject it.
type flakyBackend struct {
	mu      sync.Mutex
	fail    error
	expires time.Time
	calls   int
}

func (f *flakyBackend) Resolve(_ context.Context, c credential) (*Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail != nil {
		return nil, f.fail
	}
	if c.Value != "good" {
		return nil, fmt.Errorf("%w: unknown", ErrUnauthenticated)
	}
	return &Session{UserID: "u1", User: "ann", ExpiresAt: f.expires}, nil
}

func (f *flakyBackend) setFail(err error) { f.mu.Lock(); f.fail = err; f.mu.Unlock() }

func (f *flakyBackend) callCount() int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls }

// staleClock is a clock tests move by hand.
type staleClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *staleClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *staleClock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

var good = credential{Value: "good", Source: TokenSource{From: FromBearer}}

func staleResolver(cfg CacheConfig) (*resolver, *flakyBackend, *staleClock) {
	b := &flakyBackend{}
	r := newResolver(b, cfg)
	c := &staleClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r.setClock(c.Now)
	return r, b, c
}

var errDown = fmt.Errorf("%w: session service answered 503", ErrUnavailable)

func TestStaleServedOnlyWhileServiceFails(t *testing.T) {
	r, b, c := staleResolver(CacheConfig{TTL: time.Minute, StaleIfError: 10 * time.Minute})
	ctx := context.Background()
	if _, err := r.Resolve(ctx, good); err != nil {
		t.Fatal(err)
	}

	// Past the TTL with the service up: a fresh answer, not a stale one.
	c.advance(2 * time.Minute)
	res, err := r.Resolve(ctx, good)
	if err != nil || res.Stale || res.Hit || b.callCount() != 2 {
		t.Fatalf("expired, service up: stale=%v hit=%v err=%v calls=%d; want a fresh call", res.Stale, res.Hit, err, b.callCount())
	}

	// Past the TTL with the service down: the session, marked stale,
	// after asking the service (each request asks again).
	b.setFail(errDown)
	c.advance(2 * time.Minute)
	for i := range 3 {
		res, err = r.Resolve(ctx, good)
		if err != nil || !res.Stale || res.Session == nil || res.Session.User != "ann" {
			t.Fatalf("outage %d: stale=%v err=%v; want the stale session", i, res.Stale, err)
		}
	}
	if b.callCount() != 5 {
		t.Errorf("%d service calls, want 5: a stale serve still tries the service first", b.callCount())
	}
	if st := r.Stats(); st.StaleServes != 3 || st.ServiceErrors != 3 {
		t.Errorf("stats %+v: want 3 stale serves and 3 service errors", st)
	}

	// Past TTL + window: refused.
	c.advance(10 * time.Minute)
	if _, err := r.Resolve(ctx, good); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("past the window: %v, want ErrUnavailable", err)
	}

	// The service comes back: fresh again, and the window starts over.
	b.setFail(nil)
	if res, err := r.Resolve(ctx, good); err != nil || res.Stale {
		t.Fatalf("after recovery: stale=%v err=%v", res.Stale, err)
	}
}

func TestStaleNeverAfterRejectionOrSessionExpiry(t *testing.T) {
	ctx := context.Background()

	// A session the service rejects is gone, even within the window.
	r, b, c := staleResolver(CacheConfig{TTL: time.Minute, StaleIfError: time.Hour})
	_, _ = r.Resolve(ctx, good)
	c.advance(2 * time.Minute)
	b.setFail(fmt.Errorf("%w: revoked", ErrUnauthenticated))
	if _, err := r.Resolve(ctx, good); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("rejected: %v", err)
	}
	b.setFail(errDown)
	c.advance(time.Hour) // past the negative TTL
	if res, err := r.Resolve(ctx, good); err == nil || res.Stale {
		t.Fatalf("a rejected session was served stale (err %v)", err)
	}

	// Never past the session's own expiry.
	r, b, c = staleResolver(CacheConfig{TTL: time.Minute, StaleIfError: time.Hour})
	b.expires = c.Now().Add(90 * time.Second)
	if _, err := r.Resolve(ctx, good); err != nil {
		t.Fatal(err)
	}
	b.setFail(errDown)
	c.advance(80 * time.Second)
	if res, err := r.Resolve(ctx, good); err != nil || !res.Stale {
		t.Fatalf("before the session's expiry: stale=%v err=%v", res.Stale, err)
	}
	c.advance(20 * time.Second)
	if _, err := r.Resolve(ctx, good); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("past the session's own expiry: %v, want ErrUnavailable", err)
	}

	// Without stale_if_error, no stale serves at all.
	r, b, c = staleResolver(CacheConfig{TTL: time.Minute})
	_, _ = r.Resolve(ctx, good)
	b.setFail(errDown)
	c.advance(61 * time.Second)
	if _, err := r.Resolve(ctx, good); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("stale_if_error 0: %v, want ErrUnavailable", err)
	}
}

func TestStaleHooks(t *testing.T) {
	ctx := context.Background()
	r, b, _ := staleResolver(CacheConfig{Max: 1, NegativeTTL: time.Hour})
	var mu sync.Mutex
	var observed []error
	evicted := 0
	r.observe = func(_ time.Duration, err error) { mu.Lock(); observed = append(observed, err); mu.Unlock() }
	r.onEvict = func(n int) { mu.Lock(); evicted += n; mu.Unlock() }

	_, _ = r.Resolve(ctx, good)
	// Max 1 is one entry per shard: more rejected tokens than shards
	// must push some out.
	for i := range 2 * shardCount {
		_, _ = r.Resolve(ctx, credential{Value: fmt.Sprintf("bad-%d", i), Source: TokenSource{From: FromBearer}})
	}
	b.setFail(errDown)
	_, _ = r.Resolve(ctx, credential{Value: "other", Source: TokenSource{From: FromBearer}})

	mu.Lock()
	defer mu.Unlock()
	if len(observed) != 2+2*shardCount || observed[0] != nil || !errors.Is(observed[len(observed)-1], ErrUnavailable) {
		t.Errorf("Observe saw %d calls (first %v, last %v), want every call with its error", len(observed), observed[0], observed[len(observed)-1])
	}
	if evicted < shardCount || uint64(evicted) != r.Stats().Evictions {
		t.Errorf("OnEvict told of %d evictions, stats say %d; want the same, at least %d", evicted, r.Stats().Evictions, shardCount)
	}
	// Forget and Purge are not capacity evictions.
	before := evicted
	r.Forget(good)
	r.Purge()
	if evicted != before {
		t.Errorf("OnEvict told of Forget or Purge")
	}
}

package sessionctx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// Lookups one after the other run on the same kept goroutine, not on a
// new one each (whose stack every lookup would grow again); each still
// answers its own token.
func TestLookupGoroutinesKept(t *testing.T) {
	users := map[string]string{"Bearer first": "first"}
	for i := range 50 {
		users[fmt.Sprintf("Bearer tok-%d", i)] = fmt.Sprintf("user-%d", i)
	}
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok := users[r.Header.Get("Authorization")]
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"user_id":"u1","user":%q}`, user)
	}))
	defer svc.Close()
	c, err := New(Config{Dialect: "http", URL: svc.URL})
	if err != nil {
		t.Fatal(err)
	}
	// One lookup first: a goroutine of the pool may have ended since an
	// earlier test, or be kept; from here on one is kept.
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer first")
	if _, err := c.Authenticate(r); err != nil {
		t.Fatal(err)
	}
	before := workers.started.Load()
	for i := range 50 {
		tok := fmt.Sprintf("tok-%d", i)
		r.Header.Set("Authorization", "Bearer "+tok)
		res, err := c.Authenticate(r)
		if err != nil {
			t.Fatal(err)
		}
		if res.Session.User != fmt.Sprintf("user-%d", i) {
			t.Fatalf("token %s answered as %q", tok, res.Session.User)
		}
	}
	// Other tests of the package may run lookups at once (t.Parallel):
	// a few more goroutines, never one per lookup.
	if n := workers.started.Load() - before; n > 5 {
		t.Fatalf("50 lookups one after the other started %d goroutines", n)
	}
}

// startTier is a Tier that reads in two parts: its first read answers
// the tokens in have; for the others it leaves a rest, which counts the
// goroutine it runs on.
type startTier struct {
	have    map[Key]*Session
	restRan atomic.Int64
}

func (m *startTier) Get(ctx context.Context, key Key, now time.Time) *SharedEntry {
	e, rest := m.Start(ctx, key, now)
	if rest != nil {
		return rest()
	}
	return e
}

func (m *startTier) Start(_ context.Context, key Key, now time.Time) (*SharedEntry, func() *SharedEntry) {
	if s := m.have[key]; s != nil {
		return &SharedEntry{Session: s, Fresh: now.Add(time.Hour), Stale: now.Add(time.Hour), Filled: now}, nil
	}
	return nil, func() *SharedEntry {
		m.restRan.Add(1)
		return nil
	}
}

func (m *startTier) Set(context.Context, Key, *SharedEntry, time.Time) {}
func (m *startTier) Release(Key)                                       {}
func (m *startTier) Forget(Key)                                        {}
func (m *startTier) Purge() error                                      { return nil }
func (m *startTier) Attach(TierLink) error                             { return nil }

// An answer from the tier's first read is the request's own work: no
// lookup goroutine is handed anything. What the first read leaves (here a
// miss that goes on to the service) runs once, on a lookup goroutine.
func TestTierFirstReadOnRequestGoroutine(t *testing.T) {
	r := newResolver(&memBackend{}, CacheConfig{})
	shared := cred("ok-shared")
	tier := &startTier{have: map[Key]*Session{keyOf(shared): {User: "from-tier"}}}
	if err := r.setTier(tier, time.Second); err != nil {
		t.Fatal(err)
	}
	// Hold every kept lookup goroutine busy (until one more had to be
	// started), so that a hand-off would have to start a new one and
	// show in the count.
	block := make(chan struct{})
	defer close(block)
	for i := 0; ; i++ {
		n := workers.started.Load()
		workers.start(func() { <-block })
		if workers.started.Load() > n {
			break
		}
		if i > 10000 {
			t.Fatal("the lookup goroutines never ran out")
		}
	}
	before := workers.started.Load()
	res, err := r.Resolve(context.Background(), shared)
	if err != nil || res.Session == nil || res.Session.User != "from-tier" {
		t.Fatalf("Resolve = %+v, %v; want the tier's session", res, err)
	}
	if n := workers.started.Load() - before; n != 0 {
		t.Fatalf("an answer from the first read started %d lookup goroutines, want 0", n)
	}
	res, err = r.Resolve(context.Background(), cred("ok-other"))
	if err != nil || res.Session == nil || res.Session.User != "ok-other" {
		t.Fatalf("Resolve = %+v, %v; want the service's session", res, err)
	}
	if n := workers.started.Load() - before; n != 1 || tier.restRan.Load() != 1 {
		t.Fatalf("a miss of the first read: %d lookup goroutines started, rest ran %d times; want 1 and 1", n, tier.restRan.Load())
	}
}

// A lookup's first part that panics (on a request's goroutine, which the
// server recovers) answers the requests waiting for it, and the next
// request for the token starts a lookup of its own.
func TestLookupFirstPartPanics(t *testing.T) {
	var l lookups
	k := Key{1}
	var waiting <-chan lookupResult
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic did not reach the request's goroutine")
			}
		}()
		l.do(k, func() (Result, error, bool) {
			waiting = l.do(k, nil, func() (Result, error) {
				t.Error("a request that joined ran a lookup of its own")
				return Result{}, nil
			})
			panic("boom")
		}, nil)
	}()
	select {
	case out := <-waiting:
		if !errors.Is(out.err, ErrUnavailable) {
			t.Fatalf("the waiting request got %v, want ErrUnavailable", out.err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the waiting request was left waiting")
	}
	out := <-l.do(k, nil, func() (Result, error) { return Result{Key: k}, nil })
	if out.err != nil || out.res.Key != k {
		t.Fatalf("next lookup: %+v, %v", out.res, out.err)
	}
}

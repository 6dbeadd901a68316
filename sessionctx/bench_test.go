package sessionctx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingService is an http-dialect session service that accepts every
// bearer token starting with "ok-", counts its calls, and holds each
// answer until release is closed (when set), so racing requests pile up.
type countingService struct {
	*httptest.Server
	calls   atomic.Int64
	release chan struct{}
}

func newCountingService(t testing.TB, release chan struct{}) *countingService {
	t.Helper()
	s := &countingService{release: release}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		if s.release != nil {
			<-s.release
		}
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !strings.HasPrefix(tok, "ok-") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"s1","user_id":"u1","user":"alice","email":"alice@example.com","name":"Alice Doe","org_id":"o1","org":"Acme","roles":["admin","dev"],"perms":["read","write"],"admin":true}`)
	}))
	t.Cleanup(s.Close)
	return s
}

func newHTTPResolver(t testing.TB, url string, cfg CacheConfig) *resolver {
	t.Helper()
	b, _, err := newBackend(Config{Dialect: "http", URL: url})
	if err != nil {
		t.Fatal(err)
	}
	return newResolver(b, cfg)
}

func bearerRequest(tok string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/app?x=1", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	r.Header.Set("Cookie", "theme=dark; sid=abc; lang=en")
	r.Header.Set("Accept", "text/html")
	r.Header.Set("User-Agent", "bench")
	return r
}

// TestStampedeOneCall: a thousand requests racing for one new token make
// exactly one session-service call, and every one of them gets the session.
func TestStampedeOneCall(t *testing.T) {
	release := make(chan struct{})
	svc := newCountingService(t, release)
	res := newHTTPResolver(t, svc.URL, CacheConfig{})
	cred := credential{Value: "ok-stampede", Source: TokenSource{From: FromBearer}}

	const n = 1000
	var started, done sync.WaitGroup
	started.Add(n)
	done.Add(n)
	var ok, failed atomic.Int64
	for range n {
		go func() {
			defer done.Done()
			started.Done()
			r, err := res.Resolve(context.Background(), cred)
			if err != nil || r.Session == nil || r.Session.User != "alice" {
				failed.Add(1)
				return
			}
			ok.Add(1)
		}()
	}
	started.Wait()
	// Hold the service until its one call is in, so that the waiters are
	// queued on the flight rather than finding the cache already filled.
	deadline := time.Now().Add(10 * time.Second)
	for svc.calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	done.Wait()

	if got := svc.calls.Load(); got != 1 {
		t.Errorf("session-service calls = %d, want 1", got)
	}
	if ok.Load() != n || failed.Load() != 0 {
		t.Errorf("resolved %d, failed %d, want %d and 0", ok.Load(), failed.Load(), n)
	}
	st := res.Stats()
	if st.ServiceCalls != 1 {
		t.Errorf("stats service_calls = %d, want 1", st.ServiceCalls)
	}
	t.Logf("stampede: %d concurrent requests, %d session-service call(s), %d hits, %d misses", n, svc.calls.Load(), st.Hits, st.Misses)
}

// rejectAll is an in-process backend that rejects every token: a flood of
// random tokens without the cost of a million HTTP calls.
type rejectAll struct{ calls atomic.Int64 }

func (b *rejectAll) Resolve(context.Context, credential) (*Session, error) {
	b.calls.Add(1)
	return nil, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
}

// acceptAll answers one shared-shape session per token.
type acceptAll struct{}

func (acceptAll) Resolve(_ context.Context, c credential) (*Session, error) {
	return &Session{
		ID: c.Value[:16], UserID: "u-" + c.Value[:8], User: "user-" + c.Value[:8],
		Email: "user-" + c.Value[:8] + "@example.com", Name: "Some User",
		OrgID: "o1", Org: "Acme", Roles: []string{"dev"}, Perms: []string{"read"}, Kind: kindUser,
	}, nil
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func randomToken(buf []byte) string {
	rand.Read(buf)
	return hex.EncodeToString(buf)
}

// fillSessions caches n sessions of distinct random tokens.
func fillSessions(tb testing.TB, r *resolver, n int) {
	buf := make([]byte, 16)
	for range n {
		if _, err := r.Resolve(context.Background(), credential{Value: randomToken(buf), Source: TokenSource{From: FromBearer}}); err != nil {
			tb.Fatal(err)
		}
	}
}

// flood sends n distinct random tokens, all rejected.
func flood(tb testing.TB, r *resolver, n int) {
	buf := make([]byte, 16)
	for range n {
		if _, err := r.Resolve(context.Background(), credential{Value: randomToken(buf), Source: TokenSource{From: FromBearer}}); err == nil {
			tb.Fatal("random token accepted")
		}
	}
}

// TestFloodStaysBounded: random tokens cannot grow the cache past
// cache_max (plus the store's documented slack of one entry per shard),
// and every distinct token costs one service call.
func TestFloodStaysBounded(t *testing.T) {
	// Three times cache_max: past the bound, each of the 64 shards takes
	// its share of 10 000 more tokens, about 150 each, enough to evict
	// through more than one scan for candidates (victims); ten times took
	// 5 s under -race and proved nothing more.
	const cacheMax, n = 5_000, 15_000
	backend := &rejectAll{}
	r := newResolver(backend, CacheConfig{Max: cacheMax})
	flood(t, r, n)
	st := r.Stats()
	if st.Rejections > cacheMax+shardCount || st.Entries != 0 {
		t.Errorf("after %d random tokens: %d rejections, %d sessions; want <= %d and 0", n, st.Rejections, st.Entries, cacheMax+shardCount)
	}
	if st.Rejections < cacheMax/2 {
		t.Errorf("only %d rejections kept of cache_max %d: eviction too eager", st.Rejections, cacheMax)
	}
	if backend.calls.Load() != n {
		t.Errorf("service calls = %d, want %d", backend.calls.Load(), n)
	}
	pos := newResolver(acceptAll{}, CacheConfig{Max: cacheMax})
	fillSessions(t, pos, 3*cacheMax)
	if got := pos.Stats().Entries; got > cacheMax+shardCount {
		t.Errorf("sessions = %d after %d distinct tokens, want <= %d", got, 3*cacheMax, cacheMax+shardCount)
	}
}

// BenchmarkMemory reports the heap a cached session costs (100k sessions)
// and the heap a flood of 1M random, rejected tokens leaves with cache_max
// 100k. Run it once: go test ./sessionctx/ -run X -bench Memory -benchtime 1x
func BenchmarkMemory(b *testing.B) {
	const cacheMax = 100_000
	for b.Loop() {
		before := heapInUse()
		pos := newResolver(acceptAll{}, CacheConfig{Max: cacheMax})
		fillSessions(b, pos, cacheMax)
		after := heapInUse()
		st := pos.Stats()
		b.ReportMetric(float64(after-before)/float64(st.Entries), "B/session")
		b.ReportMetric(float64(st.Entries), "sessions")
		runtime.KeepAlive(pos)

		before = heapInUse()
		backend := &rejectAll{}
		neg := newResolver(backend, CacheConfig{Max: cacheMax})
		const n = 1_000_000
		flood(b, neg, n)
		after = heapInUse()
		st = neg.Stats()
		if st.Rejections > cacheMax+shardCount {
			b.Errorf("%d rejections kept, cache_max %d", st.Rejections, cacheMax)
		}
		b.ReportMetric(float64(after-before)/(1<<20), "MiB-after-1M-flood")
		b.ReportMetric(float64(st.Rejections), "rejections-kept")
		b.ReportMetric(float64(backend.calls.Load()), "service-calls")
		runtime.KeepAlive(neg)
	}
}

func BenchmarkExtractBearer(b *testing.B) {
	r := bearerRequest("ok-0123456789abcdef0123456789abcdef")
	src := []TokenSource{{From: FromBearer}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := extractToken(r, src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExtractCookie(b *testing.B) {
	r := bearerRequest("x")
	r.Header.Set("Cookie", "theme=dark; lang=en; connect.sid=s%3A0123456789abcdef.signature; other=1")
	src := []TokenSource{{From: FromCookie, Name: "connect.sid"}, {From: FromBearer}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := extractToken(r, src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKeyOf(b *testing.B) {
	c := credential{Value: "ok-0123456789abcdef0123456789abcdef", Source: TokenSource{From: FromBearer}}
	b.ReportAllocs()
	for b.Loop() {
		keyOf(c)
	}
}

// BenchmarkResolveHit is the cache hit: hash, shard lookup, freshness.
func BenchmarkResolveHit(b *testing.B) {
	svc := newCountingService(b, nil)
	res := newHTTPResolver(b, svc.URL, CacheConfig{})
	cred := credential{Value: "ok-0123456789abcdef0123456789abcdef", Source: TokenSource{From: FromBearer}}
	if _, err := res.Resolve(context.Background(), cred); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r, err := res.Resolve(ctx, cred)
		if err != nil || !r.Hit {
			b.Fatal(err)
		}
	}
}

func BenchmarkResolveHitParallel(b *testing.B) {
	svc := newCountingService(b, nil)
	res := newHTTPResolver(b, svc.URL, CacheConfig{})
	creds := make([]credential, 64)
	for i := range creds {
		creds[i] = credential{Value: fmt.Sprintf("ok-%032d", i), Source: TokenSource{From: FromBearer}}
		if _, err := res.Resolve(context.Background(), creds[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := res.Resolve(context.Background(), creds[i%len(creds)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

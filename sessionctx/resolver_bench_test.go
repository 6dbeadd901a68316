package sessionctx

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// memBackend answers from memory, so these benchmarks measure the cache
// (hashing, shards, singleflight, eviction), not HTTP. Tokens starting
// with "ok-" are sessions, others are rejected; down makes every call
// fail.
type memBackend struct{ down atomic.Bool }

func (m *memBackend) Resolve(_ context.Context, c credential) (*Session, error) {
	if m.down.Load() {
		return nil, fmt.Errorf("%w: down", ErrUnavailable)
	}
	if len(c.Value) < 3 || c.Value[:3] != "ok-" {
		return nil, fmt.Errorf("%w: unknown", ErrUnauthenticated)
	}
	return &Session{UserID: c.Value, User: c.Value, Roles: []string{"dev"}}, nil
}

func benchCreds(prefix string, n int) []credential {
	creds := make([]credential, n)
	for i := range creds {
		creds[i] = credential{Value: fmt.Sprintf("%s%032d", prefix, i), Source: TokenSource{From: FromBearer}}
	}
	return creds
}

func warm(b *testing.B, r *resolver, creds []credential) {
	b.Helper()
	for _, c := range creds {
		if _, err := r.Resolve(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCacheParallel measures Resolve under parallel load
// (GOMAXPROCS goroutines, -cpu to vary) in the cases an operator meets.
func BenchmarkCacheParallel(b *testing.B) {
	ctx := context.Background()

	// hits: 10,000 live sessions, requests spread over all of them.
	b.Run("hits_10k_sessions", func(b *testing.B) {
		r := newResolver(&memBackend{}, CacheConfig{})
		creds := benchCreds("ok-", 10000)
		warm(b, r, creds)
		var seed atomic.Uint64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := seed.Add(7919)
			for pb.Next() {
				i = i*6364136223846793005 + 1442695040888963407
				if res, err := r.Resolve(ctx, creds[(i>>33)%uint64(len(creds))]); err != nil || !res.Hit {
					b.Fatal("miss on a warm cache", err)
				}
			}
		})
	})

	// one_hot_token: every goroutine on the same session (a shared
	// service account): the worst case for shard contention.
	b.Run("one_hot_token", func(b *testing.B) {
		r := newResolver(&memBackend{}, CacheConfig{})
		creds := benchCreds("ok-", 1)
		warm(b, r, creds)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := r.Resolve(ctx, creds[0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	})

	// random_tokens_bounded: every request a new rejected token into a
	// full 10,000-entry cache: a flood, each one a service call, an
	// insert and an eviction.
	b.Run("random_tokens_bounded", func(b *testing.B) {
		r := newResolver(&memBackend{}, CacheConfig{Max: 10000})
		var n atomic.Uint64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 0, 40)
			for pb.Next() {
				buf = fmt.Appendf(buf[:0], "bad-%032d", n.Add(1))
				if _, err := r.Resolve(ctx, credential{Value: string(buf), Source: TokenSource{From: FromBearer}}); err == nil {
					b.Fatal("a random token passed")
				}
			}
		})
		if st := r.Stats(); st.Rejections > 10000+shardCount {
			b.Fatalf("%d rejections kept, bound 10000", st.Rejections)
		}
	})

	// stale_outage: 1,000 expired sessions served stale while the
	// service fails: each request is a miss, a (failed) call through
	// singleflight and a stale serve.
	b.Run("stale_outage", func(b *testing.B) {
		be := &memBackend{}
		r := newResolver(be, CacheConfig{TTL: time.Minute, StaleIfError: 24 * time.Hour})
		start := time.Now()
		var offset atomic.Int64
		r.setClock(func() time.Time { return start.Add(time.Duration(offset.Load())) })
		creds := benchCreds("ok-", 1000)
		warm(b, r, creds)
		be.down.Store(true)
		offset.Store(int64(2 * time.Minute))
		var seed atomic.Uint64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := seed.Add(7919)
			for pb.Next() {
				i = i*6364136223846793005 + 1442695040888963407
				if res, err := r.Resolve(ctx, creds[(i>>33)%uint64(len(creds))]); err != nil || !res.Stale {
					b.Fatal("not served stale", err)
				}
			}
		})
	})
}

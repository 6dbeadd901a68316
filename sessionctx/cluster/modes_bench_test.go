package cluster

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/caddy-sessiongate/internal/redistest"
	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// deployment is one Redis deployment of each mode, as a tier's Config.
type deployment struct {
	mode string
	cfg  Config
}

// deployments starts one Redis of each mode the tier supports.
func deployments(tb testing.TB) []deployment {
	tb.Helper()
	rc := redistest.StartCluster(tb)
	rs := redistest.StartSentinel(tb, 1)
	return []deployment{
		{ModeStandalone, Config{URL: redistest.Start(tb).URL()}},
		{ModeCluster, Config{URLs: rc.URLs(), Mode: ModeCluster}},
		{ModeSentinel, Config{URLs: rs.URLs(), Mode: ModeSentinel, MasterName: redistest.MasterName}},
	}
}

// redisTrips counts what a go-redis client sends: each command alone is
// one round trip, and so is each pipeline (or transaction), whatever it
// holds.
type redisTrips struct {
	mu    sync.Mutex
	trips int
	cmds  []string
}

func (r *redisTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *redisTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.mu.Lock()
		r.trips++
		r.cmds = append(r.cmds, cmd.Name())
		r.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (r *redisTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		names := make([]string, len(cmds))
		for i, c := range cmds {
			names[i] = c.Name()
		}
		r.mu.Lock()
		r.trips++
		r.cmds = append(r.cmds, "["+strings.Join(names, " ")+"]")
		r.mu.Unlock()
		return next(ctx, cmds)
	}
}

// take returns the counts since the last take and resets them.
func (r *redisTrips) take() (int, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, c := r.trips, strings.Join(r.cmds, " ")
	r.trips, r.cmds = 0, nil
	return n, c
}

// TestTierRoundTripsReport counts the Redis round trips of each kind of
// lookup and revocation, in each mode, with a hook on the tier's own
// go-redis client (the subscription's connection is not counted: it
// only reads). It reports; it checks only what docs/cluster.md states:
// a lookup answered from Redis costs one round trip, a miss two (read
// and lock, then fill), once the scripts are loaded.
func TestTierRoundTripsReport(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a Redis of each mode")
	}
	for _, d := range deployments(t) {
		t.Run(d.mode, func(t *testing.T) {
			b := newCounting(t, 0)
			a, c := newNodeConfig(t, d.cfg, b), newNodeConfig(t, d.cfg, b)
			var ra, rc redisTrips
			a.tier.client.AddHook(&ra)
			c.tier.client.AddHook(&rc)
			ctx := context.Background()
			report := func(what string, r *redisTrips, op func()) int {
				r.take()
				op()
				n, cmds := r.take()
				t.Logf("%-9s %-40s %d round trips: %s", d.mode, what, n, cmds)
				return n
			}
			// The first use of each operation also loads scripts and dials
			// connections: reported apart from the steady state below.
			report("first miss on a fresh Redis", &ra, func() { _, _ = a.Resolve(ctx, "good-warm") })
			_, _ = c.Resolve(ctx, "good-warm")
			_, _ = a.Resolve(ctx, "bad-warm")
			a.Forget(key("good-warm"))
			_, _ = c.Resolve(ctx, "good-warm")
			miss := report("miss (new token, service call, fill)", &ra, func() { _, _ = a.Resolve(ctx, "good-rt") })
			hit := report("L1 miss answered from Redis (L2 hit)", &rc, func() { _, _ = c.Resolve(ctx, "good-rt") })
			l1 := report("L1 hit", &rc, func() { _, _ = c.Resolve(ctx, "good-rt") })
			report("rejection (service call, shared)", &ra, func() { _, _ = a.Resolve(ctx, "bad-rt") })
			report("forget (logout, purge of one token)", &ra, func() { a.Forget(key("good-rt")) })
			report("purge of all", &ra, func() { a.Purge() })
			if hit != 1 || l1 != 0 {
				t.Errorf("an L2 hit took %d round trips (want 1), an L1 hit %d (want 0)", hit, l1)
			}
			if miss != 2 {
				t.Errorf("a miss took %d round trips; docs/cluster.md says one to read (and lock), one to fill", miss)
			}
		})
	}
}

// TestTierNodesTimesTokensModes: N nodes resolving M tokens one after the
// other make M service calls, in every mode. The same N x M at once (all
// nodes, all tokens, concurrently) is reported, not checked: how many
// calls a stampede costs depends on the lock's timing, which another
// test pins.
func TestTierNodesTimesTokensModes(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a Redis of each mode")
	}
	const nodes, tokens = 3, 40
	for _, d := range deployments(t) {
		t.Run(d.mode, func(t *testing.T) {
			b := newCounting(t, 0)
			var ns []node
			for range nodes {
				ns = append(ns, newNodeConfig(t, d.cfg, b))
			}
			ctx := context.Background()
			for i := range tokens {
				for _, n := range ns {
					if _, err := n.Resolve(ctx, fmt.Sprintf("good-seq-%d", i)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if got := b.calls.Load(); got != tokens {
				t.Fatalf("%s: %d nodes x %d tokens made %d service calls, want %d", d.mode, nodes, tokens, got, tokens)
			}
			t.Logf("%-10s sequential: %d nodes x %d tokens = %d service calls", d.mode, nodes, tokens, b.calls.Load())

			slow := newCounting(t, 20*time.Millisecond)
			ns = ns[:0]
			for range nodes {
				ns = append(ns, newNodeConfig(t, Config{URL: d.cfg.URL, URLs: d.cfg.URLs, Mode: d.cfg.Mode, MasterName: d.cfg.MasterName, Backend: "concurrent"}, slow))
			}
			var wg sync.WaitGroup
			var failed atomic.Int64
			for _, n := range ns {
				for i := range tokens {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := n.Resolve(ctx, fmt.Sprintf("good-con-%d", i)); err != nil {
							failed.Add(1)
						}
					}()
				}
			}
			wg.Wait()
			if failed.Load() != 0 {
				t.Fatalf("%d concurrent resolves failed", failed.Load())
			}
			t.Logf("%-10s concurrent: %d nodes x %d tokens = %d service calls (service answers in 20ms)", d.mode, nodes, tokens, slow.calls.Load())
		})
	}
}

// BenchmarkTierL2HitModes is a lookup the node's own cache misses and
// Redis answers, through the whole client (token, L1, tier), in each
// mode: what a node pays for a token another node resolved. Each
// iteration is a new token another tier wrote to Redis.
func BenchmarkTierL2HitModes(b *testing.B) {
	for _, d := range deployments(b) {
		b.Run(d.mode, func(b *testing.B) {
			writer, err := New(Config{URL: d.cfg.URL, URLs: d.cfg.URLs, Mode: d.cfg.Mode, MasterName: d.cfg.MasterName, Secret: testSecret, Backend: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			defer writer.Close()
			reader, err := New(Config{URL: d.cfg.URL, URLs: d.cfg.URLs, Mode: d.cfg.Mode, MasterName: d.cfg.MasterName, Secret: testSecret, Backend: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			defer reader.Close()
			for deadline := time.Now().Add(5 * time.Second); !writer.Stats().Connected || !reader.Stats().Connected; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatal("not connected")
				}
			}
			svc := newCounting(b, 0)
			c, err := sessionctx.New(sessionctx.Config{Dialect: "http", URL: svc.url, Tokens: []sessionctx.TokenSource{tokenSource}, Tier: reader})
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			ctx := context.Background()
			for i := range b.N {
				writer.Set(ctx, key(fmt.Sprintf("good-l2-%d", i)), &sessionctx.SharedEntry{
					Session: &sessionctx.Session{User: "alice", Roles: []string{"a", "b"}, Dialect: "http", Raw: []byte(`{"u":"alice"}`)},
					Fresh:   now.Add(time.Hour), Stale: now.Add(time.Hour),
				}, now)
			}
			// The reader hears the writer's fills on the channel: let it
			// finish before the timing starts.
			time.Sleep(time.Second)
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			b.ResetTimer()
			stop := reportCPU(b)
			for i := range b.N {
				r.Header.Set(tokenSource.Name, fmt.Sprintf("good-l2-%d", i))
				if _, err := c.Authenticate(r); err != nil {
					b.Fatal(err)
				}
			}
			stop()
			b.StopTimer()
			if calls := svc.calls.Load(); calls != 0 {
				b.Fatalf("%d service calls: not every lookup was an L2 hit", calls)
			}
		})
	}
}

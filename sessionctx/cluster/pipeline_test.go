package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/caddy-sessiongate/internal/redistest"
	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// slowScript keeps Redis busy for ARGV[1] ms: whatever is sent after it
// waits its turn.
var slowScript = redis.NewScript(`
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
repeat
	t = redis.call('TIME')
until t[1] * 1000000 + t[2] - start >= tonumber(ARGV[1]) * 1000
return 'slept'
`)

// getScript reads one key (a script other tests never load, so that its
// first run in a pipeline finds no cached script).
var getScript = redis.NewScript(`return redis.call('GET', KEYS[1])`)

func newTestBatcher(t *testing.T, srv *redistest.Server, limit int) *batcher {
	t.Helper()
	client, err := newClient(Config{URL: srv.URL(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	b := newBatcher(client, ModeStandalone, 5*time.Second)
	b.limit = limit
	return b
}

// queued waits until n commands wait for a batch and none is sent yet.
func (b *batcher) queued(t *testing.T, n int) {
	t.Helper()
	waitFor(t, 3*time.Second, "commands queued", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.queue) == n
	})
}

type reply struct {
	v   any
	err error
}

// Commands that arrive while a batch is in flight go to Redis together,
// in one pipeline, and each gets its own reply: one that fails (a key of
// the wrong type) fails alone, and the script Redis did not have cached
// yet is sent again whole.
func TestBatchOneCommandErrors(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client(nil)
	ctx := context.Background()
	rc.Set(ctx, "k1", "v1", 0)
	rc.HSet(ctx, "k2", "f", "v")
	rc.Set(ctx, "k3", "v3", 0)
	b := newTestBatcher(t, srv, 1)

	slow := make(chan reply, 1)
	go func() {
		v, err := b.run(nil, sessionctx.Key{}, slowScript, []string{"x"}, 1000)
		slow <- reply{v, err}
	}()
	waitFor(t, 3*time.Second, "the first command in flight", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.inflight == 1
	})
	got := make([]chan reply, 3)
	for i, k := range []string{"k1", "k2", "k3"} {
		got[i] = make(chan reply, 1)
		go func() {
			v, err := b.run(nil, sessionctx.Key{}, getScript, []string{k})
			got[i] <- reply{v, err}
		}()
		b.queued(t, i+1)
	}
	if r := <-slow; r.err != nil || r.v != "slept" {
		t.Fatalf("first command: %v, %v", r.v, r.err)
	}
	r1, r2, r3 := <-got[0], <-got[1], <-got[2]
	if r1.err != nil || r1.v != "v1" || r3.err != nil || r3.v != "v3" {
		t.Fatalf("k1: %v, %v; k3: %v, %v; want v1 and v3", r1.v, r1.err, r3.v, r3.err)
	}
	if r2.err == nil || !redis.HasErrorPrefix(r2.err, "WRONGTYPE") {
		t.Fatalf("k2 (a hash): %v, %v; want its own WRONGTYPE error", r2.v, r2.err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pipelines != 1 || b.inflight != 0 {
		t.Fatalf("%d pipelines, %d batches in flight; want the three commands in one, none left", b.pipelines, b.inflight)
	}
}

// A caller whose request is gone leaves at once, whether its command
// still waits for a batch (it is not sent) or is in flight (its reply
// goes to the abandon hook); the others get theirs.
func TestBatchCallerLeaves(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client(nil)
	ctx := context.Background()
	rc.Set(ctx, "k1", "v1", 0)
	b := newTestBatcher(t, srv, 1)

	go func() { _, _ = b.run(nil, sessionctx.Key{}, slowScript, []string{"x"}, 1000) }()
	waitFor(t, 3*time.Second, "the first command in flight", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.inflight == 1
	})
	// Queued, then gone: it returns before the batch ahead ends, and
	// its command is never sent.
	abandoned := make(chan reply, 1)
	b.abandoned = func(c *call) {
		if c.key != key("in-flight") {
			t.Errorf("abandoned hook for a command never sent")
			return
		}
		abandoned <- reply{c.res, c.err}
	}
	gone := make(chan struct{})
	left := make(chan reply, 1)
	go func() {
		v, err := b.run(gone, key("never-sent"), getScript, []string{"k1"})
		left <- reply{v, err}
	}()
	b.queued(t, 1)
	// Queued behind it: a slow command and one whose caller will leave
	// while both are in flight, in the next batch.
	go func() { _, _ = b.run(nil, sessionctx.Key{}, slowScript, []string{"x"}, 1000) }()
	b.queued(t, 2)
	gone2 := make(chan struct{})
	inflight := make(chan reply, 1)
	go func() {
		v, err := b.run(gone2, key("in-flight"), getScript, []string{"k1"})
		inflight <- reply{v, err}
	}()
	b.queued(t, 3)
	start := time.Now()
	close(gone)
	if r := <-left; !errors.Is(r.err, errGone) {
		t.Fatalf("queued caller that left: %v, %v; want errGone", r.v, r.err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("the caller left after %v: it waited for the batch ahead", d)
	}
	b.queued(t, 2)
	waitFor(t, 3*time.Second, "the next batch in flight", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.queue) == 0
	})
	start = time.Now()
	close(gone2)
	if r := <-inflight; !errors.Is(r.err, errGone) {
		t.Fatalf("caller that left while its command was in flight: %v, %v; want errGone", r.v, r.err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("the caller left after %v: it waited for its batch", d)
	}
	select {
	case r := <-abandoned:
		if r.err != nil || r.v != "v1" {
			t.Fatalf("abandoned reply %v, %v; want v1", r.v, r.err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the reply of a caller that left never reached the abandon hook")
	}
}

// A Get whose request leaves while its read is in a pipeline in flight
// is neither a miss nor a failure, and the lock that read took for this
// node is given up, so that another node looks the token up at once
// rather than waiting for the lock to expire.
func TestTierGetLeavesPipelinedRead(t *testing.T) {
	srv := redistest.Start(t)
	bk := newCounting(t, 0)
	var warned atomic.Int64
	a := newNodeWith(t, srv, bk, nodeOpts{redisTimeout: 2 * time.Second, warn: func(string, error) { warned.Add(1) }})
	a.tier.reads.limit = 1
	k := key("goodleaves")
	ks := a.tier.keysOf(a.tier.gen.Load(), k)

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, _ = a.tier.reads.run(nil, sessionctx.Key{}, slowScript, []string{"x"}, 600)
	}()
	waitFor(t, 3*time.Second, "the first command in flight", func() bool {
		a.tier.reads.mu.Lock()
		defer a.tier.reads.mu.Unlock()
		return a.tier.reads.inflight == 1
	})
	go func() {
		defer wg.Done()
		_, _ = a.tier.reads.run(nil, sessionctx.Key{}, slowScript, []string{"x"}, 1000)
	}()
	a.tier.reads.queued(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan *sessionctx.SharedEntry, 1)
	go func() { got <- a.tier.Get(ctx, k, time.Now()) }()
	a.tier.reads.queued(t, 2)
	waitFor(t, 3*time.Second, "the Get's read in flight", func() bool {
		a.tier.reads.mu.Lock()
		defer a.tier.reads.mu.Unlock()
		return len(a.tier.reads.queue) == 0
	})
	cancel()
	select {
	case e := <-got:
		if e != nil {
			t.Fatal("entry for a new token")
		}
	case <-time.After(500 * time.Millisecond):
		t.Fatal("Get did not return when its request left")
	}
	wg.Wait()
	rc := srv.Client(nil)
	waitFor(t, 2*time.Second, "the lock given up", func() bool {
		v, err := rc.Get(context.Background(), ks.lock).Result()
		return errors.Is(err, redis.Nil) || v == "-"
	})
	if st := a.tier.Stats(); st.L2Misses != 0 || st.L2Hits != 0 || warned.Load() != 0 {
		t.Fatalf("stats %+v, %d warnings: a request that left is neither a miss nor a failure", st, warned.Load())
	}
}

// A batch is one pipeline in every mode: on a Redis Cluster go-redis
// sends each node its part (the keys here spread over the masters), and
// through Sentinels it goes to the master they name. Each command gets
// its own key's reply.
func TestBatchModes(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []string{ModeCluster, ModeSentinel} {
		t.Run(mode, func(t *testing.T) {
			var cfg Config
			var set func(k, v string) error
			switch mode {
			case ModeCluster:
				rc := redistest.StartCluster(t)
				cfg = Config{URLs: rc.URLs(), Mode: ModeCluster}
				cl := rc.Client(t)
				set = func(k, v string) error { return cl.Set(ctx, k, v, 0).Err() }
			case ModeSentinel:
				rs := redistest.StartSentinel(t, 1)
				cfg = Config{URLs: rs.URLs(), Mode: ModeSentinel, MasterName: redistest.MasterName}
				m := redis.NewClient(&redis.Options{Addr: rs.MasterAddr(t)})
				t.Cleanup(func() { m.Close() })
				set = func(k, v string) error { return m.Set(ctx, k, v, 0).Err() }
			}
			cfg.Timeout = 5 * time.Second
			client, err := newClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { client.Close() })
			b := newBatcher(client, mode, 5*time.Second)
			b.limit = 1
			const n = 12
			for i := range n {
				if err := set(fmt.Sprintf("key-%d", i), fmt.Sprintf("value-%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			go func() { _, _ = b.run(nil, sessionctx.Key{}, slowScript, []string{"x"}, 1000) }()
			waitFor(t, 3*time.Second, "the first command in flight", func() bool {
				b.mu.Lock()
				defer b.mu.Unlock()
				return b.inflight == 1
			})
			got := make([]chan reply, n)
			for i := range n {
				got[i] = make(chan reply, 1)
				go func() {
					v, err := b.run(nil, sessionctx.Key{}, getScript, []string{fmt.Sprintf("key-%d", i)})
					got[i] <- reply{v, err}
				}()
				b.queued(t, i+1)
			}
			for i := range n {
				r := <-got[i]
				if want := fmt.Sprintf("value-%d", i); r.err != nil || r.v != want {
					t.Errorf("key-%d: %v, %v; want %s", i, r.v, r.err, want)
				}
			}
			b.mu.Lock()
			defer b.mu.Unlock()
			if b.pipelines != 1 {
				t.Fatalf("%d pipelines, want the %d commands in one", b.pipelines, n)
			}
		})
	}
}

// Against one Redis server a read waits at most for the batch under way;
// a Redis Cluster's batches wait for their slowest shard, so a few go at
// once there.
func TestBatchLimitByMode(t *testing.T) {
	if got := batchLimit(ModeStandalone); got != 1 {
		t.Errorf("standalone: %d batches in flight, want 1", got)
	}
	if got := batchLimit(ModeSentinel); got != 1 {
		t.Errorf("sentinel: %d batches in flight, want 1", got)
	}
	if got := batchLimit(ModeCluster); got < 4 {
		t.Errorf("cluster: %d batches in flight, want at least 4", got)
	}
}

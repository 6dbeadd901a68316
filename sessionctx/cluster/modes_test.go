package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/redistest"
	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// The tests that start a Redis deployment of their own (a Redis Cluster,
// a Sentinel set, a TLS server) and then mostly wait on it run in
// parallel (t.Parallel) with each other, after the sequential tests; the
// tests that bound how long the tier takes stay sequential, so that
// nothing else runs beside them.

// newNodeConfig is a node whose tier is made from cfg (the Redis part:
// URLs, mode, TLS); the secret, backend and warnings are the tests'.
func newNodeConfig(t *testing.T, cfg Config, b *countingBackend) node {
	t.Helper()
	cfg.Secret = testSecret
	if cfg.Backend == "" {
		cfg.Backend = "backend1"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 500 * time.Millisecond
	}
	cfg.Warn = func(msg string, err error) { t.Logf("warn: %s: %v", msg, err) }
	tier, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tier.Close() })
	c, err := sessionctx.New(sessionctx.Config{Dialect: "http", URL: b.url, Tokens: []sessionctx.TokenSource{tokenSource}, Tier: tier})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "tier connected", func() bool { return tier.Stats().Connected })
	return node{c, tier}
}

// rounds tells the calls of sharesAndRevokes apart.
var rounds atomic.Int64

// sharesAndRevokes is what every mode must do for nodes on one Redis
// deployment: m tokens resolved on every node cost m service calls (the
// keys spread over every slot a Redis Cluster has), a rejection is
// shared, a forget (logout) and a purge of all on one node reach every
// other node's L1 and keep the entries from coming back out of Redis.
func sharesAndRevokes(t *testing.T, b *countingBackend, nodes []node, m int) {
	t.Helper()
	ctx := context.Background()
	round := fmt.Sprintf("good-r%d-", rounds.Add(1)) // tokens of this call only
	calls := b.calls.Load()
	for i := range m {
		for j, n := range nodes {
			tok := fmt.Sprintf("%s%d", round, i)
			res, err := n.Resolve(ctx, tok)
			if err != nil || res.Session == nil || res.Session.User != "alice-"+tok {
				t.Fatalf("node %d, token %d: %+v, %v", j, i, res, err)
			}
		}
	}
	if got := b.calls.Load() - calls; got != int64(m) {
		t.Fatalf("%d nodes x %d tokens made %d service calls, want %d", len(nodes), m, got, m)
	}
	for j, n := range nodes {
		if _, err := n.Resolve(ctx, "bad-"+round); !errors.Is(err, sessionctx.ErrUnauthenticated) {
			t.Fatalf("node %d: bad token: %v", j, err)
		}
	}
	if got := b.calls.Load() - calls; got != int64(m)+1 {
		t.Fatalf("a rejection cost %d service calls across %d nodes, want 1", got-int64(m), len(nodes))
	}

	// Logout (forget) of each token, each on another node, reaches the
	// other nodes: they drop it and it does not come back from Redis.
	entries := make([]int, len(nodes))
	for j, n := range nodes {
		entries[j] = n.Stats().Entries
	}
	for i := range m {
		from := nodes[i%len(nodes)]
		recv := make([]uint64, len(nodes))
		for j, n := range nodes {
			recv[j] = n.tier.Stats().InvalidationsReceived
		}
		from.Forget(key(fmt.Sprintf("%s%d", round, i)))
		for j, n := range nodes {
			if n.tier == from.tier {
				continue
			}
			waitFor(t, 2*time.Second, fmt.Sprintf("node %d to hear the forget of token %d", j, i), func() bool {
				return n.tier.Stats().InvalidationsReceived > recv[j]
			})
		}
	}
	for j, n := range nodes {
		if e := n.Stats().Entries; e != entries[j]-m {
			t.Fatalf("node %d holds %d entries after %d of its %d were forgotten", j, e, m, entries[j])
		}
	}
	calls = b.calls.Load()
	tok := round + "after-forget"
	for _, n := range nodes {
		if _, err := n.Resolve(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nodes[0].Resolve(ctx, round+"0"); err != nil {
		t.Fatal(err)
	}
	if got := b.calls.Load() - calls; got != 2 {
		t.Fatalf("service calls = %d, want 2: one for a new token, one for a forgotten one", got)
	}

	// Purge of all, from the last node.
	for _, n := range nodes {
		if _, err := n.Resolve(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	nodes[len(nodes)-1].Purge()
	for j, n := range nodes {
		waitFor(t, 2*time.Second, fmt.Sprintf("node %d to purge", j), func() bool { return n.Stats().Entries == 0 })
	}
	calls = b.calls.Load()
	for _, n := range nodes {
		if _, err := n.Resolve(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	// The purged entry is not served from Redis. (Whether the new
	// answer is shared at once, or only once the purge is some time
	// past, is the revocation's rule, not the deployment's.)
	if got := b.calls.Load() - calls; got < 1 || got > int64(len(nodes)) {
		t.Fatalf("after a purge of all, %d nodes made %d service calls for one token, want 1 to %d (purged entries stay gone)", len(nodes), got, len(nodes))
	}
}

// TestTierRedisClusterMode runs three nodes on a Redis Cluster of three
// masters, given as seeds: sessions are shared whichever master holds a
// token's slot, and revocations reach every node (PUBLISH is broadcast
// over the cluster bus, so a subscriber on any master hears it).
func TestTierRedisClusterMode(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t)
	b := newCounting(t, 0)
	var nodes []node
	for i := range 3 {
		// Each node is given the seeds in another order: any one will do.
		urls := rc.URLs()
		urls = append(urls[i:], urls[:i]...)
		nodes = append(nodes, newNodeConfig(t, Config{URLs: urls, Mode: ModeCluster}, b))
	}
	// The entries spread over the masters: the cluster is used as one.
	for i := range 30 {
		if _, err := nodes[0].Resolve(context.Background(), fmt.Sprintf("good-spread-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range rc.Nodes {
		size, err := n.Client(nil).DBSize(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		if size == 0 {
			t.Fatalf("master %s holds no key: the cluster was not used as one", n.Addr)
		}
	}
	sharesAndRevokes(t, b, nodes, 30)
}

// TestTierRedisClusterSeedDown: one seed of three down at start; the
// others give the client the map.
func TestTierRedisClusterSeedDown(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t)
	b := newCounting(t, 0)
	urls := append([]string{"redis://127.0.0.1:1/0"}, rc.URLs()...)
	a := newNodeConfig(t, Config{URLs: urls, Mode: ModeCluster}, b)
	c := newNodeConfig(t, Config{URLs: rc.URLs()[1:], Mode: ModeCluster}, b)
	sharesAndRevokes(t, b, []node{a, c}, 5)
}

// TestTierSentinelMode: two nodes on a master and replica watched by a
// Sentinel share sessions; the master killed, they go on alone with no
// failed request, and once the Sentinel has promoted the replica they
// share on it again by themselves.
func TestTierSentinelMode(t *testing.T) {
	t.Parallel()
	rs := redistest.StartSentinel(t, 1)
	b := newCounting(t, 0)
	cfg := Config{URLs: rs.URLs(), Mode: ModeSentinel, MasterName: redistest.MasterName}
	a, c := newNodeConfig(t, cfg, b), newNodeConfig(t, cfg, b)
	nodes := []node{a, c}
	sharesAndRevokes(t, b, nodes, 5)

	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures, total atomic.Int64
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := n.Resolve(ctx, fmt.Sprintf("good-load-%d", i%20))
				total.Add(1)
				if err != nil {
					failures.Add(1)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	took := rs.KillMaster(t)
	t.Logf("the sentinel promoted the replica %v after the master was killed", took)
	waitFor(t, 15*time.Second, "both nodes connected to the promoted master", func() bool {
		return a.tier.Stats().Connected && c.tier.Stats().Connected
	})
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if f := failures.Load(); f != 0 {
		t.Fatalf("%d of %d resolves failed around a failover", f, total.Load())
	}
	t.Logf("%d resolves, none failed, across the failover", total.Load())

	// Sharing resumed on the promoted master, and revocation with it.
	sharesAndRevokes(t, b, nodes, 5)
	keys, err := rs.Replica.Client(nil).Keys(ctx, "sessiongate:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("the promoted master holds no entry (%v): the nodes are not using it", err)
	}
}

// TestCheckURLs pins what one block's URLs must share, for each mode.
func TestCheckURLs(t *testing.T) {
	for _, tc := range []struct {
		urls       []string
		mode, name string
		want       string
	}{
		{[]string{"redis://a:1/0"}, "", "", ""},
		{[]string{"redis://a:1", "redis://b:1"}, "", "", "mode standalone, which takes one"},
		{[]string{"redis://a:1", "redis://b:1"}, ModeCluster, "", ""},
		{[]string{"redis://a:1", "rediss://b:1"}, ModeCluster, "", "share scheme, credentials and TLS"},
		{[]string{"redis://u:p@a:1", "redis://u:q@b:1"}, ModeCluster, "", "other credentials"},
		{[]string{"redis://u:p@a:1", "redis://b:1"}, ModeSentinel, "m", "other credentials"},
		{[]string{"redis://a:1/1"}, ModeCluster, "", "database 0 only"},
		{[]string{"redis://a:1/1", "redis://b:1/2"}, ModeSentinel, "m", "one database"},
		{[]string{"redis://a:1"}, ModeSentinel, "", "needs master_name"},
		{[]string{"redis://a:1"}, ModeCluster, "m", "master_name is for mode sentinel only"},
		{[]string{"redis://a:1"}, "ring", "", `unknown mode "ring"`},
		{[]string{"http://a:1"}, ModeCluster, "", "want redis:// or rediss://"},
		{[]string{"redis://a:1?protocol=2", "redis://b:1"}, ModeCluster, "", "query parameters"},
		{nil, ModeCluster, "", "no url"},
	} {
		err := CheckURLs(Config{URLs: tc.urls, Mode: tc.mode, MasterName: tc.name})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v %s: %v", tc.urls, tc.mode, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v %s: error %v, want %q", tc.urls, tc.mode, err, tc.want)
		}
	}
}

// TestTierSentinelAuth: Sentinels that require a password are asked with
// SentinelPassword (sentinel_auth); the URLs' credentials are the
// master's, not theirs.
func TestTierSentinelAuth(t *testing.T) {
	t.Parallel()
	rs := redistest.StartSentinel(t, 1)
	sc := rs.Sentinels[0].Client(nil)
	if err := sc.Do(context.Background(), "ACL", "SETUSER", "default", "resetpass", ">sentinel-pw").Err(); err != nil {
		t.Fatal(err)
	}
	b := newCounting(t, 0)
	cfg := Config{URLs: rs.URLs(), Mode: ModeSentinel, MasterName: redistest.MasterName, SentinelPassword: "sentinel-pw"}
	a, c := newNodeConfig(t, cfg, b), newNodeConfig(t, cfg, b)
	sharesAndRevokes(t, b, []node{a, c}, 3)

	cfg.SentinelPassword = "wrong"
	cfg.Secret, cfg.Backend = testSecret, "backend1"
	tier, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tier.Close()
	time.Sleep(700 * time.Millisecond)
	if tier.Stats().Connected {
		t.Fatal("connected through Sentinels that refused the password")
	}
}

// TestTierRedisClusterPublishOnAnyMaster: an invalidation published on
// any master of a Redis Cluster reaches a node's subscription, whichever
// master holds it (classic pub/sub is broadcast over the cluster bus).
func TestTierRedisClusterPublishOnAnyMaster(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t)
	b := newCounting(t, 0)
	a := newNodeConfig(t, Config{URLs: rc.URLs(), Mode: ModeCluster}, b)
	c := newNodeConfig(t, Config{URLs: rc.URLs(), Mode: ModeCluster}, b)
	k := key("good-any-master")
	for _, m := range rc.Nodes {
		recv := c.tier.Stats().InvalidationsReceived
		if err := m.Client(nil).Publish(context.Background(), a.tier.channel, a.tier.message(kindInvalidate, k[:])).Err(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 2*time.Second, "the invalidation published on master "+m.Addr, func() bool {
			return c.tier.Stats().InvalidationsReceived > recv
		})
	}
}

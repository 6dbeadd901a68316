package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/redistest"
)

// TestClusterPurgeReportsClusterFailure: a purge of all whose cluster
// part Redis does not take (the node's connection stalled) says so in
// the admin answer, and is delivered once the connection is back.
func TestClusterPurgeReportsClusterFailure(t *testing.T) {
	srv := redistest.Start(t)
	px := redistest.NewProxy(t, srv.Addr)
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newUpstream(t)
	t.Setenv("SG_IT_CLUSTER_SECRET", clusterSecret)
	tester := startCaddy(t, fmt.Sprintf(`:%d {
	session_auth http %s {
		cluster %s {
			secret {env.SG_IT_CLUSTER_SECRET}
			timeout 100ms
		}
	}
	reverse_proxy %s
}`, httpPort, svc.URL, px.URL(), up.Listener.Addr()))
	waitTiersConnected(t, 1, 5*time.Second, "a cluster tier connected")
	expectStatus(t, tester, "GET", "/x", bearer("tok-alice"), 200, "a session")

	status, body := admin(t, "POST", "/sessiongate/purge", "application/json", `{"all": true}`)
	if status != http.StatusOK || strings.Contains(body, "cluster_failed") {
		t.Fatalf("purge with Redis reachable: %d %s, want 200 and no cluster failure", status, body)
	}
	px.Stall()
	status, body = admin(t, "POST", "/sessiongate/purge", "application/json", `{"all": true}`)
	if status != http.StatusOK || !strings.Contains(body, `"cluster_failed":[`) {
		t.Fatalf("purge with Redis stalled: %d %s, want 200 naming the backend whose cluster part failed", status, body)
	}
	if st := clusterStats(t); sumStat(st, "undelivered") != 1 {
		t.Fatalf("cluster stats %v: want the purge kept for delivery", st)
	}
	px.Resume()
	waitClusterStat(t, "undelivered", 0, 5*time.Second, "the purge delivered after the stall")
}

// TestClusterCaddyProcessesRevocationHolds: three real Caddy processes
// with the default Redis timeout (100ms). A session service slower than
// that still costs one call for a stampede across the nodes; and a
// session's sealed entries copied out of Redis before its logout and put
// back after are served by no node.
func TestClusterCaddyProcessesRevocationHolds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Caddy")
	}
	srv := redistest.Start(t)
	svc := newSessionService(t)
	up := newUpstream(t)
	bin := buildCaddy(t)
	var nodes []caddyNode
	for range 3 {
		nodes = append(nodes, startNodeTimeout(t, bin, svc.URL, srv.URL(), up.Listener.Addr().String(), 100*time.Millisecond))
	}

	svc.addSession("tok-slow", aliceSession())
	svc.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		time.Sleep(300 * time.Millisecond)
		return false
	})
	before := svc.calls.Load()
	var wg sync.WaitGroup
	var bad atomic.Int64
	start := make(chan struct{})
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if st := nodes[i%3].get(t, "GET", "/", "tok-slow"); st != 200 {
				bad.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	svc.setFault(nil)
	if bad.Load() != 0 {
		t.Errorf("%d stampede requests failed", bad.Load())
	}
	if got := svc.calls.Load() - before; got != 1 {
		t.Errorf("60 requests over 3 nodes with a 300ms service made %d service calls, want 1", got)
	}

	// Replay: the entries copied before the logout, put back after.
	svc.addSession("tok-replay", aliceSession())
	for _, n := range nodes {
		if st := n.get(t, "GET", "/", "tok-replay"); st != 200 {
			t.Fatalf("node %s: %d", n.site, st)
		}
	}
	rc := srv.Client(nil)
	ctx := context.Background()
	keys, err := rc.Keys(ctx, "*:s:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("entry keys: %v, %v", keys, err)
	}
	saved := map[string]string{}
	for _, k := range keys {
		saved[k] = rc.Dump(ctx, k).Val()
	}
	received := []float64{nodes[1].stat(t, "invalidations_received"), nodes[2].stat(t, "invalidations_received")}
	if st := nodes[0].get(t, "POST", "/logout", "tok-replay"); st != 200 {
		t.Fatalf("logout: %d", st)
	}
	svc.removeSession("tok-replay")
	began := time.Now()
	for i, n := range nodes[1:] {
		eventually(t, 2*time.Second-time.Since(began), "node "+n.site+" received the logout", func() error {
			if got := n.stat(t, "invalidations_received"); got <= received[i] {
				return fmt.Errorf("invalidations_received still %v", got)
			}
			return nil
		})
	}
	for _, n := range nodes {
		for k, v := range saved {
			if err := rc.RestoreReplace(ctx, k, time.Hour, v).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if st := n.get(t, "GET", "/", "tok-replay"); st != 401 {
			t.Errorf("node %s serves a logged-out session put back in Redis: %d, want 401", n.site, st)
		}
	}
	if got := nodes[1].stat(t, "revoked_refused") + nodes[2].stat(t, "revoked_refused"); got < 2 {
		t.Errorf("revoked_refused on nodes 1 and 2: %v, want the replayed entries counted", got)
	}
}

package integration

import (
	"fmt"
	"net/http"
	"strings"
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
	deadline := time.Now().Add(5 * time.Second)
	for st := clusterStats(t); len(st) != 1 || !allConnected(st); st = clusterStats(t) {
		if time.Now().After(deadline) {
			t.Fatalf("a connected cluster tier expected, stats: %v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	deadline = time.Now().Add(5 * time.Second)
	for st := clusterStats(t); sumStat(st, "undelivered") != 0; st = clusterStats(t) {
		if time.Now().After(deadline) {
			t.Fatalf("the purge was not delivered after the stall: %v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

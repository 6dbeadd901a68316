package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/redistest"
)

const clusterSecret = "integration-cluster-secret-0123456789"

// clusterStats is the cluster part of each stats line, by the line's id.
func clusterStats(t *testing.T) map[string]map[string]any {
	t.Helper()
	status, body := admin(t, "GET", "/sessiongate/stats", "", "")
	if status != http.StatusOK {
		t.Fatalf("GET /sessiongate/stats: %d %s", status, body)
	}
	var out struct {
		Backends []struct {
			ID      string         `json:"id"`
			Entries int            `json:"entries"`
			Cluster map[string]any `json:"cluster"`
		} `json:"backends"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("stats are not JSON: %v: %s", err, body)
	}
	m := map[string]map[string]any{}
	for _, b := range out.Backends {
		if b.Cluster != nil {
			b.Cluster["entries"] = float64(b.Entries)
			m[b.ID] = b.Cluster
		}
	}
	return m
}

func sumStat(st map[string]map[string]any, name string) float64 {
	var n float64
	for _, s := range st {
		n += s[name].(float64)
	}
	return n
}

// TestClusterTwoNodesOneRedis runs two nodes in one Caddy: two handlers
// of one backend whose cache settings differ, so each has its own cache
// and its own Redis tier, as two Caddy processes would.
func TestClusterTwoNodesOneRedis(t *testing.T) {
	srv := redistest.Start(t)
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	svc.addSession("tok-bob", map[string]any{"user_id": "u-2", "user": "bob"})
	up := newUpstream(t)
	t.Setenv("SG_IT_CLUSTER_SECRET", clusterSecret)
	node := func(path, ttl string) string {
		return fmt.Sprintf(`
	handle %s/* {
		session_auth http %s {
			cache_ttl %s
			logout POST %s/logout
			cluster %s {
				secret {env.SG_IT_CLUSTER_SECRET}
				timeout 200ms
			}
		}
		reverse_proxy %s
	}`, path, svc.URL, ttl, path, srv.URL(), up.Listener.Addr())
	}
	tester := startCaddy(t, fmt.Sprintf(":%d {%s%s\n}", httpPort, node("/a", "1m"), node("/b", "2m")))
	waitTiersConnected(t, 2, 5*time.Second, "two cluster tiers connected")

	// One service call for the cluster.
	expectStatus(t, tester, "GET", "/a/x", bearer("tok-alice"), 200, "node A")
	expectStatus(t, tester, "GET", "/b/x", bearer("tok-alice"), 200, "node B")
	expectStatus(t, tester, "GET", "/b/x", bearer("tok-alice"), 200, "node B again")
	expectCalls(t, svc, 1, "one token through two nodes")
	if st := clusterStats(t); sumStat(st, "l2_hits") != 1 {
		t.Errorf("cluster stats %v: want 1 L2 hit", st)
	}
	if _, m := admin(t, "GET", "/metrics", "", ""); !strings.Contains(m, `caddy_sessiongate_cluster_l2_hits_total{dialect="http"} 1`) ||
		!strings.Contains(m, `caddy_sessiongate_cluster_connected{dialect="http"} 2`) || strings.Contains(m, "tok-") {
		t.Errorf("metrics lack the cluster counters (or show a token):\n%s", grepLines(m, "cluster"))
	}

	// Nothing readable in Redis, for a session or a rejection, whatever
	// the type of the key.
	expectStatus(t, tester, "GET", "/a/x", bearer("tok-rejected-unreadable"), 401, "a rejection, shared too")
	rc := srv.Client(nil)
	ctx := context.Background()
	keys, err := rc.Keys(ctx, "*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("redis keys: %v, %v", keys, err)
	}
	for _, k := range keys {
		v, _ := rc.Get(ctx, k).Bytes()
		d, _ := rc.Dump(ctx, k).Bytes()
		for _, s := range []string{"tok-alice", "alice", "u-1", "acme", "tok-rejected-unreadable", "unreadable"} {
			if strings.Contains(k, s) || bytes.Contains(v, []byte(s)) || bytes.Contains(d, []byte(s)) {
				t.Errorf("redis key %q or its value holds %q", k, s)
			}
		}
	}

	// A logout on node A reaches node B: the service has ended the
	// session, and B, which cached it for 2m, must not serve it.
	status, _ := do(t, nil, "POST", "/a/logout", bearer("tok-alice"))
	if status.StatusCode != 200 {
		t.Fatalf("logout answered %d", status.StatusCode)
	}
	svc.removeSession("tok-alice")
	took := waitClusterStat(t, "entries", 0, time.Second, "node B drops the session after the logout on node A")
	t.Logf("logout on node A emptied node B within %v", took)
	expectStatus(t, tester, "GET", "/b/x", bearer("tok-alice"), 401, "node B after logout on node A")

	// A tampered entry is never served: node B resolves the token itself.
	expectStatus(t, tester, "GET", "/a/x", bearer("tok-bob"), 200, "bob on node A")
	calls := svc.calls.Load()
	keys, _ = rc.Keys(ctx, "*:s:*").Result()
	for _, k := range keys {
		v, _ := rc.Get(ctx, k).Bytes()
		if len(v) > 0 {
			v[len(v)/2] ^= 0x55
			rc.Set(ctx, k, v, time.Minute)
		}
	}
	body := expectStatus(t, tester, "GET", "/b/x", bearer("tok-bob"), 200, "bob on node B, entry tampered")
	if !strings.Contains(body, "bob") {
		t.Errorf("node B answered %s, want bob's identity", body)
	}
	expectCalls(t, svc, calls+1, "tampered entry: node B calls the service itself")
	if st := clusterStats(t); sumStat(st, "sealed_rejected") != 1 {
		t.Errorf("cluster stats %v: want 1 sealed entry rejected", st)
	}

	// Nor is a whole, valid entry moved under another token's key: it
	// opens only under the key it was sealed for, so node B does not
	// answer dave's request with erin's identity.
	svc.addSession("tok-dave", map[string]any{"user_id": "u-4", "user": "dave"})
	svc.addSession("tok-erin", map[string]any{"user_id": "u-5", "user": "erin"})
	newKey := func(tok string) string {
		t.Helper()
		had, _ := rc.Keys(ctx, "*:s:*").Result()
		expectStatus(t, tester, "GET", "/a/x", bearer(tok), 200, tok+" on node A")
		now, _ := rc.Keys(ctx, "*:s:*").Result()
		var added []string
		for _, k := range now {
			if !slices.Contains(had, k) {
				added = append(added, k)
			}
		}
		if len(added) != 1 {
			t.Fatalf("%s on node A added the session keys %q to Redis, want one", tok, added)
		}
		return added[0]
	}
	daveKey, erinKey := newKey("tok-dave"), newKey("tok-erin")
	erinEntry, _ := rc.Get(ctx, erinKey).Bytes()
	rc.Set(ctx, daveKey, erinEntry, time.Minute)
	calls = svc.calls.Load()
	body = expectStatus(t, tester, "GET", "/b/x", bearer("tok-dave"), 200, "dave on node B, erin's entry under his key")
	if !strings.Contains(body, "dave") || strings.Contains(body, "erin") {
		t.Errorf("node B answered %s, want dave's identity", body)
	}
	expectCalls(t, svc, calls+1, "swapped entry: node B calls the service itself")
	if st := clusterStats(t); sumStat(st, "sealed_rejected") != 2 {
		t.Errorf("cluster stats %v: want 2 sealed entries rejected", st)
	}

	// Redis gone: requests are still answered, by the nodes alone, and
	// sharing resumes when it is back, with no reload.
	srv.Kill()
	for i := 0; i < 5; i++ {
		expectStatus(t, tester, "GET", "/b/x", bearer("tok-bob"), 200, "Redis down")
		expectStatus(t, tester, "GET", "/a/x", bearer("tok-nobody"), 401, "Redis down, unknown token")
	}
	srv.Start()
	waitTiersConnected(t, 0, 10*time.Second, "tiers reconnected after the Redis restart")
	svc.addSession("tok-carol", map[string]any{"user_id": "u-3", "user": "carol"})
	calls = svc.calls.Load()
	expectStatus(t, tester, "GET", "/a/x", bearer("tok-carol"), 200, "carol on node A after restart")
	expectStatus(t, tester, "GET", "/b/x", bearer("tok-carol"), 200, "carol on node B after restart")
	expectCalls(t, svc, calls+1, "sharing resumed after the Redis restart")
}

// waitTiersConnected waits until the test Caddy has tiers cluster tiers
// (any number when tiers is 0), each connected to Redis.
func waitTiersConnected(t *testing.T, tiers int, within time.Duration, what string) {
	t.Helper()
	eventually(t, within, what, func() error {
		if st := clusterStats(t); (tiers > 0 && len(st) != tiers) || !allConnected(st) {
			return fmt.Errorf("want %d connected tiers, stats: %v", tiers, st)
		}
		return nil
	})
}

// waitClusterStat waits until the stat name, summed over the test Caddy's
// cluster tiers, is want.
func waitClusterStat(t *testing.T, name string, want float64, within time.Duration, what string) time.Duration {
	t.Helper()
	return eventually(t, within, what, func() error {
		if st := clusterStats(t); sumStat(st, name) != want {
			return fmt.Errorf("%s is %v, want %v; stats: %v", name, sumStat(st, name), want, st)
		}
		return nil
	})
}

func allConnected(st map[string]map[string]any) bool {
	if len(st) == 0 {
		return false
	}
	for _, s := range st {
		if c, _ := s["connected"].(bool); !c {
			return false
		}
	}
	return true
}

// TestClusterSecretFromEnvChecked: a secret the Caddyfile cannot check
// (from the environment) is checked when the config loads; a short or
// unset one refuses the config, and the running one stays.
func TestClusterSecretFromEnvChecked(t *testing.T) {
	svc := newSessionService(t)
	up := newUpstream(t)
	site := func(secret string) string {
		return fmt.Sprintf(`
:%d {
	session_auth http %s {
		cluster redis://127.0.0.1:1/0 {
			secret %s
		}
	}
	reverse_proxy %s
}`, httpPort, svc.URL, secret, up.Listener.Addr())
	}
	startCaddy(t, site(clusterSecret))
	t.Setenv("SG_IT_SHORT_SECRET", "only-twenty-bytes-xx")
	for name, tc := range map[string]struct{ secret, want string }{
		"short": {"{env.SG_IT_SHORT_SECRET}", "cluster secret is 20 bytes, need at least 32"},
		"unset": {"{env.SG_IT_UNSET_SECRET}", "SG_IT_UNSET_SECRET is not set"},
	} {
		status, body := reload(t, site(tc.secret))
		if status == http.StatusOK || !strings.Contains(body, tc.want) {
			t.Errorf("%s secret: reload answered %d %s, want an error saying %q", name, status, body, tc.want)
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

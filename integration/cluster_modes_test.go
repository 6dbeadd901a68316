package integration

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/redistest"
)

// purgeOn asks node's admin API to purge body ({"token": ...} or
// {"all": true}).
func purgeOn(t *testing.T, n caddyNode, body string) {
	t.Helper()
	resp, err := nodeClient.Post("http://"+n.admin+"/sessiongate/purge", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("purge %s: %v", body, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("purge %s: status %d", body, resp.StatusCode)
	}
}

// untilStatus waits up to a second for node to answer want for token.
func untilStatus(t *testing.T, n caddyNode, token string, want int, what string) {
	t.Helper()
	eventually(t, time.Second, fmt.Sprintf("node %s, %s", n.site, what), func() error {
		if st := n.get(t, "GET", "/", token); st != want {
			return fmt.Errorf("answered %d, want %d", st, want)
		}
		return nil
	})
}

// caddyNodesShareAndRevoke is what real Caddy nodes on one Redis
// deployment must do, in any mode: M tokens through every node cost M
// service calls; a logout on one node, an admin purge of one token on
// another and a purge of all on a third end the session on every node
// (the service has ended it too, so a node still serving it from its
// cache or from Redis would answer 200).
func caddyNodesShareAndRevoke(t *testing.T, svc *sessionService, nodes []caddyNode, round string) {
	t.Helper()
	const tokens = 12
	for i := range tokens {
		svc.addSession(fmt.Sprintf("tok-%s-%d", round, i), map[string]any{"user_id": fmt.Sprint(i), "user": "u"})
	}
	before := svc.calls.Load()
	for i := range tokens {
		for _, n := range nodes {
			if st := n.get(t, "GET", "/", fmt.Sprintf("tok-%s-%d", round, i)); st != 200 {
				t.Fatalf("token %d on %s: %d", i, n.site, st)
			}
		}
	}
	if got := svc.calls.Load() - before; got != tokens {
		t.Fatalf("%d nodes x %d tokens made %d service calls, want %d", len(nodes), tokens, got, tokens)
	}
	end := func(tok string) {
		svc.removeSession(tok)
	}
	last := nodes[len(nodes)-1]

	// Logout on node 0.
	tok := fmt.Sprintf("tok-%s-0", round)
	if st := nodes[0].get(t, "POST", "/logout", tok); st != 200 {
		t.Fatalf("logout: %d", st)
	}
	end(tok)
	for _, n := range nodes[1:] {
		untilStatus(t, n, tok, 401, "a session logged out on node 0")
	}
	// Admin purge of one token on the last node.
	tok = fmt.Sprintf("tok-%s-1", round)
	purgeOn(t, last, `{"token": "`+tok+`"}`)
	end(tok)
	for _, n := range nodes[:len(nodes)-1] {
		untilStatus(t, n, tok, 401, "a token purged on the last node")
	}
	// Admin purge of all on the last node.
	purgeOn(t, last, `{"all": true}`)
	for i := 2; i < tokens; i++ {
		end(fmt.Sprintf("tok-%s-%d", round, i))
	}
	for _, n := range nodes[:len(nodes)-1] {
		untilStatus(t, n, fmt.Sprintf("tok-%s-%d", round, tokens-1), 401, "a token after a purge of all on the last node")
	}
}

// TestClusterRedisClusterCaddyProcesses: three Caddy processes on a Redis
// Cluster of three masters (mode cluster, each node given the seeds).
func TestClusterRedisClusterCaddyProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Caddy")
	}
	rc := redistest.StartCluster(t)
	svc := newSessionService(t)
	up := newUpstream(t)
	bin := buildCaddy(t)
	var nodes []caddyNode
	for i := range 3 {
		urls := rc.URLs()
		urls = append(urls[i:], urls[:i]...)
		nodes = append(nodes, startNode(t, bin, svc.URL, strings.Join(urls, " "), up.Listener.Addr().String(), "mode cluster"))
	}
	caddyNodesShareAndRevoke(t, svc, nodes, "cluster")
	for _, n := range rc.Nodes {
		if size, err := n.Client(nil).DBSize(t.Context()).Result(); err != nil || size == 0 {
			t.Errorf("master %s holds %d keys (%v): the nodes did not use the whole cluster", n.Addr, size, err)
		}
	}
}

// TestClusterSentinelFailoverCaddyProcesses: two Caddy processes on a
// master and replica watched by three Sentinels (mode sentinel). The
// master is killed mid-load: no request fails, and once the Sentinels
// have promoted the replica the nodes share sessions and revocations on
// it by themselves.
func TestClusterSentinelFailoverCaddyProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Caddy")
	}
	rs := redistest.StartSentinel(t, 3)
	svc := newSessionService(t)
	up := newUpstream(t)
	bin := buildCaddy(t)
	var nodes []caddyNode
	for range 2 {
		nodes = append(nodes, startNode(t, bin, svc.URL, strings.Join(rs.URLs(), " "), up.Listener.Addr().String(),
			"mode sentinel", "master_name "+redistest.MasterName))
	}
	caddyNodesShareAndRevoke(t, svc, nodes, "before")

	for i := range 10 {
		svc.addSession(fmt.Sprintf("tok-load-%d", i), aliceSession())
	}
	stopLoad := loadNodes(t, nodes, func(i int) string { return fmt.Sprintf("tok-load-%d", i%10) },
		func(st int) bool { return st != http.StatusOK })
	time.Sleep(300 * time.Millisecond)
	took := rs.KillMaster(t)
	t.Logf("the sentinels promoted the replica %v after the master was killed", took)
	waitConnected(t, nodes, 15*time.Second, "reconnect to the promoted master")
	time.Sleep(200 * time.Millisecond)
	total, failed := stopLoad()
	if failed != 0 {
		t.Errorf("%d of %d requests failed (not 200) around the failover", failed, total)
	}
	t.Logf("%d requests across the failover, %d not 200", total, failed)
	caddyNodesShareAndRevoke(t, svc, nodes, "after")
	if keys, err := rs.Replica.Client(nil).Keys(t.Context(), "sessiongate:*").Result(); err != nil || len(keys) == 0 {
		t.Errorf("the promoted master holds no entry (%v): the nodes do not use it", err)
	}
}

// TestClusterTLSWithACLUser: two nodes in one Caddy reach Redis only
// through its TLS port, with the trust pool and client certificate of
// the cluster block's tls_* lines, as the ACL user of docs/cluster.md,
// its password and the secret from the environment.
func TestClusterTLSWithACLUser(t *testing.T) {
	files := redistest.NewTLSFiles(t)
	srv := redistest.StartTLS(t, files)
	rules := documentedACL(t)
	args := []any{"ACL", "SETUSER", "sessiongate"}
	for _, r := range rules {
		if strings.HasPrefix(r, ">") {
			r = ">acl-user-password"
		}
		args = append(args, r)
	}
	adminClient := srv.Client(nil)
	if err := adminClient.Do(t.Context(), args...).Err(); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SG_IT_CLUSTER_SECRET", clusterSecret)
	t.Setenv("SG_IT_REDIS_PASSWORD", "acl-user-password")
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newUpstream(t)
	node := func(path, ttl string) string {
		return fmt.Sprintf(`
	handle %s/* {
		session_auth http %s {
			cache_ttl %s
			logout POST %s/logout
			cluster rediss://sessiongate:{env.SG_IT_REDIS_PASSWORD}@%s/0 {
				secret {env.SG_IT_CLUSTER_SECRET}
				timeout 500ms
				tls_trust_pool file %s
				tls_client_auth %s %s
			}
		}
		reverse_proxy %s
	}`, path, svc.URL, ttl, path, srv.TLSAddr, files.CA, files.ClientCert, files.ClientKey, up.Listener.Addr())
	}
	tester := startCaddy(t, fmt.Sprintf(":%d {%s%s\n}", httpPort, node("/a", "1m"), node("/b", "2m")))
	waitTiersConnected(t, 2, 5*time.Second, "two cluster tiers connected through TLS")
	expectStatus(t, tester, "GET", "/a/x", bearer("tok-alice"), 200, "node A")
	expectStatus(t, tester, "GET", "/b/x", bearer("tok-alice"), 200, "node B")
	expectCalls(t, svc, 1, "one token through two nodes over TLS")
	status, _ := do(t, nil, "POST", "/a/logout", bearer("tok-alice"))
	if status.StatusCode != 200 {
		t.Fatalf("logout answered %d", status.StatusCode)
	}
	svc.removeSession("tok-alice")
	waitClusterStat(t, "entries", 0, time.Second, "node B drops the session after the logout on node A")
	expectStatus(t, tester, "GET", "/b/x", bearer("tok-alice"), 401, "node B after logout on node A")
	if denied, err := adminClient.Do(t.Context(), "ACL", "LOG").Slice(); err != nil || len(denied) != 0 {
		t.Fatalf("Redis refused the documented ACL user %d times (%v): %v", len(denied), err, denied)
	}
}

// documentedACL is the rules of the ACL SETUSER line of docs/cluster.md.
func documentedACL(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile("../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(doc)) {
		if rest, ok := strings.CutPrefix(line, "ACL SETUSER sessiongate "); ok {
			return strings.Fields(rest)
		}
	}
	t.Fatal("docs/cluster.md has no line starting ACL SETUSER sessiongate")
	return nil
}

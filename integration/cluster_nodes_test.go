package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/redistest"
)

// caddyNode is one real Caddy process (built from ./cmd/caddy), one node
// of a cluster.
type caddyNode struct {
	site, admin string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func buildCaddy(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "caddy")
	// ./cmd/caddy is the plugin module's, one directory up.
	cmd := exec.Command("go", "build", "-C", "..", "-o", bin, "./cmd/caddy")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/caddy: %v\n%s", err, out)
	}
	return bin
}

// nodeRedisTimeout is each node's cluster timeout: how long a Redis
// operation may take, and how long a node waits for another that is
// resolving the same token. On a busy machine under -race a 100ms wait
// ran out before the resolving node's answer, and the stampede cost a
// call per node.
const nodeRedisTimeout = 500 * time.Millisecond

// startNode runs one Caddy node of a cluster until it is connected to
// Redis. redisURL may be several URLs (space-separated); clusterLines are more
// lines of the cluster block (mode, master_name, tls_*).
func startNode(t *testing.T, bin, svcURL, redisURL, upstream string, clusterLines ...string) caddyNode {
	t.Helper()
	return startNodeTimeout(t, bin, svcURL, redisURL, upstream, nodeRedisTimeout, clusterLines...)
}

// startNodeTimeout is startNode with its own cluster timeout.
func startNodeTimeout(t *testing.T, bin, svcURL, redisURL, upstream string, redisTimeout time.Duration, clusterLines ...string) caddyNode {
	t.Helper()
	n := caddyNode{site: freeAddr(t), admin: freeAddr(t)}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`{
	admin %s
	auto_https off
	persist_config off
	grace_period 1s
}

http://%s {
	session_auth http %s {
		logout POST /logout
		cluster %s {
			secret {env.SG_NODE_SECRET}
			timeout %s
			%s
		}
	}
	reverse_proxy %s
}
`, n.admin, n.site, svcURL, redisURL, redisTimeout, strings.Join(clusterLines, "\n\t\t\t"), upstream)
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", file, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "SG_NODE_SECRET="+clusterSecret, "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// The process is killed on purpose: Wait's error is the kill.
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("node %s log:\n%s", n.site, logs.String())
		}
	})
	eventually(t, 20*time.Second, "node "+n.site+" up and connected to Redis", func() error {
		st, err := n.cluster()
		if err == nil && st["connected"] == true {
			return nil
		}
		select {
		case <-exited:
			t.Fatalf("node %s exited at start:\n%s", n.site, logs.String())
		default:
		}
		// (The node's log is shown when the test fails: reading it here
		// would race with the process writing it.)
		if err != nil {
			return err
		}
		return fmt.Errorf("stats %v", st)
	})
	return n
}

// stat reads one counter of the node's cluster stats.
func (n caddyNode) stat(t *testing.T, name string) float64 {
	t.Helper()
	st, err := n.cluster()
	if err != nil {
		t.Fatalf("node %s: %v", n.site, err)
	}
	v, _ := st[name].(float64)
	return v
}

var nodeClient = &http.Client{Timeout: 10 * time.Second}

// waitConnected waits until every node says it is connected to Redis.
func waitConnected(t *testing.T, nodes []caddyNode, within time.Duration, what string) {
	t.Helper()
	began := time.Now()
	for _, n := range nodes {
		eventually(t, within-time.Since(began), "node "+n.site+": "+what, func() error {
			st, err := n.cluster()
			if err != nil {
				return err
			}
			if st["connected"] != true {
				return fmt.Errorf("stats %v", st)
			}
			return nil
		})
	}
}

// cluster is the node's cluster stats (one backend).
func (n caddyNode) cluster() (map[string]any, error) {
	resp, err := nodeClient.Get("http://" + n.admin + "/sessiongate/stats")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Backends []struct {
			Entries int            `json:"entries"`
			Cluster map[string]any `json:"cluster"`
		} `json:"backends"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	if len(out.Backends) != 1 || out.Backends[0].Cluster == nil {
		return nil, fmt.Errorf("stats: %+v", out)
	}
	out.Backends[0].Cluster["entries"] = float64(out.Backends[0].Entries)
	return out.Backends[0].Cluster, nil
}

// loadNodes sends requests to every node, one goroutine each, the i-th
// with token(i), until the returned stop is called; stop returns how
// many were sent and how many got a status bad reports.
func loadNodes(t *testing.T, nodes []caddyNode, token func(i int) string, bad func(status int) bool) (stop func() (total, failed int64)) {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	var sent, failed atomic.Int64
	for _, n := range nodes {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				if bad(n.get(t, "GET", "/", token(i))) {
					failed.Add(1)
				}
				sent.Add(1)
			}
		})
	}
	return func() (int64, int64) {
		close(done)
		wg.Wait()
		return sent.Load(), failed.Load()
	}
}

func (n caddyNode) get(t *testing.T, method, path, token string) int {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+n.site+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := nodeClient.Do(req)
	if err != nil {
		t.Errorf("%s %s on %s: %v", method, path, n.site, err)
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestClusterThreeCaddyProcesses: three real Caddy processes on one
// Redis and one session service.
func TestClusterThreeCaddyProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Caddy")
	}
	srv := redistest.Start(t)
	svc := newSessionService(t)
	up := newUpstream(t)
	bin := buildCaddy(t)
	var nodes []caddyNode
	for range 3 {
		nodes = append(nodes, startNode(t, bin, svc.URL, srv.URL(), up.Listener.Addr().String()))
	}

	// Sequential: M tokens through N nodes cost M calls.
	const tokens = 10
	for i := range tokens {
		svc.addSession(fmt.Sprintf("tok-seq-%d", i), map[string]any{"user_id": fmt.Sprint(i), "user": "u"})
	}
	before := svc.calls.Load()
	for i := range tokens {
		for _, n := range nodes {
			if st := n.get(t, "GET", "/", fmt.Sprintf("tok-seq-%d", i)); st != 200 {
				t.Fatalf("token %d on %s: %d", i, n.site, st)
			}
		}
	}
	if got := svc.calls.Load() - before; got != tokens {
		t.Errorf("3 nodes x %d tokens made %d service calls, want %d", tokens, got, tokens)
	}
	for _, n := range nodes[1:] {
		if got := n.stat(t, "l2_hits"); got < tokens {
			t.Errorf("node %s: %v L2 hits for %d tokens node 0 resolved first, want %d", n.site, got, tokens, tokens)
		}
	}

	// Concurrent stampede across the nodes: one call.
	svc.addSession("tok-stampede", aliceSession())
	svc.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		time.Sleep(30 * time.Millisecond)
		return false
	})
	before = svc.calls.Load()
	var wg sync.WaitGroup
	var bad atomic.Int64
	start := make(chan struct{})
	for _, n := range nodes {
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if st := n.get(t, "GET", "/", "tok-stampede"); st != 200 {
					bad.Add(1)
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	svc.setFault(nil)
	if bad.Load() != 0 {
		t.Errorf("%d stampede requests failed", bad.Load())
	}
	if got := svc.calls.Load() - before; got != 1 {
		t.Errorf("stampede of 30 requests over 3 nodes made %d service calls, want 1", got)
	}

	// Logout on node 0 reaches nodes 1 and 2 within a second.
	if st := nodes[0].get(t, "POST", "/logout", "tok-stampede"); st != 200 {
		t.Fatalf("logout: %d", st)
	}
	began := time.Now()
	svc.removeSession("tok-stampede")
	for _, n := range nodes[1:] {
		eventually(t, time.Second-time.Since(began), "node "+n.site+" ends a session logged out on node 0", func() error {
			if st := n.get(t, "GET", "/", "tok-stampede"); st != 401 {
				return fmt.Errorf("answered %d, want 401", st)
			}
			return nil
		})
	}
	t.Logf("logout on node 0 ended the session on nodes 1 and 2 within %v", time.Since(began))

	// Admin purge of one token on node 2 reaches nodes 0 and 1, which
	// keep the other tokens; the service has ended the session, so a node
	// still serving it from its cache or from Redis would answer 200.
	svc.addSession("tok-purge-one", aliceSession())
	svc.addSession("tok-purge-keep", aliceSession())
	for _, n := range nodes {
		n.get(t, "GET", "/", "tok-purge-one")
		n.get(t, "GET", "/", "tok-purge-keep")
	}
	sent, received := nodes[2].stat(t, "invalidations_sent"), []float64{nodes[0].stat(t, "invalidations_received"), nodes[1].stat(t, "invalidations_received")}
	purge := func(body string) {
		t.Helper()
		resp, err := nodeClient.Post("http://"+nodes[2].admin+"/sessiongate/purge", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("purge %s: %v", body, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("purge %s: status %d", body, resp.StatusCode)
		}
	}
	held := []float64{nodes[0].stat(t, "entries"), nodes[1].stat(t, "entries")}
	purge(`{"token": "tok-purge-one"}`)
	began = time.Now()
	for i, n := range nodes[:2] {
		eventually(t, time.Second-time.Since(began), "node "+n.site+" drops a token purged on node 2", func() error {
			if got := n.stat(t, "entries"); got != held[i]-1 {
				return fmt.Errorf("%v entries, want %v", got, held[i]-1)
			}
			return nil
		})
	}
	t.Logf("purge of one token on node 2 reached nodes 0 and 1 within %v", time.Since(began))
	svc.removeSession("tok-purge-one")
	for _, n := range nodes[:2] {
		if st := n.get(t, "GET", "/", "tok-purge-one"); st != 401 {
			t.Errorf("node %s, a token purged on node 2 and ended by the service: %d, want 401", n.site, st)
		}
	}
	before = svc.calls.Load()
	for _, n := range nodes {
		if st := n.get(t, "GET", "/", "tok-purge-keep"); st != 200 {
			t.Errorf("node %s, a token not purged: %d", n.site, st)
		}
	}
	if got := svc.calls.Load() - before; got != 0 {
		t.Errorf("purging one token cost %d service calls for another", got)
	}
	checkInvalidations := func(what string) {
		t.Helper()
		if got := nodes[2].stat(t, "invalidations_sent"); got <= sent {
			t.Errorf("%s: node 2 invalidations_sent went from %v to %v", what, sent, got)
		}
		for i, n := range nodes[:2] {
			if got := n.stat(t, "invalidations_received"); got <= received[i] {
				t.Errorf("%s: node %d invalidations_received went from %v to %v", what, i, received[i], got)
			}
		}
		sent, received = nodes[2].stat(t, "invalidations_sent"), []float64{nodes[0].stat(t, "invalidations_received"), nodes[1].stat(t, "invalidations_received")}
	}
	checkInvalidations("purge of one token")

	// Admin purge of all on node 2 reaches nodes 0 and 1.
	svc.addSession("tok-purge", aliceSession())
	for _, n := range nodes {
		n.get(t, "GET", "/", "tok-purge")
	}
	purge(`{"all": true}`)
	began = time.Now()
	for _, n := range nodes[:2] {
		eventually(t, time.Second-time.Since(began), "node "+n.site+" emptied by a purge of all on node 2", func() error {
			st, err := n.cluster()
			if err != nil {
				return err
			}
			if st["entries"] != float64(0) {
				return fmt.Errorf("stats %v", st)
			}
			return nil
		})
	}
	t.Logf("purge on node 2 emptied nodes 0 and 1 within %v", time.Since(began))
	checkInvalidations("purge of all")

	// Redis killed mid-load: no 5xx; restarted: sharing resumes.
	stopLoad := loadNodes(t, nodes, func(i int) string { return fmt.Sprintf("tok-seq-%d", i%tokens) },
		func(st int) bool { return st >= 500 || st == 0 })
	time.Sleep(300 * time.Millisecond)
	srv.Kill()
	time.Sleep(700 * time.Millisecond)
	srv.Start()
	time.Sleep(300 * time.Millisecond)
	total, fivexx := stopLoad()
	if fivexx != 0 {
		t.Errorf("%d of %d requests failed (5xx or error) around a Redis kill", fivexx, total)
	}
	t.Logf("%d requests across a Redis kill and restart, %d 5xx", total, fivexx)
	waitConnected(t, nodes, 10*time.Second, "reconnect")
	svc.addSession("tok-after", aliceSession())
	before = svc.calls.Load()
	for _, n := range nodes {
		if st := n.get(t, "GET", "/", "tok-after"); st != 200 {
			t.Fatalf("after restart on %s: %d", n.site, st)
		}
	}
	if got := svc.calls.Load() - before; got != 1 {
		t.Errorf("after the Redis restart a new token through 3 nodes made %d calls, want 1 (sharing resumed)", got)
	}

	// Redis frozen (SIGSTOP): every Redis operation times out, and
	// requests are still answered within the timeouts + the service.
	srv.Pause()
	defer srv.Resume()
	for i, tok := range []string{"tok-paused-1", "tok-paused-2"} {
		svc.addSession(tok, aliceSession())
		began := time.Now()
		if st := nodes[i].get(t, "GET", "/", tok); st != 200 {
			t.Errorf("with Redis paused: %d", st)
		}
		took := time.Since(began)
		t.Logf("new token with Redis paused answered in %v", took)
		if took > 3*nodeRedisTimeout+200*time.Millisecond {
			t.Errorf("with Redis paused a request took %v, want within the Redis timeouts + the service's time", took)
		}
	}
}

package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/redistest"
)

// TestClusterLoginsAreNotInvalidations: logins on one Caddy node tell
// the other node nothing; a node that waits for another's lookup is told
// with a fill notice, counted as a fill (stats and metrics), never as an
// invalidation.
func TestClusterLoginsAreNotInvalidations(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Caddy")
	}
	srv := redistest.Start(t)
	svc := newSessionService(t)
	up := newUpstream(t)
	bin := buildCaddy(t)
	a := startNode(t, bin, svc.URL, srv.URL(), up.Listener.Addr().String())
	b := startNode(t, bin, svc.URL, srv.URL(), up.Listener.Addr().String())

	const logins = 30
	for i := range logins {
		tok := fmt.Sprintf("tok-login-%d", i)
		svc.addSession(tok, map[string]any{"user_id": fmt.Sprint(i), "user": "u"})
		if st := a.get(t, "GET", "/", tok); st != 200 {
			t.Fatalf("login %d: %d", i, st)
		}
	}
	time.Sleep(200 * time.Millisecond)
	for _, c := range []struct {
		n    caddyNode
		stat string
	}{{a, "invalidations_sent"}, {a, "fills_sent"}, {b, "invalidations_received"}, {b, "fills_received"}} {
		if got := c.n.stat(t, c.stat); got != 0 {
			t.Errorf("after %d logins on one node, %s on %s = %v, want 0", logins, c.stat, c.n.site, got)
		}
	}

	// A slow lookup on node A, the same token asked of node B meanwhile:
	// B waits for A's answer and is told of it.
	svc.addSession("tok-waited", aliceSession())
	svc.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		time.Sleep(300 * time.Millisecond)
		return false
	})
	var wg sync.WaitGroup
	wg.Add(1)
	asked := svc.calls.Load()
	go func() {
		defer wg.Done()
		if st := a.get(t, "GET", "/", "tok-waited"); st != 200 {
			t.Errorf("node A: %d", st)
		}
	}()
	eventually(t, 5*time.Second, "node A's lookup at the service", func() error {
		if svc.calls.Load() == asked {
			return fmt.Errorf("no call yet")
		}
		return nil
	})
	if st := b.get(t, "GET", "/", "tok-waited"); st != 200 {
		t.Errorf("node B: %d", st)
	}
	wg.Wait()
	svc.setFault(nil)
	if got := a.stat(t, "fills_sent"); got != 1 {
		t.Errorf("node A fills_sent = %v, want 1", got)
	}
	if got := b.stat(t, "fills_received"); got != 1 {
		t.Errorf("node B fills_received = %v, want 1", got)
	}
	if got := a.stat(t, "invalidations_sent") + b.stat(t, "invalidations_received"); got != 0 {
		t.Errorf("a fill counted as an invalidation (%v)", got)
	}
	resp, err := nodeClient.Get("http://" + a.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`caddy_sessiongate_cluster_fills_sent_total{dialect="http"} 1`, `caddy_sessiongate_cluster_invalidations_sent_total{dialect="http"} 0`} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(string(m), "cluster"))
		}
	}
}

// TestClusterClientGoneWhileWaiting: a client that gives up while its
// node waits for another node's lookup of its token costs that node no
// L2 miss and no session-service call of its own, even when the other
// node's lookup then fails.
func TestClusterClientGoneWhileWaiting(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Caddy")
	}
	srv := redistest.Start(t)
	svc := newSessionService(t)
	up := newUpstream(t)
	bin := buildCaddy(t)
	a := startNode(t, bin, svc.URL, srv.URL(), up.Listener.Addr().String())
	b := startNode(t, bin, svc.URL, srv.URL(), up.Listener.Addr().String())

	svc.addSession("tok-gone", aliceSession())
	var first sync.Once
	svc.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		failed := false
		first.Do(func() {
			// Node A's lookup: slow, then the service fails.
			time.Sleep(time.Second)
			w.WriteHeader(http.StatusServiceUnavailable)
			failed = true
		})
		return failed
	})
	before := svc.calls.Load()
	done := make(chan int, 1)
	go func() { done <- a.get(t, "GET", "/", "tok-gone") }()
	eventually(t, 5*time.Second, "node A's lookup at the service", func() error {
		if svc.calls.Load() == before {
			return fmt.Errorf("no call yet")
		}
		return nil
	})
	quick := &http.Client{Timeout: 200 * time.Millisecond}
	req, _ := http.NewRequest("GET", "http://"+b.site+"/", nil)
	req.Header.Set("Authorization", "Bearer tok-gone")
	if resp, err := quick.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("node B answered %d while node A's lookup ran", resp.StatusCode)
	}
	if st := <-done; st != 503 {
		t.Errorf("node A: %d, want 503", st)
	}
	time.Sleep(500 * time.Millisecond)
	if got := svc.calls.Load() - before; got != 1 {
		t.Errorf("%d service calls, want 1 (node A's): node B looked the token up for a client that was gone", got)
	}
	if got := b.stat(t, "l2_misses"); got != 0 {
		t.Errorf("node B l2_misses = %v, want 0 for a client that was gone", got)
	}
	svc.setFault(nil)
}

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
	go func() {
		defer wg.Done()
		if st := a.get(t, "GET", "/", "tok-waited"); st != 200 {
			t.Errorf("node A: %d", st)
		}
	}()
	time.Sleep(100 * time.Millisecond)
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

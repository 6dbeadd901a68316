package integration

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestTransportKeptConnections is the session-service connections behind
// a real Caddy: max_conns_per_host bounds the connections open at once
// under 50 concurrent lookups, which all answer; they are kept and reused;
// a reload closes the ones left idle; and a kept connection the service
// closed while it was idle costs no lookup its answer.
func TestTransportKeptConnections(t *testing.T) {
	svc := newSessionService(t)
	idler := newSessionService(t, func(s *sessionService) { s.Config.IdleTimeout = 200 * time.Millisecond })
	const n = 50
	for i := range n {
		tok := fmt.Sprintf("tok-conns-%02d-5f1c", i)
		svc.addSession(tok, aliceSession())
		svc.setDelay(tok, 20*time.Millisecond)
	}
	for i := range 3 {
		idler.addSession(fmt.Sprintf("tok-idle-%d-77aa", i), aliceSession())
	}
	site := func(version string) string {
		return fmt.Sprintf(`:%d {
	handle /version {
		respond %q
	}
	handle /idle {
		session_auth {
			backend http %s
		}
		respond "user={session.user}"
	}
	handle {
		session_auth {
			backend http %s {
				max_conns_per_host 3
			}
			client_miss_limit off
		}
		respond "user={session.user}"
	}
}
`, httpPort, version, idler.URL, svc.URL)
	}
	tester := startCaddy(t, site("v1"))

	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, body := do(t, tester, "GET", "/", bearer(fmt.Sprintf("tok-conns-%02d-5f1c", i)))
			if resp.StatusCode != 200 || body != "user=alice" {
				t.Errorf("lookup %d: %d %q, want 200 for alice", i, resp.StatusCode, body)
			}
		})
	}
	wg.Wait()
	if got := svc.calls.Load(); got != n {
		t.Errorf("%d session-service calls, want %d", got, n)
	}
	if got := svc.maxConns.Load(); got > 3 {
		t.Errorf("%d connections to the session service open at once, want at most 3 (max_conns_per_host)", got)
	}
	if got := svc.conns.Load(); got == 0 {
		t.Errorf("no connection to the session service kept after the lookups")
	}

	// A reload (the same backend, something else changed) closes them.
	if status, body := reload(t, site("v2")); status != 200 {
		t.Fatalf("reload: %d %s", status, body)
	}
	eventually(t, 5*time.Second, "the reload closes the idle session-service connections", func() error {
		if got := svc.conns.Load(); got != 0 {
			return fmt.Errorf("%d connections still open", got)
		}
		return nil
	})

	// The service closes its idle connections after 200 ms: the next
	// lookup still gets its answer.
	for i := range 3 {
		if i > 0 {
			time.Sleep(400 * time.Millisecond)
		}
		expectStatus(t, tester, "GET", "/idle", bearer(fmt.Sprintf("tok-idle-%d-77aa", i)), 200, fmt.Sprintf("lookup %d after the service closed the idle connection", i))
	}
	if got := idler.calls.Load(); got != 3 {
		t.Errorf("%d calls to the service that closes idle connections, want 3", got)
	}
}

package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// setUser makes svc answer token as user after delay; an empty user
// makes the token unknown (logged out at the service).
func setUser(svc *sessionService, token, user string, delay time.Duration) {
	if user == "" {
		svc.removeSession(token)
	} else {
		svc.addSession(token, map[string]any{"user": user})
	}
	svc.setDelay(token, delay)
}

// protectStats is the part of a GET /sessiongate/stats line these tests
// read.
type protectStats struct {
	URL                string `json:"url"`
	ServiceCalls       uint64 `json:"service_calls"`
	Waited             uint64 `json:"waited"`
	RefreshesStarted   uint64 `json:"refreshes_started"`
	RefusedLookupLimit uint64 `json:"refused_lookup_limit"`
	RefusedClientLimit uint64 `json:"refused_client_limit"`
	LookupsWaiting     int64  `json:"lookups_waiting"`
	LookupsInFlight    int64  `json:"lookups_in_flight"`
}

func protectStatsFor(t *testing.T, url string) protectStats {
	t.Helper()
	status, body := admin(t, "GET", "/sessiongate/stats", "", "")
	if status != http.StatusOK {
		t.Fatalf("GET /sessiongate/stats: %d %s", status, body)
	}
	var out struct {
		Backends []protectStats `json:"backends"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("stats: %v: %s", err, body)
	}
	for _, b := range out.Backends {
		if b.URL == url {
			return b
		}
	}
	t.Fatalf("no stats line for %s in %s", url, body)
	return protectStats{}
}

// get sends one request with a bearer token and an X-Forwarded-For.
func getFrom(t *testing.T, token, forwardedFor string) (*http.Response, string) {
	t.Helper()
	h := bearer(token)
	if forwardedFor != "" {
		h.Set("X-Forwarded-For", forwardedFor)
	}
	return do(t, nil, "GET", "/", h)
}

// TestProtectLookupLimit: with every lookup slot taken past the backend's
// timeout, a new token gets a 503 with Retry-After and the session
// service never sees it; the lookups that got a slot are answered.
func TestProtectLookupLimit(t *testing.T) {
	svc := newSessionService(t)
	setUser(svc, "slow-1", "ann", 1500*time.Millisecond)
	setUser(svc, "slow-2", "bob", 1500*time.Millisecond)
	setUser(svc, "fast", "cid", 0)
	up := newUpstream(t)
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth {
		backend http %s
		timeout 2s
		lookup_limit 1
		retry_after 7s
	}
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))
	_ = tester
	var wg sync.WaitGroup
	status := map[string]int{}
	var mu sync.Mutex
	for i, tok := range []string{"slow-1", "slow-2", "fast"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 100 * time.Millisecond)
			resp, _ := getFrom(t, tok, "")
			mu.Lock()
			status[tok] = resp.StatusCode
			if tok == "fast" && resp.Header.Get("Retry-After") != "7" {
				t.Errorf("refused lookup: Retry-After %q, want 7", resp.Header.Get("Retry-After"))
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if status["slow-1"] != 200 || status["slow-2"] != 200 || status["fast"] != 503 {
		t.Fatalf("statuses %v: want the two lookups that got the slot answered, the third refused with 503", status)
	}
	if n := svc.callsFor("fast"); n != 0 {
		t.Fatalf("the refused token reached the session service %d times", n)
	}
	if m := svc.maxActive.Load(); m != 1 {
		t.Fatalf("%d session-service calls at once under lookup_limit 1", m)
	}
	st := protectStatsFor(t, svc.URL)
	if st.RefusedLookupLimit != 1 || st.LookupsInFlight != 0 || st.LookupsWaiting != 0 {
		t.Fatalf("stats %+v", st)
	}
	text := scrapeMetrics(t)
	if v, _ := sampleSum(text, "caddy_sessiongate_lookups_refused_total", `limit="lookup_limit"`); v < 1 {
		t.Fatalf("lookups_refused_total{limit=lookup_limit} = %v", v)
	}
	// Once the slot is free, the same token gets in.
	if resp, _ := getFrom(t, "fast", ""); resp.StatusCode != 200 {
		t.Fatalf("after the flood: %d", resp.StatusCode)
	}
}

// TestProtectClientMissLimit: one client past its lookups per window
// gets 429 with Retry-After and no call, while its own session, its
// cached rejections and other clients' new sessions pass; the client is
// Caddy's client_ip, so X-Forwarded-For counts only from trusted proxies.
func TestProtectClientMissLimit(t *testing.T) {
	svc := newSessionService(t)
	setUser(svc, "alice", "alice", 0)
	setUser(svc, "bob", "bob", 0)
	up := newUpstream(t)
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	site := fmt.Sprintf(`
:%d {
	session_auth {
		backend http %s
		client_miss_limit 3 1m
	}
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr())
	startCaddyWith(t, "\tservers {\n\t\ttrusted_proxies static private_ranges\n\t}\n"+debugLogTo(logPath), site)

	const flooder, other = "203.0.113.7", "203.0.113.8"
	expectFrom := func(token, client string, want int) *http.Response {
		t.Helper()
		resp, body := getFrom(t, token, client)
		if resp.StatusCode != want {
			t.Fatalf("%s from %s: %d, want %d (%q)", token, client, resp.StatusCode, want, body)
		}
		return resp
	}
	expectFrom("alice", flooder, 200)
	expectFrom("junk-1", flooder, 401)
	expectFrom("junk-2", flooder, 401)
	before := svc.calls.Load()
	resp := expectFrom("junk-3", flooder, 429)
	if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("429 without a Retry-After (%q)", ra)
	}
	expectFrom("junk-4", flooder, 429)
	if svc.calls.Load() != before {
		t.Fatal("a refused lookup reached the session service")
	}
	// Its own session and its cached rejections still answer.
	expectFrom("alice", flooder, 200)
	expectFrom("junk-1", flooder, 401)
	// Another client's new session gets in during the flood, as does the
	// proxy's own address (its own client).
	expectFrom("bob", other, 200)
	expectFrom("junk-5", "", 401)

	st := protectStatsFor(t, svc.URL)
	if st.RefusedClientLimit != 2 {
		t.Fatalf("refused by the client limit: %d, want 2", st.RefusedClientLimit)
	}
	text := scrapeMetrics(t)
	if v, _ := sampleSum(text, "caddy_sessiongate_lookups_refused_total", `limit="client_miss_limit"`); v < 2 {
		t.Fatalf("lookups_refused_total{limit=client_miss_limit} = %v", v)
	}
	if v, _ := sampleSum(text, "caddy_sessiongate_requests_total", `outcome="limited"`); v < 2 {
		t.Fatalf("requests_total{outcome=limited} = %v", v)
	}
	if strings.Contains(text, flooder) {
		t.Fatal("a client address is in the metrics")
	}
	raw, _ := os.ReadFile(logPath)
	if strings.Contains(string(raw), "junk-3") {
		t.Fatal("a refused token is in the log")
	}
	found := false
	for _, l := range logLines(t, logPath) {
		if l["msg"] == "session lookup refused" && l["client"] == flooder && l["limit"] == "client_miss_limit" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no debug line for the refused lookup naming the client: %s", raw)
	}

	// Without trusted_proxies, X-Forwarded-For is the client's own claim:
	// every request from here is one client, whatever it says.
	// (Another window: a new cache, with its own per-client counts.)
	startCaddy(t, strings.Replace(site, "3 1m", "3 2m", 1))
	for i := range 3 {
		expectFrom(fmt.Sprint("other-junk-", i), fmt.Sprint("198.51.100.", i), 401)
	}
	expectFrom("other-junk-x", "198.51.100.99", 429)
}

// TestProtectJoinedLookupCountsOnce: concurrent requests for one new
// token share one lookup, charged to the client once.
func TestProtectJoinedLookupCountsOnce(t *testing.T) {
	svc := newSessionService(t)
	setUser(svc, "alice", "alice", 300*time.Millisecond)
	setUser(svc, "bob", "bob", 0)
	up := newUpstream(t)
	startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth {
		backend http %s
		client_miss_limit 2 1m
	}
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, _ := getFrom(t, "alice", ""); resp.StatusCode != 200 {
				t.Errorf("joined request: %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	if n := svc.callsFor("alice"); n != 1 {
		t.Fatalf("%d calls for one token", n)
	}
	if resp, _ := getFrom(t, "bob", ""); resp.StatusCode != 200 {
		t.Fatalf("the second lookup of the window: %d (the joined requests counted more than once)", resp.StatusCode)
	}
	if resp, _ := getFrom(t, "carol", ""); resp.StatusCode != 429 {
		t.Fatalf("the third lookup of the window: %d", resp.StatusCode)
	}
}

// TestProtectConnectionBound: the session-service transport opens no
// more connections than lookup_limit by default, and max_conns_per_host
// in the backend block wins.
func TestProtectConnectionBound(t *testing.T) {
	for _, tc := range []struct {
		block string
		want  int64
	}{
		{"lookup_limit 4", 4},
		{"lookup_limit 4\n\t\tbackend http %s {\n\t\t\tmax_conns_per_host 2\n\t\t}", 2},
	} {
		svc := newSessionService(t)
		tokens := make([]string, 16)
		for i := range tokens {
			tokens[i] = fmt.Sprint("t-", i)
			setUser(svc, tokens[i], "u", 200*time.Millisecond)
		}
		up := newUpstream(t)
		backend := fmt.Sprintf("backend http %s", svc.URL)
		block := tc.block
		if strings.Contains(block, "%s") {
			block, backend = fmt.Sprintf(block, svc.URL), ""
		}
		startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth {
		%s
		%s
		client_miss_limit off
		timeout 10s
	}
	reverse_proxy %s
}`, httpPort, backend, block, up.Listener.Addr()))
		var wg sync.WaitGroup
		for _, tok := range tokens {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if resp, _ := getFrom(t, tok, ""); resp.StatusCode != 200 {
					t.Errorf("%s: %d", tok, resp.StatusCode)
				}
			}()
		}
		wg.Wait()
		if m := svc.maxConns.Load(); m > tc.want {
			t.Errorf("%q: %d connections to the session service at once, want at most %d", tc.block, m, tc.want)
		}
		if m := svc.maxActive.Load(); m > tc.want {
			t.Errorf("%q: %d calls at once, want at most %d", tc.block, m, tc.want)
		}
	}
}

// refreshSite is a Caddy whose sessions live 2s with a refresh from 50%.
func refreshSite(t *testing.T, svc *sessionService, extra string) {
	t.Helper()
	up := newUpstream(t)
	startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth {
		backend http %s
		cache_ttl 2s
		refresh_ahead 0.5
		%s
	}
	reverse_proxy %s
}`, httpPort, svc.URL, extra, up.Listener.Addr()))
}

func userSeen(t *testing.T, token string) (int, string) {
	t.Helper()
	resp, body := getFrom(t, token, "")
	if resp.StatusCode != 200 {
		return resp.StatusCode, ""
	}
	return 200, upstreamSaw(t, body).Headers.Get("X-Session-User")
}

// TestProtectRefreshAhead: a request past the refresh point is served
// from the cache at once and starts one refresh, whose answer replaces
// the entry; a token in use never waits on the service again.
func TestProtectRefreshAhead(t *testing.T) {
	svc := newSessionService(t)
	setUser(svc, "alice", "alice", 0)
	refreshSite(t, svc, "")
	if st, u := userSeen(t, "alice"); st != 200 || u != "alice" {
		t.Fatalf("%d %q", st, u)
	}
	time.Sleep(1200 * time.Millisecond) // past 50% of 2s
	setUser(svc, "alice", "alice2", 500*time.Millisecond)
	start := time.Now()
	if st, u := userSeen(t, "alice"); st != 200 || u != "alice" {
		t.Fatalf("past the refresh point: %d %q, want the cached session", st, u)
	}
	if took := time.Since(start); took > 400*time.Millisecond {
		t.Fatalf("the request past the refresh point took %v: it waited on the refresh", took)
	}
	eventually(t, 10*time.Second, "the refreshed entry", func() error {
		if st, u := userSeen(t, "alice"); u != "alice2" {
			return fmt.Errorf("%d, user %q, want alice2", st, u)
		}
		return nil
	})
	if n := svc.callsFor("alice"); n != 2 {
		t.Fatalf("%d calls, want 2", n)
	}
	// Used throughout, past several cache lives: never a wait again.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if st, _ := userSeen(t, "alice"); st != 200 {
			t.Fatalf("status %d", st)
		}
	}
	st := protectStatsFor(t, svc.URL)
	if st.Waited != 1 || st.RefreshesStarted < 2 {
		t.Fatalf("stats %+v: want one request that waited (the first), refreshes since", st)
	}
	text := scrapeMetrics(t)
	if v, _ := sampleSum(text, "caddy_sessiongate_refreshes_total"); v < 2 {
		t.Fatalf("refreshes_total = %v", v)
	}
	if v, _ := sampleSum(text, "caddy_sessiongate_lookups_waited_total"); v < 1 {
		t.Fatalf("lookups_waited_total = %v", v)
	}
}

// TestProtectRefreshAheadOncePerToken: many concurrent requests past the
// refresh point start one refresh.
func TestProtectRefreshAheadOncePerToken(t *testing.T) {
	svc := newSessionService(t)
	setUser(svc, "alice", "alice", 0)
	refreshSite(t, svc, "")
	userSeen(t, "alice")
	time.Sleep(1200 * time.Millisecond)
	setUser(svc, "alice", "alice", 600*time.Millisecond)
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st, u := userSeen(t, "alice"); st != 200 || u != "alice" {
				t.Errorf("%d %q", st, u)
			}
		}()
	}
	wg.Wait()
	time.Sleep(700 * time.Millisecond)
	if n := svc.callsFor("alice"); n != 2 {
		t.Fatalf("%d calls for 30 concurrent requests past the refresh point, want 2 (one refresh)", n)
	}
}

// TestProtectRefreshAheadRejection: a refresh the service rejects evicts
// the session at once, not at the end of its cache life.
func TestProtectRefreshAheadRejection(t *testing.T) {
	svc := newSessionService(t)
	setUser(svc, "alice", "alice", 0)
	refreshSite(t, svc, "")
	userSeen(t, "alice")
	time.Sleep(1100 * time.Millisecond)
	setUser(svc, "alice", "", 0) // logged out at the service
	if st, _ := userSeen(t, "alice"); st != 200 {
		t.Fatalf("the request that starts the refresh: %d", st)
	}
	eventually(t, 10*time.Second, "the eviction", func() error {
		if st, u := userSeen(t, "alice"); st != 401 {
			return fmt.Errorf("%d, user %q, want 401", st, u)
		}
		return nil
	})
	if n := svc.callsFor("alice"); n != 2 {
		t.Fatalf("%d calls: the rejection is cached", n)
	}
}

// TestProtectRefreshAheadError: a refresh the service fails leaves the
// entry to its end, and stale_if_error after it.
func TestProtectRefreshAheadError(t *testing.T) {
	svc := newSessionService(t)
	setUser(svc, "alice", "alice", 0)
	refreshSite(t, svc, "stale_if_error 2s")
	userSeen(t, "alice")
	time.Sleep(1100 * time.Millisecond)
	svc.setFault(failing(http.StatusBadGateway))
	if st, _ := userSeen(t, "alice"); st != 200 {
		t.Fatalf("the request that starts the refresh: %d", st)
	}
	eventually(t, 10*time.Second, "the failed refresh", func() error {
		if n := svc.callsFor("alice"); n != 2 {
			return fmt.Errorf("%d calls, want 2", n)
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond)
	if st, u := userSeen(t, "alice"); st != 200 || u != "alice" {
		t.Fatalf("after a failed refresh: %d %q", st, u)
	}
	time.Sleep(1200 * time.Millisecond) // past the entry's end: stale_if_error
	if st, u := userSeen(t, "alice"); st != 200 || u != "alice" {
		t.Fatalf("past the end, within stale_if_error: %d %q", st, u)
	}
	time.Sleep(2 * time.Second) // past stale_if_error too
	if st, _ := userSeen(t, "alice"); st != 503 {
		t.Fatalf("past stale_if_error with the service failing: %d", st)
	}
}

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(readFromResponder{})
	httpcaddyfile.RegisterHandlerDirective("test_readfrom_respond", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		h.Next()
		return readFromResponder{}, nil
	})
}

// readFromResponder answers 200 the way some handlers do: the body through
// io.ReaderFrom, with no WriteHeader call. A LimitReader has no WriteTo,
// so io.Copy takes the writer's ReadFrom.
type readFromResponder struct{}

func (readFromResponder) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.test_readfrom_respond",
		New: func() caddy.Module { return readFromResponder{} },
	}
}

func (readFromResponder) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	_, err := io.Copy(w, io.LimitReader(strings.NewReader("logged out"), 10))
	return err
}

// backendStat is one line of GET /sessiongate/stats.
type backendStat struct {
	ID            string `json:"id"`
	Dialect       string `json:"dialect"`
	URL           string `json:"url"`
	Entries       int    `json:"entries"`
	Rejections    int    `json:"rejections"`
	Hits          uint64 `json:"hits"`
	Misses        uint64 `json:"misses"`
	StaleServes   uint64 `json:"stale_serves"`
	ServiceCalls  uint64 `json:"service_calls"`
	ServiceErrors uint64 `json:"service_errors"`
	Latency       int64  `json:"service_latency_avg_ns"`
}

// statsFor returns the stats lines whose URL is url.
func statsFor(t *testing.T, url string) []backendStat {
	t.Helper()
	status, body := admin(t, "GET", "/sessiongate/stats", "", "")
	if status != http.StatusOK {
		t.Fatalf("GET /sessiongate/stats: %d %s", status, body)
	}
	var out struct {
		Backends []backendStat `json:"backends"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("stats are not JSON: %v: %s", err, body)
	}
	var mine []backendStat
	for _, b := range out.Backends {
		if b.URL == url {
			mine = append(mine, b)
		}
	}
	return mine
}

func TestOpsReloadKeepsCache(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newUpstream(t)
	site := func(version, extra string) string {
		return fmt.Sprintf(`
:%d {
	handle /version {
		respond %q
	}
	handle {
		session_auth http %s {
			cache_ttl 1h
			negative_ttl 1h
			%s
		}
		reverse_proxy %s
	}
}`, httpPort, version, svc.URL, extra, up.Listener.Addr())
	}
	tester := startCaddy(t, site("v1", ""))
	expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, "first load")
	expectStatus(t, tester, "GET", "/", bearer("tok-nobody"), 401, "first load")
	expectCalls(t, svc, 2, "first load")

	// A reload that changes something else keeps every entry, sessions
	// and rejections alike.
	if status, body := reload(t, site("v2", "")); status != 200 {
		t.Fatalf("reload: %d %s", status, body)
	}
	if body := expectStatus(t, tester, "GET", "/version", nil, 200, "after reload"); body != "v2" {
		t.Fatalf("after reload /version = %q: the reload did not happen", body)
	}
	expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, "after reload")
	expectStatus(t, tester, "GET", "/", bearer("tok-nobody"), 401, "after reload")
	expectCalls(t, svc, 2, "after a reload with the same backend")

	// So does a forced reload of the very same config.
	if status, body := reload(t, site("v2", ""), "Cache-Control", "must-revalidate"); status != 200 {
		t.Fatalf("forced reload: %d %s", status, body)
	}
	expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, "after forced reload")
	expectCalls(t, svc, 2, "after a forced reload")

	// A reload that fails leaves the running config and its cache alone,
	// and gives back every reference it took on the shared cache: a good
	// handler provisioned before the failure, and a handler that failed
	// after it took its reference (a bad header name). Longer paths are
	// provisioned first.
	bad := func(failing string) string {
		return fmt.Sprintf(`
:%d {
	handle /version {
		respond "v3"
	}
	handle /good/handler/provisioned/first/* {
		session_auth http %s {
			cache_ttl 1h
			negative_ttl 1h
		}
		reverse_proxy %s
	}
	handle /bad/* {
		%s
	}
}`, httpPort, svc.URL, up.Listener.Addr(), failing)
	}
	for _, c := range []struct{ failing, says string }{
		{`session_auth http {env.SESSIONGATE_OPS_TEST_UNSET}`, "backend url"},
		{fmt.Sprintf("session_auth http %s {\n cache_ttl 1h\n negative_ttl 1h\n header \"Bad Name\" x\n }", svc.URL), "not a header name"},
	} {
		if status, body := reload(t, bad(c.failing)); status == 200 {
			t.Fatalf("a bad config loaded: %s", c.failing)
		} else if !strings.Contains(body, c.says) {
			t.Errorf("failed load says %q; want it to say %q", body, c.says)
		}
	}
	if body := expectStatus(t, tester, "GET", "/version", nil, 200, "after failed reload"); body != "v2" {
		t.Errorf("after a failed reload /version = %q, want the old config's v2", body)
	}
	expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, "after failed reload")
	expectCalls(t, svc, 2, "after a failed reload")
	if st := statsFor(t, svc.URL); len(st) != 1 || st[0].Entries != 1 || st[0].Rejections != 1 {
		t.Fatalf("after a failed reload the stats show %+v, want one cache with 1 session and 1 rejection", st)
	}
	oldID := statsFor(t, svc.URL)[0].ID

	// A changed backend starts clean, and the old cache is dropped
	// (which it would not be if the failed reload had kept a reference).
	if status, body := reload(t, site("v4", "backend_header X-Tenant blue")); status != 200 {
		t.Fatalf("reload with a changed backend: %d %s", status, body)
	}
	expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, "after backend change")
	expectStatus(t, tester, "GET", "/", bearer("tok-nobody"), 401, "after backend change")
	expectCalls(t, svc, 4, "after a reload with a changed backend")
	st := statsFor(t, svc.URL)
	if len(st) != 1 || st[0].ID == oldID {
		t.Errorf("after the backend changed the stats show %+v; want only a new cache (old id %s)", st, oldID)
	}
}

func TestOpsStaleIfError(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newUpstream(t)
	const ttl, window = 300 * time.Millisecond, 3 * time.Second
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	handle /nostale/* {
		session_auth http %s {
			cache_ttl 300ms
		}
		reverse_proxy %s
	}
	handle {
		session_auth http %s {
			cache_ttl 300ms
			stale_if_error 3s
		}
		reverse_proxy %s
	}
}`, httpPort, svc.URL, up.Listener.Addr(), svc.URL, up.Listener.Addr()))

	before := time.Now()
	expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, "service up")
	expectStatus(t, tester, "GET", "/nostale/x", bearer("tok-alice"), 200, "service up")
	expectCalls(t, svc, 2, "service up")

	svc.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})

	// Without stale_if_error, the session is refused as soon as its TTL
	// is over.
	eventually(t, 10*time.Second, "without stale_if_error, a 503 once the TTL is over", func() error {
		resp, _ := do(t, nil, "GET", "/nostale/x", bearer("tok-alice"))
		switch resp.StatusCode {
		case http.StatusServiceUnavailable:
			if resp.Header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			return nil
		case http.StatusOK:
			return fmt.Errorf("still 200")
		}
		t.Fatalf("without stale_if_error: status %d, want 200 then 503 once the TTL is over", resp.StatusCode)
		return nil
	})
	if time.Since(before) < ttl {
		t.Fatalf("refused before the TTL was over")
	}

	// With it, the expired session is served, with its headers, while
	// the service keeps failing; each such request still asks the
	// service first.
	calls := svc.calls.Load()
	resp, body := do(t, nil, "GET", "/", bearer("tok-alice"))
	if resp.StatusCode != 200 {
		t.Fatalf("stale_if_error: status %d during the outage, want 200 (%q)", resp.StatusCode, body)
	}
	if got := upstreamSaw(t, body).Headers.Get("X-Session-User"); got != "alice" {
		t.Errorf("a stale serve gave the upstream X-Session-User %q, want alice", got)
	}
	if svc.calls.Load() == calls {
		t.Errorf("the expired session was served without asking the session service")
	}
	if st := statsFor(t, svc.URL); len(st) != 2 || st[0].StaleServes+st[1].StaleServes == 0 {
		t.Errorf("stats %+v: want a stale serve counted", st)
	}

	// After the window, it is refused too.
	var refusedAt time.Time
	eventually(t, 15*time.Second, "the stale session refused after stale_if_error", func() error {
		resp, body := do(t, nil, "GET", "/", bearer("tok-alice"))
		if resp.StatusCode == http.StatusServiceUnavailable {
			refusedAt = time.Now()
			return nil
		}
		if resp.StatusCode != 200 {
			t.Fatalf("during the stale window: status %d (%q)", resp.StatusCode, body)
		}
		return fmt.Errorf("still served (200)")
	})
	// The entry was fetched after `before`, so it was good for at least
	// ttl+window from then: an earlier refusal would be a short window.
	if refusedAt.Sub(before) < ttl+window {
		t.Errorf("refused %v after the session was cached, before TTL + stale_if_error (%v)", refusedAt.Sub(before), ttl+window)
	}

	svc.setFault(nil)
	expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, "after recovery")
}

func TestOpsAdminPurge(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	svc.addSession("tok-bob", map[string]any{"user_id": "u-2", "user": "bob"})
	svc2 := newSessionService(t)
	svc2.addSession("tok-alice", aliceSession())
	up := newUpstream(t)
	// Credentials and a query in the URL must not show in the stats.
	svcURL := strings.Replace(svc.URL, "http://", "http://ops:s3cret@", 1) + "/?key=k3y"
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	handle /two/* {
		session_auth http %s
		reverse_proxy %s
	}
	handle {
		session_auth http %s {
			token cookie sid
			token bearer
		}
		reverse_proxy %s
	}
}`, httpPort, svc2.URL, up.Listener.Addr(), svcURL, up.Listener.Addr()))

	bobCookie := http.Header{"Cookie": {"sid=tok-bob"}}
	expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, "warm-up")
	expectStatus(t, tester, "GET", "/", bobCookie, 200, "warm-up")
	expectStatus(t, tester, "GET", "/two/x", bearer("tok-alice"), 200, "warm-up")
	expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, "warm-up")
	expectCalls(t, svc, 2, "warm-up")
	expectCalls(t, svc2, 1, "warm-up")

	status, body := admin(t, "GET", "/sessiongate/stats", "", "")
	if status != 200 || strings.Contains(body, "s3cret") || strings.Contains(body, "k3y") || strings.Contains(body, "tok-") {
		t.Errorf("stats: %d %s; want 200 and no credentials, query or token", status, body)
	}
	st := statsFor(t, svc.URL+"/")
	if len(st) != 1 {
		t.Fatalf("stats for %s/: %+v (all: %s)", svc.URL, st, body)
	}
	if s := st[0]; s.Dialect != "http" || s.Entries != 2 || s.Hits != 1 || s.Misses != 2 || s.ServiceCalls != 2 || s.Latency <= 0 {
		t.Errorf("stats %+v: want http, 2 entries, 1 hit, 2 misses, 2 calls, a latency", s)
	}

	// One token, by the token alone, from every backend and whatever
	// source it came in by (bob's came as a cookie).
	status, body = admin(t, "POST", "/sessiongate/purge", "application/json", `{"token": "tok-bob"}`)
	if status != 200 || !strings.Contains(body, `"purged":1`) {
		t.Errorf("purge bob: %d %s, want 200 and purged 1", status, body)
	}
	expectStatus(t, tester, "GET", "/", bobCookie, 200, "after purging bob")
	expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, "after purging bob")
	expectCalls(t, svc, 3, "after purging bob (bob refetched, alice still cached)")

	status, body = admin(t, "POST", "/sessiongate/purge", "application/json", `{"token": "tok-alice"}`)
	if status != 200 || !strings.Contains(body, `"purged":2`) {
		t.Errorf("purge alice: %d %s, want 200 and purged 2 (one per backend)", status, body)
	}
	expectStatus(t, tester, "GET", "/two/x", bearer("tok-alice"), 200, "after purging alice")
	expectCalls(t, svc2, 2, "after purging alice")

	status, body = admin(t, "POST", "/sessiongate/purge", "application/json", `{"all": true}`)
	if status != 200 || !strings.Contains(body, `"purged":2`) {
		t.Errorf("purge all: %d %s, want 200 and purged 2 (bob here, alice on /two)", status, body)
	}
	expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, "after purging all")
	expectStatus(t, tester, "GET", "/", bobCookie, 200, "after purging all")
	expectStatus(t, tester, "GET", "/two/x", bearer("tok-alice"), 200, "after purging all")
	expectCalls(t, svc, 5, "after purging all")
	expectCalls(t, svc2, 3, "after purging all")

	status, body = admin(t, "POST", "/sessiongate/purge", "application/json", `{"token": "tok-never-seen"}`)
	if status != 200 || !strings.Contains(body, `"purged":0`) {
		t.Errorf("purge of an unknown token: %d %s, want 200 and purged 0", status, body)
	}

	for name, bad := range map[string]string{
		"empty":        ``,
		"not JSON":     `token=tok-alice`,
		"empty object": `{}`,
		"empty token":  `{"token": ""}`,
		"all false":    `{"all": false}`,
		"both":         `{"token": "tok-alice", "all": true}`,
		"unknown key":  `{"tokens": ["tok-alice"]}`,
		"All":          `{"All": true}`,
		"Token":        `{"Token": "tok-alice"}`,
		"both cases":   `{"token": "tok-alice", "ALL": true}`,
		"wrong type":   `{"token": 42}`,
		"two values":   `{"all": true} {"all": true}`,
		"huge":         `{"token": "` + strings.Repeat("x", 70<<10) + `"}`,
	} {
		status, body := admin(t, "POST", "/sessiongate/purge", "application/json", bad)
		if status != http.StatusBadRequest || !strings.Contains(body, "error") {
			t.Errorf("purge with a bad body (%s): %d %s, want 400 with an error message", name, status, body)
		}
	}
	expectCalls(t, svc, 5, "after bad purges (nothing purged)")
	expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, "after bad purges")
	expectCalls(t, svc, 5, "after bad purges (nothing purged)")

	if status, _ := admin(t, "GET", "/sessiongate/purge", "", ""); status != http.StatusMethodNotAllowed {
		t.Errorf("GET /sessiongate/purge: %d, want 405", status)
	}
	if status, _ := admin(t, "POST", "/sessiongate/stats", "application/json", "{}"); status != http.StatusMethodNotAllowed {
		t.Errorf("POST /sessiongate/stats: %d, want 405", status)
	}
}

// TestOpsLogoutEvicts: a logout the app accepted evicts that session,
// and only that one; another method or path, or a logout the app refused,
// evicts nothing. On /rf/ the app answers the logout 200 through
// io.ReaderFrom with no explicit WriteHeader: the recorder once saw no
// status for it, and the session stayed.
func TestOpsLogoutEvicts(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	svc.addSession("tok-bob", map[string]any{"user_id": "u-2", "user": "bob"})
	rfSvc := newSessionService(t)
	rfSvc.addSession("tok-alice", aliceSession())
	up := newUpstream(t)
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	handle /rf/* {
		session_auth http %s {
			logout POST /rf/logout
		}
		route /rf/logout {
			test_readfrom_respond
		}
		reverse_proxy %s
	}
	handle {
		session_auth http %s {
			logout POST /logout
			logout DELETE /api/session
		}
		respond /api/session 500
		reverse_proxy %s
	}
}`, httpPort, rfSvc.URL, up.Listener.Addr(), svc.URL, up.Listener.Addr()))

	expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, "warm-up")
	expectStatus(t, tester, "GET", "/", bearer("tok-bob"), 200, "warm-up")
	expectCalls(t, svc, 2, "warm-up")

	// Not a logout: another method or path.
	expectStatus(t, tester, "GET", "/logout", bearer("tok-alice"), 200, "GET /logout")
	expectStatus(t, tester, "POST", "/other", bearer("tok-alice"), 200, "POST /other")
	// A logout the app refused (500) keeps the session.
	expectStatus(t, tester, "DELETE", "/api/session", bearer("tok-alice"), 500, "failed logout")
	expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, "after failed logout")
	expectCalls(t, svc, 2, "after non-logouts and a failed logout")

	// The app accepts alice's logout: her entry goes, bob's stays.
	expectStatus(t, tester, "POST", "/logout", bearer("tok-alice"), 200, "logout")
	expectCalls(t, svc, 2, "the logout request itself")
	expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, "after logout")
	expectCalls(t, svc, 3, "alice after her logout")
	expectStatus(t, tester, "GET", "/", bearer("tok-bob"), 200, "after alice's logout")
	expectCalls(t, svc, 3, "bob after alice's logout")
	if up.hits.Load() == 0 {
		t.Errorf("the upstream saw nothing")
	}

	// A logout answered through io.ReaderFrom.
	expectStatus(t, tester, "GET", "/rf/x", bearer("tok-alice"), 200, "ReadFrom warm-up")
	expectCalls(t, rfSvc, 1, "ReadFrom warm-up")
	if body := expectStatus(t, tester, "POST", "/rf/logout", bearer("tok-alice"), 200, "ReadFrom logout"); body != "logged out" {
		t.Errorf("ReadFrom logout answered %q", body)
	}
	expectStatus(t, tester, "GET", "/rf/x", bearer("tok-alice"), 200, "after the ReadFrom logout")
	expectCalls(t, rfSvc, 2, "alice after her ReadFrom logout")
}

func TestOpsMetrics(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	svc2 := newSessionService(t)
	svc2.addSession("tok-alice", aliceSession())
	downURL := refusingURL(t)
	up := newUpstream(t)
	site := func(extra string) string {
		return fmt.Sprintf(`
:%d {
	handle /opt/* {
		session_auth http %s {
			optional
			%s
		}
		reverse_proxy %s
	}
	handle /down/* {
		session_auth http %s {
			%s
		}
		reverse_proxy %s
	}
	handle /stale/* {
		session_auth http %s {
			cache_ttl 200ms
			stale_if_error 1h
			refresh_ahead off
			%s
		}
		reverse_proxy %s
	}
	handle {
		session_auth http %s {
			cache_max 1
			logout POST /logout
			client_miss_limit off
			%s
		}
		reverse_proxy %s
	}
}`, httpPort, svc.URL, extra, up.Listener.Addr(), downURL, extra, up.Listener.Addr(),
			svc2.URL, extra, up.Listener.Addr(), svc.URL, extra, up.Listener.Addr())
	}
	tester := startCaddy(t, site(""))
	before := scrapeMetrics(t)

	expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, "authenticated")
	expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, "authenticated, cached")
	expectStatus(t, tester, "GET", "/", nil, 401, "no token")
	expectStatus(t, tester, "GET", "/opt/x", nil, 200, "anonymous")
	expectStatus(t, tester, "GET", "/down/x", bearer("tok-alice"), 503, "service down")
	// cache_max 1 holds one rejection: 70 rejected tokens evict 69.
	for i := range 70 {
		expectStatus(t, tester, "GET", "/", bearer(fmt.Sprintf("tok-random-%d", i)), 401, "random token")
	}
	expectStatus(t, tester, "POST", "/logout", bearer("tok-alice"), 200, "logout")
	expectStatus(t, tester, "GET", "/stale/x", bearer("tok-alice"), 200, "stale warm-up")
	if status, body := admin(t, "POST", "/sessiongate/purge", "application/json", `{"token": "tok-random-69"}`); status != 200 {
		t.Fatalf("purge: %d %s", status, body)
	}
	expectStatus(t, tester, "GET", "/", bearer("tok-random-70"), 401, "a rejection to count after the purge")
	svc2.setFault(func(w http.ResponseWriter, r *http.Request) bool { w.WriteHeader(502); return true })
	eventually(t, 10*time.Second, "the /stale/ session expired and served stale", func() error {
		calls := svc2.calls.Load()
		expectStatus(t, tester, "GET", "/stale/x", bearer("tok-alice"), 200, "stale")
		if svc2.calls.Load() > calls {
			return nil // the TTL was over: that one was served stale
		}
		return fmt.Errorf("still served from the cache, the service not asked")
	})

	after := scrapeMetrics(t)
	delta := func(family string, labels ...string) float64 {
		a, ok := sampleSum(after, family, labels...)
		if !ok {
			t.Errorf("metrics: no %s%v after traffic", family, labels)
		}
		b, _ := sampleSum(before, family, labels...)
		return a - b
	}
	const ns = "caddy_sessiongate_"
	for _, c := range []struct {
		family string
		labels []string
		min    float64
	}{
		{ns + "requests_total", []string{`outcome="authenticated"`}, 3},
		{ns + "requests_total", []string{`outcome="unauthenticated"`}, 71},
		{ns + "requests_total", []string{`outcome="anonymous"`}, 1},
		{ns + "requests_total", []string{`outcome="service_error"`}, 1},
		{ns + "requests_total", []string{`outcome="stale"`}, 1},
		{ns + "cache_hits_total", []string{`dialect="http"`}, 1},
		{ns + "cache_misses_total", []string{`dialect="http"`}, 73},
		{ns + "cache_evictions_total", []string{`reason="capacity"`}, 6},
		{ns + "cache_evictions_total", []string{`reason="logout"`}, 1},
		{ns + "cache_evictions_total", []string{`reason="purge"`}, 1},
		{ns + "service_request_duration_seconds_count", []string{`dialect="http"`}, 74},
		{ns + "service_errors_total", []string{`dialect="http"`, `kind="refused"`}, 1},
		{ns + "service_errors_total", []string{`dialect="http"`, `kind="status"`}, 1},
	} {
		if d := delta(c.family, c.labels...); d < c.min {
			t.Errorf("metrics: %s%v rose by %v, want at least %v", c.family, c.labels, d, c.min)
		}
	}
	if _, ok := sampleSum(after, ns+"requests_total", `outcome="forbidden"`); !ok {
		t.Errorf("metrics: the forbidden outcome is not exported")
	}
	if v, ok := sampleSum(after, ns+"cache_entries", `dialect="http"`, `kind="rejection"`); !ok || v < 1 {
		t.Errorf("metrics: cache_entries for rejections = %v (found %v), want at least 1", v, ok)
	}
	if v, ok := sampleSum(after, ns+"cache_entries", `dialect="http"`, `kind="session"`); !ok || v < 1 {
		t.Errorf("metrics: cache_entries for sessions = %v (found %v), want at least 1", v, ok)
	}
	if strings.Contains(after, "tok-") {
		t.Errorf("a token appears in the metrics")
	}

	// disable_metrics on every handler: no sessiongate family at all.
	if status, body := reload(t, site("disable_metrics")); status != 200 {
		t.Fatalf("reload with disable_metrics: %d %s", status, body)
	}
	expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, "metrics off")
	if off := scrapeMetrics(t); strings.Contains(off, ns) {
		t.Errorf("with disable_metrics everywhere, /metrics still has sessiongate families")
	}
}

// TestOpsClientGivesUpMidLookup: a client that hangs up while its token
// is being looked up is not a service failure: no "session service
// unavailable" warning, no service_error outcome, and what Caddy logs is a
// 499 client error, not a 503.
func TestOpsClientGivesUpMidLookup(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-slow", aliceSession())
	svc.setFault(func(w http.ResponseWriter, r *http.Request) bool { time.Sleep(700 * time.Millisecond); return false })
	up := newUpstream(t)
	logFile := t.TempDir() + "/caddy.log"
	startCaddyWith(t, debugLogTo(logFile), fmt.Sprintf(`
:%d {
	session_auth http %s
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))

	before := scrapeMetrics(t)
	req, _ := http.NewRequest("GET", siteURL+"/", nil)
	req.Header.Set("Authorization", "Bearer tok-slow")
	if resp, err := (&http.Client{Timeout: 150 * time.Millisecond}).Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the client got an answer (%d) before giving up", resp.StatusCode)
	}
	// The lookup finishes (700ms), then Caddy logs the request.
	eventually(t, 10*time.Second, "Caddy logged the canceled request", func() error {
		raw, err := os.ReadFile(logFile)
		if err != nil {
			return err
		}
		if !strings.Contains(string(raw), `"status":499`) {
			return fmt.Errorf("no 499 in the log yet")
		}
		return nil
	})
	after := scrapeMetrics(t)
	b, _ := sampleSum(before, "caddy_sessiongate_requests_total", `outcome="service_error"`)
	a, _ := sampleSum(after, "caddy_sessiongate_requests_total", `outcome="service_error"`)
	if a != b {
		t.Errorf("a canceled client counted as a service error (%v -> %v)", b, a)
	}
	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	logged := false
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.Contains(line, "session service unavailable") {
			t.Errorf("a canceled client was logged as a service failure: %s", line)
		}
		if strings.Contains(line, `"status":503`) {
			t.Errorf("a canceled client was logged as a 503: %s", line)
		}
		if strings.Contains(line, `"level":"warn"`) || strings.Contains(line, `"level":"error"`) {
			if strings.Contains(line, "tok-slow") || strings.Contains(line, "session") {
				t.Errorf("a canceled client was logged above DEBUG: %s", line)
			}
		}
		logged = logged || strings.Contains(line, `"status":499`)
	}
	if !logged {
		t.Errorf("no 499 in Caddy's log:\n%s", raw)
	}
	// The lookup was not wasted: the next request is a cache hit.
	expectStatus(t, nil, "GET", "/", bearer("tok-slow"), 200, "after the client gave up")
	expectCalls(t, svc, 1, "after the client gave up")
}
